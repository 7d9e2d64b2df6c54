-- The durable journal as one segment per group commit: every room's rows of that commit, grouped by room
-- (MessagePack), one row instead of one per room and tick (host/src/storage/segments.rs). The sequence
-- number comes from the database, so that hosts sharing it never reuse one. A segment is deleted once
-- checkpoints cover every room's rows in it; room_journal keeps one row per room and tick for the rows a
-- room still needs after its segment grew old.
CREATE TABLE room_journal_segments (
    seq  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    data BYTEA  NOT NULL
);
