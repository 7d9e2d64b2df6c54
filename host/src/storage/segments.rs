//! The durable journal, written as one segment a commit (both backends; this file is the logic, each
//! backend has its statements).
//!
//! A durable host commits every 2 ms, each commit holding the ticks of a few dozen rooms. Written as one
//! row per room and tick (keyed by game, room and tick), every commit dirtied a B-tree page per room: on
//! SQLite, tens of 4 KiB pages appended to the WAL (and copied again into the database) for a few KiB of
//! data, which made durable rooms cost nearly twice the CPU of memory rooms; on PostgreSQL, 0.75 ms of the
//! server's time for a commit's 28 rows against 0.16 ms for one row holding the same data (pgbench,
//! idle machine), time the server takes from the cores the host shares with it. Here a commit appends one
//! row, its *segment* (`room_journal_segments`, keyed by a sequence number), holding every room's rows
//! grouped by room: one or two pages a commit.
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
use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
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

/// A room: game and room id.
pub type Key = (Arc<str>, Arc<str>);

/// A room's names, owned ([`Key`]) or borrowed: the index is looked up by borrowed names, without
/// making a [`Key`] (two allocations) for each lookup.
trait Names {
    fn names(&self) -> (&str, &str);
}

impl Names for Key {
    fn names(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl Names for (&str, &str) {
    fn names(&self) -> (&str, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn Names + 'a> for Key {
    fn borrow(&self) -> &(dyn Names + 'a) {
        self
    }
}

// Hashes and compares as `Key` does (a tuple of two `str`s), as `Borrow` requires.
impl std::hash::Hash for dyn Names + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.names().hash(state);
    }
}

impl PartialEq for dyn Names + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.names() == other.names()
    }
}

impl Eq for dyn Names + '_ {}

/// The index's map of rooms. foldhash, not the standard library's SipHash: every commit looks up each of
/// its few dozen rooms, and SipHash was a third of that in the durable tick loop's profile. foldhash's
/// seed is random per process, so room ids chosen by players cannot be picked to collide.
type RoomMap = HashMap<Key, RoomSegments, foldhash::fast::RandomState>;

/// A room's key from its names.
fn key(game: &str, room: &str) -> Key {
    (game.into(), room.into())
}

/// The rooms a spill gave per-room rows, each with its last tick there.
pub type Moved = Vec<(Key, i64)>;

/// Encodes journal rows as a segment. Rows of one room must be adjacent (a [`super::RoomCommit`]'s are).
/// Written straight from the rows into a buffer sized for them (the same bytes as a `Vec` of
/// [`SegmentRoom`]s would give, without building one: a commit's encoding showed in the profile).
pub fn encode(rows: &[JournalRow]) -> Vec<u8> {
    let size = rows.iter().map(|r| r.data.len() + 16).sum::<usize>() + rows.len() * 40;
    let mut out = Vec::with_capacity(size);
    rows_as_segment(rows).serialize(&mut rmp_serde::Serializer::new(&mut out)).expect("a segment always encodes");
    out
}

/// Rows of one room, adjacent.
fn same_room(a: &JournalRow, b: &JournalRow) -> bool {
    a.game == b.game && a.room == b.room
}

/// Serializes as a `Vec<SegmentRoom>`: one `SegmentRoom` per run of a room's rows.
fn rows_as_segment(rows: &[JournalRow]) -> impl Serialize + '_ {
    struct Rooms<'a>(&'a [JournalRow]);
    struct Room<'a>(&'a [JournalRow]);
    struct Ticks<'a>(&'a [JournalRow]);
    impl Serialize for Rooms<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.chunk_by(same_room).map(Room))
        }
    }
    impl Serialize for Room<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            // As the derived `SegmentRoom` (rmp_serde writes a struct as an array of its fields).
            let mut room = s.serialize_struct("SegmentRoom", 3)?;
            room.serialize_field("game", &*self.0[0].game)?;
            room.serialize_field("room", &*self.0[0].room)?;
            room.serialize_field("ticks", &Ticks(self.0))?;
            room.end()
        }
    }
    impl Serialize for Ticks<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(|r| (r.tick, serde_bytes::Bytes::new(&r.data))))
        }
    }
    Rooms(rows)
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
    rooms: RoomMap,
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

