//! Rooms, inspected: `GET /admin/rooms` lists every open room; `GET /admin/rooms/{game}/{room}` shows
//! one in full ([`RoomDetail`]); `GET /admin/rooms/{game}/{room}/dump` gives its checkpoint and journal
//! as a [`DumpFile`] that `warden replay` re-runs offline. The detail and the dump are answered by the
//! room itself at its next tick (the journal and the snapshot are its own), never by a lock on it.

use crate::health::Counts;
use crate::room::dumpfile::DumpFile;
use crate::room::journal::{Entry, Timer};
use crate::room::{RecentError, RoomSummary, Rooms};
use serde::{Deserialize, Serialize};

/// One room in full.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomDetail {
    /// Its listing row.
    pub summary: RoomSummary,
    /// The players in it.
    pub players: Vec<String>,
    /// Timers pending.
    pub timers: Vec<Timer>,
    /// Its last checkpoint.
    pub checkpoint: CheckpointInfo,
    /// The journal since that checkpoint.
    pub journal: JournalSummary,
    /// Calls, errors, traps and ticks since it opened.
    pub counts: Counts,
    /// The last errors of its plugin calls, oldest first.
    pub recent_errors: Vec<RecentError>,
}

/// A checkpoint, summed up.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Its id within the room.
    pub id: u64,
    /// The version that made it.
    pub version: String,
    /// The tick it was taken after.
    pub tick: u64,
    /// Its size.
    pub bytes: u64,
    /// Its age in ticks of game time.
    pub age_ticks: u64,
}

/// A journal, summed up.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JournalSummary {
    /// Entries (calls and tick marks).
    pub entries: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Calls by export.
    pub joins: u64,
    /// `on-leave` calls.
    pub leaves: u64,
    /// `on-message` calls.
    pub messages: u64,
    /// `on-timer` calls.
    pub timers: u64,
    /// `on-tick` calls.
    pub ticks: u64,
    /// Changes of the feature switches.
    pub switches: u64,
    /// Saves the calls read (`load-save`), kept for the replay.
    #[serde(default)]
    pub saves_read: u64,
}

/// The detail of room `room` of `game`, or `None` if it is not open.
pub async fn detail(rooms: &Rooms, game: &str, room: &str) -> Option<RoomDetail> {
    let dump = rooms.dump(game, room).await?;
    let summary = rooms.list().into_iter().find(|r| r.game == game && r.room == room)?;
    let mut journal = JournalSummary { entries: dump.journal.len() as u64, bytes: dump.journal.memory() as u64, ..Default::default() };
    for entry in dump.journal.entries() {
        match entry {
            Entry::Begin(_) => {}
            Entry::Features(_) => journal.switches += 1,
            Entry::Join(_) => journal.joins += 1,
            Entry::Leave(_) => journal.leaves += 1,
            Entry::Msg(..) => journal.messages += 1,
            Entry::Timer(_) => journal.timers += 1,
            Entry::Tick(_) => journal.ticks += 1,
            Entry::Loaded(..) => journal.saves_read += 1,
        }
    }
    let checkpoint = CheckpointInfo {
        id: dump.base.id,
        version: dump.base.version().to_string(),
        tick: dump.base.tick,
        bytes: dump.base.state.len() as u64,
        age_ticks: dump.tick.saturating_sub(dump.base.tick),
    };
    Some(RoomDetail {
        summary,
        players: dump.players,
        timers: dump.timers,
        checkpoint,
        journal,
        counts: dump.counts,
        recent_errors: dump.recent_errors,
    })
}

/// The dump file of room `room` of `game`, or `None` if it is not open.
pub async fn dump(rooms: &Rooms, game: &str, room: &str) -> Option<DumpFile> {
    let dump = rooms.dump(game, room).await?;
    Some(DumpFile::new(game, room, &dump))
}
