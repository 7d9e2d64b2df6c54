-- Fleet step 5, one deploy for the fleet (host/src/storage/fleet_deploy.rs, host/src/deploy/fleet.rs).

-- Every plugin file a host accepted, stored once by its content hash with its signature, so every other
-- host can fetch it. A host never trusts this copy: it checks the hash and the signature itself.
CREATE TABLE artifacts (
    sha256    TEXT        PRIMARY KEY,
    plugin    TEXT        NOT NULL,
    version   TEXT        NOT NULL,
    bytes     BYTEA       NOT NULL,
    signature TEXT,                    -- the .minisig text; NULL only for an unsigned file in dev mode
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What changed in the registry, in order. Hosts read the rows after the last one they saw, on a
-- NOTIFY (a wake-up only) and after every reconnect of their listener, and bring their rooms in line
-- with the registry. The rows are written by the triggers below, in the transaction of the change, so
-- no code path can change the registry and forget to tell the fleet.
CREATE TABLE fleet_events (
    seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind   TEXT        NOT NULL, -- 'versions', 'rollout', 'switches', 'rules'
    plugin TEXT,
    at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION fleet_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    plugin TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN plugin := OLD.plugin; ELSE plugin := NEW.plugin; END IF;
    INSERT INTO fleet_events (kind, plugin) VALUES (TG_ARGV[0], plugin);
    RETURN NULL;
END $$;

CREATE FUNCTION fleet_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('warden_events', NEW.seq::text);
    RETURN NULL;
END $$;

CREATE TRIGGER fleet_event_notify AFTER INSERT ON fleet_events FOR EACH ROW EXECUTE FUNCTION fleet_event_notify();

-- A version's state: every insert, and every update that changes the state.
CREATE TRIGGER versions_event_insert AFTER INSERT OR DELETE ON plugin_versions
    FOR EACH ROW EXECUTE FUNCTION fleet_event('versions');
CREATE TRIGGER versions_event_update AFTER UPDATE ON plugin_versions
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION fleet_event('versions');
-- A rollout's phase, version, pause or canary rooms; not the clock the leader saves every second.
CREATE TRIGGER rollout_event_insert AFTER INSERT OR DELETE ON plugin_rollouts
    FOR EACH ROW EXECUTE FUNCTION fleet_event('rollout');
CREATE TRIGGER rollout_event_update AFTER UPDATE ON plugin_rollouts
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version OR OLD.phase IS DISTINCT FROM NEW.phase
                       OR OLD.paused IS DISTINCT FROM NEW.paused OR OLD.canary_rooms IS DISTINCT FROM NEW.canary_rooms)
    EXECUTE FUNCTION fleet_event('rollout');
-- The operator's switches.
CREATE TRIGGER switches_event AFTER INSERT OR UPDATE OR DELETE ON plugin_switches
    FOR EACH ROW EXECUTE FUNCTION fleet_event('switches');

-- What each host has ready: a version it fetched, verified, compiled and smoke-tested ('ready'), or
-- could not ('failed', with why).
CREATE TABLE host_versions (
    host_id TEXT        NOT NULL,
    plugin  TEXT        NOT NULL,
    version TEXT        NOT NULL,
    sha256  TEXT        NOT NULL,
    state   TEXT        NOT NULL CHECK (state IN ('ready', 'failed')),
    detail  TEXT        NOT NULL DEFAULT '',
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, plugin, version)
);

-- Each host's health window per version, published twice a second: the rollout's leader sums the rows
-- of the live hosts and judges the version on the sum.
CREATE TABLE fleet_health (
    host_id     TEXT        NOT NULL,
    incarnation BIGINT      NOT NULL,
    plugin      TEXT        NOT NULL,
    version     TEXT        NOT NULL,
    rooms       BIGINT      NOT NULL,
    counts      JSONB       NOT NULL, -- health::Published
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, plugin, version)
);

-- Leases on roles only one host may play at a time: 'rollout' (the host that judges versions on trial
-- and moves rollouts on). Held while the holder is live and renews it.
CREATE TABLE fleet_leaders (
    role        TEXT        PRIMARY KEY,
    host_id     TEXT        NOT NULL,
    incarnation BIGINT      NOT NULL,
    until       TIMESTAMPTZ NOT NULL
);

-- The threshold rules set at runtime (PUT /admin/rules) on any host of a fleet: every host applies them,
-- and a host that starts later starts with them instead of warden.toml's [[rules]].
CREATE TABLE fleet_rules (
    id         INTEGER     PRIMARY KEY CHECK (id = 1),
    rules      JSONB       NOT NULL,
    actor      TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE FUNCTION fleet_rules_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fleet_events (kind) VALUES ('rules');
    RETURN NULL;
END $$;
CREATE TRIGGER rules_event AFTER INSERT OR UPDATE ON fleet_rules FOR EACH ROW EXECUTE FUNCTION fleet_rules_event();

-- Versions pushed to the fleet (`warden push --fleet`): the artifact is stored, and the host that runs
-- the rollouts takes it through the same checks as a file in its plugin directory, then records here
-- whether it deployed it or why not.
CREATE TABLE fleet_pushes (
    sha256    TEXT        PRIMARY KEY REFERENCES artifacts (sha256),
    plugin    TEXT        NOT NULL,
    version   TEXT        NOT NULL,
    state     TEXT        NOT NULL CHECK (state IN ('pending', 'deployed', 'rejected')),
    detail    TEXT        NOT NULL DEFAULT '',
    pushed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER pushes_event AFTER INSERT OR UPDATE ON fleet_pushes
    FOR EACH ROW WHEN (NEW.state = 'pending') EXECUTE FUNCTION fleet_event('push');
