//! Rooms, inspected, on a real server: the listing and one room in full over the admin endpoint, a
//! room's dump re-run offline against its plugin file to the live room's snapshot bytes, and the
//! watchdog's dump of a room that leaks timers.

mod common;

use common::server::*;
use std::time::{Duration, Instant};
use warden::admin::watchdog::{Condition, Dump};
use warden::net::envelope::Format;
use warden::room::dumpfile::DumpFile;
use warden::server::Server;

#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Move {
    Move { dir: &'static str, seq: u64 },
}

/// Waits until the listing of `room` satisfies `f`.
async fn listed(server: &Server, room: &str, f: impl Fn(&warden::room::RoomSummary) -> bool) -> warden::room::RoomSummary {
    let deadline = Instant::now() + WAIT;
    loop {
        let rooms = server.admin_client().rooms().await.unwrap();
        if let Some(r) = rooms.into_iter().find(|r| r.room == room && f(r)) {
            return r;
        }
        assert!(Instant::now() < deadline, "room {room} never listed as expected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_dump_replays_offline_to_the_live_rooms_snapshot_bytes() {
    // Checkpoints far apart, so the journal holds every move.
    let server = start(&["rooms.checkpoint_every_ms=3600000"]).await;
    let endpoint = ws(&server, Format::MsgPack);
    let mut a = player(&endpoint, "arena", "d1").await;
    let mut b = player(&endpoint, "arena", "d1").await;
    for seq in 1..=30 {
        a.msg(&Move::Move { dir: "left", seq }).await;
        b.msg(&Move::Move { dir: "up", seq }).await;
    }
    let row = listed(&server, "d1", |r| r.usage.players == 2 && r.usage.ticks > 0).await;
    assert_eq!((row.game.as_str(), row.version.as_str()), ("arena", "0.2.0"));
    let client = server.admin_client();

    let detail = client.room("arena", "d1").await.unwrap();
    let mut players = detail.players.clone();
    players.sort();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(players, expected);
    assert_eq!(detail.journal.joins, 2, "{:?}", detail.journal);
    assert!(detail.journal.messages > 0 && detail.journal.ticks > 0, "{:?}", detail.journal);
    assert_eq!(detail.checkpoint.version, "0.2.0");
    let text = warden::commands::rooms::render_detail(&detail);
    assert!(text.contains("arena room d1") && text.contains("journal:"), "{text}");

    // The dump, through a file as `warden room --dump` writes it, replayed offline against the plugin
    // file: the same bytes as the live room's snapshot.
    let dump = client.room_dump("arena", "d1").await.unwrap();
    let path = tempfile::tempdir().unwrap();
    let file = path.path().join("d1.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&dump).unwrap()).unwrap();
    let dump = DumpFile::parse(&std::fs::read(&file).unwrap()).unwrap();
    assert!(dump.journal.len() > 60, "the moves are in the journal: {}", dump.journal.len());
    let live = dump.snapshot_bytes().unwrap().expect("the live room answered snapshot");
    let rt = warden::runtime::Runtime::new(warden::runtime::Limits::default(), None).unwrap();
    let plugin = rt.load(&warden_tests::wasm_bytes("arena")).unwrap();
    let replay = dump.replay(&plugin).unwrap();
    assert!(replay.skipped.is_empty());
    assert_eq!(replay.snapshot, live, "the replay ends on the live room's bytes");

    // A changed input changes the result (the comparison can fail), and the wrong plugin is refused.
    let mut changed = dump.clone();
    let moved = changed.journal.iter().position(|e| matches!(e, warden::room::dumpfile::DumpEntry::Msg { .. })).unwrap();
    changed.journal.remove(moved);
    assert_ne!(changed.replay(&plugin).unwrap().snapshot, live, "a move taken out changes the state");
    let chat = rt.load(&warden_tests::wasm_bytes("chat")).unwrap();
    let err = dump.replay(&chat).err().expect("chat is not the room's plugin").to_string();
    assert!(err.contains("arena 0.2.0") && err.contains("arena-0.2.0.wasm"), "{err}");

    let err = client.room("arena", "nowhere").await.unwrap_err().to_string();
    assert!(err.contains("no room nowhere of arena is open") && err.contains("404"), "{err}");
    server.shutdown().await;
}

/// The watchdog's dumps of `room` for `condition`.
fn dumps_of(dir: &std::path::Path, room: &str, condition: Condition) -> Vec<Dump> {
    warden::admin::watchdog::list(dir)
        .unwrap()
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d.condition == condition && d.room.as_ref().is_some_and(|r| r.room == room))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_leaking_timers_gets_exactly_one_dump_naming_the_threshold_and_value() {
    let server =
        start(&["watchdog.enabled=true", "watchdog.interval_ms=50", "watchdog.max_timers=100", "watchdog.repeat_ms=3600000"]).await;
    let endpoint = ws(&server, Format::MsgPack);
    let mut leaky = player(&endpoint, "hog", "leak-1").await;
    let _quiet = player(&endpoint, "hog", "quiet-1").await;
    leaky.msg(&"timers:500").await;
    assert_eq!(leaky.next_msg::<String>(|_| false).await, "timers:500: ok");
    let dir = server.dump_dir();
    let deadline = Instant::now() + WAIT;
    while dumps_of(&dir, "leak-1", Condition::Timers).is_empty() {
        assert!(Instant::now() < deadline, "no dump for leak-1 within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Many more samples see the same leak: still one dump.
    let samples = server.watchdog_samples();
    while server.watchdog_samples() < samples + 10 {
        assert!(Instant::now() < deadline, "the watchdog stopped sampling");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dumps = dumps_of(&dir, "leak-1", Condition::Timers);
    assert_eq!(dumps.len(), 1, "one dump per room and condition per period: {dumps:?}");
    let d = &dumps[0];
    assert_eq!(d.threshold, 100.0);
    assert!(d.value >= 500.0, "{d:?}");
    assert!(d.message.contains("timers") && d.message.contains("100"), "{}", d.message);
    assert_eq!(d.room.as_ref().unwrap().usage.timers as f64, d.value, "the room's row is in the dump");
    assert!(dumps_of(&dir, "quiet-1", Condition::Timers).is_empty(), "the quiet room has none");
    let audit = server.store().audit_log(50).await.unwrap();
    assert!(audit.iter().any(|e| e.actor == "watchdog" && e.detail.contains("leak-1")), "audited");
    server.shutdown().await;
}
