//! Recurses without bound on any message; every other export behaves.
use warden_sdk::{Ctx, Game, GameResult};

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Recurse {
    ticks: u64,
}

/// Not a tail call (the result is used after the call), so every level takes a wasm stack frame.
#[inline(never)]
#[allow(unconditional_recursion, reason = "recursing without end is the point of this guest")]
fn deeper(n: u64) -> u64 {
    std::hint::black_box(deeper(std::hint::black_box(n + 1))) ^ n
}

impl Game for Recurse {
    type In = serde::de::IgnoredAny;
    type Out = u64;
    fn on_message(&mut self, ctx: &mut Ctx<u64>, player: &str, _msg: serde::de::IgnoredAny) -> GameResult {
        let depth = deeper(0);
        ctx.send(player, &depth);
        Ok(())
    }
    fn on_tick(&mut self, _ctx: &mut Ctx<u64>, _tick: u64, _dt_ms: u32) -> GameResult {
        self.ticks += 1;
        Ok(())
    }
}

warden_sdk::export_game!(Recurse);
