//! The per-instance host state: it serves the `warden:plugin` imports and WASI for one instance.
//!
//! Everything a call does to the outside world is buffered here (sends, timers, kicks, saves) and taken
//! by the room after the call; a call that traps has its buffered effects discarded, as the contract says.
//! Time and randomness come from the room's [`GameClock`] and [`RoomRng`], which WASI clocks and random
//! read too, so a plugin sees no wall time and no entropy.

use crate::runtime::wasi::{GuestOutput, LogBudget, StdStream};
use crate::runtime::{Recipient, SaveBackend, SavePriority};
use arc_swap::ArcSwap;
use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The room's game clock, shared by the room (which advances it) and its instance.
#[derive(Debug, Default)]
pub struct GameClock {
    tick: AtomicU64,
    now_ms: AtomicU64,
}

impl GameClock {
    /// Moves the clock to `tick` at game time `now_ms`.
    pub fn set(&self, tick: u64, now_ms: u64) {
        self.tick.store(tick, Ordering::Relaxed);
        self.now_ms.store(now_ms, Ordering::Relaxed);
    }
    /// The current tick.
    pub fn tick(&self) -> u64 {
        self.tick.load(Ordering::Relaxed)
    }
    /// The current game time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }
}

/// The room's deterministic random stream: `random_at(seed, n)` for the n-th draw. Its whole state is
/// (seed, draws), so a checkpoint can carry it and a replay continues it exactly.
///
/// Beside it, the room's hash key: what WASI's `insecure-seed` answers, which keys the guest's hash maps
/// (Rust's `HashMap`, Python's `hash`). It is a secret of the room, never the seed that players see in
/// `joined`, and it is stored with the checkpoint so that a resumed room iterates its maps in the same
/// order.
#[derive(Debug)]
pub struct RoomRng {
    seed: u64,
    hash_key: u64,
    draws: AtomicU64,
}

impl RoomRng {
    /// A stream at its start, with a hash key derived from the seed (for tests and tools; a room draws
    /// its hash key from a secret, see [`RoomRng::with_hash_key`]).
    pub fn new(seed: u64) -> Self {
        Self::with_hash_key(seed, random_at(seed ^ 0x5EED_4A54_C0DE_0001, 0))
    }
    /// A stream at its start with the hash key `hash_key`.
    pub fn with_hash_key(seed: u64, hash_key: u64) -> Self {
        RoomRng { seed, hash_key, draws: AtomicU64::new(0) }
    }
    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// The hash key.
    pub fn hash_key(&self) -> u64 {
        self.hash_key
    }
    /// How many numbers were drawn.
    pub fn draws(&self) -> u64 {
        self.draws.load(Ordering::Relaxed)
    }
    /// Puts the stream back at `draws` (for restoring a checkpoint).
    pub fn set_draws(&self, draws: u64) {
        self.draws.store(draws, Ordering::Relaxed);
    }
    /// The next number.
    pub fn next(&self) -> u64 {
        random_at(self.seed, self.draws.fetch_add(1, Ordering::Relaxed))
    }
}

/// SplitMix64 of (seed, draw): the same function as `warden_sdk::testing::random_at`, so the native test
/// harness and the host give a room the same numbers.
pub fn random_at(seed: u64, draw: u64) -> u64 {
    let mut z = seed.wrapping_add(draw.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The feature switches one room's instance sees (what `feature-enabled` answers).
///
/// The room sets them at a tick boundary from its game's switches (and journals the change, so a replay
/// sees what the live room saw); a call reads them without a lock.
#[derive(Debug, Default, Clone)]
pub struct Features(Arc<ArcSwap<BTreeSet<String>>>);

impl Features {
    /// A set with `names` switched on.
    pub fn on(names: &[&str]) -> Self {
        Features(Arc::new(ArcSwap::from_pointee(names.iter().map(|s| s.to_string()).collect())))
    }
    /// Switches `name` on or off.
    pub fn set(&self, name: &str, on: bool) {
        let mut set = BTreeSet::clone(&self.0.load());
        if on {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
        self.0.store(Arc::new(set));
    }
    /// Replaces the whole set.
    pub fn set_all(&self, set: Arc<BTreeSet<String>>) {
        self.0.store(set);
    }
    /// The set now.
    pub fn current(&self) -> Arc<BTreeSet<String>> {
        self.0.load_full()
    }
    /// Whether the set now is `set` itself (the same allocation: no comparison of names).
    pub fn is_same(&self, set: &Arc<BTreeSet<String>>) -> bool {
        Arc::ptr_eq(&self.0.load(), set)
    }
    /// Whether `name` is on.
    pub fn is_on(&self, name: &str) -> bool {
        self.0.load().contains(name)
    }
    /// The names switched on, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.load().iter().cloned().collect()
    }
}

/// A message queued by the plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// Recipient as the plugin gave it.
    pub to: Recipient,
    /// MessagePack payload.
    pub payload: Vec<u8>,
}

/// A timer the plugin asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerRequest {
    /// Game time at which it is due.
    pub due_ms: u64,
    /// Tag for `on-timer`.
    pub tag: String,
}

