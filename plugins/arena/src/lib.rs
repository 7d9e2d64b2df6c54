//! `arena`: players move on a grid; coins spawn at cells drawn from the room's deterministic random;
//! walking onto a coin scores it. Each player's lifetime coin count is kept with `store-save`, and the
//! whole room (players, coins, scores) survives `snapshot`/`restore`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use warden_sdk::{Config, Ctx, Game, GameResult, Priority, RoomInfo};

/// Operator configuration (`[plugins.arena.config]` in warden.toml).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ArenaConfig {
    /// Grid width in cells.
    pub width: u32,
    /// Grid height in cells.
    pub height: u32,
    /// Most coins on the grid at once.
    pub max_coins: usize,
    /// A coin spawns every this many ticks (while below `max_coins`).
    pub spawn_every_ticks: u64,
    /// The room state is broadcast every this many ticks.
    pub state_every_ticks: u64,
}

impl Default for ArenaConfig {
    fn default() -> Self {
        ArenaConfig { width: 16, height: 16, max_coins: 5, spawn_every_ticks: 20, state_every_ticks: 2 }
    }
}

/// A grid cell.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Column, from 0.
    pub x: u32,
    /// Row, from 0.
    pub y: u32,
}

impl Pos {
    /// The first step of a shortest walk from here to `target` (columns first), or `None` when here.
    pub fn dir_towards(self, target: Pos) -> Option<Dir> {
        use std::cmp::Ordering::*;
        match (self.x.cmp(&target.x), self.y.cmp(&target.y)) {
            (Less, _) => Some(Dir::Right),
            (Greater, _) => Some(Dir::Left),
            (Equal, Less) => Some(Dir::Down),
            (Equal, Greater) => Some(Dir::Up),
            (Equal, Equal) => None,
        }
    }
}

/// A direction to move one cell in.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// y - 1
    Up,
    /// y + 1
    Down,
    /// x - 1
    Left,
    /// x + 1
    Right,
}

/// What players send.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ArenaIn {
    /// Move one cell; `seq` is echoed in the answer so clients can match answers to moves.
    Move {
        /// Direction.
        dir: Dir,
        /// Client's sequence number.
        seq: u64,
    },
    /// `chaos` build only: panics (a trap), for the supervision and rollback tests.
    #[cfg(feature = "chaos")]
    Crash,
    /// `chaos` build only: loops forever (a deadline hit), for the supervision and rollback tests.
    #[cfg(feature = "chaos")]
    Spin,
}

/// A player as others see it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlayerView {
    /// Player id.
    pub id: String,
    /// Position.
    pub pos: Pos,
    /// Coins picked up in this room.
    pub score: u64,
}

/// What players receive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ArenaOut {
    /// Sent to a joiner.
    Welcome {
        /// Where you start.
        pos: Pos,
        /// Coins you have picked up in all rooms, ever (from your save).
        total: u64,
        /// Grid size.
        width: u32,
        /// Grid size.
        height: u32,
    },
    /// The answer to every `move`, to its sender.
    Moved {
        /// The move's sequence number.
        seq: u64,
        /// Position after the move.
        pos: Pos,
        /// Score in this room after the move.
        score: u64,
        /// Whether this move picked up a coin.
        picked: bool,
    },
    /// The whole room, broadcast every few ticks.
    State {
        /// Tick the state was taken at.
        tick: u64,
        /// Players, by id.
        players: Vec<PlayerView>,
        /// Coins on the grid.
        coins: Vec<Pos>,
    },
}

/// One player's state in the room (state format 2: `total` became `lifetime`, `moves` is new).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Player {
    /// Position.
    pub pos: Pos,
    /// Points scored in this room.
    pub score: u64,
    /// Lifetime coins (persisted). Called `total` in state format 1.
    pub lifetime: u64,
    /// Moves made in this room (new in state format 2).
    pub moves: u64,
    /// The highest move `seq` applied (0: none). A move at or below it is a client resending one whose
    /// answer it did not get (its connection dropped): it is answered again, not applied twice.
    #[serde(default)]
    pub last_seq: u64,
}

