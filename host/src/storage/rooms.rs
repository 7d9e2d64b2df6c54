//! What rooms write to the store: checkpoints, the durable journal and which version each open room
//! runs. Rooms hand [`RoomWrite`]s to the host's one writer in the order they happened; the writer folds
//! everything that arrived since its last commit into a [`RoomCommit`] and commits it in one
//! transaction, so the store always holds, per room, a checkpoint and the journal after it.

use super::{Checkpoint, JournalRow};
use std::collections::HashMap;

/// One change a room made, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomWrite {
    /// A new checkpoint: journal rows at or below its tick are deleted with it.
    Checkpoint(Checkpoint),
    /// The calls of one tick.
    Journal(JournalRow),
    /// The version the room runs from now (`None`: it closed cleanly).
    Running {
        /// Game name.
        game: String,
        /// Room id.
        room: String,
        /// The version, or `None`.
        version: Option<String>,
    },
}

impl RoomWrite {
    /// The room it writes to: (game, room).
    pub fn key(&self) -> (&str, &str) {
        match self {
            RoomWrite::Checkpoint(c) => (&c.game, &c.room),
            RoomWrite::Journal(j) => (&j.game, &j.room),
            RoomWrite::Running { game, room, .. } => (game, room),
        }
    }
}

/// Writes folded per room: each room's newest checkpoint, the journal rows after it, and the version it
/// runs at the end. Applied in one transaction: checkpoints, then the deletion of the journal rows they
/// cover, then the new rows, then the versions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomCommit {
    /// The newest checkpoint of each room that took one.
    pub checkpoints: Vec<Checkpoint>,
    /// Journal rows after those checkpoints (after the stored one for the other rooms).
    pub journal: Vec<JournalRow>,
    /// Rooms without a checkpoint here whose version changed: the version (after a checkpoint, the
    /// checkpoint carries it).
    pub running: Vec<(String, String, Option<String>)>,
    /// In a fleet: the claims every room written must still hold, checked in the commit's transaction
    /// (PostgreSQL; a commit of a room that another host took over fails with
    /// [`super::owners::Fenced`] and writes nothing).
    pub fence: Option<super::owners::Fence>,
}

impl RoomCommit {
    /// Folds `writes` (in the order they happened).
    pub fn fold(writes: impl IntoIterator<Item = RoomWrite>) -> RoomCommit {
        #[derive(Default)]
        struct Room {
            checkpoint: Option<Checkpoint>,
            journal: Vec<JournalRow>,
            running: Option<Option<String>>,
            /// The room's names, kept only for a version change without a checkpoint.
            key: Option<(String, String)>,
        }
        let writes: Vec<RoomWrite> = writes.into_iter().collect();
        // Each write's room, numbered in order of first appearance (keys borrowed: no copies of names).
        let slots: Vec<usize> = {
            // foldhash: this runs for every room of every commit (see segments::RoomMap).
            let mut seen: HashMap<(&str, &str), usize, foldhash::fast::RandomState> = HashMap::default();
            writes
                .iter()
                .map(|w| {
                    let next = seen.len();
                    *seen.entry(w.key()).or_insert(next)
                })
                .collect()
        };
        let mut rooms: Vec<Room> = Vec::new();
        for (write, slot) in writes.into_iter().zip(slots) {
            if slot == rooms.len() {
                rooms.push(Room::default());
            }
            let entry = &mut rooms[slot];
            match write {
                RoomWrite::Checkpoint(c) => {
                    entry.journal.retain(|j| j.tick > c.tick);
                    entry.running = None;
                    entry.checkpoint = Some(c);
                }
                RoomWrite::Journal(j) => {
                    // A tick written twice (never expected) keeps its last rows.
                    entry.journal.retain(|k| k.tick != j.tick);
                    entry.journal.push(j);
                }
                // After a checkpoint of this commit, the checkpoint carries it.
                RoomWrite::Running { game, room, version } => match &mut entry.checkpoint {
                    Some(c) => c.running = version,
                    None => {
                        entry.running = Some(version);
                        entry.key = Some((game, room));
                    }
                },
            }
        }
        let mut commit = RoomCommit::default();
        for room in rooms {
            if let Some(c) = room.checkpoint {
                commit.checkpoints.push(c);
            }
            commit.journal.extend(room.journal);
            if let (Some(version), Some((game, room))) = (room.running, room.key) {
                commit.running.push((game, room, version));
            }
        }
        commit
    }

