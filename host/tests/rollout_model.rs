//! The rollout state machine as a whole, model-based: random sequences of deploys (overlapping ones and
//! refused ones included), promotions, pauses and resumes, operator rollbacks (plain, `--to`, `--to
//! --force`), health breaches, real traps in rooms, players joining and leaving rooms, a store another
//! writer holds locked, and restarts. They run against the real deployer, rooms and SQLite registry,
//! in-process, and after every step the registry, what the rooms are given, the stored rollout and the
//! previous stable version are compared with a small reference model ([`Model`]) of what they must be.
//!
//! Failing sequences are kept by proptest in `host/tests/rollout_model.proptest-regressions` and run
//! first on every later run. `WARDEN_MODEL_CASES` sets how many sequences run (default 48).

mod common;

use common::deploy::{drop_version, keys, shared_data};
use common::server::WAIT;
use proptest::collection::vec;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden::config::Config;
use warden::deploy::{Candidate, Deployer, OperatorError, Phase};
use warden::health::Counts;
use warden::net::envelope::Format;
use warden::room::{Kill, OutQueue, OutReceiver, PlayerConn, RoomHandle, RoomInput, Rooms};
use warden::runtime::{MemorySaves, Runtime};
use warden::storage::sqlite::SqliteStore;
use warden::storage::{Store, VersionState};

const PLUGIN: &str = "faulty";
/// The versions a sequence can deploy (each is the `faulty` guest stamped with that version).
const VERSIONS: [&str; 8] = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0", "1.7.0"];
const ROOMS: [&str; 3] = ["r0", "r1", "r2"];
/// `health.trap_storm` in these servers.
const TRAP_STORM: u64 = 2;

type V = semver::Version;

fn v(i: usize) -> V {
    V::parse(VERSIONS[i]).unwrap()
}

/// One step of a sequence.
#[derive(Clone, Debug)]
enum Action {
    /// Drop the lowest version above the floor (if any is left) and deploy it.
    DeployNext,
    /// Drop `VERSIONS[i]` and deploy it (often refused: bad, or not above the floor).
    Deploy(usize),
    /// `warden promote`.
    Promote,
    /// `warden pause` (true) or `warden pause --resume`.
    Pause(bool),
    /// `warden rollback [--to VERSIONS[i]] [--force]`.
    Rollback { to: Option<usize>, force: bool },
    /// The version on trial breaches its health policy (a room escalated).
    Breach,
    /// The player in room `ROOMS[i]` sends a message that makes the room's version trap.
    Trap(usize),
    /// A player joins room `ROOMS[i]` (if it has none).
    Join(usize),
    /// The player in room `ROOMS[i]` leaves.
    Leave(usize),
    /// The action, while another writer holds the database's write lock past the busy timeout.
    Busy(Box<Action>),
    /// The host stops and starts again on the same registry and plugin directory.
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    let rollback = || (proptest::option::of(0..VERSIONS.len()), any::<bool>()).prop_map(|(to, force)| Action::Rollback { to, force });
    let writes = prop_oneof![Just(Action::DeployNext), Just(Action::Promote), any::<bool>().prop_map(Action::Pause), rollback()];
    prop_oneof![
        5 => Just(Action::DeployNext),
        1 => (0..VERSIONS.len()).prop_map(Action::Deploy),
        3 => Just(Action::Promote),
        1 => any::<bool>().prop_map(Action::Pause),
        2 => rollback(),
        1 => Just(Action::Breach),
        2 => (0..ROOMS.len()).prop_map(Action::Trap),
        3 => (0..ROOMS.len()).prop_map(Action::Join),
        1 => (0..ROOMS.len()).prop_map(Action::Leave),
        1 => writes.prop_map(|a| Action::Busy(Box::new(a))),
        1 => Just(Action::Restart),
    ]
}

/// A rollout in progress, as the model sees it.
#[derive(Clone, Debug, PartialEq)]
struct Trial {
    version: V,
    phase: Phase,
    paused: bool,
}

