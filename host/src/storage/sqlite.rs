//! The SQLite backend: WAL journal, `synchronous=FULL` (a committed transaction survives power loss),
//! schema created and migrated by the program (`host/migrations/sqlite`).

use super::segments::{self, SegmentIndex};
use segment_tables::{delete_segments, insert_segment};

mod segment_tables;
use super::{
    AuditEntry, Checkpoint, JournalRow, RolloutRecord, RoomCommit, SaveWrite, StoreExport, StoredSave, Transition, VersionRecord,
    VersionState, now_ms, pack, unpack,
};
use anyhow::{Context as _, Result};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous, SqliteTransactionManager,
};
use sqlx::{Connection as _, TransactionManager as _};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// An open SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    /// Connections that read.
    pool: SqlitePool,
    /// The one connection that writes, outside the pool. SQLite runs one write transaction at a time
    /// anyway; with one connection doing all of them, its page cache stays valid from one to the next (a
    /// connection that starts a transaction after another one wrote drops its whole cache, as in WAL
    /// mode SQLite cannot tell which pages changed, and reads the pages again). And a pooled connection
    /// costs two more trips to SQLite's worker thread per transaction (sqlx pings it when it is taken
    /// and when it is returned, the latter from a task of its own), each a thread wake-up on both sides:
    /// for the room writer's hundreds of commits a second, most of what durable rooms cost in CPU.
    writes: Arc<tokio::sync::Mutex<SqliteConnection>>,
    /// Which rooms need which journal segments: built on first use, guarded for the whole of a commit.
    index: Arc<tokio::sync::Mutex<Option<SegmentIndex>>>,
    /// [`segments::SPILL_AFTER`], in ms (tests shorten it).
    spill_after_ms: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, 4, |o| o).await
    }

    /// Opens with `connections` pooled connections to read and one to write, and extra connection
    /// options (tests use this to impose SQLite limits, e.g. a maximum size to simulate a full disk).
    pub async fn open_with(url: &str, connections: u32, extra: impl FnOnce(SqliteConnectOptions) -> SqliteConnectOptions) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("bad SQLite URL {url:?} (expected sqlite://PATH)"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let options = extra(options);
        if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("failed to create the database directory {}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("failed to open the SQLite database {url}"))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.with_context(|| format!("failed to migrate the schema of {url}"))?;
        let writes = SqliteConnection::connect_with(&options).await.with_context(|| format!("failed to open the SQLite database {url}"))?;
        Ok(SqliteStore {
            pool,
            writes: Arc::new(tokio::sync::Mutex::new(writes)),
            index: Default::default(),
            spill_after_ms: Arc::new(AtomicU64::new(segments::SPILL_AFTER.as_millis() as u64)),
        })
    }

    /// Writes a batch of saves in one transaction; each save's revision goes up by one. Rows go in
    /// multi-row statements (a statement per save costs a round trip to SQLite's worker thread each).
    /// A batch must not name the same player twice (the queue coalesces).
    pub async fn write_saves(&self, batch: &[SaveWrite]) -> Result<Vec<i64>> {
        /// 7 parameters a row, well under SQLite's limit of 32,766 parameters a statement.
        const ROWS_PER_STATEMENT: usize = 500;
        let mut tx = self.begin_write().await?;
        let mut revisions = std::collections::HashMap::with_capacity(batch.len());
        let at = now_ms();
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut query =
                sqlx::QueryBuilder::new("INSERT INTO player_saves (game, player, revision, data, compressed, size, updated_at) ");
            query.push_values(chunk, |mut row, save| {
                let (bytes, compressed) = pack(&save.data);
                row.push_bind(&save.game)
                    .push_bind(&save.player)
                    .push_bind(1i64)
                    .push_bind(bytes)
                    .push_bind(compressed)
                    .push_bind(save.data.len() as i64)
                    .push_bind(at);
            });
            query.push(
                " ON CONFLICT (game, player) DO UPDATE SET revision = player_saves.revision + 1, data = excluded.data,
                  compressed = excluded.compressed, size = excluded.size, updated_at = excluded.updated_at
                  RETURNING game, player, revision",
            );
            for row in query.build().fetch_all(&mut *tx).await? {
                revisions.insert((row.get::<String, _>("game"), row.get::<String, _>("player")), row.get::<i64, _>("revision"));
            }
        }
        tx.commit().await?;
        Ok(batch.iter().map(|s| revisions.get(&(s.game.clone(), s.player.clone())).copied().unwrap_or(0)).collect())
    }

    /// The stored save of `player` in `game`.
    pub async fn load_save(&self, game: &str, player: &str) -> Result<Option<StoredSave>> {
        let row = sqlx::query("SELECT data, compressed, revision, updated_at FROM player_saves WHERE game = ?1 AND player = ?2")
            .bind(game)
            .bind(player)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stored_save).transpose()
    }

    /// Every save of `game` (or of every game), ordered by game and player.
    pub async fn all_saves(&self, game: Option<&str>) -> Result<Vec<(String, String, StoredSave)>> {
        let rows = sqlx::query(
            "SELECT game, player, data, compressed, revision, updated_at FROM player_saves WHERE ?1 IS NULL OR game = ?1 ORDER BY game, player",
        )
        .bind(game)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|row| Ok((row.get("game"), row.get("player"), stored_save(&row)?))).collect()
    }

    /// Names of every plugin in the registry.
    pub async fn plugins(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT DISTINCT plugin FROM plugin_versions ORDER BY plugin").fetch_all(&self.pool).await?)
    }

    /// Every registered version of `plugin`, oldest registration first.
    pub async fn versions(&self, plugin: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query("SELECT plugin, version, state, sha256 FROM plugin_versions WHERE plugin = ?1 ORDER BY updated_at, version")
            .bind(plugin)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(VersionRecord {
                    plugin: row.get("plugin"),
                    version: row.get("version"),
                    state: VersionState::parse(row.get("state"))?,
                    sha256: row.get("sha256"),
                })
            })
            .collect()
    }

    /// The version floor of `plugin`.
    pub async fn floor(&self, plugin: &str) -> Result<Option<semver::Version>> {
        let floor: Option<String> =
            sqlx::query_scalar("SELECT floor FROM version_floors WHERE plugin = ?1").bind(plugin).fetch_optional(&self.pool).await?;
        floor.map(|f| semver::Version::parse(&f).with_context(|| format!("the stored floor {f:?} of {plugin} is not semver"))).transpose()
    }

    /// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`), waiting up to the
    /// busy timeout for it. A deferred transaction that reads and then writes cannot wait: if another
    /// connection committed in between, its upgrade fails at once with "database is locked", which under
    /// load rejected deploys (the registry) while rooms wrote checkpoints.
    async fn begin_write(&self) -> Result<WriteTx> {
        let mut conn = self.writes.clone().lock_owned().await;
        SqliteTransactionManager::begin(&mut conn, Some("BEGIN IMMEDIATE".into())).await?;
        Ok(WriteTx(Some(conn)))
    }

    /// Applies a rollout step in one `BEGIN IMMEDIATE` transaction.
    pub async fn transition(&self, plugin: &str, t: &Transition) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let at = now_ms();
        if let Some(e) = &t.expect {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM plugin_versions WHERE plugin = ?1 AND version = ?2")
                .bind(plugin)
                .bind(&e.version)
                .fetch_optional(&mut *tx)
                .await?;
            if !e.holds(state.as_deref()) {
                return Ok(false);
            }
        }
        for r in &t.versions {
            sqlx::query(
                "INSERT INTO plugin_versions (plugin, version, state, sha256, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (plugin, version) DO UPDATE SET state = excluded.state, sha256 = excluded.sha256, updated_at = excluded.updated_at",
            )
            .bind(&r.plugin)
            .bind(&r.version)
            .bind(r.state.as_str())
            .bind(&r.sha256)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        match &t.rollout {
            None => {}
            Some(None) => {
                sqlx::query("DELETE FROM plugin_rollouts WHERE plugin = ?1").bind(plugin).execute(&mut *tx).await?;
            }
            Some(Some(r)) => Self::put_rollout(&mut tx, plugin, r).await?,
        }
        if let Some((plugin, version)) = &t.floor {
            Self::raise_floor_in(&mut tx, plugin, version).await?;
        }
        if let Some(a) = &t.audit {
            sqlx::query("INSERT INTO audit_log (at, actor, action, plugin, version, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                .bind(at)
                .bind(&a.actor)
                .bind(&a.action)
                .bind(plugin)
                .bind(&a.version)
                .bind(&a.detail)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Stores `plugin`'s rollout (replacing the one it had).
    async fn put_rollout(tx: &mut SqliteConnection, plugin: &str, r: &RolloutRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_rollouts (plugin, version, phase, elapsed_ms, paused, canary_rooms, previous_p99_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (plugin) DO UPDATE SET version = excluded.version, phase = excluded.phase,
               elapsed_ms = excluded.elapsed_ms, paused = excluded.paused, canary_rooms = excluded.canary_rooms,
               previous_p99_us = excluded.previous_p99_us",
        )
        .bind(plugin)
        .bind(&r.version)
        .bind(&r.phase)
        .bind(r.elapsed_ms as i64)
        .bind(r.paused)
        .bind(serde_json::to_string(&r.canary_rooms)?)
        .bind(r.previous_p99_us.map(|p| p as i64))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// The stored rollout of `plugin`.
    pub async fn rollout(&self, plugin: &str) -> Result<Option<RolloutRecord>> {
        let row =
            sqlx::query("SELECT version, phase, elapsed_ms, paused, canary_rooms, previous_p99_us FROM plugin_rollouts WHERE plugin = ?1")
                .bind(plugin)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            let rooms: String = row.get("canary_rooms");
            Ok(RolloutRecord {
                plugin: plugin.to_string(),
                version: row.get("version"),
                phase: row.get("phase"),
                elapsed_ms: row.get::<i64, _>("elapsed_ms").max(0) as u64,
                paused: row.get("paused"),
                canary_rooms: serde_json::from_str(&rooms)
                    .with_context(|| format!("the stored canary rooms of {plugin} are not a list"))?,
                previous_p99_us: row.get::<Option<i64>, _>("previous_p99_us").map(|p| p.max(0) as u64),
            })
        })
        .transpose()
    }

    /// Records the time `plugin`'s rollout of `version` has run.
    pub async fn rollout_elapsed(&self, plugin: &str, version: &str, elapsed_ms: u64) -> Result<()> {
        sqlx::query("UPDATE plugin_rollouts SET elapsed_ms = ?3 WHERE plugin = ?1 AND version = ?2")
            .bind(plugin)
            .bind(version)
            .bind(elapsed_ms as i64)
            .execute(&mut *self.writes.lock().await)
            .await?;
        Ok(())
    }

    /// Raises the floor (never lowers it), in one transaction.
    pub async fn raise_floor(&self, plugin: &str, version: &semver::Version) -> Result<()> {
        let mut tx = self.begin_write().await?;
        Self::raise_floor_in(&mut tx, plugin, version).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn raise_floor_in(tx: &mut SqliteConnection, plugin: &str, version: &semver::Version) -> Result<()> {
        let current: Option<String> =
            sqlx::query_scalar("SELECT floor FROM version_floors WHERE plugin = ?1").bind(plugin).fetch_optional(&mut *tx).await?;
        let higher = match current.as_deref().map(semver::Version::parse) {
            Some(Ok(current)) => *version > current,
            _ => true,
        };
        if higher {
            sqlx::query(
                "INSERT INTO version_floors (plugin, floor) VALUES (?1, ?2) ON CONFLICT (plugin) DO UPDATE SET floor = excluded.floor",
            )
            .bind(plugin)
            .bind(version.to_string())
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Appends an audit entry.
    pub async fn audit(&self, actor: &str, action: &str, plugin: Option<&str>, version: Option<&str>, detail: &str) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, plugin, version, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )
        .bind(now_ms())
        .bind(actor)
        .bind(action)
        .bind(plugin)
        .bind(version)
        .bind(detail)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Stores switch `switch` of `plugin` and its audit entry in one transaction; returns the entry's id.
    pub async fn set_switch(&self, plugin: &str, switch: &str, on: bool, actor: &str, detail: &str) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let at = now_ms();
        sqlx::query(
            "INSERT INTO plugin_switches (plugin, switch, value, actor, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (plugin, switch) DO UPDATE SET value = excluded.value, actor = excluded.actor, updated_at = excluded.updated_at",
        )
        .bind(plugin)
        .bind(switch)
        .bind(i64::from(on))
        .bind(actor)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, plugin, version, detail) VALUES (?1, ?2, 'switch', ?3, NULL, ?4) RETURNING id",
        )
        .bind(at)
        .bind(actor)
        .bind(plugin)
        .bind(detail)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The stored switches of `plugin`: (switch, on), by switch.
    pub async fn switches(&self, plugin: &str) -> Result<Vec<(String, bool)>> {
        let rows = sqlx::query("SELECT switch, value FROM plugin_switches WHERE plugin = ?1 ORDER BY switch")
            .bind(plugin)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|row| (row.get("switch"), row.get::<i64, _>("value") != 0)).collect())
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT id, at, actor, action, plugin, version, detail FROM audit_log ORDER BY id DESC LIMIT ?1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| AuditEntry {
                id: row.get("id"),
                at_ms: row.get("at"),
                actor: row.get("actor"),
                action: row.get("action"),
                plugin: row.get("plugin"),
                version: row.get("version"),
                detail: row.get("detail"),
            })
            .collect())
    }

    /// Replaces a room's checkpoint.
    pub async fn put_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        self.put_checkpoints(std::slice::from_ref(c)).await
    }

    /// Replaces the checkpoints of several rooms in one transaction.
    pub async fn put_checkpoints(&self, batch: &[Checkpoint]) -> Result<()> {
        self.commit_rooms(&RoomCommit { checkpoints: batch.to_vec(), ..RoomCommit::default() }).await
    }

    /// Upserts checkpoints, in multi-row statements.
    async fn put_many(tx: &mut SqliteConnection, batch: &[Checkpoint]) -> Result<()> {
        /// 7 parameters a row.
        const ROWS_PER_STATEMENT: usize = 1_000;
        let at = now_ms();
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut query = sqlx::QueryBuilder::new("INSERT INTO room_checkpoints (game, room, version, tick, state, at, running) ");
            query.push_values(chunk, |mut row, c| {
                row.push_bind(&c.game)
                    .push_bind(&c.room)
                    .push_bind(&c.version)
                    .push_bind(c.tick)
                    .push_bind(&c.state)
                    .push_bind(at)
                    .push_bind(&c.running);
            });
            query.push(
                " ON CONFLICT (game, room) DO UPDATE SET version = excluded.version, tick = excluded.tick, state = excluded.state,
                   at = excluded.at, running = excluded.running",
            );
            query.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// A room's checkpoint.
    pub async fn checkpoint(&self, game: &str, room: &str) -> Result<Option<Checkpoint>> {
        let row = sqlx::query("SELECT game, room, version, tick, state, running FROM room_checkpoints WHERE game = ?1 AND room = ?2")
            .bind(game)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(checkpoint))
    }

    /// Commits rooms' checkpoints, journal rows and versions in one `BEGIN IMMEDIATE` transaction: the
    /// checkpoints, the deletion of the journal they cover, the journal rows as one segment
    /// ([`segments`]), the versions.
    pub async fn commit_rooms(&self, commit: &RoomCommit) -> Result<()> {
        let mut guard = self.index().await?;
        let index = guard.as_mut().expect("built by index()");
        // Segments still needed long after they were written: the rows still needed move out first.
        for seq in index.overdue(Duration::from_millis(self.spill_after_ms.load(Ordering::Relaxed))) {
            let data: Vec<u8> =
                sqlx::query_scalar("SELECT data FROM room_journal_segments WHERE seq = ?1").bind(seq).fetch_one(&self.pool).await?;
            let (rows, moved) = index.spill(seq, &data)?;
            let mut tx = self.begin_write().await?;
            for row in &rows {
                Self::put_journal_row(&mut tx, row).await?;
            }
            delete_segments(&mut tx, &[seq]).await?;
            tx.commit().await?;
            index.spilled(seq, moved);
        }
        let checkpoints = || commit.checkpoints.iter().map(|c| (c.game.as_str(), c.room.as_str(), c.tick));
        let plan = index.plan(checkpoints(), !commit.journal.is_empty());
        // Most commits are a segment alone: one statement, its own transaction, one round trip to
        // SQLite's worker thread instead of three.
        if let Some(seq) = plan.seq.filter(|_| commit.checkpoints.is_empty() && commit.running.is_empty()) {
            debug_assert!(plan.dead.is_empty() && plan.clear_spilled.is_empty(), "only checkpoints free anything");
            insert_segment(&mut *self.writes.lock().await, seq, &commit.journal).await?;
            index.apply(plan, checkpoints(), &commit.journal);
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        Self::put_many(&mut tx, &commit.checkpoints).await?;
        for (game, room, tick) in &plan.clear_spilled {
            sqlx::query("DELETE FROM room_journal WHERE game = ?1 AND room = ?2 AND tick <= ?3")
                .bind(game)
                .bind(room)
                .bind(tick)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(seq) = plan.seq {
            insert_segment(&mut *tx, seq, &commit.journal).await?;
        }
        delete_segments(&mut tx, &plan.dead).await?;
        for (game, room, version) in &commit.running {
            sqlx::query("UPDATE room_checkpoints SET running = ?3 WHERE game = ?1 AND room = ?2")
                .bind(game)
                .bind(room)
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        index.apply(plan, checkpoints(), &commit.journal);
        Ok(())
    }

    /// The segment index, built on first use.
    async fn index(&self) -> Result<tokio::sync::MutexGuard<'_, Option<SegmentIndex>>> {
        let mut guard = self.index.lock().await;
        if guard.is_none() {
            *guard = Some(segments::load_index(self).await.context("failed to read the durable journal's segments")?);
        }
        Ok(guard)
    }

    async fn put_journal_row(tx: &mut SqliteConnection, row: &JournalRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO room_journal (game, room, tick, data) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (game, room, tick) DO UPDATE SET data = excluded.data",
        )
        .bind(&*row.game)
        .bind(&*row.room)
        .bind(row.tick)
        .bind(&row.data)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Journal segments still needed by some room (tests and diagnostics).
    pub async fn journal_segments(&self) -> Result<usize> {
        Ok(self.index().await?.as_ref().map_or(0, SegmentIndex::live))
    }

    /// Shortens how long a segment may stay before its rows still needed move to per-room rows (tests).
    pub fn set_spill_after(&self, after: Duration) {
        self.spill_after_ms.store(after.as_millis() as u64, Ordering::Relaxed);
    }

    /// The checkpoints of every room that was open.
    pub async fn open_rooms(&self) -> Result<Vec<Checkpoint>> {
        let rows = sqlx::query(
            "SELECT game, room, version, tick, state, running FROM room_checkpoints WHERE running IS NOT NULL ORDER BY game, room",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(checkpoint).collect())
    }

    /// A room's durable journal after `after_tick`, oldest first.
    pub async fn journal(&self, game: &str, room: &str, after_tick: i64) -> Result<Vec<JournalRow>> {
        let guard = self.index().await?;
        segments::read_journal(self, guard.as_ref().expect("built by index()"), Some((game, room, after_tick))).await
    }

    /// Whether the store holds nothing yet.
    pub async fn is_empty(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM player_saves) + (SELECT COUNT(*) FROM plugin_versions)
                  + (SELECT COUNT(*) FROM audit_log) + (SELECT COUNT(*) FROM room_checkpoints)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n == 0)
    }

    /// Everything the store holds.
    pub async fn export(&self) -> Result<StoreExport> {
        let mut out = StoreExport::default();
        for row in sqlx::query("SELECT game, player, data, compressed, revision, updated_at FROM player_saves ORDER BY game, player")
            .fetch_all(&self.pool)
            .await?
        {
            out.saves.push((row.get("game"), row.get("player"), stored_save(&row)?));
        }
        for row in
            sqlx::query("SELECT plugin, version, state, sha256, updated_at FROM plugin_versions ORDER BY plugin, updated_at, version")
                .fetch_all(&self.pool)
                .await?
        {
            let record = VersionRecord {
                plugin: row.get("plugin"),
                version: row.get("version"),
                state: VersionState::parse(row.get("state"))?,
                sha256: row.get("sha256"),
            };
            out.versions.push((record, row.get("updated_at")));
        }
        out.floors = sqlx::query_as("SELECT plugin, floor FROM version_floors ORDER BY plugin").fetch_all(&self.pool).await?;
        let plugins: Vec<String> = sqlx::query_scalar("SELECT plugin FROM plugin_rollouts ORDER BY plugin").fetch_all(&self.pool).await?;
        for plugin in plugins {
            out.rollouts.extend(self.rollout(&plugin).await?);
        }
        for row in sqlx::query("SELECT plugin, switch, value, actor, updated_at FROM plugin_switches ORDER BY plugin, switch")
            .fetch_all(&self.pool)
            .await?
        {
            out.switches.push((
                row.get("plugin"),
                row.get("switch"),
                row.get::<i64, _>("value") != 0,
                row.get("actor"),
                row.get("updated_at"),
            ));
        }
        let mut audit = self.audit_log(i64::MAX).await?;
        audit.reverse();
        out.audit = audit;
        let rows = sqlx::query("SELECT game, room, version, tick, state, running FROM room_checkpoints ORDER BY game, room")
            .fetch_all(&self.pool)
            .await?;
        out.checkpoints = rows.iter().map(checkpoint).collect();
        let guard = self.index().await?;
        out.journal = segments::read_journal(self, guard.as_ref().expect("built by index()"), None).await?;
        Ok(out)
    }

    /// Writes `data` into this (empty) store in one transaction.
    pub async fn import(&self, data: &StoreExport) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for (game, player, save) in &data.saves {
            let (bytes, compressed) = pack(&save.data);
            sqlx::query(
                "INSERT INTO player_saves (game, player, revision, data, compressed, size, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(game)
            .bind(player)
            .bind(save.revision)
            .bind(bytes)
            .bind(compressed)
            .bind(save.data.len() as i64)
            .bind(save.updated_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        for (v, at) in &data.versions {
            sqlx::query("INSERT INTO plugin_versions (plugin, version, state, sha256, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .bind(&v.plugin)
                .bind(&v.version)
                .bind(v.state.as_str())
                .bind(&v.sha256)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        for (plugin, floor) in &data.floors {
            sqlx::query("INSERT INTO version_floors (plugin, floor) VALUES (?1, ?2)").bind(plugin).bind(floor).execute(&mut *tx).await?;
        }
        for r in &data.rollouts {
            Self::put_rollout(&mut tx, &r.plugin, r).await?;
        }
        for (plugin, switch, on, actor, at) in &data.switches {
            sqlx::query("INSERT INTO plugin_switches (plugin, switch, value, actor, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .bind(plugin)
                .bind(switch)
                .bind(i64::from(*on))
                .bind(actor)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        for e in &data.audit {
            sqlx::query("INSERT INTO audit_log (id, at, actor, action, plugin, version, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                .bind(e.id)
                .bind(e.at_ms)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.plugin)
                .bind(&e.version)
                .bind(&e.detail)
                .execute(&mut *tx)
                .await?;
        }
        Self::put_many(&mut tx, &data.checkpoints).await?;
        // Imported journal rows go in per-room rows (room_journal); the segment index is read afresh.
        for j in &data.journal {
            sqlx::query("INSERT INTO room_journal (game, room, tick, data) VALUES (?1, ?2, ?3, ?4)")
                .bind(&*j.game)
                .bind(&*j.room)
                .bind(j.tick)
                .bind(&j.data)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        *self.index.lock().await = None;
        Ok(())
    }

    /// Runs one statement on the writing connection (tests: change a limit that writes hit).
    pub async fn execute(&self, sql: &str) -> Result<()> {
        sqlx::query(sql).execute(&mut *self.writes.lock().await).await?;
        Ok(())
    }

    /// `PRAGMA integrity_check`: "ok" when the database is sound.
    pub async fn integrity_check(&self) -> Result<String> {
        Ok(sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&self.pool).await?)
    }
}

/// A save from a row with `data`, `compressed`, `revision` and `updated_at`.
fn stored_save(row: &sqlx::sqlite::SqliteRow) -> Result<StoredSave> {
    let compressed: bool = row.get("compressed");
    Ok(StoredSave {
        data: unpack(row.get("data"), compressed)?,
        revision: row.get("revision"),
        updated_at_ms: row.get("updated_at"),
        compressed,
    })
}

/// A checkpoint from a row with `game`, `room`, `version`, `tick`, `state` and `running`.
fn checkpoint(row: &sqlx::sqlite::SqliteRow) -> Checkpoint {
    Checkpoint {
        game: row.get("game"),
        room: row.get("room"),
        version: row.get("version"),
        tick: row.get("tick"),
        state: row.get("state"),
        running: row.get("running"),
    }
}

/// A write transaction on the store's writing connection: committed by [`WriteTx::commit`], rolled back
/// if dropped before (as `sqlx::Transaction`, which cannot hold a connection behind a lock).
struct WriteTx(Option<tokio::sync::OwnedMutexGuard<SqliteConnection>>);

impl WriteTx {
    async fn commit(mut self) -> Result<()> {
        SqliteTransactionManager::commit(self.0.as_mut().expect("open until committed")).await?;
        self.0 = None;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.0.as_ref().expect("open until committed")
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0.as_mut().expect("open until committed")
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(conn) = &mut self.0 {
            // Queued on the connection: it runs before the connection's next statement.
            SqliteTransactionManager::start_rollback(conn);
        }
    }
}
