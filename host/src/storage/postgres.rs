//! The PostgreSQL backend, for fleets: the same tables as SQLite's (`host/migrations/postgres`), batched
//! writes as single statements over arrays (`UNNEST`), and a pool that notices a lost connection: a
//! broken connection is dropped and replaced on the next use, and a write that failed meanwhile is
//! retried by its caller (the save queue and the room writer retry with back-off, holding what they have
//! not had acknowledged).

use super::segments::{self, SegmentIndex};
use super::{
    AuditEntry, Checkpoint, JournalRow, RolloutRecord, RoomCommit, SaveWrite, StoreExport, StoredSave, Transition, VersionRecord,
    VersionState, now_ms, pack, unpack,
};
use anyhow::{Context as _, Result};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod segment_tables;

/// An open PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// How its connections are made (a fleet host's lease keeps a session of its own).
    options: Arc<PgConnectOptions>,
    /// Which rooms need which journal segments: built on first use, guarded for the whole of a commit.
    index: Arc<tokio::sync::Mutex<Option<SegmentIndex>>>,
    /// [`segments::SPILL_AFTER`], in ms (tests shorten it).
    spill_after_ms: Arc<AtomicU64>,
}

/// How long a store's first connection is waited for.
const FIRST_CONNECT: Duration = Duration::from_secs(15);

/// How long PostgreSQL lets one of our connections sit idle inside a transaction before it ends it.
const IDLE_IN_TRANSACTION_MS: u64 = 2_000;

