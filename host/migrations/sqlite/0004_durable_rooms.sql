-- Durable rooms: the version each open room runs (NULL once it closed cleanly), so a restarted host
-- resumes every room that was open, and the durable journal, one row per tick, written in the host's
-- group commit before the tick's answers leave. Rows at or below the checkpoint's tick are deleted in the
-- transaction that stores the checkpoint.
ALTER TABLE room_checkpoints ADD COLUMN running TEXT;

CREATE TABLE room_journal (
    game TEXT    NOT NULL,
    room TEXT    NOT NULL,
    tick INTEGER NOT NULL,
    data BLOB    NOT NULL,
    PRIMARY KEY (game, room, tick)
) WITHOUT ROWID;
