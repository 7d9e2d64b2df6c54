//! Persistence: player saves, the version registry, the operator's switches, the audit log and room
//! checkpoints, in one store.
//!
//! [`Store`] is the one API; each backend is a file: [`sqlite`] (embedded, one host) and [`postgres`]
//! (one database for a fleet of hosts). Plugins' saves reach it through the [`queue::SaveQueue`], which
//! coalesces, batches and acknowledges only durable writes; rooms' checkpoints and durable journals
//! through [`Store::commit_rooms`], the host's group commit.

pub mod export;
pub mod fleet_deploy;
pub mod hosts;
pub mod owners;
pub mod placement;
pub mod postgres;
pub mod queue;
pub mod rooms;
pub mod segments;
pub mod sqlite;

pub use export::StoreExport;
pub use rooms::{RoomCommit, RoomWrite};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Saves larger than this are stored lz4-compressed (when that makes them smaller).
pub const COMPRESS_ABOVE: usize = 1024;

/// One player save to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveWrite {
    /// Game (plugin) name.
    pub game: String,
    /// Player id.
    pub player: String,
    /// The save, uncompressed.
    pub data: Vec<u8>,
}

/// A save as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredSave {
    /// The save, uncompressed.
    pub data: Vec<u8>,
    /// Its revision: 1 for the first save of the player, then one more per write.
    pub revision: i64,
    /// Unix milliseconds of the write.
    pub updated_at_ms: i64,
    /// Whether it is stored compressed.
    pub compressed: bool,
}

/// Where a plugin version is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Verified and compiled, not yet serving.
    Staged,
    /// On trial in a share of rooms.
    Canary,
    /// Serving every room, on trial.
    Probation,
    /// Serving every room, past its trial.
    Active,
    /// Past its trial, no longer serving: what a rollback can go back to.
    Stable,
    /// Replaced by a newer version before it finished its trial; not a rollback target by default.
    Superseded,
    /// Rolled back; never loaded again.
    Bad,
}

impl VersionState {
    /// The name stored in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Staged => "staged",
            VersionState::Canary => "canary",
            VersionState::Probation => "probation",
            VersionState::Active => "active",
            VersionState::Stable => "stable",
            VersionState::Superseded => "superseded",
            VersionState::Bad => "bad",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "staged" => VersionState::Staged,
            "canary" => VersionState::Canary,
            "probation" => VersionState::Probation,
            "active" => VersionState::Active,
            "stable" => VersionState::Stable,
            "superseded" => VersionState::Superseded,
            "bad" => VersionState::Bad,
            other => bail!("unknown version state {other:?} in the registry"),
        })
    }
}

/// A registered plugin version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    /// Plugin name.
    pub plugin: String,
    /// Version.
    pub version: String,
    /// State.
    pub state: VersionState,
    /// sha256 of the component.
    pub sha256: String,
}

impl VersionState {
    /// Whether the version finished its trial and is not bad: a rollback target.
    pub fn is_proven(self) -> bool {
        matches!(self, VersionState::Active | VersionState::Stable)
    }

    /// Whether rooms run it.
    pub fn is_serving(self) -> bool {
        matches!(self, VersionState::Canary | VersionState::Probation | VersionState::Active)
    }
}

/// A plugin's rollout in progress, as stored: a restart resumes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutRecord {
    /// Plugin name.
    pub plugin: String,
    /// The version on trial.
    pub version: String,
    /// `canary` or `probation`.
    pub phase: String,
    /// How long the phase has run, across restarts.
    pub elapsed_ms: u64,
    /// Whether the operator paused it.
    pub paused: bool,
    /// The canary's rooms.
    pub canary_rooms: Vec<String>,
    /// The p99 of the version it replaces, when it began.
    pub previous_p99_us: Option<u64>,
}

/// What a rollout step changes in the registry, written in one transaction: either all of it is
/// stored or none of it.
#[derive(Clone, Debug, Default)]
pub struct Transition {
    /// Version states to set.
    pub versions: Vec<VersionRecord>,
    /// The rollout row: `Some(Some(r))` stores `r`, `Some(None)` deletes it, `None` leaves it.
    pub rollout: Option<Option<RolloutRecord>>,
    /// Raise the plugin's floor to this version (never lowers it).
    pub floor: Option<(String, semver::Version)>,
    /// Write only if this holds, checked in the transaction while it holds the plugin's registry lock:
    /// otherwise nothing is written and [`Store::transition`] returns false. Several hosts of a fleet
    /// may take the same step at once (two see one breach); one of them takes it.
    pub expect: Option<Expect>,
    /// The step's audit entry, written in the same transaction (one step, one entry).
    pub audit: Option<AuditWrite>,
}

