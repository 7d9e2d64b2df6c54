//! Rooms: one tokio task per room owns its plugin instance and its game clock ([`actor`]). [`Rooms`]
//! creates a room on the first `join` naming it, routes joins to it, and shuts every room down.

mod actor;
mod conn;
mod game;
pub use game::{Canary, GameEntry, Serving};
pub mod dumpfile;
pub mod journal;
mod service;
mod timings;
pub use service::{LeaseCheck, Owner};
use timings::{micros_histogram, record, take};
pub mod stats;
pub mod switches;
pub mod threads;
pub mod usage;
pub mod writer;

use crate::config::RoomConfig;
use crate::health::crash::CrashReport;
use crate::net::envelope::ErrorCode;
use crate::runtime::{Plugin, SaveBackend};
use crate::storage::Store;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use conn::{Kill, OutQueue, OutReceiver, Outbound, PlayerConn, QueueFull};
pub use switches::{Switch, Switches};

/// A room could not move to a new version: the room stays on the one it ran; the deployer rolls the new
/// version back.
#[derive(Clone, Debug)]
pub struct SwapFailure {
    /// Game name.
    pub game: String,
    /// Room id.
    pub room: String,
    /// The version the room stays on.
    pub from: String,
    /// The version it could not take.
    pub to: String,
    /// Why.
    pub reason: String,
}

/// Why a join failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    /// No such game.
    #[error("no game named {0:?} is loaded (loaded: {1})")]
    UnknownGame(String, String),
    /// Bad room id.
    #[error("room id {0:?} must be 1 to 64 of ASCII letters, digits and -_.:")]
    BadRoom(String),
    /// Room at its cap.
    #[error("room {0} is full ({1} players)")]
    Full(String, u32),
    /// A threshold rule refused the join.
    #[error("{0}")]
    Refused(String),
    /// The operator closed the game to new joins.
    #[error("{0} is closed to new joins for maintenance; players already in its rooms play on. Try again later")]
    JoinsClosed(String),
    /// Same player id already in the room.
    #[error("player {0} is already in room {1}")]
    AlreadyIn(String, String),
    /// The game failed to start the room.
    #[error("the game failed to start room {0}: {1}")]
    GameFailed(String, String),
    /// The player's save could not be read; joining now could overwrite it.
    #[error("your saved progress could not be read ({0}); try again shortly")]
    SavesUnavailable(String),
    /// The room was closed for crashing and is cooling down.
    #[error("room {0} was closed after its game crashed repeatedly; it reopens from its last checkpoint in {1} s")]
    CoolingDown(String, u64),
    /// The host holds as many rooms as it may (`rooms.max_rooms`).
    #[error("this server holds its most rooms ({0}); join a room that is open, or try again later or on another server")]
    ServerFull(usize),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The host does not serve rooms now (the reason says why).
    #[error("this host is not serving rooms now ({0}); connect again in a few seconds")]
    NotServing(String),
    /// In a fleet: the room runs on another host (the session answers with a `redirect` there).
    #[error("room {room} of {game} runs on host {host} ({address}); connect there")]
    Elsewhere {
        /// The game.
        game: String,
        /// The room.
        room: String,
        /// The owning host's id.
        host: String,
        /// Where players reach it.
        address: String,
    },
}

impl JoinError {
    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            JoinError::UnknownGame(..) => ErrorCode::UnknownGame,
            JoinError::BadRoom(_) => ErrorCode::BadRoom,
            JoinError::Full(..) => ErrorCode::RoomFull,
            JoinError::JoinsClosed(_) => ErrorCode::JoinsClosed,
            JoinError::Refused(_) => ErrorCode::Kicked,
            JoinError::AlreadyIn(..) => ErrorCode::AlreadyInRoom,
            JoinError::GameFailed(..) => ErrorCode::GameError,
            JoinError::SavesUnavailable(_) => ErrorCode::GameError,
            JoinError::CoolingDown(..) => ErrorCode::GameError,
            JoinError::ServerFull(_) => ErrorCode::ServerFull,
            JoinError::ShuttingDown => ErrorCode::ShuttingDown,
            JoinError::NotServing(_) | JoinError::Elsewhere { .. } => ErrorCode::NotServing,
        }
    }
}

