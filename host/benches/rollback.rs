//! `cargo bench -p warden --bench rollback` (after scripts/build-plugins)
//!
//! 1. **Journaling cost.** Arena rooms (4 players, 20 moves a second each room, 20 Hz) with and without
//!    the journal, side by side in one process (both see the same machine), three runs: tick time mean,
//!    p50, p99.
//! 2. **Journal memory** per room at 20 Hz with 4 players after 30 s, with no checkpoint in those 30 s
//!    (a version on probation keeps the journal since its pre-swap checkpoint) and on the stable
//!    cadence (a checkpoint every 5 s).
//! 3. **Rollback.** 1,000 arena rooms with a player each; `arena-chaos` (every fifth move returns `err`)
//!    is deployed to all of them and runs 10 s on moves it handles, then gets the moves it fails; from
//!    the moment the error rate breaks the policy (observed by polling
//!    the version's window every 2 ms) to the deployer's decision (detection), and from the decision to
//!    the last of the 1,000 rooms back on the previous version; per room, the restore of the pre-swap
//!    checkpoint and the replay of the journal.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use warden::config::Config;
use warden::deploy::{DeployEvent, Deployer, sign};
use warden::health::Policy;
use warden::net::envelope::Format;
use warden::room::{GameEntry, Kill, OutQueue, PlayerConn, RoomHandle, RoomInput, Rooms, Switches};
use warden::runtime::{Limits, MemorySaves, Plugin, Runtime, manifest};
use warden::storage::Store;

fn stamped(bytes: &[u8], version: &str) -> Vec<u8> {
    let mut m = manifest::read(bytes).unwrap();
    m.version = version.into();
    manifest::stamp(bytes, &m)
}

fn config(sets: &[String]) -> Config {
    Config::load(None, Vec::new(), sets).unwrap()
}

/// `players` joined to room `room` of `game`, their outbound queues drained.
async fn fill(rooms: &Rooms, game: &str, room: &str, players: usize) -> Vec<(RoomHandle, Arc<str>)> {
    let joins = (0..players).map(|p| async move {
        let (queue, mut rx) = OutQueue::new(1024, 8 << 20);
        let id: Arc<str> = format!("p{p}").into();
        let conn = PlayerConn {
            id: id.clone(),
            format: Format::MsgPack,
            out: queue,
            kill: Kill::default(),
            in_room: Arc::new(AtomicBool::new(false)),
        };
        let handle = rooms.join(game, room, conn).await.unwrap();
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        (handle, id)
    });
    futures_util::future::join_all(joins).await
}

/// `n` rooms named `prefix{i}` of `players` each, all joined at once, each driven every `every`.
async fn open(rooms: &Rooms, prefix: &str, n: usize, players: usize, every: Duration, stop: &tokio_util::sync::CancellationToken) {
    let names: Vec<String> = (0..n).map(|r| format!("{prefix}{r}")).collect();
    let filled = futures_util::future::join_all(names.iter().map(|room| fill(rooms, "arena", room, players))).await;
    for players in filled {
        drive(players, every, stop.clone());
    }
}

/// While set, the drivers skip every fifth move number (the ones `arena-chaos` fails).
static CLEAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends each player's moves every `every`, until `stop`.
fn drive(players: Vec<(RoomHandle, Arc<str>)>, every: Duration, stop: tokio_util::sync::CancellationToken) {
    static ROOM: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Rooms start their move numbers apart, so a version failing every fifth move fails some moves
    // every round rather than all at once.
    let start = ROOM.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 5;
    tokio::spawn(async move {
        let mut seq = start;
        let mut interval = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            seq += 1;
            if CLEAN.load(std::sync::atomic::Ordering::Relaxed) && seq.is_multiple_of(5) {
                seq += 1;
            }
            for (handle, id) in &players {
                let dir = ["up", "right", "down", "left"][(seq % 4) as usize];
                let payload = rmp_serde::to_vec_named(&serde_json::json!({"type": "move", "dir": dir, "seq": seq})).unwrap();
                handle.send(RoomInput::Msg { player: id.clone(), payload }).await;
            }
        }
    });
}

