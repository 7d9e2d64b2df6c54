//! `cargo bench -p warden --bench tick_loop` (after scripts/build-plugins)
//!
//! The tick loop alone: 1,000 arena rooms of 4 players at 20 Hz, each player moving 10 times a second,
//! inputs put straight into the rooms' inboxes and outputs drained without a network. Prints the tick
//! time per room (p50, p99, max), the CPU the process used, and the same room logic run natively (the
//! arena game through the SDK's harness, 4 players, 2 moves per tick) as a baseline.
//!
//! `WARDEN_BENCH_ROOMS`, `WARDEN_BENCH_WARMUP`, `WARDEN_BENCH_SECONDS` and
//! `WARDEN_BENCH_SPARE_INSTANCES` shrink the run, for
//! `scripts/bench-instructions`, which counts the rooms' instructions under callgrind (a count that a
//! busy machine does not change, where CPU seconds vary by a third from one run to the next).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden::config::RoomConfig;
use warden::net::envelope::Format;
use warden::room::{GameEntry, Kill, OutQueue, PlayerConn, RoomInput, Rooms};
use warden::runtime::{Limits, MemorySaves, Runtime};
use warden_tests::{bench_knob as knob, cpu_seconds};

const PLAYERS: usize = 4;
const MOVES_PER_SEC: u64 = 10;

/// What the threads of one kind (the name with its trailing number dropped: `tokio-runtime-w`,
/// `sqlx-sqlite-wor`, ...) used, summed over the threads alive now.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadUse {
    /// CPU seconds in user space.
    pub user: f64,
    /// CPU seconds in the kernel.
    pub system: f64,
    /// Context switches (voluntary: the thread slept, e.g. parked for want of work; and involuntary).
    pub switches: u64,
}

/// [`ThreadUse`] per kind of thread.
pub fn cpu_by_thread() -> std::collections::BTreeMap<String, ThreadUse> {
    let mut by = std::collections::BTreeMap::<String, ThreadUse>::new();
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let read = |name: &str| std::fs::read_to_string(task.path().join(name));
        let (Ok(stat), Ok(comm), Ok(status)) = (read("stat"), read("comm"), read("status")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let secs = |i: usize| fields[i].parse::<f64>().unwrap_or(0.0) / 100.0;
        let switches: u64 = status
            .lines()
            .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        let kind = comm.trim().trim_end_matches(|c: char| c.is_ascii_digit() || c == '-').to_string();
        let used = by.entry(kind).or_default();
        used.user += secs(11);
        used.system += secs(12);
        used.switches += switches;
    }
    by
}

fn move_payload(seq: u64) -> Vec<u8> {
    rmp_serde::to_vec_named(&arena::ArenaIn::Move {
        dir: [arena::Dir::Up, arena::Dir::Left, arena::Dir::Down, arena::Dir::Right][seq as usize % 4],
        seq,
    })
    .unwrap()
}

fn native_baseline() -> (f64, f64) {
    let mut room = warden_sdk::testing::Harness::<arena::Arena>::new();
    for p in 0..PLAYERS {
        room.join(&format!("p{p}")).unwrap();
    }
    let mut times = Vec::with_capacity(20_000);
    for tick in 0..20_000u64 {
        let start = Instant::now();
        // 4 players x 10 moves/s at 20 Hz = 2 moves per tick.
        for m in 0..2 {
            let p = (tick * 2 + m) as usize % PLAYERS;
            room.message_raw(&format!("p{p}"), &move_payload(tick)).unwrap();
        }
        room.tick().unwrap();
        room.take_sent();
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2].as_secs_f64() * 1e6, times[times.len() * 99 / 100].as_secs_f64() * 1e6)
}

#[allow(dead_code)] // a module of the steer and durable benches, which call `run` and `run_with`
fn main() {
    run(|_, _| {});
}

/// What one run measured.
#[allow(dead_code)]
pub struct Figures {
    /// Cores of CPU the process used while measuring.
    pub cpu_cores: f64,
    /// Tick time p50 and p99 (us).
    pub p50_us: u64,
    /// See `p50_us`.
    pub p99_us: u64,
    /// Ticks run per second.
    pub ticks_per_sec: f64,
    /// Frames delivered per second.
    pub frames_per_sec: f64,
    /// Per kind of thread while measuring (see [`cpu_by_thread`]): cores in user space and in the
    /// kernel, and context switches a second.
    pub cores_by_thread: Vec<(String, ThreadUse)>,
}

/// The benchmark, with `setup` applied to the rooms and the game before the first player joins.
#[allow(dead_code)]
pub fn run(setup: impl FnOnce(&Rooms, &Arc<GameEntry>)) {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    run_with(RoomConfig::default(), async |rooms: &Rooms, game: &Arc<GameEntry>| setup(rooms, game));
}

