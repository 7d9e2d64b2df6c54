//! Run a [`Game`] natively, without wasm, against an in-memory host: join players, deliver messages,
//! advance ticks and timers, read what was sent, round-trip snapshots.
//!
//! ```
//! use warden_sdk::testing::Harness;
//! # use warden_sdk::{Ctx, Game, GameResult};
//! # #[derive(Default, serde::Serialize, serde::Deserialize)]
//! # struct Counter { n: u32 }
//! # impl Game for Counter {
//! #     type In = u32;
//! #     type Out = u32;
//! #     fn on_message(&mut self, ctx: &mut Ctx<u32>, p: &str, add: u32) -> GameResult {
//! #         self.n += add;
//! #         ctx.send(p, &self.n);
//! #         Ok(())
//! #     }
//! # }
//! let mut room = Harness::<Counter>::new();
//! room.join("ann").unwrap();
//! room.message("ann", &2u32).unwrap();
//! room.message("ann", &3u32).unwrap();
//! assert_eq!(room.received::<u32>("ann"), vec![2, 5]);
//! let copy = room.round_trip();
//! assert_eq!(copy.game().n, 5);
//! ```

use crate::ctx::HostApi;
pub use crate::driver::Driver;
use crate::game::{Game, GameResult, decode, encode};
use crate::types::{Level, Priority, Recipient, RoomInfo};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};

/// One queued send.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    /// Recipient as given by the game.
    pub to: Recipient,
    /// MessagePack payload.
    pub payload: Vec<u8>,
}

/// A timer the game asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Timer {
    /// Game time at which it is due.
    pub due_ms: u64,
    /// Tag handed back to `on_timer`.
    pub tag: String,
}

/// The in-memory host. Public fields let a test set features and saves or inspect what happened.
#[derive(Clone, Debug, Default)]
pub struct TestHost {
    /// Sends queued by the call in progress (the harness delivers them when the call returns).
    pub sent: Vec<Sent>,
    /// Players kicked, with reasons.
    pub kicked: Vec<(String, String)>,
    /// Pending timers, in the order they were set.
    pub timers: Vec<Timer>,
    /// Player saves, with the priority of the last write.
    pub saves: BTreeMap<String, (Vec<u8>, Priority)>,
    /// Log lines.
    pub logs: Vec<(Level, String)>,
    /// Last value of each metric.
    pub metrics: BTreeMap<String, f64>,
    /// Features switched on.
    pub features: BTreeSet<String>,
    /// Current tick.
    pub tick: u64,
    /// Current game time.
    pub now_ms: u64,
    /// Seed of the random stream.
    pub seed: u64,
    /// Numbers drawn so far from the random stream.
    pub draws: u64,
}

/// The room's deterministic random stream: SplitMix64 over (seed, draw count), the same function the
/// Warden host uses, so a seed gives the same numbers natively and in wasm.
pub fn random_at(seed: u64, draw: u64) -> u64 {
    let mut z = seed.wrapping_add(draw.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl HostApi for TestHost {
    fn send(&mut self, to: &Recipient, payload: &[u8]) {
        self.sent.push(Sent { to: to.clone(), payload: payload.to_vec() });
    }
    fn kick(&mut self, player: &str, reason: &str) {
        self.kicked.push((player.to_string(), reason.to_string()));
    }
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
    fn tick(&self) -> u64 {
        self.tick
    }
    fn set_timer(&mut self, after_ms: u64, tag: &str) {
        self.timers.push(Timer { due_ms: self.now_ms + after_ms, tag: tag.to_string() });
    }
    fn random(&mut self) -> u64 {
        let r = random_at(self.seed, self.draws);
        self.draws += 1;
        r
    }
    fn load_save(&mut self, player: &str) -> Option<Vec<u8>> {
        self.saves.get(player).map(|(b, _)| b.clone())
    }
    fn store_save(&mut self, player: &str, data: &[u8], priority: Priority) {
        self.saves.insert(player.to_string(), (data.to_vec(), priority));
    }
    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.to_string()));
    }
    fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_string(), value);
    }
    fn feature_enabled(&self, name: &str) -> bool {
        self.features.contains(name)
    }
}