/// State format 1 (arena 0.1), kept to migrate snapshots taken by those versions.
pub mod v1 {
    use super::{ArenaConfig, Pos};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// A player in format 1.
    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    pub struct Player {
        /// Position.
        pub pos: Pos,
        /// Coins picked up in this room.
        pub score: u64,
        /// Lifetime coins.
        pub total: u64,
    }

    /// The room state in format 1.
    #[derive(Default, Debug, Serialize, Deserialize, PartialEq)]
    pub struct Arena {
        /// Configuration.
        pub config: ArenaConfig,
        /// Players by id.
        pub players: BTreeMap<String, Player>,
        /// Coins.
        pub coins: Vec<Pos>,
    }
}

/// Points a coin is worth: 1, or 2 in the `variant-b` build (the hot-swap tests alternate the two).
pub const COIN_POINTS: u64 = if cfg!(feature = "variant-b") { 2 } else { 1 };

/// The `chaos` build (for the health and rollback tests): every fifth move returns `err` after it is
/// applied and answered, and the `crash` and `spin` messages trap and loop. Same state format.
pub const CHAOS: bool = cfg!(feature = "chaos");

/// What is kept per player across rooms with `store-save`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Save {
    /// Lifetime coins picked up.
    pub total: u64,
}

/// The room state.
#[derive(Default, Debug, Serialize, Deserialize, PartialEq)]
pub struct Arena {
    /// Configuration the room started with.
    pub config: ArenaConfig,
    /// Players by id.
    pub players: BTreeMap<String, Player>,
    /// Coins on the grid, in spawn order.
    pub coins: Vec<Pos>,
    /// Players who left, the most recent last (at most [`DEPARTED_KEPT`]): one who rejoins carries on
    /// where they were (position, score, moves). A restarted host hands every player in a room it
    /// resumes `on-leave` and they rejoin, so this is also what carries a player across a host crash.
    #[serde(default)]
    pub departed: Vec<(String, Player)>,
}

/// Departed players a room remembers.
pub const DEPARTED_KEPT: usize = 64;

impl Arena {
    fn random_cell(&self, ctx: &mut Ctx<ArenaOut>) -> Pos {
        let x = ctx.random_below(u64::from(self.config.width)) as u32;
        let y = ctx.random_below(u64::from(self.config.height)) as u32;
        Pos { x, y }
    }

    fn step(&self, pos: Pos, dir: Dir) -> Pos {
        let (w, h) = (self.config.width, self.config.height);
        match dir {
            Dir::Up => Pos { y: pos.y.saturating_sub(1), ..pos },
            Dir::Down => Pos { y: (pos.y + 1).min(h - 1), ..pos },
            Dir::Left => Pos { x: pos.x.saturating_sub(1), ..pos },
            Dir::Right => Pos { x: (pos.x + 1).min(w - 1), ..pos },
        }
    }

    fn state(&self, tick: u64) -> ArenaOut {
        let players = self.players.iter().map(|(id, p)| PlayerView { id: id.clone(), pos: p.pos, score: p.score }).collect();
        ArenaOut::State { tick, players, coins: self.coins.clone() }
    }
}

impl Game for Arena {
    type In = ArenaIn;
    type Out = ArenaOut;

    fn init(&mut self, _ctx: &mut Ctx<ArenaOut>, _room: &RoomInfo, config: &Config) -> GameResult {
        let config: ArenaConfig = config.parse()?;
        if config.width == 0 || config.height == 0 || config.spawn_every_ticks == 0 || config.state_every_ticks == 0 {
            return Err("bad arena configuration: width, height, spawn_every_ticks and state_every_ticks must be above 0".into());
        }
        self.config = config;
        Ok(())
    }

    fn on_join(&mut self, ctx: &mut Ctx<ArenaOut>, player: &str) -> GameResult {
        let save: Save = ctx.load_save(player)?.unwrap_or_default();
        let back = self.departed.iter().position(|(id, _)| id == player).map(|i| self.departed.remove(i).1);
        let p = match back {
            Some(p) => Player { lifetime: p.lifetime.max(save.total), ..p },
            None => Player { pos: self.random_cell(ctx), score: 0, lifetime: save.total, moves: 0, last_seq: 0 },
        };
        let (width, height) = (self.config.width, self.config.height);
        ctx.send(player, &ArenaOut::Welcome { pos: p.pos, total: p.lifetime, width, height });
        self.players.insert(player.to_string(), p);
        Ok(())
    }

