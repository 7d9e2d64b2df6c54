//! The room actor: one task, one plugin instance, a fixed-step game clock.
//!
//! Each tick: advance the game clock; deliver the inputs that arrived since the last tick in arrival
//! order (joins, leaves, messages); fire the timers that were due before those inputs, in due order;
//! call `on-tick`;
//! then flush what the plugin sent, one batch per player. Game time is `tick * 1000 / tick_hz`, never wall
//! time; ticks run on an absolute schedule, and a late tick is caught up, not skipped. A room of a game
//! that dispatches on arrival hands its plugin each input, and sends the answers, as it arrives, in the
//! next tick's section ([`arrival`]).
//!
//! Every call is journaled first ([`super::journal`]); the room checkpoints on a cadence of game time
//! while its version is stable, when its journal is full, and before every swap. Checkpoint + journal is
//! the room's truth:
//! - **Swap.** Between ticks the room follows the version its game serves it (a canary room may run a
//!   newer one than the rest): it checkpoints, instantiates the new version in the same environment (clock,
//!   random stream, saves) and restores the state into it. Inputs that arrive meanwhile wait in the inbox.
//!   If the new side fails, the room keeps its old instance untouched and reports the failure.
//! - **Rollback.** Leaving a version marked bad, the room restores its pre-swap checkpoint into the
//!   target version and replays the journal with sends suppressed: it ends where it would be had the bad
//!   version never run, and no input is lost.
//! - **Supervision.** A trap poisons the instance: the call is taken out of the journal, its sender gets
//!   an `error`, a crash report is written, and the instance is rebuilt from checkpoint + journal. Past the
//!   restart intensity the room escalates to its version's health (a version on canary or probation is
//!   rolled back) or, on a stable version, saves a checkpoint and closes with a reason to its players.

use super::journal::{self, Base, Journal, Timer};
use super::{GameEntry, JoinError, PlayerConn, RollbackTiming, RoomDump, RoomInput, RoomKey, Rooms, SwapFailure};
use crate::health::crash::decode_input;
use crate::health::{Counts, Export, Outcome, VersionHealth};
use crate::net::envelope::{self, ErrorCode, Format, ServerEnvelope, ServerMsg};
use crate::runtime::{CallError, Features, GameClock, InstanceEnv, Plugin, PluginInstance, Recipient, RoomInfo, RoomRng};

mod arrival;
mod close;
mod output;
use output::WRITER_STOPPED;
mod recovery;
mod rules;
use crate::storage::Checkpoint;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