/// Where a room's journal is: its per-room rows (if it has any) and the segments it needs.
pub struct Sources {
    /// Whether it has rows in `room_journal`.
    pub per_room: bool,
    /// The segments it needs, oldest first.
    pub seqs: Vec<i64>,
}

impl SegmentIndex {
    /// The index of the stored `segments` (sequence number and data, oldest first), against each room's
    /// checkpoint tick (`checkpoints`: game, room, tick) and the last tick of its per-room rows
    /// (`per_room`). Returns it with the segments no room needs (a crash between a checkpoint and the
    /// next commit's cleanup leaves them), for the backend to delete.
    pub fn new(
        checkpoints: impl IntoIterator<Item = (String, String, i64)>,
        per_room: impl IntoIterator<Item = (String, String, i64)>,
        segments: impl IntoIterator<Item = (i64, Vec<u8>)>,
    ) -> Result<(SegmentIndex, Vec<i64>)> {
        let mut index = SegmentIndex { next_seq: 1, segments: BTreeMap::new(), rooms: RoomMap::default() };
        for (game, room, tick) in checkpoints {
            index.rooms.entry((game.into(), room.into())).or_default().floor = tick;
        }
        for (game, room, tick) in per_room {
            index.rooms.entry((game.into(), room.into())).or_default().spilled = Some(tick);
        }
        let now = Instant::now();
        let mut dead = Vec::new();
        for (seq, data) in segments {
            index.next_seq = index.next_seq.max(seq + 1);
            let mut needed = 0;
            for r in decode(seq, &data)? {
                let last = r.ticks.iter().map(|t| t.0).max().unwrap_or(i64::MIN);
                let room = index.rooms.entry((r.game.into(), r.room.into())).or_default();
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
        index.rooms.retain(|_, r| !r.segments.is_empty() || r.spilled.is_some());
        Ok((index, dead))
    }

    /// What a commit of `checkpoints` (game, room, tick), and of journal rows if `has_rows`, changes.
    pub fn plan<'a>(&self, checkpoints: impl Iterator<Item = (&'a str, &'a str, i64)>, has_rows: bool) -> Plan {
        let mut freed: HashMap<i64, u32> = HashMap::new();
        let mut clear_spilled = Vec::new();
        for (game, room, tick) in checkpoints {
            let Some(r) = self.rooms.get(&(game, room) as &dyn Names) else { continue };
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
            let key = (game, room);
            let Some(r) = self.rooms.get_mut(&key as &dyn Names) else { continue };
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
                self.rooms.remove(&key as &dyn Names);
            }
        }
        debug_assert!(plan.dead.iter().all(|seq| !self.segments.contains_key(seq)), "the plan and the index agree");
        if let Some(seq) = plan.seq {
            self.next_seq = seq + 1;
            let mut needed = 0;
            for group in rows.chunk_by(same_room) {
                let last = group.iter().map(|r| r.tick).max().expect("a group is not empty");
                let names = (&*group[0].game, &*group[0].room);
                match self.rooms.get_mut(&names as &dyn Names) {
                    Some(r) => r.segments.push_back((seq, last)),
                    None => {
                        let r = self.rooms.entry((group[0].game.clone(), group[0].room.clone())).or_default();
                        r.segments.push_back((seq, last));
                    }
                }
                needed += 1;
            }
            self.segments.insert(seq, Segment { rooms: needed, born: Instant::now() });
        }
    }

    /// The oldest segments still needed after `age`, at most a few.
    pub fn overdue(&self, age: Duration) -> Vec<i64> {
        self.segments.iter().take_while(|(_, s)| s.born.elapsed() >= age).take(SPILLS_PER_COMMIT).map(|(seq, _)| *seq).collect()
    }