/// An input for a room, delivered at its next tick in arrival order.
pub enum RoomInput {
    /// A player wants in; the room answers on `reply`.
    Join {
        /// The player.
        conn: PlayerConn,
        /// The answer.
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    /// A player left.
    Leave {
        /// Player id.
        player: Arc<str>,
    },
    /// A game message from a player.
    Msg {
        /// Player id.
        player: Arc<str>,
        /// MessagePack payload.
        payload: Vec<u8>,
    },
    /// The room's state, checkpoint and journal, for an operator or a test.
    Dump(oneshot::Sender<RoomDump>),
}

/// A room's state with the checkpoint and journal it derives from.
pub struct RoomDump {
    /// The version it runs.
    pub version: String,
    /// The tick it is at.
    pub tick: u64,
    /// The room's random seed.
    pub seed: u64,
    /// `snapshot()` now (`None` if it failed).
    pub state: Option<Vec<u8>>,
    /// The checkpoint.
    pub base: journal::Base,
    /// Every call since the checkpoint.
    pub journal: journal::Journal,
    /// Calls, errors and traps in this room since it opened.
    pub counts: crate::health::Counts,
    /// The players in it.
    pub players: Vec<String>,
    /// Timers pending now.
    pub timers: Vec<journal::Timer>,
    /// The last errors its plugin calls gave, oldest first.
    pub recent_errors: Vec<RecentError>,
    /// Its tick rate.
    pub tick_hz: u32,
    /// The plugin's feature switches that are on.
    pub features: Vec<String>,
}

/// An error a room's plugin call gave.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RecentError {
    /// The tick it happened in.
    pub tick: u64,
    /// The export.
    pub export: String,
    /// `err`, `trap` or `deadline`.
    pub outcome: String,
    /// What went wrong (for a trap, without the backtrace: the crash report has it).
    pub message: String,
}

/// How one room left a bad version.
#[derive(Clone, Copy, Debug)]
pub struct RollbackTiming {
    /// Instantiating and restoring the checkpoint.
    pub restore: std::time::Duration,
    /// Replaying the journal.
    pub replay: std::time::Duration,
    /// Calls replayed.
    pub calls: usize,
    /// When the room was back on the previous version.
    pub done: std::time::Instant,
}

/// A session's handle to the room it is in.
#[derive(Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomInput>,
}

impl RoomHandle {
    /// Queues an input for the room's next tick (waits while the room's inbox is full). Returns false if
    /// the room has closed.
    pub async fn send(&self, input: RoomInput) -> bool {
        self.tx.send(input).await.is_ok()
    }
}

/// Facts about a room, for operators (`warden rooms`, `GET /admin/rooms`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RoomSummary {
    /// Game name.
    pub game: String,
    /// Room id.
    pub room: String,
    /// Plugin version.
    pub version: String,
    /// Random seed.
    pub seed: u64,
    /// What the room makes the host hold, as of its last tick.
    pub usage: usage::Usage,
    /// When it opened (Unix ms).
    pub opened_ms: u64,
    /// Where the room writes that.
    #[serde(skip)]
    live: Arc<usage::RoomUsage>,
    /// Stops the room (its term's token).
    #[serde(skip)]
    stop: CancellationToken,
}

type RoomKey = (String, String);

