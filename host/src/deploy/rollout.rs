//! The rollout state machine: canary -> probation -> stable, rollbacks, and the registry states that
//! follow from each step. The registry is the one truth: every step is one [`Transition`] written in a
//! single transaction before anything changes in memory, so a store failure leaves no half state, and a
//! restart resumes the phase in progress with the time it had left ([`RolloutRecord`]).
//!
//! States (`storage::VersionState`): a version is `canary` or `probation` while on trial, `active` when
//! it serves every room past its trial, `stable` when it finished its trial and no longer serves,
//! `superseded` when a newer version replaced it before it finished, `bad` once rolled back. At most
//! one version of a plugin is `probation` or `active`, and at most one is `canary`.
//!
//! The previous stable version of a version V ([`previous_stable`]) is the highest version below V that
//! finished its trial and is not bad. It is what a rollback of V goes back to, in every path.

use super::*;
use crate::storage::{AuditWrite, Expect, RolloutRecord, Transition};

/// Where a version is in its rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// In the canary rooms.
    Canary,
    /// In every room, on probation.
    Probation,
    /// Past probation.
    Stable,
}

impl Phase {
    /// Its name, as in `warden status` and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Canary => "canary",
            Phase::Probation => "probation",
            Phase::Stable => "stable",
        }
    }
}

#[derive(Clone)]
pub(super) struct Rollout {
    pub(super) version: Arc<Plugin>,
    pub(super) phase: Phase,
    /// When the phase (re)started running in this process.
    pub(super) since: Instant,
    /// Time the phase ran before `since` (earlier processes, or before a pause).
    pub(super) elapsed_before: u64,
    pub(super) paused: bool,
    pub(super) previous_p99: Option<u64>,
    /// The phase's time is up but its window has too little evidence to judge: held (logged once).
    pub(super) held: bool,
    /// When the elapsed time was last written to the store.
    pub(super) saved: Instant,
}

impl Rollout {
    pub(super) fn new(version: Arc<Plugin>, phase: Phase, previous_p99: Option<u64>) -> Self {
        let now = Instant::now();
        Rollout { version, phase, since: now, elapsed_before: 0, paused: false, previous_p99, held: false, saved: now }
    }

    /// How long the phase has run (a pause stops the clock).
    pub(super) fn elapsed_ms(&self) -> u64 {
        if self.paused { self.elapsed_before } else { self.elapsed_before + self.since.elapsed().as_millis() as u64 }
    }

    fn record(&self, canary_rooms: Vec<String>) -> Option<RolloutRecord> {
        (self.phase != Phase::Stable).then(|| RolloutRecord {
            plugin: self.version.manifest().name.clone(),
            version: self.version.manifest().version.clone(),
            phase: self.phase.name().to_string(),
            elapsed_ms: self.elapsed_ms(),
            paused: self.paused,
            canary_rooms,
            previous_p99_us: self.previous_p99,
        })
    }
}

/// The highest version below `of` that finished its trial and is not bad.
pub fn previous_stable(records: &[VersionRecord], of: &str) -> Option<String> {
    let of = semver::Version::parse(of).ok()?;
    records
        .iter()
        .filter(|r| r.state.is_proven())
        .filter_map(|r| semver::Version::parse(&r.version).ok().map(|v| (v, r)))
        .filter(|(v, _)| *v < of)
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, r)| r.version.clone())
}

/// Why an operator's rollback was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The target is not the previous stable version and `force` was not given.
    #[error("{0}")]
    NeedsForce(String),
    /// Anything else (no such plugin or version, no previous stable version, a store failure).
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// The p99 call latency a version on trial is compared with: the version it replaces, measured before the
/// deploy. During a canary that version still serves the other rooms, so its p99 over the same window
/// counts too (the higher of the two): a machine that got busier slows both versions alike, and must not
/// make the canary look slow. (Latency is wall time; probation has no version running beside it.)
fn latency_baseline(game: &crate::room::GameEntry, rollout: &Rollout, policy: &Policy) -> Option<u64> {
    let beside = match rollout.phase {
        Phase::Canary => {
            let active = game.health(&game.active().manifest().version).window();
            (active.calls >= policy.min_calls).then(|| active.p99_us()).flatten()
        }
        _ => None,
    };
    rollout.previous_p99.max(beside)
}

