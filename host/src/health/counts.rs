//! [`Counts`]: what a room counts of its plugin calls and ticks, in plain fields it owns. A room adds a
//! tick's counts to its version's [`VersionHealth`](super::VersionHealth) once per tick; the health
//! policy, `warden status`, the rooms listing and `/metrics` all read these same figures, so nothing on
//! the per-call path is counted twice or published per call.

use serde::{Deserialize, Serialize};

/// Latency buckets: bucket `i` holds calls of `2^i` to `2^(i+1) - 1` microseconds (bucket 0 also 0 µs).
pub const LATENCY_BUCKETS: usize = 24;

/// How many kinds of trap there are (`runtime::TrapKind`), for [`Counts::trap_kinds`].
pub const TRAP_KINDS: usize = 7;

/// The exports a room calls with inputs (`init`, `snapshot` and `restore` are counted by swaps,
/// checkpoints and restores instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    /// `on-join`.
    Join,
    /// `on-leave`.
    Leave,
    /// `on-message`.
    Message,
    /// `on-timer`.
    Timer,
    /// `on-tick`.
    Tick,
}

impl Export {
    /// Every export, in index order.
    pub const ALL: [Export; 5] = [Export::Join, Export::Leave, Export::Message, Export::Timer, Export::Tick];

    /// Its name in the WIT world.
    pub fn name(self) -> &'static str {
        match self {
            Export::Join => "on-join",
            Export::Leave => "on-leave",
            Export::Message => "on-message",
            Export::Timer => "on-timer",
            Export::Tick => "on-tick",
        }
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It returned `ok`.
    Ok,
    /// It returned `err` (a handled gameplay error).
    Err,
    /// It trapped.
    Trap,
    /// It was stopped at its deadline.
    Deadline,
}

impl Outcome {
    /// Every outcome, in index order.
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Err, Outcome::Trap, Outcome::Deadline];

    /// Its name as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Err => "err",
            Outcome::Trap => "trap",
            Outcome::Deadline => "deadline",
        }
    }
}

/// Counts over some span of time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Plugin calls.
    pub calls: u64,
    /// Calls that returned `err`.
    pub errors: u64,
    /// Of `calls`, the `on-tick` ones (the rest are inputs: joins, leaves, messages, timers).
    pub tick_calls: u64,
    /// Of `errors`, the `on-tick` ones.
    pub tick_errors: u64,
    /// Calls that trapped.
    pub traps: u64,
    /// Calls stopped at their deadline.
    pub deadlines: u64,
    /// `restore` calls that failed (a room could not take the version).
    pub failed_restores: u64,
    /// Rooms that trapped more often than their restart intensity allows.
    pub escalations: u64,
    /// Ticks run.
    #[serde(default)]
    pub ticks: u64,
    /// Ticks that started more than one tick period after their scheduled time.
    #[serde(default)]
    pub late_ticks: u64,
    /// Calls by export and outcome: `by_export[Export as usize][Outcome as usize]`.
    #[serde(skip)]
    pub by_export: [[u64; 4]; 5],
    /// Traps by `runtime::TrapKind` index.
    #[serde(skip)]
    pub trap_kinds: [u64; TRAP_KINDS],
    /// Call latency (µs) of the calls that returned.
    #[serde(skip)]
    pub latency: Histogram,
    /// Tick durations (µs).
    #[serde(skip)]
    pub tick_us: Histogram,
}

/// A histogram of microseconds in power-of-two buckets: bucket `i` holds values of `2^i` to
/// `2^(i+1) - 1` (bucket 0 also 0, the last one everything above). Plain fields: recording is two adds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    buckets: [u64; LATENCY_BUCKETS],
    sum: u64,
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, micros: u64) {
        self.buckets[bucket(micros)] += 1;
        self.sum += micros;
    }

    /// Adds `other` into this one.
    pub fn add(&mut self, other: &Histogram) {
        add_all(&mut self.buckets, &other.buckets);
        self.sum += other.sum;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The sum of the values recorded (µs).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// The upper bound of the bucket holding quantile `q` (0 to 1), or `None` if empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some((1u64 << (i + 1)) - 1);
            }
        }
        None
    }

    /// Per bucket: (upper bound in µs, values in it); the last bucket's bound is `None` (it holds
    /// everything above the one before: the `+Inf` bucket).
    pub fn buckets(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        self.buckets.iter().enumerate().map(|(i, n)| ((i + 1 < LATENCY_BUCKETS).then(|| 1u64 << (i + 1)), *n))
    }
}

