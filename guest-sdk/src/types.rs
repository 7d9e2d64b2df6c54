//! Plain Rust forms of the contract's types, shared by the wasm glue and the native harness.

/// Who a message goes to. `&str` and `String` convert into [`Recipient::Player`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// One player of the room.
    Player(String),
    /// Every player of the room.
    All,
    /// Every player of the room but one.
    AllExcept(String),
}

impl From<&str> for Recipient {
    fn from(player: &str) -> Self {
        Recipient::Player(player.to_string())
    }
}

impl From<String> for Recipient {
    fn from(player: String) -> Self {
        Recipient::Player(player)
    }
}

impl From<&String> for Recipient {
    fn from(player: &String) -> Self {
        Recipient::Player(player.clone())
    }
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed diagnostics.
    Trace,
    /// Development diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Unexpected but handled.
    Warn,
    /// Something failed.
    Error,
}

/// How urgently a save must become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Batched, durable within a bounded delay.
    Normal,
    /// Written at once (purchases, trades).
    Critical,
}

/// What the host says about the room, handed to [`crate::Game::init`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomInfo {
    /// Room id, unique within its game.
    pub id: String,
    /// Game (plugin) name.
    pub game: String,
    /// Seed of the room's deterministic random stream.
    pub seed: u64,
    /// Game clock rate in ticks per second.
    pub tick_hz: u32,
    /// Player cap of the room.
    pub max_players: u32,
}

impl Default for RoomInfo {
    fn default() -> Self {
        RoomInfo { id: "test-room".into(), game: "test".into(), seed: 42, tick_hz: 20, max_players: 16 }
    }
}
