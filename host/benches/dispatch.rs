//! `cargo bench -p warden --bench dispatch`
//!
//! One `on-message` call with a 64-byte payload that the guest answers with one host call (`send`), three
//! ways in the same run:
//! - `warden`: through `PluginInstance` (per-call deadline, effect marks, error classification);
//! - `raw`: the same export through wasmtime's generated bindings on the same store, nothing else;
//! - `native`: the same game logic (`echo`) compiled natively, through the SDK's dispatch.
//!
//! Also: instantiation with the pooling allocator, and loading a plugin on a compile-cache hit.
//! It ends with an interleaved comparison of warden vs raw (both measured in alternating rounds, so
//! machine noise hits both alike) and prints the ratio against the 1.3x target.

use criterion::Criterion;
use std::hint::black_box;
use std::time::{Duration, Instant};
use warden::runtime::{InstanceEnv, Limits, PluginInstance, RoomInfo, Runtime};
use warden_sdk::testing::{Driver, TestHost};

const TARGET_RATIO: f64 = 1.3;
const TARGET_INSTANTIATE_US: f64 = 15.0;

fn payload() -> Vec<u8> {
    let bytes = rmp_serde::to_vec(&echo::Blob(vec![7u8; 62])).unwrap();
    assert_eq!(bytes.len(), 64, "bin8 header (2 bytes) + 62 bytes");
    bytes
}

fn room() -> RoomInfo {
    RoomInfo { id: "bench".into(), game: "echo".into(), seed: 1, tick_hz: 20, max_players: 4 }
}

struct Setup {
    rt: Runtime,
    plugin: warden::runtime::Plugin,
    cache_dir: tempfile::TempDir,
    bytes: Vec<u8>,
}

fn setup() -> Setup {
    setup_with(Limits::default())
}

fn setup_with(limits: Limits) -> Setup {
    let cache_dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_instances: 64, ..limits };
    let rt = Runtime::new(limits, Some(cache_dir.path().to_path_buf())).unwrap();
    let bytes = warden_tests::wasm_bytes("echo");
    let plugin = rt.load(&bytes).unwrap();
    Setup { rt, plugin, cache_dir, bytes }
}

fn warden_instance(s: &Setup) -> PluginInstance {
    let mut inst = s.plugin.instantiate(InstanceEnv::standalone("bench", 1)).unwrap();
    inst.init(&room(), &[]).unwrap();
    inst
}

fn raw_instance(s: &Setup) -> (wasmtime::Store<warden::runtime::HostState>, warden::runtime::bindings::Game) {
    let mut store = s.plugin.new_store(InstanceEnv::standalone("bench", 1));
    // The raw path sets no per-call deadline: one far-away deadline for the whole run.
    store.set_epoch_deadline(u64::MAX / 2);
    let game = s.plugin.pre().instantiate(&mut store).unwrap();
    game.call_init(&mut store, &room(), &[]).unwrap().unwrap();
    (store, game)
}

fn native_driver() -> (Driver<echo::Echo>, TestHost) {
    let mut host = TestHost::default();
    let mut driver = Driver::<echo::Echo>::new("0.1.0");
    driver.init(&mut host, &warden_sdk::RoomInfo::default(), &[]).unwrap();
    (driver, host)
}

fn bench(c: &mut Criterion, s: &Setup) {
    let payload = payload();
    let mut group = c.benchmark_group("dispatch/on-message-64B");
    {
        let mut inst = warden_instance(s);
        group.bench_function("warden", |b| {
            b.iter(|| {
                inst.on_message(black_box("p1"), black_box(&payload)).unwrap();
                inst.host_mut().clear_outbox();
            })
        });
    }
    {
        let (mut store, game) = raw_instance(s);
        group.bench_function("raw-wasmtime", |b| {
            b.iter(|| {
                game.call_on_message(&mut store, black_box("p1"), black_box(&payload)).unwrap().unwrap();
                store.data_mut().clear_outbox();
            })
        });
    }
    {
        let (mut driver, mut host) = native_driver();
        group.bench_function("native", |b| {
            b.iter(|| {
                driver.on_message(&mut host, black_box("p1"), black_box(&payload)).unwrap();
                host.sent.clear();
            })
        });
    }
    group.finish();

    // Dropping an instance (returning its memory to the pool) is not part of instantiating it: time
    // chunks of 32 instantiations (the pool has 64 slots) and drop each chunk outside the clock.
    c.bench_function("instantiate/pooling", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(32);
                let start = Instant::now();
                let made: Vec<_> = (0..n).map(|_| s.plugin.instantiate(InstanceEnv::standalone("bench", 1)).unwrap()).collect();
                total += start.elapsed();
                drop(black_box(made));
                left -= n;
            }
            total
        })
    });
    c.bench_function("load/cache-hit", |b| b.iter(|| black_box(s.rt.load(&s.bytes).unwrap())));
}

/// Median per-call time of `f` over `rounds` rounds of `calls` calls, interleaving with `g`.
fn interleaved(rounds: usize, calls: usize, mut f: impl FnMut(), mut g: impl FnMut()) -> (Duration, Duration) {
    let mut a = Vec::with_capacity(rounds);
    let mut b = Vec::with_capacity(rounds);
    let time = |h: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..calls {
            h();
        }
        start.elapsed() / calls as u32
    };
    for _ in 0..rounds {
        a.push(time(&mut f));
        b.push(time(&mut g));
    }
    a.sort();
    b.sort();
    (a[rounds / 2], b[rounds / 2])
}

