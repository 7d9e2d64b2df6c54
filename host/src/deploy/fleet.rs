//! One deploy for a fleet of hosts on one PostgreSQL (`docs/fleet.md`, "One deploy for the fleet").
//!
//! The registry (versions, floors, bad marks, the rollout in progress, switches) is shared, so it is the
//! one truth: a host that takes a step writes it there in one transaction, and every other host brings
//! its rooms in line with what the registry says ([`Deployer::reconcile`]). It learns that something
//! changed from the event rows the registry's triggers write; a NOTIFY wakes it, and it reads the rows
//! after the last one it saw, after any reconnect too, and on every heartbeat in case a wake-up was lost.
//!
//! - A file accepted by one host is stored by content hash ([`PgStore::put_artifact`]); the others fetch
//!   it and check its hash against the registry and its signature against their own trusted keys before
//!   they compile it ([`Deployer::fetch_artifact`]). Each reports the version ready (or why not).
//! - One host at a time, the holder of the `rollout` lease, judges versions on trial and moves rollouts
//!   on, on the health windows every host publishes, summed ([`PgStore::fleet_window`]).
//! - A step that several hosts could take at once (two see the same breach) is written with an
//!   expectation ([`crate::storage::Expect`]): one of them takes it, the others find it taken.

use super::{Deployer, Phase, pipeline, rollout::Rollout};
use crate::room::{Canary, Serving};
use crate::runtime::Plugin;
use crate::storage::VersionState;
use crate::storage::fleet_deploy::{Artifact, FleetWindow, HostVersion, Published};
use crate::storage::hosts::HostRecord;
use crate::storage::postgres::PgStore;
use anyhow::{Context as _, Result, anyhow};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The lease role of the host that runs rollouts.
const ROLLOUT: &str = "rollout";

/// How often a host publishes its health windows.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// A host's place in the fleet, as its deployer needs it.
pub struct FleetLink {
    store: PgStore,
    host: String,
    /// Until when this host may act as the rollout's leader (local instant, inside the lease's end by
    /// the database's clock, as the host's own lease).
    leading_until: Mutex<Option<Instant>>,
}

/// Lease timings the follower keeps the rollout lease with (the host lease's).
#[derive(Clone, Copy, Debug)]
pub struct LeaderTimes {
    /// How often it is renewed (and events are read when no wake-up came).
    pub heartbeat: Duration,
    /// How long a renewal lasts, by the database's clock.
    pub lease: Duration,
    /// How much earlier the host stops acting as leader.
    pub margin: Duration,
}

/// The fleet, as `warden status` and the operator page show it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FleetStatus {
    /// The host answering.
    pub this_host: String,
    /// The host running rollouts.
    pub leader: Option<String>,
    /// Every host.
    pub hosts: Vec<HostRecord>,
    /// What each host has ready.
    pub versions: Vec<HostVersion>,
}

impl Deployer {
    /// Makes this deployer a member of the fleet on `store` as host `host`: call before
    /// [`Deployer::boot`].
    pub fn join_fleet(&self, store: PgStore, host: String) {
        let _ = self.fleet.set(FleetLink { store, host, leading_until: Mutex::new(None) });
    }

    pub(super) fn fleet(&self) -> Option<&FleetLink> {
        self.fleet.get()
    }

    /// Whether this host judges versions on trial and moves rollouts on: always alone; in a fleet, while
    /// it holds the rollout lease.
    pub fn leads(&self) -> bool {
        match self.fleet() {
            None => true,
            Some(link) => link.leading_until.lock().unwrap().is_some_and(|until| Instant::now() < until),
        }
    }

    /// Stores an accepted file for the rest of the fleet (nothing alone).
    pub(super) async fn share_artifact(&self, checked: &pipeline::CheckedFile, sha256: &str) -> Result<()> {
        let Some(link) = self.fleet() else { return Ok(()) };
        let m = &checked.manifest;
        let artifact = Artifact {
            sha256: sha256.to_string(),
            plugin: m.name.clone(),
            version: m.version.clone(),
            bytes: checked.bytes.clone(),
            signature: checked.signature.clone(),
        };
        link.store.put_artifact(&artifact).await
    }