/// A room running one [`Game`] natively. Hooks are called the way the host calls them; the harness
/// panics with a clear message if the game itself fails to start.
pub struct Harness<G: Game> {
    driver: Driver<G>,
    host: TestHost,
    room: RoomInfo,
    members: Vec<String>,
    /// Every send so far not yet taken by `take_sent`, in order.
    log: Vec<Sent>,
    /// Payloads each player has received and the test has not read yet.
    mailboxes: BTreeMap<String, Vec<Vec<u8>>>,
}

impl<G: Game> Default for Harness<G> {
    fn default() -> Self {
        Self::new()
    }
}

impl<G: Game> Harness<G> {
    /// A room with default [`RoomInfo`] and no configuration.
    pub fn new() -> Self {
        Self::build(RoomInfo::default(), &[], BTreeSet::new())
    }

    /// A room with the given configuration (encoded as the host would) and features switched on.
    pub fn with_config(config: &impl Serialize, features: &[&str]) -> Self {
        let bytes = encode(config).expect("the test configuration encodes as MessagePack");
        Self::build(RoomInfo::default(), &bytes, features.iter().map(|s| s.to_string()).collect())
    }

    /// A room with explicit room info, raw configuration bytes and features.
    pub fn build(room: RoomInfo, config: &[u8], features: BTreeSet<String>) -> Self {
        let mut host = TestHost { seed: room.seed, features, ..TestHost::default() };
        let mut driver = Driver::new("0.0.0-test");
        if let Err(e) = driver.init(&mut host, &room, config) {
            panic!("Game::init failed in the test harness: {e}");
        }
        Harness { driver, host, room, members: Vec::new(), log: Vec::new(), mailboxes: BTreeMap::new() }
    }

    /// The game state.
    pub fn game(&self) -> &G {
        self.driver.game().expect("initialised")
    }

    /// The in-memory host (features, saves, timers, logs).
    pub fn host(&mut self) -> &mut TestHost {
        &mut self.host
    }

    /// Players currently in the room, in join order.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// `player` joins.
    pub fn join(&mut self, player: &str) -> GameResult {
        self.members.push(player.to_string());
        let result = self.driver.on_join(&mut self.host, player);
        self.deliver();
        result
    }

    /// `player` leaves.
    pub fn leave(&mut self, player: &str) -> GameResult {
        self.members.retain(|m| m != player);
        let result = self.driver.on_leave(&mut self.host, player);
        self.deliver();
        result
    }

    /// `player` sends `msg`, encoded as MessagePack the way a client would.
    pub fn message(&mut self, player: &str, msg: &impl Serialize) -> GameResult {
        let payload = encode(msg).expect("the test message encodes as MessagePack");
        self.message_raw(player, &payload)
    }

    /// `player` sends raw payload bytes.
    pub fn message_raw(&mut self, player: &str, payload: &[u8]) -> GameResult {
        let result = self.driver.on_message(&mut self.host, player, payload);
        self.deliver();
        result
    }

    /// Advances one tick: game time moves by one step, due timers fire in the order they were due (then set), then
    /// `on_tick` runs. Stops at the first error.
    pub fn tick(&mut self) -> GameResult {
        let dt_ms = 1000 / self.room.tick_hz.max(1);
        self.host.tick += 1;
        self.host.now_ms = self.host.tick * 1000 / u64::from(self.room.tick_hz.max(1));
        let now = self.host.now_ms;
        let (mut due, pending): (Vec<Timer>, Vec<Timer>) = std::mem::take(&mut self.host.timers).into_iter().partition(|t| t.due_ms <= now);
        // In the order they were due, then set (the sort is stable), as the host fires them.
        due.sort_by_key(|t| t.due_ms);
        self.host.timers = pending;
        let mut result = Ok(());
        for timer in due {
            result = self.driver.on_timer(&mut self.host, &timer.tag);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            let tick = self.host.tick;
            result = self.driver.on_tick(&mut self.host, tick, dt_ms);
        }
        self.deliver();
        result
    }