fn summary(s: &Setup) {
    let payload = payload();
    let mut inst = warden_instance(s);
    let (mut store, game) = raw_instance(s);
    let (mut driver, mut host) = native_driver();
    // `WARDEN_BENCH_CALLS` shrinks the rounds (scripts/bench-peers --smoke runs a debug build).
    let calls = std::env::var("WARDEN_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let (warden, raw) = interleaved(
        41,
        calls,
        || {
            inst.on_message("p1", &payload).unwrap();
            inst.host_mut().clear_outbox();
        },
        || {
            game.call_on_message(&mut store, "p1", &payload).unwrap().unwrap();
            store.data_mut().clear_outbox();
        },
    );
    let (native, _) = interleaved(
        41,
        calls,
        || {
            driver.on_message(&mut host, "p1", &payload).unwrap();
            host.sent.clear();
        },
        || {},
    );
    // Instantiation with the defaults, and with each of the two pool settings that trade it against
    // something else set the other way, in alternating rounds.
    let defaults = Limits::default();
    let cow = setup_with(Limits { memory_init_cow: !defaults.memory_init_cow, ..defaults.clone() });
    let keep = defaults.keep_resident_bytes;
    let released = setup_with(Limits { keep_resident_bytes: if keep == 0 { 2 << 20 } else { 0 }, ..defaults.clone() });
    let times = instantiate_breakdown(&[s, &cow, &released]);
    let (store, instantiate, drop_time) = times[0];
    let (cache_hit, _) = interleaved(5, 20, || drop(black_box(s.rt.load(&s.bytes).unwrap())), || {});
    let ratio = warden.as_secs_f64() / raw.as_secs_f64();
    let us = instantiate.as_secs_f64() * 1e6;
    let store_us = store.as_secs_f64() * 1e6;
    println!();
    println!("dispatch summary (medians of interleaved rounds; echo guest, 64-byte payload, one host call)");
    println!("  on-message via PluginInstance   {:>8.0} ns", warden.as_secs_f64() * 1e9);
    println!("  on-message via raw bindgen      {:>8.0} ns", raw.as_secs_f64() * 1e9);
    println!("  same logic natively             {:>8.0} ns", native.as_secs_f64() * 1e9);
    println!("  warden / raw                    {ratio:>8.2}x   (target <= {TARGET_RATIO}x: {})", verdict(ratio <= TARGET_RATIO));
    println!(
        "  instantiate (pooling)           {us:>8.1} us   (target < {TARGET_INSTANTIATE_US} us: {})",
        verdict(us < TARGET_INSTANTIATE_US)
    );
    println!("    of which new store + WASI ctx {store_us:>8.1} us");
    println!(
        "  instantiate, memory_init_cow={:<5} {:>6.1} us   (the other setting of limits.memory_init_cow; see the swap bench)",
        !defaults.memory_init_cow,
        times[1].1.as_secs_f64() * 1e6
    );
    println!(
        "  instantiate, keep_resident={:<7} {:>6.1} us   (drop {:.1} us; the other setting of limits.keep_resident_bytes{})",
        if keep == 0 { "2 MiB" } else { "0" },
        times[2].1.as_secs_f64() * 1e6,
        times[2].2.as_secs_f64() * 1e6,
        if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() { "" } else { "; no PAGEMAP_SCAN here, so both are 0" },
    );
    println!("  drop an instance                {:>8.1} us   (memory back to the pool)", drop_time.as_secs_f64() * 1e6);
    println!("  load on compile-cache hit       {:>8.0} us   ({} bytes component)", cache_hit.as_secs_f64() * 1e6, s.bytes.len());
    println!("  cold compile (first load)       {:>8.0} ms", s.plugin.compile_time().as_secs_f64() * 1e3);
    let _ = &s.cache_dir;
}

/// Median times of: creating a store (host state, WASI context), a whole instantiation, and dropping an
/// instance, for each setup; batches of 32 so drops happen outside the timed instantiations, the setups
/// taking turns round by round so that machine noise hits them alike.
fn instantiate_breakdown(setups: &[&Setup]) -> Vec<(Duration, Duration, Duration)> {
    let mut rounds = vec![(Vec::new(), Vec::new(), Vec::new()); setups.len()];
    // A room builds its environment (clock, random stream, log budget, saves) once and clones it into
    // every instance it makes, so the environment is made outside the timed loops.
    let env = InstanceEnv::standalone("b", 1);
    for _ in 0..30 {
        for (s, (stores, whole, drops)) in setups.iter().zip(&mut rounds) {
            let start = Instant::now();
            let made: Vec<_> = (0..32).map(|_| s.plugin.new_store(env.clone())).collect();
            stores.push(start.elapsed() / 32);
            drop(made);
            let start = Instant::now();
            let made: Vec<_> = (0..32).map(|_| s.plugin.instantiate(env.clone()).unwrap()).collect();
            whole.push(start.elapsed() / 32);
            let start = Instant::now();
            drop(made);
            drops.push(start.elapsed() / 32);
        }
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    rounds.into_iter().map(|(stores, whole, drops)| (median(stores), median(whole), median(drops))).collect()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn main() {
    let s = setup();
    // `WARDEN_BENCH_SUMMARY_ONLY=1` (scripts/bench-peers, which alternates this with Extism's runs):
    // the interleaved summary alone, without criterion's groups.
    if std::env::var_os("WARDEN_BENCH_SUMMARY_ONLY").is_some() {
        summary(&s);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &s);
    c.final_summary();
    // `cargo test --benches` runs benchmarks once as a smoke test; only print the summary for real runs.
    if std::env::args().any(|a| a == "--bench") {
        summary(&s);
    }
}
