//! `cargo bench -p warden --bench durable` (after scripts/build-plugins)
//!
//! What durable rooms cost: the tick loop of `tick_loop.rs` (1,000 arena rooms of 4 players at 20 Hz,
//! 10 moves a second each; the same code, as a module) with a store attached, once with
//! `rooms.durability = "memory"` and once with `"durable"`, alternating (memory, durable, memory,
//! durable, ...) in one process so that both see the same machine. Prints each run, then the median
//! difference in CPU and in tick p99 (the answers' wait for the group commit is not the tick's work: it
//! is printed apart) against the targets: at most 10% more CPU and at most 2 ms more tick p99.
//!
//! The store is a SQLite file in a temporary directory, or PostgreSQL when `WARDEN_BENCH_DATABASE_URL`
//! names a database (its room tables are emptied before each run). `WARDEN_BENCH_ROUNDS` (default 2)
//! sets how many pairs; `tick_loop.rs`'s knobs (`WARDEN_BENCH_ROOMS`, `_WARMUP`, `_SECONDS`) apply.

#[path = "tick_loop.rs"]
mod tick_loop;

use std::sync::{Arc, Mutex};
use warden::config::{Durability, RoomConfig};
use warden::room::Rooms;
use warden::storage::Store;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let rounds: usize = std::env::var("WARDEN_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let postgres = std::env::var("WARDEN_BENCH_DATABASE_URL").ok();
    let backend = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    let mut runs: Vec<(Durability, tick_loop::Figures, String)> = Vec::new();
    for round in 0..rounds {
        for durability in [Durability::Memory, Durability::Durable] {
            // WARDEN_BENCH_ONLY=durable (or memory) runs one side, e.g. under a profiler.
            if std::env::var("WARDEN_BENCH_ONLY").is_ok_and(|only| !format!("{durability:?}").eq_ignore_ascii_case(&only)) {
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let url = postgres.clone().unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
            println!("\n== round {}, rooms.durability = {durability:?}, store: {backend}", round + 1);
            let kept: Arc<Mutex<Option<Rooms>>> = Default::default();
            let mut config = RoomConfig { durability, ..RoomConfig::default() };
            if let Some(ms) = std::env::var("WARDEN_BENCH_COMMIT_MS").ok().and_then(|v| v.parse().ok()) {
                config.commit_interval_ms = ms;
            }
            let crashes = dir.path().join("crashes");
            let figures = tick_loop::run_with(config, async |rooms: &Rooms, _: &Arc<warden::room::GameEntry>| {
                rooms.attach(fresh_store(&url).await, crashes, 1 << 20);
                *kept.lock().unwrap() = Some(rooms.clone());
            });
            let rooms = kept.lock().unwrap().take().unwrap();
            let stats = rooms.writer_stats().unwrap_or_default();
            let waits = rooms.take_gate_waits();
            if !waits.is_empty() {
                println!(
                    "  answers' wait for the commit p50 {} us, p99 {} us (the output gate; not in the tick time)",
                    waits.value_at_quantile(0.5),
                    waits.value_at_quantile(0.99)
                );
            }
            let writes = format!(
                "{} commits, {} journal rows ({:.1} a commit), {} checkpoints, commit p50 {} us, p99 {} us",
                stats.commits,
                stats.journal_rows,
                stats.journal_rows as f64 / stats.commits.max(1) as f64,
                stats.checkpoints,
                stats.commit_us.quantile(0.5).unwrap_or(0),
                stats.commit_us.quantile(0.99).unwrap_or(0),
            );
            println!("  store writes (whole run)   {writes}");
            runs.push((durability, figures, writes));
        }
    }
    if runs.iter().map(|r| r.0).collect::<std::collections::HashSet<_>>().len() < 2 {
        return;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let pick = |d: Durability, f: &dyn Fn(&tick_loop::Figures) -> f64| median(runs.iter().filter(|r| r.0 == d).map(|r| f(&r.1)).collect());
    let (cpu_m, cpu_d) = (pick(Durability::Memory, &|f| f.cpu_cores), pick(Durability::Durable, &|f| f.cpu_cores));
    let (p99_m, p99_d) = (pick(Durability::Memory, &|f| f.p99_us as f64), pick(Durability::Durable, &|f| f.p99_us as f64));
    let (p50_m, p50_d) = (pick(Durability::Memory, &|f| f.p50_us as f64), pick(Durability::Durable, &|f| f.p50_us as f64));
    let cpu_pct = (cpu_d / cpu_m - 1.0) * 100.0;
    let p99_ms = (p99_d - p99_m) / 1000.0;
    println!("\ndurable vs memory, {backend}, medians of {rounds} runs each:");
    println!("  process CPU      {cpu_m:.2} -> {cpu_d:.2} cores: {cpu_pct:+.1}% (target: at most +10%: {})", met(cpu_pct <= 10.0));
    // Each pair ran back to back, so its ratio is the least disturbed by the machine's drift.
    let pairs: Vec<f64> = runs
        .chunks(2)
        .filter(|p| p.len() == 2 && p[0].0 == Durability::Memory && p[1].0 == Durability::Durable)
        .map(|p| (p[1].1.cpu_cores / p[0].1.cpu_cores - 1.0) * 100.0)
        .collect();
    if !pairs.is_empty() {
        let shown: Vec<String> = pairs.iter().map(|p| format!("{p:+.0}%")).collect();
        let mut sorted = pairs.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        println!(
            "  each pair        {} (median {:+.1}%, middle half {:+.0}% to {:+.0}%)",
            shown.join(", "),
            median(pairs.clone()),
            sorted[sorted.len() / 4],
            sorted[(sorted.len() * 3).saturating_sub(1) / 4]
        );
    }
    // Where the difference goes: each kind of thread's median on either side.
    let kinds: std::collections::BTreeSet<&str> = runs.iter().flat_map(|r| r.1.cores_by_thread.iter().map(|(k, _)| k.as_str())).collect();
    for kind in kinds {
        let of = |f: &tick_loop::Figures, field: &dyn Fn(&tick_loop::ThreadUse) -> f64| {
            f.cores_by_thread.iter().find(|(k, _)| k == kind).map_or(0.0, |(_, u)| field(u))
        };
        let side = |d: Durability, field: &dyn Fn(&tick_loop::ThreadUse) -> f64| pick(d, &|f| of(f, field));
        let (user, kernel, switches): (Field, Field, Field) = (&|u| u.user, &|u| u.system, &|u| u.switches as f64);
        println!(
            "    {kind:<16} user {:.2} -> {:.2}, kernel {:.2} -> {:.2} cores; {:.0} -> {:.0} context switches/s",
            side(Durability::Memory, user),
            side(Durability::Durable, user),
            side(Durability::Memory, kernel),
            side(Durability::Durable, kernel),
            side(Durability::Memory, switches),
            side(Durability::Durable, switches),
        );
    }
    println!("  tick p50         {:.2} -> {:.2} ms", p50_m / 1000.0, p50_d / 1000.0);
    println!(
        "  tick p99         {:.2} -> {:.2} ms: {p99_ms:+.2} ms (target: at most +2 ms: {})",
        p99_m / 1000.0,
        p99_d / 1000.0,
        met(p99_ms <= 2.0)
    );
}

/// One figure of a [`tick_loop::ThreadUse`].
type Field<'a> = &'a dyn Fn(&tick_loop::ThreadUse) -> f64;

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// Opens the store at `url`, its room tables (and saves) emptied.
async fn fresh_store(url: &str) -> Store {
    let store = Store::open(url).await.unwrap();
    if let Store::Postgres(pg) = &store {
        pg.execute("TRUNCATE room_checkpoints, room_journal, player_saves").await.unwrap();
    }
    store
}