    /// What moving segment `seq` (its `data`) out does: the rows still needed in it, to be written as
    /// per-room rows in the transaction that deletes it, and the rooms that then have per-room rows, for
    /// [`SegmentIndex::spilled`] after that commits.
    pub fn spill(&self, seq: i64, data: &[u8]) -> Result<(Vec<JournalRow>, Moved)> {
        let mut rows = Vec::new();
        let mut moved = Vec::new();
        for r in decode(seq, data)? {
            let key: Key = (r.game.into(), r.room.into());
            let Some(room) = self.rooms.get(&key).filter(|room| room.segments.iter().any(|(s, _)| *s == seq)) else { continue };
            let mut last = None;
            for (tick, bytes) in r.ticks.into_iter().filter(|(tick, _)| *tick > room.floor) {
                rows.push(JournalRow { game: key.0.clone(), room: key.1.clone(), tick, data: bytes.into_vec() });
                last = last.max(Some(tick));
            }
            if let Some(last) = last {
                moved.push((key, last));
            }
        }
        Ok((rows, moved))
    }

    /// Records a committed spill of segment `seq`.
    pub fn spilled(&mut self, seq: i64, moved: Moved) {
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

    /// Where a room's journal is, if it has one.
    pub fn sources(&self, game: &str, room: &str) -> Option<Sources> {
        let r = self.rooms.get(&(game, room) as &dyn Names)?;
        Some(Sources { per_room: r.spilled.is_some(), seqs: r.segments.iter().map(|(seq, _)| *seq).collect() })
    }

    /// Every room with a journal, with its checkpoint's tick, ordered by game and room.
    pub fn rooms(&self) -> Vec<(Key, i64)> {
        let mut rooms: Vec<(Key, i64)> = self.rooms.iter().map(|(key, r)| (key.clone(), r.floor)).collect();
        rooms.sort();
        rooms
    }

    /// The sequence numbers of the segments it knows (still needed).
    pub fn seqs(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }

    /// Segments still needed.
    pub fn live(&self) -> usize {
        self.segments.len()
    }
}

/// A room's rows after `after_tick` from what [`SegmentIndex::sources`] named: its per-room rows (tick,
/// data), then its rows in the `segments` (sequence number, data); a tick found twice keeps its newest
/// copy. Oldest first.
pub fn merge(
    game: &str,
    room: &str,
    after_tick: i64,
    per_room: impl IntoIterator<Item = (i64, Vec<u8>)>,
    segments: impl IntoIterator<Item = (i64, Vec<u8>)>,
) -> Result<Vec<JournalRow>> {
    let mut ticks: BTreeMap<i64, Vec<u8>> = per_room.into_iter().filter(|(tick, _)| *tick > after_tick).collect();
    let mut segments: Vec<(i64, Vec<u8>)> = segments.into_iter().collect();
    segments.sort_by_key(|(seq, _)| *seq);
    for (seq, data) in segments {
        for s in decode(seq, &data)?.into_iter().filter(|s| s.game == game && s.room == room) {
            ticks.extend(s.ticks.into_iter().filter(|t| t.0 > after_tick).map(|(tick, bytes)| (tick, bytes.into_vec())));
        }
    }
    let (game, room) = key(game, room);
    Ok(ticks.into_iter().map(|(tick, data)| JournalRow { game: game.clone(), room: room.clone(), tick, data }).collect())
}

/// Every stored copy of a room's journal ticks, from its per-room rows and every segment (oldest first),
/// without keeping one copy per tick as [`merge`] does: a tick stored twice with different calls means
/// two hosts wrote the room (what fencing prevents).
pub(crate) async fn copies(tables: &impl SegmentTables, game: &str, room: &str) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut copies = tables.per_room_rows(game, room, i64::MIN).await?;
    let mut segments = tables.segments(None).await?;
    segments.sort_by_key(|(seq, _)| *seq);
    for (seq, data) in segments {
        for s in decode(seq, &data)?.into_iter().filter(|s| s.game == game && s.room == room) {
            copies.extend(s.ticks.into_iter().map(|(tick, bytes)| (tick, bytes.into_vec())));
        }
    }
    Ok(copies)
}

