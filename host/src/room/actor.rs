//! The room actor: one task, one plugin instance, a fixed-step game clock.
//!
//! Each tick: advance the game clock; deliver the inputs that arrived since the last tick in arrival
//! order (joins, leaves, messages); fire the timers that were due before those inputs, in due order;
//! call `on-tick`;
//! then flush what the plugin sent, one batch per player. Game time is `tick * 1000 / tick_hz`, never wall
//! time; ticks run on an absolute schedule, and a late tick is caught up, not skipped.
//!
//! Between ticks the room follows its game's active version: when it changes, the room snapshots its
//! instance, instantiates the new version in the same environment (clock, random stream, saves) and
//! restores the state into it. Inputs that arrive meanwhile wait in the inbox. If the new side fails, the
//! room keeps its old instance untouched and reports the failure (the deployer rolls the version back).

use super::{GameEntry, JoinError, PlayerConn, RoomInput, RoomKey, Rooms, SwapFailure};
use crate::net::envelope::{self, ErrorCode, Format, ServerEnvelope, ServerMsg};
use crate::runtime::{CallError, GameClock, InstanceEnv, Plugin, PluginInstance, Recipient, RoomInfo, RoomRng};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

/// A timer set by the plugin.
struct Timer {
    due_ms: u64,
    seq: u64,
    tag: String,
}

pub(super) struct Room {
    rooms: Rooms,
    pub(super) key: RoomKey,
    game: Arc<GameEntry>,
    /// The version this room's instance runs.
    plugin: Arc<Plugin>,
    /// A version this room failed to move to (not retried).
    refused: Option<Arc<Plugin>>,
    /// No swap before this (the new version could not be instantiated: the pool is full).
    retry_swap_at: Option<Instant>,
    changed: watch::Receiver<u64>,
    seed: u64,
    rx: mpsc::Receiver<RoomInput>,
    clock: Arc<GameClock>,
    rng: Arc<RoomRng>,
    tick: u64,
    members: BTreeMap<Arc<str>, PlayerConn>,
    /// Frames for each player, built up during the tick and sent at its end.
    pending: HashMap<Arc<str>, Vec<Bytes>>,
    timers: Vec<Timer>,
    timer_seq: u64,
    /// Players to hand `on-leave` at the next tick (kicked, or dropped as slow consumers).
    leaving: Vec<Arc<str>>,
    empty_since: Option<Instant>,
}

/// Why a room ends.
enum End {
    Empty,
    Shutdown,
    Crashed(String),
}

impl Room {
    pub(super) fn new(rooms: Rooms, key: RoomKey, game: Arc<GameEntry>, seed: u64, rx: mpsc::Receiver<RoomInput>) -> Self {
        // Subscribe before reading the active version, so a change in between is not missed.
        let changed = game.changed.subscribe();
        Room {
            rooms,
            key,
            plugin: game.active(),
            refused: None,
            retry_swap_at: None,
            changed,
            game,
            seed,
            rx,
            clock: Arc::new(GameClock::default()),
            rng: Arc::new(RoomRng::new(seed)),
            tick: 0,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            timers: Vec::new(),
            timer_seq: 0,
            leaving: Vec::new(),
            empty_since: None,
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
            features: self.game.features.clone(),
            saves: self.rooms.0.saves.clone(),
        }
    }

    fn start(&self) -> Result<PluginInstance, String> {
        let mut instance = self.plugin.instantiate(self.env()).map_err(|e| format!("{e:#}"))?;
        instance.init(&self.info(), &self.game.config).map_err(|e| e.to_string())?;
        Ok(instance)
    }

    fn is_refused(&self) -> bool {
        self.refused.as_ref().is_some_and(|r| self.game.is_active(r))
    }

    /// Whether the room should move to another version now.
    fn wants_swap(&self) -> bool {
        !self.game.is_active(&self.plugin) && !self.is_refused() && self.retry_swap_at.is_none_or(|at| Instant::now() >= at)
    }

