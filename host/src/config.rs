//! `warden.toml`: the server configuration. Every key can be overridden, in increasing precedence, by
//! the file, by environment variables `WARDEN_<KEY>` (nested keys joined with `__`, e.g.
//! `WARDEN_NET__WS_ADDR=127.0.0.1:9000`), and by `--set key.path=value` flags. Values are TOML
//! (`true`, `20`, `["chat"]`); anything that is not valid TOML is taken as a string.

use crate::runtime::Limits;
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Development mode: load unsigned plugins and admit anonymous guests. Never in production.
    pub dev: bool,
    /// Directory holding the plugin files (`*.wasm`).
    pub plugin_dir: PathBuf,
    /// Directory for the server's own data (compile cache).
    pub data_dir: PathBuf,
    /// Listeners and per-connection limits.
    pub net: NetConfig,
    /// Rooms.
    pub rooms: RoomConfig,
    /// Player authentication.
    pub auth: AuthConfig,
    /// Where saves, the registry and checkpoints are kept.
    pub storage: StorageConfig,
    /// Limits of every plugin call and instance.
    pub limits: Limits,
    /// Hot deploy: trusted signing keys and the plugin-directory watcher.
    pub deploy: DeployConfig,
    /// When a version is bad (defaults for every plugin).
    pub health: crate::health::Policy,
    /// How a new version reaches the rooms (defaults for every plugin).
    pub rollout: RolloutConfig,
    /// The operator's admin endpoint (`warden status`, `rollback`, `promote`, `pause`).
    pub admin: AdminConfig,
    /// Crash reports.
    pub crashes: CrashConfig,
    /// The leak and anomaly watchdog (`docs/observability.md`).
    pub watchdog: WatchdogConfig,
    /// Per-plugin settings, by plugin name.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Threshold rules (`[[rules]]`, see [`crate::rules`]); `warden rules --set` replaces them at runtime.
    pub rules: Vec<crate::rules::Rule>,
    /// Membership of a fleet of hosts on one PostgreSQL (`docs/fleet.md`).
    pub fleet: crate::fleet::FleetConfig,
}

/// How a new version reaches the rooms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// `canary`: a share of the rooms first, then all; `immediate`: every room at once.
    pub strategy: Strategy,
    /// Share of the live rooms that take the new version first (at least one room).
    pub canary_share: f64,
    /// How long the canary rooms run the new version before every room does, in milliseconds.
    pub canary_ms: u64,
    /// After every room runs it, how long the version stays on probation (rolled back on a breach), in
    /// milliseconds; then it is `stable`.
    pub probation_ms: u64,
}

/// A rollout strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// A share of rooms first.
    Canary,
    /// Every room at once (still on probation).
    Immediate,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig { strategy: Strategy::Canary, canary_share: 0.10, canary_ms: 10_000, probation_ms: 30_000 }
    }
}

/// The admin endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Where it listens; it must be a loopback address.
    pub addr: SocketAddr,
    /// The bearer token. Empty: a random one is made at start and written to `<data_dir>/admin.token`
    /// (mode 0600), where the `warden` commands read it.
    pub token: String,
    /// Serve `GET /metrics` without the token (for a Prometheus scraper on this machine; the endpoint
    /// still listens on loopback only). Every other route keeps asking for the token.
    pub metrics_public: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { addr: "127.0.0.1:7352".parse().unwrap(), token: String::new(), metrics_public: false }
    }
}

