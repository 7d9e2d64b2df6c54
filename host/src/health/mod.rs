//! Health of each plugin version: sliding windows of calls, `err` results, traps, deadline hits,
//! failed restores and call latency, and the [`Policy`] that decides when a version is bad.
//!
//! Rooms add their tick's counts to their version's [`VersionHealth`] once per tick (one short lock per
//! room per tick, not one per call). The deployer reads the window ([`VersionHealth::window`]) every
//! tenth of a second for each version under canary or probation and rolls it back on a breach.

mod counts;
pub mod crash;

pub use counts::{Counts, Export, Histogram, LATENCY_BUCKETS, Outcome, TRAP_KINDS};

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The health policy (`[health]` in warden.toml, or `[plugins.NAME.health]` for one plugin).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// The sliding window every figure is taken over, in milliseconds.
    pub window_ms: u64,
    /// A version whose share of `err` results in the window is above this, among its inputs (joins,
    /// leaves, messages, timers) or among its ticks, is bad...
    pub max_error_rate: f64,
    /// ...once it made at least this many such calls in the window.
    pub min_calls: u64,
    /// This many traps or deadline hits in the window is a trap storm: the version is bad.
    pub trap_storm: u64,
    /// A version whose p99 call latency is more than this many times the previous version's is bad
    /// (0 turns the check off)...
    pub latency_factor: f64,
    /// ...and more than this many microseconds (tiny latencies are noise).
    pub latency_floor_us: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { window_ms: 10_000, max_error_rate: 0.05, min_calls: 20, trap_storm: 5, latency_factor: 10.0, latency_floor_us: 2_000 }
    }
}

/// Why a version is bad.
#[derive(Clone, Debug, PartialEq)]
pub enum Breach {
    /// Too many `err` results, among the inputs or among the ticks.
    ErrorRate {
        /// `inputs` or `ticks`.
        of: &'static str,
        /// Errors in the window.
        errors: u64,
        /// Calls in the window.
        calls: u64,
        /// The limit.
        max: f64,
    },
    /// Too many traps and deadline hits.
    TrapStorm {
        /// Traps and deadline hits in the window.
        traps: u64,
        /// The limit.
        limit: u64,
    },
    /// A room could not take the version.
    FailedRestore(u64),
    /// A room trapped past its restart intensity.
    Escalation(u64),
    /// Calls much slower than on the previous version.
    Latency {
        /// This version's p99.
        p99_us: u64,
        /// The previous version's.
        previous_p99_us: u64,
    },
}

impl Breach {
    /// The rule broken, as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Breach::ErrorRate { .. } => "error_rate",
            Breach::TrapStorm { .. } => "trap_storm",
            Breach::FailedRestore(_) => "failed_restore",
            Breach::Escalation(_) => "escalation",
            Breach::Latency { .. } => "latency",
        }
    }
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Breach::ErrorRate { of, errors, calls, max } => write!(
                f,
                "error rate {:.1}% ({errors} of {calls} {of} returned err) is above the policy's {:.1}%",
                100.0 * *errors as f64 / *calls as f64,
                100.0 * max
            ),
            Breach::TrapStorm { traps, limit } => write!(f, "trap storm: {traps} traps or deadline hits in the window (limit {limit})"),
            Breach::FailedRestore(n) => write!(f, "{n} room(s) could not restore their state into it"),
            Breach::Escalation(n) => write!(f, "{n} room(s) trapped more often than their restart intensity allows"),
            Breach::Latency { p99_us, previous_p99_us } => {
                write!(f, "p99 call latency {p99_us} µs is far above the previous version's {previous_p99_us} µs")
            }
        }
    }
}

impl Policy {
    /// The first rule `window` breaks, given the previous version's p99 latency.
    pub fn check(&self, window: &Counts, previous_p99_us: Option<u64>) -> Option<Breach> {
        if window.failed_restores > 0 {
            return Some(Breach::FailedRestore(window.failed_restores));
        }
        if window.escalations > 0 {
            return Some(Breach::Escalation(window.escalations));
        }
        let traps = window.traps + window.deadlines;
        if traps >= self.trap_storm {
            return Some(Breach::TrapStorm { traps, limit: self.trap_storm });
        }
        // Inputs and ticks apart: a game ticking 20 times a second would otherwise hide a version that
        // fails a fifth of its messages behind its ticks.
        let (input_errors, inputs) = window.inputs();
        for (of, errors, calls) in [("inputs", input_errors, inputs), ("ticks", window.tick_errors, window.tick_calls)] {
            if calls >= self.min_calls && errors as f64 > self.max_error_rate * calls as f64 {
                return Some(Breach::ErrorRate { of, errors, calls, max: self.max_error_rate });
            }
        }
        if self.latency_factor > 0.0
            && window.calls >= self.min_calls
            && let (Some(p99), Some(prev)) = (window.p99_us(), previous_p99_us)
            && p99 > self.latency_floor_us
            && p99 as f64 > self.latency_factor * prev.max(1) as f64
        {
            return Some(Breach::Latency { p99_us: p99, previous_p99_us: prev });
        }
        None
    }
}

