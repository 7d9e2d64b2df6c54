//! Getting plugin versions into the server while it runs.
//!
//! The [`Deployer`] owns the version registry side of the store. At start ([`Deployer::boot`]) it brings
//! each plugin back on the version the registry says was active (never below the floor), and deploys the
//! newest file of a plugin seen for the first time. While running, the [`watch`] task hands it every new
//! or changed `.wasm` once the file has settled and its signature is there; the [`pipeline`] checks it off
//! the game threads; a file that passes becomes the game's active version, and every room moves to it at
//! its next tick boundary. Every outcome is an audit entry. A room that cannot take the new version
//! reports it, and the version is marked bad and rolled back everywhere it went.

pub mod fleet;
pub mod pipeline;
mod rollout;
pub mod sign;
pub mod stats;
pub mod switches;
pub mod watch;

use rollout::Rollout;
pub use rollout::{OperatorError, Phase, previous_stable};

use crate::config::{Config, DeployConfig, PluginConfig, RolloutConfig, Strategy};
use crate::health::{Counts, Policy};
use crate::room::{Canary, Rooms, Serving, SwapFailure};
use crate::runtime::{CacheOutcome, Plugin, Runtime};
use crate::storage::{AuditWrite, Expect, Store, Transition, VersionRecord, VersionState};
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
        /// Why, as a metric label: `operator`, `swap_failed`, or the health rule broken
        /// ([`Breach::kind`](crate::health::Breach::kind)).
        cause: &'static str,
    },
}

/// A file handed to the deployer, with when its first event was seen.
#[derive(Debug)]
pub struct Candidate {
    /// The `.wasm` file (for a pushed artifact, its name only).
    pub path: PathBuf,
    /// When the watcher first saw it (the start of "file event to live").
    pub seen_at: Instant,
    /// A version pushed to the fleet (`warden push --fleet`): its bytes and signature come from here,
    /// checked as a file's are, instead of from `path`.
    pub pushed: Option<crate::storage::fleet_deploy::Artifact>,
}

impl Candidate {
    /// The file at `path`, seen at `seen_at`.
    pub fn file(path: PathBuf, seen_at: Instant) -> Candidate {
        Candidate { path, seen_at, pushed: None }
    }
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
    counts: stats::Counter,
    /// Held while a switch changes ([`switches`]).
    switching: tokio::sync::Mutex<()>,
    /// Per plugin, the features the store holds a switch for.
    stored_features: Mutex<HashMap<String, std::collections::BTreeSet<String>>>,
    /// Held from a deploy's or a rollback's registry write until rooms and rollouts follow it, and by
    /// the operator's rollback, promote and pause: an operator acting on what `warden status` (the
    /// registry) shows never meets the rollout state of before that write, and in a fleet this host's
    /// reconcile (which takes it too) never finds the registry ahead of its own rooms.
    operating: tokio::sync::Mutex<()>,
    /// This host's place in a fleet ([`fleet`]), if it is in one.
    fleet: std::sync::OnceLock<fleet::FleetLink>,
}

/// What `warden status` shows.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// Every loaded plugin.
    pub plugins: Vec<PluginStatus>,
    /// The last rollbacks, newest first.
    pub rollbacks: Vec<crate::storage::AuditEntry>,
    /// The log filter (filled in by the admin endpoint).
    #[serde(default)]
    pub log: Option<crate::logs::LogStatus>,
    /// The fleet, if this host is in one: then each version's rooms and window are summed across its
    /// live hosts.
    #[serde(default)]
    pub fleet: Option<fleet::FleetStatus>,
}

