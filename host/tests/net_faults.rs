//! Bad input, each from one offending connection while a bystander keeps playing in the same server:
//! the offender gets an `error` envelope (and, when fatal, the connection closes with that reason);
//! nobody else notices.

mod common;

use arena::{ArenaIn, ArenaOut, Dir};
use common::server::*;
use warden::net::auth;
use warden::net::client::{self, ClientRx, ClientTx, Endpoint};
use warden::net::envelope::{ClientEnvelope, ErrorCode, Format, ServerEnvelope};

const LIMITS: &[&str] = &["net.handshake_timeout_ms=300", "net.msgs_per_sec=20", "net.burst=20"];

/// The bystander moves and must get its answer.
async fn still_plays(p: &mut Player, seq: u64) {
    p.msg(&ArenaIn::Move { dir: Dir::Left, seq }).await;
    let moved = p.next_msg::<ArenaOut>(|m| !matches!(m, ArenaOut::Moved { .. })).await;
    assert!(matches!(moved, ArenaOut::Moved { seq: s, .. } if s == seq), "{moved:?}");
}

async fn connect(endpoint: &Endpoint) -> (ClientTx, ClientRx) {
    client::connect(endpoint).await.unwrap()
}

async fn hello(tx: &mut ClientTx, rx: &mut ClientRx) {
    tx.send(&ClientEnvelope::Hello { token: None }).await.unwrap();
    assert!(matches!(rx.envelope(WAIT).await.unwrap(), ServerEnvelope::Welcome { guest: true, .. }));
}

