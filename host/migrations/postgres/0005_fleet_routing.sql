-- Fleet step 3 (host/src/storage/hosts.rs, owners.rs, placement.rs): a host is live while its lease runs
-- AND the database session that registered it is still connected. A host that dies (kill -9, a crash,
-- a power cut) closes that session at once, so the fleet sees it gone in milliseconds instead of at the
-- end of its lease; a host cut off or paused keeps its session open and is judged by its lease alone.
-- The session is named by its backend pid and start time (a pid alone can be reused).
ALTER TABLE hosts
    ADD COLUMN session_pid   INTEGER,
    ADD COLUMN session_start TIMESTAMPTZ,
    -- The games it has loaded: placement sends a room only to a host that can run it.
    ADD COLUMN games         TEXT[] NOT NULL DEFAULT '{}';

CREATE VIEW live_hosts AS
    SELECT h.* FROM hosts h
    WHERE h.lease_until > now()
      AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = h.session_pid AND a.backend_start = h.session_start);

-- Placement counts a host's rooms by owner row.
CREATE INDEX room_owners_by_host ON room_owners (host_id, incarnation);

-- The fleet's shared secrets (the seat tokens of redirects are signed with 'seat'), made by the first
-- host that needs one.
CREATE TABLE fleet_secrets (
    name   TEXT  PRIMARY KEY,
    secret BYTEA NOT NULL
);
