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
}

impl Game for Echo {
    type In = Blob;
    type Out = Blob;
    fn on_message(&mut self, ctx: &mut Ctx<Blob>, player: &str, msg: Blob) -> GameResult {
        self.echoed += 1;
        ctx.send(player, &msg);
        Ok(())
    }
}

warden_sdk::export_game!(Echo);
