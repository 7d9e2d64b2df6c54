//! SQLite's durable journal, written as one segment a commit.
//!
//! A durable host commits every 2 ms, each commit holding the ticks of a few dozen rooms. Written as one
//! row per room and tick (keyed by game, room and tick), every commit dirtied a B-tree page per room: tens
//! of 4 KiB pages appended to the WAL (and copied again into the database) for a few KiB of data, which
//! made durable rooms cost nearly twice the CPU of memory rooms. Here a commit appends one row, its
//! *segment* (`room_journal_segments`, keyed by a sequence number), holding every room's rows grouped by
//! room: one or two pages a commit.
//!
//! A segment is deleted once every room in it has a checkpoint at or after its last tick there. Which
//! rooms still need which segments is known in memory ([`SegmentIndex`], built from the tables on first
//! use); a segment is deleted in the transaction that stores the checkpoint that frees it. A room that
//! stops checkpointing (it closed after a crash and no player reopened it, or a version on trial keeps
//! its pre-swap checkpoint) would keep its segments, and everyone else's rows in them, forever: a segment
//! still needed after [`SPILL_AFTER`] has its needed rows moved to `room_journal`, one row per room and
//! tick, the per-room table that only such rooms use, and is deleted. A room's journal is its rows there
//! plus its rows in the segments it still needs.

use super::JournalRow;
use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a segment may stay before the rows still needed in it move to `room_journal`.
pub const SPILL_AFTER: Duration = Duration::from_secs(60);

/// Segments spilled at most per commit, so that a backlog does not make one commit long.
const SPILLS_PER_COMMIT: usize = 4;

/// A room's rows in one segment (serialized as an array: game, room, ticks).
#[derive(Serialize, Deserialize)]
struct SegmentRoom<G, T> {
    game: G,
    room: G,
    ticks: Vec<(i64, T)>,
}

type Key = (String, String);

/// Encodes journal rows as a segment. Rows of one room must be adjacent (a [`super::RoomCommit`]'s are).
pub fn encode(rows: &[JournalRow]) -> Vec<u8> {
    let mut rooms: Vec<SegmentRoom<&str, &serde_bytes::Bytes>> = Vec::new();
    for row in rows {
        match rooms.last_mut() {
            Some(r) if r.game == row.game && r.room == row.room => {}
            _ => rooms.push(SegmentRoom { game: &row.game, room: &row.room, ticks: Vec::new() }),
        }
        rooms.last_mut().expect("pushed").ticks.push((row.tick, serde_bytes::Bytes::new(&row.data)));
    }
    rmp_serde::to_vec(&rooms).expect("a segment always encodes")
}

/// Decodes a segment into its rows, grouped by room.
fn decode(seq: i64, bytes: &[u8]) -> Result<Vec<SegmentRoom<String, serde_bytes::ByteBuf>>> {
    rmp_serde::from_slice(bytes).with_context(|| format!("journal segment {seq} is damaged"))
}

/// A live segment: how many rooms still need it, and when it was written (or found at start).
struct Segment {
    rooms: u32,
    born: Instant,
}

/// What the index knows of a room.
struct RoomSegments {
    /// Its checkpoint's tick (rows at or below are not needed).
    floor: i64,
    /// The segments it needs, oldest first, each with the room's last tick in it.
    segments: VecDeque<(i64, i64)>,
    /// The last tick of its rows in `room_journal`, if it has any.
    spilled: Option<i64>,
}

impl Default for RoomSegments {
    fn default() -> Self {
        RoomSegments { floor: i64::MIN, segments: VecDeque::new(), spilled: None }
    }
}

/// Which rooms need which segments.
pub struct SegmentIndex {
    next_seq: i64,
    segments: BTreeMap<i64, Segment>,
    rooms: HashMap<Key, RoomSegments>,
}

/// What one commit changes, computed before its transaction and applied to the index after it.
pub struct Plan {
    /// The new segment's sequence number, if the commit has journal rows.
    pub seq: Option<i64>,
    /// Segments no room needs once the commit's checkpoints are in.
    pub dead: Vec<i64>,
    /// Rooms whose `room_journal` rows a checkpoint covers: (game, room, tick).
    pub clear_spilled: Vec<(String, String, i64)>,
}

