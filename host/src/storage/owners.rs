//! Room ownership in a fleet, on PostgreSQL: a host claims a room when it opens it, and every commit of
//! a room's writes is fenced by the epoch of that claim (see `0004_room_owners.sql`). The database alone
//! decides: a claim checks the leases by its own clock, and a fenced commit checks the owner rows under a
//! share lock in the commit's transaction, so a claim by another host waits for a commit in flight and
//! every later commit of the old owner fails.

use super::postgres::PgStore;
use anyhow::{Context as _, Result};
use sqlx::Row as _;

/// What a claim got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The room is this host's, at this epoch (one above the last claim's).
    Owned {
        /// The epoch its writes are fenced by.
        epoch: i64,
    },
    /// Another live host owns it.
    HeldBy {
        /// That host's id.
        host: String,
        /// Where players reach it.
        addresses: String,
    },
    /// The claiming host's own lease is not live (it lapsed or expired): it may claim nothing.
    NotLive,
}

/// Who writes: the claims its commits are fenced by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fence {
    /// The writing host's id.
    pub host: String,
    /// Each room written: (game, room, incarnation, epoch) of the claim it was opened under.
    pub rooms: Vec<(String, String, i64, i64)>,
}

/// The claim a room's writes are fenced by: the room was opened by `host` at `incarnation` and is its
/// own at `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The host's id.
    pub host: std::sync::Arc<str>,
    /// The incarnation it claimed under.
    pub incarnation: i64,
    /// The epoch of the claim.
    pub epoch: i64,
}

/// A commit refused because these rooms (game, room) are no longer the writer's at the epoch it
/// claimed: another host took them over. Nothing of the commit was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("fenced: {} room(s) now owned by another host ({})", .0.len(), .0.iter().map(|(g, r)| format!("{g}/{r}")).collect::<Vec<_>>().join(", "))]
pub struct Fenced(pub Vec<(String, String)>);

impl PgStore {
    /// Claims room `room` of `game` for host `host` at `incarnation`: it becomes the host's at a new epoch
    /// if the host is live and no other live host owns the room (a dead owner's room is taken
    /// over; the host's own earlier claim is renewed).
    pub async fn claim_room(&self, game: &str, room: &str, host: &str, incarnation: i64) -> Result<Claim> {
        let claimed: Option<i64> = sqlx::query_scalar(
            "WITH me AS (SELECT 1 FROM live_hosts WHERE id = $3 AND incarnation = $4)
             INSERT INTO room_owners (game, room, host_id, incarnation, epoch)
             SELECT $1, $2, $3, $4, 1 FROM me
             ON CONFLICT (game, room) DO UPDATE
                 SET host_id = EXCLUDED.host_id, incarnation = EXCLUDED.incarnation, epoch = room_owners.epoch + 1, claimed_at = now()
                 WHERE NOT EXISTS (
                     SELECT 1 FROM live_hosts h
                     WHERE h.id = room_owners.host_id AND h.incarnation = room_owners.incarnation
                         AND NOT (h.id = $3 AND h.incarnation = $4))
             RETURNING epoch",
        )
        .bind(game)
        .bind(room)
        .bind(host)
        .bind(incarnation)
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("failed to claim room {game}/{room} for host {host:?}"))?;
        if let Some(epoch) = claimed {
            return Ok(Claim::Owned { epoch });
        }
        // Not claimed: the host is not live, or the room has a live owner.
        let owner = sqlx::query(
            "SELECT o.host_id, h.addresses FROM room_owners o JOIN live_hosts h ON h.id = o.host_id AND h.incarnation = o.incarnation
             WHERE o.game = $1 AND o.room = $2 AND NOT (h.id = $3 AND h.incarnation = $4)",
        )
        .bind(game)
        .bind(room)
        .bind(host)
        .bind(incarnation)
        .fetch_optional(self.pool())
        .await
        .with_context(|| format!("failed to read the owner of room {game}/{room}"))?;
        Ok(match owner {
            Some(row) => Claim::HeldBy { host: row.get(0), addresses: row.get(1) },
            None => Claim::NotLive,
        })
    }

    /// The rooms of `fence` that are not the writer's any more at the epoch it claimed, with their owner
    /// rows share-locked until `tx` ends (a claim waits for the commit).
    pub(crate) async fn fenced(tx: &mut sqlx::PgConnection, fence: &Fence) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT o.game, o.room, o.host_id, o.incarnation, o.epoch FROM room_owners o
             JOIN UNNEST($1::text[], $2::text[]) AS f(game, room) ON o.game = f.game AND o.room = f.room
             FOR SHARE OF o",
        )
        .bind(fence.rooms.iter().map(|r| r.0.as_str()).collect::<Vec<_>>())
        .bind(fence.rooms.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .context("failed to check the rooms' owners")?;
        let owners: std::collections::HashMap<(String, String), (String, i64, i64)> =
            rows.into_iter().map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3), r.get(4)))).collect();
        Ok(fence
            .rooms
            .iter()
            .filter(|(game, room, incarnation, epoch)| {
                owners.get(&(game.clone(), room.clone())) != Some(&(fence.host.clone(), *incarnation, *epoch))
            })
            .map(|(game, room, ..)| (game.clone(), room.clone()))
            .collect())
    }
}