    /// `plugin` `version` from the fleet's artifacts, checked here as a file from the plugin directory is:
    /// its bytes must hash to what the registry recorded, and its signature must check against this
    /// host's trusted keys. `None` alone, or if the fleet has no such file.
    pub(super) async fn fetch_artifact(&self, plugin: &str, version: &str) -> Result<Option<pipeline::CheckedFile>> {
        let Some(link) = self.fleet() else { return Ok(None) };
        let records = self.store.versions(plugin).await?;
        let Some(record) = records.iter().find(|r| r.version == version) else { return Ok(None) };
        let Some(artifact) = link.store.artifact(&record.sha256).await? else { return Ok(None) };
        let what = format!("{plugin} {version} from the fleet's artifacts");
        verify_artifact(artifact, &record.sha256, (self.deploy.max_plugin_bytes, &self.trusted, self.dev))
            .map(Some)
            .map_err(|r| anyhow!("{what}: {r}; fix: {}", r.fix()))
    }

    /// Records whether this host has `plugin` `version` ready (nothing alone).
    async fn report(&self, plugin: &str, version: &str, sha256: &str, outcome: Result<(), String>) {
        let Some(link) = self.fleet() else { return };
        if let Err(e) =
            link.store.report_version(&link.host, plugin, version, sha256, outcome.as_ref().map(|_| ()).map_err(String::as_str)).await
        {
            tracing::warn!(plugin, version, "{e:#}");
        }
    }

    /// Reports a version this host accepted from its own plugin directory as ready.
    pub(super) async fn report_ready(&self, plugin: &Plugin) {
        let m = plugin.manifest();
        self.report(&m.name, &m.version, plugin.sha256(), Ok(())).await;
    }

    /// Brings `name`'s rooms in line with the registry: the version serving every room, the canary and
    /// its rooms, whether the active version is settled, the versions marked bad, and the rollout in
    /// progress. A version not loaded here is loaded (from the plugin directory or the fleet's
    /// artifacts, verified either way). Nothing is written to the registry, and nothing is audited: the
    /// host that took the step did that.
    pub async fn reconcile(&self, name: &str) -> Result<()> {
        let _operating = self.operating.lock().await;
        let records = self.store.versions(name).await?;
        let stored = self.store.rollout(name).await?;
        let newest = |states: &[VersionState]| {
            records
                .iter()
                .filter(|r| states.contains(&r.state))
                .filter_map(|r| semver::Version::parse(&r.version).ok().map(|v| (v, r.version.clone())))
                .max()
                .map(|(_, v)| v)
        };
        let Some(active) = newest(&[VersionState::Active, VersionState::Probation]) else { return Ok(()) };
        let canary = newest(&[VersionState::Canary])
            .and_then(|v| stored.as_ref().filter(|r| r.phase == "canary" && r.version == v).map(|r| (v, r.canary_rooms.clone())));
        let bad: BTreeSet<String> = records.iter().filter(|r| r.state == VersionState::Bad).map(|r| r.version.clone()).collect();
        let phase = match stored.as_ref().map(|r| r.phase.as_str()) {
            Some("canary") => Phase::Canary,
            Some(_) => Phase::Probation,
            None => Phase::Stable,
        };
        let trial_version = stored.as_ref().map(|r| r.version.clone()).unwrap_or_else(|| active.clone());
        let game = self.rooms.game(name);
        if let Some(game) = &game {
            let s = game.serving();
            let local = self.rollouts.lock().unwrap().get(name).map(|r| (r.version.manifest().version.clone(), r.phase, r.paused));
            let same_serving = s.active.manifest().version == active
                && s.canary.as_ref().map(|c| (c.plugin.manifest().version.clone(), c.rooms.iter().cloned().collect::<BTreeSet<_>>()))
                    == canary.as_ref().map(|(v, rooms)| (v.clone(), rooms.iter().cloned().collect()))
                && s.settled == (phase != Phase::Probation)
                && bad.iter().all(|b| s.bad.contains(b) || !self.has_served(name, b));
            let same_rollout = local == Some((trial_version.clone(), phase, stored.as_ref().is_some_and(|r| r.paused)));
            if same_serving && same_rollout {
                return Ok(());
            }
        }
        let active_plugin = self.load_for_fleet(name, &active).await?;
        let canary_plugin = match &canary {
            Some((v, rooms)) => Some(Canary { plugin: self.load_for_fleet(name, v).await?, rooms: rooms.iter().cloned().collect() }),
            None => None,
        };
        let trial = canary_plugin.as_ref().map(|c| c.plugin.clone()).unwrap_or_else(|| active_plugin.clone());
        if game.is_none() {
            let settings = self.plugins.get(name).cloned().unwrap_or_default();
            let switches = self.starting_switches(name).await?;
            let window = Duration::from_millis(self.policy(name).window_ms);
            self.rooms.activate(active_plugin.clone(), super::init_config(&settings)?, switches, window);
            tracing::info!(plugin = name, version = %active, "serving as the fleet's registry has it");
        }
        let game = self.rooms.game(name).ok_or_else(|| anyhow!("{name} was activated but is not loaded"))?;
        let before = game.serving();
        let was: Vec<String> = std::iter::once(before.active.manifest().version.clone())
            .chain(before.canary.iter().map(|c| c.plugin.manifest().version.clone()))
            .collect();
        game.update(|s| {
            let mut all_bad = s.bad.clone();
            all_bad.extend(bad.iter().filter(|b| !s.bad.contains(b)).cloned());
            Serving { active: active_plugin.clone(), canary: canary_plugin.clone(), settled: phase != Phase::Probation, bad: all_bad }
        });
        for version in was.iter().filter(|v| bad.contains(*v) && !before.bad.contains(v)) {
            tracing::error!(plugin = name, bad = %version, back_to = %active, "rolled back by the fleet (another host marked it bad)");
            self.emit(super::DeployEvent::RolledBack {
                plugin: name.to_string(),
                bad: version.clone(),
                to: active.clone(),
                reason: "marked bad by another host of the fleet".into(),
                cause: "fleet",
            });
        }
        for version in [&active].into_iter().chain(canary.as_ref().map(|(v, _)| v)) {
            if !was.contains(version) {
                tracing::info!(plugin = name, %version, phase = phase.name(), "following the fleet's rollout");
                game.health(version).clear_window();
            }
        }
        self.served.lock().unwrap().entry(name.to_string()).or_default().retain(|p| !bad.contains(&p.manifest().version));
        let mut rollout = Rollout::new(trial, phase, stored.as_ref().and_then(|r| r.previous_p99_us));
        if let Some(stored) = &stored {
            rollout.elapsed_before = stored.elapsed_ms;
            rollout.paused = stored.paused;
        }
        self.rollouts.lock().unwrap().insert(name.to_string(), rollout);
        Ok(())
    }