    fn on_leave(&mut self, _ctx: &mut Ctx<ArenaOut>, player: &str) -> GameResult {
        if let Some(p) = self.players.remove(player) {
            if self.departed.len() == DEPARTED_KEPT {
                self.departed.remove(0);
            }
            self.departed.push((player.to_string(), p));
        }
        Ok(())
    }

    fn on_message(&mut self, ctx: &mut Ctx<ArenaOut>, player: &str, msg: ArenaIn) -> GameResult {
        let (dir, seq) = match msg {
            ArenaIn::Move { dir, seq } => (dir, seq),
            #[cfg(feature = "chaos")]
            ArenaIn::Crash => panic!("chaos: crash on command"),
            #[cfg(feature = "chaos")]
            ArenaIn::Spin => loop {
                std::hint::black_box(&self.coins);
            },
        };
        let Some(current) = self.players.get(player) else {
            return Err(format!("{player} moved but is not in the arena"));
        };
        if seq != 0 && seq <= current.last_seq {
            let (pos, score) = (current.pos, current.score);
            ctx.send(player, &ArenaOut::Moved { seq, pos, score, picked: false });
            return Ok(());
        }
        let current = current.pos;
        let pos = self.step(current, dir);
        let picked = match self.coins.iter().position(|c| *c == pos) {
            Some(i) => {
                self.coins.remove(i);
                true
            }
            None => false,
        };
        let p = self.players.get_mut(player).expect("checked above");
        p.pos = pos;
        p.moves += 1;
        p.last_seq = p.last_seq.max(seq);
        if picked {
            p.score += COIN_POINTS;
            p.lifetime += 1;
        }
        let (score, total) = (p.score, p.lifetime);
        if picked {
            ctx.store_save(player, &Save { total }, Priority::Normal)?;
        }
        ctx.send(player, &ArenaOut::Moved { seq, pos, score, picked });
        if CHAOS && seq.is_multiple_of(5) {
            // The move counts and is answered; the call still reports a gameplay error.
            return Err(format!("chaos: every fifth move reports an error (move {seq})"));
        }
        Ok(())
    }

    fn on_tick(&mut self, ctx: &mut Ctx<ArenaOut>, tick: u64, _dt_ms: u32) -> GameResult {
        if tick.is_multiple_of(self.config.spawn_every_ticks) && self.coins.len() < self.config.max_coins {
            let cell = self.random_cell(ctx);
            if !self.coins.contains(&cell) {
                self.coins.push(cell);
            }
        }
        if tick.is_multiple_of(self.config.state_every_ticks) && !self.players.is_empty() {
            ctx.broadcast(&self.state(tick));
        }
        Ok(())
    }

    /// Snapshots of arena 0.1 are in state format 1: `total` is renamed `lifetime`, `moves` starts at 0.
    /// Later versions' snapshots decode as they are.
    fn migrate(from_version: &str, state: &[u8]) -> GameResult<Self> {
        let format1 = semver::Version::parse(from_version).is_ok_and(|v| v < semver::Version::new(0, 2, 0));
        if !format1 {
            return warden_sdk::decode(state).map_err(|e| format!("cannot restore a snapshot of arena {from_version}: {e}"));
        }
        let old: v1::Arena =
            warden_sdk::decode(state).map_err(|e| format!("arena {from_version} snapshot (format 1) does not decode: {e}"))?;
        let players = old
            .players
            .into_iter()
            .map(|(id, p)| (id, Player { pos: p.pos, score: p.score, lifetime: p.total, moves: 0, last_seq: 0 }))
            .collect();
        Ok(Arena { config: old.config, players, coins: old.coins, departed: Vec::new() })
    }
}

warden_sdk::export_game!(Arena);

#[cfg(test)]
mod tests;