    /// Moves the room to its game's active version if that changed (at a tick boundary). An `Err` is a
    /// trap of the serving instance while it was snapshotted: the room cannot go on.
    fn follow_active(&mut self, instance: &mut PluginInstance) -> Result<Option<PluginInstance>, String> {
        if !self.wants_swap() {
            return Ok(None);
        }
        let target = self.game.active();
        let started = std::time::Instant::now();
        let (from, to) = (self.version().to_string(), target.manifest().version.clone());
        let state = match instance.snapshot() {
            Ok(state) => state,
            Err(e) if e.is_fatal() => return Err(e.to_string()),
            Err(e) => {
                // Not the new version's fault: stay, and do not retry this version.
                tracing::error!(from, to, "cannot move to the new version: the serving version's snapshot failed: {e}");
                self.refused = Some(target);
                return Ok(None);
            }
        };
        let mut new = match target.instantiate(self.env()) {
            Ok(new) => new,
            Err(e) => {
                // It passed its smoke test: this is the instance pool or memory running out, not the
                // version. Stay, and try again at the next tick.
                tracing::warn!(from, to, "cannot instantiate the new version yet (retrying in a second): {e:#}");
                self.retry_swap_at = Some(Instant::now() + Duration::from_secs(1));
                return Ok(None);
            }
        };
        let moved = new
            .restore(&state, &from)
            .map(|()| new)
            .map_err(|e| format!("restore of {} bytes from version {from} failed: {e}", state.len()));
        match moved {
            Ok(mut new) => {
                self.collect(&mut new);
                let old = std::mem::replace(instance, new);
                let micros = started.elapsed().as_micros() as u64;
                self.plugin = target;
                self.refused = None;
                self.retry_swap_at = None;
                self.rooms.swapped(&self.key, &to, micros);
                tracing::debug!(from, to, micros, bytes = state.len(), "moved to the new version");
                return Ok(Some(old));
            }
            Err(reason) => {
                tracing::error!(from, to, "stays on {from}: {reason}");
                self.refused = Some(target);
                let _ =
                    self.rooms.0.swap_failures.send(SwapFailure { game: self.key.0.clone(), room: self.key.1.clone(), from, to, reason });
            }
        }
        Ok(None)
    }