/// One version's counts: a ring of ten buckets spanning the policy window, plus totals since load.
pub struct VersionHealth {
    window: Duration,
    inner: Mutex<Ring>,
}

/// Rooms add to the newest bucket only (once a tick each); the totals are the buckets that left the
/// ring plus those in it, summed when read.
struct Ring {
    buckets: VecDeque<(u64, Counts)>,
    retired: Counts,
}

const BUCKETS: u64 = 10;

impl VersionHealth {
    /// Counts over a sliding `window`.
    pub fn new(window: Duration) -> Self {
        VersionHealth {
            window: window.max(Duration::from_millis(BUCKETS)),
            inner: Mutex::new(Ring { buckets: VecDeque::new(), retired: Counts::default() }),
        }
    }

    fn bucket_of(&self, at: Instant) -> u64 {
        let width = self.window.as_nanos() / u128::from(BUCKETS);
        (at.duration_since(*epoch()).as_nanos() / width) as u64
    }

    /// The span of the sliding window.
    pub fn span(&self) -> Duration {
        self.window
    }

    /// Adds counts taken now.
    pub fn add(&self, counts: &Counts) {
        if counts.is_empty() {
            return;
        }
        let bucket = self.bucket_of(Instant::now());
        let mut ring = self.inner.lock().unwrap();
        match ring.buckets.back_mut() {
            Some((b, c)) if *b == bucket => c.add(counts),
            _ => {
                ring.buckets.push_back((bucket, counts.clone()));
                while ring.buckets.len() as u64 > BUCKETS {
                    let (_, old) = ring.buckets.pop_front().expect("more than BUCKETS");
                    ring.retired.add(&old);
                }
            }
        }
    }

    /// The counts of the last window.
    pub fn window(&self) -> Counts {
        let now = self.bucket_of(Instant::now());
        let ring = self.inner.lock().unwrap();
        let mut sum = Counts::default();
        for (b, c) in &ring.buckets {
            if b + BUCKETS > now {
                sum.add(c);
            }
        }
        sum
    }

    /// Every count since the version was loaded.
    pub fn total(&self) -> Counts {
        let ring = self.inner.lock().unwrap();
        let mut total = ring.retired.clone();
        for (_, c) in &ring.buckets {
            total.add(c);
        }
        total
    }

    /// Forgets the window (not the totals): a version put back into service starts a fresh window.
    pub fn clear_window(&self) {
        let mut ring = self.inner.lock().unwrap();
        let Ring { buckets, retired } = &mut *ring;
        for (_, c) in buckets.drain(..) {
            retired.add(&c);
        }
    }
}

fn epoch() -> &'static Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(calls: u64, errors: u64, traps: u64) -> Counts {
        let mut c = Counts::default();
        for _ in 0..calls {
            c.call(10);
        }
        c.errors = errors;
        c.traps = traps;
        c
    }

    #[test]
    fn the_default_policy_needs_twenty_calls_and_more_than_five_percent() {
        let p = Policy::default();
        assert_eq!(p.check(&counts(19, 19, 0), None), None, "fewer than 20 calls decide nothing");
        assert_eq!(p.check(&counts(100, 5, 0), None), None, "5% is not above 5%");
        assert!(matches!(p.check(&counts(100, 6, 0), None), Some(Breach::ErrorRate { of: "inputs", errors: 6, calls: 100, .. })));
        // 20 failing messages among 400 ticks: 4.8% of all calls, but 20% of the messages.
        let mut hidden = counts(500, 20, 0);
        hidden.tick_calls = 400;
        assert!(matches!(p.check(&hidden, None), Some(Breach::ErrorRate { of: "inputs", errors: 20, calls: 100, .. })));
        assert!(matches!(p.check(&counts(3, 0, 5), None), Some(Breach::TrapStorm { traps: 5, .. })));
        let mut slow = Counts::default();
        for _ in 0..100 {
            slow.call(50_000);
        }
        assert!(matches!(p.check(&slow, Some(100)), Some(Breach::Latency { .. })));
        assert_eq!(p.check(&slow, Some(20_000)), None, "2.5x the previous is not far above it");
    }

    #[test]
    fn p99_is_the_bucket_holding_the_99th_percentile() {
        let mut c = Counts::default();
        for _ in 0..990 {
            c.call(3);
        }
        for _ in 0..10 {
            c.call(1_000);
        }
        assert_eq!(c.p99_us(), Some(3));
        c.call(1_000);
        assert_eq!(c.p99_us(), Some(1_023));
    }

    #[test]
    fn the_window_slides() {
        let h = VersionHealth::new(Duration::from_millis(200));
        h.add(&counts(10, 1, 0));
        assert_eq!(h.window().calls, 10);
        std::thread::sleep(Duration::from_millis(260));
        h.add(&counts(5, 0, 0));
        assert_eq!(h.window().calls, 5, "the first counts left the window");
        assert_eq!(h.total().calls, 15);
    }
}
