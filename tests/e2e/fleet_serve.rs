//! `warden serve` in a fleet, against a real PostgreSQL reached through a TCP proxy the test controls
//! (`WARDEN_TEST_DATABASE_URL`; skipped, and listed as skipped, without it). Real players on WebSockets
//! play arena while the proxy holds every byte (a partition: the room writer's commit and the lease's
//! renewal hang). The host must tell its players that their rooms moved while PostgreSQL is still away
//! and before PostgreSQL calls its lease expired; refuse joins meanwhile (`not_serving`) and say so on
//! `/health`; send nothing of a stopped room after that notice (the answers held for the hung commit are
//! dropped, not sent late); come back under a new incarnation once PostgreSQL answers; and lose no
//! answered move and apply none twice. `warden fleet` lists the host, and a graceful stop releases its
//! lease at once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden::net::client::{self, ClientRx, ClientTx, Endpoint, Received};
use warden::net::envelope::{ClientEnvelope, ErrorCode, Format, ServerEnvelope};
use warden::storage::hosts::HostRecord;
use warden::storage::postgres::PgStore;
use warden_tests::{Proxy, Serve, TestStore};

mod shared;
use shared::{Outcome, health, play_move, room_moves, wait_until};

const BOTS: usize = 6;
const PER_ROOM: usize = 2;
const SECRET: &str = "fleet-serve-test-secret-01";

/// What one player saw.
#[derive(Default)]
struct Seen {
    /// Its moves that were answered.
    answered: BTreeSet<u64>,
    /// When it was told its room moved, and the notice.
    kicks: Vec<(Instant, String)>,
    /// Joins refused with `not_serving` while the host had no lease.
    refused: usize,
    /// Game answers that arrived after the notice and before it was in a room again.
    late: Vec<String>,
}
type Shared = Arc<Mutex<Seen>>;