/// The watchdog: every `interval_ms` it samples every room and the runtime, and writes a dump to
/// `<data_dir>/dumps` when a threshold is crossed (at most one per room and condition per `repeat_ms`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchdogConfig {
    /// Off: no sampling, no dumps.
    pub enabled: bool,
    /// How often it samples, in milliseconds.
    pub interval_ms: u64,
    /// A room whose instance memory is above this share of `limits.memory_bytes`.
    pub memory_share: f64,
    /// A room with more timers pending than this.
    pub max_timers: u64,
    /// A room whose journal holds more bytes than this (its checkpoints are not keeping up).
    pub max_journal_bytes: u64,
    /// A room with more inputs waiting in its inbox than this.
    pub max_inbox: u64,
    /// A room that ran late ticks in every sample for this long, in milliseconds.
    pub late_for_ms: u64,
    /// Live tokio tasks above this many plus 3 per session and 2 per room (tasks that outlive what
    /// they served).
    pub task_slack: u64,
    /// Open connections above this many more than the authenticated players on them.
    pub max_unmatched_connections: u64,
    /// At most one dump per room and condition per this many milliseconds.
    pub repeat_ms: u64,
    /// The dump directory is kept under this many bytes; the oldest dumps go first.
    pub max_bytes: u64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            enabled: true,
            interval_ms: 5_000,
            memory_share: 0.9,
            max_timers: 500,
            max_journal_bytes: 4 << 20,
            max_inbox: 1_024,
            late_for_ms: 10_000,
            task_slack: 256,
            max_unmatched_connections: 1_000,
            repeat_ms: 600_000,
            max_bytes: 16 << 20,
        }
    }
}

/// Crash reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrashConfig {
    /// The directory (empty: `<data_dir>/crashes`).
    pub dir: PathBuf,
    /// The directory is kept under this many bytes; the oldest reports go first.
    pub max_bytes: u64,
}

impl Default for CrashConfig {
    fn default() -> Self {
        CrashConfig { dir: PathBuf::new(), max_bytes: 16 << 20 }
    }
}

/// Listeners and per-connection limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// WebSocket listener (`/ws`).
    pub ws_addr: SocketAddr,
    /// TCP listener (4-byte big-endian length + MessagePack).
    pub tcp_addr: SocketAddr,
    /// Largest accepted frame in bytes.
    pub max_frame_bytes: usize,
    /// Sustained messages per second a connection may send.
    pub msgs_per_sec: u32,
    /// Messages a connection may send in a burst above the sustained rate.
    pub burst: u32,
    /// Time allowed between connecting and `hello`, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// A connection that sends nothing for this long is closed, in milliseconds.
    pub idle_timeout_ms: u64,
    /// WebSocket ping interval, in milliseconds.
    pub heartbeat_ms: u64,
    /// Batches of outgoing frames a connection may have queued; past it the connection is closed as a
    /// slow consumer.
    pub outbound_queue: usize,
    /// Bytes of outgoing frames a connection may have queued; past it the connection is closed as a slow
    /// consumer.
    pub outbound_queue_bytes: usize,
    /// A WebSocket connection's read buffer, allocated when it opens (tungstenite's default is 128 KiB).
    /// Players send small messages, and a host holds thousands of connections: 4 KiB by default (the
    /// figures: `docs/benchmarks.md`). A larger frame (up to `max_frame_bytes`) is still read, in more
    /// reads.
    pub ws_read_buffer_bytes: usize,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Most connections open at once from one IP address.
    pub max_connections_per_ip: usize,
}

/// Instances a host needs beyond one per open room: a room that swaps or rolls back holds its new
/// instance beside its old one for a moment (one room per game thread at a time), a deploy's smoke test
/// instantiates the new version. `limits.max_instances`
/// defaults to `rooms.max_rooms` plus this; set alone, it sets `rooms.max_rooms` to itself minus this.
pub const SPARE_INSTANCES: usize = 32;