/// A kick the plugin asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kick {
    /// Player to remove.
    pub player: String,
    /// Reason told to the player.
    pub reason: String,
}

/// Where an instance lives: its room, its sources of time and randomness, its switches and saves.
#[derive(Clone)]
pub struct InstanceEnv {
    /// Room id (for logs and save keys).
    pub room: String,
    /// The room's clock.
    pub clock: Arc<GameClock>,
    /// The room's random stream.
    pub rng: Arc<RoomRng>,
    /// The plugin's feature switches.
    pub features: Features,
    /// Where saves go.
    pub saves: Arc<dyn SaveBackend>,
    /// The log lines the room's plugin may write (`log`, stdout and stderr together).
    pub log_budget: Arc<LogBudget>,
    /// Timers the room has pending before the current call (kept by the room, and by a replay).
    pub timers_pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl InstanceEnv {
    /// A standalone environment: a fresh clock and random stream seeded with `seed`, no switches, saves
    /// in memory. For tests, tools and benchmarks.
    pub fn standalone(room: &str, seed: u64) -> Self {
        InstanceEnv {
            room: room.to_string(),
            clock: Arc::new(GameClock::default()),
            rng: Arc::new(RoomRng::new(seed)),
            features: Features::default(),
            saves: Arc::new(crate::runtime::MemorySaves::default()),
            log_budget: Arc::new(LogBudget::new(
                crate::runtime::Limits::default().log_lines_per_sec,
                crate::runtime::Limits::default().log_burst,
            )),
            timers_pending: Default::default(),
        }
    }
}

/// What a plugin reported under one `metric` name: how often, the sum and the last value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MetricSum {
    /// Calls.
    pub count: u64,
    /// Sum of the values.
    pub sum: f64,
    /// The last value.
    pub last: f64,
}

/// Lengths of the effect buffers before a call, to discard what a trapping call queued.
#[derive(Clone, Copy)]
pub(crate) struct Marks {
    outbox: usize,
    timers: usize,
    kicks: usize,
    saves: usize,
}

/// A save read with `load-save`: the player and what the read answered (`None`: no save).
pub type SaveRead = (String, Option<Vec<u8>>);

/// The saves an instance's calls read. A save is an input from outside the room, like a message: a live
/// call's reads are recorded, and the room journals them after the call; a replayed call is answered
/// what it read when it ran (a read the journal does not hold, as in another version that reads more,
/// goes to the save store).
pub(super) enum SaveReads {
    /// Live: the reads of the current call.
    Record(Vec<SaveRead>),
    /// Replaying: the reads the current call made when it ran, not answered yet.
    Replay(VecDeque<SaveRead>),
}

/// The host side of one instance.
pub struct HostState {
    pub(super) plugin: Arc<str>,
    pub(super) env: InstanceEnv,
    pub(super) outbox: Vec<Outgoing>,
    /// Bytes in `outbox`.
    pub(super) outbox_bytes: usize,
    pub(super) timers: Vec<TimerRequest>,
    pub(super) kicks: Vec<Kick>,
    pub(super) pending_saves: Vec<(String, Vec<u8>, SavePriority)>,
    critical_saves: Vec<crate::runtime::Durable>,
    /// The saves the plugin read with `load-save` (see [`SaveReads`]).
    pub(super) save_reads: SaveReads,
    /// What the plugin reported through `metric`, per name (bounded in names).
    pub(super) metrics: std::collections::BTreeMap<String, MetricSum>,
    memory_cap: usize,
    /// The instance's linear memories, all together (as grown; wasm memories never shrink).
    pub(super) linear_bytes: usize,
    pub(super) limits: crate::runtime::Limits,
    pub(crate) deadline: crate::runtime::deadline::DeadlineProbe,
    stdout: GuestOutput,
    stderr: GuestOutput,
    pub(super) last_panic: Option<String>,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// Counts this store among the runtime's live instances while it exists.
    pub(crate) slot: Option<Slot>,
}