impl SegmentIndex {
    /// Reads the index off the tables: every segment, against each room's checkpoint; and deletes the
    /// segments no room needs (left by a crash between a checkpoint and the next commit's cleanup).
    pub async fn build(pool: &SqlitePool) -> Result<SegmentIndex> {
        let mut index = SegmentIndex { next_seq: 1, segments: BTreeMap::new(), rooms: HashMap::new() };
        for row in sqlx::query("SELECT game, room, tick FROM room_checkpoints").fetch_all(pool).await? {
            index.rooms.entry((row.get("game"), row.get("room"))).or_default().floor = row.get("tick");
        }
        for row in sqlx::query("SELECT game, room, MAX(tick) AS tick FROM room_journal GROUP BY game, room").fetch_all(pool).await? {
            index.rooms.entry((row.get("game"), row.get("room"))).or_default().spilled = Some(row.get("tick"));
        }
        let now = Instant::now();
        let mut dead = Vec::new();
        for row in sqlx::query("SELECT seq, data FROM room_journal_segments ORDER BY seq").fetch_all(pool).await? {
            let seq: i64 = row.get("seq");
            index.next_seq = seq + 1;
            let mut needed = 0;
            for r in decode(seq, row.get("data"))? {
                let last = r.ticks.iter().map(|t| t.0).max().unwrap_or(i64::MIN);
                let room = index.rooms.entry((r.game, r.room)).or_default();
                if last > room.floor {
                    room.segments.push_back((seq, last));
                    needed += 1;
                }
            }
            if needed == 0 {
                dead.push(seq);
            } else {
                index.segments.insert(seq, Segment { rooms: needed, born: now });
            }
        }
        if !dead.is_empty() {
            let mut tx = pool.begin().await?;
            delete_segments(&mut tx, &dead).await?;
            tx.commit().await?;
        }
        index.rooms.retain(|_, r| !r.segments.is_empty() || r.spilled.is_some());
        Ok(index)
    }

