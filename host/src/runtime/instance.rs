//! One live plugin instance and a typed call per export.

use crate::runtime::bindings::Game;
use crate::runtime::host_state::MemoryCapExceeded;
use crate::runtime::{HostState, Limits, RoomInfo};
use wasmtime::{Store, Trap};

/// What kind of bug a trap was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapKind {
    /// The guest panicked or hit `unreachable`.
    Panic,
    /// Recursion past the wasm stack cap.
    StackOverflow,
    /// Memory growth past the instance's cap.
    MemoryCap,
    /// The guest blocked inside a call (a sleep, a poll on something not ready): refused, see
    /// [`WouldBlock`](crate::runtime::WouldBlock).
    Blocked,
    /// The call crossed a host limit on what a plugin may make the host hold (timers, queued sends,
    /// a save's or the state's size, a name's length): see [`LimitExceeded`](crate::runtime::LimitExceeded).
    Limit,
    /// The host itself failed while serving one of the guest's calls (a bug in Warden, contained to
    /// this instance).
    HostPanic,
    /// Any other trap (out-of-bounds access, division by zero, ...).
    Other,
}

impl TrapKind {
    /// Every kind, in index order (`kind as usize` indexes `health::Counts::trap_kinds`).
    pub const ALL: [TrapKind; crate::health::TRAP_KINDS] = [
        TrapKind::Panic,
        TrapKind::StackOverflow,
        TrapKind::MemoryCap,
        TrapKind::Blocked,
        TrapKind::Limit,
        TrapKind::HostPanic,
        TrapKind::Other,
    ];

    /// Its name, as in crash reports and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            TrapKind::Panic => "panic",
            TrapKind::StackOverflow => "stack_overflow",
            TrapKind::MemoryCap => "memory_cap",
            TrapKind::Blocked => "blocked",
            TrapKind::Limit => "limit",
            TrapKind::HostPanic => "host_panic",
            TrapKind::Other => "other",
        }
    }
}

/// How a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin returned `err`: a handled gameplay error; the instance is fine.
    #[error("{export} returned an error: {message}")]
    Gameplay {
        /// The export.
        export: &'static str,
        /// The plugin's message.
        message: String,
    },
    /// The plugin trapped: a bug. The instance is poisoned and must be rebuilt.
    #[error("{export} trapped ({kind:?}): {message}")]
    Trap {
        /// The export.
        export: &'static str,
        /// What kind of trap.
        kind: TrapKind,
        /// The trap, the guest's panic message if any, and the wasm backtrace.
        message: String,
    },
    /// The call used up its CPU budget (or ten budgets of wall time) and was interrupted. The instance
    /// is poisoned.
    #[error("{export} ran past its deadline ({deadline_ms} ms of CPU, at most ten times that in wall time) and was stopped")]
    Deadline {
        /// The export.
        export: &'static str,
        /// The deadline.
        deadline_ms: u64,
    },
    /// An earlier trap poisoned this instance; no call runs on it again.
    #[error("the instance was poisoned by an earlier failure ({0}); build a new instance")]
    Poisoned(String),
}

impl CallError {
    /// The call's outcome, as counted.
    pub fn outcome(&self) -> crate::health::Outcome {
        use crate::health::Outcome;
        match self {
            CallError::Gameplay { .. } => Outcome::Err,
            CallError::Deadline { .. } => Outcome::Deadline,
            CallError::Trap { .. } | CallError::Poisoned(_) => Outcome::Trap,
        }
    }

    /// The kind of trap, for a trap.
    pub fn trap_kind(&self) -> Option<TrapKind> {
        match self {
            CallError::Trap { kind, .. } => Some(*kind),
            CallError::Poisoned(_) => Some(TrapKind::Other),
            _ => None,
        }
    }

    /// What went wrong in a line fit for a player: the export and the kind of failure, without the
    /// trap's backtrace (that goes to the log and the crash report).
    pub fn summary(&self) -> String {
        match self {
            CallError::Trap { export, kind, message } => {
                let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                format!("{export} trapped: {kind}: {}", trap_reason(message))
            }
            CallError::Poisoned(_) => "the game's instance had failed earlier".to_string(),
            other => other.to_string(),
        }
    }

