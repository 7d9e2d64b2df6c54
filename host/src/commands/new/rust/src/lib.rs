//! {{name}}: a Warden plugin. It greets whoever writes to it and counts greetings.
//!
//! Test: `cargo test`. Build: `cargo build --target wasm32-wasip2 --release`, then put
//! `target/wasm32-wasip2/release/{{crate}}.wasm` into a `warden serve --dev` plugin directory.
use serde::{Deserialize, Serialize};
use warden_sdk::{Ctx, Game, GameResult};

#[derive(Default, Serialize, Deserialize)]
pub struct Hello {
    pub greeted: u32,
}

impl Game for Hello {
    type In = String;
    type Out = String;
    fn on_message(&mut self, ctx: &mut Ctx<String>, player: &str, name: String) -> GameResult {
        self.greeted += 1;
        ctx.send(player, &format!("hello, {name} (greeting #{})", self.greeted));
        Ok(())
    }
}

warden_sdk::export_game!(Hello);

#[cfg(test)]
mod tests {
    #[test]
    fn greets_and_counts_and_keeps_the_count_across_a_swap() {
        let mut room = warden_sdk::testing::Harness::<super::Hello>::new();
        room.join("ann").unwrap();
        room.message("ann", &"Ann").unwrap();
        room.message("ann", &"Ann").unwrap();
        assert_eq!(room.received::<String>("ann"), ["hello, Ann (greeting #1)", "hello, Ann (greeting #2)"]);
        assert_eq!(room.round_trip().game().greeted, 2);
    }
}
