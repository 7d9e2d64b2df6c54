//! Room lifecycle counts for `/metrics`: rooms opened and closed per game (closes by reason), swaps and
//! rollbacks of rooms. Written when such a thing happens (never per tick or per call).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Why a room closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloseReason {
    /// Empty past its grace period.
    Empty,
    /// The server shut down.
    Shutdown,
    /// Its instance trapped past the restart intensity on a stable version.
    Crashed,
    /// Its first instance could not be built.
    FailedToStart,
    /// Its task failed outside any plugin call (a bug in the host).
    HostPanic,
    /// The host stopped serving rooms (its fleet lease lapsed); it resumes from the store.
    Moved,
}

impl CloseReason {
    /// Its name as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::Empty => "empty",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Crashed => "crashed",
            CloseReason::FailedToStart => "failed_to_start",
            CloseReason::HostPanic => "host_panic",
            CloseReason::Moved => "moved",
        }
    }
}

/// Rooms opened and closed, per game.
#[derive(Default)]
pub struct Lifecycle {
    inner: Mutex<LifecycleCounts>,
}

/// One reading of a [`Lifecycle`].
#[derive(Clone, Debug, Default)]
pub struct LifecycleCounts {
    /// Rooms opened, per game.
    pub opened: BTreeMap<String, u64>,
    /// Joins refused because opening their room would pass `rooms.max_rooms`, per game.
    pub refused_full: BTreeMap<String, u64>,
    /// Rooms closed, per game and reason.
    pub closed: BTreeMap<(String, CloseReason), u64>,
    /// Rooms that moved to a new version at a tick boundary, per game.
    pub swaps: BTreeMap<String, u64>,
    /// Rooms that left a bad version by replaying their journal, per game.
    pub rollbacks: BTreeMap<String, u64>,
}

impl Lifecycle {
    /// A room of `game` opened.
    pub fn opened(&self, game: &str) {
        *self.inner.lock().unwrap().opened.entry(game.to_string()).or_default() += 1;
    }

    /// A join to a new room of `game` was refused: the host holds `rooms.max_rooms`.
    pub fn refused_full(&self, game: &str) {
        *self.inner.lock().unwrap().refused_full.entry(game.to_string()).or_default() += 1;
    }

    /// A room of `game` closed.
    pub fn closed(&self, game: &str, reason: CloseReason) {
        *self.inner.lock().unwrap().closed.entry((game.to_string(), reason)).or_default() += 1;
    }

    /// A room of `game` moved to a new version.
    pub fn swapped(&self, game: &str) {
        *self.inner.lock().unwrap().swaps.entry(game.to_string()).or_default() += 1;
    }

    /// A room of `game` left a bad version.
    pub fn rolled_back(&self, game: &str) {
        *self.inner.lock().unwrap().rollbacks.entry(game.to_string()).or_default() += 1;
    }

    /// The counts so far.
    pub fn get(&self) -> LifecycleCounts {
        self.inner.lock().unwrap().clone()
    }
}