struct Inner {
    games: RwLock<HashMap<String, Arc<GameEntry>>>,
    rooms: Mutex<HashMap<RoomKey, (RoomHandle, RoomSummary)>>,
    config: RoomConfig,
    saves: Arc<dyn SaveBackend>,
    stop: CancellationToken,
    /// Whether rooms are served now, and the term they run in ([`service`]).
    service: Arc<service::Service>,
    tasks: TaskTracker,
    seeds: RandomState,
    /// Duration of every tick of every room, in microseconds (without the output gate's wait).
    tick_us: Mutex<hdrhistogram::Histogram<u64>>,
    /// How long durable rooms' answers waited for their journal's commit, in microseconds (recorded by
    /// the writer, which sends them).
    gate_us: writer::GateWaits,
    /// How long each room paused to change version (snapshot + instantiate + restore), in microseconds.
    swap_us: Mutex<hdrhistogram::Histogram<u64>>,
    swap_failures: mpsc::UnboundedSender<SwapFailure>,
    /// Rooms changing version at once: one per core, so a swap storm never queues more memory-mapping
    /// work than there are cores to run it.
    swap_gate: Arc<tokio::sync::Semaphore>,
    swap_failures_rx: Mutex<Option<mpsc::UnboundedReceiver<SwapFailure>>>,
    /// Per-room rollbacks since the last `take_rollbacks`.
    rollbacks: Mutex<Vec<RollbackTiming>>,
    /// Where checkpoints and journals are read at room start (none: in memory only).
    store: OnceLock<Store>,
    /// Where rooms write checkpoints, journals and versions ([`writer`]).
    writer: OnceLock<writer::RoomWriter>,
    crashes: OnceLock<mpsc::UnboundedSender<CrashReport>>,
    /// Rooms closed for crashing: until when they refuse joins, and how often they were closed so.
    cooling: Mutex<HashMap<RoomKey, (std::time::Instant, u32)>>,
    /// Where room tasks run: the game threads, or (unset) the runtime that creates the room.
    game_threads: OnceLock<tokio::runtime::Handle>,
    lifecycle: stats::Lifecycle,
    /// Threshold rules: rooms count what they ask about ([`crate::rules`]).
    rules: Arc<crate::rules::Rules>,
}

/// Every room of the server.
#[derive(Clone)]
pub struct Rooms(Arc<Inner>);

