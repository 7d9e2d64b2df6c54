//! One deploy for the fleet, on PostgreSQL (`0007_fleet_deploy.sql`): plugin files stored once by content
//! hash, the registry's changes as numbered event rows (written by triggers) with a NOTIFY as wake-up,
//! what each host has ready, each host's health windows for the rollout's leader to sum, and the leader's
//! lease. The mechanism that uses them is `deploy/fleet.rs`.

use super::postgres::PgStore;
use crate::health::{Counts, Histogram};
use anyhow::{Context as _, Result};
use sqlx::Row as _;
use std::time::Duration;

/// The channel the event triggers notify.
pub const EVENTS_CHANNEL: &str = "warden_events";

/// A plugin file as a host accepted it.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// sha256 of `bytes`, lower-case hex: the key.
    pub sha256: String,
    /// The plugin it claims to be.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The component.
    pub bytes: Vec<u8>,
    /// The `.minisig` text (none: an unsigned file, which only dev mode admits).
    pub signature: Option<String>,
}

/// A change of the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetEvent {
    /// Its sequence number: events are read in this order, from after the last one seen.
    pub seq: i64,
    /// `versions`, `rollout`, `switches` or `rules`.
    pub kind: String,
    /// The plugin it is about (none for `rules`).
    pub plugin: Option<String>,
}

/// A version as one host has it ready (or could not make ready).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostVersion {
    /// The host.
    pub host: String,
    /// Plugin.
    pub plugin: String,
    /// Version.
    pub version: String,
    /// `ready` or `failed`.
    pub state: String,
    /// Why it failed.
    pub detail: String,
}

/// One host's health window of one version, as published.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Published {
    /// The window's counts.
    pub counts: Counts,
    /// Its call latencies (not part of [`Counts`]' serialized form).
    pub latency: Histogram,
}

/// A version's health window summed across the live hosts.
#[derive(Clone, Debug, Default)]
pub struct FleetWindow {
    /// The sum.
    pub counts: Counts,
    /// Hosts whose window it holds.
    pub hosts: usize,
    /// Rooms running the version on those hosts.
    pub rooms: i64,
}

/// A published window that is older than this is not counted (its host stopped publishing).
const FRESH: &str = "5 seconds";