/// One plugin call of a tick, as journaled.
#[derive(Clone, Copy)]
enum Input<'a> {
    Join(&'a Arc<str>),
    Leave(&'a Arc<str>),
    Msg(&'a Arc<str>, &'a [u8]),
    Timer(&'a str),
    Tick(u32),
}

impl Input<'_> {
    fn record(self, journal: &mut Journal) {
        match self {
            Input::Join(p) => journal.join(p),
            Input::Leave(p) => journal.leave(p),
            Input::Msg(p, payload) => journal.msg(p, payload),
            Input::Timer(tag) => journal.timer(tag),
            Input::Tick(dt) => journal.on_tick(dt),
        }
    }

    fn export(self) -> Export {
        match self {
            Input::Join(_) => Export::Join,
            Input::Leave(_) => Export::Leave,
            Input::Msg(..) => Export::Message,
            Input::Timer(_) => Export::Timer,
            Input::Tick(_) => Export::Tick,
        }
    }

    fn invoke(self, instance: &mut PluginInstance, tick: u64) -> Result<(), CallError> {
        match self {
            Input::Join(p) => instance.on_join(p),
            Input::Leave(p) => instance.on_leave(p),
            Input::Msg(p, payload) => instance.on_message(p, payload),
            Input::Timer(tag) => instance.on_timer(tag),
            Input::Tick(dt) => instance.on_tick(tick, dt),
        }
    }

    /// The input for a crash report.
    fn describe(self) -> Option<serde_json::Value> {
        match self {
            Input::Join(_) | Input::Leave(_) | Input::Tick(_) => None,
            Input::Msg(_, payload) => Some(decode_input(payload)),
            Input::Timer(tag) => Some(serde_json::json!({ "timer": tag })),
        }
    }
}

/// A game message's type, for the call's span: the `type` field of a MessagePack map (what the SDK's
/// tagged enums carry), or `-`. Only read when the span is enabled.
fn message_type(payload: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Tagged {
        #[serde(rename = "type")]
        ty: String,
    }
    rmp_serde::from_slice::<Tagged>(payload).map(|t| t.ty).unwrap_or_else(|_| "-".into())
}

pub(super) struct Room {
    rooms: Rooms,
    /// The stop token it runs under and the term its answers belong to ([`super::service`]).
    term: super::service::Term,
    /// In a fleet, the claim its writes are fenced by (set as it starts).
    claim: Option<Arc<crate::storage::owners::Claimed>>,
    pub(super) key: RoomKey,
    /// `key` shared, for the journal rows handed to the writer every tick.
    names: (Arc<str>, Arc<str>),
    game: Arc<GameEntry>,
    /// The version this room's instance runs.
    plugin: Arc<Plugin>,
    /// That version's health counts.
    health: Arc<VersionHealth>,
    /// This tick's counts (added to `health` at the tick's end).
    tally: Counts,
    /// Counts since the room opened.
    counts: Counts,
    /// The last checkpoint.
    base: Base,
    /// Every call since it.
    journal: Journal,
    /// Whether calls are journaled (`rooms.journal`).
    journaling: bool,
    /// Whether each tick's journal is made durable before its answers leave (`rooms.durability`).
    durable: bool,
    /// Where the journal not yet handed to the store's writer starts.
    durable_mark: journal::ChunkMark,
    /// The room's last answers handed to the writer, until it has sent them (at most one hand-over is
    /// in flight: see [`super::writer`]).
    in_flight: Option<super::writer::Delivered>,
    /// Whether it hands its plugin inputs as they arrive (`rooms.dispatch = "arrival"`, [`arrival`]).
    arrival: bool,
    /// Whether a tick's section is open: an input arrived since the last tick ([`arrival`]).
    open: bool,
    /// Whether the open section was handed to the store's writer in part (it is handed over whole when
    /// it closes).
    partial: bool,
    /// The feature switches its instance sees: the game's, taken at a tick's start.
    features: Features,
    /// Checkpoints taken (names them).
    checkpoints: u64,
    /// When the instance trapped, within the restart-intensity window.
    restarts: VecDeque<Instant>,
    /// Timers due this tick not fired yet.
    due: VecDeque<Timer>,
    /// A version this room failed to move to (not retried).
    refused: Option<Arc<Plugin>>,
    /// No swap before this (the new version could not be instantiated, or the serving version's snapshot
    /// failed: the room backs off instead of retrying in a loop).
    retry_swap_at: Option<Instant>,
    /// Failed swap attempts in a row (the back-off doubles with each).
    swap_attempts: u32,
    /// The room was rebuilt after a trap and waits until then before it runs again.
    backoff_until: Option<Instant>,
    changed: watch::Receiver<u64>,
    seed: u64,
    rx: mpsc::Receiver<RoomInput>,
    clock: Arc<GameClock>,
    rng: Arc<RoomRng>,
    /// The log lines its plugin may write, across rebuilds and versions.
    log_budget: Arc<crate::runtime::LogBudget>,
    /// Timers pending (set and not fired, those due this tick included), for the plugin's timer limit.
    timers_pending: Arc<std::sync::atomic::AtomicUsize>,
    tick: u64,
    members: Members,
    /// Frames for each player, built up during the tick and sent at its end.
    pending: HashMap<Arc<str>, Vec<Bytes>>,
    timers: Vec<Timer>,
    timer_seq: u64,
    /// Players to hand `on-leave` at the next tick (kicked, or dropped as slow consumers).
    leaving: Vec<Arc<str>>,
    /// Players kicked this tick: their last batch leaves at the tick's end.
    kicked: Vec<(Arc<str>, Arc<PlayerConn>)>,
    empty_since: Option<Instant>,
    /// The incident id of the last failure the supervisor reported (for the player whose input it was).
    pub(super) incident: Option<String>,
    /// What the room makes the host hold, for listings (written once a tick).
    pub(super) usage: Arc<super::usage::RoomUsage>,
    /// The last errors of its plugin calls, for `warden room`.
    recent_errors: VecDeque<super::RecentError>,
    /// Its id, as the rules name it.
    room_id: Arc<str>,
    /// The server's rules as of this tick, what of them concerns this game, and this tick's counts.
    rule_set: Arc<crate::rules::RuleSet>,
    game_rules: crate::rules::GameRules,
    rule_counts: rules::RuleCounts,
}

/// The players in a room. If the room's task dies without closing (a panic in the host), dropping this
/// tells each of them, so no player is left in a room that no longer runs.
#[derive(Default)]
pub(crate) struct Members(BTreeMap<Arc<str>, Arc<PlayerConn>>);

impl Members {
    /// Takes every member out (the room closes and tells them itself).
    fn take_all(&mut self) -> BTreeMap<Arc<str>, Arc<PlayerConn>> {
        std::mem::take(&mut self.0)
    }
}

impl std::ops::Deref for Members {
    type Target = BTreeMap<Arc<str>, Arc<PlayerConn>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Members {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        let reason = "the room failed unexpectedly and was closed; rejoining opens it again from its last checkpoint";
        for (_, conn) in self.take_all() {
            conn.in_room.store(false, Ordering::Release);
            let kicked = envelope::encode(&ServerEnvelope::Kicked { reason: reason.to_string() }, conn.format);
            if conn.out.push(conn.format, vec![kicked]).is_err() {
                conn.kill.kill(ErrorCode::GameError, reason);
            }
        }
    }
}

/// Why a room ends.
enum End {
    Empty,
    Shutdown,
    /// Shut down while its last tick was not durable: that tick's answers were not sent, and no final
    /// checkpoint is taken (it would hold the tick).
    Halted,
    /// The host stopped serving rooms (why): as `Halted`, and its players are told the room moved.
    Moved(String),
    Crashed(String),
}

impl Room {
    /// A room with random `seed` and the secret `hash_key` (both kept if it resumes from a checkpoint).
    pub(super) fn new(
        rooms: Rooms,
        key: RoomKey,
        game: Arc<GameEntry>,
        (seed, hash_key): (u64, u64),
        rx: mpsc::Receiver<RoomInput>,
        term: super::service::Term,
    ) -> Self {
        // Subscribe before reading the active version, so a change in between is not missed.
        let changed = game.changed.subscribe();
        let plugin = game.serving().target(&key.1).clone();
        let journaling = rooms.0.config.journal;
        let durable = journaling && rooms.0.config.durability == crate::config::Durability::Durable;
        let arrival = rooms.0.config.dispatch_of(&key.0) == crate::config::Dispatch::Arrival;
        let plugin_limits = plugin.limits().clone();
        let features = Features::default();
        features.set_all(game.switches().features.clone());
        let room_id: Arc<str> = key.1.as_str().into();
        Room {
            rooms,
            term,
            claim: None,
            health: game.health(&plugin.manifest().version),
            tally: Counts::default(),
            counts: Counts::default(),
            base: Base {
                id: 0,
                version: plugin.manifest().version.as_str().into(),
                tick: 0,
                seed,
                hash_key,
                draws: 0,
                timers: Vec::new(),
                timer_seq: 0,
                features: features.current(),
                players: Vec::new(),
                state: Vec::new(),
            },
            journal: Journal::default(),
            journaling,
            durable,
            durable_mark: Default::default(),
            in_flight: None,
            arrival,
            open: false,
            partial: false,
            features,
            checkpoints: 0,
            restarts: VecDeque::new(),
            due: VecDeque::new(),
            names: (key.0.as_str().into(), key.1.as_str().into()),
            key,
            plugin,
            refused: None,
            retry_swap_at: None,
            swap_attempts: 0,
            backoff_until: None,
            changed,
            game,
            seed,
            rx,
            clock: Arc::new(GameClock::default()),
            rng: Arc::new(RoomRng::with_hash_key(seed, hash_key)),
            log_budget: Arc::new(crate::runtime::LogBudget::new(plugin_limits.log_lines_per_sec, plugin_limits.log_burst)),
            timers_pending: Default::default(),
            tick: 0,
            members: Members::default(),
            pending: HashMap::new(),
            timers: Vec::new(),
            timer_seq: 0,
            leaving: Vec::new(),
            kicked: Vec::new(),
            empty_since: None,
            incident: None,
            usage: Default::default(),
            recent_errors: VecDeque::new(),
            room_id,
            rule_set: Default::default(),
            game_rules: Default::default(),
            rule_counts: Default::default(),
        }
    }

    fn info(&self) -> RoomInfo {
        let cfg = &self.rooms.0.config;
        RoomInfo { id: self.key.1.clone(), game: self.key.0.clone(), seed: self.seed, tick_hz: cfg.tick_hz, max_players: cfg.max_players }
    }

    /// The version the room runs.
    pub(super) fn version(&self) -> &str {
        &self.plugin.manifest().version
    }

    fn env(&self) -> InstanceEnv {
        InstanceEnv {
            room: self.key.1.clone(),
            clock: self.clock.clone(),
            rng: self.rng.clone(),
            features: self.features.clone(),
            saves: self.rooms.0.saves.clone(),
            log_budget: self.log_budget.clone(),
            timers_pending: self.timers_pending.clone(),
        }
    }

    #[tracing::instrument(name = "room", skip_all, fields(game = %self.key.0, room = %self.key.1))]
    pub(super) async fn run(mut self) {
        // What an earlier instance of the room handed to the writer is in the store before this one reads
        // it (and, in a fleet, before its claim fences that instance's writes).
        self.rooms.flush_checkpoints().await;
        if let Err(why) = self.claim().await {
            return self.refuse_all(why, super::stats::CloseReason::Moved);
        }
        let stored = match self.rooms.0.store.get() {
            Some(store) => match Self::load(store, &self.key, (self.seed, self.rng.hash_key())).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("failed to read the room's stored checkpoint and journal (starting afresh): {e:#}");
                    None
                }
            },
            None => None,
        };
        if let Some((_, base, journal)) = &stored {
            self.preload_saves(base, journal).await;
        }
        let mut instance = match self.start(stored) {
            Ok(instance) => instance,
            Err(reason) => {
                // The detail is for operators; the players who wanted in get the incident id to quote.
                let incident = crate::health::crash::incident_id();
                tracing::error!(incident, "failed to start the room: {reason}");
                let why = JoinError::GameFailed(self.key.1.clone(), format!("incident {incident}"));
                return self.refuse_all(why, super::stats::CloseReason::FailedToStart);
            }
        };
        let cfg = self.rooms.0.config.clone();
        let period = Duration::from_secs_f64(1.0 / f64::from(cfg.tick_hz));
        let grace = Duration::from_millis(cfg.empty_grace_ms);
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        // A token of the room's own (a child of the term's, itself the shutdown token's): waiting on the
        // host's token itself would register every room in one shared waiter list, under one lock, at
        // every turn of every room's loop. Its wait is made once, not at every turn (each new wait
        // registers the room with the token again).
        let stop = self.term.stop.clone();
        let stopping = stop.cancelled();
        tokio::pin!(stopping);
        let gate = self.rooms.0.swap_gate.clone();
        let end = loop {
            tokio::select! {
                biased;
                _ = &mut stopping => break self.stopped(End::Shutdown),
                // A change of what serves: wakes the loop so the swap branch below is enabled.
                Ok(()) = self.changed.changed() => {}
                // At most one room per core swaps at a time (the gate): a storm of 1,000 swaps then
                // queues instead of piling page faults onto the address space lock.
                // A swap waits for a tick's section an input opened to close ([`arrival`]).
                permit = gate.acquire(), if !self.open && self.wants_swap() => {
                    match self.follow(&mut instance) {
                        Err(crash) => break End::Crashed(crash),
                        // The next room may start its swap while this one returns its old instance's
                        // memory to the pool.
                        Ok(old) => {
                            drop(permit);
                            drop(old);
                        }
                    }
                }
                scheduled = ticks.tick() => {
                    // A host woken from a pause longer than its lease may run this before its lease keeper
                    // has stopped the rooms: the room's own look at the lease stops it first.
                    if let Some(end) = self.lease_lost() {
                        break end;
                    }
                    let started = Instant::now();
                    let late = started.saturating_duration_since(scheduled) > period;
                    if let Err(crash) = self.tick(&mut instance) {
                        break End::Crashed(crash);
                    }
                    if let Some(until) = self.backoff_until.take() {
                        // Inputs wait in the inbox meanwhile; the clock resumes where it was, not in a burst.
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::time::sleep_until(until) => {}
                        }
                        ticks.reset();
                    }
                    // Nothing of this tick leaves before its critical saves are durable.
                    self.await_critical_saves(&mut instance).await;
                    // Nor, in a durable room, before the journal that made it is (the output gate): the
                    // writer sends them once it is ([`Room::flush`]). While the room's last answers are
                    // still with the writer (the store is slow), the room waits for them here. The wait
                    // is I/O, not the tick's work: it is left out of the tick's time.
                    let mut stalled = Duration::ZERO;
                    if !self.pending.is_empty() || self.partial {
                        match self.in_flight() {
                            Ok(false) => {}
                            Ok(true) => {
                                let waiting = Instant::now();
                                tokio::select! {
                                    biased;
                                    sent = self.in_flight.as_mut().expect("in flight") => if sent.is_err() {
                                        self.pending.clear();
                                        break End::Crashed(WRITER_STOPPED.to_string());
                                    },
                                    // Shutting down while the store is away: what is not durable does not
                                    // leave. The hand-over stays in flight: the room's closing notices go
                                    // after it.
                                    _ = stop.cancelled() => {
                                        self.pending.clear();
                                        break self.stopped(End::Halted);
                                    }
                                }
                                self.in_flight = None;
                                stalled = waiting.elapsed();
                            }
                            Err(crash) => {
                                self.pending.clear();
                                break End::Crashed(crash);
                            }
                        }
                    }
                    // The tick may have run long (the host paused in it): what it computed leaves only
                    // while the lease holds.
                    if let Some(end) = self.lease_lost() {
                        break end;
                    }
                    self.flush();
                    self.health.add(&self.tally);
                    self.counts.add(&self.tally);
                    self.tally.clear();
                    if let Err(crash) = self.maybe_checkpoint(&mut instance) {
                        break End::Crashed(crash);
                    }
                    self.record_usage(&instance);
                    // Published with the next tick's counts.
                    let micros = started.elapsed().saturating_sub(stalled).as_micros() as u64;
                    self.tally.tick(micros, late);
                    self.rooms.record_tick(micros);
                    if self.members.is_empty() {
                        let since = *self.empty_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= grace && self.rx.is_empty() {
                            break End::Empty;
                        }
                    } else {
                        self.empty_since = None;
                    }
                }
                // An `arrival` room's last hand-over was sent: it takes inputs as they arrive again.
                sent = arrival::sent(&mut self.in_flight), if self.arrival => {
                    self.in_flight = None;
                    if sent.is_err() {
                        self.pending.clear();
                        break End::Crashed(WRITER_STOPPED.to_string());
                    }
                }
                Some(input) = self.rx.recv(), if self.takes_arrivals() => {
                    if let Some(end) = self.on_arrival(&mut instance, input).await {
                        break end;
                    }
                }
            }
        };
        if !matches!(end, End::Crashed(_) | End::Halted | End::Moved(_))
            && let Err(e) = self.checkpoint(&mut instance)
        {
            tracing::warn!("no final checkpoint: {e}");
        }
        // A room that closed is not resumed by a restart (it opens again from its checkpoint when a
        // player joins it); one the server stopped is.
        if !matches!(end, End::Shutdown | End::Halted | End::Moved(_)) {
            self.write(crate::storage::RoomWrite::Running { game: self.key.0.clone(), room: self.key.1.clone(), version: None });
        }
        self.close(end);
    }

    /// One tick, up to but not including the flush: the tick's section of the journal opened (unless an
    /// input that arrived since the last tick opened it, [`arrival`]), the inputs waiting in the inbox,
    /// the timers due, `on-tick`, and the rules' judgement. An `Err` ends the room (its instance trapped
    /// past the restart intensity, or could not be rebuilt).
    fn tick(&mut self, instance: &mut PluginInstance) -> Result<(), String> {
        if !self.open {
            self.begin(instance)?;
        }
        self.open = false;
        let hz = u64::from(self.rooms.0.config.tick_hz);
        // While the save store is behind on this game's saves, inputs wait in the inbox (bounded: senders
        // then wait too). Other games go on.
        let held = self.rooms.0.saves.backpressure(&self.key.0);
        if held && self.tick.is_multiple_of(hz) {
            tracing::warn!(waiting = self.rx.len(), "the save store is behind: holding this room's inputs");
        }
        while let Some(input) = if held { None } else { self.rx.try_recv().ok() } {
            self.take_input(instance, input)?;
        }

        while let Some(timer) = self.due.pop_front() {
            self.call(instance, None, Input::Timer(&timer.tag))?;
        }
        let dt_ms = (1000 / hz) as u32;
        let ticked = self.call(instance, None, Input::Tick(dt_ms));
        self.judge();
        ticked
    }

    /// `Some` (the room has moved) if the fleet lease this host serves under has run out: what the room
    /// computed is dropped unsent, since the room may run on another host by now.
    fn lease_lost(&mut self) -> Option<End> {
        if self.term.lease_holds() {
            return None;
        }
        self.pending.clear();
        Some(End::Moved(super::service::LEASE_RAN_OUT.into()))
    }

    /// Takes the game's feature switches if the operator changed them (one atomic load a tick when not),
    /// journaled so that a replay sees what this room saw. After a replay the room holds the set the
    /// replay ended on, the same names in another allocation: taken without a journal entry.
    fn follow_switches(&mut self) {
        let switches = self.game.switches.load();
        if self.features.is_same(&switches.features) {
            return;
        }
        let changed = *self.features.current() != *switches.features;
        self.features.set_all(switches.features.clone());
        if self.journaling && changed {
            self.journal.features(&switches.features);
        }
    }

    /// Writes what the room holds now to its listing.
    fn record_usage(&self, instance: &PluginInstance) {
        let timer = |t: &Timer| (std::mem::size_of::<Timer>() + t.tag.capacity()) as u64;
        // The tick p99 walks the histogram: refreshed once a second's worth of ticks.
        let hz = u64::from(self.rooms.0.config.tick_hz);
        let tick_p99_us = if (self.tick.saturating_sub(1)).is_multiple_of(hz) {
            self.counts.tick_p99_us().unwrap_or(0)
        } else {
            self.usage.tick_p99_us()
        };
        self.usage.set(super::usage::Usage {
            linear_memory_bytes: instance.linear_memory_bytes() as u64,
            state_bytes: self.base.state.capacity() as u64,
            journal_bytes: self.journal.memory() as u64,
            timers: (self.timers.len() + self.due.len()) as u64,
            timer_bytes: self.timers.iter().chain(&self.due).map(timer).sum(),
            outbound_bytes: self.members.values().map(|c| c.out.queued_bytes() as u64).sum(),
            players: self.members.len() as u64,
            ticks: self.counts.ticks,
            late_ticks: self.counts.late_ticks,
            tick_p99_us,
            inbox: self.rx.len() as u64,
            journal_entries: self.journal.len() as u64,
            checkpoint_tick: self.base.tick,
            tick: self.tick,
            host_bytes: 0,
        });
    }

    fn dump(&mut self, instance: &mut PluginInstance) -> RoomDump {
        let mut counts = self.counts.clone();
        counts.add(&self.tally);
        RoomDump {
            version: self.version().to_string(),
            tick: self.tick,
            seed: self.seed,
            state: instance.snapshot().ok(),
            base: self.base.clone(),
            journal: self.journal.clone(),
            counts,
            players: self.members.keys().map(|p| p.to_string()).collect(),
            timers: self.timers.iter().chain(&self.due).cloned().collect(),
            recent_errors: self.recent_errors.iter().cloned().collect(),
            tick_hz: self.rooms.0.config.tick_hz,
            features: self.features.names(),
        }
    }

    /// Keeps the last errors for the room's listing.
    fn remember_error(&mut self, export: Export, outcome: Outcome, message: String) {
        const KEPT: usize = 16;
        if self.recent_errors.len() == KEPT {
            self.recent_errors.pop_front();
        }
        let message: String = message.chars().take(500).collect();
        let (export, outcome) = (export.name().to_string(), outcome.name().to_string());
        self.recent_errors.push_back(super::RecentError { tick: self.tick, export, outcome, message });
    }

    /// Journals and runs one plugin call, and collects what it queued. A gameplay error goes to `player`
    /// (the sender of the input) as an `error` envelope. A trap or deadline hit is taken out of the
    /// journal and handed to the supervisor.
    fn call(&mut self, instance: &mut PluginInstance, player: Option<&Arc<str>>, input: Input<'_>) -> Result<(), String> {
        let mark = self.journal.mark();
        if self.journaling {
            input.record(&mut self.journal);
        }
        self.timers_pending.store(self.timers.len() + self.due.len(), Ordering::Relaxed);
        // At the default level of `warden serve` this span is disabled: the macro checks a cached level
        // and builds no span (without any subscriber, as in the benchmarks, tracing's `log` fallback still
        // evaluates the fields); at `debug` every log line of the call carries them.
        let span = tracing::debug_span!(
            "call",
            plugin = %self.key.0,
            version = %self.plugin.manifest().version,
            room = %self.key.1,
            player = player.map(|p| &**p),
            export = input.export().name(),
            msg_type = tracing::field::Empty,
        );
        if let Input::Msg(_, payload) = input
            && !span.is_disabled()
        {
            span.record("msg_type", message_type(payload));
        }
        let _call = span.enter();
        let started = std::time::Instant::now();
        let result = input.invoke(instance, self.tick);
        let outcome = match &result {
            Ok(()) => Outcome::Ok,
            Err(e) => e.outcome(),
        };
        self.tally.record(input.export(), outcome, started.elapsed().as_micros() as u64);
        // The saves the call read follow it in the journal: a replay reads them as they were.
        if self.journaling && !matches!(&result, Err(e) if e.is_fatal()) {
            for (player, save) in instance.host_mut().take_save_reads() {
                self.journal.loaded(&Arc::from(player), save.as_deref());
            }
        }
        match result {
            Ok(()) => {
                self.collect(instance);
                if !self.game_rules.is_empty() {
                    self.count(instance, player, input);
                }
                Ok(())
            }
            Err(CallError::Gameplay { export, message }) => {
                self.collect(instance);
                if !self.game_rules.is_empty() {
                    self.count(instance, player, input);
                }
                tracing::debug!(export, "gameplay error: {message}");
                self.remember_error(input.export(), outcome, message.clone());
                if let Some(player) = player {
                    self.direct(player, &ServerEnvelope::Error { code: ErrorCode::GameError, message, fatal: false });
                }
                Ok(())
            }
            Err(fatal) => {
                self.journal.truncate(mark);
                if let Some(kind) = fatal.trap_kind() {
                    self.tally.trap_kind(kind as usize);
                }
                self.remember_error(input.export(), outcome, fatal.player_summary());
                let supervised = self.supervise(instance, &fatal, player, Some(input));
                if let Some(player) = player {
                    let incident = self.incident.take().unwrap_or_default();
                    let failed = fatal.player_summary();
                    let message =
                        format!("the game failed on your input ({failed}, incident {incident}); it was dropped and the room goes on");
                    self.direct(player, &ServerEnvelope::Error { code: ErrorCode::GameError, message, fatal: false });
                }
                supervised
            }
        }
    }
}
