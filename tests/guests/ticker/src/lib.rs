//! Reports the game clock as the host drives it: a `Clock` broadcast every 100 ticks, and for each timer
//! a player asks for, `Set` when it is set and `Fired` when it fires.
use serde::{Deserialize, Serialize};
use warden_sdk::{Ctx, Game, GameResult};

/// Asks for a timer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SetTimer {
    /// Delay in game milliseconds.
    pub after_ms: u64,
    /// Tag handed back when it fires.
    pub tag: String,
}

/// What the guest reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// Every 100 ticks.
    Clock {
        /// `on-tick`'s tick.
        tick: u64,
        /// `clock.now-ms` during that call.
        now_ms: u64,
        /// `on-tick`'s dt.
        dt_ms: u32,
    },
    /// A timer was set.
    Set {
        /// Its tag.
        tag: String,
        /// Tick it was set on.
        tick: u64,
        /// Game time it was set at.
        now_ms: u64,
    },
    /// A timer fired.
    Fired {
        /// Its tag.
        tag: String,
        /// Tick it fired on.
        tick: u64,
        /// Game time it fired at.
        now_ms: u64,
    },
}

/// The guest's state: nothing to keep.
#[derive(Default, Serialize, Deserialize)]
pub struct Ticker;

impl Game for Ticker {
    type In = SetTimer;
    type Out = Report;
    fn on_message(&mut self, ctx: &mut Ctx<Report>, _player: &str, msg: SetTimer) -> GameResult {
        ctx.set_timer(msg.after_ms, &msg.tag);
        let (tick, now_ms) = (ctx.tick(), ctx.now_ms());
        ctx.broadcast(&Report::Set { tag: msg.tag, tick, now_ms });
        Ok(())
    }
    fn on_timer(&mut self, ctx: &mut Ctx<Report>, tag: &str) -> GameResult {
        let (tick, now_ms) = (ctx.tick(), ctx.now_ms());
        ctx.broadcast(&Report::Fired { tag: tag.to_string(), tick, now_ms });
        Ok(())
    }
    fn on_tick(&mut self, ctx: &mut Ctx<Report>, tick: u64, dt_ms: u32) -> GameResult {
        if tick.is_multiple_of(100) {
            let now_ms = ctx.now_ms();
            ctx.broadcast(&Report::Clock { tick, now_ms, dt_ms });
        }
        Ok(())
    }
}

warden_sdk::export_game!(Ticker);
