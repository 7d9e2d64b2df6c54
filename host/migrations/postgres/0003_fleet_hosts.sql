-- The fleet's hosts (host/src/fleet/lease.rs): each host registers under its id with a new incarnation
-- and renews its lease by heartbeat. Leases are judged by the database clock only (now() here, never a
-- host's clock): a host is live while lease_until > now(). A renewal names the incarnation it holds and
-- succeeds only while that lease has not expired, so an expired host cannot come back to life: it
-- registers again with a higher incarnation and starts empty.
CREATE TABLE hosts (
    id          TEXT        PRIMARY KEY,
    incarnation BIGINT      NOT NULL,
    -- Where players reach it (the WebSocket and TCP addresses it advertises), for redirects.
    addresses   TEXT        NOT NULL DEFAULT '',
    -- What it runs (rooms), for placement.
    load        BIGINT      NOT NULL DEFAULT 0,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    renewed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until TIMESTAMPTZ NOT NULL
);
