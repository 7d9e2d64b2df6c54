//! `cargo bench -p warden --bench swap` (after scripts/build-plugins)
//!
//! Hot-swap latency, broken down: file event to verified, compile cold vs cache hit, instantiate, the
//! per-room pause (snapshot + instantiate + restore) for a 16 KiB state, and from the file event (and
//! from the artifact being ready) until all 1,000 rooms run the new version. The tick time of every
//! room is compared between a quiet second and the swap. Baseline in the same run: the same snapshot +
//! instantiate + restore called directly on instances, outside any room.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use warden::config::Config;
use warden::deploy::{DeployEvent, Deployer, sign};
use warden::net::envelope::Format;
use warden::room::{Kill, OutQueue, PlayerConn, Rooms};
use warden::runtime::{InstanceEnv, Limits, MemorySaves, Runtime, manifest};
use warden::storage::Store;

const ROOMS: usize = 1_000;
const STATE: usize = 16 * 1024;

fn stamped(bytes: &[u8], version: &str) -> Vec<u8> {
    let mut m = manifest::read(bytes).unwrap();
    m.version = version.into();
    manifest::stamp(bytes, &m)
}

fn pct(h: &hdrhistogram::Histogram<u64>, q: f64) -> u64 {
    h.value_at_quantile(q)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let echo = warden_tests::wasm_bytes("echo");
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let (sk, _, pk) = sign::keygen().unwrap();
    let sk = sign::parse_secret_key(&sk).unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let temp = plugins.join(format!(".{name}.tmp"));
        std::fs::write(&temp, bytes).unwrap();
        std::fs::rename(&temp, plugins.join(name)).unwrap();
    };
    let drop_version = |version: &str| {
        let bytes = stamped(&echo, version);
        let file = format!("echo-{version}.wasm");
        put(&format!("{file}.minisig"), sign::sign(&bytes, &sk, "echo", version).unwrap().as_bytes());
        put(&file, &bytes);
    };

    // Compile cold vs cache hit, and instantiate, outside the server.
    // `WARDEN_BENCH_KEEP_RESIDENT=0` measures the swap with freed slots handing all their memory back.
    let keep_resident_bytes = warden_tests::bench_knob("WARDEN_BENCH_KEEP_RESIDENT", Limits::default().keep_resident_bytes as u64) as usize;
    let limits = Limits { max_instances: 2 * ROOMS as u32 + 50, keep_resident_bytes, ..Limits::default() };
    let cache = dir.path().join("cache");
    let cold = Runtime::new(limits.clone(), Some(cache.clone())).unwrap().load(&echo).unwrap().compile_time();
    let hit = Runtime::new(limits.clone(), Some(cache.clone())).unwrap().load(&echo).unwrap().compile_time();
    let rt = Arc::new(Runtime::new(limits.clone(), Some(cache)).unwrap());
    let plugin = rt.load(&echo).unwrap();
    let ballast = rmp_serde::to_vec_named(&HashMap::from([("ballast", STATE)])).unwrap();
    let info = warden::runtime::RoomInfo { id: "b".into(), game: "echo".into(), seed: 1, tick_hz: 20, max_players: 4 };
    let mut direct = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut instantiate = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut old = plugin.instantiate(InstanceEnv::standalone("b", 1)).unwrap();
    old.init(&info, &ballast).unwrap();
    for _ in 0..2_000 {
        let t = Instant::now();
        let state = old.snapshot().unwrap();
        let i = Instant::now();
        let mut new = plugin.instantiate(InstanceEnv::standalone("b", 1)).unwrap();
        instantiate.record(i.elapsed().as_nanos() as u64).unwrap();
        new.restore(&state, "0.0.1").unwrap();
        direct.record(t.elapsed().as_micros() as u64).unwrap();
        assert!(state.len() >= STATE);
        old = new;
    }
    drop(old);
    // The same, but every new instance in a slot never used before (as when 1,000 rooms move at once).
    let mut cold_slots = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    {
        let mut olds = Vec::new();
        for _ in 0..ROOMS {
            let mut o = plugin.instantiate(InstanceEnv::standalone("b", 1)).unwrap();
            o.init(&info, &ballast).unwrap();
            olds.push(o);
        }
        let mut news = Vec::new();
        for o in olds.iter_mut() {
            let t = Instant::now();
            let state = o.snapshot().unwrap();
            let mut new = plugin.instantiate(InstanceEnv::standalone("b", 1)).unwrap();
            new.restore(&state, "0.0.1").unwrap();
            cold_slots.record(t.elapsed().as_micros() as u64).unwrap();
            news.push(new);
        }
    }

    let tokio_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    tokio_rt.block_on(async {
        drop_version("1.0.0");
        let sets = vec![
            format!("plugin_dir={:?}", plugins.display().to_string()),
            format!("deploy.trusted_keys=[{pk:?}]"),
            "deploy.settle_ms=100".to_string(),
            "deploy.debounce_ms=20".to_string(),
            format!("plugins.echo.config.ballast={STATE}"),
            "rooms.empty_grace_ms=600000".to_string(),
            "rollout.strategy=\"immediate\"".to_string(),
        ];
        let config = Config::load(None, Vec::new(), &sets).unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("warden.db").display())).await.unwrap();
        let rooms = Rooms::new(HashMap::new(), config.rooms.clone(), Arc::new(MemorySaves::default()));
        let deployer = Arc::new(Deployer::new(rt.clone(), store, rooms.clone(), &config).unwrap());
        deployer.boot().await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let _task = deployer.clone().spawn(stop.clone()).unwrap();
        let mut events = deployer.subscribe();

        for r in 0..ROOMS {
            let (out, mut rx) = OutQueue::new(256, 1 << 20);
            let conn = PlayerConn {
                id: "p".into(),
                format: Format::MsgPack,
                out,
                kill: Kill::default(),
                in_room: Arc::new(AtomicBool::new(false)),
            };
            rooms.join("echo", &format!("r{r}"), conn).await.unwrap();
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        rooms.take_tick_times();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let quiet = rooms.take_tick_times();
        rooms.take_swap_times();

        let dropped = Instant::now();
        drop_version("1.0.1");
        let timings = match events.recv().await.unwrap() {
            DeployEvent::Deployed { timings, .. } => timings,
            other => panic!("{other:?}"),
        };
        let active_at = Instant::now();
        while rooms.versions("echo").get("1.0.1").copied().unwrap_or(0) < ROOMS {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let all_moved = active_at.elapsed();
        let from_drop = dropped.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let during = rooms.take_tick_times();
        let pauses = rooms.take_swap_times();
        stop.cancel();
        rooms.shutdown().await;

        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("hot swap: {ROOMS} echo rooms with a {} KiB state each, 20 Hz", STATE / 1024);
        println!("  compile, cold                    {:>9.1} ms", ms(cold));
        println!("  compile cache hit                {:>9.2} ms", ms(hit));
        println!(
            "  instantiate                      {:>9.1} us p50, {:.1} us p99",
            pct(&instantiate, 0.5) as f64 / 1e3,
            pct(&instantiate, 0.99) as f64 / 1e3
        );
        println!(
            "  file event -> verified           {:>9.1} ms (includes the {} ms settle time)",
            ms(timings.event_to_verified),
            config.deploy.settle_ms
        );
        println!("  compile in the deploy            {:>9.1} ms ({:?})", ms(timings.compile), timings.cache);
        println!("  smoke test                       {:>9.1} ms", ms(timings.smoke));
        println!("  file event -> active             {:>9.1} ms", ms(timings.event_to_active));
        println!("  active -> all {ROOMS} rooms moved   {:>9.1} ms  (target < 100 ms)", ms(all_moved));
        println!("  file written -> all rooms moved  {:>9.1} ms", ms(from_drop));
        println!(
            "  per-room pause                   {:>9} us p50, {} us p99, {} us max over {} rooms  (target p99 < 500 us)",
            pct(&pauses, 0.5),
            pct(&pauses, 0.99),
            pauses.max(),
            pauses.len()
        );
        println!(
            "  baseline: same calls direct      {:>9} us p50, {} us p99 (snapshot + instantiate + restore, no room)",
            pct(&direct, 0.5),
            pct(&direct, 0.99)
        );
        println!(
            "  baseline, fresh pool slots       {:>9} us p50, {} us p99 (the same, {ROOMS} instances side by side, no room)",
            pct(&cold_slots, 0.5),
            pct(&cold_slots, 0.99)
        );
        println!("  tick time, quiet second          {:>9} us p50, {} us p99 ({} ticks)", pct(&quiet, 0.5), pct(&quiet, 0.99), quiet.len());
        println!(
            "  tick time, during the swap       {:>9} us p50, {} us p99 ({} ticks)",
            pct(&during, 0.5),
            pct(&during, 0.99),
            during.len()
        );
    });
}