/// A backend's statements for the segment tables; the flows that use them are [`load_index`] and
/// [`read_journal`].
pub(crate) trait SegmentTables {
    /// Game, room and tick of every checkpoint.
    async fn checkpoint_ticks(&self) -> Result<Vec<(String, String, i64)>>;
    /// Game, room and last tick of every room with per-room rows (`room_journal`).
    async fn per_room_last_ticks(&self) -> Result<Vec<(String, String, i64)>>;
    /// Sequence number and data of the segments numbered `seqs`, or of every segment.
    async fn segments(&self, seqs: Option<&[i64]>) -> Result<Vec<(i64, Vec<u8>)>>;
    /// Deletes the segments numbered `seqs` (in their own transaction).
    async fn delete_segments(&self, seqs: &[i64]) -> Result<()>;
    /// A room's per-room rows after `after_tick`: tick and data.
    async fn per_room_rows(&self, game: &str, room: &str, after_tick: i64) -> Result<Vec<(i64, Vec<u8>)>>;
}

/// Reads the segment index off the tables, and deletes the segments no room needs.
pub(crate) async fn load_index(tables: &impl SegmentTables) -> Result<SegmentIndex> {
    let mut segments = tables.segments(None).await?;
    segments.sort_by_key(|(seq, _)| *seq);
    let (index, dead) = SegmentIndex::new(tables.checkpoint_ticks().await?, tables.per_room_last_ticks().await?, segments)?;
    if !dead.is_empty() {
        tables.delete_segments(&dead).await?;
    }
    Ok(index)
}

/// A room's journal after `after_tick`, where the index says it is; every room's (after its
/// checkpoint) when `room` is `None`, ordered by game, room and tick.
pub(crate) async fn read_journal(
    tables: &impl SegmentTables,
    index: &SegmentIndex,
    room: Option<(&str, &str, i64)>,
) -> Result<Vec<JournalRow>> {
    let rooms = match room {
        Some((game, room, after_tick)) => vec![(key(game, room), after_tick)],
        None => index.rooms(),
    };
    let mut out = Vec::new();
    for ((game, room), after_tick) in rooms {
        let Some(sources) = index.sources(&game, &room) else { continue };
        let per_room = if sources.per_room { tables.per_room_rows(&game, &room, after_tick).await? } else { Vec::new() };
        let segments = tables.segments(Some(&sources.seqs)).await?;
        out.extend(merge(&game, &room, after_tick, per_room, segments)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(game: &str, room: &str, tick: i64, data: &[u8]) -> JournalRow {
        JournalRow { game: game.into(), room: room.into(), tick, data: data.to_vec() }
    }

    #[test]
    fn a_segment_is_what_a_list_of_segment_rooms_encodes_to_and_decodes_back() {
        let rows =
            [row("arena", "r1", 7, b"ab"), row("arena", "r1", 8, &[0; 300]), row("arena", "r2", 7, b""), row("chat", "r1", -1, b"x")];
        let built: Vec<SegmentRoom<&str, &serde_bytes::Bytes>> = vec![
            SegmentRoom {
                game: "arena",
                room: "r1",
                ticks: vec![(7, serde_bytes::Bytes::new(b"ab")), (8, serde_bytes::Bytes::new(&[0; 300]))],
            },
            SegmentRoom { game: "arena", room: "r2", ticks: vec![(7, serde_bytes::Bytes::new(b""))] },
            SegmentRoom { game: "chat", room: "r1", ticks: vec![(-1, serde_bytes::Bytes::new(b"x"))] },
        ];
        let bytes = encode(&rows);
        assert_eq!(bytes, rmp_serde::to_vec(&built).unwrap(), "segments written before stay readable and the other way round");
        let back: Vec<JournalRow> = decode(1, &bytes)
            .unwrap()
            .into_iter()
            .flat_map(|r| {
                r.ticks.into_iter().map(move |(tick, data)| JournalRow {
                    game: r.game.as_str().into(),
                    room: r.room.as_str().into(),
                    tick,
                    data: data.into_vec(),
                })
            })
            .collect();
        assert_eq!(back, rows);
        assert_eq!(encode(&[]), rmp_serde::to_vec(&Vec::<SegmentRoom<&str, &serde_bytes::Bytes>>::new()).unwrap());
    }
}