    #[tracing::instrument(name = "room", skip_all, fields(game = %self.key.0, room = %self.key.1))]
    pub(super) async fn run(mut self) {
        let mut instance = match self.start() {
            Ok(instance) => instance,
            Err(reason) => {
                tracing::error!("failed to start the room: {reason}");
                let why = JoinError::GameFailed(self.key.1.clone(), reason);
                return self.refuse_all(why);
            }
        };
        let cfg = self.rooms.0.config.clone();
        let period = Duration::from_secs_f64(1.0 / f64::from(cfg.tick_hz));
        let grace = Duration::from_millis(cfg.empty_grace_ms);
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let stop = self.rooms.0.stop.clone();
        let gate = self.rooms.0.swap_gate.clone();
        let end = loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break End::Shutdown,
                // A new active version: wakes the loop so the swap branch below is enabled.
                Ok(()) = self.changed.changed() => {}
                // At most one room per core swaps at a time (the gate): a storm of 1,000 swaps then
                // queues instead of piling page faults onto the address space lock.
                permit = gate.acquire(), if self.wants_swap() => {
                    match self.follow_active(&mut instance) {
                        Err(crash) => break End::Crashed(crash),
                        // The next room may start its swap while this one returns its old instance's
                        // memory to the pool.
                        Ok(old) => {
                            drop(permit);
                            drop(old);
                        }
                    }
                }
                _ = ticks.tick() => {
                    let started = std::time::Instant::now();
                    if let Err(crash) = self.tick(&mut instance) {
                        break End::Crashed(crash);
                    }
                    // Nothing of this tick leaves before its critical saves are durable.
                    for durable in instance.host_mut().take_critical_saves() {
                        if let Err(e) = durable.await {
                            tracing::error!("a critical save was not written: {e:#}");
                        }
                    }
                    self.flush();
                    self.rooms.record_tick(started.elapsed().as_micros() as u64);
                    if self.members.is_empty() {
                        let since = *self.empty_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= grace && self.rx.is_empty() {
                            break End::Empty;
                        }
                    } else {
                        self.empty_since = None;
                    }
                }
            }
        };
        self.close(end);
    }

    /// One tick, up to but not including the flush. An `Err` is a trap or deadline hit: the room cannot
    /// go on (supervision that rebuilds the instance arrives with checkpoints).
    fn tick(&mut self, instance: &mut PluginInstance) -> Result<(), String> {
        let cfg = &self.rooms.0.config;
        let (hz, max_players) = (u64::from(cfg.tick_hz), cfg.max_players);
        self.tick += 1;
        let now_ms = self.tick * 1000 / hz;
        self.clock.set(self.tick, now_ms);

        // Timers due now, taken before this tick's inputs: a timer set during the tick fires later.
        self.timers.sort_by_key(|t| (t.due_ms, t.seq));
        let due: Vec<Timer> = self.timers.drain(..self.timers.partition_point(|t| t.due_ms <= now_ms)).collect();

        for player in std::mem::take(&mut self.leaving) {
            self.call(instance, None, |i| i.on_leave(&player))?;
        }
        // While the save store is behind, inputs wait in the inbox (bounded: senders then wait too).
        let held = self.rooms.0.saves.backpressure();
        if held && self.tick.is_multiple_of(hz) {
            tracing::warn!(waiting = self.rx.len(), "the save store is behind: holding this room's inputs");
        }
        while let Some(input) = if held { None } else { self.rx.try_recv().ok() } {
            match input {
                RoomInput::Join { conn, reply } => {
                    if self.members.contains_key(&conn.id) {
                        let _ = reply.send(Err(JoinError::AlreadyIn(conn.id.to_string(), self.key.1.clone())));
                    } else if self.members.len() >= max_players as usize {
                        let _ = reply.send(Err(JoinError::Full(self.key.1.clone(), max_players)));
                    } else {
                        let id = conn.id.clone();
                        conn.in_room.store(true, Ordering::Release);
                        self.members.insert(id.clone(), conn);
                        let joined = ServerEnvelope::Joined {
                            game: self.key.0.clone(),
                            room: self.key.1.clone(),
                            version: self.version().to_string(),
                            seed: self.seed,
                            tick_hz: hz as u32,
                            max_players,
                            players: self.members.len() as u32,
                        };
                        self.direct(&id, &joined);
                        let _ = reply.send(Ok(()));
                        self.call(instance, Some(&id), |i| i.on_join(&id))?;
                    }
                }
                RoomInput::Leave { player } => {
                    if let Some(conn) = self.members.remove(&player) {
                        conn.in_room.store(false, Ordering::Release);
                        self.pending.remove(&player);
                        self.call(instance, None, |i| i.on_leave(&player))?;
                    }
                }
                RoomInput::Msg { player, payload } => {
                    if self.members.contains_key(&player) {
                        self.call(instance, Some(&player), |i| i.on_message(&player, &payload))?;
                    }
                }
            }
        }

        for timer in due {
            self.call(instance, None, |i| i.on_timer(&timer.tag))?;
        }
        let dt_ms = (1000 / hz) as u32;
        let tick = self.tick;
        self.call(instance, None, |i| i.on_tick(tick, dt_ms))
    }

    /// Runs one plugin call and collects what it queued. A gameplay error goes to `player` (the sender
    /// of the input) as an `error` envelope; a trap or deadline hit ends the room.
    fn call(
        &mut self,
        instance: &mut PluginInstance,
        player: Option<&Arc<str>>,
        f: impl FnOnce(&mut PluginInstance) -> Result<(), CallError>,
    ) -> Result<(), String> {
        let result = f(instance);
        self.collect(instance);
        match result {
            Ok(()) => Ok(()),
            Err(CallError::Gameplay { export, message }) => {
                tracing::debug!(export, "gameplay error: {message}");
                if let Some(player) = player {
                    self.direct(player, &ServerEnvelope::Error { code: ErrorCode::GameError, message, fatal: false });
                }
                Ok(())
            }
            Err(fatal) => {
                tracing::error!(tick = self.tick, "{fatal}");
                Err(fatal.to_string())
            }
        }
    }

    /// Moves the plugin's sends into the per-player batches (resolving recipients against the members
    /// now), and its timers and kicks into the room.
    fn collect(&mut self, instance: &mut PluginInstance) {
        let host = instance.host_mut();
        for timer in host.take_timers() {
            self.timer_seq += 1;
            self.timers.push(Timer { due_ms: timer.due_ms, seq: self.timer_seq, tag: timer.tag });
        }
        let kicks = host.take_kicks();
        let outbox = host.take_outbox();
        for out in outbox {
            let mut frames: [Option<Bytes>; 2] = [None, None];
            let env = ServerMsg::Msg { data: Bytes::from(out.payload) };
            let mut push = |room: &mut Self, player: &Arc<str>| {
                let Some(conn) = room.members.get(player) else { return };
                let slot = &mut frames[(conn.format == Format::Json) as usize];
                let frame = slot.get_or_insert_with(|| envelope::encode(&env, conn.format)).clone();
                room.pending.entry(player.clone()).or_default().push(frame);
            };
            match &out.to {
                Recipient::Player(p) => {
                    if let Some((id, _)) = self.members.get_key_value(p.as_str()) {
                        push(self, &id.clone());
                    }
                }
                Recipient::All => {
                    for id in self.members.keys().cloned().collect::<Vec<_>>() {
                        push(self, &id);
                    }
                }
                Recipient::AllExcept(except) => {
                    for id in self.members.keys().filter(|id| ***id != **except).cloned().collect::<Vec<_>>() {
                        push(self, &id);
                    }
                }
            }
        }
        for kick in kicks {
            if let Some((id, conn)) = self.members.remove_entry(kick.player.as_str()) {
                self.direct_to(&conn, &id, &ServerEnvelope::Kicked { reason: kick.reason });
                conn.in_room.store(false, Ordering::Release);
                self.send_batch(&id, &conn);
                self.leaving.push(id);
            }
        }
    }

    /// Queues an envelope for a member, in order with the plugin's sends.
    fn direct(&mut self, player: &Arc<str>, env: &ServerMsg) {
        if let Some(conn) = self.members.get(player) {
            let frame = envelope::encode(env, conn.format);
            self.pending.entry(player.clone()).or_default().push(frame);
        }
    }

    fn direct_to(&mut self, conn: &PlayerConn, id: &Arc<str>, env: &ServerMsg) {
        let frame = envelope::encode(env, conn.format);
        self.pending.entry(id.clone()).or_default().push(frame);
    }

    /// Sends a player's batch. A full queue means the player does not read: it is disconnected.
    fn send_batch(&mut self, id: &Arc<str>, conn: &PlayerConn) -> bool {
        let Some(frames) = self.pending.remove(id) else { return true };
        if conn.out.push(conn.format, frames).is_ok() {
            return true;
        }
        conn.kill.kill(ErrorCode::SlowConsumer, "the connection fell behind reading its messages and was closed");
        false
    }

    /// Sends every player's batch of this tick.
    fn flush(&mut self) {
        let ids: Vec<Arc<str>> = self.pending.keys().cloned().collect();
        for id in ids {
            let Some(conn) = self.members.get(&id).cloned() else {
                self.pending.remove(&id);
                continue;
            };
            if !self.send_batch(&id, &conn) {
                self.members.remove(&id);
                conn.in_room.store(false, Ordering::Release);
                self.leaving.push(id);
            }
        }
    }

    /// Answers joins that will never be served and ends the room.
    fn refuse_all(mut self, why: JoinError) {
        self.rx.close();
        self.rooms.remove(&self.key);
        while let Ok(input) = self.rx.try_recv() {
            if let RoomInput::Join { reply, .. } = input {
                let _ = reply.send(Err(why.clone()));
            }
        }
    }

    fn close(mut self, end: End) {
        let reason = match &end {
            End::Empty => None,
            End::Shutdown => Some("the server is shutting down".to_string()),
            End::Crashed(why) => Some(format!("the room's game crashed ({why}); rejoin to start a new room")),
        };
        if let Some(reason) = &reason {
            for (id, conn) in std::mem::take(&mut self.members) {
                self.direct_to(&conn, &id, &ServerEnvelope::Kicked { reason: reason.clone() });
                conn.in_room.store(false, Ordering::Release);
                self.send_batch(&id, &conn);
            }
        }
        tracing::debug!(tick = self.tick, "room closed");
        // Joins that raced with the close go to a new room.
        self.rx.close();
        self.rooms.remove(&self.key);
        while let Ok(input) = self.rx.try_recv() {
            if let RoomInput::Join { reply, .. } = input {
                drop(reply);
            }
        }
    }
}
