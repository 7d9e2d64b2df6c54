//! `warden-sdk`: write Warden game plugins in Rust.
//!
//! A plugin is a type implementing [`Game`] (every hook has a no-op default), exported once with
//! [`export_game!`]. The host drives it through the hooks; the plugin reaches players, time, randomness,
//! saves, logs and feature switches only through the [`Ctx`] it is handed. Messages are typed: inbound
//! messages decode into [`Game::In`], outbound ones encode from [`Game::Out`], both as MessagePack.
//! The game state is carried across versions by [`Game::snapshot`] and [`Game::migrate`], which default
//! to the type's own `Serialize`/`Deserialize`.
//!
//! A whole plugin:
//!
//! ```
//! use warden_sdk::{Ctx, Game, GameResult};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Hello { greeted: u32 }
//!
//! impl Game for Hello {
//!     type In = String;
//!     type Out = String;
//!     fn on_message(&mut self, ctx: &mut Ctx<String>, player: &str, name: String) -> GameResult {
//!         self.greeted += 1;
//!         ctx.send(player, &format!("hello, {name}"));
//!         Ok(())
//!     }
//! }
//!
//! warden_sdk::export_game!(Hello);
//! # fn main() {
//! # let mut h = warden_sdk::testing::Harness::<Hello>::new();
//! # h.join("ann").unwrap();
//! # h.message("ann", &"Ann").unwrap();
//! # assert_eq!(h.received::<String>("ann"), vec!["hello, Ann".to_string()]);
//! # }
//! ```
//!
//! Its `Cargo.toml` needs `crate-type = ["cdylib", "rlib"]` and the dependencies `warden-sdk` and
//! `serde`; build it with `cargo build --target wasm32-wasip2 --release`. Test its rules natively with
//! [`testing::Harness`], no wasm involved.

extern crate self as warden_sdk;

mod ctx;
mod driver;
mod game;
pub mod testing;
mod types;

pub use ctx::{Ctx, HostApi};
pub use game::{Config, Game, GameResult, decode, encode};
pub use types::{Level, Priority, Recipient, RoomInfo};

#[doc(hidden)]
pub mod __private;

/// Bindings generated from `wit/`; plugins never use them directly.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod __bindings {
    wit_bindgen::generate!({
        world: "game",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_game_world",
        default_bindings_module: "warden_sdk::__bindings",
    });
}
