//! Threshold rules, the anti-cheat and economy alarms of a live game: a figure summed over a sliding
//! window per player, room, game or IP address, and an action once it passes a limit.
//!
//! ```toml
//! [[rules]]
//! name = "gold-farming"
//! figure = "metric:gold_gained"   # metric:NAME | messages | messages:TYPE | joins | connections
//! per = "player"                  # player | room | game | ip (connections only)
//! game = "arena"                  # optional: one game (default: every game)
//! window_ms = 10000
//! limit = 1000                    # fires when the window's sum is above it
//! action = "kick"                 # log | audit | kick | switch
//! reason = "gold gained too fast" # kick: told to the player
//! # feature = "trade"             # switch: the feature turned off in the subject's game
//! ```
//!
//! Rooms count what rules ask about in the tick they see it and hand the tick's observations over in one
//! call; a game without rules pays one pointer comparison a tick. A rule fires at most once per subject
//! per window, so a storm cannot flood the logs. Every firing is counted, kept in a recent list
//! ([`Rules::recent`]) and sent to the server's alert task, which logs, audits or switches; a kick is
//! done where the subject is (the room, the join, the connection).

use anyhow::{Result, anyhow, bail};
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One rule, as `warden.toml` and the admin API give it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its name, in alerts and metrics.
    pub name: String,
    /// What it watches: `metric:NAME` (what plugins report with `metric`), `messages`, `messages:TYPE`
    /// (messages whose `type` field is TYPE), `joins` or `connections`.
    pub figure: String,
    /// Whom it counts for.
    pub per: Per,
    /// The game it watches (default: every game).
    #[serde(default)]
    pub game: Option<String>,
    /// The sliding window.
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    /// It fires when the window's sum is above this.
    pub limit: f64,
    /// What it does then.
    pub action: Action,
    /// `switch`: the feature it turns off.
    #[serde(default)]
    pub feature: Option<String>,
    /// `kick`: what the player is told.
    #[serde(default)]
    pub reason: Option<String>,
}

fn default_window_ms() -> u64 {
    10_000
}

/// Whom a rule counts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// Each player.
    Player,
    /// Each room.
    Room,
    /// The whole game.
    Game,
    /// Each IP address (`connections` only).
    Ip,
}

/// What a rule does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A warning in the log with the figure, the limit and who.
    Log,
    /// The same, and an audit entry.
    Audit,
    /// The player leaves the room (a join is refused, a connection closed), told the rule's reason.
    Kick,
    /// A feature of the game turned off (as `warden switch` would, audited).
    Switch,
}

impl Action {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Audit => "audit",
            Action::Kick => "kick",
            Action::Switch => "switch",
        }
    }
}

/// What a rule watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Figure {
    /// The values a plugin reports under this metric name.
    Metric(String),
    /// Messages.
    Messages,
    /// Messages of one `type`.
    MessagesOfType(String),
    /// Joins.
    Joins,
    /// Connections.
    Connections,
}

impl Figure {
    fn parse(s: &str) -> Result<Figure> {
        let named = |rest: &str, what: &str| {
            if rest.is_empty() || rest.len() > 64 {
                bail!("figure {s:?}: the {what} after the colon must be 1 to 64 characters")
            }
            Ok(rest.to_string())
        };
        Ok(match s.split_once(':') {
            None if s == "messages" => Figure::Messages,
            None if s == "joins" => Figure::Joins,
            None if s == "connections" => Figure::Connections,
            Some(("metric", name)) => Figure::Metric(named(name, "metric name")?),
            Some(("messages", ty)) => Figure::MessagesOfType(named(ty, "message type")?),
            _ => bail!("{s:?} is not a figure: use metric:NAME, messages, messages:TYPE, joins or connections"),
        })
    }
}