/// Asserts the connection closes after a fatal `error` with `code`.
async fn closed_with(rx: &mut ClientRx, code: ErrorCode) {
    let (error, _) = until_closed(rx).await;
    match error {
        Some(ServerEnvelope::Error { code: c, fatal: true, message }) => {
            assert_eq!(c, code, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a fatal {code:?} error before the close, got {other:?}"),
    }
}

/// Asserts a non-fatal `error` with `code` and that the connection still answers a ping.
async fn refused_but_open(tx: &mut ClientTx, rx: &mut ClientRx, code: ErrorCode) {
    match rx.envelope(WAIT).await.unwrap() {
        ServerEnvelope::Error { code: c, fatal: false, message } => assert_eq!(c, code, "{message}"),
        other => panic!("expected {code:?}, got {other:?}"),
    }
    tx.send(&ClientEnvelope::Ping { nonce: 77 }).await.unwrap();
    assert!(matches!(rx.envelope(WAIT).await.unwrap(), ServerEnvelope::Pong { nonce: 77 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_affects_only_its_connection() {
    let server = start(LIMITS).await;
    let (wsb, wsj, tcp) = (ws(&server, Format::MsgPack), ws(&server, Format::Json), tcp(&server));
    let mut bystander = player(&wsb, "arena", "b").await;
    let mut seq = 0;
    let mut check = async |p: &mut Player| {
        seq += 1;
        still_plays(p, seq).await;
    };
    check(&mut bystander).await;

    // An oversized frame, over WebSocket and over TCP.
    for endpoint in [&wsb, &tcp] {
        let (mut tx, mut rx) = connect(endpoint).await;
        hello(&mut tx, &mut rx).await;
        tx.send_frame(vec![0x90; 70_000], false).await.unwrap();
        closed_with(&mut rx, ErrorCode::FrameTooLarge).await;
        check(&mut bystander).await;
    }

    // Malformed MessagePack (binary frame, and TCP).
    for endpoint in [&wsb, &tcp] {
        let (mut tx, mut rx) = connect(endpoint).await;
        tx.send_frame(b"\xc1\xc1 not msgpack".to_vec(), false).await.unwrap();
        closed_with(&mut rx, ErrorCode::BadFrame).await;
        check(&mut bystander).await;
    }

    // Malformed JSON (text frame).
    let (mut tx, mut rx) = connect(&wsj).await;
    tx.send_frame(b"{\"type\": \"hello\", oops".to_vec(), true).await.unwrap();
    closed_with(&mut rx, ErrorCode::BadFrame).await;
    check(&mut bystander).await;

    // An unknown envelope: refused, the connection stays usable.
    let (mut tx, mut rx) = connect(&wsj).await;
    hello(&mut tx, &mut rx).await;
    tx.send_frame(br#"{"type":"dance","style":"tango"}"#.to_vec(), true).await.unwrap();
    refused_but_open(&mut tx, &mut rx, ErrorCode::UnknownEnvelope).await;
    check(&mut bystander).await;

    // msg before join: refused, still open; and msg before hello: fatal.
    let (mut tx, mut rx) = connect(&tcp).await;
    hello(&mut tx, &mut rx).await;
    tx.send(&ClientEnvelope::Msg { data: rmp_serde::to_vec(&1).unwrap() }).await.unwrap();
    refused_but_open(&mut tx, &mut rx, ErrorCode::NotInRoom).await;
    let (mut tx, mut rx) = connect(&tcp).await;
    tx.send(&ClientEnvelope::Msg { data: rmp_serde::to_vec(&1).unwrap() }).await.unwrap();
    closed_with(&mut rx, ErrorCode::NotAuthenticated).await;
    check(&mut bystander).await;

    // Bad tokens: garbage, and a token signed with another secret.
    for token in ["garbage".to_string(), auth::mint(b"another-secret-0123", "mallory", auth::unix_now() + 60)] {
        let (mut tx, mut rx) = connect(&wsb).await;
        tx.send(&ClientEnvelope::Hello { token: Some(token) }).await.unwrap();
        closed_with(&mut rx, ErrorCode::BadToken).await;
        check(&mut bystander).await;
    }

    // A flood past the rate limit (burst 20).
    let (mut tx, mut rx) = connect(&tcp).await;
    hello(&mut tx, &mut rx).await;
    for nonce in 0..100 {
        if tx.send(&ClientEnvelope::Ping { nonce }).await.is_err() {
            break;
        }
    }
    closed_with(&mut rx, ErrorCode::RateLimited).await;
    check(&mut bystander).await;

    // A client that never says hello is closed at the handshake timeout (300 ms here).
    let (_tx, mut rx) = connect(&wsb).await;
    closed_with(&mut rx, ErrorCode::Timeout).await;
    check(&mut bystander).await;

    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_names_the_player() {
    let server = start(&[]).await;
    let token = auth::mint(b"test-secret-0123456789", "ann", auth::unix_now() + 60);
    let (mut tx, mut rx) = connect(&tcp(&server)).await;
    tx.send(&ClientEnvelope::Hello { token: Some(token) }).await.unwrap();
    match rx.envelope(WAIT).await.unwrap() {
        ServerEnvelope::Welcome { player, guest: false, .. } => assert_eq!(player, "ann"),
        other => panic!("{other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_not_buffered() {
    const SENT: usize = 300;
    // A 256 KiB outbound queue and no rate limit to speak of; echo answers every 60 KB message in kind.
    let server =
        start(&["net.outbound_queue_bytes=262144", "limits.max_send_bytes=65536", "net.msgs_per_sec=100000", "net.burst=100000"]).await;
    let mut bystander = player(&ws(&server, Format::MsgPack), "arena", "b").await;
    let mut hog = player(&tcp(&server), "echo", "e").await;
    let blob = serde_bytes::ByteBuf::from(vec![7u8; 60_000]);
    for _ in 0..SENT {
        if hog.tx.send(&ClientEnvelope::Msg { data: rmp_serde::to_vec(&blob).unwrap() }).await.is_err() {
            break;
        }
    }
    still_plays(&mut bystander, 1).await;
    // Now read: the server must have closed the connection rather than queue all 300 answers.
    let mut echoed = 0;
    let (error, _) = loop {
        match hog.rx.recv_within(WAIT).await.expect("the hog is disconnected") {
            warden::net::client::Received::Envelope(ServerEnvelope::Msg { .. }) => echoed += 1,
            warden::net::client::Received::Envelope(err @ ServerEnvelope::Error { .. }) => break (Some(err), ()),
            warden::net::client::Received::Envelope(_) => {}
            warden::net::client::Received::Closed(_) => break (None, ()),
        }
    };
    assert!(echoed < SENT, "all {SENT} answers were buffered for a client that did not read");
    if let Some(ServerEnvelope::Error { code, .. }) = error {
        assert_eq!(code, ErrorCode::SlowConsumer);
    }
    still_plays(&mut bystander, 2).await;
    server.shutdown().await;
}

/// After `hello` the idle timeout applies: a client that keeps sending stays connected for several idle
/// periods (the session's timer is set once and moved on lazily), and once silent it is closed at the
/// idle timeout, not at the far longer handshake deadline it was first set to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_player_is_closed_at_the_idle_timeout_and_a_talking_one_is_not() {
    let server = start(&["net.handshake_timeout_ms=600000", "net.idle_timeout_ms=1000"]).await;
    let (mut tx, mut rx) = connect(&ws(&server, Format::MsgPack)).await;
    hello(&mut tx, &mut rx).await;
    // Three idle periods of pings, ten to a period: every one answered.
    for nonce in 0..30 {
        tx.send(&ClientEnvelope::Ping { nonce }).await.unwrap();
        match rx.envelope(WAIT).await.unwrap() {
            ServerEnvelope::Pong { nonce: n } => assert_eq!(n, nonce),
            other => panic!("ping {nonce}: expected its pong, got {other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Silent from here: closed for idleness (`until_closed` gives up after a minute, well before the
    // handshake's ten).
    let (error, _) = until_closed(&mut rx).await;
    match error {
        Some(ServerEnvelope::Error { code: ErrorCode::Timeout, fatal: true, message }) => {
            assert!(message.contains("nothing received for 1000 ms"), "{message}")
        }
        other => panic!("expected the idle timeout, got {other:?}"),
    }
    server.shutdown().await;
}