/// A condition on one version's registry state ([`Transition::expect`]).
#[derive(Clone, Debug)]
pub struct Expect {
    /// The version.
    pub version: String,
    /// The states it must be in; empty: it must not be registered at all.
    pub states: Vec<VersionState>,
}

impl Expect {
    /// Whether a version in `state` (`None`: not registered) meets it.
    pub fn holds(&self, state: Option<&str>) -> bool {
        match state {
            None => self.states.is_empty(),
            Some(s) => self.states.iter().any(|e| e.as_str() == s),
        }
    }
}

/// An audit entry to write ([`Transition::audit`]); its plugin is the transition's.
#[derive(Clone, Debug)]
pub struct AuditWrite {
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// The version it is about.
    pub version: Option<String>,
    /// Why, in words.
    pub detail: String,
}

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Who (an operator, `deploy`, `health`, ...).
    pub actor: String,
    /// What (`deploy`, `reject`, `rollback`, ...).
    pub action: String,
    /// Plugin, if any.
    pub plugin: Option<String>,
    /// Version, if any.
    pub version: Option<String>,
    /// Why, in words.
    pub detail: String,
}

/// A room's last checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Game name.
    pub game: String,
    /// Room id.
    pub room: String,
    /// Plugin version that produced the state.
    pub version: String,
    /// Game tick of the snapshot.
    pub tick: i64,
    /// The encoded checkpoint ([`crate::room::journal::Base::encode`]).
    pub state: Vec<u8>,
    /// The version the room runs while it is open (`None` once it closed cleanly). It differs from
    /// `version` while the room runs a version on trial from the checkpoint taken before its swap.
    pub running: Option<String>,
}

/// A stored tick of a room's durable journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRow {
    /// Game name (shared: a room hands a row over every tick, and the store's index keys by it).
    pub game: Arc<str>,
    /// Room id (shared, as `game`).
    pub room: Arc<str>,
    /// The tick whose calls it holds.
    pub tick: i64,
    /// The calls ([`crate::room::journal::Chunk`]).
    pub data: Vec<u8>,
}

/// The store, whichever backend is behind it.
#[derive(Clone)]
pub enum Store {
    /// SQLite, embedded.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL, for fleets.
    Postgres(postgres::PgStore),
}