/// The benchmark with the rooms' `config` and an async `setup`; returns what it measured (and prints it).
pub fn run_with(config: RoomConfig, setup: impl AsyncFnOnce(&Rooms, &Arc<GameEntry>)) -> Figures {
    // Logging as `warden serve` sets it up (warn and above to stderr). Without any subscriber, tracing
    // falls back to the `log` crate and evaluates every disabled span's fields, which a server never does.
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new("warn")).with_writer(std::io::stderr).try_init();
    let rooms_n = knob("WARDEN_BENCH_ROOMS", 1_000) as usize;
    let warmup = Duration::from_secs(knob("WARDEN_BENCH_WARMUP", 3));
    let measure = Duration::from_secs(knob("WARDEN_BENCH_SECONDS", 10));
    // Spare pool slots for a room that swaps or rebuilds; under valgrind, fewer (each slot reserves
    // gigabytes of address space, and valgrind's is smaller).
    let spare = knob("WARDEN_BENCH_SPARE_INSTANCES", 10) as u32;
    let rt = Runtime::new(Limits { max_instances: rooms_n as u32 + spare, ..Limits::default() }, None).unwrap();
    let plugin = Arc::new(rt.load(&warden_tests::wasm_bytes("arena")).unwrap());
    let game = Arc::new(GameEntry::new(plugin, Vec::new(), Default::default()));
    let tokio_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    tokio_rt.block_on(async move {
        let rooms = Rooms::new(HashMap::from([("arena".to_string(), game.clone())]), config, Arc::new(MemorySaves::default()));
        setup(&rooms, &game).await;
        let delivered = Arc::new(AtomicU64::new(0));
        let moved = Arc::new(AtomicU64::new(0));
        // The rooms open side by side, 20 per tick period, each at its own point of the period (a room
        // ticks from when it opened; golden-ratio steps spread them evenly, as rooms that players open
        // at random moments are). Opening them one after another would take a minute: a join waits for
        // the room's next tick.
        let started = tokio::time::Instant::now();
        let mut joining = tokio::task::JoinSet::new();
        for r in 0..rooms_n {
            let (rooms, delivered) = (rooms.clone(), delivered.clone());
            let at = started + Duration::from_secs_f64(((r as f64 * 0.618_034).fract() + (r / 20) as f64) / 20.0);
            joining.spawn(async move {
                tokio::time::sleep_until(at).await;
                let mut handles = Vec::new();
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
                    let delivered = delivered.clone();
                    tokio::spawn(async move {
                        while let Some(warden::room::Outbound::Frames(_, frames, _)) = rx.recv().await {
                            delivered.fetch_add(frames.len() as u64, Ordering::Relaxed);
                        }
                    });
                    handles.push((handle, id));
                }
                (r, handles)
            });
        }
        let mut by_room: Vec<_> = joining.join_all().await;
        by_room.sort_by_key(|(r, _)| *r);
        let handles: Vec<_> = by_room.into_iter().flat_map(|(_, h)| h).collect();
        // Each player moves 10 times a second, spread over the period.
        for (i, (handle, id)) in handles.into_iter().enumerate() {
            let moved = moved.clone();
            tokio::spawn(async move {
                let period = Duration::from_millis(1000 / MOVES_PER_SEC);
                let phase = period.mul_f64((i % 97) as f64 / 97.0);
                let mut every = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
                for seq in 1.. {
                    every.tick().await;
                    if !handle.send(RoomInput::Msg { player: id.clone(), payload: move_payload(seq) }).await {
                        return;
                    }
                    moved.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        tokio::time::sleep(warmup).await;
        let warm_ticks = rooms.take_tick_times().len();
        let (cpu0, sent0, t0) = (cpu_seconds(), delivered.load(Ordering::Relaxed), Instant::now());
        let threads0 = cpu_by_thread();
        tokio::time::sleep(measure).await;
        let ticks = rooms.take_tick_times();
        let threads = cpu_by_thread();
        let (cpu, frames, wall) = (cpu_seconds() - cpu0, delivered.load(Ordering::Relaxed) - sent0, t0.elapsed().as_secs_f64());
        // Whole-run totals (every tick and move until the rooms are shut), the denominators for an
        // instruction count of the whole run.
        rooms.shutdown().await;
        let all_ticks = warm_ticks + ticks.len() + rooms.take_tick_times().len();
        let all_moves = moved.load(Ordering::Relaxed);
        let (native_p50, native_p99) = native_baseline();
        println!("tick loop: {rooms_n} arena rooms x {PLAYERS} players at 20 Hz, {MOVES_PER_SEC} moves/s per player, {:.0} s", wall);
        println!("  ticks run                  {:>10} ({:.0}/s; schedule: {}/s)", ticks.len(), ticks.len() as f64 / wall, rooms_n * 20);
        println!("  tick time p50              {:>10} us", ticks.value_at_quantile(0.5));
        println!("  tick time p99              {:>10} us", ticks.value_at_quantile(0.99));
        println!("  tick time max              {:>10} us", ticks.max());
        println!("  frames delivered           {:>10.0}/s", frames as f64 / wall);
        println!("  process CPU                {:>10.2} cores (of 2)", cpu / wall);
        let zero = ThreadUse::default();
        let cores_by_thread: Vec<(String, ThreadUse)> = threads
            .iter()
            .map(|(kind, now)| {
                let before = threads0.get(kind).unwrap_or(&zero);
                let used = ThreadUse {
                    user: (now.user - before.user) / wall,
                    system: (now.system - before.system) / wall,
                    switches: ((now.switches - before.switches.min(now.switches)) as f64 / wall) as u64,
                };
                (kind.clone(), used)
            })
            .filter(|(_, u)| u.user + u.system >= 0.005)
            .collect();
        for (kind, u) in &cores_by_thread {
            println!(
                "  {:<26} {:>10.2} cores ({:.2} user, {:.2} kernel), {} context switches/s",
                format!("thread {kind}"),
                u.user + u.system,
                u.user,
                u.system,
                u.switches
            );
        }
        println!("  same room logic, native    {:>10.1} us p50, {:.1} us p99 per tick (SDK harness, no wasm)", native_p50, native_p99);
        println!("  totals: ticks={all_ticks} moves={all_moves}");
        Figures {
            cpu_cores: cpu / wall,
            p50_us: ticks.value_at_quantile(0.5),
            p99_us: ticks.value_at_quantile(0.99),
            ticks_per_sec: ticks.len() as f64 / wall,
            frames_per_sec: frames as f64 / wall,
            cores_by_thread,
        }
    })
}
