//! The operator's runtime switches (`warden switch`): a plugin feature on or off in every room of a game
//! at its next tick, or the game closed to new joins. `warden.toml` gives each game's defaults
//! (`[plugins.NAME] features`; joins open); a change is stored with its audit entry in one transaction
//! and overrides the default from then on, across restarts.

use super::Deployer;
use crate::room::{Switch, Switches};
use anyhow::{Context as _, Result, anyhow};
use std::collections::BTreeSet;

/// One switch of a plugin, in `warden status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SwitchStatus {
    /// `feature:NAME` or `joins`.
    pub switch: String,
    /// Whether it is on now.
    pub on: bool,
    /// What `warden.toml` says.
    pub default: bool,
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

impl Deployer {
    /// `warden.toml`'s switches for `plugin`.
    fn default_switches(&self, plugin: &str) -> Switches {
        Switches::with_features(&self.plugins.get(plugin).map(|p| p.features.clone()).unwrap_or_default())
    }

    /// The switches `plugin` starts with: `warden.toml`'s, overridden by what the operator stored.
    pub(super) async fn starting_switches(&self, plugin: &str) -> Result<Switches> {
        let mut switches = self.default_switches(plugin);
        for (key, on) in self.store.switches(plugin).await.context("failed to read the stored switches")? {
            match Switch::from_key(&key) {
                Some(switch) => {
                    self.remember_switch(plugin, &switch);
                    switches = switches.set(&switch, on);
                }
                None => tracing::warn!(plugin, key, "ignoring a stored switch this version of warden does not know"),
            }
        }
        Ok(switches)
    }

    /// Sets `switch` of `plugin` to `on`: stored and audited (actor `actor`), then live. New joins see
    /// it at once, rooms at their next tick. Returns what it did, in words.
    pub async fn switch(&self, plugin: &str, switch: &Switch, on: bool, actor: &str) -> Result<String> {
        if let Switch::Feature(name) = switch
            && !crate::room::switches::valid_feature(name)
        {
            return Err(anyhow!("{name:?} cannot name a feature: use 1 to 64 ASCII letters, digits and -_.:"));
        }
        // One change at a time: two operators switching at once are stored and applied in one order.
        let _one = self.switching.lock().await;
        let game = self
            .rooms
            .game(plugin)
            .ok_or_else(|| anyhow!("no plugin named {plugin:?} is loaded (loaded: {})", self.rooms.games().join(", ")))?;
        let before = game.switches();
        let was = before.get(switch);
        if was == on {
            return Ok(format!("{plugin}: {switch} is already {}; nothing changed", on_off(on)));
        }
        let detail = format!("{switch}: {} -> {}", on_off(was), on_off(on));
        self.store.set_switch(plugin, &switch.key(), on, actor, &detail).await.context("failed to store the switch (nothing changed)")?;
        game.set_switches(before.set(switch, on));
        self.remember_switch(plugin, switch);
        tracing::info!(plugin, %switch, on, actor, "switch changed");
        Ok(match switch {
            Switch::Feature(_) => format!("{plugin}: {detail}; every room takes it at its next tick"),
            Switch::Joins if on => format!("{plugin}: {detail}; new joins are accepted again"),
            Switch::Joins => format!("{plugin}: {detail}; new joins are refused with joins_closed, players in rooms play on"),
        })
    }

    /// Notes a feature the store holds a value for (read at start, or just stored), so listings show it
    /// when it is off without reading the store on every scrape.
    fn remember_switch(&self, plugin: &str, switch: &Switch) {
        if let Switch::Feature(name) = switch {
            self.stored_features.lock().unwrap().entry(plugin.to_string()).or_default().insert(name.clone());
        }
    }

    /// Every switch of `plugin` worth showing: the features on now, those `warden.toml` names, and
    /// those the operator ever stored; then joins.
    pub fn switch_statuses(&self, plugin: &str, now: &Switches) -> Vec<SwitchStatus> {
        let defaults = self.default_switches(plugin);
        let mut features: BTreeSet<String> = now.features.iter().chain(defaults.features.iter()).cloned().collect();
        features.extend(self.stored_features.lock().unwrap().get(plugin).into_iter().flatten().cloned());
        let mut all: Vec<Switch> = features.into_iter().map(Switch::Feature).collect();
        all.push(Switch::Joins);
        all.into_iter().map(|s| SwitchStatus { switch: s.key(), on: now.get(&s), default: defaults.get(&s) }).collect()
    }
}
