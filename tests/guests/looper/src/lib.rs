//! Loops forever on any message; every other export behaves.
use warden_sdk::{Ctx, Game, GameResult};

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Looper {
    ticks: u64,
}

impl Game for Looper {
    type In = serde::de::IgnoredAny;
    type Out = u64;
    fn on_message(&mut self, ctx: &mut Ctx<u64>, _player: &str, _msg: serde::de::IgnoredAny) -> GameResult {
        let mut spins = 0u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(ctx.tick()));
        }
    }
    fn on_tick(&mut self, _ctx: &mut Ctx<u64>, _tick: u64, _dt_ms: u32) -> GameResult {
        self.ticks += 1;
        Ok(())
    }
}

warden_sdk::export_game!(Looper);
