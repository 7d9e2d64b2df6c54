//! The room's versions and its recovery: checkpoints (taken, stored, resumed), following the version its
//! game serves it (carrying the state over, or out of a bad version by replaying the journal), and
//! supervision after a trap (rebuild, restart intensity, crash reports).

use super::*;
use crate::health::crash::{CheckpointRef, CrashReport, backtrace_of};

impl Room {
    /// The room's stored checkpoint (decoded, with `seeds` where an old one did not store its own) and,
    /// if it has one, its durable journal after it.
    pub(super) async fn load(
        store: &crate::storage::Store,
        key: &RoomKey,
        seeds: (u64, u64),
    ) -> anyhow::Result<Option<(Checkpoint, Base, Journal)>> {
        let Some(c) = store.checkpoint(&key.0, &key.1).await? else { return Ok(None) };
        let base = Base::decode(&c.state, &c.version, 0, seeds)?;
        let mut journal = Journal::default();
        for row in store.journal(&key.0, &key.1, c.tick).await? {
            journal.append_chunk(&row.data).map_err(|e| anyhow::anyhow!("tick {}: {e}", row.tick))?;
        }
        Ok(Some((c, base, journal)))
    }

    /// Reads into the save queue the saves of every player a resumed room's replay will meet (the
    /// players in its checkpoint and those its journal joins): `load-save` answers from memory only.
    pub(super) async fn preload_saves(&self, base: &Base, journal: &Journal) {
        let mut players: Vec<String> = base.players.iter().map(|p| p.to_string()).collect();
        players.extend(journal.entries().filter_map(|e| if let journal::Entry::Join(p) = e { Some(p.to_string()) } else { None }));
        players.sort();
        players.dedup();
        for player in players {
            if let Err(e) = self.rooms.0.saves.preload(&self.key.0, &player).await {
                tracing::error!(player, "failed to read the save of a player the room's replay meets: {e:#}");
            }
        }
    }

    /// The room's first instance: resumed from its stored checkpoint and journal if it has them and its
    /// version can take them, else a fresh `init`. Then the first checkpoint.
    pub(super) fn start(&mut self, stored: Option<(Checkpoint, Base, Journal)>) -> Result<PluginInstance, String> {
        let mut resumed = None;
        if let Some((c, base, journal)) = stored {
            let had_journal = !journal.is_empty();
            match self.resume(&c, base, journal) {
                // Resumed from a checkpoint and a durable journal: the room keeps both as its truth (a
                // version on trial keeps its pre-swap checkpoint, so a rollback after the crash still
                // replays from it).
                Ok(instance) if had_journal => return Ok(instance),
                Ok(instance) => resumed = Some(instance),
                Err(e) => tracing::warn!(
                    version = %c.version,
                    tick = c.tick,
                    "the room's stored checkpoint cannot be resumed ({e}); starting the room afresh"
                ),
            }
        }
        let mut instance = match resumed {
            Some(instance) => instance,
            None => {
                let mut instance = self.plugin.instantiate(self.env()).map_err(|e| format!("{e:#}"))?;
                if let Err(e) = instance.init(&self.info(), &self.game.config) {
                    // A trap in `init` counts against the version like any other (a canary whose rooms
                    // cannot start is not a canary that saw no traps).
                    if e.is_fatal() {
                        self.health.add(&Counts { calls: 1, traps: 1, ..Counts::default() });
                    }
                    return Err(e.to_string());
                }
                self.collect(&mut instance);
                instance
            }
        };
        self.checkpoint(&mut instance).map_err(|e| format!("the first snapshot failed: {e}"))?;
        Ok(instance)
    }