/// Whether `id` is an acceptable room id.
pub fn valid_room_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl Rooms {
    /// Rooms of the given games.
    pub fn new(games: HashMap<String, Arc<GameEntry>>, config: RoomConfig, saves: Arc<dyn SaveBackend>) -> Self {
        let (swap_failures, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        Rooms(Arc::new(Inner {
            games: RwLock::new(games),
            rooms: Mutex::new(HashMap::new()),
            config,
            saves,
            service: Arc::new(service::Service::new(&stop)),
            stop,
            tasks: TaskTracker::new(),
            seeds: RandomState::new(),
            tick_us: micros_histogram(),
            gate_us: Arc::new(micros_histogram()),
            swap_us: micros_histogram(),
            swap_failures,
            swap_gate: Arc::new(tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))),
            swap_failures_rx: Mutex::new(Some(rx)),
            rollbacks: Mutex::new(Vec::new()),
            store: OnceLock::new(),
            writer: OnceLock::new(),
            crashes: OnceLock::new(),
            cooling: Mutex::new(HashMap::new()),
            game_threads: OnceLock::new(),
            lifecycle: Default::default(),
            rules: Default::default(),
        }))
    }

    /// The threshold rules its rooms, joins and connections count for.
    pub fn rules(&self) -> &Arc<crate::rules::Rules> {
        &self.0.rules
    }

    /// Keeps room checkpoints (and, with `rooms.durability = "durable"`, their journals) in `store`: a
    /// room resumes from them when it opens again, after a restart or a crash too. Writes crash reports
    /// to `crash_dir`, kept under `crash_max_bytes`.
    pub fn attach(&self, store: Store, crash_dir: std::path::PathBuf, crash_max_bytes: u64) {
        let interval = std::time::Duration::from_millis(self.0.config.commit_interval_ms);
        let rooms = Arc::downgrade(&self.0);
        let on_fenced: writer::OnFenced = Box::new(move |game, room| {
            if let Some(rooms) = rooms.upgrade() {
                Rooms(rooms).fence(game, room);
            }
        });
        let _ = self.0.writer.set(writer::RoomWriter::start(
            store.clone(),
            interval,
            self.0.gate_us.clone(),
            self.0.service.clone(),
            on_fenced,
        ));
        let _ = self.0.store.set(store);
        let _ = self.0.crashes.set(crate::health::crash::start_writer(crash_dir, crash_max_bytes));
    }

    /// The room writer's figures (none before [`Rooms::attach`]).
    pub fn writer_stats(&self) -> Option<writer::WriterStats> {
        self.0.writer.get().map(|w| w.stats())
    }

    /// Whether room writes fail now (the store is unreachable): the error being retried.
    pub fn writer_health(&self) -> Option<String> {
        self.0.writer.get().and_then(|w| w.health())
    }

    /// Opens every room the store says was open when this host last stopped (or crashed), on the games
    /// loaded now; each resumes from its checkpoint and durable journal. Returns how many.
    pub async fn resume_open(&self) -> anyhow::Result<usize> {
        let Some(store) = self.0.store.get() else { return Ok(0) };
        let mut resumed = 0;
        for c in store.open_rooms().await? {
            match self.game(&c.game) {
                Some(entry) if valid_room_id(&c.room) => {
                    match self.get_or_create(&c.game, &c.room, &entry) {
                        Ok(_) => {}
                        // The rest stay recorded as open: a restart with a higher cap resumes them.
                        Err(JoinError::ServerFull(max)) => {
                            tracing::warn!(resumed, "more rooms were open than rooms.max_rooms ({max}) allows: the rest are not resumed");
                            break;
                        }
                        Err(why) => anyhow::bail!("rooms are not served now ({why}): {resumed} of the open rooms resumed"),
                    }
                    resumed += 1;
                }
                _ => tracing::warn!(game = %c.game, room = %c.room, "an open room of a game that is not loaded is not resumed"),
            }
        }
        Ok(resumed)
    }

    /// Runs every room created from now on on `threads` (see [`threads::GameThreads`]).
    pub fn run_on(&self, threads: tokio::runtime::Handle) {
        let _ = self.0.game_threads.set(threads);
    }

    /// Resolves once every checkpoint (and journal row) sent so far is written.
    pub async fn flush_checkpoints(&self) {
        if let Some(writer) = self.0.writer.get() {
            writer.flush().await;
        }
    }

    /// The room's state, checkpoint and journal (answered at its next tick), or `None` if it is not open.
    pub async fn dump(&self, game: &str, room: &str) -> Option<RoomDump> {
        let handle = self.0.rooms.lock().unwrap().get(&(game.to_string(), room.to_string())).map(|(h, _)| h.clone())?;
        let (tx, rx) = oneshot::channel();
        if !handle.send(RoomInput::Dump(tx)).await {
            return None;
        }
        rx.await.ok()
    }

    /// Rooms opened and closed so far.
    pub fn lifecycle(&self) -> stats::LifecycleCounts {
        self.0.lifecycle.get()
    }

    /// Rooms of each game refusing joins after crashing (cooling down) now.
    pub fn cooling(&self) -> BTreeMap<String, usize> {
        let now = std::time::Instant::now();
        let mut out = BTreeMap::new();
        for ((game, _), (until, _)) in self.0.cooling.lock().unwrap().iter() {
            if *until > now {
                *out.entry(game.clone()).or_default() += 1;
            }
        }
        out
    }

    /// Per-room rollback timings since the last call.
    pub fn take_rollbacks(&self) -> Vec<RollbackTiming> {
        std::mem::take(&mut *self.0.rollbacks.lock().unwrap())
    }

    /// Names of the loaded games.
    pub fn games(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.games.read().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    /// The game `name`, if loaded.
    pub fn game(&self, name: &str) -> Option<Arc<GameEntry>> {
        self.0.games.read().unwrap().get(name).cloned()
    }

    /// Makes `plugin` the active version of its game, adding the game (with `config`, `switches` and
    /// health windows of `health_window`) if it is new. Live rooms of the game move to it at their next tick boundary.
    pub fn activate(&self, plugin: Arc<Plugin>, config: Vec<u8>, switches: Switches, health_window: std::time::Duration) {
        let name = plugin.manifest().name.clone();
        let mut games = self.0.games.write().unwrap();
        match games.get(&name) {
            Some(game) => game.set_active(plugin),
            None => {
                games.insert(name, Arc::new(GameEntry::with_window(plugin, config, switches, health_window)));
            }
        }
    }

    /// How many open rooms of `game` run each version.
    pub fn versions(&self, game: &str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (_, summary) in self.0.rooms.lock().unwrap().values() {
            if summary.game == game {
                *counts.entry(summary.version.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// Failed room swaps, in the order they happened (for the deployer; the first caller gets them).
    pub fn take_swap_failures(&self) -> Option<mpsc::UnboundedReceiver<SwapFailure>> {
        self.0.swap_failures_rx.lock().unwrap().take()
    }

    /// Per-room swap pauses since the last call (microseconds), and resets them.
    pub fn take_swap_times(&self) -> hdrhistogram::Histogram<u64> {
        take(&self.0.swap_us)
    }

    fn swapped(&self, key: &RoomKey, version: &str, micros: u64) {
        record(&self.0.swap_us, micros);
        self.0.lifecycle.swapped(&key.0);
        if let Some((_, summary)) = self.0.rooms.lock().unwrap().get_mut(key) {
            summary.version = version.to_string();
        }
    }

    /// A room closed for crashing past its restart limit: it refuses joins for the cooldown, doubled for
    /// each earlier such close (up to 16 times).
    fn closed_for_crashes(&self, key: &RoomKey) {
        let base = std::time::Duration::from_millis(self.0.config.crash_cooldown_ms);
        let mut cooling = self.0.cooling.lock().unwrap();
        let times = cooling.get(key).map_or(0, |(_, n)| *n) + 1;
        let cooldown = base * (1u32 << (times - 1).min(4));
        cooling.insert(key.clone(), (std::time::Instant::now() + cooldown, times));
        tracing::warn!(game = %key.0, room = %key.1, times, ?cooldown, "the room closed after repeated crashes; it refuses joins for its cooldown");
    }

    /// How long room `key` still refuses joins, if it is cooling down.
    fn cooling_down(&self, key: &RoomKey) -> Option<std::time::Duration> {
        let cooling = self.0.cooling.lock().unwrap();
        let (until, _) = cooling.get(key)?;
        until.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero())
    }

    /// A room resumed from a checkpoint took back its stored seed.
    fn reseeded(&self, key: &RoomKey, seed: u64) {
        if let Some((_, summary)) = self.0.rooms.lock().unwrap().get_mut(key) {
            summary.seed = seed;
        }
    }

    fn rolled_back(&self, key: &RoomKey, version: &str, timing: RollbackTiming) {
        self.0.rollbacks.lock().unwrap().push(timing);
        self.0.lifecycle.rolled_back(&key.0);
        if let Some((_, summary)) = self.0.rooms.lock().unwrap().get_mut(key) {
            summary.version = version.to_string();
        }
    }

    /// The rooms open now.
    pub fn list(&self) -> Vec<RoomSummary> {
        let mut list: Vec<RoomSummary> = self.0.rooms.lock().unwrap().values().map(|(_, s)| s.clone()).collect();
        for summary in &mut list {
            summary.usage = summary.live.get();
        }
        list.sort_by(|a, b| (&a.game, &a.room).cmp(&(&b.game, &b.room)));
        list
    }

    /// Puts `conn` into room `room` of `game`, creating the room if needed. Resolves once the room has
    /// taken the player in (at its next tick).
    pub async fn join(&self, game: &str, room: &str, conn: PlayerConn) -> Result<RoomHandle, JoinError> {
        let Some(entry) = self.game(game) else {
            return Err(JoinError::UnknownGame(game.to_string(), self.games().join(", ")));
        };
        if !valid_room_id(room) {
            return Err(JoinError::BadRoom(room.to_string()));
        }
        if !entry.switches.load().joins {
            return Err(JoinError::JoinsClosed(game.to_string()));
        }
        // Before reading the player's save: a host that stopped serving may have lost its store.
        if let Some(why) = self.not_serving() {
            return Err(JoinError::NotServing(why));
        }
        // In a fleet, a room that is not open here may belong on another host.
        self.place(game, room).await?;
        self.count_join(game, &conn.id)?;
        // The plugin's load-save must answer from memory: read the player's save before the join.
        if let Err(e) = self.0.saves.preload(game, &conn.id).await {
            // The store's error may name host paths: the player gets an incident id instead.
            let incident = crate::health::crash::incident_id();
            tracing::error!(game, player = %conn.id, incident, "failed to read the player's save: {e:#}");
            return Err(JoinError::SavesUnavailable(format!("incident {incident}")));
        }
        if let Some(wait) = self.cooling_down(&(game.to_string(), room.to_string())) {
            return Err(JoinError::CoolingDown(room.to_string(), wait.as_secs_f64().ceil() as u64));
        }
        loop {
            if self.0.stop.is_cancelled() {
                return Err(JoinError::ShuttingDown);
            }
            let handle = self.get_or_create(game, room, &entry)?;
            let (reply, answer) = oneshot::channel();
            if handle.send(RoomInput::Join { conn: conn.clone(), reply }).await {
                match answer.await {
                    Ok(result) => return result.map(|()| handle),
                    Err(_) => continue, // the room closed before taking the join: a new one will
                }
            }
        }
    }

    /// Counts a join for the rules on joins; a kicking rule that fires refuses it.
    fn count_join(&self, game: &str, player: &Arc<str>) -> Result<(), JoinError> {
        let set = self.0.rules.current();
        let joins = set.for_game(game).joins;
        if joins.is_empty() {
            return Ok(());
        }
        let observed: Vec<_> = joins.iter().filter_map(|&i| Some((i, set.subject(i, player)?, 1.0))).collect();
        match self.0.rules.observe(&set, game, &observed).into_iter().find(|a| a.action == crate::rules::Action::Kick) {
            Some(kick) => Err(JoinError::Refused(kick.detail.unwrap_or_default())),
            None => Ok(()),
        }
    }

    /// The room's handle, starting the room if it is not open; refused while the host does not serve
    /// rooms (with the reason) or holds `rooms.max_rooms` already.
    fn get_or_create(&self, game: &str, room: &str, entry: &Arc<GameEntry>) -> Result<RoomHandle, JoinError> {
        let key = (game.to_string(), room.to_string());
        // Before the room list's lock: a suspension cannot come between the check and the room's start
        // (the room starts in a term that has already ended, and stops at once).
        let term = self.0.service.enter().map_err(JoinError::NotServing)?;
        let mut rooms = self.0.rooms.lock().unwrap();
        if let Some((handle, _)) = rooms.get(&key)
            && !handle.tx.is_closed()
        {
            return Ok(handle.clone());
        }
        // Counted under the lock that adds rooms: joins racing for the last places cannot pass the cap.
        // A room that closed and has not been taken off the list yet still counts, for a moment.
        let max = self.0.config.max_rooms;
        if rooms.len() >= max && !rooms.contains_key(&key) {
            tracing::debug!(game, room, max, "a join was refused: the host holds rooms.max_rooms rooms");
            self.0.lifecycle.refused_full(game);
            return Err(JoinError::ServerFull(max));
        }
        let (tx, rx) = mpsc::channel(self.0.config.inbox);
        let handle = RoomHandle { tx };
        // The seed is published to the room's players; the hash key (which keys the guest's hash maps)
        // comes from the same process secret by another input and is never shown.
        let seed = self.0.seeds.hash_one(&key);
        let hash_key = self.0.seeds.hash_one((&key, "hash-key"));
        let stop = term.stop.clone();
        let room = actor::Room::new(self.clone(), key.clone(), entry.clone(), (seed, hash_key), rx, term);
        let summary = RoomSummary {
            game: game.to_string(),
            room: room.key.1.clone(),
            version: room.version().to_string(),
            seed,
            usage: Default::default(),
            opened_ms: crate::storage::now_ms() as u64,
            live: room.usage.clone(),
            stop,
        };
        self.0.lifecycle.opened(game);
        rooms.insert(key.clone(), (handle.clone(), summary));
        let task = self.clone().supervised(key, entry.clone(), room.run());
        match self.0.game_threads.get() {
            Some(threads) => self.0.tasks.spawn_on(task, threads),
            None => self.0.tasks.spawn(task),
        };
        Ok(handle)
    }

    /// Runs a room's task; if it dies without closing (a panic in the host, outside any plugin call),
    /// the failure is handled like a crash of the room: logged, reported, counted against the version it
    /// ran, its listing removed. Its players are told by the room's member list as it is dropped.
    async fn supervised(self, key: RoomKey, game: Arc<GameEntry>, run: impl std::future::Future<Output = ()>) {
        use futures_util::FutureExt as _;
        let Err(panic) = std::panic::AssertUnwindSafe(run).catch_unwind().await else { return };
        let message = crate::runtime::panic_message(&*panic);
        let version = self.0.rooms.lock().unwrap().get(&key).map(|(_, s)| s.version.clone()).unwrap_or_default();
        tracing::error!(game = %key.0, room = %key.1, version, "the room's task failed: {message}; its players were told and the room closed");
        game.health(&version).add(&crate::health::Counts { calls: 1, traps: 1, ..Default::default() });
        if let Some(tx) = self.0.crashes.get() {
            let _ = tx.send(CrashReport {
                id: crate::health::crash::incident_id(),
                at_ms: crate::storage::now_ms(),
                plugin: key.0.clone(),
                version: version.clone(),
                room: key.1.clone(),
                tick: 0,
                export: "-".into(),
                kind: "host_panic".into(),
                message: format!("the room's task failed: {message}"),
                backtrace: Vec::new(),
                player: None,
                input: None,
                checkpoint: crate::health::crash::CheckpointRef { id: 0, tick: 0, version },
                restarts_in_window: 0,
                outcome: "closed".into(),
            });
        }
        self.closed_for_crashes(&key);
        self.0.lifecycle.closed(&key.0, stats::CloseReason::HostPanic);
        self.remove(&key);
    }

    /// Forgets room `key` if its channel is closed (called by the room as it closes; a newer room under
    /// the same key is left alone).
    fn remove(&self, key: &RoomKey) {
        let mut rooms = self.0.rooms.lock().unwrap();
        if rooms.get(key).is_some_and(|(h, _)| h.tx.is_closed()) {
            rooms.remove(key);
            if rooms.is_empty() {
                self.0.service.emptied.notify_waiters();
            }
        }
    }

    /// How many rooms are open.
    pub fn open_count(&self) -> usize {
        self.0.rooms.lock().unwrap().len()
    }

    /// Stops every room: each finishes its tick, flushes, tells its players and ends. Resolves when all
    /// have ended; no room is created afterwards.
    pub async fn shutdown(&self) {
        self.0.stop.cancel();
        self.0.tasks.close();
        self.0.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests;