/// What the registry, the rooms and the rollout must be.
#[derive(Clone, Debug, Default)]
struct Model {
    states: BTreeMap<V, VersionState>,
    floor: Option<V>,
    trial: Option<Trial>,
    /// Rooms with a player in them.
    occupied: BTreeSet<usize>,
    /// Traps and breaches in each version's health window (this process's: a restart forgets them).
    traps: BTreeMap<V, u64>,
    breached: BTreeSet<V>,
    /// Versions whose file is in the plugin directory.
    files: BTreeSet<V>,
}

impl Model {
    fn with_state(&self, s: VersionState) -> Option<V> {
        self.states.iter().filter(|(_, st)| **st == s).map(|(v, _)| v.clone()).max()
    }

    /// The version every room outside the canary runs.
    fn serving(&self) -> Option<V> {
        self.states.iter().filter(|(_, s)| matches!(s, VersionState::Active | VersionState::Probation)).map(|(v, _)| v.clone()).max()
    }

    fn canary(&self) -> Option<V> {
        self.with_state(VersionState::Canary)
    }

    /// The version a rollback marks bad: the canary, or else the version serving.
    fn newest(&self) -> Option<V> {
        self.canary().or_else(|| self.serving())
    }

    /// The highest version below `of` that finished its trial and is not bad.
    fn previous_stable(&self, of: &V) -> Option<V> {
        self.states
            .iter()
            .filter(|(v, s)| *v < of && matches!(s, VersionState::Active | VersionState::Stable))
            .map(|(v, _)| v.clone())
            .max()
    }

    /// A version that stops serving: `stable` if it finished its trial, else `superseded`.
    fn retire(&mut self, v: &V) {
        if let Some(s) = self.states.get_mut(v) {
            *s = match *s {
                VersionState::Active => VersionState::Stable,
                VersionState::Canary | VersionState::Probation => VersionState::Superseded,
                other => other,
            };
        }
    }

    /// What a deploy of `v` is refused for (the rejection's kind), if anything.
    fn refusal(&self, v: &V, busy: bool) -> Option<&'static str> {
        if self.states.get(v) == Some(&VersionState::Bad) {
            Some("marked-bad")
        } else if self.floor.as_ref().is_some_and(|f| v <= f) {
            Some("below-floor")
        } else if busy {
            Some("store")
        } else {
            None
        }
    }

    fn deploy(&mut self, v: &V) {
        if self.states.is_empty() {
            self.states.insert(v.clone(), VersionState::Active);
        } else {
            if let Some(t) = self.trial.clone().filter(|t| t.phase == Phase::Canary) {
                self.retire(&t.version);
            }
            let phase = if self.occupied.is_empty() { Phase::Probation } else { Phase::Canary };
            if phase == Phase::Probation
                && let Some(s) = self.serving()
            {
                self.retire(&s);
            }
            self.states.insert(v.clone(), if phase == Phase::Canary { VersionState::Canary } else { VersionState::Probation });
            self.trial = Some(Trial { version: v.clone(), phase, paused: false });
        }
        self.traps.remove(v);
        self.breached.remove(v);
        self.floor = Some(v.clone());
    }

    fn promote(&mut self) -> bool {
        let Some(t) = self.trial.clone() else { return false };
        if t.phase == Phase::Canary {
            if let Some(s) = self.serving() {
                self.retire(&s);
            }
            self.states.insert(t.version.clone(), VersionState::Probation);
            self.trial = Some(Trial { phase: Phase::Probation, ..t });
        } else {
            self.states.insert(t.version, VersionState::Active);
            self.trial = None;
        }
        true
    }

    /// The target of a rollback to `to` (None: the previous stable version), or why there is none.
    fn rollback_target(&self, to: Option<&V>) -> Option<V> {
        let bad = self.newest()?;
        match to {
            Some(to) => match self.states.get(to) {
                None | Some(VersionState::Bad) => None,
                Some(_) if *to == bad => None,
                Some(_) => Some(to.clone()),
            },
            None => self.previous_stable(&bad),
        }
    }

    fn roll_back(&mut self, to: &V) {
        let bad = self.newest().expect("something serves");
        self.states.insert(bad.clone(), VersionState::Bad);
        let serving: Vec<V> = self
            .states
            .iter()
            .filter(|(v, s)| **v != bad && *v != to && matches!(s, VersionState::Canary | VersionState::Probation | VersionState::Active))
            .map(|(v, _)| v.clone())
            .collect();
        for v in serving {
            self.retire(&v);
        }
        self.states.insert(to.clone(), VersionState::Active);
        self.trial = None;
    }

    /// The deployer's health check: a version on trial that breached (a trap storm, an escalation)
    /// goes back to its previous stable version, if it has one.
    fn evaluate(&mut self) {
        let Some(t) = self.trial.clone() else { return };
        let breached = self.breached.contains(&t.version) || self.traps.get(&t.version).copied().unwrap_or(0) >= TRAP_STORM;
        if breached && let Some(to) = self.previous_stable(&t.version) {
            self.roll_back(&to);
        }
    }
}

