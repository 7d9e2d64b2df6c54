//! Players earn gold: `{"type":"earn","amount":N}` adds N to the sender's purse, reports it with
//! `metric("gold_gained", N)` (what an economy rule watches) and answers with the purse. `{"type":"chat"}`
//! is answered with nothing but counts as a message of type `chat`.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warden_sdk::{Ctx, Game, GameResult};

/// What players send.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GoldIn {
    /// Earn gold.
    Earn {
        /// How much.
        amount: u64,
    },
    /// Say something (nothing happens).
    Chat,
}

/// What players receive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GoldOut {
    /// Your purse after an `earn`.
    Purse {
        /// Gold held.
        gold: u64,
    },
}

/// The room: each player's purse.
#[derive(Default, Serialize, Deserialize)]
pub struct Gold {
    /// Gold per player.
    pub purses: BTreeMap<String, u64>,
}

impl Game for Gold {
    type In = GoldIn;
    type Out = GoldOut;
    fn on_message(&mut self, ctx: &mut Ctx<GoldOut>, player: &str, msg: GoldIn) -> GameResult {
        if let GoldIn::Earn { amount } = msg {
            let purse = self.purses.entry(player.to_string()).or_default();
            *purse += amount;
            ctx.metric("gold_gained", amount as f64);
            let gold = *purse;
            ctx.send(player, &GoldOut::Purse { gold });
        }
        Ok(())
    }
}

warden_sdk::export_game!(Gold);
