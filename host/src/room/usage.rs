//! What each room makes the host hold, per room, for listings: the room's task writes it once a tick
//! (relaxed atomic stores, nothing on the per-call path), `GET /rooms` and `warden status` read it.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// A room's memory use, updated at the end of each of its ticks.
#[derive(Debug, Default)]
pub struct RoomUsage {
    linear_memory_bytes: AtomicU64,
    state_bytes: AtomicU64,
    journal_bytes: AtomicU64,
    timers: AtomicU64,
    timer_bytes: AtomicU64,
    outbound_bytes: AtomicU64,
    players: AtomicU64,
    ticks: AtomicU64,
    late_ticks: AtomicU64,
    tick_p99_us: AtomicU64,
    inbox: AtomicU64,
    journal_entries: AtomicU64,
    checkpoint_tick: AtomicU64,
    tick: AtomicU64,
}

/// One reading of a [`RoomUsage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Usage {
    /// The plugin instance's linear memories (bounded by `limits.memory_bytes` each).
    pub linear_memory_bytes: u64,
    /// The state held for a rollback or restart: the room's last checkpoint (`limits.max_state_bytes`).
    pub state_bytes: u64,
    /// The journal since that checkpoint (`rooms.journal_max_bytes` forces a checkpoint).
    pub journal_bytes: u64,
    /// Timers set and not fired (`limits.max_timers`).
    pub timers: u64,
    /// What those timers hold, tags included.
    pub timer_bytes: u64,
    /// Frames queued to the room's players and not yet written (`net.outbound_queue_bytes` each).
    pub outbound_bytes: u64,
    /// Players in the room.
    pub players: u64,
    /// Ticks run since the room opened.
    pub ticks: u64,
    /// Of those, ticks that started more than a tick period late.
    pub late_ticks: u64,
    /// The 99th percentile of its tick durations since it opened (µs, a power-of-two bucket's bound).
    pub tick_p99_us: u64,
    /// Inputs waiting in its inbox.
    pub inbox: u64,
    /// Calls in the journal since the checkpoint.
    pub journal_entries: u64,
    /// The tick its last checkpoint was taken at (its age is `tick - checkpoint_tick` ticks of game time).
    pub checkpoint_tick: u64,
    /// Its game clock, in ticks.
    pub tick: u64,
    /// Everything above but linear memory: what the room makes the host hold outside the wasm sandbox.
    pub host_bytes: u64,
}

impl RoomUsage {
    /// Records a reading (`host_bytes` is computed from the rest).
    pub fn set(&self, u: Usage) {
        let r = Ordering::Relaxed;
        self.linear_memory_bytes.store(u.linear_memory_bytes, r);
        self.state_bytes.store(u.state_bytes, r);
        self.journal_bytes.store(u.journal_bytes, r);
        self.timers.store(u.timers, r);
        self.timer_bytes.store(u.timer_bytes, r);
        self.outbound_bytes.store(u.outbound_bytes, r);
        self.players.store(u.players, r);
        self.ticks.store(u.ticks, r);
        self.late_ticks.store(u.late_ticks, r);
        self.tick_p99_us.store(u.tick_p99_us, r);
        self.inbox.store(u.inbox, r);
        self.journal_entries.store(u.journal_entries, r);
        self.checkpoint_tick.store(u.checkpoint_tick, r);
        self.tick.store(u.tick, r);
    }

    /// The tick p99 last written.
    pub fn tick_p99_us(&self) -> u64 {
        self.tick_p99_us.load(Ordering::Relaxed)
    }

    /// The last reading.
    pub fn get(&self) -> Usage {
        let r = Ordering::Relaxed;
        let mut u = Usage {
            linear_memory_bytes: self.linear_memory_bytes.load(r),
            state_bytes: self.state_bytes.load(r),
            journal_bytes: self.journal_bytes.load(r),
            timers: self.timers.load(r),
            timer_bytes: self.timer_bytes.load(r),
            outbound_bytes: self.outbound_bytes.load(r),
            players: self.players.load(r),
            ticks: self.ticks.load(r),
            late_ticks: self.late_ticks.load(r),
            tick_p99_us: self.tick_p99_us.load(r),
            inbox: self.inbox.load(r),
            journal_entries: self.journal_entries.load(r),
            checkpoint_tick: self.checkpoint_tick.load(r),
            tick: self.tick.load(r),
            host_bytes: 0,
        };
        u.host_bytes = u.state_bytes + u.journal_bytes + u.timer_bytes + u.outbound_bytes;
        u
    }
}
