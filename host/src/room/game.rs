//! A loaded game: which version each of its rooms should run ([`Serving`], with the [`Canary`] on trial),
//! the health counts of its versions, and its switches.

use super::Switches;
use crate::health::VersionHealth;
use crate::runtime::Plugin;
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Which version each room of a game should run.
#[derive(Clone)]
pub struct Serving {
    /// New rooms, and every room outside the canary, run this.
    pub active: Arc<Plugin>,
    /// A new version on trial in a few rooms.
    pub canary: Option<Canary>,
    /// Whether `active` is past probation: only then do rooms checkpoint on their normal cadence
    /// (until then they keep the journal since the checkpoint taken before the swap, for a rollback).
    pub settled: bool,
    /// Versions rolled back: a room still on one rebuilds its state in its target version from its
    /// checkpoint and journal instead of carrying the bad version's state over.
    pub bad: Vec<String>,
}

/// A version on trial in some rooms.
#[derive(Clone)]
pub struct Canary {
    /// The version.
    pub plugin: Arc<Plugin>,
    /// The room ids that run it.
    pub rooms: HashSet<String>,
}

impl Serving {
    /// The version room `room` should run.
    pub fn target(&self, room: &str) -> &Arc<Plugin> {
        match &self.canary {
            Some(c) if c.rooms.contains(room) => &c.plugin,
            _ => &self.active,
        }
    }

    /// Whether `plugin` is past probation (rooms on it checkpoint on their normal cadence).
    pub fn is_settled(&self, plugin: &Arc<Plugin>) -> bool {
        self.settled && Arc::ptr_eq(&self.active, plugin)
    }

    /// Whether `version` was rolled back.
    pub fn is_bad(&self, version: &str) -> bool {
        self.bad.iter().any(|b| b == version)
    }
}

/// A loaded game: the versions serving it, their health, and the settings its rooms start with.
///
/// What serves is an [`ArcSwap`] of [`Serving`]: new rooms take its active version when they start, and
/// every live room follows a change at its next tick boundary (`snapshot` on the old instance, `restore`
/// on the new; or, leaving a bad version, a replay of its journal into the target).
pub struct GameEntry {
    pub(super) serving: ArcSwap<Serving>,
    pub(super) changed: watch::Sender<u64>,
    health: Mutex<HashMap<String, Arc<VersionHealth>>>,
    window: std::time::Duration,
    /// Configuration for `init` (MessagePack map; empty for none).
    pub config: Vec<u8>,
    /// Its runtime switches; rooms follow a change at their next tick ([`super::switches`]).
    pub(super) switches: ArcSwap<Switches>,
}

impl GameEntry {
    /// A game served by `plugin` (stable), with health windows of the default policy.
    pub fn new(plugin: Arc<Plugin>, config: Vec<u8>, switches: Switches) -> Self {
        Self::with_window(plugin, config, switches, std::time::Duration::from_millis(crate::health::Policy::default().window_ms))
    }

    /// A game served by `plugin` (stable), with health windows of `window`.
    pub fn with_window(plugin: Arc<Plugin>, config: Vec<u8>, switches: Switches, window: std::time::Duration) -> Self {
        GameEntry {
            serving: ArcSwap::new(Arc::new(Serving { active: plugin, canary: None, settled: true, bad: Vec::new() })),
            changed: watch::Sender::new(0),
            health: Mutex::new(HashMap::new()),
            window,
            config,
            switches: ArcSwap::from_pointee(switches),
        }
    }

    /// Its switches now.
    pub fn switches(&self) -> Arc<Switches> {
        self.switches.load_full()
    }

    /// Replaces its switches: new joins see them at once, rooms at their next tick.
    pub fn set_switches(&self, switches: Switches) {
        self.switches.store(Arc::new(switches));
    }

    /// The version serving new rooms now.
    pub fn active(&self) -> Arc<Plugin> {
        self.serving.load().active.clone()
    }

    /// What serves now.
    pub fn serving(&self) -> Arc<Serving> {
        self.serving.load_full()
    }

    /// Makes `plugin` the active, stable version of every room (bad marks are kept).
    pub fn set_active(&self, plugin: Arc<Plugin>) {
        self.update(|s| Serving { active: plugin, canary: None, settled: true, bad: s.bad.clone() });
    }

    /// Changes what serves; live rooms follow at their next tick boundary.
    pub fn update(&self, f: impl FnOnce(&Serving) -> Serving) {
        let next = f(&self.serving.load());
        self.serving.store(Arc::new(next));
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Every version with health counts (those that ran since the server started), by name.
    pub fn healths(&self) -> Vec<(String, Arc<VersionHealth>)> {
        let mut all: Vec<_> = self.health.lock().unwrap().iter().map(|(v, h)| (v.clone(), h.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The health counts of `version`.
    pub fn health(&self, version: &str) -> Arc<VersionHealth> {
        self.health.lock().unwrap().entry(version.to_string()).or_insert_with(|| Arc::new(VersionHealth::new(self.window))).clone()
    }
}