/// Rooms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomConfig {
    /// Game clock rate.
    pub tick_hz: u32,
    /// Player cap per room.
    pub max_players: u32,
    /// Most rooms open at once on this host; a join that would open one more is refused with
    /// `server_full` (rooms already open take joins as usual). Each open room holds a plugin instance:
    /// `limits.max_instances` follows this setting (see [`SPARE_INSTANCES`]).
    pub max_rooms: usize,
    /// How long an empty room stays open, in milliseconds.
    pub empty_grace_ms: u64,
    /// Inputs a room may have waiting for its next tick; senders wait past it.
    pub inbox: usize,
    /// A room checkpoints (snapshot + host state, also written to the store) every this many
    /// milliseconds of game time while its version is stable, and before every swap.
    pub checkpoint_every_ms: u64,
    /// A journal holding more entries than this makes the room checkpoint early.
    pub journal_max_entries: usize,
    /// A journal holding more bytes than this makes the room checkpoint early.
    pub journal_max_bytes: usize,
    /// A room whose instance trapped more than this many times within `restart_window_ms` escalates:
    /// its version is rolled back if still on canary or probation, else the room is closed.
    pub restart_limit: u32,
    /// The restart-intensity window, in milliseconds.
    pub restart_window_ms: u64,
    /// Back-off after a rebuild, in milliseconds: none after a room's first trap in the window, then
    /// this, doubling with each further trap (up to `restart_backoff_max_ms`). Meanwhile the room's
    /// inputs wait in its inbox; the room does not tick.
    pub restart_backoff_ms: u64,
    /// The longest back-off.
    pub restart_backoff_max_ms: u64,
    /// Run rooms on game threads of their own, apart from networking and the admin endpoint. Off, rooms
    /// share the network threads (kept as the baseline `cargo bench --bench overload` compares against).
    pub game_threads: bool,
    /// How many game threads (0: one per core).
    pub threads: usize,
    /// The game threads' nice value (0 to 19). 0 by default: their own runtime is what keeps the network
    /// threads responsive (`cargo bench --bench overload`), and a positive value also makes rooms lose
    /// to every other process on the machine (under two CPU hogs the 50-swap test failed once with nice
    /// 5, most likely a canary's latency check tripped by slowed calls).
    pub nice: i32,
    /// A room closed for crashing past its restart limit refuses joins for this long (doubling each
    /// time it is closed again, up to 16 times this), then opens from its last checkpoint: the time an
    /// operator has to deploy a fix before the same state is tried again.
    pub crash_cooldown_ms: u64,
    /// Journal every plugin call. Off, a trap ends the room and a rollback can only carry the bad
    /// version's state over; it exists to measure what journaling costs (it needs `durability =
    /// "memory"`).
    pub journal: bool,
    /// `durable` (default): each tick's journal is group-committed to the store before the tick's
    /// answers leave, so a crash never takes back an answer a player received, and a restarted host
    /// resumes every open room where its last answered tick left it. `memory`: the journal stays in
    /// memory and answers leave at once (a few milliseconds less latency); a crash takes the room back
    /// to its last checkpoint (up to `checkpoint_every_ms` of play).
    pub durability: Durability,
    /// The host's group commit of room checkpoints and durable journals starts at most this often, in
    /// milliseconds: each commit carries every room that handed over its journal meanwhile (0: as soon
    /// as the previous commit ends).
    pub commit_interval_ms: u64,
    /// When a room hands its plugin an input: `tick` (default) at its next tick, with the tick's other
    /// inputs, its answers leaving at the tick's end; `arrival` as soon as it reaches the room, its
    /// answers leaving right after the call (for chat, turn-based and lobby games). `on-tick` keeps its
    /// fixed step either way. A plugin may choose otherwise with `[plugins.NAME] dispatch`.
    pub dispatch: Dispatch,
    /// The games whose `[plugins.NAME] dispatch` differs from `dispatch` (filled in from `[plugins]`
    /// when the server starts).
    #[serde(skip)]
    pub dispatch_by_game: BTreeMap<String, Dispatch>,
}

impl RoomConfig {
    /// How the rooms of `game` dispatch their inputs.
    pub fn dispatch_of(&self, game: &str) -> Dispatch {
        self.dispatch_by_game.get(game).copied().unwrap_or(self.dispatch)
    }
}

/// When a room hands its plugin an input (`rooms.dispatch`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dispatch {
    /// At the room's next tick, with every input that arrived since the last one.
    #[default]
    Tick,
    /// As soon as it reaches the room; its answers leave right after the call.
    Arrival,
}

/// Whether a room's journal is made durable before its answers leave (`rooms.durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Group-committed each tick; answers wait for the commit.
    Durable,
    /// In memory; checkpoints only.
    Memory,
}