/// `a += b` element by element. Indexed over a fixed length, the compiler unrolls and vectorizes it;
/// the `flatten().zip()` this replaced stayed a branchy scalar loop, and rooms add their counts every
/// tick (callgrind: 370 instructions per `Counts::add`, now about 100).
#[inline(always)]
fn add_all<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
    for i in 0..N {
        a[i] += b[i];
    }
}

fn bucket(micros: u64) -> usize {
    (64 - micros.leading_zeros() as usize).saturating_sub(1).min(LATENCY_BUCKETS - 1)
}

impl Counts {
    /// Adds one call that took `micros` (the latency of a trap or deadline hit is not counted: a
    /// deadline hit is the deadline).
    pub fn record(&mut self, export: Export, outcome: Outcome, micros: u64) {
        self.calls += 1;
        self.by_export[export as usize][outcome as usize] += 1;
        let tick = export == Export::Tick;
        self.tick_calls += u64::from(tick);
        match outcome {
            Outcome::Ok => {}
            Outcome::Err => {
                self.errors += 1;
                self.tick_errors += u64::from(tick);
            }
            Outcome::Trap => self.traps += 1,
            Outcome::Deadline => self.deadlines += 1,
        }
        if matches!(outcome, Outcome::Ok | Outcome::Err) {
            self.latency.record(micros);
        }
    }

    /// Adds one call that took `micros` and returned `ok` (tests, benchmarks).
    pub fn call(&mut self, micros: u64) {
        self.record(Export::Message, Outcome::Ok, micros);
    }

    /// Counts a trap of kind `kind` (a `runtime::TrapKind` index) by a call counted apart, or by a
    /// host-initiated call (a snapshot) that is not.
    pub fn trap_kind(&mut self, kind: usize) {
        self.trap_kinds[kind.min(TRAP_KINDS - 1)] += 1;
    }

    /// Adds one tick that took `micros`, late or not.
    pub fn tick(&mut self, micros: u64, late: bool) {
        self.ticks += 1;
        self.late_ticks += u64::from(late);
        self.tick_us.record(micros);
    }

    /// Adds `other` into these counts.
    pub fn add(&mut self, other: &Counts) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.tick_calls += other.tick_calls;
        self.tick_errors += other.tick_errors;
        self.traps += other.traps;
        self.deadlines += other.deadlines;
        self.failed_restores += other.failed_restores;
        self.escalations += other.escalations;
        self.ticks += other.ticks;
        self.late_ticks += other.late_ticks;
        for (a, b) in self.by_export.iter_mut().zip(&other.by_export) {
            add_all(a, b);
        }
        add_all(&mut self.trap_kinds, &other.trap_kinds);
        self.latency.add(&other.latency);
        self.tick_us.add(&other.tick_us);
    }

    /// Forgets everything (a room's tally after it was added on).
    pub fn clear(&mut self) {
        *self = Counts::default();
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        // Every other field only moves with one of these (a call, a tick, or a trap outside a call).
        self.calls == 0 && self.ticks == 0 && self.traps == 0 && self.failed_restores == 0 && self.escalations == 0
    }

    /// Share of calls that returned `err`.
    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { self.errors as f64 / self.calls as f64 }
    }

    /// (errors, calls) of the inputs (every call but `on-tick`).
    pub fn inputs(&self) -> (u64, u64) {
        (self.errors - self.tick_errors, self.calls - self.tick_calls)
    }

    /// The 99th percentile of call latency in microseconds (the upper bound of its power-of-two bucket),
    /// or `None` without calls.
    pub fn p99_us(&self) -> Option<u64> {
        self.latency.quantile(0.99)
    }

    /// The 99th percentile of tick duration in microseconds (as [`Counts::p99_us`]), or `None` without
    /// ticks.
    pub fn tick_p99_us(&self) -> Option<u64> {
        self.tick_us.quantile(0.99)
    }
}
