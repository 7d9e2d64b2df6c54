-- Which host owns each room of a fleet (host/src/storage/owners.rs). A host claims a room when it opens
-- it: the claim succeeds while the claiming host's own lease is live and no other live host owns the
-- room, and every claim raises the room's epoch. Every commit of a room's journal and checkpoint checks,
-- in its own transaction and under a share lock on these rows, that the room is still owned by the
-- writing host at the epoch it claimed (fencing): a host that lost a room can no longer write to it.
CREATE TABLE room_owners (
    game        TEXT        NOT NULL,
    room        TEXT        NOT NULL,
    host_id     TEXT        NOT NULL,
    incarnation BIGINT      NOT NULL,
    epoch       BIGINT      NOT NULL,
    claimed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (game, room)
);
