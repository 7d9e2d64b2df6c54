//! Everything a store holds, as plain rows: what `warden store migrate` reads from one store and writes
//! into another (a single host's SQLite into the PostgreSQL of a fleet).

use super::{AuditEntry, Checkpoint, JournalRow, RolloutRecord, StoredSave, VersionRecord};

/// A store's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreExport {
    /// (game, player, save), the save's revision and time kept.
    pub saves: Vec<(String, String, StoredSave)>,
    /// Registered versions, with the time of their last change (Unix ms).
    pub versions: Vec<(VersionRecord, i64)>,
    /// (plugin, floor).
    pub floors: Vec<(String, String)>,
    /// Rollouts in progress.
    pub rollouts: Vec<RolloutRecord>,
    /// Switches: (plugin, switch, on, actor, updated_at).
    pub switches: Vec<(String, String, bool, String, i64)>,
    /// The audit log, oldest first, ids kept.
    pub audit: Vec<AuditEntry>,
    /// Room checkpoints.
    pub checkpoints: Vec<Checkpoint>,
    /// Durable journal rows.
    pub journal: Vec<JournalRow>,
}

impl StoreExport {
    /// Rows per table, for the migration's report.
    pub fn counts(&self) -> [(&'static str, usize); 8] {
        [
            ("saves", self.saves.len()),
            ("versions", self.versions.len()),
            ("floors", self.floors.len()),
            ("rollouts", self.rollouts.len()),
            ("switches", self.switches.len()),
            ("audit entries", self.audit.len()),
            ("checkpoints", self.checkpoints.len()),
            ("journal rows", self.journal.len()),
        ]
    }
}
