-- The durable journal as one segment per group commit: every room's rows of that commit, grouped by room
-- (MessagePack), appended under an increasing sequence number, so a commit writes one row instead of one
-- per room and tick scattered across a B-tree (host/src/storage/segments.rs). A segment is deleted once
-- checkpoints cover every room's rows in it. room_journal keeps one row per room and tick for the rows a
-- room still needs after its segment grew old (a room that crashed and closed, a version on trial).
CREATE TABLE room_journal_segments (
    seq  INTEGER PRIMARY KEY,
    data BLOB    NOT NULL
);
