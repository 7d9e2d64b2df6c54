//! Limits every plugin call and instance runs under.

use anyhow::{Result, ensure};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Per-call and per-instance limits, and the size of the instance pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock budget of one export call in milliseconds; past it the call traps (deadline).
    pub call_deadline_ms: u64,
    /// Budget of instantiating a component in milliseconds, judged like a call's (see
    /// [`crate::runtime::deadline`]) but apart from it: a Python or JavaScript component copies in
    /// megabytes of initial memory and runs its start functions, which takes longer than a call may.
    pub instantiate_deadline_ms: u64,
    /// How often the engine's epoch advances, in microseconds: the deadline's resolution.
    pub epoch_tick_us: u64,
    /// Linear memory cap per instance in bytes; growing past it traps.
    pub memory_bytes: usize,
    /// Native stack cap for wasm frames in bytes; deeper recursion traps.
    pub wasm_stack_bytes: usize,
    /// How many instances may exist at once (pooling allocator slots). In `warden.toml` it follows
    /// `rooms.max_rooms` unless set.
    pub max_instances: u32,
    /// Core module instances one component may contain (its own modules, the WASI adapter and the
    /// shims the component tooling adds): a Rust plugin has up to 8, a Python one (componentize-py)
    /// 14. The pool reserves `max_instances` times this.
    pub core_instances_per_component: u32,
    /// Linear memories one component may define. The pool reserves address space for `max_instances`
    /// times this, each up to `memory_bytes`.
    pub memories_per_component: u32,
    /// Tables one component may define.
    pub tables_per_component: u32,
    /// Map linear memory images copy-on-write instead of copying them in at instantiation. Off by
    /// default: copy-on-write halves the cost of one instantiation (about 9 vs 18 us), but when every
    /// room moves to a new version at once, its mappings and faults contend on the process's address
    /// space lock and the per-room pause triples (`cargo bench --bench swap`).
    pub memory_init_cow: bool,
    /// Linear memory a freed pool slot keeps resident, in bytes: the pages its instance touched are reset
    /// in place (found with Linux's `PAGEMAP_SCAN`, 6.7 and later) instead of handed back to the OS, so
    /// the next instance in the slot takes no page faults for them. Instantiation takes 0.55-0.65 of the
    /// time it takes with 0 (`cargo bench --bench dispatch`, which compares the two in the same run). A closed
    /// room's slot then holds up to this much memory (only what it touched) until another room takes
    /// it. 0, or a kernel without the scan, hands everything back at once (without the scan, a reset in
    /// place would write the whole amount).
    pub keep_resident_bytes: usize,
    /// Log lines a room's plugin may write per second (the `log` import, stdout and stderr together);
    /// past it lines are dropped and counted.
    pub log_lines_per_sec: u32,
    /// Log lines a room's plugin may write in a burst above that rate.
    pub log_burst: u32,
    /// Longest log line kept, in bytes (stdout and stderr lines are cut there).
    pub log_line_bytes: usize,
    /// Largest payload a plugin may `send`, in bytes. A larger one could reach no client (it would not
    /// fit a connection's outbound queue): it is dropped and logged, and its recipients stay connected.
    pub max_send_bytes: usize,
    /// Bytes of sends one call may queue (they wait in host memory until the end of the tick); past it
    /// the call traps (`limit`).
    pub max_queued_send_bytes: usize,
    /// Timers a room may have pending; setting one more traps the call.
    pub max_timers: usize,
    /// Longest name the plugin may hand the host (timer tags, metric and feature names, player ids,
    /// kick reasons), in bytes; a longer one traps the call.
    pub max_name_bytes: usize,
    /// Distinct `metric` names a room may report; further names are dropped (logged once).
    pub max_metric_names: usize,
    /// Largest player save (`store-save`), in bytes; a larger one traps the call.
    pub max_save_bytes: usize,
    /// Largest state `snapshot` may return (it becomes a checkpoint), in bytes; a larger one traps.
    pub max_state_bytes: usize,
    /// Most bytes one WASI `get-random-bytes` call may ask for; more traps the call.
    pub max_random_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_deadline_ms: 10,
            instantiate_deadline_ms: 100,
            epoch_tick_us: 1_000,
            memory_bytes: 64 << 20,
            wasm_stack_bytes: 512 << 10,
            // rooms.max_rooms (1,000) plus config::SPARE_INSTANCES.
            max_instances: 1_032,
            core_instances_per_component: 20,
            memories_per_component: 2,
            tables_per_component: 8,
            memory_init_cow: false,
            keep_resident_bytes: 2 << 20,
            log_lines_per_sec: 50,
            log_burst: 200,
            log_line_bytes: 4 << 10,
            max_send_bytes: 256 << 10,
            max_queued_send_bytes: 4 << 20,
            max_timers: 1_000,
            max_name_bytes: 256,
            max_metric_names: 64,
            max_save_bytes: 1 << 20,
            max_state_bytes: 8 << 20,
            max_random_bytes: 64 << 10,
        }
    }
}

