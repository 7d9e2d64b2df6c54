//! The fleet's hosts table on PostgreSQL: registration, lease renewal and the list of hosts, every
//! expiry judged by the database's clock (`now()`), never by a host's.

use super::postgres::PgStore;
use anyhow::{Context as _, Result};
use sqlx::Row as _;
use std::time::Duration;

/// A host as the hosts table has it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HostRecord {
    /// The host's id (`fleet.host_id`).
    pub id: String,
    /// Goes up each time the host registers: rooms held under an older one are not its own any more.
    pub incarnation: i64,
    /// The addresses players reach it at.
    pub addresses: String,
    /// Rooms it runs.
    pub load: i64,
    /// Whether its lease is current by the database's clock.
    pub live: bool,
    /// How long its lease has left (negative: expired that long ago), in ms by the database's clock.
    pub lease_left_ms: i64,
}

/// The interval as PostgreSQL takes it (microseconds).
fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

impl PgStore {
    /// Registers host `id` with a lease of `lease` from the database's now; returns its new incarnation
    /// (one above the last it had, 1 for a new host).
    pub async fn register_host(&self, id: &str, addresses: &str, lease: Duration) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO hosts (id, incarnation, addresses, lease_until) \
             VALUES ($1, 1, $2, now() + make_interval(secs => $3::double precision / 1e6)) \
             ON CONFLICT (id) DO UPDATE SET incarnation = hosts.incarnation + 1, addresses = EXCLUDED.addresses, \
                 load = 0, started_at = now(), renewed_at = now(), lease_until = EXCLUDED.lease_until \
             RETURNING incarnation",
        )
        .bind(id)
        .bind(addresses)
        .bind(micros(lease))
        .fetch_one(self.pool())
        .await
        .with_context(|| format!("failed to register host {id:?} in the hosts table"))?;
        Ok(row.get(0))
    }

    /// Renews host `id`'s lease at `incarnation` for `lease` from the database's now, recording its
    /// `load`. False when the lease is not its own any more: it expired (by the database's clock), or the
    /// host registered again since. An expired lease is never renewed: other hosts may have taken its
    /// rooms.
    pub async fn renew_host(&self, id: &str, incarnation: i64, lease: Duration, load: i64) -> Result<bool> {
        let renewed = sqlx::query(
            "UPDATE hosts SET lease_until = now() + make_interval(secs => $3::double precision / 1e6), renewed_at = now(), load = $4 \
             WHERE id = $1 AND incarnation = $2 AND lease_until > now()",
        )
        .bind(id)
        .bind(incarnation)
        .bind(micros(lease))
        .bind(load)
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to renew the lease of host {id:?}"))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Ends host `id`'s lease at `incarnation` now (it stopped serving: other hosts need not wait for the
    /// lease to run out). False if the lease was not its own any more.
    pub async fn release_host(&self, id: &str, incarnation: i64) -> Result<bool> {
        let released =
            sqlx::query("UPDATE hosts SET lease_until = now(), load = 0 WHERE id = $1 AND incarnation = $2 AND lease_until > now()")
                .bind(id)
                .bind(incarnation)
                .execute(self.pool())
                .await
                .with_context(|| format!("failed to release the lease of host {id:?}"))?;
        Ok(released.rows_affected() == 1)
    }

    /// Every host, live or not, by id.
    pub async fn hosts(&self) -> Result<Vec<HostRecord>> {
        let rows = sqlx::query(
            "SELECT id, incarnation, addresses, load, lease_until > now(), \
                 (extract(epoch FROM lease_until - now()) * 1000)::bigint \
             FROM hosts ORDER BY id",
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
            })
            .collect())
    }
}
