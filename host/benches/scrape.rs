//! `cargo bench -p warden --bench scrape` (after scripts/build-plugins)
//!
//! What `/metrics` costs, on a real in-process server (admin endpoint over HTTP, game threads on):
//! 1,000 arena rooms of 4 players at 20 Hz, each player moving 10 times a second (inputs put straight
//! into the rooms, outputs drained without a network), with health counts for 10 plugin versions.
//! - the time to answer one `GET /metrics` (target: under 10 ms);
//! - what a scraper every second costs the tick loop: periods of 8 s without scraping and with a scrape
//!   every second, alternated twice, compared on process CPU and tick p50/p99 in the same run.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use warden::config::Config;
use warden::net::envelope::Format;
use warden::room::{Kill, OutQueue, PlayerConn, RoomInput};
use warden_tests::cpu_seconds;

const ROOMS: usize = 1_000;
const PLAYERS: usize = 4;
const PERIOD: Duration = Duration::from_secs(8);
const TARGET_SCRAPE_MS: f64 = 10.0;

fn move_payload(seq: u64) -> Vec<u8> {
    rmp_serde::to_vec_named(&arena::ArenaIn::Move { dir: arena::Dir::Up, seq }).unwrap()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let data = tempfile::tempdir().unwrap();
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(warden_tests::wasm("arena"), plugins.join("arena.wasm")).unwrap();
    let sets = vec![
        "dev=true".to_string(),
        format!("plugin_dir={:?}", plugins.display().to_string()),
        format!("data_dir={:?}", data.path().display().to_string()),
        "net.ws_addr=\"127.0.0.1:0\"".into(),
        "net.tcp_addr=\"127.0.0.1:0\"".into(),
        "admin.addr=\"127.0.0.1:0\"".into(),
        "rooms.empty_grace_ms=3600000".into(),
        format!("rooms.max_rooms={ROOMS}"),
        "watchdog.enabled=false".into(),
    ];
    let config = Config::load(None, Vec::new(), &sets).unwrap();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    tokio_rt.block_on(async {
        let server = warden::server::Server::start(config).await.unwrap();
        let rooms = server.room_manager().clone();
        // Health counts for 10 versions, as a server keeps for versions it ran since it started.
        let game = rooms.game("arena").unwrap();
        for v in 0..10 {
            let mut counts = warden::health::Counts::default();
            for i in 0..1000 {
                counts.call(i % 700);
                counts.tick(i % 900, false);
            }
            game.health(&format!("0.1.{v}")).add(&counts);
        }
        let mut handles = Vec::new();
        for r in 0..ROOMS {
            for p in 0..PLAYERS {
                let (out, mut rx) = OutQueue::new(256, 1 << 20);
                let id: Arc<str> = format!("p{p}").into();
                let conn = PlayerConn {
                    id: id.clone(),
                    format: Format::MsgPack,
                    out,
                    kill: Kill::default(),
                    in_room: Arc::new(AtomicBool::new(false)),
                };
                let handle = rooms.join("arena", &format!("r{r}"), conn).await.unwrap();
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                handles.push((handle, id));
            }
        }
        for (i, (handle, id)) in handles.into_iter().enumerate() {
            tokio::spawn(async move {
                let period = Duration::from_millis(100);
                let phase = period.mul_f64((i % 97) as f64 / 97.0);
                let mut every = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
                for seq in 1.. {
                    every.tick().await;
                    if !handle.send(RoomInput::Msg { player: id.clone(), payload: move_payload(seq) }).await {
                        return;
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let client = server.admin_client();
        let text = client.metrics().await.unwrap();
        let series = text.lines().filter(|l| !l.starts_with('#')).count();

        // Periods without and with a scrape every second, alternated.
        let mut scrapes = Vec::new();
        let mut results: Vec<(&str, f64, u64, u64)> = Vec::new();
        for round in 0..4 {
            let scraping = round % 2 == 1;
            rooms.take_tick_times();
            let (cpu0, t0) = (cpu_seconds(), Instant::now());
            if scraping {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                while t0.elapsed() < PERIOD {
                    every.tick().await;
                    let started = Instant::now();
                    let text = client.metrics().await.unwrap();
                    scrapes.push(started.elapsed());
                    std::hint::black_box(text);
                }
            } else {
                tokio::time::sleep(PERIOD).await;
            }
            let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
            let ticks = rooms.take_tick_times();
            let name = if scraping { "scrape every 1 s" } else { "no scraping" };
            results.push((name, cpu / wall, ticks.value_at_quantile(0.5), ticks.value_at_quantile(0.99)));
        }
        scrapes.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("scrape: {ROOMS} arena rooms x {PLAYERS} players at 20 Hz, 10 moves/s each, health counts of 10 versions");
        println!("  exposition                 {:>10} series, {} bytes", series, text.len());
        println!(
            "  GET /metrics               {:>10.2} ms median, {:.2} ms min, {:.2} ms max over {} scrapes (target < {TARGET_SCRAPE_MS} ms)",
            ms(scrapes[scrapes.len() / 2]),
            ms(scrapes[0]),
            ms(*scrapes.last().unwrap()),
            scrapes.len()
        );
        for (name, cores, p50, p99) in &results {
            println!("  {name:<18} CPU {cores:>5.2} cores, tick p50 {p50:>5} us, p99 {p99:>6} us");
        }
        let cpu = |scraping: bool| {
            let v: Vec<f64> = results.iter().filter(|r| (r.0 == "scrape every 1 s") == scraping).map(|r| r.1).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        println!(
            "  a 1 s scrape costs         {:>10.3} cores ({:+.1}% of the tick loop's CPU)",
            cpu(true) - cpu(false),
            100.0 * (cpu(true) / cpu(false) - 1.0)
        );
        let verdict = if ms(scrapes[scrapes.len() / 2]) < TARGET_SCRAPE_MS { "met" } else { "MISSED" };
        println!("  target: median scrape under {TARGET_SCRAPE_MS} ms: {verdict}");
        server.shutdown().await;
    });
}
