//! Getting plugin versions into the server while it runs.
//!
//! The [`Deployer`] owns the version registry side of the store. At start ([`Deployer::boot`]) it brings
//! each plugin back on the version the registry says was active (never below the floor), and deploys the
//! newest file of a plugin seen for the first time. While running, the [`watch`] task hands it every new
//! or changed `.wasm` once the file has settled and its signature is there; the [`pipeline`] checks it off
//! the game threads; a file that passes becomes the game's active version, and every room moves to it at
//! its next tick boundary. Every outcome is an audit entry. A room that cannot take the new version
//! reports it, and the version is marked bad and rolled back everywhere it went.

pub mod pipeline;
pub mod sign;
pub mod watch;

use crate::config::{Config, DeployConfig, PluginConfig, RolloutConfig, Strategy};
use crate::health::{Counts, Policy};
use crate::room::{Canary, Rooms, Serving, SwapFailure};
use crate::runtime::{CacheOutcome, Features, Plugin, Runtime};
use crate::storage::{Store, VersionRecord, VersionState};
use anyhow::{Result, bail};
use pipeline::Rejection;
use sign::TrustedKey;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// How long each step of a deploy took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeployTimings {
    /// From the file event (or the start of the deploy) to the end of signature and name checks.
    pub event_to_verified: Duration,
    /// Compile, or load from the compile cache.
    pub compile: Duration,
    /// Whether the compile cache served it.
    pub cache: CacheOutcome,
    /// The smoke test.
    pub smoke: Duration,
    /// From the file event to the version being active (rooms then move at their next tick boundary).
    pub event_to_active: Duration,
}

/// What happened to a plugin file or version (for logs, tests and the benchmark).
#[derive(Clone, Debug)]
pub enum DeployEvent {
    /// A version became active.
    Deployed {
        /// Plugin.
        plugin: String,
        /// Version.
        version: String,
        /// Step times.
        timings: DeployTimings,
    },
    /// A file was refused; the serving version is untouched.
    Rejected {
        /// The file.
        file: PathBuf,
        /// [`Rejection::kind`].
        kind: &'static str,
        /// Reason and fix.
        message: String,
    },
    /// A rollout moved on: from canary to every room (`phase` probation or stable), or out of
    /// probation (`phase` stable).
    Advanced {
        /// Plugin.
        plugin: String,
        /// Version.
        version: String,
        /// The phase it is in now.
        phase: Phase,
    },
    /// A version failed and was rolled back everywhere.
    RolledBack {
        /// Plugin.
        plugin: String,
        /// The bad version.
        bad: String,
        /// The version serving again.
        to: String,
        /// Why.
        reason: String,
    },
}

/// A file handed to the deployer, with when its first event was seen.
#[derive(Debug)]
pub struct Candidate {
    /// The `.wasm` file.
    pub path: PathBuf,
    /// When the watcher first saw it (the start of "file event to live").
    pub seen_at: Instant,
}

/// Deploys plugin versions into [`Rooms`], recording each outcome in the store.
pub struct Deployer {
    rt: Arc<Runtime>,
    store: Store,
    rooms: Rooms,
    dir: PathBuf,
    dev: bool,
    deploy: DeployConfig,
    trusted: Vec<TrustedKey>,
    plugins: BTreeMap<String, PluginConfig>,
    /// The versions each game has served this run, oldest first; the last one is active.
    served: Mutex<HashMap<String, Vec<Arc<Plugin>>>>,
    /// Where each plugin's newest version is in its rollout.
    rollouts: Mutex<HashMap<String, Rollout>>,
    rollout: RolloutConfig,
    health: Policy,
    events: broadcast::Sender<DeployEvent>,
}

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

#[derive(Clone)]
struct Rollout {
    version: Arc<Plugin>,
    /// The stable version a breach rolls back to.
    previous: Option<Arc<Plugin>>,
    phase: Phase,
    since: Instant,
    paused: bool,
    previous_p99: Option<u64>,
    /// The phase's time is up but its window has too few calls to judge: held (logged once).
    held: bool,
}