    /// Rebuilds the room from its stored checkpoint and the journal after it, in the version it runs
    /// now (the replay a rollback uses: a room whose version was rolled back while the host was down
    /// lands on the previous one with every input it answered). It ends at the last durable tick, with
    /// its seed, random draws, timers and game clock. The players who were in it lost their connections
    /// with the host: they are handed `on-leave` at its first tick, as after any disconnect, and rejoin.
    pub(super) fn resume(&mut self, c: &Checkpoint, base: Base, journal: Journal) -> Result<PluginInstance, String> {
        // The room's own random stream and hash order, not the ones this process would give it anew.
        if (base.seed, base.hash_key) != (self.seed, self.rng.hash_key()) {
            self.seed = base.seed;
            self.rng = Arc::new(RoomRng::with_hash_key(base.seed, base.hash_key));
            self.rooms.reseeded(&self.key, base.seed);
        }
        let replayed =
            journal::replay(&self.plugin, &self.env(), self.rooms.0.config.tick_hz, &base, &journal, &[]).map_err(|e| e.to_string())?;
        if !replayed.skipped.is_empty() {
            tracing::warn!(skipped = replayed.skipped.len(), "calls of the durable journal trapped in the replay and were skipped");
        }
        let mut players: Vec<Arc<str>> = base.players.clone();
        for entry in journal.entries() {
            match entry {
                journal::Entry::Join(p) => players.push(p),
                journal::Entry::Leave(p) => players.retain(|q| *q != p),
                _ => {}
            }
        }
        self.tick = journal.last_tick().unwrap_or(base.tick);
        self.timers = replayed.timers;
        self.timer_seq = replayed.timer_seq;
        let instance = replayed.instance;
        tracing::info!(
            tick = self.tick,
            checkpoint_tick = c.tick,
            from = %c.version,
            calls = replayed.calls,
            players = players.len(),
            "room resumed from its stored checkpoint and journal"
        );
        self.leaving = players;
        self.base = base;
        self.journal = journal;
        self.durable_mark = self.journal.chunk_mark();
        // The version it runs now (another than before the crash if its version was rolled back meanwhile).
        let version = Some(self.version().to_string());
        self.write(crate::storage::RoomWrite::Running { game: self.key.0.clone(), room: self.key.1.clone(), version });
        Ok(instance)
    }

    /// In a fleet, claims the room for this host (`storage/owners.rs`): its writes are fenced by the
    /// claim. `Err` says why the room cannot open here (another host runs it: the joiners are sent there).
    pub(super) async fn claim(&mut self) -> Result<(), JoinError> {
        use crate::storage::owners::{Claim, Claimed};
        let Some(owner) = self.term.owner.clone() else { return Ok(()) };
        let (game, room) = (&self.key.0, &self.key.1);
        match owner.store.claim_room(game, room, &owner.host, owner.incarnation).await {
            Ok(Claim::Owned { epoch }) => {
                self.claim = Some(Arc::new(Claimed { host: owner.host.clone(), incarnation: owner.incarnation, epoch }));
                Ok(())
            }
            Ok(Claim::HeldBy { host, addresses }) => {
                Err(JoinError::Elsewhere { game: game.clone(), room: room.clone(), host, address: addresses })
            }
            Ok(Claim::NotLive) => Err(JoinError::NotServing("this host's fleet lease is not live".to_string())),
            Err(e) => {
                tracing::error!("failed to claim the room: {e:#}");
                Err(JoinError::NotServing("the fleet's store is unreachable".to_string()))
            }
        }
    }

    /// Hands the store's writer what is stored of a room: in order with everything else it wrote.
    pub(super) fn write(&self, write: crate::storage::RoomWrite) {
        if let Some(writer) = self.rooms.0.writer.get() {
            writer.write(write, self.claim.clone());
        }
    }

    /// Takes a checkpoint: the instance's snapshot with the room's random draws and timers. The journal
    /// starts over, and the checkpoint goes to the store.
    pub(super) fn checkpoint(&mut self, instance: &mut PluginInstance) -> Result<(), CallError> {
        let state = instance.snapshot()?;
        self.set_base(state);
        Ok(())
    }

    pub(super) fn set_base(&mut self, state: Vec<u8>) {
        self.checkpoints += 1;
        self.base = Base {
            id: self.checkpoints,
            version: self.plugin.manifest().version.as_str().into(),
            tick: self.tick,
            seed: self.seed,
            hash_key: self.rng.hash_key(),
            draws: self.rng.draws(),
            timers: self.timers.clone(),
            timer_seq: self.timer_seq,
            features: self.features.current(),
            // Everyone the plugin believes in the room: members, and those it has not been told left yet.
            players: self.members.keys().chain(&self.leaving).cloned().collect(),
            state,
        };
        self.journal.clear();
        self.durable_mark = self.journal.chunk_mark();
        self.partial = false;
        self.write(crate::storage::RoomWrite::Checkpoint(Checkpoint {
            game: self.key.0.clone(),
            room: self.key.1.clone(),
            version: self.base.version().to_string(),
            tick: self.tick as i64,
            state: self.base.encode(),
            running: Some(self.version().to_string()),
        }));
    }