    /// Resolves the sends queued by the last call against the current members, like the host's flush.
    fn deliver(&mut self) {
        for sent in std::mem::take(&mut self.host.sent) {
            for member in &self.members {
                let reaches = match &sent.to {
                    Recipient::Player(p) => p == member,
                    Recipient::All => true,
                    Recipient::AllExcept(p) => p != member,
                };
                if reaches {
                    self.mailboxes.entry(member.clone()).or_default().push(sent.payload.clone());
                }
            }
            self.log.push(sent);
        }
    }

    /// Advances `n` ticks.
    pub fn ticks(&mut self, n: u64) -> GameResult {
        (0..n).try_for_each(|_| self.tick())
    }

    /// Takes every send made so far (as the game addressed it), in order.
    pub fn take_sent(&mut self) -> Vec<Sent> {
        std::mem::take(&mut self.log)
    }

    /// Takes the messages `player` has received and not yet read, decoded as `T`. A send reaches the
    /// players who were members when the call that queued it returned.
    pub fn received<T: DeserializeOwned>(&mut self, player: &str) -> Vec<T> {
        let payloads = self.mailboxes.remove(player).unwrap_or_default();
        payloads
            .iter()
            .map(|p| decode(p).unwrap_or_else(|e| panic!("a message to {player} does not decode as {}: {e}", std::any::type_name::<T>())))
            .collect()
    }

    /// The game's snapshot bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        self.driver.snapshot().unwrap_or_else(|e| panic!("snapshot failed: {e}"))
    }

    /// A new room restored from this room's snapshot (same version), with the same host state (members,
    /// clock, random stream, timers, saves). Useful to check that nothing is lost across a hot swap.
    pub fn round_trip(&self) -> Harness<G> {
        let snapshot = self.snapshot();
        let mut driver = Driver::new("0.0.0-test");
        driver.restore(&snapshot, "0.0.0-test").unwrap_or_else(|e| panic!("restore failed: {e}"));
        let host = TestHost { sent: Vec::new(), kicked: Vec::new(), logs: Vec::new(), ..self.host.clone() };
        Harness { driver, host, room: self.room.clone(), members: self.members.clone(), log: Vec::new(), mailboxes: BTreeMap::new() }
    }

    /// Restores `G` from a snapshot taken by another version, through [`Game::migrate`].
    pub fn restore_from(from_version: &str, state: &[u8]) -> GameResult<G> {
        let mut driver = Driver::<G>::new("0.0.0-test");
        driver.restore(state, from_version)?;
        Ok(driver.game.take().expect("restored"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Ctx};
    use serde::{Deserialize, Serialize};

    #[derive(Default, Serialize, Deserialize)]
    struct Timers {
        fired: Vec<String>,
    }

    impl Game for Timers {
        type In = ();
        type Out = ();
        fn init(&mut self, ctx: &mut Ctx<()>, _room: &RoomInfo, _config: &Config) -> GameResult {
            ctx.set_timer(100, "b");
            ctx.set_timer(50, "a");
            ctx.set_timer(100, "c");
            Ok(())
        }
        fn on_timer(&mut self, ctx: &mut Ctx<()>, tag: &str) -> GameResult {
            self.fired.push(format!("{tag}@{}", ctx.now_ms()));
            Ok(())
        }
    }

    #[test]
    fn timers_due_on_one_tick_fire_in_due_order_then_set_order_as_the_host_fires_them() {
        // 5 Hz: the first tick is at 200 ms, when all three are due.
        let mut room = Harness::<Timers>::build(RoomInfo { tick_hz: 5, ..RoomInfo::default() }, &[], BTreeSet::new());
        room.tick().unwrap();
        assert_eq!(room.game().fired, ["a@200", "b@200", "c@200"]);
    }
}
