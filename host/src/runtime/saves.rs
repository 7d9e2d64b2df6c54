//! Where `load-save` and `store-save` go. The persistence issue implements [`SaveBackend`] with the save
//! queue and the SQL stores; [`MemorySaves`] serves tests and the plain runtime.

use crate::runtime::SavePriority;
use std::collections::HashMap;
use std::sync::Mutex;

/// A player save store as seen from a plugin call. Calls are synchronous (they run inside a wasm call),
/// so implementations answer from memory and persist in the background.
pub trait SaveBackend: Send + Sync + 'static {
    /// The newest save of `player` in `game`, queued or durable.
    fn load(&self, game: &str, player: &str) -> Option<Vec<u8>>;
    /// Accepts a new save of `player` in `game`. Never drops it. Returns a future that resolves once
    /// the save is durable, when the backend can tell (`None`: durable already, or not tracked).
    fn store(&self, game: &str, player: &str, data: Vec<u8>, priority: SavePriority) -> Option<Durable>;

    /// Whether the backend is behind on `game`'s saves: that game's rooms then hold their players' inputs
    /// (which, through the bounded inboxes, slows the players' connections) until it catches up. Other
    /// games are not held. Nothing is dropped.
    fn backpressure(&self, game: &str) -> bool {
        let _ = game;
        false
    }

    /// Whether `load` knows `player`'s save (read before the player joined, or written since). A plugin
    /// may load and store saves only for such players: for any other, `load` could only answer "none"
    /// while a durable save may exist, and a blind store would overwrite it.
    fn is_loaded(&self, game: &str, player: &str) -> bool {
        let _ = (game, player);
        true
    }

    /// Makes `load` able to answer for `player` without I/O; rooms call it before a player joins.
    fn preload<'a>(&'a self, game: &'a str, player: &'a str) -> Preload<'a> {
        let _ = (game, player);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Resolves once a save is durable (or fails if it never will be).
pub type Durable = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

/// What [`SaveBackend::preload`] returns.
pub type Preload<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// (game, player)
type SaveKey = (String, String);

/// Saves kept in memory, with the priority of each player's last write.
#[derive(Default)]
pub struct MemorySaves {
    saves: Mutex<HashMap<SaveKey, (Vec<u8>, SavePriority)>>,
}

impl MemorySaves {
    /// The stored save and its priority.
    pub fn get(&self, game: &str, player: &str) -> Option<(Vec<u8>, SavePriority)> {
        self.saves.lock().unwrap().get(&(game.to_string(), player.to_string())).cloned()
    }
}

impl SaveBackend for MemorySaves {
    fn load(&self, game: &str, player: &str) -> Option<Vec<u8>> {
        self.get(game, player).map(|(data, _)| data)
    }
    fn store(&self, game: &str, player: &str, data: Vec<u8>, priority: SavePriority) -> Option<Durable> {
        self.saves.lock().unwrap().insert((game.to_string(), player.to_string()), (data, priority));
        None
    }
}
