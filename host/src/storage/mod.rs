//! Persistence: player saves, the version registry, the operator's switches, the audit log and room
//! checkpoints, in one store.
//!
//! [`Store`] is the one API; each backend is a file ([`sqlite`] now, PostgreSQL for fleets later).
//! Plugins' saves reach it through the [`queue::SaveQueue`], which coalesces, batches and acknowledges
//! only durable writes.

pub mod queue;
pub mod sqlite;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

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
    /// The snapshot bytes.
    pub state: Vec<u8>,
}

/// The store, whichever backend is behind it.
#[derive(Clone)]
pub enum Store {
    /// SQLite, embedded.
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens the store at `url` (`sqlite://path/to/file.db`), creating and migrating the schema.
    pub async fn open(url: &str) -> Result<Store> {
        if url.starts_with("sqlite:") {
            return Ok(Store::Sqlite(sqlite::SqliteStore::open(url).await?));
        }
        bail!("unsupported store URL {url:?}: use sqlite://PATH (PostgreSQL arrives with fleets)")
    }

    /// Writes a batch of saves (at most one per player) in one transaction; returns each save's new
    /// revision, in order.
    pub async fn write_saves(&self, batch: &[SaveWrite]) -> Result<Vec<i64>> {
        match self {
            Store::Sqlite(s) => s.write_saves(batch).await,
        }
    }

    /// The stored save of `player` in `game`.
    pub async fn load_save(&self, game: &str, player: &str) -> Result<Option<StoredSave>> {
        match self {
            Store::Sqlite(s) => s.load_save(game, player).await,
        }
    }

    /// Every save of `game` (or of every game), ordered by game and player.
    pub async fn all_saves(&self, game: Option<&str>) -> Result<Vec<(String, String, StoredSave)>> {
        match self {
            Store::Sqlite(s) => s.all_saves(game).await,
        }
    }

    /// Names of every plugin in the registry.
    pub async fn plugins(&self) -> Result<Vec<String>> {
        match self {
            Store::Sqlite(s) => s.plugins().await,
        }
    }

    /// Every registered version of `plugin`.
    pub async fn versions(&self, plugin: &str) -> Result<Vec<VersionRecord>> {
        match self {
            Store::Sqlite(s) => s.versions(plugin).await,
        }
    }

    /// The version floor of `plugin`, if any.
    pub async fn floor(&self, plugin: &str) -> Result<Option<semver::Version>> {
        match self {
            Store::Sqlite(s) => s.floor(plugin).await,
        }
    }

    /// Raises the floor of `plugin` to `version`; a floor never goes down.
    pub async fn raise_floor(&self, plugin: &str, version: &semver::Version) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.raise_floor(plugin, version).await,
        }
    }

    /// Applies a rollout step to the registry in one transaction.
    pub async fn transition(&self, plugin: &str, t: &Transition) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.transition(plugin, t).await,
        }
    }

    /// The stored rollout of `plugin`, if one is in progress.
    pub async fn rollout(&self, plugin: &str) -> Result<Option<RolloutRecord>> {
        match self {
            Store::Sqlite(s) => s.rollout(plugin).await,
        }
    }

    /// Records how long `plugin`'s rollout of `version` has run (if that rollout is still the stored one).
    pub async fn rollout_elapsed(&self, plugin: &str, version: &str, elapsed_ms: u64) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.rollout_elapsed(plugin, version, elapsed_ms).await,
        }
    }

    /// Appends an audit entry; returns its id.
    pub async fn audit(&self, actor: &str, action: &str, plugin: Option<&str>, version: Option<&str>, detail: &str) -> Result<i64> {
        match self {
            Store::Sqlite(s) => s.audit(actor, action, plugin, version, detail).await,
        }
    }

    /// Stores switch `switch` (`feature:NAME` or `joins`) of `plugin` with its audit entry (action
    /// `switch`), in one transaction: a change is never stored unaudited. Returns the entry's id.
    pub async fn set_switch(&self, plugin: &str, switch: &str, on: bool, actor: &str, detail: &str) -> Result<i64> {
        match self {
            Store::Sqlite(s) => s.set_switch(plugin, switch, on, actor, detail).await,
        }
    }

    /// The stored switches of `plugin`: (switch, on), by switch.
    pub async fn switches(&self, plugin: &str) -> Result<Vec<(String, bool)>> {
        match self {
            Store::Sqlite(s) => s.switches(plugin).await,
        }
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        match self {
            Store::Sqlite(s) => s.audit_log(limit).await,
        }
    }

    /// Replaces a room's checkpoint.
    pub async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.put_checkpoint(checkpoint).await,
        }
    }

    /// Replaces the checkpoints of several rooms at once.
    pub async fn put_checkpoints(&self, batch: &[Checkpoint]) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.put_checkpoints(batch).await,
        }
    }

    /// A room's checkpoint.
    pub async fn checkpoint(&self, game: &str, room: &str) -> Result<Option<Checkpoint>> {
        match self {
            Store::Sqlite(s) => s.checkpoint(game, room).await,
        }
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
