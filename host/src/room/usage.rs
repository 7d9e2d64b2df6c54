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
            host_bytes: 0,
        };
        u.host_bytes = u.state_bytes + u.journal_bytes + u.timer_bytes + u.outbound_bytes;
        u
    }
}
