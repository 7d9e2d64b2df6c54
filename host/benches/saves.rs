//! `cargo bench -p warden --bench saves`
//!
//! Saves per second through the save queue for 10,000 players with 1 KiB saves (normal priority), next to
//! a plain loop writing one save per transaction on the same kind of database in the same run; and the
//! latency of a critical save (submit to durable) while normal saves keep arriving; and one game's
//! critical saves while another game floods the queue (2,000 players re-saving 64 KiB each as fast as the
//! store takes them, the way a plugin saving from `on-tick` would), next to the same game alone, in the
//! same run. SQLite with WAL and synchronous=FULL: every commit is an fsync. Then the same on PostgreSQL
//! when `WARDEN_BENCH_DATABASE_URL` names a database (its saves are emptied before each part).

use std::time::{Duration, Instant};
use warden::runtime::{SaveBackend, SavePriority};
use warden::storage::queue::{QueueConfig, SaveQueue};
use warden::storage::{SaveWrite, Store};

const PLAYERS: usize = 10_000;
const SAVE_BYTES: usize = 1024;
const NAIVE_SAVES: usize = 1_000;
const ROUNDS: usize = 5;
const CRITICAL_SAMPLES: usize = 200;

fn save(round: usize, player: usize) -> Vec<u8> {
    // Game-like data that does not compress to nothing.
    (0..SAVE_BYTES).map(|i| ((i * 31 + player * 7 + round) % 251) as u8).collect()
}

/// Where the stores go: a SQLite file per part in a temporary directory, or one PostgreSQL database.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

async fn open(backend: &Backend, name: &str) -> Store {
    match backend {
        Backend::Sqlite(dir) => Store::open(&format!("sqlite://{}", dir.path().join(name).display())).await.unwrap(),
        Backend::Postgres(url) => {
            let store = Store::open(url).await.unwrap();
            if let Store::Postgres(pg) = &store {
                pg.execute("TRUNCATE player_saves").await.unwrap();
            }
            store
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(bench(Backend::Sqlite(tempfile::tempdir().unwrap()), "SQLite, WAL, synchronous=FULL"));
    if let Ok(url) = std::env::var("WARDEN_BENCH_DATABASE_URL") {
        rt.block_on(bench(Backend::Postgres(url), "PostgreSQL, synchronous_commit=on"));
    }
}

async fn bench(dir: Backend, label: &str) {
    {
        // A plain loop: one transaction per save.
        let naive = open(&dir, "naive.db").await;
        let started = Instant::now();
        for player in 0..NAIVE_SAVES {
            naive.write_saves(&[SaveWrite { game: "g".into(), player: format!("p{player}"), data: save(0, player) }]).await.unwrap();
        }
        let naive_rate = NAIVE_SAVES as f64 / started.elapsed().as_secs_f64();

        // The queue: 10,000 players' saves, written in batches.
        let store = open(&dir, "queue.db").await;
        let (queue, _writer) = SaveQueue::start(store, QueueConfig { flush_interval: Duration::from_secs(3600), ..QueueConfig::default() });
        let mut rates = Vec::new();
        for round in 0..ROUNDS {
            let started = Instant::now();
            for player in 0..PLAYERS {
                queue.submit("g", &format!("p{player}"), save(round, player), SavePriority::Normal);
            }
            queue.flush().await.unwrap();
            rates.push(PLAYERS as f64 / started.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        let queue_rate = rates[ROUNDS / 2];

        // Critical saves while normal saves keep coming (1,000 players per 100 ms, flushed every 1 s).
        let store = open(&dir, "critical.db").await;
        let (queue, _writer) = SaveQueue::start(store, QueueConfig::default());
        let background = {
            let queue = queue.clone();
            tokio::spawn(async move {
                for round in 0.. {
                    for player in 0..1_000 {
                        queue.submit("g", &format!("bg{player}"), save(round, player), SavePriority::Normal);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let latencies = critical_latencies(&queue, "g").await;
        background.abort();
        let (p50, p99, max) = percentiles(latencies);

        // Another game floods the queue; the calm game's critical saves, next to the calm game alone.
        let store = open(&dir, "two-games.db").await;
        let (queue, _writer) = SaveQueue::start(store, QueueConfig::default());
        let alone = critical_latencies(&queue, "calm-alone").await;
        let flood = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let data = vec![9u8; 64 << 10];
                for round in 0u64.. {
                    for player in 0..2_000 {
                        // What a room does: the flooding game's inputs wait while it is over its high water;
                        // its saves from on-tick keep coming (one per player: a newer one replaces the last).
                        let mut d = data.clone();
                        d[..8].copy_from_slice(&round.to_le_bytes());
                        queue.submit("flood", &format!("f{player}"), d, SavePriority::Normal);
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let flooded = critical_latencies(&queue, "calm").await;
        let flood_held = SaveBackend::backpressure(&queue, "flood");
        let calm_held = SaveBackend::backpressure(&queue, "calm");
        flood.abort();
        let (alone, flooded) = (percentiles(alone), percentiles(flooded));
        let ratio = queue_rate / naive_rate;
        println!("saves: {label}, {SAVE_BYTES}-byte saves");
        println!("  one transaction per save        {naive_rate:>10.0} saves/s ({NAIVE_SAVES} saves)");
        println!("  save queue, batched             {queue_rate:>10.0} saves/s ({PLAYERS} players, median of {ROUNDS} rounds)");
        println!("  batched / one-per-transaction   {ratio:>10.1}x   (target >= 20x: {})", if ratio >= 20.0 { "met" } else { "MISSED" });
        println!(
            "  critical save, submit->durable  p50 {p50:.2} ms  p99 {p99:.2} ms  max {max:.2} ms   (target p99 < 20 ms: {})",
            if p99 < 20.0 { "met" } else { "MISSED" }
        );
        println!("  another game flooding (2,000 players x 64 KiB, re-saved without pause):");
        println!("    calm game alone, critical save  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms", alone.0, alone.1, alone.2);
        println!("    calm game, flood running        p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms", flooded.0, flooded.1, flooded.2);
        println!(
            "    back-pressure: flooding game {}, calm game {}   (target: flood held, calm not: {})",
            if flood_held { "held" } else { "not held" },
            if calm_held { "held" } else { "not held" },
            if flood_held && !calm_held { "met" } else { "MISSED" }
        );
    }
}

/// Latencies of `CRITICAL_SAMPLES` critical saves of `game`, one every 5 ms.
async fn critical_latencies(queue: &SaveQueue, game: &str) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(CRITICAL_SAMPLES);
    for i in 0..CRITICAL_SAMPLES {
        let started = Instant::now();
        let ticket = queue.submit(game, &format!("buyer{}", i % 10), save(i, i), SavePriority::Critical);
        queue.durable(&ticket).await.unwrap();
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    latencies
}

/// p50, p99 and max, in milliseconds.
fn percentiles(mut latencies: Vec<Duration>) -> (f64, f64, f64) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = latencies.len();
    (ms(latencies[n / 2]), ms(latencies[n * 99 / 100]), ms(latencies[n - 1]))
}
