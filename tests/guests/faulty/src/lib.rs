//! Fails on command, in any export. Two ways to command it:
//! - feature switches set by the host: `fault.trap.<export>` makes `<export>` trap (panic), and
//!   `fault.err.<export>` makes it return `err` (export names as in WIT: `init`, `on-join`, ...);
//! - messages: `{"fail": "<export>", "mode": "trap" | "err" | "ok"}` changes the plan at run time (kept in
//!   the state, so it survives snapshot/restore).
//!
//! - room ids: `init` traps in a room whose id starts with `trap-init` (a version whose new rooms cannot
//!   start, while its smoke test and every other room pass).
//!
//! Otherwise it behaves: it counts calls per export and answers each message with the count of messages
//! (queued before the fault plan is checked, so a failing message has queued one send).
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warden_sdk::{Config, Ctx, Game, GameResult, RoomInfo};

/// What to do when an export is called.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Behave.
    Ok,
    /// Return `err`.
    Err,
    /// Trap.
    Trap,
}

/// A command changing the plan for one export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Command {
    /// Export name as in WIT.
    pub fail: String,
    /// What it should do from now on.
    pub mode: Mode,
}

/// Any message: a command, or anything else (counted).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum FaultyIn {
    /// Change the plan.
    Command(Command),
    /// Anything else.
    Other(serde::de::IgnoredAny),
}

/// The guest state.
#[derive(Default, Serialize, Deserialize)]
pub struct Faulty {
    /// Plan set by messages.
    pub plan: BTreeMap<String, Mode>,
    /// Calls seen per export.
    pub calls: BTreeMap<String, u64>,
}

fn check(plan: &BTreeMap<String, Mode>, features: impl Fn(&str) -> bool, export: &str) -> GameResult {
    let mode = if features(&format!("fault.trap.{export}")) {
        Mode::Trap
    } else if features(&format!("fault.err.{export}")) {
        Mode::Err
    } else {
        plan.get(export).copied().unwrap_or(Mode::Ok)
    };
    match mode {
        Mode::Ok => Ok(()),
        Mode::Err => Err(format!("faulty: {export} fails on command")),
        Mode::Trap => panic!("faulty: {export} traps on command"),
    }
}

impl Faulty {
    fn enter(&mut self, ctx: &Ctx<u64>, export: &str) -> GameResult {
        *self.calls.entry(export.to_string()).or_default() += 1;
        check(&self.plan, |f| ctx.feature_enabled(f), export)
    }
}

impl Game for Faulty {
    type In = FaultyIn;
    type Out = u64;
    fn init(&mut self, ctx: &mut Ctx<u64>, room: &RoomInfo, _config: &Config) -> GameResult {
        if room.id.starts_with("trap-init") {
            panic!("faulty: init traps in room {}", room.id);
        }
        self.enter(ctx, "init")
    }
    fn on_join(&mut self, ctx: &mut Ctx<u64>, _player: &str) -> GameResult {
        self.enter(ctx, "on-join")
    }
    fn on_leave(&mut self, ctx: &mut Ctx<u64>, _player: &str) -> GameResult {
        self.enter(ctx, "on-leave")
    }
    fn on_message(&mut self, ctx: &mut Ctx<u64>, player: &str, msg: FaultyIn) -> GameResult {
        if let FaultyIn::Command(c) = msg {
            self.plan.insert(c.fail, c.mode);
            return Ok(());
        }
        // Queue the answer first: a test can then see that a trap discards it and an err keeps it.
        let n = self.calls.get("on-message").copied().unwrap_or(0) + 1;
        ctx.send(player, &n);
        self.enter(ctx, "on-message")
    }
    fn on_tick(&mut self, ctx: &mut Ctx<u64>, _tick: u64, _dt_ms: u32) -> GameResult {
        self.enter(ctx, "on-tick")
    }
    fn on_timer(&mut self, ctx: &mut Ctx<u64>, _tag: &str) -> GameResult {
        self.enter(ctx, "on-timer")
    }
    fn snapshot(&self) -> GameResult<Vec<u8>> {
        check(&self.plan, |_| false, "snapshot")?;
        warden_sdk::encode(self)
    }
    fn migrate(_from_version: &str, state: &[u8]) -> GameResult<Self> {
        let me: Faulty = warden_sdk::decode(state)?;
        check(&me.plan, |_| false, "restore")?;
        Ok(me)
    }
}

warden_sdk::export_game!(Faulty);

#[cfg(test)]
mod tests {
    use super::*;
    use warden_sdk::testing::Harness;

    #[test]
    fn messages_and_switches_command_failures() {
        let mut r = Harness::<Faulty>::new();
        r.join("p").unwrap();
        r.message("p", &"hi").unwrap();
        assert_eq!(r.received::<u64>("p"), vec![1]);
        r.message("p", &Command { fail: "on-tick".into(), mode: Mode::Err }).unwrap();
        assert!(r.tick().unwrap_err().contains("on-tick fails on command"));
        r.host().features.insert("fault.err.on-message".into());
        assert!(r.message("p", &1).is_err());
        assert_eq!(r.received::<u64>("p"), vec![2], "the answer was queued before the error");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            r.message("p", &Command { fail: "on-leave".into(), mode: Mode::Trap }).unwrap();
            r.leave("p")
        }));
        assert!(panicked.is_err(), "trap mode panics (a trap in wasm)");
    }
}
