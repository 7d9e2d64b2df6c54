//! Where a fleet's rooms go, on PostgreSQL: a new room is placed on the least-loaded live host that has
//! its game (and did not fail to make the version serving it ready), by writing its owner row for that host (so a burst of new rooms spreads as it comes, and
//! two hosts placing the same room at once agree: the second finds the first's row); the rooms of a host
//! that died are found for the live hosts to take over; and the fleet's shared secrets.

use super::postgres::PgStore;
use anyhow::{Context as _, Result, bail};
use sqlx::Row as _;

/// Where a room is to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placed {
    /// On the asking host.
    Here,
    /// On another live host.
    There {
        /// Its id.
        host: String,
        /// Where players reach it.
        addresses: String,
    },
}

/// A live host as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveHost {
    /// Its id.
    pub id: String,
    /// The games it has loaded.
    pub games: Vec<String>,
}

/// How long a placed room counts towards its host's load before it has opened there.
const PLACED_COUNTS_FOR: &str = "10 seconds";

impl PgStore {
    /// Where room `room` of `game` runs, asked by host `host` at `incarnation`: with its live owner if it
    /// has one, else placed now on the least-loaded live host that has the game (the asking host wins
    /// ties). A room whose owner died is placed anew, which is how a join takes a dead host's room over.
    pub async fn place_room(&self, game: &str, room: &str, host: &str, incarnation: i64) -> Result<Placed> {
        for _ in 0..3 {
            let owner = sqlx::query(
                "SELECT h.id, h.incarnation, h.addresses FROM room_owners o
                 JOIN live_hosts h ON h.id = o.host_id AND h.incarnation = o.incarnation
                 WHERE o.game = $1 AND o.room = $2",
            )
            .bind(game)
            .bind(room)
            .fetch_optional(self.pool())
            .await
            .with_context(|| format!("failed to read the owner of room {game}/{room}"))?;
            if let Some(row) = owner {
                let (id, inc): (String, i64) = (row.get(0), row.get(1));
                return Ok(if id == host && inc == incarnation { Placed::Here } else { Placed::There { host: id, addresses: row.get(2) } });
            }
            // Placements of a game one at a time, each seeing the one before: two new rooms placed at
            // once would otherwise both go to the host that was least loaded before either.
            let mut tx = self.pool().begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('warden.placement:' || $1))").bind(game).execute(&mut *tx).await?;
            let pick = sqlx::query(&format!(
                "SELECT h.id, h.incarnation, h.addresses FROM live_hosts h
                 WHERE $1 = ANY(h.games) AND NOT h.draining
                   -- not a host that could not make the version serving the game ready (it still runs an
                   -- older one; deploy/fleet.rs)
                   AND NOT EXISTS (SELECT 1 FROM host_versions hv
                                   JOIN plugin_versions pv ON pv.plugin = hv.plugin AND pv.version = hv.version
                                   WHERE hv.host_id = h.id AND hv.plugin = $1 AND hv.state = 'failed'
                                     AND pv.state IN ('active', 'probation'))
                 ORDER BY (SELECT count(*) FROM room_owners o
                           LEFT JOIN room_checkpoints c ON c.game = o.game AND c.room = o.room
                           WHERE o.host_id = h.id AND o.incarnation = h.incarnation
                             AND (c.running IS NOT NULL OR o.claimed_at > now() - interval '{PLACED_COUNTS_FOR}')),
                          (h.id = $2) DESC, h.id
                 LIMIT 1"
            ))
            .bind(game)
            .bind(host)
            .fetch_optional(&mut *tx)
            .await
            .with_context(|| format!("failed to choose a host for room {game}/{room}"))?;
            let Some(pick) = pick else { bail!("no live host of the fleet has game {game} loaded") };
            let (id, inc, addresses): (String, i64, String) = (pick.get(0), pick.get(1), pick.get(2));
            // Only while no live host owns it: of two hosts placing the room at once, one row wins.
            let placed = sqlx::query(
                "INSERT INTO room_owners (game, room, host_id, incarnation, epoch) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (game, room) DO UPDATE
                     SET host_id = EXCLUDED.host_id, incarnation = EXCLUDED.incarnation, epoch = room_owners.epoch + 1, claimed_at = now()
                     WHERE NOT EXISTS (SELECT 1 FROM live_hosts h WHERE h.id = room_owners.host_id AND h.incarnation = room_owners.incarnation)
                 RETURNING 1",
            )
            .bind(game)
            .bind(room)
            .bind(&id)
            .bind(inc)
            .fetch_optional(&mut *tx)
            .await
            .with_context(|| format!("failed to place room {game}/{room} on host {id}"))?;
            tx.commit().await?;
            if placed.is_some() {
                return Ok(if id == host && inc == incarnation { Placed::Here } else { Placed::There { host: id, addresses } });
            }
        }
        bail!("room {game}/{room} changed owner three times while it was being placed")
    }

    /// The open rooms whose owner is not live (it died, or they never had one), and the live hosts that
    /// may take them over (not those draining).
    pub async fn orphaned_rooms(&self) -> Result<(Vec<(String, String)>, Vec<LiveHost>)> {
        let rooms = sqlx::query(
            "SELECT c.game, c.room FROM room_checkpoints c
             LEFT JOIN room_owners o ON o.game = c.game AND o.room = c.room
             WHERE c.running IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM live_hosts h WHERE h.id = o.host_id AND h.incarnation = o.incarnation)
             ORDER BY c.game, c.room",
        )
        .fetch_all(self.pool())
        .await
        .context("failed to read the rooms no live host owns")?;
        let hosts = sqlx::query("SELECT id, games FROM live_hosts WHERE NOT draining ORDER BY id")
            .fetch_all(self.pool())
            .await
            .context("failed to read the live hosts")?;
        Ok((
            rooms.into_iter().map(|r| (r.get(0), r.get(1))).collect(),
            hosts.into_iter().map(|r| LiveHost { id: r.get(0), games: r.get(1) }).collect(),
        ))
    }

    /// The fleet's secret named `name` (three random UUIDs, 366 random bits, from PostgreSQL's strong random source), made by
    /// the first host that asks.
    pub async fn fleet_secret(&self, name: &str) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO fleet_secrets (name, secret)
             VALUES ($1, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'))
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to make the fleet's {name} secret"))?;
        sqlx::query_scalar("SELECT secret FROM fleet_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await
            .with_context(|| format!("failed to read the fleet's {name} secret"))
    }
}
