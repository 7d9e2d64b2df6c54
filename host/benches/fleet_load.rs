//! `scripts/bench-fleet` (with the failover bench; `WARDEN_BENCH_DATABASE_URL` names a database the
//! bench may empty, `WARDEN_BIN` the release binary)
//!
//! A three-host fleet under 1,000 `warden bots` players (250 arena rooms of 4, 2 moves a second each,
//! started on every host and following redirects): each host's per-tick group commit of its rooms'
//! durable journals (the commit count, and its duration p50/p99 from the hosts' own
//! `warden_room_commit_duration_seconds` histograms, whose buckets are powers of two microseconds), the
//! bots' answer times, and the transactions per second the fleet sends PostgreSQL, idle (heartbeats,
//! ownerless-room scans, the registry's event reads, health windows and the rollout lease) and under the
//! load. `WARDEN_BENCH_PLAYERS` (default 1000) and `WARDEN_BENCH_SECONDS` (default 30) change the load.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use warden::commands::bots::{self, BotGame, BotsArgs};
use warden::net::client::Endpoint;
use warden::storage::postgres::PgStore;

#[path = "../../tests/e2e/fleet_rig.rs"]
mod fleet_rig;
use fleet_rig::{Host, live, owners, wait_for};

const SECRET: &str = "fleet-load-bench-secret-01";
const HOSTS: [&str; 3] = ["a", "b", "c"];

/// A host's commit figures: commits, and the duration histogram's cumulative buckets (bound in
/// seconds, count).
#[derive(Clone, Default)]
struct Commits {
    count: f64,
    buckets: Vec<(f64, f64)>,
}

async fn commits(host: &Host) -> Commits {
    let text = host.admin().metrics().await.unwrap();
    let mut c = Commits::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("warden_room_commits_total ") {
            c.count = v.trim().parse().unwrap();
        } else if let Some(rest) = line.strip_prefix("warden_room_commit_duration_seconds_bucket{le=\"") {
            let (bound, value) = rest.split_once("\"} ").unwrap();
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().unwrap() };
            c.buckets.push((bound, value.trim().parse().unwrap()));
        }
    }
    c
}

/// The bucket bound holding quantile `q` of the commits between `before` and `after`.
fn quantile(before: &Commits, after: &Commits, q: f64) -> f64 {
    let deltas: Vec<(f64, f64)> =
        after.buckets.iter().map(|(b, n)| (*b, n - before.buckets.iter().find(|(x, _)| x == b).map_or(0.0, |(_, m)| *m))).collect();
    let total = deltas.last().map_or(0.0, |d| d.1);
    deltas.iter().find(|(_, n)| *n >= (total * q).ceil().max(1.0)).map_or(f64::NAN, |d| d.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let Some(url) = std::env::var("WARDEN_BENCH_DATABASE_URL").ok() else {
        println!("fleet_load: skipped (set WARDEN_BENCH_DATABASE_URL to a PostgreSQL database the bench may empty)");
        return;
    };
    let players: usize = std::env::var("WARDEN_BENCH_PLAYERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let seconds: u64 = std::env::var("WARDEN_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let pg = PgStore::open(&url).await.unwrap();
    pg.execute("DROP SCHEMA public CASCADE").await.unwrap();
    pg.execute("CREATE SCHEMA public").await.unwrap();
    let pg = PgStore::open(&url).await.unwrap();
    let mut hosts: Vec<Host> = HOSTS.iter().map(|id| Host::new(id)).collect();
    for host in &mut hosts {
        host.start(&url, SECRET, &["net.max_connections_per_ip=5000"]).await;
    }
    for id in HOSTS {
        wait_for(&format!("{id} is live"), || live(&pg, id)).await;
    }
    let endpoints: Vec<Endpoint> = hosts.iter().map(Host::endpoint).collect();
    let transactions = || async {
        let mut tx = pg.begin().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        n
    };
    let (before, at) = (transactions().await, Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = (transactions().await - before) as f64 / at.elapsed().as_secs_f64();

    let stop = CancellationToken::new();
    let load = BotsArgs::new(BotGame::Arena, players, 4, 2.0, 3600.0, "load").fleet(endpoints[1..].to_vec());
    let bots = tokio::spawn({
        let (stop, first) = (stop.clone(), endpoints[0].clone());
        async move { bots::drive_until(&load, first, Some(SECRET.as_bytes().to_vec()), stop).await }
    });
    let rooms = players.div_ceil(4);
    wait_for("every room is placed", || async { owners(&pg).await.len() == rooms }).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // every bot in its room
    let mut start = Vec::new();
    for host in &hosts {
        start.push(commits(host).await);
    }
    let (before, at) = (transactions().await, Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let loaded = (transactions().await - before) as f64 / at.elapsed().as_secs_f64();
    let elapsed = at.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for (host, before) in hosts.iter().zip(&start) {
        let after = commits(host).await;
        rows.push((host.id, after.count - before.count, quantile(before, &after, 0.5), quantile(before, &after, 0.99)));
    }
    let placed: BTreeMap<String, usize> = owners(&pg).await.into_values().fold(BTreeMap::new(), |mut m, h| {
        *m.entry(h).or_default() += 1;
        m
    });
    stop.cancel();
    let report = bots.await.unwrap().unwrap();

    println!("a 3-host fleet under {players} bot players ({rooms} arena rooms of 4, 2 moves/s each), {seconds} s, release build");
    for (id, n, p50, p99) in rows {
        println!(
            "  host {id}: {} rooms, {:.0} group commits/s, commit p50 <= {:.2} ms, p99 <= {:.2} ms",
            placed.get(id).copied().unwrap_or(0),
            n / elapsed,
            p50 * 1e3,
            p99 * 1e3
        );
    }
    println!(
        "  bots: {} moves, {} answered, {} lost, {} duplicated; answer p50 {:.1} ms, p99 {:.1} ms",
        report.sent, report.answered, report.lost, report.duplicated, report.rtt_p50_ms, report.rtt_p99_ms
    );
    println!(
        "  PostgreSQL: {idle:.1} transactions/s idle (3 hosts: heartbeats, scans, event reads, health windows, rollout lease), {loaded:.0} under load"
    );
}