impl Rule {
    /// Checks the rule; its figure.
    pub fn check(&self) -> Result<Figure> {
        let fail = |why: String| anyhow!("rule {:?}: {why}", self.name);
        if self.name.is_empty() || self.name.len() > 64 {
            return Err(anyhow!("a rule's name must be 1 to 64 characters (got {:?})", self.name));
        }
        let figure = Figure::parse(&self.figure).map_err(|e| fail(e.to_string()))?;
        if (figure == Figure::Connections) != (self.per == Per::Ip) {
            return Err(fail("connections are counted per ip, and only connections are".into()));
        }
        if figure == Figure::Joins && self.per != Per::Player && self.per != Per::Game {
            return Err(fail("joins are counted per player or per game".into()));
        }
        if self.window_ms < 100 {
            return Err(fail(format!("window_ms = {} is too short: at least 100", self.window_ms)));
        }
        if !(self.limit.is_finite() && self.limit >= 0.0) {
            return Err(fail(format!("limit = {} must be a number, 0 or more", self.limit)));
        }
        match self.action {
            Action::Kick if !matches!(self.per, Per::Player | Per::Ip) => {
                return Err(fail("kick acts on a player or a connection: use per = \"player\" (or \"ip\" for connections)".into()));
            }
            Action::Switch if self.feature.is_none() => {
                return Err(fail("switch needs feature = \"NAME\", the feature to turn off".into()));
            }
            Action::Switch if self.per == Per::Ip && self.game.is_none() => {
                return Err(fail("a switch on connections needs game = \"NAME\": a connection has no game yet".into()));
            }
            _ => {}
        }
        Ok(figure)
    }

    fn applies_to(&self, game: &str) -> bool {
        self.game.as_deref().is_none_or(|g| g == game)
    }
}

/// Who a figure is counted for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A player.
    Player(Arc<str>),
    /// A room.
    Room(Arc<str>),
    /// The game.
    Game,
    /// An address.
    Ip(std::net::IpAddr),
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Player(p) => write!(f, "player {p}"),
            Subject::Room(r) => write!(f, "room {r}"),
            Subject::Game => f.write_str("the game"),
            Subject::Ip(ip) => write!(f, "ip {ip}"),
        }
    }
}

/// A rule that fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The rule's name.
    pub rule: String,
    /// The game (empty for a connection rule without one).
    pub game: String,
    /// Who, in words (`player guest-3`, `room r1`, `the game`, `ip 10.0.0.7`).
    pub subject: String,
    /// The player, for a per-player rule.
    pub player: Option<String>,
    /// The figure.
    pub figure: String,
    /// Its sum over the window.
    pub value: f64,
    /// The rule's limit.
    pub limit: f64,
    /// The window.
    pub window_ms: u64,
    /// What the rule does.
    pub action: Action,
    /// `switch`: the feature; `kick`: the reason.
    pub detail: Option<String>,
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let game = if self.game.is_empty() { String::new() } else { format!(" in {}", self.game) };
        write!(
            f,
            "rule {}: {} of {}{game} is {} over {} ms, above the limit {} ({})",
            self.rule,
            self.figure,
            self.subject,
            self.value,
            self.window_ms,
            self.limit,
            self.action.name()
        )
    }
}

/// The rules of one game, as its rooms need them. A room counts each distinct figure once, in a slot
/// (per player and for the room), whatever number of rules read it; the rules read the slots when the
/// room hands its counts over.
#[derive(Clone, Debug, Default)]
pub struct GameRules {
    /// How many slots a room counts.
    pub slots: usize,
    /// The slot of `messages`, if a rule counts it.
    pub messages: Option<usize>,
    /// The slots of `messages:TYPE`, by type.
    pub types: Vec<(String, usize)>,
    /// The slots of `metric:NAME`, by name.
    pub metrics: Vec<(String, usize)>,
    /// The rules counted in rooms: (rule index, slot, per).
    pub counted: Vec<(usize, usize, Per)>,
    /// The shortest window among them.
    pub shortest_window_ms: u64,
    /// Rules on `joins`.
    pub joins: Vec<usize>,
}

impl GameRules {
    /// Whether a room of the game has nothing to count.
    pub fn is_empty(&self) -> bool {
        self.counted.is_empty()
    }

