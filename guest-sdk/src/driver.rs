//! Dispatch from raw contract calls to a [`Game`]: the one code path used by the wasm exports and by the
//! native test harness. Public as `warden_sdk::testing::Driver` for custom harnesses and benchmarks.

use crate::ctx::{Ctx, HostApi};
use crate::game::{Config, Game, GameResult, decode};
use crate::types::RoomInfo;

/// Holds a game's state between calls and turns raw bytes into typed hook calls.
pub struct Driver<G: Game> {
    pub(crate) game: Option<G>,
    version: &'static str,
}

const NOT_STARTED: &str = "the game has no state yet: the host must call init or restore first";

impl<G: Game> Driver<G> {
    /// A driver for a plugin of `version` (the plugin's own version, used to tell same-version restores
    /// from migrations).
    pub fn new(version: &'static str) -> Self {
        Driver { game: None, version }
    }

    /// The game state, once `init` or `restore` has run.
    pub fn game(&self) -> Option<&G> {
        self.game.as_ref()
    }

    fn with<R>(&mut self, host: &mut dyn HostApi, f: impl FnOnce(&mut G, &mut Ctx<G::Out>) -> GameResult<R>) -> GameResult<R> {
        let game = self.game.as_mut().ok_or(NOT_STARTED)?;
        f(game, &mut Ctx::new(host))
    }

    /// `init`: a fresh default state, then [`Game::init`].
    pub fn init(&mut self, host: &mut dyn HostApi, room: &RoomInfo, config: &[u8]) -> GameResult {
        let mut game = G::default();
        game.init(&mut Ctx::new(host), room, &Config::new(config))?;
        self.game = Some(game);
        Ok(())
    }

    /// `on-join`.
    pub fn on_join(&mut self, host: &mut dyn HostApi, player: &str) -> GameResult {
        self.with(host, |g, ctx| g.on_join(ctx, player))
    }

    /// `on-leave`.
    pub fn on_leave(&mut self, host: &mut dyn HostApi, player: &str) -> GameResult {
        self.with(host, |g, ctx| g.on_leave(ctx, player))
    }

    /// `on-message`: decodes the payload as `G::In` first.
    pub fn on_message(&mut self, host: &mut dyn HostApi, player: &str, payload: &[u8]) -> GameResult {
        let msg: G::In = decode(payload).map_err(|e| format!("message from {player} is not one this game understands: {e}"))?;
        self.with(host, |g, ctx| g.on_message(ctx, player, msg))
    }

    /// `on-tick`.
    pub fn on_tick(&mut self, host: &mut dyn HostApi, tick: u64, dt_ms: u32) -> GameResult {
        self.with(host, |g, ctx| g.on_tick(ctx, tick, dt_ms))
    }

    /// `on-timer`.
    pub fn on_timer(&mut self, host: &mut dyn HostApi, tag: &str) -> GameResult {
        self.with(host, |g, ctx| g.on_timer(ctx, tag))
    }

    /// `snapshot`.
    pub fn snapshot(&self) -> GameResult<Vec<u8>> {
        self.game.as_ref().ok_or(NOT_STARTED)?.snapshot()
    }

    /// `restore`: same version decodes directly; another version goes through [`Game::migrate`].
    pub fn restore(&mut self, state: &[u8], from_version: &str) -> GameResult {
        let game = if from_version == self.version {
            decode(state).map_err(|e| format!("cannot restore a snapshot of this same version {from_version}: {e}"))?
        } else {
            G::migrate(from_version, state)?
        };
        self.game = Some(game);
        Ok(())
    }
}