/// What `warden status` shows.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// Every loaded plugin.
    pub plugins: Vec<PluginStatus>,
    /// The last rollbacks, newest first.
    pub rollbacks: Vec<crate::storage::AuditEntry>,
}

/// One plugin in [`Status`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PluginStatus {
    /// Name.
    pub name: String,
    /// Its versions in the registry, newest first.
    pub versions: Vec<VersionStatus>,
}

/// One version in [`Status`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct VersionStatus {
    /// Version.
    pub version: String,
    /// Registry state.
    pub state: String,
    /// Rollout phase, for the newest version.
    pub phase: Option<Phase>,
    /// Whether its rollout is paused.
    pub paused: bool,
    /// Open rooms running it.
    pub rooms: usize,
    /// Counts over the health window.
    pub window: Counts,
    /// Share of `err` results in the window.
    pub error_rate: f64,
    /// p99 call latency in the window, µs.
    pub p99_us: Option<u64>,
    /// Counts since the server started.
    pub total: Counts,
}

impl Deployer {
    /// A deployer for `config`'s plugin directory and trusted keys.
    pub fn new(rt: Arc<Runtime>, store: Store, rooms: Rooms, config: &Config) -> Result<Deployer> {
        let trusted = config.deploy.trusted_keys.iter().map(|k| TrustedKey::parse(k)).collect::<Result<Vec<_>>>()?;
        if trusted.is_empty() && !config.dev {
            bail!(
                "no trusted signing keys: add your public key to deploy.trusted_keys in warden.toml (`warden keygen` makes a pair), \
                 or run with --dev to load unsigned plugins"
            );
        }
        Ok(Deployer {
            rt,
            store,
            rooms,
            dir: config.plugin_dir.clone(),
            dev: config.dev,
            deploy: config.deploy.clone(),
            trusted,
            plugins: config.plugins.clone(),
            served: Mutex::new(HashMap::new()),
            rollouts: Mutex::new(HashMap::new()),
            rollout: config.rollout.clone(),
            health: config.health.clone(),
            events: broadcast::channel(1024).0,
        })
    }

