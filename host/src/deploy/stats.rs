//! Deploy counts for `/metrics`: versions deployed, files rejected (by kind), rollouts advanced (by the
//! phase reached) and rollbacks (by cause). Counted as each event is sent.

use super::DeployEvent;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How long a scrape waits for the store's version list (the `previous` role) before going without it.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Deploy counts so far.
#[derive(Clone, Debug, Default)]
pub struct DeployCounts {
    /// Versions made active (a rollout started), per plugin.
    pub deployed: BTreeMap<String, u64>,
    /// Files refused, per rejection kind (the file may not name its plugin).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Rollouts moved on, per plugin and the phase reached.
    pub promoted: BTreeMap<(String, &'static str), u64>,
    /// Rollbacks, per plugin and cause (`operator`, `swap_failed`, or the health rule broken).
    pub rolled_back: BTreeMap<(String, &'static str), u64>,
}

/// Counts events as they happen.
#[derive(Default)]
pub(super) struct Counter(Mutex<DeployCounts>);

impl Counter {
    pub(super) fn count(&self, event: &DeployEvent) {
        let mut c = self.0.lock().unwrap();
        match event {
            DeployEvent::Deployed { plugin, .. } => *c.deployed.entry(plugin.clone()).or_default() += 1,
            DeployEvent::Rejected { kind, .. } => *c.rejected.entry(kind).or_default() += 1,
            DeployEvent::Advanced { plugin, phase, .. } => *c.promoted.entry((plugin.clone(), phase.name())).or_default() += 1,
            DeployEvent::RolledBack { plugin, cause, .. } => *c.rolled_back.entry((plugin.clone(), cause)).or_default() += 1,
        }
    }

    pub(super) fn get(&self) -> DeployCounts {
        self.0.lock().unwrap().clone()
    }
}

/// Which versions serve a plugin, in which role, under which policy (for `/metrics`).
#[derive(Clone, Debug)]
pub struct PluginRoles {
    /// The plugin.
    pub plugin: String,
    /// (version, role, phase): role `active`, `canary` or `previous` (the rollback target); phase
    /// `canary`, `probation` or `stable` (a previous version is `stable`).
    pub versions: Vec<(String, &'static str, &'static str)>,
    /// Its health policy.
    pub policy: crate::health::Policy,
}

impl super::Deployer {
    /// The versions serving each plugin and their roles; the `previous` role only if the store answers
    /// within [`STORE_WAIT`].
    pub async fn roles(&self) -> anyhow::Result<Vec<PluginRoles>> {
        let mut out = Vec::new();
        for plugin in self.rooms.games() {
            let Some(game) = self.rooms.game(&plugin) else { continue };
            let serving = game.serving();
            let trial = self.rollouts.lock().unwrap().get(&plugin).filter(|r| r.phase != super::Phase::Stable).map(|r| r.phase);
            let active = serving.active.manifest().version.clone();
            let mut versions = Vec::new();
            let newest = match &serving.canary {
                Some(c) => {
                    versions.push((active.clone(), "active", "stable"));
                    versions.push((c.plugin.manifest().version.clone(), "canary", "canary"));
                    c.plugin.manifest().version.clone()
                }
                None => {
                    versions.push((active.clone(), "active", trial.map_or("stable", super::Phase::name)));
                    active
                }
            };
            // The previous stable version is read from the store. While the store is away (when an
            // operator most needs to see inside), the scrape goes on without it rather than failing.
            let stored = tokio::time::timeout(STORE_WAIT, self.store.versions(&plugin)).await;
            if let Ok(Ok(stored)) = stored
                && let Some(previous) = super::previous_stable(&stored, &newest)
                && !versions.iter().any(|(v, ..)| *v == previous)
            {
                versions.push((previous, "previous", "stable"));
            }
            out.push(PluginRoles { policy: self.policy(&plugin), plugin, versions });
        }
        Ok(out)
    }
}
