//! The room cap on a real server with real WebSocket players: past `rooms.max_rooms`, a join that would
//! open one more room gets a clear `server_full` error (not fatal: the connection stays), while the rooms
//! already open take joins and play on; once a room has closed, a new one opens. The refusal is counted
//! in `/metrics`. The instance pool follows the cap.

mod common;

use chat::{ChatIn, ChatOut};
use common::scrape::Scrape;
use common::server::*;
use std::time::{Duration, Instant};
use warden::config::{Config, SPARE_INSTANCES};
use warden::net::envelope::{ClientEnvelope, ErrorCode, Format, ServerEnvelope};

async fn next_line(p: &mut Player) -> ChatOut {
    p.next_msg::<ChatOut>(|m| matches!(m, ChatOut::History { .. })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_rooms_a_new_room_is_refused_with_server_full_and_open_rooms_play_on() {
    let server = start(&["rooms.max_rooms=3"]).await;
    let endpoint = ws(&server, Format::MsgPack);
    let mut players = Vec::new();
    for room in ["c1", "c2", "c3"] {
        players.push(player(&endpoint, "chat", room).await);
    }

    // A fourth room is refused, clearly, and the connection stays.
    let (mut tx, mut rx) = warden::net::client::connect(&endpoint).await.unwrap();
    tx.send(&ClientEnvelope::Hello { token: None }).await.unwrap();
    assert!(matches!(rx.envelope(WAIT).await.unwrap(), ServerEnvelope::Welcome { .. }));
    tx.send(&ClientEnvelope::Join { game: "chat".into(), room: "c4".into() }).await.unwrap();
    match rx.envelope(WAIT).await.unwrap() {
        ServerEnvelope::Error { code: ErrorCode::ServerFull, message, fatal: false } => {
            assert!(message.contains("most rooms (3)") && message.contains("try again later"), "{message}")
        }
        other => panic!("expected a server_full error, got {other:?}"),
    }
    assert!(server.room_manager().list().iter().all(|r| r.room != "c4"), "no fourth room was opened");
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get("warden_rooms_refused_total", &[("plugin", "chat")]), Some(1.0), "the refusal is counted");

    // The open rooms take another player and play on.
    let mut joiner = player(&endpoint, "chat", "c1").await;
    players[0].msg(&ChatIn::Say { text: "still here".into() }).await;
    assert!(matches!(next_line(&mut joiner).await, ChatOut::Line(l) if l.text == "still here"));
    for p in &mut players[1..] {
        p.msg(&ChatIn::Say { text: "me too".into() }).await;
        assert!(matches!(next_line(p).await, ChatOut::Line(l) if l.text == "me too"));
    }

    // Once a room is empty and closed (after rooms.empty_grace_ms), the refused player gets one.
    drop(players.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        tx.send(&ClientEnvelope::Join { game: "chat".into(), room: "c4".into() }).await.unwrap();
        match rx.envelope(WAIT).await.unwrap() {
            ServerEnvelope::Joined { room, .. } => {
                assert_eq!(room, "c4");
                break;
            }
            ServerEnvelope::Error { code: ErrorCode::ServerFull, .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("expected c4 to open once c3 closed, got {other:?}"),
        }
    }
    server.shutdown().await;
}

#[test]
fn the_instance_pool_follows_the_room_cap_and_a_pool_too_small_for_it_is_refused() {
    let load = |sets: &[&str]| Config::load(None, Vec::new(), &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let cfg = load(&["rooms.max_rooms=10000"]).unwrap();
    assert_eq!(cfg.limits.max_instances as usize, 10_000 + SPARE_INSTANCES);
    let cfg = load(&["limits.max_instances=64"]).unwrap();
    assert_eq!(cfg.rooms.max_rooms, 64 - SPARE_INSTANCES);
    let default = load(&[]).unwrap();
    assert_eq!((default.rooms.max_rooms, default.limits.max_instances as usize), (1_000, 1_000 + SPARE_INSTANCES));
    assert_eq!(default.limits, Config::default().limits, "the defaults agree with each other");
    let err = load(&["rooms.max_rooms=100", "limits.max_instances=100"]).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("limits.max_instances (100) must be above rooms.max_rooms (100)") && text.contains("unset"), "{text}");
}