    /// Whether `version` of `plugin` served here since the start.
    fn has_served(&self, plugin: &str, version: &str) -> bool {
        self.loaded(plugin, version).is_some()
    }

    /// [`Deployer::load_version`], reporting the outcome to the fleet.
    async fn load_for_fleet(&self, plugin: &str, version: &str) -> Result<Arc<Plugin>> {
        let fresh = self.loaded(plugin, version).is_none();
        let loaded = self.load_version(plugin, version).await;
        if fresh {
            let sha = self.store.versions(plugin).await.ok().and_then(|r| r.into_iter().find(|r| r.version == version)).map(|r| r.sha256);
            let outcome = loaded.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"));
            self.report(plugin, version, sha.as_deref().unwrap_or(""), outcome).await;
        }
        loaded
    }

    /// Every plugin the registry or this host has, reconciled.
    async fn reconcile_all(&self) {
        let mut names: BTreeSet<String> = self.rooms.games().into_iter().collect();
        match self.store.plugins().await {
            Ok(stored) => names.extend(stored),
            Err(e) => tracing::warn!("cannot read the registry's plugins: {e:#}"),
        }
        for name in names {
            if let Err(e) = self.reconcile(&name).await {
                tracing::error!(plugin = %name, "cannot follow the fleet's registry (tried again at the next event or heartbeat): {e:#}");
            }
        }
    }

    /// Applies the switches the registry has for `name`.
    async fn reconcile_switches(&self, name: &str) -> Result<()> {
        let Some(game) = self.rooms.game(name) else { return Ok(()) };
        let _one = self.switching.lock().await;
        let switches = self.starting_switches(name).await?;
        if *game.switches() != switches {
            tracing::info!(plugin = name, "switches changed by another host of the fleet");
            game.set_switches(switches);
        }
        Ok(())
    }

