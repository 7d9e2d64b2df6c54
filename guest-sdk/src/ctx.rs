//! The plugin's view of the host: [`Ctx`] (typed) over [`HostApi`] (raw bytes).

use crate::game::encode;
use crate::types::{Level, Priority, Recipient};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// The raw host imports. In wasm they are the `warden:plugin` imports; in native tests they are served
/// by [`crate::testing::TestHost`]. Plugins use [`Ctx`] instead.
pub trait HostApi {
    /// Queue `payload` for `to`, flushed at the end of the tick.
    fn send(&mut self, to: &Recipient, payload: &[u8]);
    /// Remove `player` from the room at the end of the tick.
    fn kick(&mut self, player: &str, reason: &str);
    /// Game time in milliseconds.
    fn now_ms(&self) -> u64;
    /// Current tick number.
    fn tick(&self) -> u64;
    /// Ask for `on_timer(tag)` after `after_ms` of game time.
    fn set_timer(&mut self, after_ms: u64, tag: &str);
    /// Next 64 bits of the room's deterministic random stream.
    fn random(&mut self) -> u64;
    /// Newest save of `player`.
    fn load_save(&mut self, player: &str) -> Option<Vec<u8>>;
    /// Queue a new save of `player`.
    fn store_save(&mut self, player: &str, data: &[u8], priority: Priority);
    /// Write a log line.
    fn log(&mut self, level: Level, message: &str);
    /// Record a gauge.
    fn metric(&mut self, name: &str, value: f64);
    /// Whether the operator switched feature `name` on.
    fn feature_enabled(&self, name: &str) -> bool;
}

/// Typed access to the host during one hook call. `Out` is the game's outbound message type.
pub struct Ctx<'h, Out> {
    host: &'h mut dyn HostApi,
    _out: PhantomData<fn(&Out)>,
}

impl<'h, Out: Serialize> Ctx<'h, Out> {
    /// Wraps a host; the SDK does this for every hook call.
    pub fn new(host: &'h mut dyn HostApi) -> Self {
        Ctx { host, _out: PhantomData }
    }

    /// Queues `msg` for `to` (a player id, or a [`Recipient`]). Delivered at the end of the tick.
    pub fn send(&mut self, to: impl Into<Recipient>, msg: &Out) {
        match encode(msg) {
            Ok(bytes) => self.host.send(&to.into(), &bytes),
            Err(e) => self.host.log(Level::Error, &format!("failed to encode an outbound message: {e}")),
        }
    }

    /// Queues `msg` for every player in the room.
    pub fn broadcast(&mut self, msg: &Out) {
        self.send(Recipient::All, msg);
    }

    /// Queues already-encoded MessagePack bytes for `to`.
    pub fn send_raw(&mut self, to: impl Into<Recipient>, payload: &[u8]) {
        self.host.send(&to.into(), payload);
    }

    /// Removes `player` from the room at the end of the tick, telling them `reason`.
    pub fn kick(&mut self, player: &str, reason: &str) {
        self.host.kick(player, reason);
    }

    /// Game time in milliseconds since the room started (deterministic, not wall time).
    pub fn now_ms(&self) -> u64 {
        self.host.now_ms()
    }

    /// The current tick number.
    pub fn tick(&self) -> u64 {
        self.host.tick()
    }

    /// Calls [`crate::Game::on_timer`] with `tag` once `after_ms` of game time has passed.
    pub fn set_timer(&mut self, after_ms: u64, tag: &str) {
        self.host.set_timer(after_ms, tag);
    }

    /// 64 bits from the room's deterministic random stream.
    pub fn random(&mut self) -> u64 {
        self.host.random()
    }

    /// A uniformly distributed number in `0..n` from the room's random stream (`n` must be above 0).
    pub fn random_below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "random_below(0): the range 0..0 is empty; pass n >= 1");
        // Rejection sampling keeps the distribution exactly uniform.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let r = self.host.random();
            if r < zone {
                return r % n;
            }
        }
    }

    /// The newest save of `player`, decoded; `Ok(None)` if there is none.
    pub fn load_save<T: DeserializeOwned>(&mut self, player: &str) -> Result<Option<T>, String> {
        match self.host.load_save(player) {
            None => Ok(None),
            Some(bytes) => crate::game::decode(&bytes).map(Some).map_err(|e| format!("the save of {player} does not decode: {e}")),
        }
    }

    /// Stores `save` as the newest save of `player`.
    pub fn store_save<T: Serialize>(&mut self, player: &str, save: &T, priority: Priority) -> Result<(), String> {
        let bytes = encode(save).map_err(|e| format!("failed to encode the save of {player}: {e}"))?;
        self.host.store_save(player, &bytes, priority);
        Ok(())
    }

    /// Whether the operator switched the runtime feature `name` on.
    pub fn feature_enabled(&self, name: &str) -> bool {
        self.host.feature_enabled(name)
    }

    /// Records a gauge value.
    pub fn metric(&mut self, name: &str, value: f64) {
        self.host.metric(name, value);
    }

    /// Writes a log line; the [`info!`](crate::info) family of macros formats for you.
    pub fn log(&mut self, level: Level, message: &str) {
        self.host.log(level, message);
    }
}

/// Logs at a level through a [`Ctx`]: `log!(ctx, Level::Info, "x = {}", x)`.
#[macro_export]
macro_rules! log {
    ($ctx:expr, $level:expr, $($arg:tt)+) => { $ctx.log($level, &::std::format!($($arg)+)) };
}
/// Logs at trace level: `trace!(ctx, "...")`.
#[macro_export]
macro_rules! trace { ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Trace, $($arg)+) }; }
/// Logs at debug level: `debug!(ctx, "...")`.
#[macro_export]
macro_rules! debug { ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Debug, $($arg)+) }; }
/// Logs at info level: `info!(ctx, "...")`.
#[macro_export]
macro_rules! info { ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Info, $($arg)+) }; }
/// Logs at warn level: `warn!(ctx, "...")`.
#[macro_export]
macro_rules! warn { ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Warn, $($arg)+) }; }
/// Logs at error level: `error!(ctx, "...")`.
#[macro_export]
macro_rules! error { ($ctx:expr, $($arg:tt)+) => { $crate::log!($ctx, $crate::Level::Error, $($arg)+) }; }
