//! What the end-to-end tests of durable rooms and of the fleet share: a server's `/health`, the
//! players' move counts in arena's rooms (the state every answered move must be in, once), and a player's
//! move and its answer. (Each test file uses what it needs of it.)
#![allow(dead_code)]

use base64::Engine as _;
use std::collections::HashMap;
use warden::net::client::{ClientRx, ClientTx, Received};
use warden::net::envelope::{ClientEnvelope, ServerEnvelope};
use warden_tests::Serve;

/// Every player's move count in the state of rooms r0.. of arena on `serve` (waiting, up to 60 s, for
/// each to be open there).
pub async fn room_moves(serve: &Serve, dir: &std::path::Path, rooms: usize) -> HashMap<String, u64> {
    room_moves_where(serve, dir, rooms, |_| true).await
}

/// [`room_moves`], waiting only for the rooms `required` names; another is read if it is open now (a
/// kill can come before a room's first players were told they joined: nothing of it need survive).
pub async fn room_moves_where(
    serve: &Serve,
    dir: &std::path::Path,
    rooms: usize,
    required: impl Fn(usize) -> bool,
) -> HashMap<String, u64> {
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap().trim().to_string();
    let admin = warden::admin::Client::new(serve.admin, token);
    let mut moves = HashMap::new();
    for room in 0..rooms {
        // A room the host takes over opens a moment after the host serves again.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let snapshot = loop {
            match admin.room_dump("arena", &format!("r{room}")).await {
                Ok(dump) if dump.snapshot.is_some() => break Some(dump.snapshot.unwrap()),
                _ if !required(room) => break None,
                other => assert!(std::time::Instant::now() < deadline, "room r{room} is open within 60 s: {:?}", other.err()),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let Some(snapshot) = snapshot else { continue };
        let bytes = base64::engine::general_purpose::STANDARD.decode(snapshot).unwrap();
        let state: arena::Arena = rmp_serde::from_slice(&bytes).unwrap();
        // Those it handed `on-leave` when it resumed (their connections were gone) are departed until they
        // rejoin.
        for (id, p) in state.departed.into_iter().chain(state.players) {
            moves.insert(id, p.moves);
        }
    }
    moves
}

/// `GET /health` of a running server: the status code and the body.
pub async fn health(serve: &Serve) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = serve.ws.trim_start_matches("ws://").trim_end_matches("/ws").to_string();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.0\r\nHost: warden\r\n\r\n").await.unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).await.unwrap();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| serde_json::from_str(b).unwrap_or_default()).unwrap_or_default();
    (status, body)
}

/// Waits (up to 60 s) until `done`.
pub async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// What came back for an arena move.
pub enum Outcome {
    /// Its answer.
    Answered,
    /// A `kicked` notice first (the room moved, say), with its reason.
    Kicked(String),
    /// The connection ended first.
    Closed,
}

/// Sends arena move `seq` as `player` (its direction from `seq` and `index`) and reads until its answer,
/// a `kicked` notice or the end of the connection; any `error` fails the test, as does silence for 60 s.
pub async fn play_move(tx: &mut ClientTx, rx: &mut ClientRx, player: &str, index: usize, seq: u64) -> Outcome {
    let dirs = ["up", "right", "down", "left"];
    let data = rmp_serde::to_vec_named(&serde_json::json!({"type": "move", "dir": dirs[(seq as usize + index) % 4], "seq": seq})).unwrap();
    if tx.send(&ClientEnvelope::Msg { data }).await.is_err() {
        return Outcome::Closed;
    }
    loop {
        match rx.recv_within(std::time::Duration::from_secs(60)).await {
            Ok(Received::Envelope(ServerEnvelope::Msg { data })) => {
                if let Ok(arena::ArenaOut::Moved { seq: s, .. }) = rmp_serde::from_slice(&data)
                    && s == seq
                {
                    return Outcome::Answered;
                }
            }
            Ok(Received::Envelope(ServerEnvelope::Kicked { reason })) => return Outcome::Kicked(reason),
            Ok(Received::Envelope(ServerEnvelope::Error { code, message, .. })) => panic!("{player}: move {seq}: {code:?} {message}"),
            Ok(Received::Envelope(_)) => {}
            Ok(Received::Closed(_)) => return Outcome::Closed,
            Err(e) => panic!("{player}: move {seq}: {e:#}"),
        }
    }
}
