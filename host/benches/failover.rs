//! `scripts/bench-fleet` (builds the plugins and a release `warden`, makes a database, and runs
//! `cargo bench -p warden --bench failover` with `WARDEN_BENCH_DATABASE_URL` naming it and `WARDEN_BIN`
//! the release binary; the bench empties that database)
//!
//! Failover of a three-host fleet, with the default lease times (`heartbeat_ms` 1000, `lease_ms` 5000,
//! `lease_margin_ms` 1500), under `warden bots` load on every host. Each room has a probe player that
//! sends a move every 20 ms; a trial stops the host that runs the most rooms, and the figure of each of
//! its rooms is the time from the stop to the probe's first answer from the room's new host (the probe
//! notices the loss, connects to another host, is redirected to the new owner, rejoins and resends).
//! Two kinds of trial:
//! - `kill -9`: the host's database session closes with the process, so the fleet sees it dead at once;
//! - `SIGSTOP`: a paused host keeps its session open; it is judged by its lease running out (the same as
//!   a network partition), then its rooms move. It is resumed (it finds its lease lapsed and fences
//!   itself) and stopped for good before the next trial.
//!
//! Also: the queries per second the idle fleet sends PostgreSQL (heartbeats and scans for rooms without
//! an owner), from `pg_stat_database`. `WARDEN_BENCH_TRIALS` (default 20) trials of each kind.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use warden::commands::bots::{self, BotGame, BotsArgs};
use warden::net::client::{self, Endpoint, Received};
use warden::net::envelope::{ClientEnvelope, ServerEnvelope};
use warden::storage::postgres::PgStore;

#[path = "../../tests/e2e/fleet_rig.rs"]
mod fleet_rig;
use fleet_rig::{Host, busiest, host, live, owners, wait_for};

const SECRET: &str = "failover-bench-secret-0001";
const ROOMS: usize = 6;
const HOSTS: [&str; 3] = ["a", "b", "c"];
/// How long a probe waits for an answer before it tries another host.
const STALL: Duration = Duration::from_millis(1000);

fn signal(pid: &str, sig: &str) {
    assert!(std::process::Command::new("kill").args([sig, pid]).status().unwrap().success());
}

/// What a probe saw: when it lost its room and when each answer came.
#[derive(Default)]
struct Probe {
    answers: Vec<Instant>,
}

/// A probe player in room `room`: a move every 20 ms; on a lost connection or a move notice it joins
/// again (trying each host in turn) and resends what was not answered.
async fn probe(room: String, index: usize, endpoints: Vec<Endpoint>, seen: Arc<Mutex<Probe>>, stop: CancellationToken) {
    let player = format!("probe-{index}");
    let token = warden::net::auth::mint(SECRET.as_bytes(), &player, warden::net::auth::unix_now() + 3600);
    let (mut next, mut unanswered) = (1u64, std::collections::BTreeSet::<u64>::new());
    let mut attempt = index;
    'connection: while !stop.is_cancelled() {
        attempt += 1;
        let endpoint = &endpoints[attempt % endpoints.len()];
        // A paused host accepts connections (its kernel does) and answers nothing: give up on it soon.
        let Ok(Ok(mut joined)) = tokio::time::timeout(STALL, client::join_room(endpoint, Some(token.clone()), "arena", &room)).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        for seq in unanswered.clone() {
            let data = rmp_serde::to_vec_named(&serde_json::json!({"type": "move", "dir": "up", "seq": seq})).unwrap();
            if joined.tx.send(&ClientEnvelope::Msg { data }).await.is_err() {
                continue 'connection;
            }
        }
        let mut moves = tokio::time::interval(Duration::from_millis(20));
        let mut last_answer = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                // Moves and no answer for a while: the host is paused or cut off; try another.
                _ = tokio::time::sleep_until((last_answer + STALL).into()), if !unanswered.is_empty() => continue 'connection,
                _ = moves.tick() => {
                    let data = rmp_serde::to_vec_named(&serde_json::json!({"type": "move", "dir": "up", "seq": next})).unwrap();
                    unanswered.insert(next);
                    next += 1;
                    if joined.tx.send(&ClientEnvelope::Msg { data }).await.is_err() {
                        continue 'connection;
                    }
                }
                received = joined.rx.recv() => match received {
                    Ok(Received::Envelope(ServerEnvelope::Msg { data })) => {
                        if let Ok(arena::ArenaOut::Moved { seq, .. }) = rmp_serde::from_slice(&data)
                            && unanswered.remove(&seq)
                        {
                            last_answer = Instant::now();
                            seen.lock().unwrap().answers.push(last_answer);
                        }
                    }
                    Ok(Received::Envelope(ServerEnvelope::Kicked { .. })) | Ok(Received::Closed(_)) | Err(_) => continue 'connection,
                    Ok(_) => {}
                },
            }
        }
    }
}