    /// What a commit of `checkpoints` (game, room, tick), and of journal rows if `has_rows`, changes.
    pub fn plan<'a>(&self, checkpoints: impl Iterator<Item = (&'a str, &'a str, i64)>, has_rows: bool) -> Plan {
        let mut freed: HashMap<i64, u32> = HashMap::new();
        let mut clear_spilled = Vec::new();
        for (game, room, tick) in checkpoints {
            let Some(r) = self.rooms.get(&(game.to_string(), room.to_string())) else { continue };
            for &(seq, _) in r.segments.iter().take_while(|(_, last)| *last <= tick) {
                *freed.entry(seq).or_default() += 1;
            }
            if r.spilled.is_some() {
                clear_spilled.push((game.to_string(), room.to_string(), tick));
            }
        }
        let mut dead: Vec<i64> =
            freed.into_iter().filter(|(seq, n)| self.segments.get(seq).is_some_and(|s| s.rooms == *n)).map(|(s, _)| s).collect();
        dead.sort_unstable();
        Plan { seq: has_rows.then_some(self.next_seq), dead, clear_spilled }
    }

    /// Applies a committed plan: the checkpoints free what they cover, the new segment is needed by the
    /// rooms whose rows it holds (`rows`, adjacent per room).
    pub fn apply<'a>(&mut self, plan: Plan, checkpoints: impl Iterator<Item = (&'a str, &'a str, i64)>, rows: &[JournalRow]) {
        for (game, room, tick) in checkpoints {
            let key = (game.to_string(), room.to_string());
            let Some(r) = self.rooms.get_mut(&key) else { continue };
            r.floor = r.floor.max(tick);
            while r.segments.front().is_some_and(|(_, last)| *last <= tick) {
                let (seq, _) = r.segments.pop_front().expect("checked");
                if let Some(s) = self.segments.get_mut(&seq) {
                    s.rooms -= 1;
                    if s.rooms == 0 {
                        self.segments.remove(&seq);
                    }
                }
            }
            if r.spilled.is_some_and(|last| last <= tick) {
                r.spilled = None;
            }
            if r.segments.is_empty() && r.spilled.is_none() {
                self.rooms.remove(&key);
            }
        }
        debug_assert!(plan.dead.iter().all(|seq| !self.segments.contains_key(seq)), "the plan and the index agree");
        if let Some(seq) = plan.seq {
            self.next_seq = seq + 1;
            let mut needed = 0;
            for group in rows.chunk_by(|a, b| a.game == b.game && a.room == b.room) {
                let last = group.iter().map(|r| r.tick).max().expect("a group is not empty");
                self.rooms.entry((group[0].game.clone(), group[0].room.clone())).or_default().segments.push_back((seq, last));
                needed += 1;
            }
            self.segments.insert(seq, Segment { rooms: needed, born: Instant::now() });
        }
    }

    /// The oldest segments still needed after `age`, at most a few.
    pub fn overdue(&self, age: Duration) -> Vec<i64> {
        self.segments.iter().take_while(|(_, s)| s.born.elapsed() >= age).take(SPILLS_PER_COMMIT).map(|(seq, _)| *seq).collect()
    }

    /// Moves the rows still needed in segment `seq` to `room_journal` and deletes it, in `tx`; returns
    /// the rooms that now have spilled rows, for [`SegmentIndex::spilled`] after the commit.
    pub async fn spill(&self, tx: &mut Transaction<'_, Sqlite>, seq: i64) -> Result<Vec<(Key, i64)>> {
        let data: Vec<u8> =
            sqlx::query_scalar("SELECT data FROM room_journal_segments WHERE seq = ?1").bind(seq).fetch_one(&mut **tx).await?;
        let mut moved = Vec::new();
        for r in decode(seq, &data)? {
            let key = (r.game, r.room);
            let Some(room) = self.rooms.get(&key).filter(|room| room.segments.iter().any(|(s, _)| *s == seq)) else { continue };
            let mut last = None;
            for (tick, bytes) in r.ticks.into_iter().filter(|(tick, _)| *tick > room.floor) {
                sqlx::query(
                    "INSERT INTO room_journal (game, room, tick, data) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (game, room, tick) DO UPDATE SET data = excluded.data",
                )
                .bind(&key.0)
                .bind(&key.1)
                .bind(tick)
                .bind(bytes.into_vec())
                .execute(&mut **tx)
                .await?;
                last = last.max(Some(tick));
            }
            if let Some(last) = last {
                moved.push((key, last));
            }
        }
        delete_segments(tx, &[seq]).await?;
        Ok(moved)
    }

    /// Records a committed spill of segment `seq`.
    pub fn spilled(&mut self, seq: i64, moved: Vec<(Key, i64)>) {
        for (key, last) in moved {
            let r = self.rooms.entry(key).or_default();
            r.spilled = r.spilled.max(Some(last));
        }
        for r in self.rooms.values_mut() {
            r.segments.retain(|(s, _)| *s != seq);
        }
        self.segments.remove(&seq);
        self.rooms.retain(|_, r| !r.segments.is_empty() || r.spilled.is_some());
    }

    /// A room's rows after `after_tick`: those in `room_journal`, then those in the segments it needs
    /// (a tick found twice keeps its newest copy), oldest first.
    pub async fn journal(&self, pool: &SqlitePool, game: &str, room: &str, after_tick: i64) -> Result<Vec<JournalRow>> {
        let mut ticks: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        let Some(r) = self.rooms.get(&(game.to_string(), room.to_string())) else { return Ok(Vec::new()) };
        if r.spilled.is_some() {
            for row in sqlx::query("SELECT tick, data FROM room_journal WHERE game = ?1 AND room = ?2 AND tick > ?3")
                .bind(game)
                .bind(room)
                .bind(after_tick)
                .fetch_all(pool)
                .await?
            {
                ticks.insert(row.get("tick"), row.get("data"));
            }
        }
        let seqs: Vec<i64> = r.segments.iter().map(|(seq, _)| *seq).collect();
        for chunk in seqs.chunks(500) {
            let mut query = with_seqs("SELECT seq, data FROM room_journal_segments WHERE seq IN (", chunk);
            query.push(" ORDER BY seq");
            for row in query.build().fetch_all(pool).await? {
                for s in decode(row.get("seq"), row.get("data"))?.into_iter().filter(|s| s.game == game && s.room == room) {
                    ticks.extend(s.ticks.into_iter().filter(|t| t.0 > after_tick).map(|(tick, bytes)| (tick, bytes.into_vec())));
                }
            }
        }
        Ok(ticks.into_iter().map(|(tick, data)| JournalRow { game: game.into(), room: room.into(), tick, data }).collect())
    }

    /// Every room's rows that are still needed (for an export), ordered by game, room and tick.
    pub async fn all(&self, pool: &SqlitePool) -> Result<Vec<JournalRow>> {
        let mut keys: Vec<&Key> = self.rooms.keys().collect();
        keys.sort();
        let mut out = Vec::new();
        for (game, room) in keys {
            let floor = self.rooms[&(game.clone(), room.clone())].floor;
            out.extend(self.journal(pool, game, room, floor).await?);
        }
        Ok(out)
    }

    /// Segments still needed.
    pub fn live(&self) -> usize {
        self.segments.len()
    }
}

/// Writes `rows` as segment `seq`.
pub async fn insert<'e>(executor: impl sqlx::Executor<'e, Database = Sqlite>, seq: i64, rows: &[JournalRow]) -> Result<()> {
    sqlx::query("INSERT INTO room_journal_segments (seq, data) VALUES (?1, ?2)").bind(seq).bind(encode(rows)).execute(executor).await?;
    Ok(())
}

/// Deletes segments by sequence number.
pub async fn delete_segments(tx: &mut Transaction<'_, Sqlite>, seqs: &[i64]) -> Result<()> {
    for chunk in seqs.chunks(1_000) {
        with_seqs("DELETE FROM room_journal_segments WHERE seq IN (", chunk).build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// `sql` followed by `seqs` as bound parameters and a closing parenthesis.
fn with_seqs<'a>(sql: &str, seqs: &[i64]) -> sqlx::QueryBuilder<'a, Sqlite> {
    let mut query = sqlx::QueryBuilder::new(sql);
    let mut list = query.separated(", ");
    for seq in seqs {
        list.push_bind(*seq);
    }
    query.push(")");
    query
}