    /// How often (in ticks at `tick_hz`) a room hands its counts over: once per bucket of the shortest
    /// window (a tenth of it: the window's own resolution), at most once a second, at least once a tick.
    pub fn every_ticks(&self, tick_hz: u32) -> u64 {
        let ms = (self.shortest_window_ms / BUCKETS).min(1000);
        (ms * u64::from(tick_hz) / 1000).max(1)
    }
}

/// A checked set of rules, replaced whole.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<(Rule, Figure)>,
}

impl RuleSet {
    /// Checks `rules` (names must differ).
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet> {
        let mut checked = Vec::with_capacity(rules.len());
        for rule in rules {
            if checked.iter().any(|(r, _): &(Rule, Figure)| r.name == rule.name) {
                bail!("two rules are named {:?}: names must differ", rule.name);
            }
            let figure = rule.check()?;
            checked.push((rule, figure));
        }
        Ok(RuleSet { rules: checked })
    }

    /// The rules.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|(r, _)| r)
    }

    /// What rooms of `game` count.
    pub fn for_game(&self, game: &str) -> GameRules {
        let mut g = GameRules::default();
        let slot_of = |list: &mut Vec<(String, usize)>, key: &str, slots: &mut usize| match list.iter().find(|(k, _)| k == key) {
            Some((_, s)) => *s,
            None => {
                list.push((key.to_string(), *slots));
                *slots += 1;
                *slots - 1
            }
        };
        for (i, (rule, figure)) in self.rules.iter().enumerate() {
            if !rule.applies_to(game) {
                continue;
            }
            let slot = match figure {
                Figure::Messages => *g.messages.get_or_insert_with(|| {
                    g.slots += 1;
                    g.slots - 1
                }),
                Figure::MessagesOfType(ty) => slot_of(&mut g.types, ty, &mut g.slots),
                Figure::Metric(name) => slot_of(&mut g.metrics, name, &mut g.slots),
                Figure::Joins => {
                    g.joins.push(i);
                    continue;
                }
                Figure::Connections => continue,
            };
            g.counted.push((i, slot, rule.per));
            g.shortest_window_ms = if g.counted.len() == 1 { rule.window_ms } else { g.shortest_window_ms.min(rule.window_ms) };
        }
        g
    }

    /// The subject of rule `i` for `player` (joins: per player, or the game).
    pub fn subject(&self, i: usize, player: &Arc<str>) -> Option<Subject> {
        Some(match self.rules[i].0.per {
            Per::Player => Subject::Player(player.clone()),
            Per::Game => Subject::Game,
            Per::Room | Per::Ip => return None,
        })
    }
}

/// One subject's sliding window: ten buckets spanning it.
struct Window {
    buckets: VecDeque<(u64, f64)>,
    /// No firing before this (one per window).
    quiet_until: Option<Instant>,
}

const BUCKETS: u64 = 10;

impl Window {
    fn add(&mut self, now: u64, value: f64) -> f64 {
        while self.buckets.front().is_some_and(|(b, _)| b + BUCKETS <= now) {
            self.buckets.pop_front();
        }
        match self.buckets.back_mut() {
            Some((b, v)) if *b == now => *v += value,
            _ => self.buckets.push_back((now, value)),
        }
        self.buckets.iter().map(|(_, v)| v).sum()
    }
}

/// One game's windows, by (rule index, subject).
type GameWindows = HashMap<(usize, Subject), Window>;

/// Every rule of the server with its windows, firings and recent alerts.
pub struct Rules {
    set: ArcSwap<RuleSet>,
    /// By game, then by (rule index, subject).
    windows: Mutex<HashMap<String, GameWindows>>,
    recent: Mutex<VecDeque<Alert>>,
    fired: Mutex<BTreeMap<(String, Action), u64>>,
    sink: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Alert>>>,
    epoch: Instant,
}

/// Alerts kept for `warden alerts`.
pub const RECENT: usize = 200;

impl Default for Rules {
    fn default() -> Self {
        Rules {
            set: ArcSwap::from_pointee(RuleSet::default()),
            windows: Mutex::new(HashMap::new()),
            recent: Mutex::new(VecDeque::new()),
            fired: Mutex::new(BTreeMap::new()),
            sink: Mutex::new(None),
            epoch: Instant::now(),
        }
    }
}

