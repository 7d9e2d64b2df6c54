//! `GET /metrics`: the Prometheus (OpenMetrics text) exposition of a running server.
//!
//! Nothing here is on a game thread's path. Every figure is read at scrape time from where it is
//! already kept: the per-version [`Counts`] rooms add to once a tick (calls by export and outcome, call
//! latency, ticks, traps), each room's listing row, the room lifecycle, network, save-queue and deploy
//! counters, the runtime's live instances, tokio's runtime metrics and `/proc/self`. A scrape builds one
//! collector over that reading and encodes it with `prometheus-client`. Labels are bounded: plugin,
//! version, export, outcome, reason, transport, kind, role, phase, state, runtime; never a room, a
//! player or an address. docs/observability.md lists every family.

use crate::deploy::Deployer;
use crate::deploy::stats::{DeployCounts, PluginRoles};
use crate::health::{Counts, Export, Histogram, Outcome};
use crate::net::stats::{NetStats, Refusal, Transport};
use crate::room::stats::LifecycleCounts;
use crate::room::{RoomSummary, Rooms};
use crate::runtime::{Runtime, TrapKind};
use crate::storage::queue::{QueueStats, SaveQueue};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The OpenMetrics content type `GET /metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where a scrape reads from.
pub struct Sources {
    /// The rooms (listings, lifecycle, per-version counts).
    pub rooms: Rooms,
    /// Deploy counts and the versions serving.
    pub deployer: Arc<Deployer>,
    /// The save queue.
    pub saves: SaveQueue,
    /// Network counts.
    pub net: Arc<NetStats>,
    /// The plugin runtime (pool slots).
    pub runtime: Arc<Runtime>,
    /// `rooms.tick_hz`.
    pub tick_hz: u32,
    /// `limits.max_instances`.
    pub max_instances: u32,
    /// The tokio runtimes to report: `main` (network, admin, saves) and `game` (rooms), if apart.
    pub runtimes: Vec<(&'static str, tokio::runtime::Handle)>,
    /// The watchdog's counts.
    pub watchdog: Arc<super::watchdog::WatchdogStats>,
    /// Busy time per runtime at the last scrape, for the busy ratio since then.
    busy: Mutex<BTreeMap<&'static str, (Instant, Duration)>>,
}

impl Sources {
    /// Sources of a server.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rooms: Rooms,
        deployer: Arc<Deployer>,
        saves: SaveQueue,
        net: Arc<NetStats>,
        runtime: Arc<Runtime>,
        tick_hz: u32,
        max_instances: u32,
        runtimes: Vec<(&'static str, tokio::runtime::Handle)>,
    ) -> Self {
        Sources {
            rooms,
            deployer,
            saves,
            net,
            runtime,
            tick_hz,
            max_instances,
            runtimes,
            watchdog: Default::default(),
            busy: Mutex::new(BTreeMap::new()),
        }
    }

    /// The exposition text now.
    pub async fn render(&self) -> anyhow::Result<String> {
        let scrape = self.read().await?;
        let mut registry = prometheus_client::registry::Registry::with_prefix("warden");
        registry.register_collector(Box::new(scrape));
        let mut out = String::with_capacity(64 << 10);
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }

    async fn read(&self) -> anyhow::Result<Scrape> {
        let roles = self.deployer.roles().await?;
        let mut versions = Vec::new();
        let mut switches = Vec::new();
        for game in self.rooms.games() {
            let Some(entry) = self.rooms.game(&game) else { continue };
            switches.push((game.clone(), self.deployer.switch_statuses(&game, &entry.switches())));
            for (version, health) in entry.healths() {
                versions.push(VersionReading { plugin: game.clone(), version, total: health.total(), window: health.window() });
            }
        }
        let runtimes = self
            .runtimes
            .iter()
            .map(|(name, handle)| {
                let m = handle.metrics();
                let workers = m.num_workers();
                let busy: Duration = (0..workers).map(|w| m.worker_total_busy_duration(w)).sum();
                let now = Instant::now();
                let last = self.busy.lock().unwrap().insert(name, (now, busy));
                let ratio = last.map(|(at, before)| {
                    let wall = now.duration_since(at).as_secs_f64() * workers as f64;
                    if wall > 0.0 { (busy.saturating_sub(before)).as_secs_f64() / wall } else { 0.0 }
                });
                RuntimeReading { name, workers, alive_tasks: m.num_alive_tasks(), queue: m.global_queue_depth(), busy, ratio }
            })
            .collect();
        Ok(Scrape {
            rooms: self.rooms.list(),
            serving: self.rooms.not_serving().is_none(),
            cooling: self.rooms.cooling(),
            lifecycle: self.rooms.lifecycle(),
            versions,
            roles,
            switches,
            rules: (self.rooms.rules().current().rules().count() as u64, self.rooms.rules().fired()),
            deploys: self.deployer.counts(),
            saves: self.saves.stats(),
            save_error: self.saves.health().map(|(_, fatal)| fatal),
            room_writes: self.rooms.writer_stats().unwrap_or_default(),
            net: NetReading::of(&self.net),
            live_instances: self.runtime.live_instances(),
            max_instances: self.max_instances,
            tick_hz: self.tick_hz,
            runtimes,
            process: ProcessReading::read(),
            watchdog_samples: self.watchdog.samples(),
            watchdog_dumps: super::watchdog::dumps_by_condition(&self.watchdog),
        })
    }
}

struct VersionReading {
    plugin: String,
    version: String,
    total: Counts,
    window: Counts,
}

struct RuntimeReading {
    name: &'static str,
    workers: usize,
    alive_tasks: usize,
    queue: usize,
    busy: Duration,
    ratio: Option<f64>,
}

struct NetReading {
    players: i64,
    sessions: i64,
    transports: Vec<(Transport, [u64; 6])>,
    refused: Vec<(Refusal, u64)>,
    closed: BTreeMap<(&'static str, &'static str), u64>,
}

impl NetReading {
    fn of(net: &NetStats) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        NetReading {
            players: net.players_connected(),
            sessions: net.sessions_open(),
            transports: Transport::ALL
                .iter()
                .map(|&t| {
                    let s = net.transport(t);
                    let v = [&s.opened, &s.refused, &s.msgs_in, &s.bytes_in, &s.msgs_out, &s.bytes_out].map(|a| a.load(Relaxed));
                    (t, v)
                })
                .collect(),
            refused: Refusal::ALL.iter().map(|&r| (r, net.refusals(r))).collect(),
            closed: net.closed(),
        }
    }
}

/// This process, from `/proc/self`.
#[derive(Default)]
struct ProcessReading {
    resident_bytes: u64,
    cpu_seconds: f64,
    open_fds: u64,
    threads: u64,
}

impl ProcessReading {
    fn read() -> Self {
        let mut p = ProcessReading::default();
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            let field = |name: &str| {
                status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            };
            p.resident_bytes = field("VmRSS:").unwrap_or(0) * 1024;
            p.threads = field("Threads:").unwrap_or(0);
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            // After the command come the state (field 3) on; utime and stime are fields 14 and 15, in
            // USER_HZ ticks (100 a second on Linux).
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
            p.cpu_seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
        }
        p.open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
        p
    }
}

/// Resident bytes and open file descriptors of this process.
pub fn process_figures() -> (u64, u64) {
    let p = ProcessReading::read();
    (p.resident_bytes, p.open_fds)
}

/// One scrape's reading, encoded by [`Collector::encode`].
struct Scrape {
    rooms: Vec<RoomSummary>,
    /// Whether the host serves rooms now (a fleet host without its lease does not).
    serving: bool,
    cooling: BTreeMap<String, usize>,
    lifecycle: LifecycleCounts,
    versions: Vec<VersionReading>,
    roles: Vec<PluginRoles>,
    switches: Vec<(String, Vec<crate::deploy::switches::SwitchStatus>)>,
    rules: (u64, BTreeMap<(String, crate::rules::Action), u64>),
    deploys: DeployCounts,
    saves: QueueStats,
    save_error: Option<bool>,
    /// The room writer (checkpoints and the durable journal).
    room_writes: crate::room::writer::WriterStats,
    net: NetReading,
    live_instances: usize,
    max_instances: u32,
    tick_hz: u32,
    runtimes: Vec<RuntimeReading>,
    process: ProcessReading,
    watchdog_samples: u64,
    watchdog_dumps: BTreeMap<&'static str, u64>,
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

type Labels = Vec<(&'static str, String)>;

fn labels<const N: usize>(pairs: [(&'static str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Writes families.
struct Out<'a, 'b>(&'b mut DescriptorEncoder<'a>);

impl Out<'_, '_> {
    fn counter<V: EncodeCounterValue>(&mut self, name: &str, help: &str, series: impl IntoIterator<Item = (Labels, V)>) -> fmt::Result {
        let mut family = self.0.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in series {
            match labels.is_empty() {
                true => family.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
                false => family.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
            }
        }
        Ok(())
    }

    fn gauge<V: EncodeGaugeValue>(&mut self, name: &str, help: &str, series: impl IntoIterator<Item = (Labels, V)>) -> fmt::Result {
        let mut family = self.0.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in series {
            match labels.is_empty() {
                true => family.encode_gauge(&value)?,
                false => family.encode_family(&labels)?.encode_gauge(&value)?,
            }
        }
        Ok(())
    }

    /// A histogram of microseconds, exposed in seconds.
    fn histogram<'h>(&mut self, name: &str, help: &str, series: impl IntoIterator<Item = (Labels, &'h Histogram)>) -> fmt::Result {
        let mut family = self.0.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, h) in series {
            let buckets: Vec<(f64, u64)> = h.buckets().map(|(upper, n)| (upper.map_or(f64::MAX, |us| us as f64 / 1e6), n)).collect();
            let (sum, count) = (h.sum() as f64 / 1e6, h.count());
            match labels.is_empty() {
                true => family.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?,
                false => family.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?,
            }
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let mut out = Out(&mut encoder);
        self.encode_players_and_rooms(&mut out)?;
        self.encode_calls(&mut out)?;
        self.encode_net(&mut out)?;
        self.encode_deploys(&mut out)?;
        self.encode_saves(&mut out)?;
        self.encode_process(&mut out)
    }
}

impl Scrape {
    fn encode_players_and_rooms(&self, out: &mut Out) -> fmt::Result {
        out.gauge("players_connected", "Players past hello on an open connection.", [(vec![], self.net.players)])?;
        let mut in_rooms: BTreeMap<&str, u64> = BTreeMap::new();
        let mut states: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for room in &self.rooms {
            *in_rooms.entry(&room.game).or_default() += room.usage.players;
            *states.entry((&room.game, if room.usage.players > 0 { "playing" } else { "empty" })).or_default() += 1;
        }
        for (game, n) in &self.cooling {
            *states.entry((game, "cooling_down")).or_default() += *n as u64;
        }
        out.gauge("room_players", "Players in rooms, per plugin.", in_rooms.iter().map(|(g, n)| (labels([("plugin", g)]), *n)))?;
        out.gauge(
            "rooms",
            "Rooms per plugin and state: playing (players in it), empty (in its grace period), cooling_down (closed after crashing, refusing joins).",
            states.iter().map(|((g, s), n)| (labels([("plugin", g), ("state", s)]), *n)),
        )?;
        out.counter("rooms_opened", "Rooms opened, per plugin.", self.lifecycle.opened.iter().map(|(g, n)| (labels([("plugin", g)]), *n)))?;
        out.counter(
            "rooms_refused",
            "Joins refused because their room would have been one more than rooms.max_rooms, per plugin.",
            self.lifecycle.refused_full.iter().map(|(g, n)| (labels([("plugin", g)]), *n)),
        )?;
        out.counter(
            "rooms_closed",
            "Rooms closed, per plugin and reason (empty, shutdown, crashed, failed_to_start, host_panic, moved).",
            self.lifecycle.closed.iter().map(|((g, r), n)| (labels([("plugin", g), ("reason", r.name())]), *n)),
        )?;
        let sum_by_version = |f: fn(&RoomSummary) -> u64| {
            let mut m: BTreeMap<(&str, &str), u64> = BTreeMap::new();
            for room in &self.rooms {
                *m.entry((&room.game, &room.version)).or_default() += f(room);
            }
            m.into_iter().map(|((g, v), n)| (labels([("plugin", g), ("version", v)]), n)).collect::<Vec<_>>()
        };
        out.gauge("version_rooms", "Open rooms per plugin version.", sum_by_version(|_| 1))?;
        out.gauge(
            "instance_memory_bytes",
            "Linear memory of the plugin instances, per plugin version.",
            sum_by_version(|r| r.usage.linear_memory_bytes),
        )?;
        out.gauge(
            "room_host_bytes",
            "What rooms make the host hold outside the sandbox (checkpoint, journal, timers, queued frames), per plugin version.",
            sum_by_version(|r| r.usage.host_bytes),
        )?;
        out.gauge(
            "room_journal_bytes",
            "Journal bytes since the last checkpoint, summed per plugin version.",
            sum_by_version(|r| r.usage.journal_bytes),
        )?;
        out.gauge("room_timers", "Timers pending, summed per plugin version.", sum_by_version(|r| r.usage.timers))?;
        out.gauge("room_inbox", "Inputs waiting in room inboxes, summed per plugin version.", sum_by_version(|r| r.usage.inbox))?;
        out.gauge("tick_rate_hertz", "The target tick rate of every room (rooms.tick_hz).", [(vec![], self.tick_hz)])?;
        out.gauge(
            "serving",
            "1 while the host serves rooms; 0 while it does not (a fleet host joining the fleet or without its lease: /health says why).",
            [(vec![], u64::from(self.serving))],
        )?;
        let per_version = |f: fn(&Counts) -> u64| {
            self.versions.iter().map(move |v| (labels([("plugin", &v.plugin), ("version", &v.version)]), f(&v.total)))
        };
        out.counter("ticks", "Ticks run, per plugin version.", per_version(|c| c.ticks))?;
        out.counter(
            "late_ticks",
            "Ticks that started more than one tick period late (the room fell behind), per plugin version.",
            per_version(|c| c.late_ticks),
        )?;
        out.histogram(
            "tick_duration_seconds",
            "Time a room's tick took (inputs, timers, on-tick, flush, checkpoint), per plugin version.",
            self.versions.iter().map(|v| (labels([("plugin", &v.plugin), ("version", &v.version)]), &v.total.tick_us)),
        )
    }

    fn encode_calls(&self, out: &mut Out) -> fmt::Result {
        let mut calls = Vec::new();
        for v in &self.versions {
            for export in Export::ALL {
                for outcome in Outcome::ALL {
                    let n = v.total.by_export[export as usize][outcome as usize];
                    if n > 0 || outcome == Outcome::Ok {
                        let l = labels([
                            ("plugin", &v.plugin),
                            ("version", &v.version),
                            ("export", export.name()),
                            ("outcome", outcome.name()),
                        ]);
                        calls.push((l, n));
                    }
                }
            }
        }
        out.counter("guest_calls", "Plugin calls per plugin, version, export and outcome (ok, err, trap, deadline).", calls)?;
        out.histogram(
            "guest_call_duration_seconds",
            "Wall time of plugin calls that returned (ok or err), per plugin version.",
            self.versions.iter().map(|v| (labels([("plugin", &v.plugin), ("version", &v.version)]), &v.total.latency)),
        )?;
        let mut traps = Vec::new();
        for v in &self.versions {
            for kind in TrapKind::ALL {
                let n = v.total.trap_kinds[kind as usize];
                if n > 0 {
                    traps.push((labels([("plugin", &v.plugin), ("version", &v.version), ("kind", kind.name())]), n));
                }
            }
        }
        out.counter(
            "guest_traps",
            "Traps per plugin version and kind (panic, stack_overflow, memory_cap, blocked, limit, host_panic, other).",
            traps,
        )?;
        // The health window next to the policy: "why did it roll back" as a graph.
        let window = |f: fn(&Counts) -> f64| {
            self.versions.iter().map(move |v| (labels([("plugin", &v.plugin), ("version", &v.version)]), f(&v.window)))
        };
        out.gauge("health_window_calls", "Plugin calls in the health window, per plugin version.", window(|c| c.calls as f64))?;
        out.gauge(
            "health_window_error_ratio",
            "Share of inputs (or of ticks, whichever is higher) that returned err in the health window, per plugin version; compare with warden_health_max_error_ratio.",
            window(|c| {
                let (errors, inputs) = c.inputs();
                let ratio = |e: u64, n: u64| if n == 0 { 0.0 } else { e as f64 / n as f64 };
                ratio(errors, inputs).max(ratio(c.tick_errors, c.tick_calls))
            }),
        )?;
        out.gauge(
            "health_window_traps",
            "Traps and deadline hits in the health window, per plugin version; compare with warden_health_trap_storm.",
            window(|c| (c.traps + c.deadlines) as f64),
        )?;
        out.gauge(
            "health_window_p99_seconds",
            "p99 call latency in the health window (a power-of-two bucket's bound), per plugin version.",
            window(|c| c.p99_us().map_or(0.0, |us| us as f64 / 1e6)),
        )?;
        let policy = |f: fn(&crate::health::Policy) -> f64| self.roles.iter().map(move |r| (labels([("plugin", &r.plugin)]), f(&r.policy)));
        out.gauge("health_max_error_ratio", "The policy's error-ratio limit, per plugin.", policy(|p| p.max_error_rate))?;
        out.gauge(
            "health_min_calls",
            "Calls the policy needs in the window before the error ratio counts, per plugin.",
            policy(|p| p.min_calls as f64),
        )?;
        out.gauge(
            "health_trap_storm",
            "Traps and deadline hits in the window that make a trap storm, per plugin.",
            policy(|p| p.trap_storm as f64),
        )?;
        out.gauge(
            "health_latency_factor",
            "How many times the baseline p99 a version on trial may reach (0: off), per plugin.",
            policy(|p| p.latency_factor),
        )?;
        out.gauge("health_window_seconds", "The health window, per plugin.", policy(|p| p.window_ms as f64 / 1e3))
    }

    fn encode_net(&self, out: &mut Out) -> fmt::Result {
        let t = |i: usize| self.net.transports.iter().map(move |(t, v)| (labels([("transport", t.name())]), v[i]));
        out.gauge("sessions_open", "Connections with a session now.", [(vec![], self.net.sessions)])?;
        out.counter("sessions_opened", "Connections accepted, per transport.", t(0))?;
        out.counter(
            "sessions_closed",
            "Sessions ended, per transport and reason (client: closed by the client or the network; otherwise the error code the server closed with).",
            self.net.closed.iter().map(|((t, r), n)| (labels([("transport", t), ("reason", r)]), *n)),
        )?;
        out.counter("connections_refused", "Connections refused at the connection caps, per transport.", t(1))?;
        out.counter("messages_received", "Frames received, per transport.", t(2))?;
        out.counter("received_bytes", "Bytes of frames received, per transport.", t(3))?;
        out.counter("messages_sent", "Frames sent, per transport.", t(4))?;
        out.counter("sent_bytes", "Bytes of frames sent, per transport.", t(5))?;
        out.counter(
            "frames_refused",
            "Frames refused, per reason (rate_limited, too_large, malformed, unknown_envelope).",
            self.net.refused.iter().map(|(r, n)| (labels([("reason", r.name())]), *n)),
        )?;
        let slow: u64 = self.net.closed.iter().filter(|((_, r), _)| *r == "slow_consumer").map(|(_, n)| n).sum();
        out.counter(
            "slow_consumer_disconnects",
            "Connections closed because they did not read their messages fast enough.",
            [(vec![], slow)],
        )
    }

    fn encode_deploys(&self, out: &mut Out) -> fmt::Result {
        let d = &self.deploys;
        out.counter(
            "deploys",
            "Versions made active (a rollout started), per plugin.",
            d.deployed.iter().map(|(p, n)| (labels([("plugin", p)]), *n)),
        )?;
        out.counter("deploy_rejections", "Plugin files refused, per kind.", d.rejected.iter().map(|(k, n)| (labels([("kind", k)]), *n)))?;
        out.counter(
            "promotions",
            "Rollouts moved on, per plugin and the phase reached.",
            d.promoted.iter().map(|((p, ph), n)| (labels([("plugin", p), ("phase", ph)]), *n)),
        )?;
        out.counter(
            "rollbacks",
            "Versions rolled back, per plugin and reason (operator, swap_failed, error_rate, trap_storm, failed_restore, escalation, latency; fleet: another host of the fleet marked it bad).",
            d.rolled_back.iter().map(|((p, r), n)| (labels([("plugin", p), ("reason", r)]), *n)),
        )?;
        out.counter(
            "room_swaps",
            "Rooms that moved to a new version at a tick boundary, per plugin.",
            self.lifecycle.swaps.iter().map(|(g, n)| (labels([("plugin", g)]), *n)),
        )?;
        out.counter(
            "room_rollbacks",
            "Rooms that left a bad version by replaying their journal, per plugin.",
            self.lifecycle.rollbacks.iter().map(|(g, n)| (labels([("plugin", g)]), *n)),
        )?;
        let mut info = Vec::new();
        for r in &self.roles {
            for (version, role, phase) in &r.versions {
                info.push((labels([("plugin", &r.plugin), ("version", version), ("role", role), ("phase", phase)]), 1u64));
            }
        }
        out.gauge("plugin_version_info", "1 for each version serving a plugin, with its role (active, canary, previous) and phase.", info)?;
        let switches = self
            .switches
            .iter()
            .flat_map(|(plugin, all)| all.iter().map(move |s| (labels([("plugin", plugin), ("switch", &s.switch)]), u64::from(s.on))));
        out.gauge("rules", "Threshold rules in force.", [(Labels::new(), self.rules.0)])?;
        out.counter(
            "rule_firings",
            "Threshold rules that fired, per rule and action (at most once per subject and window).",
            self.rules.1.iter().map(|((rule, action), n)| (labels([("rule", rule), ("action", action.name())]), *n)),
        )?;
        out.gauge(
            "switch_on",
            "The operator's runtime switches: 1 on, 0 off (feature:NAME for a plugin feature, joins for new joins open).",
            switches,
        )
    }

    fn encode_saves(&self, out: &mut Out) -> fmt::Result {
        let s = &self.saves;
        let one = |v: u64| [(Labels::new(), v)];
        out.gauge("save_queue_depth", "Saves waiting to be written.", one(s.pending as u64))?;
        out.gauge("save_queue_bytes", "Bytes of saves waiting to be written.", one(s.pending_bytes as u64))?;
        out.gauge(
            "save_backpressure",
            "1 while a game is past the save queue's high-water mark (its rooms hold their inputs).",
            one(u64::from(s.backpressure)),
        )?;
        out.gauge(
            "save_store_failing",
            "1 while writes to the store fail (2 if the failure is fatal).",
            one(self.save_error.map_or(0, |fatal| if fatal { 2 } else { 1 })),
        )?;
        out.counter("saves_accepted", "Saves accepted from plugins.", one(s.accepted))?;
        out.counter("saves_coalesced", "Saves replaced by a newer one of the same player before being written.", one(s.coalesced))?;
        out.counter("saves_written", "Saves written.", one(s.written))?;
        out.counter("save_batches", "Save transactions committed.", one(s.batches))?;
        out.counter("save_write_failures", "Save transactions that failed (and were retried).", one(s.retries))?;
        out.histogram("save_batch_duration_seconds", "Time a save transaction took.", [(Labels::new(), &s.batch_us)])?;
        out.histogram(
            "critical_save_latency_seconds",
            "From a critical save's submission to its commit.",
            [(Labels::new(), &s.critical_us)],
        )?;
        let w = &self.room_writes;
        out.counter("room_commits", "Group commits of room checkpoints and durable journals (one transaction each).", one(w.commits))?;
        out.counter("room_journal_rows", "Journal rows committed (a room's ticks since its last hand-over).", one(w.journal_rows))?;
        out.counter("room_checkpoints_written", "Room checkpoints committed.", one(w.checkpoints))?;
        out.counter("room_commit_failures", "Group commits that failed and were retried (rooms held their answers).", one(w.retries))?;
        out.gauge("room_store_failing", "1 while room commits fail (rooms hold their answers).", one(u64::from(w.error.is_some())))?;
        out.histogram("room_commit_duration_seconds", "Time a group commit of room writes took.", [(Labels::new(), &w.commit_us)])
    }

    fn encode_process(&self, out: &mut Out) -> fmt::Result {
        let p = &self.process;
        out.gauge("process_resident_memory_bytes", "Resident memory of the process.", [(Labels::new(), p.resident_bytes)])?;
        out.counter("process_cpu_seconds", "CPU time of the process (user and system).", [(Labels::new(), p.cpu_seconds)])?;
        out.gauge("process_open_fds", "Open file descriptors.", [(Labels::new(), p.open_fds)])?;
        out.gauge("process_threads", "Threads of the process.", [(Labels::new(), p.threads)])?;
        out.gauge(
            "instance_pool_slots_in_use",
            "Plugin instances alive (each holds a pooling-allocator slot).",
            [(Labels::new(), self.live_instances as u64)],
        )?;
        out.gauge(
            "instance_pool_slots",
            "Pooling-allocator slots (limits.max_instances).",
            [(Labels::new(), u64::from(self.max_instances))],
        )?;
        let rt = |f: fn(&RuntimeReading) -> u64| self.runtimes.iter().map(move |r| (labels([("runtime", r.name)]), f(r)));
        out.gauge(
            "tokio_workers",
            "Worker threads, per tokio runtime (main: network, admin, saves; game: rooms).",
            rt(|r| r.workers as u64),
        )?;
        out.gauge("tokio_alive_tasks", "Tasks alive, per tokio runtime.", rt(|r| r.alive_tasks as u64))?;
        out.gauge("tokio_global_queue_depth", "Tasks waiting in the global queue, per tokio runtime.", rt(|r| r.queue as u64))?;
        out.counter(
            "tokio_busy_seconds",
            "Time worker threads spent busy, summed over the workers, per tokio runtime.",
            self.runtimes.iter().map(|r| (labels([("runtime", r.name)]), r.busy.as_secs_f64())),
        )?;
        out.gauge(
            "tokio_busy_ratio",
            "Share of worker time spent busy since the previous scrape, per tokio runtime.",
            self.runtimes.iter().filter_map(|r| Some((labels([("runtime", r.name)]), r.ratio?))),
        )?;
        out.counter("watchdog_samples", "Samples the watchdog took.", [(Labels::new(), self.watchdog_samples)])?;
        out.counter(
            "watchdog_dumps",
            "Dumps the watchdog wrote, per condition (memory, timers, journal, inbox, late, empty, tasks, connections).",
            self.watchdog_dumps.iter().map(|(c, n)| (labels([("condition", c)]), *n)),
        )
    }
}