/// One live store of a [`Runtime`](crate::runtime::Runtime): counted while it exists (a pool slot in use).
pub(crate) struct Slot(Arc<std::sync::atomic::AtomicUsize>);

impl Slot {
    pub(crate) fn take(live: &Arc<std::sync::atomic::AtomicUsize>) -> Slot {
        live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Slot(live.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl HostState {
    /// Host state for an instance of `plugin` in `env`, under `limits` (linear memory, log lines).
    pub fn new(plugin: Arc<str>, env: InstanceEnv, limits: &crate::runtime::Limits) -> Self {
        let room: Arc<str> = env.room.as_str().into();
        let output = |stream| {
            GuestOutput::new(stream, plugin.clone(), room.clone(), env.clock.clone(), env.log_budget.clone(), limits.log_line_bytes)
        };
        let (stdout, stderr) = (output(StdStream::Stdout), output(StdStream::Stderr));
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .wall_clock(WasiClock(env.clock.clone()))
            .monotonic_clock(WasiClock(env.clock.clone()))
            .secure_random(WasiRandom(env.rng.clone()))
            .insecure_random(WasiRandom(env.rng.clone()))
            .insecure_random_seed(u128::from(env.rng.hash_key()))
            .max_random_size(limits.max_random_bytes)
            .build();
        HostState {
            plugin,
            env,
            outbox: Vec::new(),
            outbox_bytes: 0,
            timers: Vec::new(),
            kicks: Vec::new(),
            pending_saves: Vec::new(),
            critical_saves: Vec::new(),
            save_reads: SaveReads::Record(Vec::new()),
            metrics: Default::default(),
            memory_cap: limits.memory_bytes,
            linear_bytes: 0,
            limits: limits.clone(),
            deadline: crate::runtime::deadline::DeadlineProbe::new(limits.instantiate_deadline()),
            stdout,
            stderr,
            last_panic: None,
            wasi,
            table: ResourceTable::new(),
            slot: None,
        }
    }

    /// The instance's environment.
    pub fn env(&self) -> &InstanceEnv {
        &self.env
    }

    /// Takes the queued sends, in order.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        self.outbox_bytes = 0;
        std::mem::take(&mut self.outbox)
    }

    /// Drops the queued sends, keeping the buffer's capacity.
    pub fn clear_outbox(&mut self) {
        self.outbox_bytes = 0;
        self.outbox.clear();
    }

    /// The queued sends.
    pub fn outbox(&self) -> &[Outgoing] {
        &self.outbox
    }

    /// Takes the requested timers, in the order they were set.
    pub fn take_timers(&mut self) -> Vec<TimerRequest> {
        std::mem::take(&mut self.timers)
    }

    /// Takes the requested kicks.
    pub fn take_kicks(&mut self) -> Vec<Kick> {
        std::mem::take(&mut self.kicks)
    }

    /// Whether the plugin reported anything through `metric` since the last take.
    pub fn has_metrics(&self) -> bool {
        !self.metrics.is_empty()
    }

    /// The metrics reported since the last take, by name.
    pub fn take_metrics(&mut self) -> std::collections::BTreeMap<String, MetricSum> {
        std::mem::take(&mut self.metrics)
    }

    /// The guest's last panic message (the SDK reports panics through the log import), taken.
    pub fn take_panic(&mut self) -> Option<String> {
        self.last_panic.take()
    }

    /// The last bytes the guest wrote to stderr (bounded), e.g. a panic message.
    pub fn stderr(&self) -> String {
        self.stderr.tail()
    }

    /// Logs what the guest wrote without a final newline (at the end of every call).
    pub(crate) fn flush_output(&mut self) {
        self.stdout.flush_line();
        self.stderr.flush_line();
    }

    pub(crate) fn marks(&self) -> Marks {
        Marks { outbox: self.outbox.len(), timers: self.timers.len(), kicks: self.kicks.len(), saves: self.pending_saves.len() }
    }

    /// Forgets everything queued since `marks` (the call trapped).
    pub(crate) fn discard_since(&mut self, marks: Marks) {
        self.outbox.truncate(marks.outbox);
        self.outbox_bytes = self.outbox.iter().map(|o| o.payload.len()).sum();
        self.timers.truncate(marks.timers);
        self.kicks.truncate(marks.kicks);
        self.pending_saves.truncate(marks.saves);
    }

    /// Hands the saves of a completed call to the save backend, keeping track of when the critical ones
    /// are durable.
    pub(crate) fn commit_saves(&mut self) {
        for (player, data, priority) in self.pending_saves.drain(..) {
            let durable = self.env.saves.store(&self.plugin, &player, data, priority);
            if let (SavePriority::Critical, Some(durable)) = (priority, durable) {
                self.critical_saves.push(durable);
            }
        }
    }

    /// Forgets the reads of a call nobody took (at the start of the next call; a replay's script stays).
    pub(crate) fn forget_save_reads(&mut self) {
        if let SaveReads::Record(reads) = &mut self.save_reads {
            reads.clear();
        }
    }

    /// Takes the saves the last call read, in order (for the room's journal).
    pub fn take_save_reads(&mut self) -> Vec<SaveRead> {
        match &mut self.save_reads {
            SaveReads::Record(reads) => std::mem::take(reads),
            SaveReads::Replay(_) => Vec::new(),
        }
    }

    /// Replaying: the next call is answered `reads` (what it read when it ran).
    pub fn replay_save_reads(&mut self, reads: VecDeque<SaveRead>) {
        self.save_reads = SaveReads::Replay(reads);
    }

    /// Live again: reads are answered by the save store and recorded.
    pub fn record_save_reads(&mut self) {
        self.save_reads = SaveReads::Record(Vec::new());
    }

    /// The answer to a read of `player`'s save if a replay has it.
    pub(super) fn replayed_read(&mut self, player: &str) -> Option<Option<Vec<u8>>> {
        let SaveReads::Replay(reads) = &mut self.save_reads else { return None };
        let at = reads.iter().position(|(p, _)| p == player)?;
        reads.remove(at).map(|(_, save)| save)
    }

    /// Records a live read.
    pub(super) fn record_read(&mut self, player: &str, save: &Option<Vec<u8>>) {
        if let SaveReads::Record(reads) = &mut self.save_reads {
            reads.push((player.to_string(), save.clone()));
        }
    }

    /// Takes the pending durability of the critical saves made since the last call: the room waits on
    /// them before sending anything the plugin queued alongside (a purchase is confirmed only once it is
    /// on disk).
    pub fn take_critical_saves(&mut self) -> Vec<crate::runtime::Durable> {
        std::mem::take(&mut self.critical_saves)
    }
}

/// Raised by the resource limiter when a memory would grow past the cap; the call traps with it.
#[derive(Debug, thiserror::Error)]
#[error("linear memory would grow to {desired} bytes, past the cap of {cap} bytes")]
pub struct MemoryCapExceeded {
    /// Requested size.
    pub desired: usize,
    /// The cap.
    pub cap: usize,
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            return Err(MemoryCapExceeded { desired, cap: self.memory_cap }.into());
        }
        self.linear_bytes += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 16)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// WASI clocks read the game clock: wall time is game time since the Unix epoch.
struct WasiClock(Arc<GameClock>);

impl wasmtime_wasi::HostWallClock for WasiClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now_ms())
    }
}

impl wasmtime_wasi::HostMonotonicClock for WasiClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        self.0.now_ms().saturating_mul(1_000_000)
    }
}

/// WASI random draws from the room's stream.
struct WasiRandom(Arc<RoomRng>);

impl rand_core::TryRng for WasiRandom {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next() as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            chunk.copy_from_slice(&self.0.next().to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_stream_is_a_pure_function_of_seed_and_draw() {
        let rng = RoomRng::new(7);
        let first: Vec<u64> = (0..4).map(|_| rng.next()).collect();
        assert_eq!(first, (0..4).map(|i| random_at(7, i)).collect::<Vec<_>>());
        assert_ne!(first[0], first[1]);
        rng.set_draws(2);
        assert_eq!(rng.next(), first[2], "a restored position continues the same stream");
        assert_ne!(random_at(8, 0), random_at(7, 0), "another seed, another stream");
    }
}
