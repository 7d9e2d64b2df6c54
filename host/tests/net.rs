//! Playing over loopback with real WebSocket and TCP clients against the real listeners and plugins.

mod common;

use arena::{ArenaIn, ArenaOut, Dir};
use chat::{ChatIn, ChatOut};
use common::server::*;
use warden::net::envelope::{ClientEnvelope, ErrorCode, Format, ServerEnvelope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arena_over_websocket_and_tcp() {
    let server = start(&[]).await;
    let mut ws = player(&ws(&server, Format::MsgPack), "arena", "a1").await;
    let mut tcp = player(&tcp(&server), "arena", "a1").await;
    assert!(matches!(ws.next_msg::<ArenaOut>(|_| false).await, ArenaOut::Welcome { width: 16, .. }));
    assert!(matches!(tcp.next_msg::<ArenaOut>(|_| false).await, ArenaOut::Welcome { .. }));

    for (p, seq) in [(&mut ws, 1), (&mut tcp, 2)] {
        p.msg(&ArenaIn::Move { dir: Dir::Up, seq }).await;
        let moved = p.next_msg::<ArenaOut>(|m| !matches!(m, ArenaOut::Moved { .. })).await;
        assert!(matches!(moved, ArenaOut::Moved { seq: s, .. } if s == seq), "{moved:?}");
    }
    // Both see the room's state with both players in it.
    let both = |m: &ArenaOut| !matches!(m, ArenaOut::State { players, .. } if players.len() == 2);
    ws.next_msg::<ArenaOut>(both).await;
    tcp.next_msg::<ArenaOut>(both).await;

    tcp.tx.send(&ClientEnvelope::Leave).await.unwrap();
    ws.next_msg::<ArenaOut>(|m| !matches!(m, ArenaOut::State { players, .. } if players.len() == 1)).await;
    server.shutdown().await;
}

fn lines(msgs: &[ChatOut]) -> Vec<String> {
    msgs.iter().filter_map(|m| if let ChatOut::Line(l) = m { Some(format!("{}:{}", l.from, l.text)) } else { None }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_every_member_in_the_same_order() {
    let server = start(&[]).await;
    let mut players = vec![
        player(&ws(&server, Format::MsgPack), "chat", "c1").await,
        player(&ws(&server, Format::Json), "chat", "c1").await,
        player(&tcp(&server), "chat", "c1").await,
    ];
    for p in &mut players {
        assert!(matches!(p.next_msg::<ChatOut>(|_| false).await, ChatOut::History { .. }));
    }
    for round in 0..5 {
        for p in &mut players {
            p.msg(&ChatIn::Say { text: format!("line {round}") }).await;
        }
    }
    let mut seen = Vec::new();
    for p in &mut players {
        let mut got = Vec::new();
        while got.len() < 15 {
            got.push(p.next_msg::<ChatOut>(|m| !matches!(m, ChatOut::Line(_))).await);
        }
        seen.push(lines(&got));
    }
    assert_eq!(seen[0].len(), 15);
    assert_eq!(seen[0], seen[1], "the JSON client sees the same lines in the same order");
    assert_eq!(seen[0], seen[2], "the TCP client sees the same lines in the same order");
    for p in &players {
        let mine: Vec<&String> = seen[0].iter().filter(|l| l.starts_with(&format!("{}:", p.id))).collect();
        assert_eq!(mine.len(), 5, "each player's lines keep their own order: {mine:?}");
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_errors_name_the_problem() {
    let server = start(&["rooms.max_players=1"]).await;
    let _first = player(&ws(&server, Format::MsgPack), "arena", "full").await;
    let (mut tx, mut rx) = warden::net::client::connect(&tcp(&server)).await.unwrap();
    tx.send(&ClientEnvelope::Hello { token: None }).await.unwrap();
    rx.envelope(WAIT).await.unwrap();
    for (game, room, code) in
        [("arena", "full", ErrorCode::RoomFull), ("pong", "r", ErrorCode::UnknownGame), ("arena", "bad room!", ErrorCode::BadRoom)]
    {
        tx.send(&ClientEnvelope::Join { game: game.into(), room: room.into() }).await.unwrap();
        match rx.envelope(WAIT).await.unwrap() {
            ServerEnvelope::Error { code: c, fatal: false, message } => assert_eq!(c, code, "{message}"),
            other => panic!("{other:?}"),
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_room_closes_after_its_grace_period_and_a_new_join_reopens_it() {
    let server = start(&["rooms.empty_grace_ms=300"]).await;
    let mut p = player(&tcp(&server), "arena", "brief").await;
    assert_eq!(server.rooms().iter().map(|r| r.room.as_str()).collect::<Vec<_>>(), ["brief"]);
    p.tx.send(&ClientEnvelope::Leave).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server.rooms().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the empty room did not close");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    p.tx.send(&ClientEnvelope::Join { game: "arena".into(), room: "brief".into() }).await.unwrap();
    let joined = loop {
        match p.rx.envelope(WAIT).await.unwrap() {
            j @ ServerEnvelope::Joined { .. } => break j,
            _ => continue,
        }
    };
    assert!(matches!(joined, ServerEnvelope::Joined { players: 1, .. }));
    assert_eq!(server.rooms().len(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_rooms_connections_and_saves() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(&[]).await;
    let _p = player(&tcp(&server), "arena", "h").await;
    let mut http = tokio::net::TcpStream::connect(server.ws_addr()).await.unwrap();
    http.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: serde_json::Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["ok"], true);
    assert_eq!(body["rooms"], 1);
    assert_eq!(body["connections"], 1);
    assert_eq!(body["saves"]["pending"], 0);
    server.shutdown().await;
}

/// A WebSocket connection reads into a small buffer (`net.ws_read_buffer_bytes`, 4 KiB): a frame many
/// times its size, up to the frame cap, still arrives whole. Here a 60,000-byte game message that arena
/// does not understand: its answer is arena's gameplay error (the payload was read and decoded whole),
/// and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_frame_far_larger_than_the_read_buffer_arrives_whole() {
    let server = start(&[]).await;
    let mut p = player(&ws(&server, Format::MsgPack), "arena", "big").await;
    let data = rmp_serde::to_vec_named(&serde_json::json!({ "type": "shout", "text": "x".repeat(60_000) })).unwrap();
    assert!(data.len() > 14 * 4096 && data.len() < 64 << 10, "{} bytes: over the read buffer, under the frame cap", data.len());
    p.tx.send(&ClientEnvelope::Msg { data }).await.unwrap();
    match p.next_error().await {
        ServerEnvelope::Error { code: ErrorCode::GameError, fatal: false, message } => assert!(message.contains("shout"), "{message}"),
        other => panic!("expected arena's error about the message, got {other:?}"),
    }
    p.msg(&ArenaIn::Move { dir: Dir::Left, seq: 1 }).await;
    let moved = p.next_msg::<ArenaOut>(|m| !matches!(m, ArenaOut::Moved { .. })).await;
    assert!(matches!(moved, ArenaOut::Moved { seq: 1, .. }), "{moved:?}");
    server.shutdown().await;
}