    /// Checkpoints at the end of a tick if it is time: on the normal cadence while the room's version is
    /// stable (a version on trial keeps its pre-swap checkpoint for a rollback), or when the journal is
    /// full.
    pub(super) fn maybe_checkpoint(&mut self, instance: &mut PluginInstance) -> Result<(), String> {
        let cfg = &self.rooms.0.config;
        let every = (cfg.checkpoint_every_ms * u64::from(cfg.tick_hz) / 1000).max(1);
        let full = self.journal.len() >= cfg.journal_max_entries || self.journal.len_bytes() >= cfg.journal_max_bytes;
        let due = self.tick >= self.base.tick + every && self.game.serving.load().is_settled(&self.plugin);
        if !(full || due) {
            return Ok(());
        }
        match self.checkpoint(instance) {
            Ok(()) => Ok(()),
            Err(e @ CallError::Gameplay { .. }) => {
                tracing::warn!("no checkpoint this tick: {e}");
                Ok(())
            }
            Err(fatal) => {
                self.tally.traps += 1;
                if let Some(kind) = fatal.trap_kind() {
                    self.tally.trap_kind(kind as usize);
                }
                self.supervise(instance, &fatal, None, None)
            }
        }
    }

    pub(super) fn is_refused(&self, target: &Arc<Plugin>) -> bool {
        self.refused.as_ref().is_some_and(|r| Arc::ptr_eq(r, target))
    }

    /// The version the room should move to, if any.
    pub(super) fn target(&self) -> Option<Arc<Plugin>> {
        let serving = self.game.serving.load();
        let target = serving.target(&self.key.1);
        (!Arc::ptr_eq(target, &self.plugin)).then(|| target.clone())
    }

    /// Whether the room should move to another version now.
    pub(super) fn wants_swap(&self) -> bool {
        self.target().is_some_and(|t| !self.is_refused(&t)) && self.retry_swap_at.is_none_or(|at| Instant::now() >= at)
    }

    /// Moves the room to the version its game serves it (at a tick boundary): out of a bad version by
    /// replaying the journal into the target, else by carrying the state over. Returns the old instance
    /// (to be dropped outside the swap gate). An `Err` ends the room.
    pub(super) fn follow(&mut self, instance: &mut PluginInstance) -> Result<Option<PluginInstance>, String> {
        let Some(target) = self.target() else { return Ok(None) };
        if self.game.serving.load().is_bad(self.version()) && self.journaling {
            match self.roll_back(instance, &target) {
                Ok(old) => return Ok(Some(old)),
                Err(e) => tracing::error!(
                    from = self.version(),
                    to = %target.manifest().version,
                    "cannot rebuild the room in the previous version from its checkpoint and journal ({e}); carrying the state over instead"
                ),
            }
        }
        self.carry_over(instance, target)
    }

    /// Leaves a bad version: the pre-swap checkpoint restored into `target`, the journal replayed.
    pub(super) fn roll_back(
        &mut self,
        instance: &mut PluginInstance,
        target: &Arc<Plugin>,
    ) -> Result<PluginInstance, journal::ReplayError> {
        let started = std::time::Instant::now();
        let (from, to) = (self.version().to_string(), target.manifest().version.clone());
        let replayed = journal::replay(target, &self.env(), self.rooms.0.config.tick_hz, &self.base, &self.journal, &[])?;
        let timing = RollbackTiming {
            restore: replayed.restore,
            replay: started.elapsed() - replayed.restore,
            calls: replayed.calls,
            done: std::time::Instant::now(),
        };
        let old = std::mem::replace(instance, replayed.instance);
        self.timers = replayed.timers;
        self.timer_seq = replayed.timer_seq;
        self.become_version(target.clone());
        tracing::info!(from, to, calls = timing.calls, skipped = replayed.skipped.len(), ?timing, "rolled back: journal replayed");
        self.rooms.rolled_back(&self.key, &to, timing);
        Ok(old)
    }

