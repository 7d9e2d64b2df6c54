//! The [`Game`] trait plugin authors implement, and the MessagePack encoding it uses.

use crate::ctx::Ctx;
use crate::types::RoomInfo;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What every hook returns: `Err(reason)` is a handled gameplay error (counted by the host; the room
/// goes on). A panic is a bug: the instance traps and the host rebuilds the room without that input.
pub type GameResult<T = ()> = Result<T, String>;

/// Encodes a value as MessagePack with field names (so the host's JSON debugging view is readable).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
}

/// Decodes MessagePack bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

/// The plugin's configuration from `warden.toml`, as handed to [`Game::init`].
#[derive(Clone, Copy, Debug)]
pub struct Config<'a>(&'a [u8]);

impl<'a> Config<'a> {
    /// Wraps the raw MessagePack bytes.
    pub fn new(bytes: &'a [u8]) -> Self {
        Config(bytes)
    }

    /// Decodes the configuration into `T`; no configuration at all gives `T::default()`. Use
    /// `#[serde(default)]` on `T` so that missing keys keep their defaults.
    pub fn parse<T: DeserializeOwned + Default>(&self) -> GameResult<T> {
        if self.0.is_empty() {
            return Ok(T::default());
        }
        decode(self.0).map_err(|e| format!("bad plugin configuration: {e} (check this plugin's section in warden.toml)"))
    }

    /// The raw MessagePack bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// A game plugin. The value of the implementing type is the whole game state of one room; every hook
/// has a no-op default, so a plugin implements only what it needs.
pub trait Game: Default + Serialize + DeserializeOwned + 'static {
    /// Messages players send (decoded from the client's MessagePack payload).
    type In: DeserializeOwned;
    /// Messages the game sends to players.
    type Out: Serialize;

    /// The room was created. The state starts as `Self::default()`.
    fn init(&mut self, ctx: &mut Ctx<Self::Out>, room: &RoomInfo, config: &Config) -> GameResult {
        let _ = (ctx, room, config);
        Ok(())
    }

    /// `player` joined the room.
    fn on_join(&mut self, ctx: &mut Ctx<Self::Out>, player: &str) -> GameResult {
        let _ = (ctx, player);
        Ok(())
    }

    /// `player` left the room.
    fn on_leave(&mut self, ctx: &mut Ctx<Self::Out>, player: &str) -> GameResult {
        let _ = (ctx, player);
        Ok(())
    }

    /// `player` sent `msg`. A payload that does not decode as `Self::In` never reaches this hook: the
    /// SDK answers the host with an error naming the player and the decode failure.
    fn on_message(&mut self, ctx: &mut Ctx<Self::Out>, player: &str, msg: Self::In) -> GameResult {
        let _ = (ctx, player, msg);
        Ok(())
    }

    /// The game clock advanced to `tick`; `dt_ms` is the fixed step.
    fn on_tick(&mut self, ctx: &mut Ctx<Self::Out>, tick: u64, dt_ms: u32) -> GameResult {
        let _ = (ctx, tick, dt_ms);
        Ok(())
    }

    /// A timer set with [`Ctx::set_timer`] is due.
    fn on_timer(&mut self, ctx: &mut Ctx<Self::Out>, tag: &str) -> GameResult {
        let _ = (ctx, tag);
        Ok(())
    }

    /// The state as bytes for another instance, possibly of another version. Defaults to the state's
    /// MessagePack encoding.
    fn snapshot(&self) -> GameResult<Vec<u8>> {
        encode(self)
    }

    /// Rebuilds the state from a snapshot taken by version `from_version`, when that is not this
    /// version. Defaults to decoding the bytes as this version's state, which covers added fields marked
    /// `#[serde(default)]`; override it for renames and other breaking changes.
    fn migrate(from_version: &str, state: &[u8]) -> GameResult<Self> {
        decode(state)
            .map_err(|e| format!("cannot restore a snapshot of version {from_version}: {e} (implement Game::migrate for this change)"))
    }
}
