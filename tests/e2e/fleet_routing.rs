//! Routing in a fleet: two real `warden serve` hosts on one PostgreSQL (`WARDEN_TEST_DATABASE_URL`;
//! skipped, and listed as skipped, without it). A player on host a who joins a room placed on host b is
//! answered `redirect` with b's address and a seat token; with it, b admits that player to that room
//! only. A seat token that was altered, minted for another host or has expired is refused, naming why.

use std::time::{Duration, Instant};
use warden::net::client::{self, ClientRx, ClientTx, Endpoint, Received};
use warden::net::envelope::{ClientEnvelope, ErrorCode, Format, ServerEnvelope};
use warden::net::seat::{PREFIX, SEAT_TTL, Seats};
use warden::storage::postgres::PgStore;
use warden_tests::{Serve, TestStore};

mod shared;
use shared::health;

const SECRET: &str = "fleet-routing-secret-0001";

fn start(dir: &std::path::Path, id: &str, url: &str) -> Serve {
    let sets =
        [format!("storage.url={url:?}"), format!("auth.secret={SECRET:?}"), "fleet.enabled=true".into(), format!("fleet.host_id={id:?}")];
    let args: Vec<String> = sets.into_iter().flat_map(|s| ["--set".to_string(), s]).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Serve::start(dir, &["arena"], &args)
}

async fn serving(serve: &Serve) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(serve).await.0 != 200 {
        assert!(Instant::now() < deadline, "{} serves rooms within 60 s", serve.ws);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connect(serve: &Serve) -> (ClientTx, ClientRx) {
    client::connect(&Endpoint::Ws(serve.ws.clone(), Format::MsgPack)).await.unwrap()
}

fn token(player: &str) -> String {
    warden::net::auth::mint(SECRET.as_bytes(), player, warden::net::auth::unix_now() + 3600)
}

/// Says hello with `token`; the welcome's player id, or the fatal error's code and message.
async fn hello(tx: &mut ClientTx, rx: &mut ClientRx, token: String) -> Result<String, (ErrorCode, String)> {
    tx.send(&ClientEnvelope::Hello { token: Some(token) }).await.unwrap();
    match rx.envelope(Duration::from_secs(30)).await.unwrap() {
        ServerEnvelope::Welcome { player, .. } => Ok(player),
        ServerEnvelope::Error { code, message, fatal: true } => Err((code, message)),
        other => panic!("hello: {other:?}"),
    }
}

async fn join(tx: &mut ClientTx, rx: &mut ClientRx, room: &str) -> ServerEnvelope<bytes::Bytes> {
    tx.send(&ClientEnvelope::Join { game: "arena".into(), room: room.into() }).await.unwrap();
    loop {
        match rx.recv_within(Duration::from_secs(30)).await.unwrap() {
            Received::Envelope(ServerEnvelope::Msg { .. }) => {}
            Received::Envelope(env) => return env,
            Received::Closed(why) => panic!("join {room}: closed: {why:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_for_a_room_on_another_host_is_redirected_there_with_a_seat_for_that_room_only() {
    let Some(store) = TestStore::postgres("fleet_routing").await else { return };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path(), "a", &store.url);
    let b = start(dir_b.path(), "b", &store.url);
    serving(&a).await;
    serving(&b).await;

    // ann opens r0 on a (a new room goes to the asking host when the loads tie); a now runs one room
    // more than b, so r1, asked for on a as well, is placed on b.
    let (mut tx, mut rx) = connect(&a).await;
    assert_eq!(hello(&mut tx, &mut rx, token("ann")).await.unwrap(), "ann");
    assert!(matches!(join(&mut tx, &mut rx, "r0").await, ServerEnvelope::Joined { .. }));
    let (mut tx, mut rx) = connect(&a).await;
    hello(&mut tx, &mut rx, token("bob")).await.unwrap();
    let ServerEnvelope::Redirect { game, room, host, address, seat, seat_ttl_ms } = join(&mut tx, &mut rx, "r1").await else {
        panic!("r1 is placed on b, the least-loaded host")
    };
    assert_eq!((game.as_str(), room.as_str(), host.as_str(), address.as_str()), ("arena", "r1", "b", b.ws.as_str()));
    assert!(seat.starts_with(PREFIX), "{seat}");
    assert_eq!(seat_ttl_ms, SEAT_TTL.as_millis() as u64);
    // Asked again, on either host, r1 stays where it was placed.
    let (mut tx2, mut rx2) = connect(&a).await;
    hello(&mut tx2, &mut rx2, token("cat")).await.unwrap();
    assert!(matches!(join(&mut tx2, &mut rx2, "r1").await, ServerEnvelope::Redirect { host, .. } if host == "b"));

    // The seat admits bob on b, to r1 only.
    let (mut tx, mut rx) = connect(&b).await;
    assert_eq!(hello(&mut tx, &mut rx, seat.clone()).await.unwrap(), "bob", "the seat carries the player a authenticated");
    let ServerEnvelope::Error { code: ErrorCode::BadToken, message, fatal: false } = join(&mut tx, &mut rx, "r0").await else {
        panic!("a seat is for its room only")
    };
    assert!(message.contains("r1"), "{message}");
    assert!(matches!(join(&mut tx, &mut rx, "r1").await, ServerEnvelope::Joined { room, .. } if room == "r1"));

    // On a, the host it was not minted for, the seat is refused.
    let (mut tx, mut rx) = connect(&a).await;
    let (code, message) = hello(&mut tx, &mut rx, seat.clone()).await.unwrap_err();
    assert_eq!(code, ErrorCode::BadToken);
    assert!(message.contains("for host b"), "{message}");
    // Altered, it does not verify.
    let (mut tx, mut rx) = connect(&b).await;
    let forged = format!("{}A", &seat[..seat.len() - 1]).replace("seat:", "seat:e");
    let (code, message) = hello(&mut tx, &mut rx, forged).await.unwrap_err();
    assert_eq!(code, ErrorCode::BadToken);
    assert!(message.contains("does not verify"), "{message}");
    // Minted with the fleet's secret (from PostgreSQL) but expired: refused as expired; and the same
    // secret's fresh seat is taken, so the secret is the one the hosts use.
    let pg = PgStore::open(&store.url).await.unwrap();
    let seats = Seats { host: "a".into(), secret: pg.fleet_secret("seat").await.unwrap() };
    let now = warden::net::auth::unix_now();
    let (mut tx, mut rx) = connect(&b).await;
    let (code, message) = hello(&mut tx, &mut rx, seats.mint("dan", "arena", "r1", "b", now - 2 * SEAT_TTL.as_secs())).await.unwrap_err();
    assert_eq!(code, ErrorCode::BadToken);
    assert!(message.contains("expired"), "{message}");
    let (mut tx, mut rx) = connect(&b).await;
    assert_eq!(hello(&mut tx, &mut rx, seats.mint("dan", "arena", "r1", "b", now)).await.unwrap(), "dan");
}
