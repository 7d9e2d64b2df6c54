//! The fleet's hosts table on PostgreSQL: registration, lease renewal and the list of hosts, every
//! expiry judged by the database's clock (`now()`), never by a host's, and every lease bound to the
//! database session that holds it (`live_hosts` in `0005_fleet_routing.sql`).

use super::postgres::PgStore;
use anyhow::{Context as _, Result};
use sqlx::Row as _;
use std::time::Duration;

/// A host as the hosts table has it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostRecord {
    /// The host's id (`fleet.host_id`).
    pub id: String,
    /// Goes up each time the host registers: rooms held under an older one are not its own any more.
    pub incarnation: i64,
    /// The addresses players reach it at.
    pub addresses: String,
    /// Rooms it runs.
    pub load: i64,
    /// Whether it is live: its lease is current by the database's clock and the session that holds it
    /// is connected.
    pub live: bool,
    /// How long its lease has left (negative: expired that long ago), in ms by the database's clock.
    pub lease_left_ms: i64,
    /// The games it has loaded.
    pub games: Vec<String>,
    /// Asked to drain (`warden drain`).
    pub draining: bool,
}

/// The interval as PostgreSQL takes it (microseconds).
fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

/// The database session a host's lease lives in: a connection of its own, outside the pool. The host
/// is live only while this session is connected (and its lease runs): when the host dies, the operating
/// system closes the connection, PostgreSQL ends the session, and the other hosts see the host gone at
/// once. Renewals go through the same session only: a renewal from any other connection is refused.
pub struct HostSession {
    conn: sqlx::PgConnection,
}

impl PgStore {
    /// Opens a session for a host's lease.
    pub async fn host_session(&self) -> Result<HostSession> {
        Ok(HostSession { conn: self.connection().await? })
    }
}

impl HostSession {
    /// Registers host `id` with a lease of `lease` from the database's now, bound to this session;
    /// returns its new incarnation (one above the last it had, 1 for a new host).
    pub async fn register(&mut self, id: &str, addresses: &str, games: &[String], lease: Duration) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO hosts (id, incarnation, addresses, games, lease_until, session_pid, session_start) \
             SELECT $1, 1, $2, $4, now() + make_interval(secs => $3::double precision / 1e6), pid, backend_start \
                 FROM pg_stat_activity WHERE pid = pg_backend_pid() \
             ON CONFLICT (id) DO UPDATE SET incarnation = hosts.incarnation + 1, addresses = EXCLUDED.addresses, \
                 games = EXCLUDED.games, load = 0, started_at = now(), renewed_at = now(), lease_until = EXCLUDED.lease_until, draining = false, \
                 session_pid = EXCLUDED.session_pid, session_start = EXCLUDED.session_start \
             RETURNING incarnation",
        )
        .bind(id)
        .bind(addresses)
        .bind(micros(lease))
        .bind(games)
        .fetch_one(&mut self.conn)
        .await
        .with_context(|| format!("failed to register host {id:?} in the hosts table"))?;
        Ok(row.get(0))
    }

    /// Renews host `id`'s lease at `incarnation` for `lease` from the database's now, recording its
    /// `load` and `games`; says whether the host is asked to drain. `None` when the lease is not its own
    /// any more: it expired (by the database's clock), the host registered again since, or the lease
    /// belongs to another session. An expired lease is never renewed: other hosts may have taken its
    /// rooms.
    pub async fn renew(&mut self, id: &str, incarnation: i64, lease: Duration, load: i64, games: &[String]) -> Result<Option<bool>> {
        let draining: Option<bool> = sqlx::query_scalar(
            "UPDATE hosts SET lease_until = now() + make_interval(secs => $3::double precision / 1e6), renewed_at = now(), \
                 load = $4, games = $5 \
             WHERE id = $1 AND incarnation = $2 AND lease_until > now() AND session_pid = pg_backend_pid() \
             RETURNING draining",
        )
        .bind(id)
        .bind(incarnation)
        .bind(micros(lease))
        .bind(load)
        .bind(games)
        .fetch_optional(&mut self.conn)
        .await
        .with_context(|| format!("failed to renew the lease of host {id:?}"))?;
        Ok(draining)
    }

    /// Ends host `id`'s lease at `incarnation` now (it stopped serving: other hosts need not wait for the
    /// lease to run out), and closes the session. False if the lease was not its own any more.
    pub async fn release(mut self, id: &str, incarnation: i64) -> Result<bool> {
        let released =
            sqlx::query("UPDATE hosts SET lease_until = now(), load = 0 WHERE id = $1 AND incarnation = $2 AND lease_until > now()")
                .bind(id)
                .bind(incarnation)
                .execute(&mut self.conn)
                .await
                .with_context(|| format!("failed to release the lease of host {id:?}"))?;
        use sqlx::Connection as _;
        let _ = self.conn.close().await;
        Ok(released.rows_affected() == 1)
    }
}

impl PgStore {
    /// Asks live host `id` to drain (`warden drain`): it stops its rooms, which move to the other hosts,
    /// and leaves the fleet. Returns the incarnation asked, or `None` if no such host is live.
    pub async fn drain_host(&self, id: &str) -> Result<Option<i64>> {
        sqlx::query_scalar(
            "UPDATE hosts h SET draining = true WHERE id = $1 AND EXISTS (SELECT 1 FROM live_hosts l WHERE l.id = h.id) RETURNING incarnation",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("failed to ask host {id:?} to drain"))
    }

    /// Every host, live or not, by id.
    pub async fn hosts(&self) -> Result<Vec<HostRecord>> {
        let rows = sqlx::query(
            "SELECT id, incarnation, addresses, load, EXISTS (SELECT 1 FROM live_hosts l WHERE l.id = h.id), \
                 (extract(epoch FROM lease_until - now()) * 1000)::bigint, games, draining \
             FROM hosts h ORDER BY id",
        )
        .fetch_all(self.pool())
        .await
        .context("failed to read the hosts table")?;
        Ok(rows
            .into_iter()
            .map(|r| HostRecord {
                id: r.get(0),
                incarnation: r.get(1),
                addresses: r.get(2),
                load: r.get(3),
                live: r.get(4),
                lease_left_ms: r.get(5),
                games: r.get(6),
                draining: r.get(7),
            })
            .collect())
    }
}