impl PgStore {
    /// Stores a plugin file by its hash (once: a file stored before is left as it is).
    pub async fn put_artifact(&self, a: &Artifact) -> Result<()> {
        sqlx::query(
            "INSERT INTO artifacts (sha256, plugin, version, bytes, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&a.sha256)
        .bind(&a.plugin)
        .bind(&a.version)
        .bind(&a.bytes)
        .bind(&a.signature)
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to store {} {} in the fleet's artifacts", a.plugin, a.version))?;
        Ok(())
    }

    /// The plugin file stored under `sha256`.
    pub async fn artifact(&self, sha256: &str) -> Result<Option<Artifact>> {
        let row = sqlx::query("SELECT sha256, plugin, version, bytes, signature FROM artifacts WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(self.pool())
            .await
            .with_context(|| format!("failed to read artifact {sha256}"))?;
        Ok(row.map(|r| Artifact { sha256: r.get(0), plugin: r.get(1), version: r.get(2), bytes: r.get(3), signature: r.get(4) }))
    }

    /// Queues a version for the fleet (`warden push --fleet`): stores the artifact and a pending push
    /// (again pending if it was pushed before).
    pub async fn push_artifact(&self, a: &Artifact) -> Result<()> {
        self.put_artifact(a).await?;
        sqlx::query(
            "INSERT INTO fleet_pushes (sha256, plugin, version, state) VALUES ($1, $2, $3, 'pending') \
             ON CONFLICT (sha256) DO UPDATE SET state = 'pending', detail = '', pushed_at = now()",
        )
        .bind(&a.sha256)
        .bind(&a.plugin)
        .bind(&a.version)
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to queue {} {} for the fleet", a.plugin, a.version))?;
        Ok(())
    }

    /// The pushes not taken yet, oldest first.
    pub async fn pending_pushes(&self) -> Result<Vec<Artifact>> {
        let rows = sqlx::query(
            "SELECT a.sha256, a.plugin, a.version, a.bytes, a.signature FROM fleet_pushes p JOIN artifacts a ON a.sha256 = p.sha256 \
             WHERE p.state = 'pending' ORDER BY p.pushed_at",
        )
        .fetch_all(self.pool())
        .await
        .context("failed to read the fleet's pending pushes")?;
        Ok(rows
            .into_iter()
            .map(|r| Artifact { sha256: r.get(0), plugin: r.get(1), version: r.get(2), bytes: r.get(3), signature: r.get(4) })
            .collect())
    }

    /// Records what became of a push: deployed, or rejected and why.
    pub async fn finish_push(&self, sha256: &str, outcome: Result<(), &str>) -> Result<()> {
        let (state, detail) = match outcome {
            Ok(()) => ("deployed", ""),
            Err(why) => ("rejected", why),
        };
        sqlx::query("UPDATE fleet_pushes SET state = $2, detail = $3 WHERE sha256 = $1 AND state = 'pending'")
            .bind(sha256)
            .bind(state)
            .bind(detail)
            .execute(self.pool())
            .await
            .context("failed to record a push's outcome")?;
        Ok(())
    }

    /// A push's state (`pending`, `deployed` or `rejected`) and detail.
    pub async fn push_state(&self, sha256: &str) -> Result<Option<(String, String)>> {
        sqlx::query_as("SELECT state, detail FROM fleet_pushes WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(self.pool())
            .await
            .context("failed to read a push's state")
    }

    /// The sequence number of the newest event (0: none yet).
    pub async fn last_event(&self) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM fleet_events").fetch_one(self.pool()).await?;
        Ok(seq.unwrap_or(0))
    }

    /// The events after `seq`, oldest first (at most 1,000).
    pub async fn events_after(&self, seq: i64) -> Result<Vec<FleetEvent>> {
        let rows = sqlx::query("SELECT seq, kind, plugin FROM fleet_events WHERE seq > $1 ORDER BY seq LIMIT 1000")
            .bind(seq)
            .fetch_all(self.pool())
            .await
            .context("failed to read the fleet's events")?;
        Ok(rows.into_iter().map(|r| FleetEvent { seq: r.get(0), kind: r.get(1), plugin: r.get(2) }).collect())
    }

    /// Records that host `host` has `plugin` `version` ready (`Ok`), or could not make it ready.
    pub async fn report_version(&self, host: &str, plugin: &str, version: &str, sha256: &str, outcome: Result<(), &str>) -> Result<()> {
        let (state, detail) = match outcome {
            Ok(()) => ("ready", ""),
            Err(why) => ("failed", why),
        };
        sqlx::query(
            "INSERT INTO host_versions (host_id, plugin, version, sha256, state, detail) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (host_id, plugin, version) DO UPDATE SET sha256 = EXCLUDED.sha256, state = EXCLUDED.state, \
                 detail = EXCLUDED.detail, at = now()",
        )
        .bind(host)
        .bind(plugin)
        .bind(version)
        .bind(sha256)
        .bind(state)
        .bind(detail)
        .execute(self.pool())
        .await
        .context("failed to record a version ready on this host")?;
        Ok(())
    }

    /// What every host has ready, by host, plugin and version.
    pub async fn host_versions(&self) -> Result<Vec<HostVersion>> {
        let rows = sqlx::query("SELECT host_id, plugin, version, state, detail FROM host_versions ORDER BY host_id, plugin, version")
            .fetch_all(self.pool())
            .await
            .context("failed to read the versions hosts have ready")?;
        Ok(rows
            .into_iter()
            .map(|r| HostVersion { host: r.get(0), plugin: r.get(1), version: r.get(2), state: r.get(3), detail: r.get(4) })
            .collect())
    }

    /// Publishes host `host`'s (at `incarnation`) health windows: (plugin, version, rooms, window).
    pub async fn publish_health(&self, host: &str, incarnation: i64, windows: &[(String, String, i64, Published)]) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        // Replaced twice a second and worth nothing after a crash: no wait for the disk.
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        for (plugin, version, rooms, published) in windows {
            sqlx::query(
                "INSERT INTO fleet_health (host_id, incarnation, plugin, version, rooms, counts) VALUES ($1, $2, $3, $4, $5, $6::jsonb) \
                 ON CONFLICT (host_id, plugin, version) DO UPDATE SET incarnation = EXCLUDED.incarnation, rooms = EXCLUDED.rooms, \
                     counts = EXCLUDED.counts, at = now()",
            )
            .bind(host)
            .bind(incarnation)
            .bind(plugin)
            .bind(version)
            .bind(rooms)
            .bind(serde_json::to_string(published)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.context("failed to publish this host's health windows")?;
        Ok(())
    }

    /// The health window of `plugin` `version` summed over the live hosts' fresh windows.
    pub async fn fleet_window(&self, plugin: &str, version: &str) -> Result<FleetWindow> {
        let rows = sqlx::query(&format!(
            "SELECT f.rooms, f.counts::text FROM fleet_health f JOIN live_hosts h ON h.id = f.host_id AND h.incarnation = f.incarnation \
             WHERE f.plugin = $1 AND f.version = $2 AND f.at > now() - interval '{FRESH}'"
        ))
        .bind(plugin)
        .bind(version)
        .fetch_all(self.pool())
        .await
        .context("failed to read the fleet's health windows")?;
        let mut sum = FleetWindow::default();
        for r in rows {
            let counts = decode(r.get(1))?;
            sum.counts.add(&counts);
            sum.rooms += r.get::<i64, _>(0);
            sum.hosts += 1;
        }
        Ok(sum)
    }

    /// Every live host's fresh window: (host, plugin, version, rooms, counts).
    pub async fn fleet_windows(&self) -> Result<Vec<(String, String, String, i64, Counts)>> {
        let rows = sqlx::query(&format!(
            "SELECT f.host_id, f.plugin, f.version, f.rooms, f.counts::text FROM fleet_health f \
             JOIN live_hosts h ON h.id = f.host_id AND h.incarnation = f.incarnation \
             WHERE f.at > now() - interval '{FRESH}' ORDER BY f.host_id, f.plugin, f.version"
        ))
        .fetch_all(self.pool())
        .await
        .context("failed to read the fleet's health windows")?;
        rows.into_iter().map(|r| Ok((r.get(0), r.get(1), r.get(2), r.get(3), decode(r.get(4))?))).collect()
    }

    /// Takes or keeps the lease on `role` for host `host` at `incarnation`, for `lease` from the
    /// database's now: granted if the host is live and the role is free, expired, held by a host that
    /// is not live, or held by this host already. True if held now.
    pub async fn lead(&self, role: &str, host: &str, incarnation: i64, lease: Duration) -> Result<bool> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO fleet_leaders AS l (role, host_id, incarnation, until) \
             SELECT $1, $2, $3, now() + make_interval(secs => $4::double precision / 1e6) \
                 WHERE EXISTS (SELECT 1 FROM live_hosts h WHERE h.id = $2 AND h.incarnation = $3) \
             ON CONFLICT (role) DO UPDATE SET host_id = EXCLUDED.host_id, incarnation = EXCLUDED.incarnation, until = EXCLUDED.until \
             WHERE (l.host_id = EXCLUDED.host_id AND l.incarnation = EXCLUDED.incarnation) OR l.until < now() \
                 OR NOT EXISTS (SELECT 1 FROM live_hosts h WHERE h.id = l.host_id AND h.incarnation = l.incarnation) \
             RETURNING host_id",
        )
        .bind(role)
        .bind(host)
        .bind(incarnation)
        .bind(lease.as_micros().min(i64::MAX as u128) as i64)
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("failed to take or renew the {role} lease"))?;
        Ok(held.is_some())
    }

