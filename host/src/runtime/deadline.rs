//! Call deadlines that count the call's CPU time, not the time its thread spent descheduled.
//!
//! The engine's epoch advances every millisecond of wall time, and each call starts with a deadline of
//! `call_deadline_ms` epochs. A call that reaches it is not stopped outright: on a loaded machine the
//! thread may simply have been preempted, and stopping a healthy plugin then would crash rooms exactly
//! when the server is busiest. Instead the epoch callback samples the thread's CPU clock and extends the
//! deadline; the call is stopped once it has used a further full budget of CPU since that sample (an
//! endless loop is therefore stopped after at most about twice its budget), or once it has run for ten
//! budgets of wall time whatever the reason. The normal path costs nothing: the clock is read only when a
//! call outlives its first deadline.

use crate::runtime::limits::Deadline;
use std::time::{Duration, Instant};
use wasmtime::UpdateDeadline;

/// How many budgets of wall time a call may take at most, preempted or not.
pub const WALL_CAP_BUDGETS: u32 = 10;

/// The budget of what runs now (a call, or instantiation, each with its own), and where it stood when
/// it first reached its deadline.
#[derive(Debug)]
pub struct DeadlineProbe {
    deadline: Deadline,
    first_hit: Option<(Duration, Instant)>,
}

impl DeadlineProbe {
    /// A probe for something that runs under `deadline`.
    pub fn new(deadline: Deadline) -> Self {
        DeadlineProbe { deadline, first_hit: None }
    }

    /// Starts what runs next (done at the start of every call) under `deadline`, forgetting the
    /// previous one. Returns the epoch ticks to set as the store's deadline.
    pub fn start(&mut self, deadline: Deadline) -> u64 {
        *self = DeadlineProbe::new(deadline);
        deadline.ticks
    }

    /// Decides at a deadline hit, given the thread's CPU time and the wall time now.
    pub fn decide(&mut self, cpu_now: Duration, wall_now: Instant) -> UpdateDeadline {
        let (budget, ticks) = (self.deadline.budget(), self.deadline.ticks);
        match self.first_hit {
            None => {
                self.first_hit = Some((cpu_now, wall_now));
                UpdateDeadline::Continue(ticks)
            }
            Some((cpu, wall)) => {
                let cpu_used = cpu_now.saturating_sub(cpu);
                // The first deadline already took one budget of wall time.
                let wall_used = wall_now.saturating_duration_since(wall) + budget;
                if cpu_used >= budget || wall_used >= budget * WALL_CAP_BUDGETS {
                    UpdateDeadline::Interrupt
                } else {
                    UpdateDeadline::Continue(ticks)
                }
            }
        }
    }
}

/// CPU time consumed by the calling thread.
#[allow(unsafe_code)]
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TEN_MS: Deadline = Deadline { ms: 10, ticks: 10 };

    fn run(samples: &[(u64, u64)]) -> Vec<bool> {
        // (cpu ms, wall ms) at successive deadline hits; true = keep running.
        let t0 = Instant::now();
        let mut probe = DeadlineProbe::new(TEN_MS);
        samples
            .iter()
            .map(|&(cpu, wall)| matches!(probe.decide(MS * cpu as u32, t0 + MS * wall as u32), UpdateDeadline::Continue(10)))
            .collect()
    }

    #[test]
    fn a_busy_call_is_stopped_after_a_second_budget_of_cpu() {
        assert_eq!(run(&[(10, 10), (20, 20)]), [true, false]);
    }

    #[test]
    fn a_preempted_call_keeps_running_until_the_wall_cap() {
        // 1 ms of CPU per 10 ms of wall: preempted, not busy.
        let hits: Vec<(u64, u64)> = (1..=10).map(|i| (i, i * 10)).collect();
        let decisions = run(&hits);
        assert!(decisions[..9].iter().all(|&go| go), "{decisions:?}");
        assert!(!decisions[9], "stopped at ten budgets of wall time: {decisions:?}");
    }

    #[test]
    fn the_probe_resets_between_calls() {
        let t0 = Instant::now();
        let mut probe = DeadlineProbe::new(TEN_MS);
        probe.decide(MS * 10, t0);
        assert_eq!(probe.start(TEN_MS), 10);
        assert!(matches!(probe.decide(MS * 30, t0 + MS * 40), UpdateDeadline::Continue(_)), "a new call starts over");
    }

    #[test]
    fn each_start_brings_its_own_budget() {
        // Instantiation's 100 ms budget, then a call's 10 ms: the call is judged by its own.
        let t0 = Instant::now();
        let mut probe = DeadlineProbe::new(Deadline { ms: 100, ticks: 100 });
        assert!(matches!(probe.decide(MS * 100, t0 + MS * 100), UpdateDeadline::Continue(100)));
        assert!(matches!(probe.decide(MS * 150, t0 + MS * 150), UpdateDeadline::Continue(100)), "50 ms of CPU is within 100");
        probe.start(TEN_MS);
        assert!(matches!(probe.decide(MS * 160, t0 + MS * 160), UpdateDeadline::Continue(10)));
        assert!(matches!(probe.decide(MS * 180, t0 + MS * 180), UpdateDeadline::Interrupt), "20 ms of CPU is past 10");
    }

    #[test]
    fn the_thread_cpu_clock_advances_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i * i));
        }
        assert!(thread_cpu_time() > before, "{x}");
    }
}