impl Limits {
    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.call_deadline_ms > 0, "limits.call_deadline_ms must be above 0");
        ensure!(self.epoch_tick_us > 0, "limits.epoch_tick_us must be above 0");
        ensure!(
            self.epoch_tick_us <= self.call_deadline_ms * 1000,
            "limits.epoch_tick_us ({} us) must not exceed the call deadline ({} ms)",
            self.epoch_tick_us,
            self.call_deadline_ms
        );
        ensure!(self.memory_bytes >= 1 << 20, "limits.memory_bytes must be at least 1 MiB (a plugin needs room for its stack and heap)");
        ensure!(self.wasm_stack_bytes >= 64 << 10, "limits.wasm_stack_bytes must be at least 64 KiB");
        ensure!(self.max_instances > 0, "limits.max_instances must be above 0");
        ensure!(self.instantiate_deadline_ms > 0, "limits.instantiate_deadline_ms must be above 0");
        ensure!(
            self.core_instances_per_component > 0 && self.memories_per_component > 0 && self.tables_per_component > 0,
            "limits.core_instances_per_component, memories_per_component and tables_per_component must be above 0"
        );
        ensure!(self.log_lines_per_sec > 0 && self.log_burst > 0, "limits.log_lines_per_sec and limits.log_burst must be above 0");
        ensure!(self.log_line_bytes >= 80, "limits.log_line_bytes must be at least 80");
        ensure!(self.max_send_bytes >= 1024, "limits.max_send_bytes must be at least 1 KiB");
        ensure!(self.max_queued_send_bytes >= self.max_send_bytes, "limits.max_queued_send_bytes must be at least limits.max_send_bytes");
        ensure!(self.max_name_bytes >= 16, "limits.max_name_bytes must be at least 16");
        ensure!(
            self.max_timers > 0 && self.max_save_bytes > 0 && self.max_state_bytes > 0,
            "limits.max_timers, max_save_bytes and max_state_bytes must be above 0"
        );
        Ok(())
    }

    /// The epoch period.
    pub fn epoch_tick(&self) -> Duration {
        Duration::from_micros(self.epoch_tick_us)
    }

    /// A call's deadline.
    pub fn call_deadline(&self) -> Deadline {
        Deadline::new(self.call_deadline_ms, self.epoch_tick_us)
    }

    /// Instantiation's deadline.
    pub fn instantiate_deadline(&self) -> Deadline {
        Deadline::new(self.instantiate_deadline_ms, self.epoch_tick_us)
    }
}

/// A budget of guest time: in milliseconds, and in epoch ticks (rounded up, at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// The budget.
    pub ms: u64,
    /// The budget in epoch ticks.
    pub ticks: u64,
}

impl Deadline {
    fn new(ms: u64, epoch_tick_us: u64) -> Deadline {
        Deadline { ms, ticks: (ms * 1000).div_ceil(epoch_tick_us).max(1) }
    }

    /// The budget as a duration.
    pub fn budget(&self) -> Duration {
        Duration::from_millis(self.ms)
    }
}