/// Generous lease times, so that a loaded machine's scheduling delays cannot lapse a lease that nothing
/// cut: renew every 250 ms, a 6 s lease, stop 2 s before it ends.
const FLEET: [&str; 5] =
    ["fleet.enabled=true", "fleet.host_id=\"h1\"", "fleet.heartbeat_ms=250", "fleet.lease_ms=6000", "fleet.lease_margin_ms=2000"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_loses_its_lease_moves_its_rooms_out_and_serves_again_with_nothing_lost() {
    let Some(store) = TestStore::postgres("fleet_serve_lapse").await else { return };
    let observer = PgStore::open(&store.url).await.unwrap();
    let (proxy, proxied) = Proxy::before_postgres(&store.url).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--set".to_string(), format!("storage.url={proxied:?}"), "--set".into(), format!("auth.secret={SECRET:?}")];
    for set in FLEET {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    let mut serve = Serve::start(dir.path(), &["arena"], &args.iter().map(String::as_str).collect::<Vec<_>>());

    let stopping = Arc::new(AtomicBool::new(false));
    let seen: Vec<Shared> = (0..BOTS).map(|_| Shared::default()).collect();
    let bots: Vec<_> = (0..BOTS).map(|i| tokio::spawn(bot(i, serve.ws.clone(), seen[i].clone(), stopping.clone()))).collect();
    let total = || seen.iter().map(|s| s.lock().unwrap().answered.len()).sum::<usize>();
    wait_until("play is under way", || total() >= 4 * BOTS).await;
    let (status, body) = health(&serve).await;
    assert_eq!(status, 200, "{body}");
    let listed = fleet_command(&store.url);
    assert!(listed.iter().any(|h| h["id"] == "h1" && h["incarnation"] == 1 && h["live"] == true), "warden fleet --json: {listed:?}");

    // PostgreSQL stops answering; nothing is closed.
    proxy.blackhole();
    let expired = Arc::new(Mutex::new(None::<Instant>));
    let watcher = tokio::spawn({
        let expired = expired.clone();
        async move {
            while host(&observer, "h1").await.live {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            *expired.lock().unwrap() = Some(Instant::now());
            observer
        }
    });
    wait_until("every player is told its room moved", || seen.iter().all(|s| !s.lock().unwrap().kicks.is_empty())).await;
    let (status, body) = health(&serve).await;
    assert_eq!(status, 503, "/health reports that rooms are not served: {body}");
    assert!(body["not_serving"].as_str().is_some_and(|r| r.contains("lease")), "{body}");
    let admin = admin(&serve, dir.path());
    let metrics = admin.metrics().await.unwrap();
    assert!(metrics.contains("\nwarden_serving 0\n"), "/metrics shows it too");
    let observer =
        tokio::time::timeout(Duration::from_secs(60), watcher).await.expect("the database expires the lease within 60 s").unwrap();
    let expired_at = expired.lock().unwrap().expect("seen expiring");
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        let (told, notice) = &s.kicks[0];
        assert!(*told < expired_at, "bot-{i} was told before the database could give its room to another host");
        assert!(notice.contains("moved") && notice.contains("lease"), "bot-{i}: {notice}");
        assert!(s.refused > 0, "bot-{i}: a join while the host had no lease is refused with not_serving");
    }

    // PostgreSQL answers again: the host registers anew, and the players are back in their rooms.
    let before = total();
    proxy.heal();
    wait_until("play goes on after the host registered again", || total() >= before + 2 * BOTS).await;
    let h = host(&observer, "h1").await;
    assert!(h.live && h.incarnation == 2, "a host whose lease lapsed comes back as a new incarnation: {h:?}");
    assert!(admin.metrics().await.unwrap().contains("\nwarden_serving 1\n"));
    assert!(
        admin.metrics().await.unwrap().contains("warden_rooms_closed_total{plugin=\"arena\",reason=\"moved\"} 3"),
        "the rooms' closes are counted as moved"
    );
    stopping.store(true, Ordering::Relaxed);
    let mut connections = Vec::new();
    for bot in bots {
        connections.push(tokio::time::timeout(Duration::from_secs(120), bot).await.expect("every player finishes").unwrap());
    }
    let moves = room_moves(&serve, dir.path(), BOTS / PER_ROOM).await;
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        assert!(s.late.is_empty(), "bot-{i}: answers of a room that had moved arrived after the notice: {:?}", s.late);
        let n = s.answered.len() as u64;
        assert_eq!(moves.get(&format!("bot-{i}")).copied(), Some(n), "bot-{i}: every answered move is in the room, once");
    }
    let listed = fleet_command(&store.url);
    assert!(listed.iter().any(|h| h["id"] == "h1" && h["incarnation"] == 2 && h["live"] == true), "warden fleet --json: {listed:?}");

    // A graceful stop ends the lease at once: other hosts need not wait for it to run out.
    drop(connections);
    assert!(serve.terminate().success());
    let h = host(&observer, "h1").await;
    assert!(!h.live, "the lease was released at shutdown: {h:?}");
    eprintln!("fleet lapse: {} answered moves, none lost or applied twice", total());
}

/// A host without a fleet's PostgreSQL is refused at start, with the key to change.
#[test]
fn a_fleet_needs_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(warden_tests::warden_bin())
        .args(["serve", "--dev", "--set", "fleet.enabled=true", "--set"])
        .arg(format!("data_dir={:?}", dir.path().display().to_string()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("fleet.enabled needs storage.url"), "{stderr}");
}

/// `warden fleet --json` on `url`: the hosts it lists (and its table prints too). The JSON is an object
/// (`hosts`, `versions`, `rollout_leader`).
fn fleet_command(url: &str) -> Vec<serde_json::Value> {
    let run = |json: bool| {
        let mut command = std::process::Command::new(warden_tests::warden_bin());
        command.args(["fleet", "--set"]).arg(format!("storage.url={url:?}"));
        if json {
            command.arg("--json");
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "warden fleet: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let table = run(false);
    assert!(table.starts_with("HOST") && table.contains("h1"), "warden fleet:\n{table}");
    let json: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    json["hosts"].as_array().unwrap_or_else(|| panic!("warden fleet --json has a hosts list: {json}")).clone()
}

fn admin(serve: &Serve, dir: &std::path::Path) -> warden::admin::Client {
    let token = std::fs::read_to_string(dir.join("admin.token")).unwrap().trim().to_string();
    warden::admin::Client::new(serve.admin, token)
}

async fn host(observer: &PgStore, id: &str) -> HostRecord {
    observer.hosts().await.unwrap().into_iter().find(|h| h.id == id).unwrap_or_else(|| panic!("host {id} is registered"))
}

/// One player: joins its room (again, until the host serves) and moves one move at a time. Told that
/// its room moved, it keeps its connection and asks to join again; then sends again the move it was
/// waiting for (arena answers a move it already applied again instead of applying it twice). Once told to
/// stop and answered, it returns its connection, still in the room.
async fn bot(index: usize, ws: String, seen: Shared, stopping: Arc<AtomicBool>) -> (ClientTx, ClientRx) {
    let player = format!("bot-{index}");
    let room = format!("r{}", index / PER_ROOM);
    let (mut tx, mut rx) = loop {
        let token = warden::net::auth::mint(SECRET.as_bytes(), &player, warden::net::auth::unix_now() + 3600);
        let (mut tx, mut rx) = client::connect(&Endpoint::Ws(ws.clone(), Format::MsgPack)).await.unwrap();
        // Refused (not_serving) until the host has registered in the fleet.
        match client::handshake(&mut tx, &mut rx, Some(token), "arena", &room).await {
            Ok(_) => break (tx, rx),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut next = 1u64;
    let mut outstanding: Option<u64> = None;
    loop {
        let seq = match outstanding {
            Some(seq) => seq,
            None if stopping.load(Ordering::Relaxed) => return (tx, rx),
            None => {
                next += 1;
                next - 1
            }
        };
        outstanding = Some(seq);
        match play_move(&mut tx, &mut rx, &player, index, seq).await {
            Outcome::Answered => {
                seen.lock().unwrap().answered.insert(seq);
                outstanding = None;
            }
            // Then it sends the outstanding move again.
            Outcome::Kicked(reason) => {
                seen.lock().unwrap().kicks.push((Instant::now(), reason));
                rejoin(&mut tx, &mut rx, &room, &seen).await;
            }
            Outcome::Closed => panic!("{player}: the connection closed"),
        }
    }
}

/// Asks to join `room` every 50 ms until it is in it, counting refusals and any game answer on the way.
async fn rejoin(tx: &mut ClientTx, rx: &mut ClientRx, room: &str, seen: &Shared) {
    loop {
        tx.send(&ClientEnvelope::Join { game: "arena".into(), room: room.into() }).await.unwrap();
        loop {
            match rx.recv_within(Duration::from_secs(60)).await {
                Ok(Received::Envelope(ServerEnvelope::Joined { .. })) => return,
                Ok(Received::Envelope(ServerEnvelope::Error { code: ErrorCode::NotServing, .. })) => {
                    seen.lock().unwrap().refused += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    break;
                }
                Ok(Received::Envelope(ServerEnvelope::Msg { data })) => {
                    let answer = rmp_serde::from_slice::<serde_json::Value>(&data).map(|v| v.to_string()).unwrap_or_default();
                    seen.lock().unwrap().late.push(answer);
                }
                Ok(Received::Envelope(ServerEnvelope::Error { code, message, .. })) => panic!("rejoin: {code:?} {message}"),
                Ok(Received::Envelope(_)) => {}
                Ok(Received::Closed(why)) => panic!("rejoin: the connection closed: {why:?}"),
                Err(e) => panic!("rejoin: {e:#}"),
            }
        }
    }
}
