//! The per-instance host state: it serves the `warden:plugin` imports and WASI for one instance.
//!
//! Everything a call does to the outside world is buffered here (sends, timers, kicks, saves) and taken
//! by the room after the call; a call that traps has its buffered effects discarded, as the contract says.
//! Time and randomness come from the room's [`GameClock`] and [`RoomRng`], which WASI clocks and random
//! read too, so a plugin sees no wall time and no entropy.

use crate::runtime::bindings::warden::plugin::{clock, messaging, random, saves, telemetry, types};
use crate::runtime::wasi::{GuestOutput, LogBudget, StdStream};
use crate::runtime::{LogLevel, Recipient, SaveBackend, SavePriority};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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

/// Runtime feature switches, shared by every instance of a plugin; the operator flips them.
#[derive(Debug, Default, Clone)]
pub struct Features(Arc<RwLock<BTreeSet<String>>>);

impl Features {
    /// A set with `names` switched on.
    pub fn on(names: &[&str]) -> Self {
        Features(Arc::new(RwLock::new(names.iter().map(|s| s.to_string()).collect())))
    }
    /// Switches `name` on or off.
    pub fn set(&self, name: &str, on: bool) {
        let mut set = self.0.write().unwrap();
        if on {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }
    /// Whether `name` is on.
    pub fn is_on(&self, name: &str) -> bool {
        self.0.read().unwrap().contains(name)
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
        }
    }
}

/// Lengths of the effect buffers before a call, to discard what a trapping call queued.
#[derive(Clone, Copy)]
pub(crate) struct Marks {
    outbox: usize,
    timers: usize,
    kicks: usize,
    saves: usize,
}

/// The host side of one instance.
pub struct HostState {
    plugin: Arc<str>,
    env: InstanceEnv,
    outbox: Vec<Outgoing>,
    timers: Vec<TimerRequest>,
    kicks: Vec<Kick>,
    pending_saves: Vec<(String, Vec<u8>, SavePriority)>,
    critical_saves: Vec<crate::runtime::Durable>,
    metrics: Vec<(String, f64)>,
    memory_cap: usize,
    log_line_bytes: usize,
    max_send_bytes: usize,
    oversized_sends: u64,
    pub(crate) deadline: crate::runtime::deadline::DeadlineProbe,
    stdout: GuestOutput,
    stderr: GuestOutput,
    last_panic: Option<String>,
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
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
            .build();
        HostState {
            plugin,
            env,
            outbox: Vec::new(),
            timers: Vec::new(),
            kicks: Vec::new(),
            pending_saves: Vec::new(),
            critical_saves: Vec::new(),
            metrics: Vec::new(),
            memory_cap: limits.memory_bytes,
            log_line_bytes: limits.log_line_bytes,
            max_send_bytes: limits.max_send_bytes,
            oversized_sends: 0,
            deadline: Default::default(),
            stdout,
            stderr,
            last_panic: None,
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// The instance's environment.
    pub fn env(&self) -> &InstanceEnv {
        &self.env
    }

    /// Takes the queued sends, in order.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// Drops the queued sends, keeping the buffer's capacity.
    pub fn clear_outbox(&mut self) {
        self.outbox.clear();
    }

    /// Messages the plugin sent that were larger than `limits.max_send_bytes` (dropped).
    pub fn oversized_sends(&self) -> u64 {
        self.oversized_sends
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

    /// Takes the recorded metric values.
    pub fn take_metrics(&mut self) -> Vec<(String, f64)> {
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

    /// The last bytes the guest wrote to stdout (bounded).
    pub fn stdout(&self) -> String {
        self.stdout.tail()
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
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            return Err(MemoryCapExceeded { desired, cap: self.memory_cap }.into());
        }
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

impl types::Host for HostState {}

impl messaging::Host for HostState {
    fn send(&mut self, to: Recipient, payload: Vec<u8>) {
        if payload.len() > self.max_send_bytes {
            // No client could receive it: drop it here rather than disconnect every recipient.
            self.oversized_sends += 1;
            if let Some(dropped) = self.env.log_budget.admit() {
                let (plugin, room, tick, bytes, cap) =
                    (&*self.plugin, &self.env.room, self.env.clock.tick(), payload.len(), self.max_send_bytes);
                tracing::warn!(target: "warden::plugin", plugin, room, tick, bytes, dropped,
                    "the plugin sent a message of {bytes} bytes, more than limits.max_send_bytes ({cap}); no client could receive it, so it was not sent");
            }
            return;
        }
        self.outbox.push(Outgoing { to, payload });
    }

    fn kick(&mut self, player: String, reason: String) {
        self.kicks.push(Kick { player, reason });
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> u64 {
        self.env.clock.now_ms()
    }

    fn tick(&mut self) -> u64 {
        self.env.clock.tick()
    }

    fn set_timer(&mut self, after_ms: u64, tag: String) {
        let due_ms = self.env.clock.now_ms().saturating_add(after_ms);
        self.timers.push(TimerRequest { due_ms, tag });
    }
}

impl random::Host for HostState {
    fn next(&mut self) -> u64 {
        self.env.rng.next()
    }
}

impl saves::Host for HostState {
    fn load_save(&mut self, player: String) -> Option<Vec<u8>> {
        // The plugin reads its own last write, even one not yet handed to the backend.
        if let Some((_, data, _)) = self.pending_saves.iter().rev().find(|(p, _, _)| *p == player) {
            return Some(data.clone());
        }
        self.env.saves.load(&self.plugin, &player)
    }

    fn store_save(&mut self, player: String, data: Vec<u8>, priority: SavePriority) {
        self.pending_saves.push((player, data, priority));
    }
}

impl telemetry::Host for HostState {
    fn log(&mut self, level: LogLevel, mut message: String) {
        if message.len() > self.log_line_bytes {
            message.truncate(message.floor_char_boundary(self.log_line_bytes));
            message.push_str(" [line cut at limits.log_line_bytes]");
        }
        if level == LogLevel::Error && message.starts_with("panicked at") {
            self.last_panic = Some(message.clone());
        }
        let Some(dropped) = self.env.log_budget.admit() else { return };
        let (plugin, room, tick) = (&*self.plugin, &self.env.room, self.env.clock.tick());
        if dropped > 0 {
            tracing::warn!(target: "warden::plugin", plugin, room, tick, dropped, "the plugin wrote more log lines than its room may; {dropped} were dropped");
        }
        match level {
            LogLevel::Trace => tracing::trace!(target: "warden::plugin", plugin, room, tick, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "warden::plugin", plugin, room, tick, "{message}"),
            LogLevel::Info => tracing::info!(target: "warden::plugin", plugin, room, tick, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "warden::plugin", plugin, room, tick, "{message}"),
            LogLevel::Error => tracing::error!(target: "warden::plugin", plugin, room, tick, "{message}"),
        }
    }

    fn metric(&mut self, name: String, value: f64) {
        self.metrics.push((name, value));
    }

    fn feature_enabled(&mut self, name: String) -> bool {
        self.env.features.is_on(&name)
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
