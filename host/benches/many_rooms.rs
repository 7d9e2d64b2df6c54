//! `cargo bench -p warden --bench many_rooms` (after scripts/build-plugins)
//!
//! How many rooms one host holds: 10,000 chat rooms of 2 players each (`WARDEN_BENCH_ROOMS`), opened
//! side by side on a server-sized pool (`rooms.max_rooms` of them, `limits.max_instances` following it),
//! idle, ticking at 20 Hz. Prints, per room:
//! - resident memory (the process's RSS before the first room and with all open, divided by the rooms),
//!   split into the host's heap (glibc's `mallinfo2`: what the room task, its inbox, journal, listing
//!   and instance bookkeeping allocate) and the rest (mostly the pages of wasm linear memory the
//!   instance touched, in the pool's mapping);
//! - its linear memory (what `memory.size` says: reserved for the guest, mostly untouched);
//! - the ticks run against the schedule (10,000 x 20 a second) and the CPU they took;
//! - one more join past the cap: refused with `server_full`, and the rooms go on ticking.
//!
//! Then the instantiation time of a chat instance on the default configuration (the per-room cost of
//! opening one), median of batches of 32.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use warden::config::{RoomConfig, SPARE_INSTANCES};
use warden::net::envelope::Format;
use warden::room::{GameEntry, JoinError, Kill, OutQueue, PlayerConn, Rooms};
use warden::runtime::{InstanceEnv, Limits, MemorySaves, Runtime};
use warden_tests::{bench_knob as knob, cpu_seconds};

const PLAYERS: usize = 2;

fn rss_bytes() -> u64 {
    warden_tests::rss_bytes()
}

/// Bytes the host has allocated (glibc: in-use arena chunks plus mmapped blocks).
#[allow(unsafe_code)]
fn heap_bytes() -> u64 {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("warn")).with_writer(std::io::stderr).try_init();
    let rooms_n = knob("WARDEN_BENCH_ROOMS", 10_000) as usize;
    let measure = Duration::from_secs(knob("WARDEN_BENCH_SECONDS", 10));
    let limits = Limits { max_instances: (rooms_n + SPARE_INSTANCES) as u32, ..Limits::default() };
    let rt = Runtime::new(limits, None).unwrap();
    let plugin = Arc::new(rt.load(&warden_tests::wasm_bytes("chat")).unwrap());
    let instantiate_us = instantiate_median_us(&plugin);
    let game = Arc::new(GameEntry::new(plugin, Vec::new(), Default::default()));
    let config = RoomConfig { max_rooms: rooms_n, durability: warden::config::Durability::Memory, ..RoomConfig::default() };
    let tokio_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    tokio_rt.block_on(async move {
        let rooms = Rooms::new(HashMap::from([("chat".to_string(), game)]), config, Arc::new(MemorySaves::default()));
        let (rss0, heap0) = (rss_bytes(), heap_bytes());
        let opening = Instant::now();
        let mut receivers = Vec::new();
        // Side by side, a tick period's worth at a time: a join waits for its room's next tick.
        let mut joining = tokio::task::JoinSet::new();
        for r in 0..rooms_n {
            let rooms = rooms.clone();
            joining.spawn(async move {
                let mut out = Vec::new();
                for p in 0..PLAYERS {
                    let (queue, rx) = OutQueue::new(256, 1 << 20);
                    let conn = PlayerConn {
                        id: format!("p{p}").into(),
                        format: Format::MsgPack,
                        out: queue,
                        kill: Kill::default(),
                        in_room: Arc::new(AtomicBool::new(false)),
                    };
                    let handle = rooms.join("chat", &format!("r{r}"), conn).await.unwrap_or_else(|e| panic!("room r{r}: {e}"));
                    out.push((handle, rx));
                }
                out
            });
            if r % 500 == 499 {
                while joining.len() > 250 {
                    receivers.extend(joining.join_next().await.unwrap().unwrap());
                }
            }
        }
        receivers.extend(joining.join_all().await.into_iter().flatten());
        let opened_in = opening.elapsed();
        // Settle: every room has ticked since it opened; the players' queues hold their first frames.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss1, heap1) = (rss_bytes(), heap_bytes());
        let linear: u64 = rooms.list().iter().map(|r| r.usage.linear_memory_bytes).sum();

        rooms.take_tick_times();
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        tokio::time::sleep(measure).await;
        let ticks = rooms.take_tick_times();
        let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());

        // One room more than the cap.
        let (queue, _rx) = OutQueue::new(256, 1 << 20);
        let conn = PlayerConn {
            id: "late".into(),
            format: Format::MsgPack,
            out: queue,
            kill: Kill::default(),
            in_room: Arc::new(AtomicBool::new(false)),
        };
        let refused = rooms.join("chat", "one-too-many", conn).await;
        assert!(matches!(refused, Err(JoinError::ServerFull(n)) if n == rooms_n), "the join past the cap is refused: {:?}", refused.err());
        rooms.take_tick_times();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let still = rooms.take_tick_times().len();

        let per = |bytes: u64| bytes as f64 / rooms_n as f64 / 1024.0;
        println!("many rooms: {rooms_n} chat rooms x {PLAYERS} players, idle, 20 Hz, opened in {:.1} s", opened_in.as_secs_f64());
        println!("  resident memory per room   {:>10.1} KiB (RSS {} -> {} MiB)", per(rss1.saturating_sub(rss0)), rss0 >> 20, rss1 >> 20);
        println!("    of which host heap       {:>10.1} KiB (target under 150 KiB)", per(heap1.saturating_sub(heap0)));
        println!("    the rest (wasm pages)    {:>10.1} KiB", per(rss1.saturating_sub(rss0).saturating_sub(heap1.saturating_sub(heap0))));
        println!("  linear memory per room     {:>10.1} KiB (memory.size: reserved for the guest, mostly untouched)", per(linear));
        println!("  ticks run                  {:>10.0}/s (schedule: {}/s)", ticks.len() as f64 / wall, rooms_n * 20);
        println!("  tick time p50 / p99        {:>10} / {} us", ticks.value_at_quantile(0.5), ticks.value_at_quantile(0.99));
        println!(
            "  process CPU                {:>10.2} cores (of {})",
            cpu / wall,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("  one join past the cap      {:>10} (rooms ticked {} times in the second after it)", "refused", still);
        println!("  instantiate (chat)         {:>10.1} us median (target under 15 us)", instantiate_us);
        drop(receivers);
        rooms.shutdown().await;
    });
}

/// Median time to instantiate `plugin`, in batches of 32 (dropping them outside the clock).
fn instantiate_median_us(plugin: &warden::runtime::Plugin) -> f64 {
    let env = InstanceEnv::standalone("bench", 1);
    let mut times = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let made: Vec<_> = (0..32).map(|_| plugin.instantiate(env.clone()).unwrap()).collect();
        times.push(started.elapsed() / 32);
        drop(made);
    }
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e6
}
