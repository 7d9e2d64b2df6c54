//! Unit tests of the room registry: out queues, and a room task that dies.

use super::*;
use crate::net::envelope::Format;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};

fn conn(id: &str) -> (PlayerConn, OutReceiver) {
    let (out, rx) = OutQueue::new(4, 1 << 20);
    let conn = PlayerConn { id: id.into(), format: Format::Json, out, kill: Kill::default(), in_room: Arc::new(AtomicBool::new(true)) };
    (conn, rx)
}

fn kicked(rx: &mut OutReceiver) -> String {
    let Some(Outbound::Frames(_, frames, _)) = rx.try_recv() else { panic!("the player was told nothing") };
    String::from_utf8(frames[0].to_vec()).unwrap()
}

#[tokio::test]
async fn a_room_task_that_dies_is_counted_reported_unlisted_and_its_players_told() {
    let rt = crate::runtime::Runtime::new(crate::runtime::Limits { max_instances: 2, ..Default::default() }, None).unwrap();
    let plugin = Arc::new(rt.load(&warden_tests::wasm_bytes("echo")).unwrap());
    let version = plugin.manifest().version.clone();
    let game = Arc::new(GameEntry::new(plugin, Vec::new(), Switches::default()));
    let games = HashMap::from([("echo".to_string(), game.clone())]);
    let rooms = Rooms::new(games, RoomConfig::default(), Arc::new(crate::runtime::MemorySaves::default()));
    let (crash_tx, mut crashes) = mpsc::unbounded_channel();
    let _ = rooms.0.crashes.set(crash_tx);

    let key = ("echo".to_string(), "r1".to_string());
    let (tx, rx) = mpsc::channel(1);
    let summary = RoomSummary {
        game: key.0.clone(),
        room: key.1.clone(),
        version: version.clone(),
        seed: 0,
        usage: Default::default(),
        opened_ms: 0,
        live: Default::default(),
        stop: Default::default(),
    };
    rooms.0.rooms.lock().unwrap().insert(key.clone(), (RoomHandle { tx }, summary));
    let (ann, mut ann_rx) = conn("ann");
    let in_room = ann.in_room.clone();
    let mut members = actor::Members::default();
    members.insert(ann.id.clone(), Arc::new(ann));
    let task = async move {
        let (_members, _inbox) = (members, rx);
        panic!("a bug in the host");
    };
    rooms.clone().supervised(key, game.clone(), task).await;

    assert!(rooms.list().is_empty(), "the room is no longer listed");
    assert_eq!(game.health(&version).total().traps, 1, "counted against the version it ran");
    let report = crashes.try_recv().expect("a crash report");
    assert_eq!((report.kind.as_str(), report.outcome.as_str()), ("host_panic", "closed"));
    assert!(report.message.contains("a bug in the host"), "{}", report.message);
    assert!(kicked(&mut ann_rx).contains("\"type\":\"kicked\""), "the player was told");
    assert!(!in_room.load(Ordering::Acquire));
}

#[tokio::test]
async fn the_out_queue_is_bounded_in_bytes_and_batches_and_frees_what_is_written() {
    let (q, mut rx) = OutQueue::new(3, 100);
    let frame = |n: usize| Bytes::from(vec![0u8; n]);
    q.push(Format::MsgPack, vec![frame(60)]).unwrap();
    assert!(q.push(Format::MsgPack, vec![frame(50)]).is_err(), "110 bytes > 100");
    q.push(Format::MsgPack, vec![frame(20), frame(20)]).unwrap();
    assert!(q.push(Format::MsgPack, vec![frame(1)]).is_err(), "100 bytes queued: not one more");
    q.push(Format::MsgPack, vec![]).unwrap();
    assert!(q.push(Format::MsgPack, vec![]).is_err(), "three batches at most");
    rx.recv().await.unwrap();
    q.push(Format::MsgPack, vec![frame(50)]).expect("the written batch's 60 bytes were freed");
}

#[tokio::test]
async fn a_host_that_stops_serving_stops_every_room_tells_its_players_and_refuses_joins_until_it_serves_again() {
    let rt = crate::runtime::Runtime::new(crate::runtime::Limits { max_instances: 4, ..Default::default() }, None).unwrap();
    let plugin = Arc::new(rt.load(&warden_tests::wasm_bytes("echo")).unwrap());
    let game = Arc::new(GameEntry::new(plugin, Vec::new(), Switches::default()));
    let rooms =
        Rooms::new(HashMap::from([("echo".to_string(), game)]), RoomConfig::default(), Arc::new(crate::runtime::MemorySaves::default()));
    let (ann, mut ann_rx) = conn("ann");
    let in_room = ann.in_room.clone();
    rooms.join("echo", "r1", ann).await.unwrap();
    assert_eq!(rooms.open_count(), 1);

    rooms.stop_serving("its fleet lease lapsed".into());
    tokio::time::timeout(std::time::Duration::from_secs(60), rooms.stopped_rooms_ended()).await.expect("every room ends");
    assert_eq!(rooms.open_count(), 0);
    // After what the join sent, if it came after the join returned.
    let mut frames = Vec::new();
    while let Some(Outbound::Frames(_, batch, _)) = ann_rx.try_recv() {
        frames.extend(batch.iter().map(|f| String::from_utf8(f.to_vec()).unwrap()));
    }
    let notice = frames.into_iter().find(|f| f.contains("\"type\":\"kicked\"")).expect("the player was told");
    assert!(notice.contains("\"type\":\"kicked\"") && notice.contains("moved") && notice.contains("its fleet lease lapsed"), "{notice}");
    assert!(!in_room.load(Ordering::Acquire), "the player is out of the room");
    let (bob, _bob_rx) = conn("bob");
    match rooms.join("echo", "r1", bob.clone()).await {
        Err(e @ JoinError::NotServing(_)) => {
            assert_eq!(e.code(), ErrorCode::NotServing);
            assert!(e.to_string().contains("its fleet lease lapsed"), "{e}");
        }
        other => panic!("a join while not serving is refused, not {:?}", other.map(|_| ())),
    }
    assert_eq!(rooms.open_count(), 0, "and opens no room");

    rooms.serve(None);
    assert_eq!(rooms.not_serving(), None);
    rooms.join("echo", "r1", bob).await.expect("served again");
    assert_eq!(rooms.open_count(), 1);
    rooms.shutdown().await;
}
