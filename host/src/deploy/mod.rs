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

use crate::config::{Config, DeployConfig, PluginConfig};
use crate::room::{Rooms, SwapFailure};
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
    /// A version failed in a room and was rolled back everywhere.
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
    events: broadcast::Sender<DeployEvent>,
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
                self.audit("reject", plugin.as_deref(), version.as_deref(), &format!("{}: {message}", rejection.kind())).await;
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
        if let Some(floor) = self.store.floor(&m.name).await.map_err(store_err)?
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

        // Record, then swap.
        if let Some(prev) = &current
            && prev.manifest().version != m.version
        {
            let record = VersionRecord {
                plugin: m.name.clone(),
                version: prev.manifest().version.clone(),
                state: VersionState::Stable,
                sha256: prev.sha256().to_string(),
            };
            self.store.set_version(&record).await.map_err(store_err)?;
        }
        let record =
            VersionRecord { plugin: m.name.clone(), version: m.version.clone(), state: VersionState::Active, sha256: sha256.clone() };
        self.store.set_version(&record).await.map_err(store_err)?;
        self.store.raise_floor(&m.name, &version).await.map_err(store_err)?;
        let signer = checked.signed.as_ref().map_or_else(|| "UNSIGNED (dev mode)".to_string(), |s| format!("signed by key {}", s.key_id));
        let from = current.as_ref().map_or_else(|| "first version".to_string(), |p| format!("replacing {}", p.manifest().version));
        let action = if restart { "restart" } else { "deploy" };
        self.audit(action, Some(&m.name), Some(&m.version), &format!("{file_name} sha256={sha256} {signer}, {from}")).await;
        self.rooms.activate(plugin.clone(), init_config, Features::on(&settings.features.iter().map(String::as_str).collect::<Vec<_>>()));
        self.served.lock().unwrap().entry(m.name.clone()).or_default().push(plugin.clone());
        let timings = DeployTimings { event_to_verified, compile, cache, smoke, event_to_active: candidate.seen_at.elapsed() };
        Ok((plugin, timings))
    }

    /// A room could not take a new version: mark it bad and put the previous version back everywhere.
    pub async fn swap_failed(&self, failure: SwapFailure) {
        let Some(game) = self.rooms.game(&failure.game) else { return };
        let bad = game.active();
        if bad.manifest().version != failure.to {
            tracing::debug!(game = %failure.game, room = %failure.room, to = %failure.to, "already rolled back");
            return;
        }
        let previous = {
            let mut served = self.served.lock().unwrap();
            let history = served.entry(failure.game.clone()).or_default();
            let previous = history.iter().rev().find(|p| p.manifest().version == failure.from).cloned();
            if previous.is_some() {
                history.retain(|p| !Arc::ptr_eq(p, &bad));
            }
            previous
        };
        let Some(previous) = previous else {
            tracing::error!(game = %failure.game, "cannot roll back {}: version {} is no longer loaded", failure.to, failure.from);
            return;
        };
        game.set_active(previous.clone());
        let reason = format!("room {} could not take it: {}", failure.room, failure.reason);
        tracing::error!(game = %failure.game, bad = %failure.to, back_to = %failure.from, "rolled back: {reason}");
        for (plugin, state) in [(&bad, VersionState::Bad), (&previous, VersionState::Active)] {
            let m = plugin.manifest();
            let record = VersionRecord { plugin: m.name.clone(), version: m.version.clone(), state, sha256: plugin.sha256().to_string() };
            if let Err(e) = self.store.set_version(&record).await {
                tracing::error!("failed to record the rollback in the registry: {e:#}");
            }
        }
        self.audit("rollback", Some(&failure.game), Some(&failure.to), &format!("{reason}; back on {}", failure.from)).await;
        let _ = self.events.send(DeployEvent::RolledBack { plugin: failure.game, bad: failure.to, to: failure.from, reason });
    }

    async fn audit(&self, action: &str, plugin: Option<&str>, version: Option<&str>, detail: &str) {
        if let Err(e) = self.store.audit("deploy", action, plugin, version, detail).await {
            tracing::error!(action, "failed to write the audit entry ({detail}): {e:#}");
        }
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
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
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
