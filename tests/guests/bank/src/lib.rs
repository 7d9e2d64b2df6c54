//! A bank: each player's balance is kept with a critical save on every deposit, and every deposit is
//! answered with a receipt. The host sends a receipt only once the save behind it is durable, so a
//! receipt is proof that the balance survives a crash.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warden_sdk::{Ctx, Game, GameResult, Priority};

/// Add `amount` to my balance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Deposit {
    /// How much.
    pub amount: u64,
}

/// What the bank says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BankOut {
    /// Sent on join: the balance from the player's save.
    Balance {
        /// The balance.
        balance: u64,
    },
    /// Sent for each deposit, once its save is durable.
    Receipt {
        /// The balance after the deposit.
        balance: u64,
    },
}

/// Balances of the players in the room.
#[derive(Default, Serialize, Deserialize)]
pub struct Bank {
    balances: BTreeMap<String, u64>,
}

impl Game for Bank {
    type In = Deposit;
    type Out = BankOut;
    fn on_join(&mut self, ctx: &mut Ctx<BankOut>, player: &str) -> GameResult {
        let balance: u64 = ctx.load_save(player)?.unwrap_or(0);
        self.balances.insert(player.to_string(), balance);
        ctx.send(player, &BankOut::Balance { balance });
        Ok(())
    }
    fn on_message(&mut self, ctx: &mut Ctx<BankOut>, player: &str, deposit: Deposit) -> GameResult {
        let balance = self.balances.entry(player.to_string()).or_default();
        *balance += deposit.amount;
        let balance = *balance;
        ctx.store_save(player, &balance, Priority::Critical)?;
        ctx.send(player, &BankOut::Receipt { balance });
        Ok(())
    }
}

warden_sdk::export_game!(Bank);
