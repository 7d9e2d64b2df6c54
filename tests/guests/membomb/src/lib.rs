//! Allocates and touches 1 MiB blocks without end on any message; every other export behaves.
use warden_sdk::{Ctx, Game, GameResult};

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct MemBomb {
    ticks: u64,
}

impl Game for MemBomb {
    type In = serde::de::IgnoredAny;
    type Out = u64;
    fn on_message(&mut self, _ctx: &mut Ctx<u64>, _player: &str, _msg: serde::de::IgnoredAny) -> GameResult {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![0xA5u8; 1 << 20]));
        }
    }
    fn on_tick(&mut self, _ctx: &mut Ctx<u64>, _tick: u64, _dt_ms: u32) -> GameResult {
        self.ticks += 1;
        Ok(())
    }
}

warden_sdk::export_game!(MemBomb);
