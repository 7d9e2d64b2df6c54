//! The leak and anomaly watchdog: every `watchdog.interval_ms` it reads every room's listing row and
//! the runtime figures (the same reading `/metrics` takes), and when a threshold is crossed it writes a
//! dump to `<data_dir>/dumps/` (what crossed which threshold, the room's row, the runtime figures),
//! logs a warning, counts it in `warden_watchdog_dumps_total` and writes an audit entry. One dump per
//! room and condition per `watchdog.repeat_ms`, and the directory is kept under `watchdog.max_bytes`,
//! so a storm cannot fill the disk. `warden dumps` lists them.

use super::metrics::Sources;
use crate::config::WatchdogConfig;
use crate::room::RoomSummary;
use crate::storage::Store;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the watchdog looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Instance memory above `memory_share` of the cap.
    Memory,
    /// Timers pending above `max_timers`.
    Timers,
    /// Journal bytes above `max_journal_bytes`.
    Journal,
    /// Inbox depth above `max_inbox`.
    Inbox,
    /// Late ticks in every sample for `late_for_ms`.
    Late,
    /// Empty past twice its grace period (an empty room closes after its grace).
    Empty,
    /// Live tasks beyond what sessions and rooms account for.
    Tasks,
    /// Open connections beyond the players on them.
    Connections,
}

impl Condition {
    /// Every condition.
    pub const ALL: [Condition; 8] = [
        Condition::Memory,
        Condition::Timers,
        Condition::Journal,
        Condition::Inbox,
        Condition::Late,
        Condition::Empty,
        Condition::Tasks,
        Condition::Connections,
    ];

    /// Its name (metric label, file names).
    pub fn name(self) -> &'static str {
        match self {
            Condition::Memory => "memory",
            Condition::Timers => "timers",
            Condition::Journal => "journal",
            Condition::Inbox => "inbox",
            Condition::Late => "late",
            Condition::Empty => "empty",
            Condition::Tasks => "tasks",
            Condition::Connections => "connections",
        }
    }
}

/// A dump: what crossed which threshold, with the room's listing row and the runtime figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dump {
    /// When (Unix ms).
    pub at_ms: i64,
    /// What crossed its threshold.
    pub condition: Condition,
    /// The threshold.
    pub threshold: f64,
    /// The value seen.
    pub value: f64,
    /// In words.
    pub message: String,
    /// The room's listing row (none for a runtime condition).
    pub room: Option<RoomSummary>,
    /// The runtime then.
    pub runtime: RuntimeFigures,
}

/// The runtime figures a dump carries.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RuntimeFigures {
    /// Live tokio tasks, every runtime.
    pub tasks: u64,
    /// Open sessions.
    pub sessions: i64,
    /// Authenticated players connected.
    pub players: i64,
    /// Open rooms.
    pub rooms: u64,
    /// Plugin instances alive.
    pub instances: u64,
    /// Resident memory of the process.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
}

/// The watchdog's counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct WatchdogStats {
    samples: AtomicU64,
    dumps: [AtomicU64; 8],
}

impl WatchdogStats {
    /// Samples taken.
    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// Dumps written for `c`.
    pub fn dumps(&self, c: Condition) -> u64 {
        self.dumps[c as usize].load(Ordering::Relaxed)
    }
}

/// A threshold crossed in one sample.
struct Finding {
    condition: Condition,
    threshold: f64,
    value: f64,
    room: Option<RoomSummary>,
}

/// The watchdog of one server.
pub struct Watchdog {
    sources: Arc<Sources>,
    config: WatchdogConfig,
    /// `limits.memory_bytes`.
    memory_cap: u64,
    /// `rooms.empty_grace_ms`.
    grace: Duration,
    dir: PathBuf,
    store: Store,
    /// When each (game, room, condition) last got a dump.
    last: HashMap<(String, String, Condition), Instant>,
    /// Per room: (late ticks at the last sample, since when every sample saw new late ticks).
    late: HashMap<(String, String), (u64, Option<Instant>)>,
    /// Per room: since when it has been seen empty.
    empty: HashMap<(String, String), Instant>,
}

impl Watchdog {
    /// A watchdog over `sources` writing to `dir`.
    pub fn new(sources: Arc<Sources>, config: WatchdogConfig, memory_cap: u64, grace: Duration, dir: PathBuf, store: Store) -> Self {
        Watchdog { sources, config, memory_cap, grace, dir, store, last: HashMap::new(), late: HashMap::new(), empty: HashMap::new() }
    }