    /// The rooms it writes to.
    pub fn rooms(&self) -> std::collections::BTreeSet<(&str, &str)> {
        let checkpoints = self.checkpoints.iter().map(|c| (c.game.as_str(), c.room.as_str()));
        let journal = self.journal.iter().map(|j| (&*j.game, &*j.room));
        checkpoints.chain(journal).chain(self.running.iter().map(|r| (r.0.as_str(), r.1.as_str()))).collect()
    }

    /// Fences every room it writes by the claim `claims` has for it (rooms without one are not fenced).
    pub fn fence_by(&mut self, claims: &HashMap<(String, String), std::sync::Arc<super::owners::Claimed>>) {
        let mut fence = super::owners::Fence::default();
        for (game, room) in self.rooms() {
            if let Some(c) = claims.get(&(game.to_string(), room.to_string())) {
                fence.host = c.host.to_string();
                fence.rooms.push((game.to_string(), room.to_string(), c.incarnation, c.epoch));
            }
        }
        self.fence = (!fence.rooms.is_empty()).then_some(fence);
    }

    /// Leaves out everything it writes to `rooms` (game, room).
    pub fn remove(&mut self, rooms: &[(String, String)]) {
        let gone = |game: &str, room: &str| rooms.iter().any(|(g, r)| g == game && r == room);
        self.checkpoints.retain(|c| !gone(&c.game, &c.room));
        self.journal.retain(|j| !gone(&j.game, &j.room));
        self.running.retain(|r| !gone(&r.0, &r.1));
        if let Some(fence) = &mut self.fence {
            fence.rooms.retain(|r| !gone(&r.0, &r.1));
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.checkpoints.is_empty() && self.journal.is_empty() && self.running.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(room: &str, tick: i64, running: &str) -> RoomWrite {
        RoomWrite::Checkpoint(Checkpoint {
            game: "g".into(),
            room: room.into(),
            version: "1.0.0".into(),
            tick,
            state: vec![tick as u8],
            running: Some(running.into()),
        })
    }

    fn row(room: &str, tick: i64) -> RoomWrite {
        RoomWrite::Journal(JournalRow { game: "g".into(), room: room.into(), tick, data: vec![tick as u8] })
    }

    #[test]
    fn a_checkpoint_drops_the_rows_it_covers_and_a_later_version_change_wins() {
        let commit = RoomCommit::fold([
            row("a", 1),
            row("a", 2),
            row("b", 7),
            cp("a", 2, "1.0.0"),
            row("a", 3),
            RoomWrite::Running { game: "g".into(), room: "a".into(), version: Some("1.1.0".into()) },
            row("a", 4),
            cp("b", 5, "1.0.0"),
        ]);
        assert_eq!(commit.checkpoints.iter().map(|c| (c.room.as_str(), c.tick)).collect::<Vec<_>>(), [("a", 2), ("b", 5)]);
        assert_eq!(commit.journal.iter().map(|j| (&*j.room, j.tick)).collect::<Vec<_>>(), [("a", 3), ("a", 4), ("b", 7)]);
        assert!(commit.running.is_empty(), "the checkpoint carries the version that came after it");
        assert_eq!(commit.checkpoints[0].running.as_deref(), Some("1.1.0"));
        assert_eq!(commit.checkpoints[1].running.as_deref(), Some("1.0.0"));
    }

    #[test]
    fn a_checkpoint_after_a_version_change_carries_the_version_itself() {
        let commit = RoomCommit::fold([
            RoomWrite::Running { game: "g".into(), room: "a".into(), version: Some("2.0.0".into()) },
            cp("a", 9, "2.0.0"),
        ]);
        assert!(commit.running.is_empty());
        assert_eq!(commit.checkpoints[0].running.as_deref(), Some("2.0.0"));
    }
}