/// Tick times of `n` rooms of 4 players (5 moves a second each) without and `n` with the journal,
/// running side by side over `secs` (so both see the same machine).
async fn tick_cost(plugin: &Arc<Plugin>, n: usize, secs: u64) -> [hdrhistogram::Histogram<u64>; 2] {
    let stop = tokio_util::sync::CancellationToken::new();
    let mut sets = Vec::new();
    for journal in [false, true] {
        let cfg = config(&[format!("rooms.journal={journal}"), "rooms.durability=\"memory\"".into(), "rooms.empty_grace_ms=600000".into()]);
        let game = Arc::new(GameEntry::new(plugin.clone(), Vec::new(), Switches::default()));
        let rooms = Rooms::new(HashMap::from([("arena".to_string(), game)]), cfg.rooms.clone(), Arc::new(MemorySaves::default()));
        open(&rooms, "r", n, 4, Duration::from_millis(200), &stop).await;
        sets.push(rooms);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for rooms in &sets {
        rooms.take_tick_times();
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let h = [sets[0].take_tick_times(), sets[1].take_tick_times()];
    stop.cancel();
    for rooms in &sets {
        rooms.shutdown().await;
    }
    h
}

/// Journal bytes per room after `secs` of 4 players at 5 moves a second each, with checkpoints every
/// `checkpoint_ms`.
async fn journal_memory(plugin: &Arc<Plugin>, checkpoint_ms: u64, n: usize, secs: u64) -> (usize, usize, usize) {
    let cfg = config(&[format!("rooms.checkpoint_every_ms={checkpoint_ms}"), "rooms.empty_grace_ms=600000".into()]);
    let game = Arc::new(GameEntry::new(plugin.clone(), Vec::new(), Switches::default()));
    let rooms = Rooms::new(HashMap::from([("arena".to_string(), game)]), cfg.rooms.clone(), Arc::new(MemorySaves::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    open(&rooms, "m", n, 4, Duration::from_millis(200), &stop).await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (mut sum, mut max, mut entries) = (0, 0, 0);
    for r in 0..n {
        let dump = rooms.dump("arena", &format!("m{r}")).await.unwrap();
        sum += dump.journal.memory();
        max = max.max(dump.journal.memory());
        entries += dump.journal.len();
    }
    stop.cancel();
    rooms.shutdown().await;
    (sum / n, max, entries / n)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let rooms_n: usize = std::env::var("WARDEN_BENCH_ROOMS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let arena = warden_tests::wasm_bytes("arena");
    let chaos = warden_tests::wasm_bytes("arena-chaos");
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_instances: 2 * rooms_n as u32 + 100, ..Limits::default() };
    let rt = Arc::new(Runtime::new(limits, Some(dir.path().join("cache"))).unwrap());
    let v1 = Arc::new(rt.load(&stamped(&arena, "1.0.0")).unwrap());
    let tokio_rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    tokio_rt.block_on(async {
        eprintln!("journaling cost...");
        // 1. Journaling cost: rooms with and without, side by side.
        let mut cost: HashMap<bool, Vec<(f64, u64, u64)>> = HashMap::new();
        for _ in 0..3 {
            let [off, on] = tick_cost(&v1, 125, 5).await;
            for (journal, h) in [(false, off), (true, on)] {
                cost.entry(journal).or_default().push((h.mean(), h.value_at_quantile(0.5), h.value_at_quantile(0.99)));
            }
        }
        eprintln!("journal memory (30 s)...");
        // 2. Journal memory after 30 s.
        let (probation, stable) =
            tokio::join!(journal_memory(&v1, 3_600_000, 10, 30), journal_memory(&v1, Config::default().rooms.checkpoint_every_ms, 10, 30));

        eprintln!("rollback of {rooms_n} rooms...");
        // 3. Rollback of 1,000 rooms.
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let (sk, _, pk) = sign::keygen().unwrap();
        let sk = sign::parse_secret_key(&sk).unwrap();
        let drop_version = |base: &[u8], version: &str| {
            let bytes = stamped(base, version);
            let file = format!("arena-{version}.wasm");
            for (name, data) in
                [(format!("{file}.minisig"), sign::sign(&bytes, &sk, "arena", version).unwrap().into_bytes()), (file, bytes)]
            {
                let temp = plugins.join(format!(".{name}.tmp"));
                std::fs::write(&temp, data).unwrap();
                std::fs::rename(&temp, plugins.join(name)).unwrap();
            }
        };
        drop_version(&arena, "1.0.0");
        let cfg = config(&[
            format!("plugin_dir={:?}", plugins.display().to_string()),
            format!("deploy.trusted_keys=[{pk:?}]"),
            "deploy.settle_ms=100".into(),
            "deploy.debounce_ms=20".into(),
            "rooms.empty_grace_ms=600000".into(),
            "rollout.strategy=\"immediate\"".into(),
            "rollout.probation_ms=600000".into(),
        ]);
        let store = Store::open(&format!("sqlite://{}", dir.path().join("warden.db").display())).await.unwrap();
        let rooms = Rooms::new(HashMap::new(), cfg.rooms.clone(), Arc::new(MemorySaves::default()));
        let deployer = Arc::new(Deployer::new(rt.clone(), store, rooms.clone(), &cfg).unwrap());
        deployer.boot().await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let _task = deployer.clone().spawn(stop.clone()).unwrap();
        let mut events = deployer.subscribe();
        let moves = tokio_util::sync::CancellationToken::new();
        open(&rooms, "r", rooms_n, 1, Duration::from_millis(500), &moves).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        // 1.0.1 first runs 10 s without a failing move (its rooms' journals grow as on probation),
        // then the players send the moves it fails.
        CLEAN.store(true, std::sync::atomic::Ordering::Relaxed);
        drop_version(&chaos, "1.0.1");
        loop {
            if let DeployEvent::Deployed { .. } = events.recv().await.unwrap() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        CLEAN.store(false, std::sync::atomic::Ordering::Relaxed);
        let deployed = Instant::now();
        eprintln!("deployed 1.0.1; waiting for the breach");
        let game = rooms.game("arena").unwrap();
        let policy = Policy::default();
        let breach = loop {
            if policy.check(&game.health("1.0.1").window(), None).is_some() {
                break Instant::now();
            }
            assert!(deployed.elapsed() < Duration::from_secs(60), "no breach within a minute: {:?}", game.health("1.0.1").window());
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        eprintln!("breach; waiting for the rollback");
        // The decision is the moment the game serves 1.0.0 again (rooms start moving then; the registry
        // and audit writes and the event follow).
        while game.serving().active.manifest().version != "1.0.0" {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let decided = Instant::now();
        let reason = loop {
            if let DeployEvent::RolledBack { reason, .. } = events.recv().await.unwrap() {
                break reason;
            }
        };
        while rooms.versions("arena").get("1.0.0").copied().unwrap_or(0) < rooms_n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let all_back = Instant::now();
        let timings = rooms.take_rollbacks();
        moves.cancel();
        stop.cancel();
        rooms.shutdown().await;

        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut restore: Vec<f64> = timings.iter().map(|t| us(t.restore)).collect();
        let mut replay: Vec<f64> = timings.iter().map(|t| us(t.replay)).collect();
        let calls: usize = timings.iter().map(|t| t.calls).sum();
        restore.sort_by(f64::total_cmp);
        replay.sort_by(f64::total_cmp);
        let q = |v: &[f64], q: f64| v.get(((v.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0.0);
        let last_room = timings.iter().map(|t| t.done).max().unwrap_or(all_back);

        println!("journaling cost: 125 arena rooms with and 125 without, side by side; 4 players, 20 moves/s a room, 20 Hz; 3 runs of 5 s");
        for journal in [false, true] {
            for (mean, p50, p99) in &cost[&journal] {
                println!("  journal {:<5}  tick mean {:>6.1} us  p50 {:>4} us  p99 {:>5} us", journal, mean, p50, p99);
            }
        }
        let mean = |j: bool| cost[&j].iter().map(|c| c.0).sum::<f64>() / cost[&j].len() as f64;
        println!("  overhead of journaling (mean tick time)  {:+.1}%  (target < 5%)", 100.0 * (mean(true) / mean(false) - 1.0));
        println!("journal memory per room after 30 s (20 Hz, 4 players, 20 moves/s), 10 rooms each");
        println!(
            "  no checkpoint in 30 s (probation)   avg {:>6} B, max {:>6} B, {} entries  (target < 64 KiB)",
            probation.0, probation.1, probation.2
        );
        println!("  stable cadence (every 5 s)          avg {:>6} B, max {:>6} B, {} entries", stable.0, stable.1, stable.2);
        println!("rollback: {rooms_n} arena rooms, 1 player each at 2 moves/s; arena-chaos 1.0.1 deployed to all");
        println!(
            "  failing moves begin -> breach      {:>8.1} ms  (until the window holds enough errors; 1.0.1 ran 10 s before)",
            ms(breach - deployed)
        );
        println!("  breach -> rollback decided           {:>8.1} ms  (detection; the deployer checks every 100 ms)", ms(decided - breach));
        println!("  decided -> last room back on 1.0.0   {:>8.1} ms", ms(last_room - decided));
        println!("  breach -> all {rooms_n} rooms back       {:>8.1} ms  (target < 1000 ms)", ms(last_room - breach));
        println!(
            "  per room: restore p50 {:.0} us, p99 {:.0} us; replay p50 {:.0} us, p99 {:.0} us; {} calls replayed in all ({} rooms)",
            q(&restore, 0.5),
            q(&restore, 0.99),
            q(&replay, 0.5),
            q(&replay, 0.99),
            calls,
            timings.len()
        );
        println!("  reason: {reason}");
    });
}
