-- Version states: `probation` (serving every room, on trial) and `superseded` (replaced before it
-- finished its trial) join the rest; `active` now means serving every room and proven. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE plugin_versions_v2 (
    plugin     TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('staged', 'canary', 'probation', 'active', 'stable', 'superseded', 'bad')),
    sha256     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (plugin, version)
) WITHOUT ROWID;
INSERT INTO plugin_versions_v2 (plugin, version, state, sha256, updated_at)
    SELECT plugin, version, state, sha256, updated_at FROM plugin_versions;
DROP TABLE plugin_versions;
ALTER TABLE plugin_versions_v2 RENAME TO plugin_versions;

-- The rollout in progress of each plugin (a version on canary or probation), so a restart resumes its
-- phase with the time it had left instead of ending it.
CREATE TABLE plugin_rollouts (
    plugin          TEXT    PRIMARY KEY,
    version         TEXT    NOT NULL,
    phase           TEXT    NOT NULL CHECK (phase IN ('canary', 'probation')),
    elapsed_ms      INTEGER NOT NULL,  -- time the phase has run, across restarts
    paused          INTEGER NOT NULL,
    canary_rooms    TEXT    NOT NULL,  -- JSON array of room ids
    previous_p99_us INTEGER
) WITHOUT ROWID;