    /// Every deploy outcome from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DeployEvent> {
        self.events.subscribe()
    }

    /// The trusted keys.
    pub fn trusted(&self) -> &[TrustedKey] {
        &self.trusted
    }

    /// Brings every plugin up: the version the registry has active (its file is verified again, and may
    /// sit at the floor), or for a plugin never deployed, the newest file that passes. Files already in
    /// the directory are not deployed otherwise: a restart comes back on the versions that were active.
    /// Only if the active version's file is gone or no longer passes does the newest file above the
    /// floor take its place (logged as an error).
    pub async fn boot(&self) -> Result<()> {
        if self.dev {
            tracing::warn!(
                "DEV MODE: UNSIGNED plugins from {} are loaded and anonymous guests admitted; never run this in production",
                self.dir.display()
            );
        }
        let files = watch::list(&self.dir)?;
        // What each file claims, without compiling it.
        let mut by_plugin: BTreeMap<String, Vec<(semver::Version, PathBuf)>> = BTreeMap::new();
        for path in files {
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| crate::runtime::manifest::read(&b).map_err(|e| e.to_string()))
            {
                Ok(m) => by_plugin.entry(m.name.clone()).or_default().push((m.semver(), path)),
                Err(e) => tracing::warn!(file = %path.display(), "not a plugin, skipped at start: {e}"),
            }
        }
        let mut names: Vec<String> = by_plugin.keys().cloned().collect();
        names.extend(self.store.plugins().await?);
        names.sort();
        names.dedup();
        for name in names {
            let mut files = by_plugin.remove(&name).unwrap_or_default();
            files.sort_by(|a, b| b.0.cmp(&a.0)); // newest first
            let registered = self.store.versions(&name).await?;
            let active =
                registered.iter().filter(|r| r.state == VersionState::Active).filter_map(|r| semver::Version::parse(&r.version).ok()).max();
            if let Some(version) = &active {
                match files.iter().find(|(v, _)| v == version) {
                    Some((_, path)) => match self.run(&Candidate { path: path.clone(), seen_at: Instant::now() }, true).await {
                        Ok(_) => continue,
                        Err(e) => tracing::error!(plugin = %name, %version, "the active version failed its checks at start: {e}"),
                    },
                    None => tracing::error!(
                        plugin = %name,
                        %version,
                        "the registry's active version has no file in {} (put {name}-{version}.wasm and its .minisig back to serve it)",
                        self.dir.display()
                    ),
                }
                tracing::warn!(plugin = %name, "deploying the newest file above the floor instead, if any");
            }
            // A plugin never deployed, or whose active version cannot be served: the newest file that
            // passes (the floor still applies).
            for (version, path) in &files {
                if active.as_ref().is_some_and(|a| version <= a) {
                    break;
                }
                if self.run(&Candidate { path: path.clone(), seen_at: Instant::now() }, false).await.is_ok() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Runs `candidate` through the pipeline and, if it passes, makes it active. Every outcome is an
    /// audit entry and an event. `restart` admits the version at the floor (the registry's active one).
    pub async fn run(&self, candidate: &Candidate, restart: bool) -> Result<DeployTimings, Rejection> {
        let file = candidate.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let outcome = self.check_and_activate(candidate, restart).await;
        match &outcome {
            Ok((plugin, timings)) => {
                let m = plugin.manifest();
                tracing::info!(plugin = %m.name, version = %m.version, file, ?timings, "deployed: rooms move to it at their next tick");
                let _ = self.events.send(DeployEvent::Deployed {
                    plugin: m.name.clone(),
                    version: m.version.clone(),
                    timings: timings.clone(),
                });
            }
            Err((claimed, rejection)) => {
                let message = format!("{file}: {rejection}; fix: {}", rejection.fix());
                tracing::error!(kind = rejection.kind(), "rejected {message} (the serving version is untouched)");
                let (plugin, version) = claimed.clone().unzip();
                self.audit("deploy", "reject", plugin.as_deref(), version.as_deref(), &format!("{}: {message}", rejection.kind())).await;
                let _ = self.events.send(DeployEvent::Rejected { file: candidate.path.clone(), kind: rejection.kind(), message });
            }
        }
        outcome.map(|(_, t)| t).map_err(|(_, r)| r)
    }

    #[allow(clippy::type_complexity)]
    async fn check_and_activate(
        &self,
        candidate: &Candidate,
        restart: bool,
    ) -> Result<(Arc<Plugin>, DeployTimings), (Option<(String, String)>, Rejection)> {
        let path = candidate.path.clone();
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        // Until the manifest is read, the audit entry names what the file name says.
        let claimed = pipeline::parse_file_name(&file_name).map(|(n, v)| (n, v.map(|v| v.to_string()).unwrap_or_default()));
        let (cap, trusted, dev) = (self.deploy.max_plugin_bytes, self.trusted.clone(), self.dev);
        let checked = tokio::task::spawn_blocking(move || pipeline::read_and_verify(&path, cap, &trusted, dev))
            .await
            .expect("the check does not panic")
            .map_err(|r| (claimed.clone(), r))?;
        let event_to_verified = candidate.seen_at.elapsed();
        let m = checked.manifest.clone();
        let fail = |r: Rejection| (Some((m.name.clone(), m.version.clone())), r);
        let store_err = |e: anyhow::Error| fail(Rejection::Store(format!("{e:#}")));

        // The durable floor and the bad list.
        let version = m.semver();
        let registered = self.store.versions(&m.name).await.map_err(store_err)?;
        if registered.iter().any(|r| r.version == m.version && r.state == VersionState::Bad) {
            return Err(fail(Rejection::MarkedBad {
                plugin: m.name.clone(),
                version: m.version.clone(),
                why: "rolled back earlier".into(),
            }));
        }
        // A restart brings back the registry's active version, which after a rollback is below the floor.
        let was_active = restart && registered.iter().any(|r| r.version == m.version && r.state == VersionState::Active);
        if let Some(floor) = self.store.floor(&m.name).await.map_err(store_err)?
            && !was_active
            && (version < floor || (version == floor && !restart))
        {
            return Err(fail(Rejection::NotAboveFloor { plugin: m.name.clone(), version: m.version.clone(), floor: floor.to_string() }));
        }

        // Compile and smoke-test off the game threads, against the version serving now.
        let current = self.rooms.game(&m.name).map(|g| g.active());
        let settings = self.plugins.get(&m.name).cloned().unwrap_or_default();
        let init_config = init_config(&settings).map_err(|e| fail(Rejection::Smoke(format!("{e:#}"))))?;
        let rt = self.rt.clone();
        let config = init_config.clone();
        let started = Instant::now();
        let (plugin, smoke) = tokio::task::spawn_blocking({
            let current = current.clone();
            move || pipeline::compile_and_smoke(&rt, &checked.bytes, current.as_deref(), &config)
        })
        .await
        .expect("compiling does not panic")
        .map_err(fail)?;
        let compile = started.elapsed() - smoke;
        let (cache, sha256) = (plugin.cache_outcome(), plugin.sha256().to_string());
        let plugin = Arc::new(plugin);

        // Record, then roll out.
        let rollout = self.rollout_config(&m.name);
        let features = Features::on(&settings.features.iter().map(String::as_str).collect::<Vec<_>>());
        let canary_rooms = match (&current, rollout.strategy) {
            (Some(_), Strategy::Canary) if !restart => self.pick_canary(&m.name, rollout.canary_share),
            _ => Vec::new(),
        };
        let state = if canary_rooms.is_empty() { VersionState::Active } else { VersionState::Canary };
        if let Some(prev) = &current
            && prev.manifest().version != m.version
            && state == VersionState::Active
        {
            self.record(prev, VersionState::Stable).await.map_err(store_err)?;
        }
        let record = VersionRecord { plugin: m.name.clone(), version: m.version.clone(), state, sha256: sha256.clone() };
        self.store.set_version(&record).await.map_err(store_err)?;
        self.store.raise_floor(&m.name, &version).await.map_err(store_err)?;
        let signer = checked.signed.as_ref().map_or_else(|| "UNSIGNED (dev mode)".to_string(), |s| format!("signed by key {}", s.key_id));
        let from = current.as_ref().map_or_else(|| "first version".to_string(), |p| format!("replacing {}", p.manifest().version));
        let how = match (&current, canary_rooms.len()) {
            (None, _) => String::new(),
            _ if restart => String::new(),
            (Some(_), 0) => format!("; all rooms, then {} ms of probation", rollout.probation_ms),
            (Some(_), n) => format!(
                "; canary in {n} room(s) for {} ms, then all rooms, then {} ms of probation",
                rollout.canary_ms, rollout.probation_ms
            ),
        };
        let action = if restart { "restart" } else { "deploy" };
        self.audit("deploy", action, Some(&m.name), Some(&m.version), &format!("{file_name} sha256={sha256} {signer}, {from}{how}")).await;
        let game = self.rooms.game(&m.name);
        let phase = match (&game, &current) {
            (Some(game), Some(prev)) if !restart => {
                game.health(&m.version).clear_window();
                let previous_p99 = game.health(&prev.manifest().version).window().p99_us();
                // What a breach goes back to: the last stable version. A version still on trial that
                // this one supersedes is not it.
                let previous = match self.rollouts.lock().unwrap().get(&m.name) {
                    Some(r) if r.phase != Phase::Stable => r.previous.clone().unwrap_or_else(|| prev.clone()),
                    Some(r) => r.version.clone(),
                    None => prev.clone(),
                };
                if canary_rooms.is_empty() {
                    game.update(|s| Serving {
                        active: plugin.clone(),
                        canary: None,
                        settled: rollout.probation_ms == 0,
                        bad: s.bad.clone(),
                    });
                } else {
                    let rooms = canary_rooms.iter().cloned().collect();
                    game.update(|s| Serving {
                        active: s.active.clone(),
                        canary: Some(Canary { plugin: plugin.clone(), rooms }),
                        settled: s.settled,
                        bad: s.bad.clone(),
                    });
                }
                let phase = if !canary_rooms.is_empty() {
                    Phase::Canary
                } else if rollout.probation_ms == 0 {
                    Phase::Stable
                } else {
                    Phase::Probation
                };
                self.rollouts.lock().unwrap().insert(
                    m.name.clone(),
                    Rollout {
                        version: plugin.clone(),
                        previous: Some(previous),
                        phase,
                        since: Instant::now(),
                        paused: false,
                        previous_p99,
                        held: false,
                    },
                );
                phase
            }
            _ => {
                self.rooms.activate(plugin.clone(), init_config, features, Duration::from_millis(self.policy(&m.name).window_ms));
                self.rollouts.lock().unwrap().insert(
                    m.name.clone(),
                    Rollout {
                        version: plugin.clone(),
                        previous: None,
                        phase: Phase::Stable,
                        since: Instant::now(),
                        paused: false,
                        previous_p99: None,
                        held: false,
                    },
                );
                Phase::Stable
            }
        };
        tracing::debug!(plugin = %m.name, version = %m.version, ?phase, canary_rooms = canary_rooms.len(), "rolling out");
        self.served.lock().unwrap().entry(m.name.clone()).or_default().push(plugin.clone());
        let timings = DeployTimings { event_to_verified, compile, cache, smoke, event_to_active: candidate.seen_at.elapsed() };
        Ok((plugin, timings))
    }

    /// A room could not take a new version: mark it bad and put the previous version back everywhere.
    pub async fn swap_failed(&self, failure: SwapFailure) {
        let reason = format!("room {} could not take it: {}", failure.room, failure.reason);
        if let Err(e) = self.roll_back(&failure.game, Some(&failure.to), None, &reason, "health").await {
            tracing::debug!(game = %failure.game, "no rollback for the failed swap: {e:#}");
        }
    }

    /// Marks the newest serving version (`expected`, if given: otherwise nothing happens) bad and puts
    /// `to` (default: the last stable version) back in every room: rooms on the bad version rebuild
    /// their state in it from their pre-swap checkpoint and journal. Returns (bad, back on).
    pub async fn roll_back(
        &self,
        game_name: &str,
        expected: Option<&str>,
        to: Option<&str>,
        reason: &str,
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
        let bad = bad.as_str();
        let target = {
            let served = self.served.lock().unwrap();
            let history = served.get(game_name).cloned().unwrap_or_default();
            let previous = self.rollouts.lock().unwrap().get(game_name).and_then(|r| r.previous.clone());
            match to {
                Some(v) => history.iter().rev().find(|p| p.manifest().version == v).cloned(),
                None => previous.or_else(|| {
                    history.iter().rev().find(|p| p.manifest().version != bad && !serving.is_bad(&p.manifest().version)).cloned()
                }),
            }
        };
        let Some(target) = target else {
            bail!(
                "no version to roll {game_name} {bad} back to{}: it was not served since the server started",
                to.map(|v| format!(" ({v})")).unwrap_or_default()
            )
        };
        let to = target.manifest().version.clone();
        game.update(|s| {
            let mut bad_list = s.bad.clone();
            bad_list.push(bad.to_string());
            Serving { active: target.clone(), canary: None, settled: true, bad: bad_list }
        });
        self.served.lock().unwrap().entry(game_name.to_string()).or_default().retain(|p| p.manifest().version != bad);
        self.rollouts.lock().unwrap().insert(
            game_name.to_string(),
            Rollout {
                version: target.clone(),
                previous: None,
                phase: Phase::Stable,
                since: Instant::now(),
                paused: false,
                previous_p99: None,
                held: false,
            },
        );
        tracing::error!(plugin = game_name, bad, back_to = %to, actor, "rolled back: {reason}");
        self.record(&trial, VersionState::Bad).await?;
        self.record(&target, VersionState::Active).await?;
        self.audit(actor, "rollback", Some(game_name), Some(bad), &format!("{reason}; back on {to}")).await;
        let _ = self.events.send(DeployEvent::RolledBack {
            plugin: game_name.to_string(),
            bad: bad.to_string(),
            to: to.clone(),
            reason: reason.to_string(),
        });
        Ok((bad.to_string(), to))
    }

    async fn record(&self, plugin: &Plugin, state: VersionState) -> Result<()> {
        let m = plugin.manifest();
        let record = VersionRecord { plugin: m.name.clone(), version: m.version.clone(), state, sha256: plugin.sha256().to_string() };
        self.store.set_version(&record).await
    }

    async fn audit(&self, actor: &str, action: &str, plugin: Option<&str>, version: Option<&str>, detail: &str) {
        if let Err(e) = self.store.audit(actor, action, plugin, version, detail).await {
            tracing::error!(action, "failed to write the audit entry ({detail}): {e:#}");
        }
    }

    /// Version `version` of `plugin`, if it served since the server started and is not bad.
    pub fn loaded(&self, plugin: &str, version: &str) -> Option<Arc<Plugin>> {
        self.served.lock().unwrap().get(plugin)?.iter().rev().find(|p| p.manifest().version == version).cloned()
    }

    /// The stable version a rollback of `plugin` goes back to by default.
    pub fn previous_stable(&self, plugin: &str) -> Option<String> {
        let rollouts = self.rollouts.lock().unwrap();
        let r = rollouts.get(plugin)?;
        if let Some(p) = &r.previous {
            return Some(p.manifest().version.clone());
        }
        let served = self.served.lock().unwrap();
        let history = served.get(plugin)?;
        history.iter().rev().map(|p| p.manifest().version.clone()).find(|v| *v != r.version.manifest().version)
    }

    /// The rollout settings of `plugin`.
    fn rollout_config(&self, plugin: &str) -> RolloutConfig {
        self.plugins.get(plugin).and_then(|p| p.rollout.clone()).unwrap_or_else(|| self.rollout.clone())
    }

    /// The health policy of `plugin`.
    pub fn policy(&self, plugin: &str) -> Policy {
        self.plugins.get(plugin).and_then(|p| p.health.clone()).unwrap_or_else(|| self.health.clone())
    }

    /// The canary rooms: `share` of the game's open rooms (at least one), chosen by a hash of their id.
    fn pick_canary(&self, game: &str, share: f64) -> Vec<String> {
        let mut rooms: Vec<String> = self.rooms.list().into_iter().filter(|r| r.game == game).map(|r| r.room).collect();
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

    /// Checks every version on trial against its policy, rolls back a breach, and moves rollouts on
    /// (canary -> every room -> probation -> stable). Runs every tenth of a second.
    pub async fn evaluate(&self) {
        let trials: Vec<(String, Rollout)> =
            self.rollouts.lock().unwrap().iter().filter(|(_, r)| r.phase != Phase::Stable).map(|(n, r)| (n.clone(), r.clone())).collect();
        for (name, rollout) in trials {
            let Some(game) = self.rooms.game(&name) else { continue };
            let version = rollout.version.manifest().version.clone();
            let window = game.health(&version).window();
            if let Some(breach) = self.policy(&name).check(&window, rollout.previous_p99) {
                let phase = format!("{:?}", rollout.phase).to_lowercase();
                let reason = format!("health breach during {phase}: {breach}");
                if let Err(e) = self.roll_back(&name, Some(&version), None, &reason, "health").await {
                    tracing::error!(plugin = %name, %version, "{reason}, but it cannot be rolled back: {e:#}");
                    self.rollouts.lock().unwrap().entry(name.clone()).and_modify(|r| r.phase = Phase::Stable);
                }
                continue;
            }
            let config = self.rollout_config(&name);
            let elapsed = rollout.since.elapsed().as_millis() as u64;
            if rollout.paused {
                continue;
            }
            let window_ms = match rollout.phase {
                Phase::Canary => config.canary_ms,
                Phase::Probation => config.probation_ms,
                Phase::Stable => continue,
            };
            // No phase ends on too little evidence: the version must have served the policy's minimum of
            // calls within its health window (rooms tick, so any room running it gives them).
            let min_calls = self.policy(&name).min_calls;
            if elapsed >= window_ms && window.calls < min_calls {
                if !rollout.held {
                    let phase = format!("{:?}", rollout.phase).to_lowercase();
                    tracing::warn!(plugin = %name, %version, calls = window.calls, min_calls,
                        "{phase} held past its {window_ms} ms: {} calls in the health window, fewer than the {min_calls} needed to judge the version; it moves on once rooms have run it (or `warden promote`)", window.calls);
                    self.rollouts.lock().unwrap().entry(name.clone()).and_modify(|r| r.held = true);
                }
                continue;
            }
            if elapsed >= window_ms {
                let phase = format!("{:?}", rollout.phase).to_lowercase();
                let why = format!(
                    "{phase} passed {elapsed} ms with {} calls, {} errors, {} traps",
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
        let Some(game) = self.rooms.game(name) else { bail!("no plugin named {name:?} is loaded") };
        let Some(rollout) = self.rollouts.lock().unwrap().get(name).cloned() else { bail!("{name} has no rollout") };
        let version = rollout.version.manifest().version.clone();
        let probation = self.rollout_config(name).probation_ms;
        let (action, next) = match rollout.phase {
            Phase::Canary => {
                let plugin = rollout.version.clone();
                game.update(|s| Serving { active: plugin.clone(), canary: None, settled: probation == 0, bad: s.bad.clone() });
                if let Some(prev) = &rollout.previous {
                    self.record(prev, VersionState::Stable).await?;
                }
                self.record(&rollout.version, VersionState::Active).await?;
                ("promote", if probation == 0 { Phase::Stable } else { Phase::Probation })
            }
            Phase::Probation => {
                game.update(|s| Serving { settled: true, ..s.clone() });
                ("promote", Phase::Stable)
            }
            Phase::Stable => bail!("{name} {version} is already stable"),
        };
        self.rollouts.lock().unwrap().insert(name.to_string(), Rollout { phase: next, since: Instant::now(), held: false, ..rollout });
        let detail = match next {
            Phase::Probation => format!("{why}; every room runs it now, on probation for {probation} ms"),
            _ => format!("{why}; stable: rooms checkpoint on their normal cadence"),
        };
        tracing::info!(plugin = name, %version, actor, "{action}: {detail}");
        self.audit(actor, action, Some(name), Some(&version), &detail).await;
        let _ = self.events.send(DeployEvent::Advanced { plugin: name.to_string(), version: version.clone(), phase: next });
        Ok(format!("{name} {version}: {detail}"))
    }

    /// Holds (or with `on = false`, resumes) `plugin`'s rollout in its phase; health checks go on.
    pub async fn pause(&self, name: &str, on: bool, actor: &str) -> Result<String> {
        let msg = {
            let mut rollouts = self.rollouts.lock().unwrap();
            let Some(r) = rollouts.get_mut(name) else { bail!("no plugin named {name:?} is loaded") };
            r.paused = on;
            if !on {
                r.since = Instant::now();
            }
            format!(
                "{name} {} {}",
                r.version.manifest().version,
                if on { "paused: its rollout holds its phase (automatic rollback stays on)" } else { "resumed" }
            )
        };
        self.audit(actor, if on { "pause" } else { "resume" }, Some(name), None, &msg).await;
        Ok(msg)
    }

    /// Every plugin's versions, rollout phase, health and rooms, and the last rollbacks.
    pub async fn status(&self) -> Result<Status> {
        let mut plugins = Vec::new();
        for name in self.rooms.games() {
            let Some(game) = self.rooms.game(&name) else { continue };
            let rollout = self.rollouts.lock().unwrap().get(&name).cloned();
            let rooms = self.rooms.versions(&name);
            let mut versions = Vec::new();
            for record in self.store.versions(&name).await? {
                let h = game.health(&record.version);
                let (window, total) = (h.window(), h.total());
                let phase = rollout.as_ref().filter(|r| r.version.manifest().version == record.version).map(|r| r.phase);
                versions.push(VersionStatus {
                    rooms: rooms.get(&record.version).copied().unwrap_or(0),
                    p99_us: window.p99_us(),
                    error_rate: window.error_rate(),
                    window,
                    total,
                    phase,
                    paused: rollout.as_ref().is_some_and(|r| r.paused && phase.is_some()),
                    version: record.version,
                    state: record.state.as_str().to_string(),
                });
            }
            versions.sort_by(|a, b| semver::Version::parse(&b.version).ok().cmp(&semver::Version::parse(&a.version).ok()));
            plugins.push(PluginStatus { name, versions });
        }
        let rollbacks = self.store.audit_log(200).await?.into_iter().filter(|e| e.action == "rollback").take(5).collect();
        Ok(Status { plugins, rollbacks })
    }

    /// Watches the plugin directory (unless `deploy.watch` is off) and deploys what settles in it, and
    /// rolls back versions rooms refuse, until `stop`. Files present now are not deployed (see
    /// [`Deployer::boot`]).
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> Result<tokio::task::JoinHandle<()>> {
        let (tx, mut candidates) = mpsc::channel(64);
        let watcher = if self.deploy.watch { Some(watch::Watcher::start(&self.dir, &self.deploy, tx, stop.clone())?) } else { None };
        let mut failures = self.rooms.take_swap_failures();
        Ok(tokio::spawn(async move {
            let _watcher = watcher;
            let mut health = tokio::time::interval(Duration::from_millis(100));
            health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = health.tick() => self.evaluate().await,
                    Some(failure) = async { match failures.as_mut() { Some(f) => f.recv().await, None => std::future::pending().await } } => {
                        self.swap_failed(failure).await;
                    }
                    Some(candidate) = candidates.recv() => {
                        let _ = self.run(&candidate, false).await;
                    }
                }
            }
        }))
    }
}

/// The `init` configuration of a plugin (MessagePack map), empty if none.
pub fn init_config(settings: &PluginConfig) -> Result<Vec<u8>> {
    Ok(if settings.config.is_empty() { Vec::new() } else { rmp_serde::to_vec_named(&settings.config)? })
}

/// Whether the plugin directory's file `name` is one the deployer looks at (not a dotfile, not a temp).
pub fn is_candidate_name(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".wasm") && !name.contains(".tmp") && !name.ends_with('~')
}

/// The `.wasm` a plugin-directory path belongs to: itself, or the file a `.minisig` signs.
pub fn wasm_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let wasm = name.strip_suffix(".minisig").unwrap_or(name);
    is_candidate_name(wasm).then(|| path.with_file_name(wasm))
}
