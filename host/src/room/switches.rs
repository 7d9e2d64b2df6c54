//! A game's runtime switches: the plugin features that are on (what `feature-enabled` answers) and
//! whether the game takes new joins (the maintenance switch).
//!
//! A game holds its [`Switches`] the way it holds what serves: behind an `ArcSwap`, replaced whole by
//! the operator. Each room compares the pointer once a tick and takes a change at that tick's start
//! (journaled, so a replay sees the same answers); a plugin call never reads the game's switches.

use std::collections::BTreeSet;
use std::sync::Arc;

/// One switch of a game.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Switch {
    /// A plugin feature (`feature-enabled(name)`).
    Feature(String),
    /// Whether new players may join its rooms.
    Joins,
}

impl Switch {
    /// How the store names it: `feature:NAME` or `joins`.
    pub fn key(&self) -> String {
        match self {
            Switch::Feature(name) => format!("feature:{name}"),
            Switch::Joins => "joins".to_string(),
        }
    }

    /// The switch a stored key names.
    pub fn from_key(key: &str) -> Option<Switch> {
        match key {
            "joins" => Some(Switch::Joins),
            _ => key.strip_prefix("feature:").filter(|n| valid_feature(n)).map(|n| Switch::Feature(n.to_string())),
        }
    }
}

impl std::fmt::Display for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Switch::Feature(name) => write!(f, "feature {name}"),
            Switch::Joins => f.write_str("joins"),
        }
    }
}

/// Whether `name` can name a feature: 1 to 64 ASCII letters, digits and `-_.:` (the names a plugin may
/// ask `feature-enabled` about).
pub fn valid_feature(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A game's switches, replaced whole on every change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Switches {
    /// The features that are on.
    pub features: Arc<BTreeSet<String>>,
    /// Whether new players may join.
    pub joins: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches { features: Arc::default(), joins: true }
    }
}

impl Switches {
    /// Features `on`, joins open.
    pub fn with_features<S: AsRef<str>>(on: &[S]) -> Self {
        Switches { features: Arc::new(on.iter().map(|s| s.as_ref().to_string()).collect()), joins: true }
    }

    /// Whether `switch` is on.
    pub fn get(&self, switch: &Switch) -> bool {
        match switch {
            Switch::Feature(name) => self.features.contains(name),
            Switch::Joins => self.joins,
        }
    }

    /// These switches with `switch` set to `on`.
    pub fn set(&self, switch: &Switch, on: bool) -> Switches {
        match switch {
            Switch::Feature(name) => {
                let mut features = BTreeSet::clone(&self.features);
                if on {
                    features.insert(name.clone());
                } else {
                    features.remove(name);
                }
                Switches { features: Arc::new(features), joins: self.joins }
            }
            Switch::Joins => Switches { features: self.features.clone(), joins: on },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_names_are_not_switches() {
        for s in [Switch::Joins, Switch::Feature("chat".into()), Switch::Feature("double-xp:eu".into())] {
            assert_eq!(Switch::from_key(&s.key()), Some(s));
        }
        assert_eq!(Switch::from_key("feature:"), None);
        assert_eq!(Switch::from_key("feature:white space"), None);
        assert_eq!(Switch::from_key("chat"), None);
    }

    #[test]
    fn set_changes_one_switch_and_leaves_the_rest() {
        let s = Switches::with_features(&["chat", "trade"]);
        let off = s.set(&Switch::Feature("chat".into()), false);
        assert_eq!(*off.features, BTreeSet::from(["trade".to_string()]));
        assert!(off.joins);
        let closed = off.set(&Switch::Joins, false);
        assert!(!closed.joins && closed.features == off.features);
        assert!(closed.set(&Switch::Feature("chat".into()), true).get(&Switch::Feature("chat".into())));
    }
}