    /// The live host holding `role`, if any.
    pub async fn leader(&self, role: &str) -> Result<Option<String>> {
        sqlx::query_scalar(
            "SELECT l.host_id FROM fleet_leaders l JOIN live_hosts h ON h.id = l.host_id AND h.incarnation = l.incarnation \
             WHERE l.role = $1 AND l.until > now()",
        )
        .bind(role)
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("failed to read who holds the {role} lease"))
    }

    /// The rooms of `game` that live hosts run.
    pub async fn fleet_rooms(&self, game: &str) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT o.room FROM room_owners o JOIN live_hosts h ON h.id = o.host_id AND h.incarnation = o.incarnation \
             JOIN room_checkpoints c ON c.game = o.game AND c.room = o.room AND c.running IS NOT NULL WHERE o.game = $1",
        )
        .bind(game)
        .fetch_all(self.pool())
        .await
        .with_context(|| format!("failed to read the fleet's rooms of {game}"))
    }

    /// Stores the threshold rules set at runtime (JSON), for every host.
    pub async fn put_fleet_rules(&self, rules: &str, actor: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO fleet_rules (id, rules, actor) VALUES (1, $1::jsonb, $2) \
             ON CONFLICT (id) DO UPDATE SET rules = EXCLUDED.rules, actor = EXCLUDED.actor, updated_at = now()",
        )
        .bind(rules)
        .bind(actor)
        .execute(self.pool())
        .await
        .context("failed to store the rules for the fleet")?;
        Ok(())
    }

    /// The threshold rules set at runtime for the fleet, if any were.
    pub async fn fleet_rules(&self) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT rules::text FROM fleet_rules WHERE id = 1")
            .fetch_optional(self.pool())
            .await
            .context("failed to read the fleet's rules")
    }

    /// A listener on the registry's event channel (a connection of the pool, kept).
    pub async fn listen_events(&self) -> Result<sqlx::postgres::PgListener> {
        let mut listener = sqlx::postgres::PgListener::connect_with(self.pool()).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        Ok(listener)
    }
}

/// A published window's counts, latency included.
fn decode(text: String) -> Result<Counts> {
    let published: Published = serde_json::from_str(&text).context("a published health window that does not decode")?;
    let mut counts = published.counts;
    counts.latency = published.latency;
    Ok(counts)
}