    /// Applies the threshold rules the fleet stored, if any.
    async fn reconcile_rules(&self) -> Result<()> {
        let Some(link) = self.fleet() else { return Ok(()) };
        let Some(text) = link.store.fleet_rules().await? else { return Ok(()) };
        let rules: Vec<crate::rules::Rule> = serde_json::from_str(&text).context("the fleet's stored rules do not decode")?;
        let set = crate::rules::RuleSet::new(rules)?;
        if self.rooms.rules().current().rules().ne(set.rules()) {
            let names: Vec<&str> = set.rules().map(|r| r.name.as_str()).collect();
            tracing::info!(rules = ?names, "threshold rules set for the fleet");
            self.rooms.rules().replace(set);
        }
        Ok(())
    }

    /// Stores threshold rules set at runtime for every host of the fleet (nothing alone). True in a fleet.
    pub async fn share_rules(&self, rules: &[crate::rules::Rule], actor: &str) -> Result<bool> {
        let Some(link) = self.fleet() else { return Ok(false) };
        link.store.put_fleet_rules(&serde_json::to_string(rules)?, actor).await?;
        Ok(true)
    }

    /// `version`'s health window to judge it on: this host's alone, or in a fleet the sum over the live
    /// hosts' published windows.
    pub(super) async fn trial_window(&self, game: &crate::room::GameEntry, name: &str, version: &str) -> Result<FleetWindow> {
        match self.fleet() {
            None => Ok(FleetWindow { counts: game.health(version).window(), hosts: 1, rooms: 0 }),
            Some(link) => link.store.fleet_window(name, version).await,
        }
    }

    /// The rooms of `game` the fleet's other hosts run (candidates for a canary; none alone).
    pub(super) async fn fleet_rooms(&self, game: &str) -> Vec<String> {
        let Some(link) = self.fleet() else { return Vec::new() };
        link.store.fleet_rooms(game).await.unwrap_or_else(|e| {
            tracing::warn!(game, "cannot read the fleet's rooms; the canary is picked among this host's: {e:#}");
            Vec::new()
        })
    }

    /// The fleet, for `warden status` (none alone).
    pub async fn fleet_status(&self) -> Result<Option<FleetStatus>> {
        let Some(link) = self.fleet() else { return Ok(None) };
        Ok(Some(FleetStatus {
            this_host: link.host.clone(),
            leader: link.store.leader(ROLLOUT).await?,
            hosts: link.store.hosts().await?,
            versions: link.store.host_versions().await?,
        }))
    }

    /// The fleet's health windows, summed per plugin and version across the live hosts (none alone).
    pub(super) async fn fleet_sums(&self) -> Result<Option<std::collections::HashMap<(String, String), FleetWindow>>> {
        let Some(link) = self.fleet() else { return Ok(None) };
        let mut sums: std::collections::HashMap<(String, String), FleetWindow> = Default::default();
        for (_, plugin, version, rooms, counts) in link.store.fleet_windows().await? {
            let sum = sums.entry((plugin, version)).or_default();
            sum.counts.add(&counts);
            sum.rooms += rooms;
            sum.hosts += 1;
        }
        Ok(Some(sums))
    }