/// Calls the same method on whichever backend is behind the store.
macro_rules! backend {
    ($store:expr, $s:ident => $call:expr) => {
        match $store {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// Opens the store at `url` (`sqlite://path/to/file.db` or `postgres://user@host:port/database`),
    /// creating (SQLite) and migrating the schema.
    pub async fn open(url: &str) -> Result<Store> {
        if url.starts_with("sqlite:") {
            return Ok(Store::Sqlite(sqlite::SqliteStore::open(url).await?));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Store::Postgres(postgres::PgStore::open(url).await?));
        }
        bail!("unsupported store URL {:?}: use sqlite://PATH (embedded, one host) or postgres://USER@HOST:PORT/DATABASE", redact(url))
    }

    /// Which backend: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Writes a batch of saves (at most one per player) in one transaction; returns each save's new
    /// revision, in order.
    pub async fn write_saves(&self, batch: &[SaveWrite]) -> Result<Vec<i64>> {
        backend!(self, s => s.write_saves(batch).await)
    }

    /// The stored save of `player` in `game`.
    pub async fn load_save(&self, game: &str, player: &str) -> Result<Option<StoredSave>> {
        backend!(self, s => s.load_save(game, player).await)
    }

    /// Every save of `game` (or of every game), ordered by game and player.
    pub async fn all_saves(&self, game: Option<&str>) -> Result<Vec<(String, String, StoredSave)>> {
        backend!(self, s => s.all_saves(game).await)
    }

    /// Names of every plugin in the registry.
    pub async fn plugins(&self) -> Result<Vec<String>> {
        backend!(self, s => s.plugins().await)
    }

    /// Every registered version of `plugin`.
    pub async fn versions(&self, plugin: &str) -> Result<Vec<VersionRecord>> {
        backend!(self, s => s.versions(plugin).await)
    }

    /// The version floor of `plugin`, if any.
    pub async fn floor(&self, plugin: &str) -> Result<Option<semver::Version>> {
        backend!(self, s => s.floor(plugin).await)
    }

    /// Raises the floor of `plugin` to `version`; a floor never goes down.
    pub async fn raise_floor(&self, plugin: &str, version: &semver::Version) -> Result<()> {
        backend!(self, s => s.raise_floor(plugin, version).await)
    }

    /// Applies a rollout step to the registry in one transaction. False: its [`Transition::expect`]
    /// did not hold, and nothing was written.
    pub async fn transition(&self, plugin: &str, t: &Transition) -> Result<bool> {
        backend!(self, s => s.transition(plugin, t).await)
    }

    /// The stored rollout of `plugin`, if one is in progress.
    pub async fn rollout(&self, plugin: &str) -> Result<Option<RolloutRecord>> {
        backend!(self, s => s.rollout(plugin).await)
    }

    /// Records how long `plugin`'s rollout of `version` has run (if that rollout is still the stored one).
    pub async fn rollout_elapsed(&self, plugin: &str, version: &str, elapsed_ms: u64) -> Result<()> {
        backend!(self, s => s.rollout_elapsed(plugin, version, elapsed_ms).await)
    }

    /// Appends an audit entry; returns its id.
    pub async fn audit(&self, actor: &str, action: &str, plugin: Option<&str>, version: Option<&str>, detail: &str) -> Result<i64> {
        backend!(self, s => s.audit(actor, action, plugin, version, detail).await)
    }

    /// Stores switch `switch` (`feature:NAME` or `joins`) of `plugin` with its audit entry (action
    /// `switch`), in one transaction: a change is never stored unaudited. Returns the entry's id.
    pub async fn set_switch(&self, plugin: &str, switch: &str, on: bool, actor: &str, detail: &str) -> Result<i64> {
        backend!(self, s => s.set_switch(plugin, switch, on, actor, detail).await)
    }

    /// The stored switches of `plugin`: (switch, on), by switch.
    pub async fn switches(&self, plugin: &str) -> Result<Vec<(String, bool)>> {
        backend!(self, s => s.switches(plugin).await)
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        backend!(self, s => s.audit_log(limit).await)
    }

    /// Replaces a room's checkpoint.
    pub async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        backend!(self, s => s.put_checkpoint(checkpoint).await)
    }

    /// Replaces the checkpoints of several rooms at once.
    pub async fn put_checkpoints(&self, batch: &[Checkpoint]) -> Result<()> {
        backend!(self, s => s.put_checkpoints(batch).await)
    }

    /// A room's checkpoint.
    pub async fn checkpoint(&self, game: &str, room: &str) -> Result<Option<Checkpoint>> {
        backend!(self, s => s.checkpoint(game, room).await)
    }

    /// Commits what rooms wrote since the last commit, in one transaction (see [`RoomCommit`]).
    pub async fn commit_rooms(&self, commit: &RoomCommit) -> Result<()> {
        backend!(self, s => s.commit_rooms(commit).await)
    }

    /// The checkpoints of every room that was open (its `running` is set), by game and room.
    pub async fn open_rooms(&self) -> Result<Vec<Checkpoint>> {
        backend!(self, s => s.open_rooms().await)
    }

    /// A room's durable journal after `tick` (its checkpoint's), oldest first.
    pub async fn journal(&self, game: &str, room: &str, after_tick: i64) -> Result<Vec<JournalRow>> {
        backend!(self, s => s.journal(game, room, after_tick).await)
    }

    /// Journal segments still needed by some room ([`segments`]; tests and diagnostics).
    pub async fn journal_segments(&self) -> Result<usize> {
        backend!(self, s => s.journal_segments().await)
    }

    /// Shortens how long a journal segment may stay before the rows still needed in it move to per-room
    /// rows (tests).
    pub fn set_spill_after(&self, after: std::time::Duration) {
        backend!(self, s => s.set_spill_after(after))
    }

    /// Everything the store holds, for `warden store migrate`.
    pub async fn export(&self) -> Result<StoreExport> {
        backend!(self, s => s.export().await)
    }

    /// Writes `data` into this store, which must be empty, in one transaction.
    pub async fn import(&self, data: &StoreExport) -> Result<()> {
        backend!(self, s => s.import(data).await)
    }

    /// Whether the store holds nothing yet (no save, version, audit entry or checkpoint).
    pub async fn is_empty(&self) -> Result<bool> {
        backend!(self, s => s.is_empty().await)
    }
}

/// `url` with its password (if any) replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// The bytes to store for `data`, and whether they are compressed.
pub fn pack(data: &[u8]) -> (Vec<u8>, bool) {
    if data.len() > COMPRESS_ABOVE {
        let packed = lz4_flex::compress_prepend_size(data);
        if packed.len() < data.len() {
            return (packed, true);
        }
    }
    (data.to_vec(), false)
}

/// The save bytes from stored bytes.
pub fn unpack(stored: Vec<u8>, compressed: bool) -> Result<Vec<u8>> {
    if !compressed {
        return Ok(stored);
    }
    lz4_flex::decompress_size_prepended(&stored).map_err(|e| anyhow::anyhow!("a stored save does not decompress: {e}"))
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