impl PgStore {
    /// Connects to and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Self> {
        let shown = super::redact(url);
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("bad PostgreSQL URL {shown:?} (expected postgres://USER@HOST:PORT/DATABASE)"))?
            // A transaction left open by a host cut off from the database (its commit's fence check holds
            // share locks on room owner rows) is ended by the server, so that another host can take the
            // rooms over without waiting for the partition to heal. Ours take milliseconds.
            .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_MS.to_string())]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A lost server shows as an error within this, for the caller to retry, rather than a hang.
            .acquire_timeout(Duration::from_secs(3))
            .test_before_acquire(true)
            .connect_lazy_with(options.clone());
        // The first connection may take longer than a lost one is given (a busy machine, a server
        // starting): a timed-out attempt is retried until FIRST_CONNECT has passed; any other error, such
        // as a database that does not exist, ends it at once.
        let started = std::time::Instant::now();
        loop {
            match pool.acquire().await {
                Ok(_) => break,
                Err(sqlx::Error::PoolTimedOut) if started.elapsed() < FIRST_CONNECT => continue,
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "failed to connect to PostgreSQL at {shown} (is the server up, and does the database exist? `createdb` makes it)"
                    )));
                }
            }
        }
        sqlx::migrate!("./migrations/postgres").run(&pool).await.with_context(|| format!("failed to migrate the schema of {shown}"))?;
        Ok(PgStore {
            pool,
            options: Arc::new(options),
            index: Default::default(),
            spill_after_ms: Arc::new(AtomicU64::new(segments::SPILL_AFTER.as_millis() as u64)),
        })
    }

    /// The pool, for the statements kept in files of their own ([`super::hosts`]).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection of its own, outside the pool (the session a fleet host's lease lives in).
    pub(crate) async fn connection(&self) -> Result<sqlx::PgConnection> {
        use sqlx::ConnectOptions as _;
        self.options.connect().await.context("failed to open a session to PostgreSQL")
    }

    /// Writes a batch of saves in one transaction, as one statement over arrays; each save's revision
    /// goes up by one. A batch must not name the same player twice (the queue coalesces).
    pub async fn write_saves(&self, batch: &[SaveWrite]) -> Result<Vec<i64>> {
        let (mut games, mut players, mut data, mut compressed, mut sizes) = (vec![], vec![], vec![], vec![], vec![]);
        for save in batch {
            let (bytes, packed) = pack(&save.data);
            games.push(save.game.as_str());
            players.push(save.player.as_str());
            data.push(bytes);
            compressed.push(packed);
            sizes.push(save.data.len() as i64);
        }
        let rows = sqlx::query(
            "INSERT INTO player_saves (game, player, revision, data, compressed, size, updated_at)
             SELECT game, player, 1, data, compressed, size, $6
               FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::bool[], $5::bigint[]) AS t (game, player, data, compressed, size)
             ON CONFLICT (game, player) DO UPDATE SET revision = player_saves.revision + 1, data = EXCLUDED.data,
               compressed = EXCLUDED.compressed, size = EXCLUDED.size, updated_at = EXCLUDED.updated_at
             RETURNING game, player, revision",
        )
        .bind(&games)
        .bind(&players)
        .bind(&data)
        .bind(&compressed)
        .bind(&sizes)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        let revisions: std::collections::HashMap<(String, String), i64> =
            rows.iter().map(|row| ((row.get("game"), row.get("player")), row.get("revision"))).collect();
        Ok(batch.iter().map(|s| revisions.get(&(s.game.clone(), s.player.clone())).copied().unwrap_or(0)).collect())
    }

    /// The stored save of `player` in `game`.
    pub async fn load_save(&self, game: &str, player: &str) -> Result<Option<StoredSave>> {
        let row = sqlx::query("SELECT data, compressed, revision, updated_at FROM player_saves WHERE game = $1 AND player = $2")
            .bind(game)
            .bind(player)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stored_save).transpose()
    }

    /// Every save of `game` (or of every game), ordered by game and player.
    pub async fn all_saves(&self, game: Option<&str>) -> Result<Vec<(String, String, StoredSave)>> {
        let rows = sqlx::query(
            "SELECT game, player, data, compressed, revision, updated_at FROM player_saves WHERE $1::text IS NULL OR game = $1::text ORDER BY game, player",
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
        let rows = sqlx::query("SELECT plugin, version, state, sha256 FROM plugin_versions WHERE plugin = $1 ORDER BY updated_at, version")
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
            sqlx::query_scalar("SELECT floor FROM version_floors WHERE plugin = $1").bind(plugin).fetch_optional(&self.pool).await?;
        floor.map(|f| semver::Version::parse(&f).with_context(|| format!("the stored floor {f:?} of {plugin} is not semver"))).transpose()
    }

    /// A transaction (read committed; the floor takes a lock of its own).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Applies a rollout step in one transaction.
    pub async fn transition(&self, plugin: &str, t: &Transition) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let at = now_ms();
        // One step of a plugin's registry at a time, fleet-wide: the expectation below reads what the
        // last step wrote.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('warden.registry:' || $1))").bind(plugin).execute(&mut *tx).await?;
        if let Some(e) = &t.expect {
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM plugin_versions WHERE plugin = $1 AND version = $2")
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
                "INSERT INTO plugin_versions (plugin, version, state, sha256, updated_at) VALUES ($1, $2, $3, $4, $5)
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
                sqlx::query("DELETE FROM plugin_rollouts WHERE plugin = $1").bind(plugin).execute(&mut *tx).await?;
            }
            Some(Some(r)) => Self::put_rollout(&mut tx, plugin, r).await?,
        }
        if let Some((plugin, version)) = &t.floor {
            Self::raise_floor_in(&mut tx, plugin, version).await?;
        }
        if let Some(a) = &t.audit {
            sqlx::query("INSERT INTO audit_log (at, actor, action, plugin, version, detail) VALUES ($1, $2, $3, $4, $5, $6)")
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
    async fn put_rollout(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, plugin: &str, r: &RolloutRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO plugin_rollouts (plugin, version, phase, elapsed_ms, paused, canary_rooms, previous_p99_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
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
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The stored rollout of `plugin`.
    pub async fn rollout(&self, plugin: &str) -> Result<Option<RolloutRecord>> {
        let row =
            sqlx::query("SELECT version, phase, elapsed_ms, paused, canary_rooms, previous_p99_us FROM plugin_rollouts WHERE plugin = $1")
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
        sqlx::query("UPDATE plugin_rollouts SET elapsed_ms = $3 WHERE plugin = $1 AND version = $2")
            .bind(plugin)
            .bind(version)
            .bind(elapsed_ms as i64)
            .execute(&self.pool)
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

    async fn raise_floor_in(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, plugin: &str, version: &semver::Version) -> Result<()> {
        // Two hosts raising one floor at once: the second waits, then compares with the first's.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('warden.floor:' || $1::text))").bind(plugin).execute(&mut **tx).await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT floor FROM version_floors WHERE plugin = $1").bind(plugin).fetch_optional(&mut **tx).await?;
        let higher = match current.as_deref().map(semver::Version::parse) {
            Some(Ok(current)) => *version > current,
            _ => true,
        };
        if higher {
            sqlx::query(
                "INSERT INTO version_floors (plugin, floor) VALUES ($1, $2) ON CONFLICT (plugin) DO UPDATE SET floor = excluded.floor",
            )
            .bind(plugin)
            .bind(version.to_string())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Appends an audit entry.
    pub async fn audit(&self, actor: &str, action: &str, plugin: Option<&str>, version: Option<&str>, detail: &str) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, plugin, version, detail) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
            "INSERT INTO plugin_switches (plugin, switch, value, actor, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (plugin, switch) DO UPDATE SET value = excluded.value, actor = excluded.actor, updated_at = excluded.updated_at",
        )
        .bind(plugin)
        .bind(switch)
        .bind(on)
        .bind(actor)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, plugin, version, detail) VALUES ($1, $2, 'switch', $3, NULL, $4) RETURNING id",
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
        let rows = sqlx::query("SELECT switch, value FROM plugin_switches WHERE plugin = $1 ORDER BY switch")
            .bind(plugin)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|row| (row.get("switch"), row.get::<bool, _>("value"))).collect())
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT id, at, actor, action, plugin, version, detail FROM audit_log ORDER BY id DESC LIMIT $1")
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

    /// Replaces the checkpoints of several rooms (and drops the journal rows they cover) in one
    /// transaction.
    pub async fn put_checkpoints(&self, batch: &[Checkpoint]) -> Result<()> {
        self.commit_rooms(&RoomCommit { checkpoints: batch.to_vec(), ..RoomCommit::default() }).await
    }

    async fn put_one(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, c: &Checkpoint) -> Result<()> {
        sqlx::query(
            "INSERT INTO room_checkpoints (game, room, version, tick, state, at, running) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (game, room) DO UPDATE SET version = excluded.version, tick = excluded.tick, state = excluded.state,
               at = excluded.at, running = excluded.running",
        )
        .bind(&c.game)
        .bind(&c.room)
        .bind(&c.version)
        .bind(c.tick)
        .bind(&c.state)
        .bind(now_ms())
        .bind(&c.running)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A room's checkpoint.
    pub async fn checkpoint(&self, game: &str, room: &str) -> Result<Option<Checkpoint>> {
        let row = sqlx::query("SELECT game, room, version, tick, state, running FROM room_checkpoints WHERE game = $1 AND room = $2")
            .bind(game)
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(checkpoint))
    }

    /// Commits rooms' checkpoints, journal rows and versions: one statement, so one round trip and its
    /// own transaction (after moving out any segment that grew old, [`segments`]).
    pub async fn commit_rooms(&self, commit: &RoomCommit) -> Result<()> {
        let mut guard = self.index().await?;
        let result = Self::commit_indexed(&self.pool, guard.as_mut().expect("built by index()"), self.spill_after(), commit).await;
        if result.is_err() {
            // A lost connection leaves unknown whether the statement committed: the index is read afresh
            // from the tables before the retry. (A retried segment may then be stored twice; a room's
            // journal keeps one copy of each tick.)
            *guard = None;
        }
        result
    }

    async fn commit_indexed(pool: &PgPool, index: &mut SegmentIndex, spill_after: Duration, commit: &RoomCommit) -> Result<()> {
        for seq in index.overdue(spill_after) {
            let data: Vec<u8> =
                sqlx::query_scalar("SELECT data FROM room_journal_segments WHERE seq = $1").bind(seq).fetch_one(pool).await?;
            let (rows, moved) = index.spill(seq, &data)?;
            sqlx::query(
                "WITH rows AS (
                     INSERT INTO room_journal (game, room, tick, data)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bytea[])
                     ON CONFLICT (game, room, tick) DO UPDATE SET data = excluded.data
                 )
                 DELETE FROM room_journal_segments WHERE seq = $5",
            )
            .bind(rows.iter().map(|j| &*j.game).collect::<Vec<_>>())
            .bind(rows.iter().map(|j| &*j.room).collect::<Vec<_>>())
            .bind(rows.iter().map(|j| j.tick).collect::<Vec<_>>())
            .bind(rows.iter().map(|j| j.data.as_slice()).collect::<Vec<_>>())
            .bind(seq)
            .execute(pool)
            .await?;
            index.spilled(seq, moved);
        }
        let checkpoints = || commit.checkpoints.iter().map(|c| (c.game.as_str(), c.room.as_str(), c.tick));
        let mut plan = index.plan(checkpoints(), !commit.journal.is_empty());
        let c = &commit.checkpoints;
        let r = &commit.running;
        let cleared = &plan.clear_spilled;
        // The parts of a statement do not see each other's changes; they need not, as none touches a row
        // another does: a checkpoint frees older segments than the new one, and a version change comes
        // without a checkpoint of the same room (after one, it is in the checkpoint). The new segment's
        // number comes from the database.
        let statement = sqlx::query_scalar(
            "WITH checkpoints AS (
                 INSERT INTO room_checkpoints (game, room, version, tick, state, at, running)
                 SELECT game, room, version, tick, state, $7, running
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[], $6::text[])
                     AS c(game, room, version, tick, state, running)
                 ON CONFLICT (game, room) DO UPDATE SET version = excluded.version, tick = excluded.tick,
                     state = excluded.state, at = excluded.at, running = excluded.running
             ), covered AS (
                 DELETE FROM room_journal USING UNNEST($8::text[], $9::text[], $10::bigint[]) AS c(game, room, tick)
                 WHERE room_journal.game = c.game AND room_journal.room = c.room AND room_journal.tick <= c.tick
             ), dead AS (
                 DELETE FROM room_journal_segments WHERE seq = ANY($11::bigint[])
             ), versions AS (
                 UPDATE room_checkpoints SET running = v.running
                 FROM UNNEST($12::text[], $13::text[], $14::text[]) AS v(game, room, running)
                 WHERE room_checkpoints.game = v.game AND room_checkpoints.room = v.room
             )
             INSERT INTO room_journal_segments (data) SELECT $15::bytea WHERE $15 IS NOT NULL RETURNING seq",
        )
        .bind(c.iter().map(|c| c.game.as_str()).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.room.as_str()).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.version.as_str()).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.tick).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.state.as_slice()).collect::<Vec<_>>())
        .bind(c.iter().map(|c| c.running.as_deref()).collect::<Vec<_>>())
        .bind(now_ms())
        .bind(cleared.iter().map(|c| c.0.as_str()).collect::<Vec<_>>())
        .bind(cleared.iter().map(|c| c.1.as_str()).collect::<Vec<_>>())
        .bind(cleared.iter().map(|c| c.2).collect::<Vec<_>>())
        .bind(&plan.dead)
        .bind(r.iter().map(|r| r.0.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.2.as_deref()).collect::<Vec<_>>())
        .bind(plan.seq.map(|_| segments::encode(&commit.journal)));
        let seq: Option<i64> = match &commit.fence {
            None => statement.fetch_optional(pool).await?,
            // In a fleet: in one transaction with the check that every room written is still this host's
            // at the epoch it claimed, its owner rows share-locked until the commit (fencing).
            Some(fence) => {
                let mut tx = pool.begin().await?;
                let fenced = Self::fenced(&mut tx, fence).await?;
                if !fenced.is_empty() {
                    tx.rollback().await?;
                    return Err(super::owners::Fenced(fenced).into());
                }
                let seq = statement.fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                seq
            }
        };
        plan.seq = seq;
        index.apply(plan, checkpoints(), &commit.journal);
        Ok(())
    }

    /// The segment index, read off the tables on first use (and after a failed commit).
    async fn index(&self) -> Result<tokio::sync::MutexGuard<'_, Option<SegmentIndex>>> {
        let mut guard = self.index.lock().await;
        if guard.is_none() {
            *guard = Some(segments::load_index(self).await.context("failed to read the durable journal's segments")?);
        }
        Ok(guard)
    }

    /// Journal segments still needed by some room (tests and diagnostics).
    pub async fn journal_segments(&self) -> Result<usize> {
        Ok(self.index().await?.as_ref().map_or(0, SegmentIndex::live))
    }

    /// Shortens how long a segment may stay before its rows still needed move to per-room rows (tests).
    pub fn set_spill_after(&self, after: Duration) {
        self.spill_after_ms.store(after.as_millis() as u64, Ordering::Relaxed);
    }

    fn spill_after(&self) -> Duration {
        Duration::from_millis(self.spill_after_ms.load(Ordering::Relaxed))
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
    ///
    /// In a fleet the room may have run on other hosts until now: their segments are not in this host's
    /// index, and the rows they moved to `room_journal` are not known to it either. So the read takes the
    /// room's per-room rows, the segments the index names for it, and every segment the index does not
    /// know, in one snapshot (a host moving a segment's rows to `room_journal` meanwhile is seen either
    /// before or after), and keeps the room's rows of them.
    pub async fn journal(&self, game: &str, room: &str, after_tick: i64) -> Result<Vec<JournalRow>> {
        let (known, mine) = {
            let guard = self.index().await?;
            let index = guard.as_ref().expect("built by index()");
            (index.seqs(), index.sources(game, room).map(|s| s.seqs).unwrap_or_default())
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let per_room: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT tick, data FROM room_journal WHERE game = $1 AND room = $2 AND tick > $3")
                .bind(game)
                .bind(room)
                .bind(after_tick)
                .fetch_all(&mut *tx)
                .await?;
        let segments: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, data FROM room_journal_segments WHERE seq = ANY($1) OR NOT (seq = ANY($2))")
                .bind(&mine)
                .bind(&known)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        segments::merge(game, room, after_tick, per_room, segments)
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
            out.switches.push((row.get("plugin"), row.get("switch"), row.get::<bool, _>("value"), row.get("actor"), row.get("updated_at")));
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
                "INSERT INTO player_saves (game, player, revision, data, compressed, size, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            sqlx::query("INSERT INTO plugin_versions (plugin, version, state, sha256, updated_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&v.plugin)
                .bind(&v.version)
                .bind(v.state.as_str())
                .bind(&v.sha256)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        for (plugin, floor) in &data.floors {
            sqlx::query("INSERT INTO version_floors (plugin, floor) VALUES ($1, $2)").bind(plugin).bind(floor).execute(&mut *tx).await?;
        }
        for r in &data.rollouts {
            Self::put_rollout(&mut tx, &r.plugin, r).await?;
        }
        for (plugin, switch, on, actor, at) in &data.switches {
            sqlx::query("INSERT INTO plugin_switches (plugin, switch, value, actor, updated_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(plugin)
                .bind(switch)
                .bind(*on)
                .bind(actor)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        for e in &data.audit {
            sqlx::query("INSERT INTO audit_log (id, at, actor, action, plugin, version, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
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
        // Ids were kept: the identity continues after the highest.
        sqlx::query("SELECT setval(pg_get_serial_sequence('audit_log', 'id'), GREATEST((SELECT MAX(id) FROM audit_log), 1))")
            .execute(&mut *tx)
            .await?;
        for c in &data.checkpoints {
            Self::put_one(&mut tx, c).await?;
        }
        for j in &data.journal {
            sqlx::query("INSERT INTO room_journal (game, room, tick, data) VALUES ($1, $2, $3, $4)")
                .bind(&*j.game)
                .bind(&*j.room)
                .bind(j.tick)
                .bind(&j.data)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        // Imported journal rows are per-room rows (room_journal); the segment index is read afresh.
        *self.index.lock().await = None;
        Ok(())
    }

    /// Runs one statement on the pool (tests).
    pub async fn execute(&self, sql: &str) -> Result<()> {
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// Every stored copy of a room's journal ticks, duplicates included (tests and diagnostics: a tick
    /// stored twice with different calls means two hosts wrote the room).
    pub async fn journal_copies(&self, game: &str, room: &str) -> Result<Vec<(i64, Vec<u8>)>> {
        segments::copies(self, game, room).await
    }

    /// A transaction on one of the pool's connections (tests).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

/// A save from a row with `data`, `compressed`, `revision` and `updated_at`.
fn stored_save(row: &sqlx::postgres::PgRow) -> Result<StoredSave> {
    let compressed: bool = row.get("compressed");
    Ok(StoredSave {
        data: unpack(row.get("data"), compressed)?,
        revision: row.get("revision"),
        updated_at_ms: row.get("updated_at"),
        compressed,
    })
}

/// A checkpoint from a row with `game`, `room`, `version`, `tick`, `state` and `running`.
fn checkpoint(row: &sqlx::postgres::PgRow) -> Checkpoint {
    Checkpoint {
        game: row.get("game"),
        room: row.get("room"),
        version: row.get("version"),
        tick: row.get("tick"),
        state: row.get("state"),
        running: row.get("running"),
    }
}