/// Player authentication.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Secret that signs player tokens (`warden token`). Prefer the `WARDEN_AUTH__SECRET` environment
    /// variable to writing it in the file.
    pub secret: Option<String>,
    /// Lifetime of minted tokens in seconds.
    pub token_ttl_secs: u64,
}

/// Persistence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The store: `sqlite://PATH` (embedded). Empty: `sqlite://<data_dir>/warden.db`.
    pub url: String,
    /// How long a normal-priority save may wait before it is written, in milliseconds.
    pub flush_interval_ms: u64,
    /// Most saves written in one transaction.
    pub max_batch: usize,
    /// Most bytes written in one transaction (one save is always written).
    pub max_batch_bytes: usize,
    /// Pending saves of one game above which its rooms hold their inputs (back-pressure).
    pub high_water: usize,
    /// Pending bytes of one game above which its rooms hold their inputs.
    pub high_water_bytes: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let q = crate::storage::queue::QueueConfig::default();
        StorageConfig {
            url: String::new(),
            flush_interval_ms: 1_000,
            max_batch: q.max_batch,
            max_batch_bytes: q.max_batch_bytes,
            high_water: q.high_water,
            high_water_bytes: q.high_water_bytes,
        }
    }
}

/// Hot deploy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// minisign public keys whose signatures are trusted: the base64 key line (`RW...`) or the path of
    /// a `.pub` file. A plugin must be signed by one of them (unsigned files load only with `dev`).
    pub trusted_keys: Vec<String>,
    /// Largest plugin file accepted, in bytes.
    pub max_plugin_bytes: u64,
    /// Watch the plugin directory and deploy new versions while running.
    pub watch: bool,
    /// Filesystem events closer than this are taken together, in milliseconds.
    pub debounce_ms: u64,
    /// A file must stay unchanged (size and modification time) this long before it is read, in
    /// milliseconds: a file still being copied is never read half-written.
    pub settle_ms: u64,
    /// The directory is listed again this often, for events the watcher missed, in milliseconds.
    pub rescan_ms: u64,
    /// How long a `.wasm` waits for its `.minisig` before it is rejected as unsigned, in milliseconds
    /// (not at all on a `dev` server that trusts no key: it loads unsigned files).
    pub signature_wait_ms: u64,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            trusted_keys: Vec::new(),
            max_plugin_bytes: 64 << 20,
            watch: true,
            debounce_ms: 100,
            settle_ms: 500,
            rescan_ms: 2_000,
            signature_wait_ms: 3_000,
        }
    }
}