    /// What a player may be told: the export and the kind of failure only. The trap's message (the
    /// guest's panic text, source paths, backtraces) is for operators: the log and the crash report.
    pub fn player_summary(&self) -> String {
        match self {
            CallError::Trap { export, kind, .. } => {
                let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                format!("{export} trapped: {kind}")
            }
            CallError::Deadline { export, .. } => format!("{export} ran past its deadline"),
            CallError::Poisoned(_) => "the game's instance had failed earlier".to_string(),
            CallError::Gameplay { message, .. } => message.clone(),
        }
    }

    /// Whether the instance is unusable after this error.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, CallError::Gameplay { .. })
    }
}

/// A plugin instance in its own store. Every call gets a fresh deadline; a trap or deadline hit poisons
/// the instance and discards what the failed call queued.
pub struct PluginInstance {
    store: Store<HostState>,
    game: Game,
    deadline: crate::runtime::limits::Deadline,
    poisoned: Option<String>,
}

impl PluginInstance {
    pub(crate) fn new(store: Store<HostState>, game: Game, limits: &Limits) -> Self {
        PluginInstance { store, game, deadline: limits.call_deadline(), poisoned: None }
    }

    /// The host state (queued sends, timers, kicks, stderr).
    pub fn host(&self) -> &HostState {
        self.store.data()
    }

    /// Bytes of linear memory the instance holds (all its memories).
    pub fn linear_memory_bytes(&self) -> usize {
        self.host().linear_bytes
    }

    /// The host state, mutably (to take what the calls queued).
    pub fn host_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Whether an earlier trap or deadline hit made this instance unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// `init(room, config)`.
    pub fn init(&mut self, room: &RoomInfo, config: &[u8]) -> Result<(), CallError> {
        self.call("init", |g, s| g.call_init(s, room, config))
    }

    /// `on-join(player)`.
    pub fn on_join(&mut self, player: &str) -> Result<(), CallError> {
        self.call("on-join", |g, s| g.call_on_join(s, player))
    }

    /// `on-leave(player)`.
    pub fn on_leave(&mut self, player: &str) -> Result<(), CallError> {
        self.call("on-leave", |g, s| g.call_on_leave(s, player))
    }

    /// `on-message(player, payload)`.
    pub fn on_message(&mut self, player: &str, payload: &[u8]) -> Result<(), CallError> {
        self.call("on-message", |g, s| g.call_on_message(s, player, payload))
    }

    /// `on-tick(tick, dt-ms)`.
    pub fn on_tick(&mut self, tick: u64, dt_ms: u32) -> Result<(), CallError> {
        self.call("on-tick", |g, s| g.call_on_tick(s, tick, dt_ms))
    }

    /// `on-timer(tag)`.
    pub fn on_timer(&mut self, tag: &str) -> Result<(), CallError> {
        self.call("on-timer", |g, s| g.call_on_timer(s, tag))
    }

    /// `snapshot()`. A state larger than `limits.max_state_bytes` traps (`limit`): it would become a
    /// checkpoint in memory and in the store.
    pub fn snapshot(&mut self) -> Result<Vec<u8>, CallError> {
        let max = self.store.data().limits.max_state_bytes;
        self.call("snapshot", |g, s| {
            let state = g.call_snapshot(s)?;
            if let Ok(state) = &state
                && state.len() > max
            {
                return Err(wasmtime::Error::new(crate::runtime::LimitExceeded {
                    what: format!("the plugin's snapshot is {} bytes", state.len()),
                    setting: "limits.max_state_bytes",
                    limit: max as u64,
                }));
            }
            Ok(state)
        })
    }

    /// `restore(state, from-version)`.
    pub fn restore(&mut self, state: &[u8], from_version: &str) -> Result<(), CallError> {
        self.call("restore", |g, s| g.call_restore(s, state, from_version))
    }