/// A player in a room, in-process.
struct Player {
    id: Arc<str>,
    handle: RoomHandle,
    _out: OutReceiver,
}

/// One running host: the real store, rooms and deployer, without listeners.
struct Host {
    store: Store,
    rooms: Rooms,
    deployer: Arc<Deployer>,
    players: HashMap<usize, Player>,
}

struct World {
    _dir: tempfile::TempDir,
    plugins: PathBuf,
    url: String,
    config: Config,
    host: Option<Host>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// Waits until `done` holds (an upper bound for failing, never a figure).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let url = format!("sqlite://{}", dir.path().join("warden.db").display());
        let sets: Vec<String> = vec![
            format!("plugin_dir={:?}", plugins.display().to_string()),
            format!("data_dir={:?}", dir.path().display().to_string()),
            format!("deploy.trusted_keys=[{:?}]", keys().pk),
            "deploy.watch=false".into(),
            "rollout.strategy=\"canary\"".into(),
            "rollout.canary_share=0.5".into(),
            // Phases end by promotion or rollback only, never by the clock: the sequence decides.
            "rollout.canary_ms=3600000".into(),
            "rollout.probation_ms=3600000".into(),
            "health.window_ms=3600000".into(),
            format!("health.trap_storm={TRAP_STORM}"),
            // Debug-build call latencies on a loaded machine are noise, not a breach.
            "health.latency_factor=0.0".into(),
            "rooms.restart_limit=1000".into(),
            "rooms.restart_backoff_ms=1".into(),
            "rooms.empty_grace_ms=3600000".into(),
            "rooms.game_threads=false".into(),
            "limits.max_instances=64".into(),
            // A deadline hit counts like a trap; on a loaded debug build, time is not what this tests.
            "limits.call_deadline_ms=1000".into(),
        ];
        let config = Config::load(None, Vec::new(), &sets).expect("test configuration");
        World { _dir: dir, plugins, url, config, host: None }
    }

    async fn start(&mut self) {
        // A short busy timeout, so that a step against a locked store fails quickly.
        let store = Store::Sqlite(SqliteStore::open_with(&self.url, 4, |o| o.busy_timeout(Duration::from_millis(100))).await.unwrap());
        let rt = Arc::new(Runtime::new(self.config.limits.clone(), Some(shared_data().path().join("cache"))).unwrap());
        let rooms = Rooms::new(HashMap::new(), self.config.rooms.clone(), Arc::new(MemorySaves::default()));
        rooms.attach(store.clone(), self.config.crash_dir(), self.config.crashes.max_bytes);
        let deployer = Arc::new(Deployer::new(rt, store.clone(), rooms.clone(), &self.config).unwrap());
        deployer.boot().await.unwrap();
        self.host = Some(Host { store, rooms, deployer, players: HashMap::new() });
    }

    async fn stop(&mut self) {
        let host = self.host.take().unwrap();
        host.deployer.save_rollouts().await;
        host.rooms.shutdown().await;
    }

    fn host(&self) -> &Host {
        self.host.as_ref().unwrap()
    }

    /// Drops `version` signed into the plugin directory (once) and runs the deployer on it.
    async fn deploy(&self, version: &V) -> Result<(), &'static str> {
        let path = self.plugins.join(format!("{PLUGIN}-{version}.wasm"));
        if !path.exists() {
            drop_version(&self.plugins, PLUGIN, PLUGIN, &version.to_string());
        }
        self.host().deployer.run(&Candidate::file(path, Instant::now()), false).await.map(|_| ()).map_err(|r| r.kind())
    }

    /// The room's listing, once it has caught up with its target version and shows `players`.
    async fn settle(&self, room: usize, players: u64) -> String {
        let host = self.host();
        let game = host.rooms.game(PLUGIN).expect("the game is loaded");
        let mut version = String::new();
        until(&format!("room {} runs its target version with {players} player(s)", ROOMS[room]), || {
            let target = game.serving().target(ROOMS[room]).manifest().version.clone();
            let listed = host.rooms.list().into_iter().find(|r| r.room == ROOMS[room]);
            version = target.clone();
            listed.is_some_and(|r| r.version == target && r.usage.players == players)
        })
        .await;
        version
    }

    async fn join(&mut self, room: usize) {
        static N: AtomicU64 = AtomicU64::new(0);
        let id: Arc<str> = format!("p{}", N.fetch_add(1, Ordering::Relaxed)).into();
        let (out, rx) = OutQueue::new(1024, 1 << 20);
        let conn =
            PlayerConn { id: id.clone(), format: Format::MsgPack, out, kill: Kill::default(), in_room: Arc::new(AtomicBool::new(false)) };
        let handle = self.host().rooms.join(PLUGIN, ROOMS[room], conn).await.expect("the player joins");
        self.host.as_mut().unwrap().players.insert(room, Player { id, handle, _out: rx });
        self.settle(room, 1).await;
    }

    async fn leave(&mut self, room: usize) {
        let player = self.host.as_mut().unwrap().players.remove(&room).unwrap();
        assert!(player.handle.send(RoomInput::Leave { player: player.id.clone() }).await);
        self.settle(room, 0).await;
    }

    /// Makes the room's version trap once; returns that version once the trap is counted.
    async fn trap(&self, room: usize) -> V {
        let version = self.settle(room, 1).await;
        let game = self.host().rooms.game(PLUGIN).unwrap();
        let health = game.health(&version);
        let before = health.total().traps;
        // The plan goes into the room's state: trap on the next message, that message, back to normal.
        let mode = |m: &str| rmp_serde::to_vec_named(&serde_json::json!({"fail": "on-message", "mode": m})).unwrap();
        let player = &self.host().players[&room];
        for payload in [mode("trap"), rmp_serde::to_vec(&1u8).unwrap(), mode("ok")] {
            assert!(player.handle.send(RoomInput::Msg { player: player.id.clone(), payload }).await);
        }
        until(&format!("the trap in {} is counted against {version}", ROOMS[room]), || health.total().traps > before).await;
        V::parse(&version).unwrap()
    }

    /// Runs `step` while another connection holds SQLite's write lock.
    async fn busy<T>(&self, step: impl std::future::Future<Output = T>) -> T {
        let other = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&self.url).await.unwrap();
        let lock = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let out = step.await;
        lock.rollback().await.unwrap();
        other.close().await;
        out
    }

    /// Compares everything observable with the model.
    async fn check(&self, model: &Model, after: &Action) {
        let host = self.host();
        let ctx = || format!("after {after:?}\nmodel: {model:#?}");
        let registry: BTreeMap<V, VersionState> =
            host.store.versions(PLUGIN).await.unwrap().into_iter().map(|r| (V::parse(&r.version).unwrap(), r.state)).collect();
        assert_eq!(registry, model.states, "the registry's states, {}", ctx());
        assert_eq!(host.store.floor(PLUGIN).await.unwrap(), model.floor, "the floor, {}", ctx());
        let Some(serving) = model.serving() else {
            assert!(host.rooms.game(PLUGIN).is_none(), "nothing serves yet, {}", ctx());
            return;
        };
        let game = host.rooms.game(PLUGIN).expect("the game is loaded");
        let now = game.serving();
        assert_eq!(V::parse(&now.active.manifest().version).unwrap(), serving, "the version every room is given, {}", ctx());
        let canary = now.canary.as_ref().map(|c| V::parse(&c.plugin.manifest().version).unwrap());
        assert_eq!(canary, model.canary(), "the canary, {}", ctx());

        let stored = host.store.rollout(PLUGIN).await.unwrap();
        let stored = stored.map(|r| (V::parse(&r.version).unwrap(), r.phase, r.paused));
        let expected = model
            .trial
            .as_ref()
            .map(|t| (t.version.clone(), if t.phase == Phase::Canary { "canary" } else { "probation" }.to_string(), t.paused));
        assert_eq!(stored, expected, "the stored rollout, {}", ctx());

        let status = host.deployer.status().await.unwrap();
        let versions = &status.plugins.iter().find(|p| p.name == PLUGIN).expect("in the status").versions;
        let on_trial: Vec<(V, Phase, bool)> = versions
            .iter()
            .filter(|v| v.phase.is_some_and(|p| p != Phase::Stable))
            .map(|v| (V::parse(&v.version).unwrap(), v.phase.unwrap(), v.paused))
            .collect();
        let expected: Vec<(V, Phase, bool)> = model.trial.iter().map(|t| (t.version.clone(), t.phase, t.paused)).collect();
        assert_eq!(on_trial, expected, "the rollout in `warden status`, {}", ctx());
        assert!(versions.iter().all(|v| !v.paused || v.phase.is_some_and(|p| p != Phase::Stable)), "only a trial is paused, {}", ctx());

        let previous = host.deployer.previous_stable(PLUGIN).await.unwrap().map(|v| V::parse(&v).unwrap());
        assert_eq!(previous, model.previous_stable(&model.newest().unwrap()), "the previous stable version, {}", ctx());
    }
}

