-- warden drain (host/src/fleet/member.rs): a host asked to drain sees the flag at its next renewal,
-- stops its rooms (their players are told they moved), and leaves the fleet once what they wrote is in;
-- meanwhile no new room is placed on it and it takes no room over. A new incarnation starts undrained.
ALTER TABLE hosts ADD COLUMN draining BOOLEAN NOT NULL DEFAULT false;

CREATE OR REPLACE VIEW live_hosts AS
    SELECT h.* FROM hosts h
    WHERE h.lease_until > now()
      AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = h.session_pid AND a.backend_start = h.session_start);