/// A record of `plugin` in `state`.
pub(super) fn state_of(plugin: &Plugin, state: VersionState) -> VersionRecord {
    let m = plugin.manifest();
    VersionRecord { plugin: m.name.clone(), version: m.version.clone(), state, sha256: plugin.sha256().to_string() }
}

/// What a version that stops serving becomes: `stable` if it finished its trial, else `superseded`.
fn retired(records: &[VersionRecord], version: &str) -> Option<VersionState> {
    let r = records.iter().find(|r| r.version == version)?;
    match r.state {
        VersionState::Active => Some(VersionState::Stable),
        VersionState::Canary | VersionState::Probation | VersionState::Staged => Some(VersionState::Superseded),
        _ => None,
    }
}

fn record_as(records: &[VersionRecord], version: &str, state: VersionState) -> Option<VersionRecord> {
    records.iter().find(|r| r.version == version).map(|r| VersionRecord { state, ..r.clone() })
}

impl Deployer {
    /// The canary rooms: `share` of the game's open rooms that have players (at least one), chosen by a
    /// hash of their id. Empty rooms give a canary no evidence, so they are never chosen; with no room
    /// occupied there is no canary. In a fleet, `elsewhere` are the rooms the other hosts run (open
    /// rooms; an open room has players or had them within its grace period).
    pub(super) fn pick_canary(&self, game: &str, share: f64, elsewhere: Vec<String>) -> Vec<String> {
        let mut rooms: Vec<String> =
            self.rooms.list().into_iter().filter(|r| r.game == game && r.usage.players > 0).map(|r| r.room).collect();
        let here: std::collections::HashSet<String> = self.rooms.list().into_iter().filter(|r| r.game == game).map(|r| r.room).collect();
        rooms.extend(elsewhere.into_iter().filter(|r| !here.contains(r)));
        rooms.sort();
        rooms.dedup();
        if rooms.is_empty() {
            return rooms;
        }
        let n = ((rooms.len() as f64 * share).ceil() as usize).clamp(1, rooms.len());
        let hash = |r: &String| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            r.hash(&mut h);
            h.finish()
        };
        rooms.sort_by_key(hash);
        rooms.truncate(n);
        rooms
    }

    /// The registry transition of deploying `new` over `current` (none: the first version), with
    /// `canary_rooms` (none: every room at once) and `phase`.
    pub(super) fn deploy_transition(
        &self,
        records: &[VersionRecord],
        current: Option<&Arc<Plugin>>,
        new: &Arc<Plugin>,
        rollout: Option<&Rollout>,
        canary_rooms: &[String],
    ) -> Transition {
        let m = new.manifest();
        let mut t = Transition { floor: Some((m.name.clone(), m.semver())), ..Transition::default() };
        // A canary it replaces stops serving.
        if let Some(r) = rollout.filter(|r| r.phase == Phase::Canary) {
            let v = &r.version.manifest().version;
            if *v != m.version
                && let Some(s) = retired(records, v)
            {
                t.versions.extend(record_as(records, v, s));
            }
        }
        let phase = match (current, canary_rooms.is_empty()) {
            (None, _) => Phase::Stable,
            (Some(_), false) => Phase::Canary,
            (Some(_), true) if self.rollout_config(&m.name).probation_ms == 0 => Phase::Stable,
            (Some(_), true) => Phase::Probation,
        };
        if phase != Phase::Canary
            && let Some(cur) = current
            && cur.manifest().version != m.version
            && let Some(s) = retired(records, &cur.manifest().version)
        {
            t.versions.extend(record_as(records, &cur.manifest().version, s));
        }
        let state = match phase {
            Phase::Canary => VersionState::Canary,
            Phase::Probation => VersionState::Probation,
            Phase::Stable => VersionState::Active,
        };
        t.versions.push(state_of(new, state));
        let mut r = Rollout::new(new.clone(), phase, None);
        r.previous_p99 =
            current.and_then(|c| self.rooms.game(&m.name).map(|g| g.health(&c.manifest().version).window().p99_us())).flatten();
        t.rollout = Some(r.record(canary_rooms.to_vec()));
        t
    }

    /// A room could not take a new version: mark it bad and put the previous version back everywhere.
    pub async fn swap_failed(&self, failure: SwapFailure) {
        let reason = format!("room {} could not take it: {}", failure.room, failure.reason);
        // Held from the registry write until this host's rooms follow it (see `evaluate`).
        let _operating = self.operating.lock().await;
        if let Err(e) = self.roll_back_for(&failure.game, Some(&failure.to), None, (&reason, "swap_failed"), "health").await {
            tracing::debug!(game = %failure.game, "no rollback for the failed swap: {e:#}");
        }
    }

    /// The version of `plugin` named `version`: the one already loaded, or else its file in the plugin
    /// directory, verified and compiled again (after a restart, a rollback target has not been loaded).
    pub async fn load_version(&self, plugin: &str, version: &str) -> Result<Arc<Plugin>> {
        if let Some(p) = self.loaded(plugin, version) {
            return Ok(p);
        }
        let mut found = None;
        for path in watch::list(&self.dir)? {
            let Ok(bytes) = std::fs::read(&path) else { continue };
            if crate::runtime::manifest::read(&bytes).is_ok_and(|m| m.name == plugin && m.version == version) {
                found = Some(path);
                break;
            }
        }
        let (checked, path) = match found {
            Some(path) => {
                let (cap, trusted, dev) = (self.deploy.max_plugin_bytes, self.trusted.clone(), self.dev);
                let checked = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || pipeline::read_and_verify(&path, cap, &trusted, dev)
                })
                .await?
                .map_err(|r| anyhow::anyhow!("{}: {r}; fix: {}", path.display(), r.fix()))?;
                (checked, path)
            }
            // In a fleet, another host's file, checked here.
            None => match self.fetch_artifact(plugin, version).await? {
                Some(checked) => (checked, PathBuf::from(format!("fleet artifact {plugin}-{version}.wasm"))),
                None => bail!(
                    "{plugin} {version} has no file in {} (put {plugin}-{version}.wasm and its .minisig back, then try again)",
                    self.dir.display()
                ),
            },
        };
        let settings = self.plugins.get(plugin).cloned().unwrap_or_default();
        let config = init_config(&settings)?;
        let current = self.rooms.game(plugin).map(|g| g.active());
        let rt = self.rt.clone();
        let (loaded, _) =
            tokio::task::spawn_blocking(move || pipeline::compile_and_smoke(&rt, &checked.bytes, current.as_deref(), &config))
                .await?
                .map_err(|r| anyhow::anyhow!("{}: {r}; fix: {}", path.display(), r.fix()))?;
        let loaded = Arc::new(loaded);
        tracing::info!(plugin, version, file = %path.display(), "loaded a version that was not loaded (a rollback target, or a fleet's version)");
        self.served.lock().unwrap().entry(plugin.to_string()).or_default().insert(0, loaded.clone());
        Ok(loaded)
    }

    /// Marks the newest serving version (`expected`, if given: otherwise nothing happens) bad and puts
    /// `to` (default: its previous stable version) back in every room: rooms on the bad version rebuild
    /// their state in it from their pre-swap checkpoint and journal. Returns (bad, back on).
    pub async fn roll_back(
        &self,
        game_name: &str,
        expected: Option<&str>,
        to: Option<&str>,
        reason: &str,
        actor: &str,
    ) -> Result<(String, String)> {
        self.roll_back_for(game_name, expected, to, (reason, "operator"), actor).await
    }

    /// [`Deployer::roll_back`] with its `cause` as a metric label (see [`DeployEvent::RolledBack`]).
    /// Callers hold `operating`, so that this host's own reconcile never runs between the registry write
    /// and the rooms' update.
    async fn roll_back_for(
        &self,
        game_name: &str,
        expected: Option<&str>,
        to: Option<&str>,
        (reason, cause): (&str, &'static str),
        actor: &str,
    ) -> Result<(String, String)> {
        let Some(game) = self.rooms.game(game_name) else { bail!("no plugin named {game_name:?} is loaded") };
        let serving = game.serving();
        let trial = serving.canary.as_ref().map(|c| c.plugin.clone()).unwrap_or_else(|| serving.active.clone());
        let bad = trial.manifest().version.clone();
        if let Some(expected) = expected
            && expected != bad
        {
            bail!("{game_name} {expected} is not serving (serving {bad}); nothing to roll back");
        }
        let records = self.store.versions(game_name).await?;
        let to = match to {
            Some(v) => {
                match records.iter().find(|r| r.version == v) {
                    None => bail!("{game_name} {v} is not in the registry; `warden status` lists its versions"),
                    Some(r) if r.state == VersionState::Bad => bail!("{game_name} {v} was rolled back earlier and is never loaded again"),
                    Some(_) if v == bad => bail!("{game_name} {v} is the version being rolled back"),
                    Some(_) => {}
                }
                v.to_string()
            }
            None => match previous_stable(&records, &bad) {
                Some(v) => v,
                None => bail!("{game_name} {bad} has no previous stable version (none below it finished its trial); deploy a fix instead"),
            },
        };
        let target = self.load_version(game_name, &to).await?;
        // One transition: the bad version, the target, and whatever else served (a version on probation
        // while a canary ran) retired.
        // Marked bad once: in a fleet, several hosts may see the same breach or failed swap at once.
        let mut t = Transition {
            rollout: Some(None),
            expect: Some(Expect {
                version: bad.clone(),
                states: vec![VersionState::Canary, VersionState::Probation, VersionState::Active],
            }),
            audit: Some(AuditWrite {
                actor: actor.to_string(),
                action: "rollback".into(),
                version: Some(bad.clone()),
                detail: format!("{reason}; back on {to}"),
            }),
            ..Transition::default()
        };
        t.versions.push(state_of(&trial, VersionState::Bad));
        for r in records.iter().filter(|r| r.state.is_serving() && r.version != bad && r.version != to) {
            t.versions.extend(retired(&records, &r.version).and_then(|s| record_as(&records, &r.version, s)));
        }
        t.versions.push(state_of(&target, VersionState::Active));
        if !self.store.transition(game_name, &t).await? {
            bail!("{game_name} {bad} is no longer serving in the registry (another host of the fleet rolled it back first)");
        }

        game.update(|s| {
            let mut bad_list = s.bad.clone();
            bad_list.push(bad.clone());
            Serving { active: target.clone(), canary: None, settled: true, bad: bad_list }
        });
        self.served.lock().unwrap().entry(game_name.to_string()).or_default().retain(|p| p.manifest().version != bad);
        self.rollouts.lock().unwrap().insert(game_name.to_string(), Rollout::new(target.clone(), Phase::Stable, None));
        tracing::error!(plugin = game_name, bad, back_to = %to, actor, "rolled back: {reason}");
        self.emit(DeployEvent::RolledBack {
            plugin: game_name.to_string(),
            bad: bad.clone(),
            to: to.clone(),
            reason: reason.to_string(),
            cause,
        });
        Ok((bad, to))
    }

    /// An operator's rollback of `plugin`: to its previous stable version, or to `to`, which must be that
    /// version unless `force` (going further back, or to a version that did not finish its trial, is an
    /// explicit choice). Returns (bad, back on).
    pub async fn operator_rollback(
        &self,
        name: &str,
        to: Option<&str>,
        force: bool,
        actor: &str,
    ) -> Result<(String, String), OperatorError> {
        let _operating = self.operating.lock().await;
        let previous = self.previous_stable(name).await.map_err(OperatorError::Failed)?;
        if let Some(to) = to
            && previous.as_deref() != Some(to)
            && !force
        {
            return Err(OperatorError::NeedsForce(format!(
                "{to} is not the previous stable version of {name} ({}): rolling back further is an explicit choice; add --force",
                previous.as_deref().unwrap_or("none")
            )));
        }
        self.roll_back(name, None, to, "operator rollback", actor).await.map_err(OperatorError::Failed)
    }

    /// The version a plain rollback of `plugin` goes back to: the previous stable version of the
    /// version on trial (or serving).
    pub async fn previous_stable(&self, plugin: &str) -> Result<Option<String>> {
        let Some(game) = self.rooms.game(plugin) else { return Ok(None) };
        let serving = game.serving();
        let trial = serving.canary.as_ref().map(|c| c.plugin.clone()).unwrap_or_else(|| serving.active.clone());
        Ok(previous_stable(&self.store.versions(plugin).await?, &trial.manifest().version))
    }

    /// Checks every version on trial against its policy, rolls back a breach, and moves rollouts on
    /// (canary -> every room -> probation -> stable). Runs every tenth of a second.
    pub async fn evaluate(&self) {
        // In a fleet, one host judges and moves rollouts on: the holder of the rollout lease.
        if !self.leads() {
            return;
        }
        let trials: Vec<(String, Rollout)> =
            self.rollouts.lock().unwrap().iter().filter(|(_, r)| r.phase != Phase::Stable).map(|(n, r)| (n.clone(), r.clone())).collect();
        for (name, rollout) in trials {
            let Some(game) = self.rooms.game(&name) else { continue };
            let version = rollout.version.manifest().version.clone();
            let summed = match self.trial_window(&game, &name, &version).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(plugin = %name, %version, "cannot read the fleet's health windows: {e:#}");
                    continue;
                }
            };
            let window = summed.counts;
            let policy = self.policy(&name);
            if let Some(breach) = policy.check(&window, latency_baseline(&game, &rollout, &policy)) {
                let across = if self.fleet().is_some() { format!(" (summed across {} hosts)", summed.hosts) } else { String::new() };
                let reason = format!("health breach during {}: {breach}{across}", rollout.phase.name());
                // Held from the registry write until this host's rooms follow it: in a fleet the write's
                // event reaches this host too, and its reconcile must not find the registry ahead of
                // the rooms and roll them back a second time (counted as the fleet's).
                let operating = self.operating.lock().await;
                let rolled = self.roll_back_for(&name, Some(&version), None, (&reason, breach.kind()), "health").await;
                drop(operating);
                if let Err(e) = rolled {
                    tracing::error!(plugin = %name, %version, "{reason}, but it cannot be rolled back: {e:#}");
                }
                continue;
            }
            let elapsed = rollout.elapsed_ms();
            // The phase's clock goes to the store about once a second, so a restart resumes it.
            if rollout.saved.elapsed() >= Duration::from_secs(1) {
                self.rollouts.lock().unwrap().entry(name.clone()).and_modify(|r| r.saved = Instant::now());
                if let Err(e) = self.store.rollout_elapsed(&name, &version, elapsed).await {
                    tracing::warn!(plugin = %name, "failed to store the rollout's elapsed time: {e:#}");
                }
            }
            if rollout.paused {
                continue;
            }
            let config = self.rollout_config(&name);
            let window_ms = match rollout.phase {
                Phase::Canary => config.canary_ms,
                Phase::Probation => config.probation_ms,
                Phase::Stable => continue,
            };
            // No phase ends on too little evidence: the version must have served the policy's minimum of
            // player inputs (calls other than ticks) within its health window.
            let min_calls = self.policy(&name).min_calls;
            let inputs = window.calls - window.tick_calls;
            if elapsed >= window_ms && inputs < min_calls {
                if !rollout.held {
                    let phase = rollout.phase.name();
                    tracing::warn!(plugin = %name, %version, inputs, min_calls,
                        "{phase} held past its {window_ms} ms: {inputs} player inputs in the health window, fewer than the {min_calls} needed to judge the version; it moves on once players have used it (or `warden promote`)");
                    self.rollouts.lock().unwrap().entry(name.clone()).and_modify(|r| r.held = true);
                }
                continue;
            }
            if elapsed >= window_ms {
                let why = format!(
                    "{} passed {elapsed} ms with {inputs} player inputs ({} calls), {} errors, {} traps",
                    rollout.phase.name(),
                    window.calls,
                    window.errors,
                    window.traps + window.deadlines
                );
                if let Err(e) = self.advance(&name, "deploy", &why).await {
                    tracing::error!(plugin = %name, "the rollout cannot move on: {e:#}");
                }
            }
        }
    }

    /// Moves `plugin`'s rollout one phase on: canary -> every room (probation), probation -> stable.
    pub async fn advance(&self, name: &str, actor: &str, why: &str) -> Result<String> {
        let _operating = self.operating.lock().await;
        let Some(game) = self.rooms.game(name) else { bail!("no plugin named {name:?} is loaded") };
        let Some(rollout) = self.rollouts.lock().unwrap().get(name).cloned() else { bail!("{name} has no rollout") };
        let version = rollout.version.manifest().version.clone();
        let probation = self.rollout_config(name).probation_ms;
        let records = self.store.versions(name).await?;
        let next = match rollout.phase {
            Phase::Canary if probation == 0 => Phase::Stable,
            Phase::Canary => Phase::Probation,
            Phase::Probation => Phase::Stable,
            Phase::Stable => bail!("{name} {version} is already stable"),
        };
        let mut t = Transition::default();
        if rollout.phase == Phase::Canary {
            let active = game.active();
            t.versions
                .extend(retired(&records, &active.manifest().version).and_then(|s| record_as(&records, &active.manifest().version, s)));
        }
        t.versions.push(state_of(&rollout.version, if next == Phase::Stable { VersionState::Active } else { VersionState::Probation }));
        // A pause holds a trial; past it there is nothing to hold.
        let paused = rollout.paused && next != Phase::Stable;
        let moved = Rollout { phase: next, since: Instant::now(), elapsed_before: 0, held: false, paused, ..rollout.clone() };
        t.rollout = Some(moved.record(Vec::new()));
        let detail = match next {
            Phase::Probation => format!("{why}; every room runs it now, on probation for {probation} ms"),
            _ => format!("{why}; stable: rooms checkpoint on their normal cadence"),
        };
        let from = if rollout.phase == Phase::Canary { VersionState::Canary } else { VersionState::Probation };
        t.expect = Some(Expect { version: version.clone(), states: vec![from] });
        t.audit =
            Some(AuditWrite { actor: actor.to_string(), action: "promote".into(), version: Some(version.clone()), detail: detail.clone() });
        if !self.store.transition(name, &t).await? {
            bail!(
                "{name} {version} is no longer in its {} in the registry (another host of the fleet moved it first)",
                rollout.phase.name()
            );
        }

        match rollout.phase {
            Phase::Canary => {
                let plugin = rollout.version.clone();
                game.update(|s| Serving { active: plugin.clone(), canary: None, settled: next == Phase::Stable, bad: s.bad.clone() });
            }
            _ => game.update(|s| Serving { settled: true, ..s.clone() }),
        }
        self.rollouts.lock().unwrap().insert(name.to_string(), moved);
        tracing::info!(plugin = name, %version, actor, "promote: {detail}");
        self.emit(DeployEvent::Advanced { plugin: name.to_string(), version: version.clone(), phase: next });
        Ok(format!("{name} {version}: {detail}"))
    }

    /// Holds (or with `on = false`, resumes) `plugin`'s rollout in its phase; health checks go on. The
    /// phase's clock stops while it is paused and goes on from there. A version past its trial has no
    /// rollout to hold: that is refused. The registry is written first, so a store failure changes
    /// nothing.
    pub async fn pause(&self, name: &str, on: bool, actor: &str) -> Result<String> {
        let _operating = self.operating.lock().await;
        let Some(current) = self.rollouts.lock().unwrap().get(name).cloned() else { bail!("no plugin named {name:?} is loaded") };
        let version = current.version.manifest().version.clone();
        if current.phase == Phase::Stable {
            bail!(
                "{name} {version} is past its trial: there is no rollout to {} (pause acts on a canary or a probation)",
                if on { "pause" } else { "resume" }
            );
        }
        let mut next = current.clone();
        if next.paused != on {
            if on {
                next.elapsed_before += next.since.elapsed().as_millis() as u64;
            } else {
                next.since = Instant::now();
            }
            next.paused = on;
        }
        let rooms = self.rooms.game(name).and_then(|g| g.serving().canary.as_ref().map(|c| c.rooms.iter().cloned().collect()));
        let record = next.record(rooms.unwrap_or_default());
        self.store.transition(name, &Transition { rollout: Some(record), ..Transition::default() }).await?;
        {
            let mut rollouts = self.rollouts.lock().unwrap();
            // Only if no other step replaced the rollout meanwhile.
            if let Some(r) = rollouts.get_mut(name).filter(|r| Arc::ptr_eq(&r.version, &current.version) && r.phase == current.phase) {
                *r = next;
            }
        }
        let msg = format!(
            "{name} {version} {}",
            if on { "paused: its rollout holds its phase (automatic rollback stays on)" } else { "resumed" }
        );
        self.audit(actor, if on { "pause" } else { "resume" }, Some(name), None, &msg).await;
        Ok(msg)
    }

    /// Writes every rollout's elapsed time (at shutdown, so a restart resumes where it stopped).
    pub async fn save_rollouts(&self) {
        let trials: Vec<(String, String, u64)> = self
            .rollouts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r.phase != Phase::Stable)
            .map(|(n, r)| (n.clone(), r.version.manifest().version.clone(), r.elapsed_ms()))
            .collect();
        for (name, version, elapsed) in trials {
            if let Err(e) = self.store.rollout_elapsed(&name, &version, elapsed).await {
                tracing::warn!(plugin = %name, "failed to store the rollout's elapsed time: {e:#}");
            }
        }
    }

    /// Resumes a stored rollout at start: `plugin` serves (or, for a canary, is on trial in the stored
    /// rooms) with the phase's remaining time.
    pub(super) fn resume_rollout(&self, plugin: &Arc<Plugin>, stored: &RolloutRecord) {
        let name = plugin.manifest().name.clone();
        let Some(game) = self.rooms.game(&name) else { return };
        let phase = if stored.phase == "canary" { Phase::Canary } else { Phase::Probation };
        if phase == Phase::Canary {
            let rooms = stored.canary_rooms.iter().cloned().collect();
            game.update(|s| Serving { canary: Some(Canary { plugin: plugin.clone(), rooms }), ..s.clone() });
        } else {
            game.update(|s| Serving { settled: false, ..s.clone() });
        }
        let mut r = Rollout::new(plugin.clone(), phase, stored.previous_p99_us);
        r.elapsed_before = stored.elapsed_ms;
        r.paused = stored.paused;
        tracing::info!(plugin = %name, version = %plugin.manifest().version, phase = phase.name(), elapsed_ms = stored.elapsed_ms, paused = stored.paused,
            "resumed the rollout in progress");
        self.rollouts.lock().unwrap().insert(name, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(version: &str, state: VersionState) -> VersionRecord {
        VersionRecord { plugin: "p".into(), version: version.into(), state, sha256: String::new() }
    }

    #[test]
    fn the_previous_stable_version_is_the_highest_proven_one_below() {
        use VersionState::*;
        // 0.3.0 stable, 0.3.1 replaced during probation, 0.3.2 on probation.
        let records = [rec("0.2.0", Stable), rec("0.3.0", Stable), rec("0.3.1", Superseded), rec("0.3.2", Probation)];
        assert_eq!(previous_stable(&records, "0.3.2").as_deref(), Some("0.3.0"), "never 0.3.1, which did not finish its trial");
        // After a forced rollback to 0.2.0 (0.3.2 bad), a plain rollback never goes up to 0.3.0.
        let records = [rec("0.1.0", Stable), rec("0.2.0", Active), rec("0.3.0", Stable), rec("0.3.2", Bad)];
        assert_eq!(previous_stable(&records, "0.2.0").as_deref(), Some("0.1.0"));
        // A canary's previous stable is the proven version serving the other rooms.
        let records = [rec("1.0.0", Stable), rec("1.1.0", Active), rec("1.2.0", Canary)];
        assert_eq!(previous_stable(&records, "1.2.0").as_deref(), Some("1.1.0"));
        let records = [rec("1.0.0", Bad), rec("1.1.0", Active)];
        assert_eq!(previous_stable(&records, "1.1.0"), None, "a bad version is no target");
    }
}