    /// Samples every `interval_ms` until `stop`.
    pub fn spawn(mut self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let period = Duration::from_millis(self.config.interval_ms.max(10));
            let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = every.tick() => self.sample(Instant::now()).await,
                }
            }
        })
    }

    /// One sample: checks every threshold and writes what is due.
    pub async fn sample(&mut self, now: Instant) {
        let rooms = self.sources.rooms.list();
        let runtime = self.runtime_figures(&rooms);
        let findings = self.check(&rooms, &runtime, now);
        for f in findings {
            let key = match &f.room {
                Some(r) => (r.game.clone(), r.room.clone(), f.condition),
                None => ("-".into(), "-".into(), f.condition),
            };
            let repeat = Duration::from_millis(self.config.repeat_ms);
            if self.last.get(&key).is_some_and(|at| now.duration_since(*at) < repeat) {
                continue;
            }
            self.last.insert(key, now);
            self.write(f, runtime.clone()).await;
        }
        self.sources.watchdog.samples.fetch_add(1, Ordering::Relaxed);
    }

    fn runtime_figures(&self, rooms: &[RoomSummary]) -> RuntimeFigures {
        let s = &self.sources;
        let process = super::metrics::process_figures();
        RuntimeFigures {
            tasks: s.runtimes.iter().map(|(_, h)| h.metrics().num_alive_tasks() as u64).sum(),
            sessions: s.net.sessions_open(),
            players: s.net.players_connected(),
            rooms: rooms.len() as u64,
            instances: s.runtime.live_instances() as u64,
            resident_bytes: process.0,
            open_fds: process.1,
        }
    }

    fn check(&mut self, rooms: &[RoomSummary], runtime: &RuntimeFigures, now: Instant) -> Vec<Finding> {
        let c = &self.config;
        let mut out = Vec::new();
        let mut seen = Vec::with_capacity(rooms.len());
        for r in rooms {
            let key = (r.game.clone(), r.room.clone());
            let u = &r.usage;
            let mut crossed = |condition, threshold: f64, value: f64| {
                if value > threshold {
                    out.push(Finding { condition, threshold, value, room: Some(r.clone()) });
                }
            };
            crossed(Condition::Memory, c.memory_share * self.memory_cap as f64, u.linear_memory_bytes as f64);
            crossed(Condition::Timers, c.max_timers as f64, u.timers as f64);
            crossed(Condition::Journal, c.max_journal_bytes as f64, u.journal_bytes as f64);
            crossed(Condition::Inbox, c.max_inbox as f64, u.inbox as f64);
            // Late: new late ticks in every sample, for `late_for_ms`.
            let (before, since) = self.late.get(&key).copied().unwrap_or((u.late_ticks, None));
            let since = if u.late_ticks > before { Some(since.unwrap_or(now)) } else { None };
            self.late.insert(key.clone(), (u.late_ticks, since));
            if let Some(since) = since {
                crossed(Condition::Late, c.late_for_ms as f64, now.duration_since(since).as_millis() as f64);
            }
            // Empty: an empty room closes after its grace; one seen empty for twice that is stuck.
            if u.players == 0 {
                let since = *self.empty.entry(key.clone()).or_insert(now);
                crossed(Condition::Empty, 2.0 * self.grace.as_millis() as f64, now.duration_since(since).as_millis() as f64);
            } else {
                self.empty.remove(&key);
            }
            seen.push(key);
        }
        // Forget rooms that closed.
        let open: std::collections::HashSet<_> = seen.into_iter().collect();
        self.late.retain(|k, _| open.contains(k));
        self.empty.retain(|k, _| open.contains(k));
        let expected = c.task_slack + 3 * runtime.sessions.max(0) as u64 + 2 * runtime.rooms;
        if runtime.tasks > expected {
            out.push(Finding { condition: Condition::Tasks, threshold: expected as f64, value: runtime.tasks as f64, room: None });
        }
        let unmatched = (runtime.sessions - runtime.players).max(0) as u64;
        if unmatched > c.max_unmatched_connections {
            out.push(Finding {
                condition: Condition::Connections,
                threshold: c.max_unmatched_connections as f64,
                value: unmatched as f64,
                room: None,
            });
        }
        out
    }

    async fn write(&self, f: Finding, runtime: RuntimeFigures) {
        let at_ms = crate::storage::now_ms();
        let (game, room, version) = match &f.room {
            Some(r) => (r.game.clone(), r.room.clone(), Some(r.version.clone())),
            None => ("-".into(), "-".into(), None),
        };
        let name = f.condition.name();
        let message = match &f.room {
            Some(_) => format!("room {room} of {game}: {name} {} is above the watchdog's threshold {}", f.value, f.threshold),
            None => format!("{name} {} is above the watchdog's threshold {}", f.value, f.threshold),
        };
        let dump =
            Dump { at_ms, condition: f.condition, threshold: f.threshold, value: f.value, message: message.clone(), room: f.room, runtime };
        let file = format!("{at_ms}-{}-{}-{name}.json", crate::health::crash::safe(&game), crate::health::crash::safe(&room));
        let (dir, max) = (self.dir.clone(), self.config.max_bytes);
        let written = match serde_json::to_vec_pretty(&dump) {
            Ok(bytes) => tokio::task::spawn_blocking(move || crate::health::crash::write_capped(&dir, &file, &bytes, max))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r),
            Err(e) => Err(e.into()),
        };
        match written {
            Ok(path) => {
                self.sources.watchdog.dumps[f.condition as usize].fetch_add(1, Ordering::Relaxed);
                tracing::warn!(condition = name, file = %path.display(), "watchdog: {message}");
                let plugin = (game != "-").then_some(game.as_str());
                let detail = format!("{message}; dump {}", path.display());
                if let Err(e) = self.store.audit("watchdog", "dump", plugin, version.as_deref(), &detail).await {
                    tracing::error!("failed to audit a watchdog dump: {e:#}");
                }
            }
            Err(e) => tracing::error!(condition = name, "watchdog: {message}, but the dump was not written: {e:#}"),
        }
    }
}

/// The dumps in `dir`, oldest first.
pub fn list(dir: &std::path::Path) -> anyhow::Result<Vec<(PathBuf, Dump)>> {
    crate::health::crash::list_json(dir)
}

/// Dumps written per condition, for `/metrics`.
pub fn dumps_by_condition(stats: &WatchdogStats) -> BTreeMap<&'static str, u64> {
    Condition::ALL.iter().map(|c| (c.name(), stats.dumps(*c))).collect()
}
