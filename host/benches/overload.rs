//! `cargo bench -p warden --bench overload` (after scripts/build-plugins)
//!
//! Rooms that overload the machine must not starve the host. 50 `hog` rooms, each burning about 60% of
//! its 10 ms call budget in every 20 Hz tick (together about six cores' worth of work on this 2-core
//! machine), then, while they run: 40 `GET /health` round trips and 20 WebSocket handshakes (connect,
//! `hello`, `welcome`), one after another. Measured twice in the same run: with the game threads (rooms
//! on a runtime of their own at nice 5, the default) and without (rooms sharing the network threads, as
//! before), so the comparison holds on a noisy machine. Also printed: how late the rooms' ticks ran.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};
use warden::config::Config;
use warden::net::client::{self, Endpoint};
use warden::net::envelope::{ClientEnvelope, Format};

const ROOMS: usize = 50;

fn quantiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    format!("p50 {:>7.1} ms, p99 {:>7.1} ms, max {:>7.1} ms", q(0.5), q(0.99), q(1.0))
}

/// Iterations of `hog`'s busy loop that take about `target` of CPU in one tick.
fn calibrate(target: Duration) -> u64 {
    use warden::runtime::{InstanceEnv, Limits, RoomInfo, Runtime};
    let rt = Runtime::new(Limits { call_deadline_ms: 10_000, max_instances: 2, ..Limits::default() }, None).unwrap();
    let hog = rt.load(&warden_tests::wasm_bytes("hog")).unwrap();
    let mut inst = hog.instantiate(InstanceEnv::standalone("c", 1)).unwrap();
    inst.init(&RoomInfo { id: "c".into(), game: "hog".into(), seed: 1, tick_hz: 20, max_players: 4 }, &[]).unwrap();
    let mut n = 1_000_000u64;
    for _ in 0..4 {
        inst.on_message("p", &rmp_serde::to_vec(&format!("burn:{n}")).unwrap()).unwrap();
        let started = Instant::now();
        inst.on_tick(1, 50).unwrap();
        let took = started.elapsed().max(Duration::from_micros(10));
        n = ((n as f64) * target.as_secs_f64() / took.as_secs_f64()) as u64;
    }
    n
}

fn health(addr: std::net::SocketAddr) -> Duration {
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert!(out.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&out[..out.len().min(200)]));
    started.elapsed()
}

async fn run(game_threads: bool, burn: u64) {
    let data = tempfile::tempdir().unwrap();
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(warden_tests::wasm("hog"), plugins.join("hog.wasm")).unwrap();
    let sets = [
        "dev=true".to_string(),
        format!("plugin_dir={:?}", plugins.display().to_string()),
        format!("data_dir={:?}", data.path().display().to_string()),
        "net.ws_addr=\"127.0.0.1:0\"".into(),
        "net.tcp_addr=\"127.0.0.1:0\"".into(),
        "admin.addr=\"127.0.0.1:0\"".into(),
        "auth.secret=\"bench-secret-0123456789\"".into(),
        format!("rooms.game_threads={game_threads}"),
    ];
    let server = warden::server::Server::start(Config::load(None, Vec::new(), &sets).unwrap()).await.unwrap();
    let endpoint = Endpoint::Ws(format!("ws://{}/ws", server.ws_addr()), Format::MsgPack);
    // Every room first, then the load (joining 50 rooms while the first ones burn would itself time out
    // on the baseline).
    let mut players = Vec::new();
    for r in 0..ROOMS {
        let (mut tx, mut rx) = client::connect(&endpoint).await.unwrap();
        client::handshake(&mut tx, &mut rx, None, "hog", &format!("b{r}")).await.unwrap();
        players.push((tx, rx));
    }
    for (tx, _) in &mut players {
        tx.send(&ClientEnvelope::Msg { data: rmp_serde::to_vec(&format!("burn:{burn}")).unwrap() }).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = server.room_manager().take_tick_times();

    let addr = server.ws_addr();
    let healths = tokio::task::spawn_blocking(move || (0..40).map(|_| health(addr)).collect::<Vec<_>>()).await.unwrap();
    let (mut handshakes, mut failed) = (Vec::new(), 0);
    for _ in 0..20 {
        let started = Instant::now();
        let ok = async {
            let (mut tx, mut rx) = client::connect(&endpoint).await?;
            tx.send(&ClientEnvelope::Hello { token: None }).await?;
            match rx.envelope(Duration::from_secs(60)).await? {
                warden::net::envelope::ServerEnvelope::Welcome { .. } => anyhow::Ok(()),
                other => anyhow::bail!("{other:?}"),
            }
        }
        .await;
        handshakes.push(started.elapsed());
        failed += usize::from(ok.is_err());
    }
    // The rooms' own throughput over 3 s (they ask for 50 x 20 = 1,000 ticks a second, about three times
    // what two cores can run).
    let _ = server.room_manager().take_tick_times();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks = server.room_manager().take_tick_times();
    let label = if game_threads { "game threads (default)" } else { "rooms on the network threads" };
    println!("{label}:");
    println!("  GET /health round trip     {}", quantiles(healths));
    println!("  WebSocket handshake        {} ({failed} of 20 failed)", quantiles(handshakes));
    println!(
        "  room ticks                 {:>5.0} a second, each p50 {:.1} ms, p99 {:.1} ms",
        ticks.len() as f64 / 3.0,
        ticks.value_at_quantile(0.5) as f64 / 1e3,
        ticks.value_at_quantile(0.99) as f64 / 1e3,
    );
    drop(players);
    server.shutdown().await;
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let burn = calibrate(Duration::from_millis(6));
    println!("{ROOMS} rooms at 20 Hz, each tick burning {burn} iterations (about 6 ms of CPU)");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    for game_threads in [false, true, false, true] {
        rt.block_on(run(game_threads, burn));
    }
}
