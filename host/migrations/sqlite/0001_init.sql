-- Player saves: the newest save of each player per game, with a revision that only goes up. A rowid
-- table: saves are around a kilobyte, too large a row for WITHOUT ROWID to pay off.
CREATE TABLE player_saves (
    game       TEXT    NOT NULL,
    player     TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    compressed INTEGER NOT NULL DEFAULT 0, -- 1: lz4 block with the size prepended
    size       INTEGER NOT NULL,           -- uncompressed size in bytes
    updated_at INTEGER NOT NULL,           -- unix milliseconds
    UNIQUE (game, player)
);

-- Plugin versions and their rollout state.
CREATE TABLE plugin_versions (
    plugin     TEXT    NOT NULL,
    version    TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('staged', 'canary', 'active', 'stable', 'bad')),
    sha256     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (plugin, version)
) WITHOUT ROWID;

-- The lowest version each plugin may run (no downgrades, no replays).
CREATE TABLE version_floors (
    plugin TEXT PRIMARY KEY,
    floor  TEXT NOT NULL
) WITHOUT ROWID;

-- Append-only audit log.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    plugin  TEXT,
    version TEXT,
    detail  TEXT    NOT NULL
);

-- The last checkpoint of each room.
CREATE TABLE room_checkpoints (
    game    TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    version TEXT    NOT NULL,
    tick    INTEGER NOT NULL,
    state   BLOB    NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (game, room)
) WITHOUT ROWID;