/// One plugin's settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Feature switches on at start.
    pub features: Vec<String>,
    /// Configuration handed to the plugin's `init` (as a MessagePack map).
    pub config: toml::Table,
    /// This plugin's rollout, instead of `[rollout]`.
    pub rollout: Option<RolloutConfig>,
    /// This plugin's health policy, instead of `[health]`.
    pub health: Option<crate::health::Policy>,
    /// When its rooms hand it an input, instead of `rooms.dispatch`.
    pub dispatch: Option<Dispatch>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dev: false,
            plugin_dir: PathBuf::from("plugins.d"),
            data_dir: PathBuf::from("data"),
            net: NetConfig::default(),
            rooms: RoomConfig::default(),
            auth: AuthConfig::default(),
            storage: StorageConfig::default(),
            limits: Limits::default(),
            deploy: DeployConfig::default(),
            health: crate::health::Policy::default(),
            rollout: RolloutConfig::default(),
            admin: AdminConfig::default(),
            watchdog: WatchdogConfig::default(),
            crashes: CrashConfig::default(),
            plugins: BTreeMap::new(),
            rules: Vec::new(),
            fleet: Default::default(),
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            ws_addr: "127.0.0.1:7350".parse().unwrap(),
            tcp_addr: "127.0.0.1:7351".parse().unwrap(),
            max_frame_bytes: 64 << 10,
            msgs_per_sec: 30,
            burst: 60,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 30_000,
            heartbeat_ms: 10_000,
            outbound_queue: 256,
            outbound_queue_bytes: 1 << 20,
            ws_read_buffer_bytes: 4 << 10,
            max_connections: 10_000,
            max_connections_per_ip: 2_000,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { secret: None, token_ttl_secs: 24 * 3600 }
    }
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            tick_hz: 20,
            max_players: 16,
            max_rooms: 1_000,
            empty_grace_ms: 30_000,
            inbox: 4_096,
            checkpoint_every_ms: 5_000,
            journal_max_entries: 20_000,
            journal_max_bytes: 256 << 10,
            restart_limit: 3,
            restart_window_ms: 10_000,
            restart_backoff_ms: 250,
            restart_backoff_max_ms: 10_000,
            crash_cooldown_ms: 30_000,
            game_threads: true,
            threads: 0,
            nice: 0,
            journal: true,
            durability: Durability::Durable,
            commit_interval_ms: 2,
            dispatch: Dispatch::Tick,
            dispatch_by_game: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Loads `file` (if given; a missing file named explicitly is an error), then applies the
    /// `WARDEN_*` variables of `env` and the `--set` overrides, and checks the result.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>, sets: &[String]) -> Result<Config> {
        let mut table = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("failed to read the configuration file {}", path.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("{} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        let top_keys: Vec<String> = toml::Table::try_from(Config::default())?.keys().cloned().collect();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("WARDEN_") else { continue };
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            // Only variables that name a configuration key: WARDEN_LOG and friends are not config.
            if top_keys.contains(&path[0]) {
                set_path(&mut table, &path, &value).with_context(|| format!("in the environment variable {name}"))?;
            }
        }
        for set in sets {
            let (key, value) = set.split_once('=').with_context(|| format!("--set {set:?} must look like key.path=value"))?;
            let path: Vec<String> = key.trim().split('.').map(str::to_string).collect();
            set_path(&mut table, &path, value.trim()).with_context(|| format!("in --set {set}"))?;
        }
        let set = |section: &str, key: &str| table.get(section).and_then(|s| s.get(key)).is_some();
        let (rooms_set, instances_set) = (set("rooms", "max_rooms"), set("limits", "max_instances"));
        let mut config: Config = table.try_into().context("invalid configuration (check the key names and value types)")?;
        // The instance pool follows the room cap, whichever of the two was given.
        match (rooms_set, instances_set) {
            (_, false) => config.limits.max_instances = u32::try_from(config.rooms.max_rooms + SPARE_INSTANCES).unwrap_or(u32::MAX),
            (false, true) => config.rooms.max_rooms = (config.limits.max_instances as usize).saturating_sub(SPARE_INSTANCES).max(1),
            (true, true) => {}
        }
        config.validate()?;
        Ok(config)
    }

    /// The rooms' settings, with each plugin's own `dispatch`.
    pub fn room_config(&self) -> RoomConfig {
        let mut rooms = self.rooms.clone();
        rooms.dispatch_by_game = self.plugins.iter().filter_map(|(name, p)| p.dispatch.map(|d| (name.clone(), d))).collect();
        rooms
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<()> {
        self.limits.validate()?;
        crate::rules::RuleSet::new(self.rules.clone()).map_err(|e| anyhow::anyhow!("[[rules]]: {e:#}"))?;
        self.fleet.validate(&self.storage_url()).map_err(anyhow::Error::msg)?;
        if !(0..=19).contains(&self.rooms.nice) {
            bail!("rooms.nice must be between 0 and 19, not {}", self.rooms.nice);
        }
        if !(1..=1000).contains(&self.rooms.tick_hz) {
            bail!("rooms.tick_hz must be between 1 and 1000, not {}", self.rooms.tick_hz);
        }
        if self.rooms.max_rooms == 0 || self.limits.max_instances as usize <= self.rooms.max_rooms {
            bail!(
                "limits.max_instances ({}) must be above rooms.max_rooms ({}): each open room holds an instance, and swaps and deploys need spare ones. Leave limits.max_instances unset to have it follow rooms.max_rooms (plus {SPARE_INSTANCES})",
                self.limits.max_instances,
                self.rooms.max_rooms
            );
        }
        if !self.rooms.journal && self.rooms.durability == Durability::Durable {
            bail!("rooms.journal = false needs rooms.durability = \"memory\": a durable room is its checkpoint plus its journal");
        }
        if self.rooms.max_players == 0
            || self.rooms.inbox == 0
            || self.net.outbound_queue == 0
            || self.net.outbound_queue_bytes < self.net.max_frame_bytes
        {
            bail!(
                "rooms.max_players, rooms.inbox and net.outbound_queue must be above 0, and net.outbound_queue_bytes at least net.max_frame_bytes"
            );
        }
        // A message the plugin may send must fit a connection's outbound queue, with room for its envelope.
        if self.net.outbound_queue_bytes < self.limits.max_send_bytes + 1024 {
            bail!(
                "net.outbound_queue_bytes ({}) must be at least limits.max_send_bytes ({}) plus 1 KiB: otherwise a message the plugin may send would disconnect every player it goes to",
                self.net.outbound_queue_bytes,
                self.limits.max_send_bytes
            );
        }
        if self.net.msgs_per_sec == 0 || self.net.burst == 0 {
            bail!("net.msgs_per_sec and net.burst must be above 0");
        }
        if self.net.ws_read_buffer_bytes < 512 {
            bail!("net.ws_read_buffer_bytes must be at least 512, not {}", self.net.ws_read_buffer_bytes);
        }
        if self.net.max_frame_bytes < 64 {
            bail!("net.max_frame_bytes must be at least 64");
        }
        if !self.admin.addr.ip().is_loopback() {
            bail!(
                "admin.addr must be a loopback address (127.0.0.1 or ::1), not {}: the admin endpoint controls the server",
                self.admin.addr
            );
        }
        for (name, rollout) in std::iter::once(("rollout", &self.rollout))
            .chain(self.plugins.iter().filter_map(|(n, p)| p.rollout.as_ref().map(|r| (n.as_str(), r))))
        {
            if !(rollout.canary_share > 0.0 && rollout.canary_share <= 1.0) {
                bail!("{name}: canary_share must be above 0 and at most 1, not {}", rollout.canary_share);
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML (the secret masked).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.auth.secret.is_some() {
            shown.auth.secret = Some("<set>".into());
        }
        toml::to_string_pretty(&shown).expect("the configuration serializes")
    }

    /// The store URL: `storage.url`, or the SQLite file in the data directory.
    pub fn storage_url(&self) -> String {
        if self.storage.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("warden.db").display())
        } else {
            self.storage.url.clone()
        }
    }

    /// The watchdog's dump directory: `<data_dir>/dumps`.
    pub fn dump_dir(&self) -> PathBuf {
        self.data_dir.join("dumps")
    }

    /// The crash report directory: `crashes.dir`, or `<data_dir>/crashes`.
    pub fn crash_dir(&self) -> PathBuf {
        if self.crashes.dir.as_os_str().is_empty() { self.data_dir.join("crashes") } else { self.crashes.dir.clone() }
    }

    /// The token secret, or why there is none.
    pub fn secret(&self) -> Result<&[u8]> {
        match &self.auth.secret {
            Some(s) if s.len() >= 16 => Ok(s.as_bytes()),
            Some(_) => bail!("auth.secret must be at least 16 characters"),
            None => bail!("no auth.secret configured: set WARDEN_AUTH__SECRET (16+ characters) or auth.secret in warden.toml"),
        }
    }
}