    fn call<R>(
        &mut self,
        export: &'static str,
        f: impl FnOnce(&Game, &mut Store<HostState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallError> {
        if let Some(why) = &self.poisoned {
            return Err(CallError::Poisoned(why.clone()));
        }
        let ticks = self.store.data_mut().deadline.start(self.deadline);
        self.store.set_epoch_deadline(ticks);
        let marks = self.store.data().marks();
        self.store.data_mut().forget_save_reads();
        // A panic in host code under this call (a bug in a host import) is contained to this instance:
        // wasmtime unwinds the wasm frames and the instance is poisoned like after a trap.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&self.game, &mut self.store)))
            .unwrap_or_else(|panic| Err(wasmtime::Error::new(HostPanicked(panic_message(&*panic)))));
        self.store.data_mut().flush_output();
        match result {
            Ok(Ok(value)) => {
                self.store.data_mut().commit_saves();
                Ok(value)
            }
            Ok(Err(message)) => {
                self.store.data_mut().commit_saves();
                Err(CallError::Gameplay { export, message })
            }
            Err(error) => {
                self.store.data_mut().discard_since(marks);
                let failure = self.classify(export, error);
                self.poisoned = Some(failure.to_string());
                Err(failure)
            }
        }
    }

    fn classify(&mut self, export: &'static str, error: wasmtime::Error) -> CallError {
        let kind = match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => return CallError::Deadline { export, deadline_ms: self.deadline.ms },
            Some(Trap::StackOverflow) => TrapKind::StackOverflow,
            Some(Trap::UnreachableCodeReached) => TrapKind::Panic,
            _ if error.downcast_ref::<MemoryCapExceeded>().is_some() => TrapKind::MemoryCap,
            _ if error.downcast_ref::<crate::runtime::WouldBlock>().is_some() => TrapKind::Blocked,
            _ if error.downcast_ref::<crate::runtime::LimitExceeded>().is_some() => TrapKind::Limit,
            _ if error.downcast_ref::<HostPanicked>().is_some() => TrapKind::HostPanic,
            _ => TrapKind::Other,
        };
        let stderr = self.store.data().stderr();
        let panic =
            self.store.data_mut().take_panic().or_else(|| stderr.rfind("panicked at").map(|at| stderr[at..].trim_end().to_string()));
        // `{:?}` gives the wasm backtrace; with RUST_BACKTRACE set it also appends the host's own stack,
        // which says nothing about the plugin.
        let debug = format!("{error:?}");
        let debug = debug.split("\n\nStack backtrace:").next().unwrap_or_default();
        let message = match panic {
            Some(panic) => format!("{panic}\n{debug}"),
            None => debug.to_string(),
        };
        CallError::Trap { export, kind, message }
    }
}

/// The reason of a trap without its wasm backtrace: the guest's panic message if it has one, else the
/// innermost cause, cut to 300 characters.
fn trap_reason(message: &str) -> String {
    let reason = match message.find("error while executing at wasm backtrace") {
        Some(0) | None => {
            let cause = message.rsplit("Caused by:").next().unwrap_or(message);
            let line = cause.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
            line.split_once(": ").filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit())).map_or(line, |(_, rest)| rest).to_string()
        }
        Some(at) => message[..at].trim().to_string(),
    };
    match reason.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &reason[..cut]),
        None => reason,
    }
}

/// A host import panicked under a guest call.
#[derive(Debug, thiserror::Error)]
#[error("the host failed while serving the plugin's call: {0}")]
struct HostPanicked(String);

/// The message of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::trap_reason;

    #[test]
    fn a_trap_reason_is_the_panic_message_or_the_innermost_cause_without_the_backtrace() {
        let panic = "panicked at src/lib.rs:3:5:\nboom\nerror while executing at wasm backtrace:\n    0: 0x1234 - f\n\nCaused by:\n    wasm trap: unreachable";
        assert_eq!(trap_reason(panic), "panicked at src/lib.rs:3:5:\nboom");
        let limit = "error while executing at wasm backtrace:\n    0: 0x1234 - f\n\nCaused by:\n    the plugin set a timer, more than limits.max_timers (1000) allows";
        assert_eq!(trap_reason(limit), "the plugin set a timer, more than limits.max_timers (1000) allows");
        assert_eq!(trap_reason("plain"), "plain");
        assert!(trap_reason(&"x".repeat(1000)).len() < 310);
    }
}
