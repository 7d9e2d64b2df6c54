//! Failover: the live hosts take over the open rooms of a host that died. Every live host looks, once a
//! heartbeat, for open rooms no live host owns, and opens those that fall to it: each room goes to the
//! live host (of those that have its game) with the highest rendezvous hash of room and host, so the
//! rooms of a dead host spread evenly over the others without any talk between them, and when hosts come
//! or go only the rooms that must move do. Two hosts that see the fleet differently for a moment may
//! both try a room: its claim (`storage/owners.rs`) lets one of them have it.

use super::lease::LeaseState;
use crate::room::Rooms;
use crate::storage::placement::LiveHost;
use crate::storage::postgres::PgStore;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The host room `room` of `game` falls to, of `hosts` (those without the game are passed over).
pub fn rendezvous<'a>(game: &str, room: &str, hosts: &'a [LiveHost]) -> Option<&'a str> {
    hosts.iter().filter(|h| h.games.iter().any(|g| g == game)).max_by_key(|h| weight(game, room, &h.id)).map(|h| h.id.as_str())
}

fn weight(game: &str, room: &str, host: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [game, room, host] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

/// Every `scan` while the lease is held, takes over the rooms no live host owns that fall to host `host`.
/// A scan that the store does not answer within four `scan`s is given up (the next one tries again).
pub async fn keep_adopting(lease: watch::Receiver<LeaseState>, (host, store): (Arc<str>, PgStore), rooms: Rooms, scan: Duration) {
    let mut scans = tokio::time::interval(scan);
    scans.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        scans.tick().await;
        if !lease.borrow().serving() {
            continue;
        }
        match tokio::time::timeout(scan * 4, adopt_orphans(&store, &host, &rooms)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(rooms = n, "took over rooms no live host owned"),
            Ok(Err(e)) => tracing::warn!("failed to look for rooms no live host owns: {e:#}"),
            Err(_) => tracing::warn!("the store did not say which rooms no live host owns in time"),
        }
    }
}

/// Opens the orphaned rooms that fall to host `me`; returns how many it opened. Each resumes from its
/// checkpoint and durable journal once its claim succeeds.
pub async fn adopt_orphans(store: &PgStore, me: &str, rooms: &Rooms) -> anyhow::Result<usize> {
    let (orphans, hosts) = store.orphaned_rooms().await?;
    let mut opened = 0;
    for (game, room) in &orphans {
        if rendezvous(game, room, &hosts) != Some(me) {
            continue;
        }
        match rooms.open_room(game, room) {
            Ok(true) => {
                tracing::info!(game, room, "taking over a room no live host owns");
                opened += 1;
            }
            Ok(false) => {}
            Err(why) => tracing::debug!(game, room, "not taking the room over: {why}"),
        }
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(ids: &[&str]) -> Vec<LiveHost> {
        ids.iter().map(|id| LiveHost { id: id.to_string(), games: vec!["arena".into()] }).collect()
    }

    #[test]
    fn rooms_spread_over_the_hosts_and_only_the_dead_hosts_rooms_move() {
        let three = hosts(&["a", "b", "c"]);
        let two = hosts(&["a", "c"]);
        let mut per_host = std::collections::HashMap::new();
        for i in 0..300 {
            let room = format!("r{i}");
            let before = rendezvous("arena", &room, &three).unwrap();
            *per_host.entry(before).or_insert(0) += 1;
            let after = rendezvous("arena", &room, &two).unwrap();
            if before != "b" {
                assert_eq!(before, after, "room {room} stays where it was when another host leaves");
            }
        }
        for host in ["a", "b", "c"] {
            assert!((70..=130).contains(&per_host[host]), "{host} gets about a third of 300 rooms: {per_host:?}");
        }
    }

    #[test]
    fn a_room_goes_only_to_a_host_that_has_its_game() {
        let mut fleet = hosts(&["a", "b"]);
        fleet[0].games = vec!["chat".into()];
        for i in 0..20 {
            assert_eq!(rendezvous("arena", &format!("r{i}"), &fleet), Some("b"));
        }
        assert_eq!(rendezvous("hello", "r0", &fleet), None);
    }
}