/// One plugin in [`Status`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PluginStatus {
    /// Name.
    pub name: String,
    /// Its versions in the registry, newest first.
    pub versions: Vec<VersionStatus>,
    /// Its runtime switches.
    #[serde(default)]
    pub switches: Vec<switches::SwitchStatus>,
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
            counts: stats::Counter::default(),
            switching: tokio::sync::Mutex::new(()),
            stored_features: Mutex::new(HashMap::new()),
            operating: tokio::sync::Mutex::new(()),
            fleet: std::sync::OnceLock::new(),
        })
    }

    /// The store it records to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Counts of every deploy outcome so far.
    pub fn counts(&self) -> stats::DeployCounts {
        self.counts.get()
    }

    /// Counts an outcome and tells the subscribers.
    fn emit(&self, event: DeployEvent) {
        self.counts.count(&event);
        let _ = self.events.send(event);
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
            // The version serving every room (active, or on probation), and a canary on trial, if any.
            let newest = |states: &[VersionState]| {
                registered.iter().filter(|r| states.contains(&r.state)).filter_map(|r| semver::Version::parse(&r.version).ok()).max()
            };
            let active = newest(&[VersionState::Active, VersionState::Probation]);
            let stored = self.store.rollout(&name).await?;
            if let Some(version) = &active {
                match files.iter().find(|(v, _)| v == version) {
                    Some((_, path)) => match self.run(&Candidate::file(path.clone(), Instant::now()), true).await {
                        Ok(_) => {
                            self.resume_after_restart(&name, version, stored.as_ref(), newest(&[VersionState::Canary])).await;
                            continue;
                        }
                        Err(e) => tracing::error!(plugin = %name, %version, "the active version failed its checks at start: {e}"),
                    },
                    // In a fleet, another host's file: fetched from the fleet's artifacts and checked here.
                    None if self.fleet().is_some() => match self.reconcile(&name).await {
                        Ok(()) if self.rooms.game(&name).is_some() => continue,
                        Ok(()) => {
                            tracing::error!(plugin = %name, %version, "the fleet's artifacts have no file of the registry's active version")
                        }
                        Err(e) => {
                            tracing::error!(plugin = %name, %version, "the registry's active version cannot be served from the fleet's artifacts: {e:#}")
                        }
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
                if self.run(&Candidate::file(path.clone(), Instant::now()), false).await.is_ok() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// After a restart brought `name` back on `serving`: resumes the rollout that was in progress, a
    /// probation of `serving` or a canary of `canary`, with the time its phase had left.
    async fn resume_after_restart(
        &self,
        name: &str,
        serving: &semver::Version,
        stored: Option<&crate::storage::RolloutRecord>,
        canary: Option<semver::Version>,
    ) {
        let Some(stored) = stored else { return };
        let serving = serving.to_string();
        match (stored.phase.as_str(), canary) {
            ("probation", _) if stored.version == serving => {
                if let Some(plugin) = self.loaded(name, &serving) {
                    self.resume_rollout(&plugin, stored);
                }
            }
            ("canary", Some(canary)) if stored.version == canary.to_string() => match self.load_version(name, &stored.version).await {
                Ok(plugin) => self.resume_rollout(&plugin, stored),
                Err(e) => tracing::error!(plugin = name, version = %stored.version, "the canary in progress cannot be resumed: {e:#}"),
            },
            _ => {
                tracing::warn!(plugin = name, version = %stored.version, phase = %stored.phase, "the stored rollout does not match the registry; not resumed")
            }
        }
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
                self.emit(DeployEvent::Deployed { plugin: m.name.clone(), version: m.version.clone(), timings: timings.clone() });
            }
            Err((claimed, rejection)) => {
                let message = format!("{file}: {rejection}; fix: {}", rejection.fix());
                tracing::error!(kind = rejection.kind(), "rejected {message} (the serving version is untouched)");
                let (plugin, version) = claimed.clone().unzip();
                self.audit("deploy", "reject", plugin.as_deref(), version.as_deref(), &format!("{}: {message}", rejection.kind())).await;
                self.emit(DeployEvent::Rejected { file: candidate.path.clone(), kind: rejection.kind(), message });
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
        let pushed = candidate.pushed.clone();
        let checked = tokio::task::spawn_blocking(move || match pushed {
            Some(artifact) => {
                let sha256 = artifact.sha256.clone();
                fleet::verify_artifact(artifact, &sha256, (cap, &trusted, dev))
            }
            None => pipeline::read_and_verify(&path, cap, &trusted, dev),
        })
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
        // A restart brings back the version the registry has serving every room, which can be below the
        // floor: after a rollback (active), or with a canary of a newer version running over it (active or
        // on probation).
        let was_active = restart
            && registered.iter().any(|r| r.version == m.version && matches!(r.state, VersionState::Active | VersionState::Probation));
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
        let (compiled, checked) = tokio::task::spawn_blocking({
            let current = current.clone();
            move || (pipeline::compile_and_smoke(&rt, &checked.bytes, current.as_deref(), &config), checked)
        })
        .await
        .expect("compiling does not panic");
        let (plugin, smoke) = compiled.map_err(fail)?;
        let compile = started.elapsed() - smoke;
        let (cache, sha256) = (plugin.cache_outcome(), plugin.sha256().to_string());
        let plugin = Arc::new(plugin);
        // The rest of a fleet fetches it from there once the registry names it.
        self.share_artifact(&checked, &sha256).await.map_err(store_err)?;

        // Record, then roll out: the registry first (one transaction), then the rooms.
        let rollout = self.rollout_config(&m.name);
        let canary_rooms = match (&current, rollout.strategy) {
            (Some(_), Strategy::Canary) if !restart => self.pick_canary(&m.name, rollout.canary_share, self.fleet_rooms(&m.name).await),
            _ => Vec::new(),
        };
        let game = self.rooms.game(&m.name);
        let first = restart || game.is_none();
        let previous_rollout = self.rollouts.lock().unwrap().get(&m.name).cloned();
        let transition = if first {
            // A restart, or the first version: it serves every room, in the state the registry has.
            let state = match registered.iter().find(|r| r.version == m.version).map(|r| r.state) {
                Some(VersionState::Probation) => VersionState::Probation,
                _ => VersionState::Active,
            };
            let mut t = Transition { floor: Some((m.name.clone(), version.clone())), ..Transition::default() };
            t.versions.push(rollout::state_of(&plugin, state));
            if !restart {
                t.rollout = Some(None);
            }
            t
        } else {
            self.deploy_transition(&registered, current.as_ref(), &plugin, previous_rollout.as_ref(), &canary_rooms)
        };
        // A game added now starts with its stored switches (read before anything is written).
        let switches = if game.is_none() { self.starting_switches(&m.name).await.map_err(store_err)? } else { Default::default() };
        let signer = checked.signed.as_ref().map_or_else(|| "UNSIGNED (dev mode)".to_string(), |s| format!("signed by key {}", s.key_id));
        let from = current.as_ref().map_or_else(|| "first version".to_string(), |p| format!("replacing {}", p.manifest().version));
        let how = match (&current, canary_rooms.len()) {
            (None, _) => String::new(),
            _ if restart => String::new(),
            (Some(_), 0) if rollout.strategy == Strategy::Canary => {
                format!("; no room has players, so no canary: all rooms, then {} ms of probation", rollout.probation_ms)
            }
            (Some(_), 0) => format!("; all rooms, then {} ms of probation", rollout.probation_ms),
            (Some(_), n) => format!(
                "; canary in {n} room(s) with players for {} ms, then all rooms, then {} ms of probation",
                rollout.canary_ms, rollout.probation_ms
            ),
        };
        let mut transition = transition;
        transition.audit = Some(AuditWrite {
            actor: "deploy".into(),
            action: if restart { "restart" } else { "deploy" }.into(),
            version: Some(m.version.clone()),
            detail: format!("{file_name} sha256={sha256} {signer}, {from}{how}"),
        });
        if !restart {
            // A new version is registered once: in a fleet, two hosts may be handed the same file.
            transition.expect = Some(Expect { version: m.version.clone(), states: Vec::new() });
        }
        let operating = self.operating.lock().await;
        if !self.store.transition(&m.name, &transition).await.map_err(store_err)? {
            drop(operating);
            tracing::info!(plugin = %m.name, version = %m.version, "another host of the fleet registered this version first: following the registry");
            self.served.lock().unwrap().entry(m.name.clone()).or_default().push(plugin.clone());
            self.reconcile(&m.name).await.map_err(store_err)?;
            self.report_ready(&plugin).await;
            let timings = DeployTimings { event_to_verified, compile, cache, smoke, event_to_active: candidate.seen_at.elapsed() };
            return Ok((plugin, timings));
        }
        let phase = match &game {
            Some(game) if !first => {
                game.health(&m.version).clear_window();
                let stored = transition.rollout.clone().flatten();
                let phase = match stored.as_ref().map(|r| r.phase.as_str()) {
                    Some("canary") => Phase::Canary,
                    Some(_) => Phase::Probation,
                    None => Phase::Stable,
                };
                if phase == Phase::Canary {
                    let rooms = canary_rooms.iter().cloned().collect();
                    game.update(|s| Serving { canary: Some(Canary { plugin: plugin.clone(), rooms }), ..s.clone() });
                } else {
                    game.update(|s| Serving { active: plugin.clone(), canary: None, settled: phase == Phase::Stable, bad: s.bad.clone() });
                }
                let previous_p99 = stored.and_then(|r| r.previous_p99_us);
                self.rollouts.lock().unwrap().insert(m.name.clone(), Rollout::new(plugin.clone(), phase, previous_p99));
                phase
            }
            _ => {
                self.rooms.activate(plugin.clone(), init_config, switches, Duration::from_millis(self.policy(&m.name).window_ms));
                self.rollouts.lock().unwrap().insert(m.name.clone(), Rollout::new(plugin.clone(), Phase::Stable, None));
                Phase::Stable
            }
        };
        tracing::debug!(plugin = %m.name, version = %m.version, ?phase, canary_rooms = canary_rooms.len(), "rolling out");
        self.served.lock().unwrap().entry(m.name.clone()).or_default().push(plugin.clone());
        drop(operating);
        let timings = DeployTimings { event_to_verified, compile, cache, smoke, event_to_active: candidate.seen_at.elapsed() };
        self.report_ready(&plugin).await;
        Ok((plugin, timings))
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

    fn rollout_config(&self, plugin: &str) -> RolloutConfig {
        self.plugins.get(plugin).and_then(|p| p.rollout.clone()).unwrap_or_else(|| self.rollout.clone())
    }

    /// The health policy of `plugin`.
    pub fn policy(&self, plugin: &str) -> Policy {
        self.plugins.get(plugin).and_then(|p| p.health.clone()).unwrap_or_else(|| self.health.clone())
    }

    /// Every plugin's versions, rollout phase, health and rooms, and the last rollbacks.
    pub async fn status(&self) -> Result<Status> {
        let sums = self.fleet_sums().await?;
        let mut plugins = Vec::new();
        for name in self.rooms.games() {
            let Some(game) = self.rooms.game(&name) else { continue };
            let rollout = self.rollouts.lock().unwrap().get(&name).cloned();
            let rooms = self.rooms.versions(&name);
            let mut versions = Vec::new();
            for record in self.store.versions(&name).await? {
                let h = game.health(&record.version);
                let (mut window, total) = (h.window(), h.total());
                let mut rooms = rooms.get(&record.version).copied().unwrap_or(0);
                if let Some(sums) = &sums {
                    let sum = sums.get(&(name.clone(), record.version.clone())).cloned().unwrap_or_default();
                    (window, rooms) = (sum.counts, sum.rooms as usize);
                }
                let phase = rollout.as_ref().filter(|r| r.version.manifest().version == record.version).map(|r| r.phase);
                versions.push(VersionStatus {
                    rooms,
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
            let switches = self.switch_statuses(&name, &game.switches());
            plugins.push(PluginStatus { name, versions, switches });
        }
        let rollbacks = self.store.audit_log(200).await?.into_iter().filter(|e| e.action == "rollback").take(5).collect();
        Ok(Status { plugins, rollbacks, log: None, fleet: self.fleet_status().await? })
    }

    /// Watches the plugin directory (unless `deploy.watch` is off) and deploys what settles in it, and
    /// rolls back versions rooms refuse, until `stop`. Files present now are not deployed (see
    /// [`Deployer::boot`]).
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> Result<tokio::task::JoinHandle<()>> {
        let (tx, mut candidates) = mpsc::channel(64);
        let retry_tx = tx.clone();
        // A dev server that trusts no key loads every file unsigned: waiting for a signature would only
        // delay it (`warden dev`'s save-to-live).
        let mut watching = self.deploy.clone();
        if self.dev && self.trusted.is_empty() {
            watching.signature_wait_ms = 0;
        }
        let watcher = if self.deploy.watch { Some(watch::Watcher::start(&self.dir, &watching, tx, stop.clone())?) } else { None };
        // Files the store failed to record (a locked or unreachable database): tried again by themselves,
        // after 1 s, doubling up to 30 s, for as long as the file is there.
        let mut attempts: HashMap<PathBuf, u32> = HashMap::new();
        let mut failures = self.rooms.take_swap_failures();
        Ok(tokio::spawn(async move {
            let _watcher = watcher;
            let mut health = tokio::time::interval(Duration::from_millis(100));
            health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => {
                        self.save_rollouts().await;
                        break;
                    }
                    _ = health.tick() => self.evaluate().await,
                    Some(failure) = async { match failures.as_mut() { Some(f) => f.recv().await, None => std::future::pending().await } } => {
                        self.swap_failed(failure).await;
                    }
                    Some(candidate) = candidates.recv() => {
                        match self.run(&candidate, false).await {
                            Err(Rejection::Store(_)) if candidate.path.exists() => {
                                let n = attempts.entry(candidate.path.clone()).or_insert(0);
                                let wait = Duration::from_secs(1 << (*n).min(5)).min(Duration::from_secs(30));
                                *n += 1;
                                tracing::warn!(file = %candidate.path.display(), ?wait, attempt = *n, "the store failed to record the deploy; trying it again");
                                let (tx, stop) = (retry_tx.clone(), stop.clone());
                                tokio::spawn(async move {
                                    tokio::select! {
                                        _ = stop.cancelled() => {}
                                        _ = tokio::time::sleep(wait) => {
                                            let _ = tx.send(Candidate::file(candidate.path, Instant::now())).await;
                                        }
                                    }
                                });
                            }
                            _ => {
                                attempts.remove(&candidate.path);
                            }
                        }
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
