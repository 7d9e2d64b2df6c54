//! Answers every message with the same bytes: one decode, one host call (`send`), nothing else. The
//! dispatch benchmark runs it through the host, through raw wasmtime bindings and natively.
use serde::{Deserialize, Serialize};
use warden_sdk::{Ctx, Game, GameResult};

/// Opaque bytes, carried as a MessagePack bin.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Blob(#[serde(with = "serde_bytes")] pub Vec<u8>);

#[derive(Default, Serialize, Deserialize)]
pub struct Echo {
    pub echoed: u64,
    /// `ballast` bytes of state (from the `ballast` config key), so the swap benchmark can carry a
    /// state of a chosen size across.
    #[serde(default, with = "serde_bytes")]
    pub ballast: Vec<u8>,
}

impl Game for Echo {
    type In = Blob;
    type Out = Blob;
    fn init(&mut self, _ctx: &mut Ctx<Blob>, _room: &warden_sdk::RoomInfo, config: &warden_sdk::Config) -> GameResult {
        #[derive(Default, Deserialize)]
        struct EchoConfig {
            #[serde(default)]
            ballast: usize,
        }
        let config: EchoConfig = config.parse()?;
        self.ballast = (0..config.ballast).map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3]).collect();
        Ok(())
    }
    fn on_message(&mut self, ctx: &mut Ctx<Blob>, player: &str, msg: Blob) -> GameResult {
        self.echoed += 1;
        ctx.send(player, &msg);
        Ok(())
    }
}

warden_sdk::export_game!(Echo);