    /// Follows the fleet until `stop`: reads the registry's events (woken by NOTIFY, and on every
    /// heartbeat) and reconciles what they name, keeps or takes the rollout lease while this host serves
    /// under `incarnation()`, and publishes this host's health windows.
    pub async fn follow_fleet(self: Arc<Self>, incarnation: impl Fn() -> Option<i64>, times: LeaderTimes, stop: CancellationToken) {
        let Some(link) = self.fleet() else { return };
        let (wake_tx, mut wake) = mpsc::channel(1);
        let listener = tokio::spawn(listen(link.store.clone(), wake_tx, stop.clone()));
        let _listener = AbortOnDrop(listener);
        // Everything after this sequence number is read below; everything before it, the registry holds.
        let mut seen = loop {
            match link.store.last_event().await {
                Ok(seq) => break seq,
                Err(e) => tracing::warn!("cannot read the fleet's events yet: {e:#}"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(times.heartbeat) => {}
            }
        };
        self.reconcile_all().await;
        if let Err(e) = self.reconcile_rules().await {
            tracing::error!("cannot apply the fleet's threshold rules: {e:#}");
        }
        let mut beat = tokio::time::interval(times.heartbeat);
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        for timer in [&mut beat, &mut publish] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = beat.tick() => {
                    self.keep_leading(link, incarnation(), times).await;
                    // A push made while no host led waits for the next leader.
                    self.take_pushes().await;
                }
                _ = publish.tick() => {
                    self.publish(link, incarnation()).await;
                    continue;
                }
                Some(()) = wake.recv() => {}
            }
            match link.store.events_after(seen).await {
                Ok(events) => {
                    let Some(last) = events.last() else { continue };
                    seen = last.seq;
                    self.apply(&events).await;
                }
                Err(e) => tracing::warn!("cannot read the fleet's events (read again at the next heartbeat): {e:#}"),
            }
        }
    }

    /// Acts on a batch of events: each plugin named once, in order.
    async fn apply(&self, events: &[crate::storage::fleet_deploy::FleetEvent]) {
        let mut registry = BTreeSet::new();
        let mut switches = BTreeSet::new();
        let mut rules = false;
        let mut pushed = false;
        for e in events {
            match (e.kind.as_str(), &e.plugin) {
                ("push", _) => pushed = true,
                ("versions" | "rollout", Some(p)) => {
                    registry.insert(p.clone());
                }
                ("switches", Some(p)) => {
                    switches.insert(p.clone());
                }
                ("rules", _) => rules = true,
                _ => {}
            }
        }
        for name in registry {
            if let Err(e) = self.reconcile(&name).await {
                tracing::error!(plugin = %name, "cannot follow the fleet's registry (tried again at the next event or heartbeat): {e:#}");
            }
        }
        for name in switches {
            if let Err(e) = self.reconcile_switches(&name).await {
                tracing::error!(plugin = %name, "cannot apply the fleet's switches: {e:#}");
            }
        }
        if rules && let Err(e) = self.reconcile_rules().await {
            tracing::error!("cannot apply the fleet's threshold rules: {e:#}");
        }
        if pushed {
            self.take_pushes().await;
        }
    }

    /// The rollout's leader deploys what was pushed to the fleet (`warden push --fleet`), each through
    /// the checks a file in its plugin directory goes through, and records the outcome for the pusher.
    async fn take_pushes(&self) {
        let Some(link) = self.fleet() else { return };
        if !self.leads() {
            return;
        }
        let pending = match link.store.pending_pushes().await {
            Ok(p) => p,
            Err(e) => return tracing::warn!("{e:#}"),
        };
        for artifact in pending {
            let sha256 = artifact.sha256.clone();
            let path = std::path::PathBuf::from(format!("{}-{}.wasm", artifact.plugin, artifact.version));
            tracing::info!(plugin = %artifact.plugin, version = %artifact.version, %sha256, "deploying a version pushed to the fleet");
            let candidate = super::Candidate { path, seen_at: std::time::Instant::now(), pushed: Some(artifact) };
            let outcome = match self.run(&candidate, false).await {
                Ok(_) => Ok(()),
                Err(r) => Err(format!("{r}; fix: {}", r.fix())),
            };
            if let Err(e) = link.store.finish_push(&sha256, outcome.as_ref().map(|_| ()).map_err(String::as_str)).await {
                tracing::warn!("{e:#}");
            }
        }
    }

    /// Takes or keeps the rollout lease while serving; lets it go otherwise.
    async fn keep_leading(&self, link: &FleetLink, incarnation: Option<i64>, times: LeaderTimes) {
        let Some(incarnation) = incarnation else {
            *link.leading_until.lock().unwrap() = None;
            return;
        };
        let sent = Instant::now();
        let was = self.leads();
        match link.store.lead(ROLLOUT, &link.host, incarnation, times.lease).await {
            Ok(true) => {
                *link.leading_until.lock().unwrap() = Some(sent + times.lease - times.margin);
                if !was {
                    tracing::info!(host = %link.host, "this host runs the fleet's rollouts now");
                    // Phases resume from what the registry stored.
                    self.reconcile_all().await;
                }
            }
            Ok(false) => *link.leading_until.lock().unwrap() = None,
            // Leads on until its deadline, which a failed renewal does not move.
            Err(e) => tracing::warn!("cannot renew the rollout lease: {e:#}"),
        }
    }

    /// Publishes this host's health window of every version it runs or that has calls in its window (an
    /// idle host writes nothing).
    async fn publish(&self, link: &FleetLink, incarnation: Option<i64>) {
        let Some(incarnation) = incarnation else { return };
        let mut windows = Vec::new();
        for name in self.rooms.games() {
            let Some(game) = self.rooms.game(&name) else { continue };
            let rooms = self.rooms.versions(&name);
            for (version, health) in game.healths() {
                let counts = health.window();
                let latency = counts.latency;
                let n = rooms.get(&version).copied().unwrap_or(0) as i64;
                // A version with no rooms and nothing in its window adds nothing to any sum.
                if n > 0 || !counts.is_empty() {
                    windows.push((name.clone(), version, n, Published { counts, latency }));
                }
            }
        }
        if windows.is_empty() {
            return;
        }
        if let Err(e) = link.store.publish_health(&link.host, incarnation, &windows).await {
            tracing::warn!("{e:#}");
        }
    }
}

