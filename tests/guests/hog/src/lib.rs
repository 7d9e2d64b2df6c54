//! Asks the host to hold more and more, on command: `"<what>:<n>"` sets `n` timers (`timers`), sets one
//! timer with an `n`-byte tag (`tag`), queues `n` sends of 64 KiB (`sends`), saves `n` bytes (`save`),
//! grows its state by `n` bytes (`state`, which the next snapshot carries), draws `n` random bytes through
//! WASI (`random`), or reports `n` distinct metrics (`metrics`). Each command answers `"<command>: ok"`.
//! `load-of:<player>` and `save-of:<player>` load or store the save of any player id; `burn:<n>` makes
//! every tick do `n` iterations of busy work.
use warden_sdk::{Ctx, Game, GameResult, Priority};

/// The guest state.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Hog {
    /// Ballast carried by every snapshot.
    #[serde(with = "serde_bytes")]
    pub ballast: Vec<u8>,
    /// Timers that fired.
    pub fired: u64,
    /// Iterations of busy work each tick (`burn:<n>`): a room that uses most of its CPU budget.
    #[serde(default)]
    pub burn: u64,
}

impl Game for Hog {
    type In = String;
    type Out = String;
    fn on_message(&mut self, ctx: &mut Ctx<String>, player: &str, command: String) -> GameResult {
        let (what, arg) = command.split_once(':').ok_or("expected <what>:<n>")?;
        match what {
            "load-of" => {
                let save: Option<serde_bytes::ByteBuf> = ctx.load_save(arg)?;
                ctx.send(player, &format!("{command}: {}", save.map_or("none".to_string(), |s| format!("{} bytes", s.len()))));
                return Ok(());
            }
            "save-of" => {
                ctx.store_save(arg, &serde_bytes::ByteBuf::from(vec![1u8; 8]), Priority::Normal)?;
                ctx.send(player, &format!("{command}: ok"));
                return Ok(());
            }
            _ => {}
        }
        let n: usize = arg.parse().map_err(|e| format!("{e}"))?;
        match what {
            "timers" => (0..n).for_each(|i| ctx.set_timer(60_000, &format!("t{i}"))),
            "tag" => ctx.set_timer(60_000, &"x".repeat(n)),
            "sends" => (0..n).for_each(|_| ctx.send_raw(player, &[0u8; 64 << 10])),
            "save" => ctx.store_save(player, &serde_bytes::ByteBuf::from(vec![7u8; n]), Priority::Normal)?,
            "state" => self.ballast.resize(self.ballast.len() + n, 1),
            "random" => {
                let bytes = wasip2::random::random::get_random_bytes(n as u64);
                self.ballast.push(bytes.len() as u8);
            }
            "metrics" => (0..n).for_each(|i| ctx.metric(&format!("m{i}"), 1.0)),
            "burn" => self.burn = n as u64,
            other => return Err(format!("unknown command {other:?}")),
        }
        ctx.send(player, &format!("{command}: ok"));
        Ok(())
    }
    fn on_tick(&mut self, _ctx: &mut Ctx<String>, _tick: u64, _dt_ms: u32) -> GameResult {
        let mut x = 0u64;
        for i in 0..self.burn {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        Ok(())
    }
    fn on_timer(&mut self, _ctx: &mut Ctx<String>, _tag: &str) -> GameResult {
        self.fired += 1;
        Ok(())
    }
}

warden_sdk::export_game!(Hog);