/// Sets `path` in `table` to `raw` parsed as a TOML value (or a string if it is not one).
fn set_path(table: &mut toml::Table, path: &[String], raw: &str) -> Result<()> {
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut at = table;
    for key in parents {
        let entry = at.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = entry.as_table_mut().with_context(|| format!("{key} is not a table"))?;
    }
    at.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_plugins_dispatch_overrides_the_rooms_default() {
        let sets = ["plugins.chat.dispatch=\"arrival\"".to_string(), "plugins.arena.features=[]".to_string()];
        let rooms = Config::load(None, env(&[]), &sets).unwrap().room_config();
        assert_eq!(
            (rooms.dispatch_of("chat"), rooms.dispatch_of("arena"), rooms.dispatch_of("hello")),
            (Dispatch::Arrival, Dispatch::Tick, Dispatch::Tick)
        );
        let sets = ["rooms.dispatch=\"arrival\"".to_string(), "plugins.arena.dispatch=\"tick\"".to_string()];
        let rooms = Config::load(None, env(&[]), &sets).unwrap().room_config();
        assert_eq!((rooms.dispatch_of("chat"), rooms.dispatch_of("arena")), (Dispatch::Arrival, Dispatch::Tick));
        let err = Config::load(None, env(&[]), &["rooms.dispatch=\"soon\"".to_string()]).unwrap_err();
        assert!(format!("{err:#}").contains("dispatch"), "{err:#}");
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.toml");
        std::fs::write(&file, "dev = true\n[rooms]\ntick_hz = 30\nmax_players = 8\n[plugins.chat]\nfeatures = [\"chat\"]\n").unwrap();
        let cfg = Config::load(
            Some(&file),
            env(&[("WARDEN_ROOMS__TICK_HZ", "40"), ("WARDEN_NET__WS_ADDR", "127.0.0.1:9000"), ("WARDEN_LOG", "debug")]),
            &["rooms.tick_hz=50".into(), "plugins.arena.config.width=8".into()],
        )
        .unwrap();
        assert!(cfg.dev);
        assert_eq!(cfg.rooms.tick_hz, 50, "a flag beats the environment, which beats the file");
        assert_eq!(cfg.rooms.max_players, 8);
        assert_eq!(cfg.net.ws_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cfg.plugins["chat"].features, ["chat"]);
        assert_eq!(cfg.plugins["arena"].config["width"].as_integer(), Some(8));
        assert_eq!(cfg.net.max_frame_bytes, 64 << 10, "untouched keys keep their defaults");
    }

    #[test]
    fn setting_one_key_of_a_table_keeps_the_defaults_of_the_others() {
        let cfg = Config::load(None, env(&[("WARDEN_AUTH__SECRET", "0123456789abcdef")]), &["net.burst=5".into()]).unwrap();
        assert_eq!(cfg.auth.token_ttl_secs, AuthConfig::default().token_ttl_secs);
        assert_eq!(cfg.auth.token_ttl_secs, 24 * 3600);
        assert_eq!(cfg.net.msgs_per_sec, NetConfig::default().msgs_per_sec);
        assert_eq!(cfg.limits, Limits::default());
    }

    #[test]
    fn mistakes_are_named() {
        let err = Config::load(None, env(&[]), &["rooms.tick_hzz=5".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("tick_hzz"), "{err:#}");
        let err = Config::load(None, env(&[("WARDEN_ROOMS__TICK_HZ", "fast")]), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("invalid configuration"), "{err:#}");
        let err = Config::load(None, env(&[]), &["rooms.tick_hz=0".into()]).unwrap_err();
        assert!(err.to_string().contains("between 1 and 1000"), "{err:#}");
        let err = Config::load(Some(Path::new("/nonexistent/warden.toml")), env(&[]), &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/warden.toml"), "{err:#}");
    }

    #[test]
    fn printed_config_loads_back_and_hides_the_secret() {
        let cfg = Config::load(None, env(&[("WARDEN_AUTH__SECRET", "0123456789abcdef")]), &[]).unwrap();
        let shown = cfg.to_toml();
        assert!(!shown.contains("0123456789abcdef") && shown.contains("<set>"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.toml"), &shown).unwrap();
        let back = Config::load(Some(&dir.path().join("w.toml")), env(&[]), &[]).unwrap();
        assert_eq!(back.rooms, cfg.rooms);
    }
}