/// Checks a file from the fleet's artifacts: it must hash to `sha256` (what the registry recorded, or
/// the key it was pushed under), then pass the checks a file from the plugin directory passes (cap,
/// signature, names).
pub fn verify_artifact(
    artifact: Artifact,
    sha256: &str,
    (cap, trusted, dev): (u64, &[super::sign::TrustedKey], bool),
) -> Result<pipeline::CheckedFile, pipeline::Rejection> {
    let actual = hex::encode(Sha256::digest(&artifact.bytes));
    if actual != sha256 || artifact.sha256 != sha256 {
        return Err(pipeline::Rejection::Unreadable(format!(
            "the fleet's copy of {} {} hashes to {actual}, not to the {sha256} it was stored under; refused",
            artifact.plugin, artifact.version
        )));
    }
    let file_name = format!("{}-{}.wasm", artifact.plugin, artifact.version);
    pipeline::verify(&file_name, artifact.bytes, artifact.signature, (cap, trusted, dev), "the fleet's copy has no signature")
}

/// Wakes `wake` on every NOTIFY of the registry's event channel and after every (re)connect, until `stop`.
async fn listen(store: PgStore, wake: mpsc::Sender<()>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.listen_events().await {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                // What was sent while no listener was connected is in the rows: read them now.
                let _ = wake.try_send(());
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        got = listener.try_recv() => match got {
                            Ok(Some(_)) => { let _ = wake.try_send(()); }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!("the fleet's event listener failed: {e}");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot listen to the fleet's events (reconnecting): {e:#}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::sign::{self, TrustedKey};

    fn artifact(bytes: &[u8], signature: Option<String>) -> Artifact {
        let sha256 = hex::encode(Sha256::digest(bytes));
        Artifact { sha256, plugin: "arena".into(), version: "1.0.0".into(), bytes: bytes.to_vec(), signature }
    }

    #[test]
    fn a_fleet_artifact_is_checked_by_hash_and_signature_before_anything_else() {
        let (secret, _, public) = sign::keygen().unwrap();
        let key = sign::parse_secret_key(&secret).unwrap();
        let trusted = [TrustedKey::parse(&public).unwrap()];
        let bytes = b"not really a component".to_vec();
        let signed = sign::sign(&bytes, &key, "arena", "1.0.0").unwrap();
        let good = artifact(&bytes, Some(signed.clone()));

        // Bytes changed in the database: the hash the registry recorded does not match.
        let mut tampered = good.clone();
        tampered.bytes[0] ^= 1;
        let err = verify_artifact(tampered, &good.sha256, (1 << 20, &trusted, false)).err().unwrap().to_string();
        assert!(err.contains("hashes to") && err.contains(&good.sha256) && err.contains("refused"), "{err}");

        // A signature by a key this host does not trust.
        let (other, _, _) = sign::keygen().unwrap();
        let forged = sign::sign(&bytes, &sign::parse_secret_key(&other).unwrap(), "arena", "1.0.0").unwrap();
        let err = verify_artifact(artifact(&bytes, Some(forged)), &good.sha256, (1 << 20, &trusted, false)).err().unwrap();
        assert_eq!(err.kind(), "unknown-key", "{err}");

        // No signature, outside dev mode.
        let err = verify_artifact(artifact(&bytes, None), &good.sha256, (1 << 20, &trusted, false)).err().unwrap().to_string();
        assert!(err.contains("not signed"), "{err}");

        // Hash and signature check; what is left is what any file meets next (here: it is no component).
        let err = verify_artifact(good.clone(), &good.sha256, (1 << 20, &trusted, false)).err().unwrap().to_string();
        assert!(!err.contains("hashes to") && !err.contains("key") && !err.contains("not signed"), "{err}");
    }
}