fn quantiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64();
    format!("p50 {:.2} s  p95 {:.2} s  max {:.2} s  ({} rooms)", q(0.5), q(0.95), q(1.0), v.len())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let Some(url) = std::env::var("WARDEN_BENCH_DATABASE_URL").ok() else {
        println!("failover: skipped (set WARDEN_BENCH_DATABASE_URL to a PostgreSQL database the bench may empty)");
        return;
    };
    let trials: usize = std::env::var("WARDEN_BENCH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let pg = PgStore::open(&url).await.unwrap();
    pg.execute("DROP SCHEMA public CASCADE").await.unwrap();
    pg.execute("CREATE SCHEMA public").await.unwrap();
    let pg = PgStore::open(&url).await.unwrap();
    let mut hosts: Vec<Host> = HOSTS.iter().map(|id| Host::new(id)).collect();
    for host in &mut hosts {
        host.start(&url, SECRET, &[]).await;
    }
    for id in HOSTS {
        wait_for(&format!("{id} is live"), || live(&pg, id)).await;
    }
    let endpoints: Vec<Endpoint> = hosts.iter().map(Host::endpoint).collect();

    // The idle fleet's queries.
    let commits = || async {
        let mut tx = pg.begin().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        n
    };
    let (before, at) = (commits().await, Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = (commits().await - before) as f64 / at.elapsed().as_secs_f64();

    let stop = CancellationToken::new();
    let load = BotsArgs::new(BotGame::Arena, 120, 4, 5.0, 3600.0, "load").fleet(endpoints[1..].to_vec());
    let bots = tokio::spawn({
        let (stop, first) = (stop.clone(), endpoints[0].clone());
        async move { bots::drive_until(&load, first, Some(SECRET.as_bytes().to_vec()), stop).await }
    });
    let probes: Vec<Arc<Mutex<Probe>>> = (0..ROOMS).map(|_| Arc::default()).collect();
    for (i, seen) in probes.iter().enumerate() {
        tokio::spawn(probe(format!("probe-{i}"), i, endpoints.clone(), seen.clone(), stop.clone()));
    }
    wait_for("every probe room is placed", || async { owners(&pg).await.keys().filter(|r| r.starts_with("probe-")).count() == ROOMS })
        .await;

    let mut results: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for (kind, sig) in [("kill -9", "-KILL"), ("SIGSTOP", "-STOP")] {
        for trial in 0..trials {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let probed: BTreeMap<String, String> = owners(&pg).await.into_iter().filter(|(r, _)| r.starts_with("probe-")).collect();
            let (victim, rooms) = busiest(&probed, &HOSTS);
            let rooms: Vec<usize> = rooms.iter().map(|r| r.trim_start_matches("probe-").parse().unwrap()).collect();
            let down = host(&mut hosts, victim);
            let pid = down.pid();
            let stopped = Instant::now();
            signal(&pid, sig);
            for &room in &rooms {
                let seen = probes[room].clone();
                wait_for(&format!("{kind} trial {trial}: probe-{room} answered again"), || {
                    let answered = seen.lock().unwrap().answers.last().is_some_and(|at| *at > stopped);
                    async move { answered }
                })
                .await;
                let first = *seen.lock().unwrap().answers.iter().find(|at| **at > stopped).unwrap();
                results.entry(kind).or_default().push(first - stopped);
            }
            if sig == "-STOP" {
                signal(&pid, "-CONT");
            }
            down.kill();
            down.start(&url, SECRET, &[]).await;
            wait_for(&format!("{victim} is back"), || live(&pg, victim)).await;
        }
    }
    stop.cancel();
    let report = bots.await.unwrap().unwrap();
    println!("failover of a 3-host fleet, heartbeat 1 s, lease 5 s, margin 1.5 s; 120 bot players + {ROOMS} probe rooms");
    for (kind, times) in results {
        println!("  {kind:<8} stop to first answer on the new host: {}", quantiles(times));
    }
    println!("  bots: {} moves, {} lost, {} duplicated, {} reconnects", report.sent, report.lost, report.duplicated, report.reconnects);
    println!("  idle fleet: {idle:.1} transactions/s on PostgreSQL (3 hosts: heartbeats and ownerless-room scans)");
}