impl Rules {
    /// The set in force (rooms compare the pointer once a tick).
    pub fn current(&self) -> Arc<RuleSet> {
        self.set.load_full()
    }

    /// Whether `set` is the set in force.
    pub fn is_current(&self, set: &Arc<RuleSet>) -> bool {
        Arc::ptr_eq(&self.set.load(), set)
    }

    /// Replaces the rules; every window starts afresh.
    pub fn replace(&self, set: RuleSet) {
        let mut windows = self.windows.lock().unwrap();
        self.set.store(Arc::new(set));
        windows.clear();
    }

    /// Where every firing goes besides the recent list (the server's alert task).
    pub fn set_sink(&self, sink: tokio::sync::mpsc::UnboundedSender<Alert>) {
        *self.sink.lock().unwrap() = Some(sink);
    }

    /// The last alerts, newest first.
    pub fn recent(&self) -> Vec<Alert> {
        self.recent.lock().unwrap().iter().rev().cloned().collect()
    }

    /// Firings so far, by rule and action.
    pub fn fired(&self) -> BTreeMap<(String, Action), u64> {
        self.fired.lock().unwrap().clone()
    }

    /// Adds one tick's observations of `game` ((rule index in `set`, subject, value)); returns the
    /// rules that fired. Observations for a set that was replaced meanwhile are dropped.
    pub fn observe(&self, set: &Arc<RuleSet>, game: &str, observed: &[(usize, Subject, f64)]) -> Vec<Alert> {
        if observed.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let mut alerts = Vec::new();
        let mut windows = self.windows.lock().unwrap();
        if !self.is_current(set) {
            return Vec::new();
        }
        if !windows.contains_key(game) {
            windows.insert(game.to_string(), HashMap::new());
        }
        let game_windows = windows.get_mut(game).expect("inserted above");
        let elapsed_ms = now.duration_since(self.epoch).as_millis() as u64;
        for (i, subject, value) in observed {
            let (rule, _) = &set.rules[*i];
            let bucket = elapsed_ms / (rule.window_ms / BUCKETS).max(1);
            let window =
                game_windows.entry((*i, subject.clone())).or_insert_with(|| Window { buckets: VecDeque::new(), quiet_until: None });
            let sum = window.add(bucket, *value);
            if sum > rule.limit && window.quiet_until.is_none_or(|t| now >= t) {
                window.quiet_until = Some(now + Duration::from_millis(rule.window_ms));
                alerts.push(Alert {
                    at_ms: crate::storage::now_ms(),
                    rule: rule.name.clone(),
                    game: game.to_string(),
                    subject: subject.to_string(),
                    player: match subject {
                        Subject::Player(p) => Some(p.to_string()),
                        _ => None,
                    },
                    figure: rule.figure.clone(),
                    value: sum,
                    limit: rule.limit,
                    window_ms: rule.window_ms,
                    action: rule.action,
                    detail: match rule.action {
                        Action::Kick => Some(rule.reason.clone().unwrap_or_else(|| format!("removed by the server's rule {}", rule.name))),
                        Action::Switch => rule.feature.clone(),
                        _ => None,
                    },
                });
            }
        }
        drop(windows);
        if !alerts.is_empty() {
            self.record(&alerts);
        }
        alerts
    }

    /// A connection from `ip`: the connection rules that fired.
    pub fn connection(&self, ip: std::net::IpAddr) -> Vec<Alert> {
        let set = self.current();
        let observed: Vec<(usize, Subject, f64)> =
            set.rules.iter().enumerate().filter(|(_, (_, f))| *f == Figure::Connections).map(|(i, _)| (i, Subject::Ip(ip), 1.0)).collect();
        let mut alerts = self.observe(&set, "", &observed);
        for alert in &mut alerts {
            if let Some(game) = set.rules.iter().find(|(r, _)| r.name == alert.rule).and_then(|(r, _)| r.game.clone()) {
                alert.game = game;
            }
        }
        alerts
    }