/// Runs one step on the host and the model; returns whether the model says it did something.
async fn step(world: &mut World, model: &mut Model, action: &Action, busy: bool) {
    match action {
        Action::DeployNext | Action::Deploy(_) => {
            let version = match action {
                Action::Deploy(i) => v(*i),
                _ => match (0..VERSIONS.len()).map(v).find(|c| model.floor.as_ref().is_none_or(|f| c > f)) {
                    Some(next) => next,
                    None => return,
                },
            };
            let expected = model.refusal(&version, busy);
            let got = if busy { world.busy(world.deploy(&version)).await } else { world.deploy(&version).await };
            model.files.insert(version.clone());
            assert_eq!(got.err(), expected, "the outcome of deploying {version} (model {model:#?})");
            if expected.is_none() {
                let canary_rooms = world.host().rooms.game(PLUGIN).unwrap().serving().canary.as_ref().map(|c| c.rooms.clone());
                for room in canary_rooms.unwrap_or_default() {
                    let i = ROOMS.iter().position(|r| *r == room).unwrap();
                    assert!(model.occupied.contains(&i), "canary room {room} has a player");
                }
                model.deploy(&version);
            }
        }
        Action::Promote => {
            let deployer = world.host().deployer.clone();
            let got = if busy {
                world.busy(deployer.advance(PLUGIN, "test", "promoted")).await
            } else {
                deployer.advance(PLUGIN, "test", "promoted").await
            };
            let mut next = model.clone();
            let moved = next.promote() && !busy;
            assert_eq!(got.is_ok(), moved, "promote: {got:?}");
            if moved {
                *model = next;
            }
        }
        Action::Pause(on) => {
            let deployer = world.host().deployer.clone();
            let got = if busy { world.busy(deployer.pause(PLUGIN, *on, "test")).await } else { deployer.pause(PLUGIN, *on, "test").await };
            let allowed = model.trial.is_some() && !busy;
            assert_eq!(got.is_ok(), allowed, "pause({on}): {got:?}");
            if allowed {
                model.trial.as_mut().unwrap().paused = *on;
            }
        }
        Action::Rollback { to, force } => {
            let to = to.map(v);
            let deployer = world.host().deployer.clone();
            let to_s = to.as_ref().map(|t| t.to_string());
            let call = deployer.operator_rollback(PLUGIN, to_s.as_deref(), *force, "test");
            let got = if busy { world.busy(call).await } else { call.await };
            let previous = model.newest().and_then(|n| model.previous_stable(&n));
            let needs_force = to.is_some() && to != previous && !force;
            let target = if needs_force || busy { None } else { model.rollback_target(to.as_ref()) };
            match (&got, &target) {
                (Ok((bad, back)), Some(t)) => {
                    assert_eq!(V::parse(back).unwrap(), *t, "the rollback's target");
                    assert_eq!(Some(V::parse(bad).unwrap()), model.newest(), "the version marked bad");
                    model.roll_back(t);
                }
                (Err(OperatorError::NeedsForce(_)), None) => assert!(needs_force, "refused for want of --force: {got:?}"),
                (Err(OperatorError::Failed(_)), None) => assert!(!needs_force, "{got:?}"),
                _ => panic!("rollback to {to:?} (force {force}): got {got:?}, the model's target {target:?}"),
            }
        }
        Action::Breach => {
            let Some(version) = model.trial.as_ref().map(|t| t.version.clone()) else { return };
            let escalated = Counts { escalations: 1, ..Counts::default() };
            world.host().rooms.game(PLUGIN).unwrap().health(&version.to_string()).add(&escalated);
            model.breached.insert(version);
            world.host().deployer.evaluate().await;
            model.evaluate();
        }
        Action::Trap(room) => {
            if !model.occupied.contains(room) {
                return;
            }
            let version = world.trap(*room).await;
            assert!(Some(&version) == model.serving().as_ref() || Some(&version) == model.canary().as_ref(), "a room runs {version}");
            *model.traps.entry(version).or_default() += 1;
            world.host().deployer.evaluate().await;
            model.evaluate();
        }
        Action::Join(room) => {
            if model.occupied.contains(room) || model.serving().is_none() {
                return;
            }
            world.join(*room).await;
            model.occupied.insert(*room);
        }
        Action::Leave(room) => {
            if !model.occupied.remove(room) {
                return;
            }
            world.leave(*room).await;
        }
        Action::Busy(inner) => Box::pin(step(world, model, inner, true)).await,
        Action::Restart => {
            world.stop().await;
            world.start().await;
            model.occupied.clear();
            model.traps.clear();
            model.breached.clear();
            // A plugin never recorded (its first deploy met a locked store) starts on its newest file.
            if model.states.is_empty()
                && let Some(newest) = model.files.iter().max().cloned()
            {
                model.deploy(&newest);
            }
        }
    }
}

async fn run(actions: Vec<Action>) {
    let mut world = World::new().await;
    world.start().await;
    let mut model = Model::default();
    for action in &actions {
        step(&mut world, &mut model, action, false).await;
        world.check(&model, action).await;
    }
    world.stop().await;
}

fn cases() -> u32 {
    std::env::var("WARDEN_MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_rollout_follows_its_model(actions in vec(action(), 1..24)) {
        runtime().block_on(run(actions));
    }
}