    pub(super) fn become_version(&mut self, target: Arc<Plugin>) {
        self.health.add(&std::mem::take(&mut self.tally));
        self.health = self.game.health(&target.manifest().version);
        self.plugin = target;
        let version = Some(self.version().to_string());
        self.write(crate::storage::RoomWrite::Running { game: self.key.0.clone(), room: self.key.1.clone(), version });
        self.refused = None;
        self.retry_swap_at = None;
        self.swap_attempts = 0;
    }

    /// Carries the state over: checkpoint (the pre-swap one), instantiate `target`, restore into it.
    pub(super) fn carry_over(&mut self, instance: &mut PluginInstance, target: Arc<Plugin>) -> Result<Option<PluginInstance>, String> {
        let started = std::time::Instant::now();
        let (from, to) = (self.version().to_string(), target.manifest().version.clone());
        let state = match instance.snapshot() {
            Ok(state) => state,
            Err(e) if e.is_fatal() => {
                // The serving version's snapshot trapped: rebuild from checkpoint + journal and stay on it,
                // trying the swap again later (1 s, doubling up to 30 s) with ticks in between. The
                // attempt was the host's, not a player's: it does not count towards the restart limit.
                self.tally.traps += 1;
                if let Some(kind) = e.trap_kind() {
                    self.tally.trap_kind(kind as usize);
                }
                let backoff = Duration::from_secs(1 << self.swap_attempts.min(5)).min(Duration::from_secs(30));
                self.swap_attempts += 1;
                tracing::error!(
                    from,
                    to,
                    attempts = self.swap_attempts,
                    ?backoff,
                    "cannot move to the new version: the serving version's snapshot failed ({e}); retrying after a back-off"
                );
                self.rebuild_after(instance, &e, None, None, false)?;
                self.retry_swap_at = Some(Instant::now() + backoff);
                return Ok(None);
            }
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
                // version. Stay, and try again in a second.
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
                // The pre-swap checkpoint: a rollback restores it into the old version.
                self.set_base(state);
                self.collect(&mut new);
                let old = std::mem::replace(instance, new);
                let micros = started.elapsed().as_micros() as u64;
                self.become_version(target);
                self.rooms.swapped(&self.key, &to, micros);
                tracing::debug!(from, to, micros, "moved to the new version");
                Ok(Some(old))
            }
            Err(reason) => {
                tracing::error!(from, to, "stays on {from}: {reason}");
                self.game.health(&to).add(&Counts { failed_restores: 1, ..Counts::default() });
                self.refused = Some(target);
                let _ =
                    self.rooms.0.swap_failures.send(SwapFailure { game: self.key.0.clone(), room: self.key.1.clone(), from, to, reason });
                Ok(None)
            }
        }
    }

    /// After a trap: report it, then rebuild the instance from checkpoint + journal; past the restart
    /// intensity, escalate (a version on trial) or save a checkpoint and end the room (a stable one).
    pub(super) fn supervise(
        &mut self,
        instance: &mut PluginInstance,
        failure: &CallError,
        player: Option<&Arc<str>>,
        input: Option<Input<'_>>,
    ) -> Result<(), String> {
        self.rebuild_after(instance, failure, player, input, true)
    }

    /// [`Room::supervise`], with `counted` saying whether the trap counts towards the restart limit.
    pub(super) fn rebuild_after(
        &mut self,
        instance: &mut PluginInstance,
        failure: &CallError,
        player: Option<&Arc<str>>,
        input: Option<Input<'_>>,
        counted: bool,
    ) -> Result<(), String> {
        let cfg = &self.rooms.0.config;
        let (limit, window) = (cfg.restart_limit as usize, Duration::from_millis(cfg.restart_window_ms));
        let (backoff_base, backoff_max) = (cfg.restart_backoff_ms, cfg.restart_backoff_max_ms);
        let now = Instant::now();
        if counted {
            self.restarts.push_back(now);
        }
        while self.restarts.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.restarts.pop_front();
        }
        let restarts = self.restarts.len();
        let over = restarts > limit;
        let settled = self.game.serving.load().is_settled(&self.plugin);
        let outcome = match (over, settled, self.journaling) {
            (false, _, true) => "rebuilt",
            (true, false, true) => "escalated",
            _ => "closed",
        };
        let incident = self.report(failure, player, input, restarts, outcome);
        tracing::error!(incident, outcome, restarts, tick = self.tick, "{failure}");
        self.incident = Some(incident.clone());
        if outcome == "escalated" {
            self.tally.escalations += 1;
            self.health.add(&std::mem::take(&mut self.tally));
        }
        let rebuilt = if self.journaling { self.rebuild(instance) } else { Err("journaling is off (rooms.journal)".to_string()) };
        // Back off before the rebuilt instance runs again: none after the first trap in the window, then
        // the base, doubling (a poisoned state then cannot spin through its restarts in a blink).
        if counted && restarts >= 2 {
            let doublings = (restarts - 2).min(16) as u32;
            let backoff = backoff_base.saturating_mul(1 << doublings).min(backoff_max);
            self.backoff_until = Some(now + Duration::from_millis(backoff));
        }
        match (outcome, rebuilt) {
            ("closed", Ok(())) => {
                // Save where the room stands, without the call that trapped.
                if let Err(e) = self.checkpoint(instance) {
                    tracing::error!("no checkpoint saved at close: {e}");
                }
                let (secs, failed) = (window.as_secs(), failure.player_summary());
                Err(format!(
                    "it failed {restarts} times in {secs} s, more than the restart limit of {limit} ({failed}; incident {incident})"
                ))
            }
            (_, Ok(())) => Ok(()),
            (_, Err(e)) => {
                tracing::error!(incident, "the room could not be rebuilt: {e}");
                Err(format!("it failed ({}) and could not be rebuilt (incident {incident})", failure.player_summary()))
            }
        }
    }

    /// A new instance of the room's version from checkpoint + journal (the trapped call is no longer in
    /// the journal). Timers due this tick and not fired yet stay with the tick.
    pub(super) fn rebuild(&mut self, instance: &mut PluginInstance) -> Result<(), String> {
        let replayed = journal::replay(&self.plugin, &self.env(), self.rooms.0.config.tick_hz, &self.base, &self.journal, &[])
            .map_err(|e| e.to_string())?;
        *instance = replayed.instance;
        let mut timers = replayed.timers;
        for due in &self.due {
            if let Some(at) = timers.iter().position(|t| t.tag == due.tag) {
                timers.remove(at);
            }
        }
        self.timers = timers;
        self.timer_seq = replayed.timer_seq;
        tracing::warn!(checkpoint = self.base.id, calls = replayed.calls, "instance rebuilt from checkpoint and journal");
        Ok(())
    }

    /// Writes a crash report (when reports are on) and returns its incident id.
    pub(super) fn report(
        &self,
        failure: &CallError,
        player: Option<&Arc<str>>,
        input: Option<Input<'_>>,
        restarts: usize,
        outcome: &str,
    ) -> String {
        let id = crate::health::crash::incident_id();
        let Some(tx) = self.rooms.0.crashes.get() else { return id };
        let (export, kind, message) = match failure {
            // The trap kind's serde name (`panic`, `stack_overflow`, ...), as everywhere it is shown.
            CallError::Trap { export, kind, message } => {
                let kind = serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                (*export, kind, message.clone())
            }
            CallError::Deadline { export, .. } => (*export, "deadline".to_string(), failure.to_string()),
            CallError::Poisoned(why) => ("?", "poisoned".to_string(), why.clone()),
            CallError::Gameplay { export, message } => (*export, "error".to_string(), message.clone()),
        };
        let _ = tx.send(CrashReport {
            id: id.clone(),
            at_ms: crate::storage::now_ms(),
            plugin: self.key.0.clone(),
            version: self.version().to_string(),
            room: self.key.1.clone(),
            tick: self.tick,
            export: export.to_string(),
            kind,
            backtrace: backtrace_of(&message),
            message,
            player: player.map(|p| p.to_string()),
            input: input.and_then(Input::describe),
            checkpoint: CheckpointRef { id: self.base.id, tick: self.base.tick, version: self.base.version().to_string() },
            restarts_in_window: restarts as u32,
            outcome: outcome.to_string(),
        });
        id
    }
}