    fn record(&self, alerts: &[Alert]) {
        let mut fired = self.fired.lock().unwrap();
        let mut recent = self.recent.lock().unwrap();
        let sink = self.sink.lock().unwrap();
        for alert in alerts {
            *fired.entry((alert.rule.clone(), alert.action)).or_default() += 1;
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(alert.clone());
            if let Some(sink) = sink.as_ref() {
                let _ = sink.send(alert.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(figure: &str, per: Per, action: Action) -> Rule {
        Rule {
            name: "r".into(),
            figure: figure.into(),
            per,
            game: None,
            window_ms: 10_000,
            limit: 100.0,
            action,
            feature: None,
            reason: None,
        }
    }

    #[test]
    fn bad_rules_name_the_rule_the_reason_and_the_fix() {
        let err = |r: Rule| RuleSet::new(vec![r]).unwrap_err().to_string();
        assert!(err(rule("gold", Per::Player, Action::Log)).contains("metric:NAME, messages"));
        assert!(err(rule("connections", Per::Player, Action::Log)).contains("per ip"));
        assert!(err(rule("messages", Per::Game, Action::Kick)).contains("per = \"player\""));
        assert!(err(rule("messages", Per::Game, Action::Switch)).contains("feature = \"NAME\""));
        assert!(err(Rule { window_ms: 5, ..rule("messages", Per::Room, Action::Log) }).contains("at least 100"));
        let two = RuleSet::new(vec![rule("joins", Per::Player, Action::Log), rule("messages", Per::Room, Action::Log)]);
        assert!(two.unwrap_err().to_string().contains("two rules are named"));
        assert!(RuleSet::new(vec![rule("metric:gold_gained", Per::Player, Action::Kick)]).is_ok());
    }

    #[test]
    fn rooms_count_a_figure_once_and_hand_it_over_once_per_bucket_of_the_shortest_window() {
        let mut short = rule("messages", Per::Room, Action::Log);
        (short.name, short.window_ms) = ("short".into(), 2_000);
        let set = RuleSet::new(vec![rule("messages", Per::Player, Action::Log), short, {
            let mut r = rule("messages:move", Per::Player, Action::Log);
            r.name = "moves".into();
            r
        }])
        .unwrap();
        let g = set.for_game("arena");
        assert_eq!((g.slots, g.messages, g.counted.len()), (2, Some(0), 3), "one slot for messages, read by two rules");
        assert_eq!(g.every_ticks(20), 4, "a 2 s window has 200 ms buckets: every 4 ticks at 20 Hz");
        assert_eq!(
            RuleSet::new(vec![rule("messages", Per::Game, Action::Log)]).unwrap().for_game("x").every_ticks(20),
            20,
            "at most a second"
        );
    }

    #[test]
    fn a_rule_fires_once_per_subject_and_window_and_only_past_its_limit() {
        let rules = Rules::default();
        rules.replace(RuleSet::new(vec![rule("metric:gold", Per::Player, Action::Kick)]).unwrap());
        let set = rules.current();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(rules.observe(&set, "arena", &[(0, Subject::Player(a.clone()), 60.0), (0, Subject::Player(b.clone()), 60.0)]).is_empty());
        let fired = rules.observe(&set, "arena", &[(0, Subject::Player(a.clone()), 50.0), (0, Subject::Player(b.clone()), 40.0)]);
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!((fired[0].player.as_deref(), fired[0].value), (Some("a"), 110.0));
        assert!(rules.observe(&set, "arena", &[(0, Subject::Player(a), 500.0)]).is_empty(), "once per window");
        assert_eq!(rules.fired()[&("r".to_string(), Action::Kick)], 1);
        assert_eq!(rules.recent().len(), 1);
        // Another game keeps its own windows; a replaced set drops what was counted for the old one.
        assert!(rules.observe(&set, "chat", &[(0, Subject::Player(b.clone()), 60.0)]).is_empty());
        rules.replace(RuleSet::default());
        assert!(rules.observe(&set, "arena", &[(0, Subject::Player(b), 1000.0)]).is_empty());
    }
}
