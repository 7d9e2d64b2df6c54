//! A host in the fleet serves rooms only while it holds its lease.
//!
//! It starts with rooms refused ("joining the fleet"). Once registered, it serves, and opens the rooms
//! the store says are open (they resume from their checkpoints and durable journals). When the lease
//! lapses, every room stops at once and its players are told that it moved ([`Rooms::stop_serving`]);
//! joins are refused until the host has registered again under a new incarnation, starting with nothing
//! of what it held.
//!
//! Every room claims its room as it opens (`storage/owners.rs`): a room that a live host owns is not
//! opened here, and a room that another host took over stops here as soon as a commit of its writes is
//! fenced. While serving, the host takes over its share of the open rooms no live host owns, once a
//! heartbeat ([`super::adopt`]): the rooms of a host that died, and those of its own earlier incarnation.

use super::lease::LeaseState;
use crate::room::{LeaseCheck, Owner, Rooms};
use crate::storage::postgres::PgStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why rooms are refused before the host's first registration.
pub const JOINING: &str = "the host is joining the fleet (registering in PostgreSQL)";

/// Why rooms stop on a host asked to drain.
pub const DRAINING: &str = "this host is draining (warden drain): its rooms move to the other hosts";

/// Follows the lease of host `host`: serves rooms while it is held (each room claimed in `store` as it
/// opens), stops them when it lapses, and every `scan` takes over its share of the rooms no live host
/// owns. Asked to drain, it stops every room (its players are told it moved), waits for what they wrote,
/// and cancels `drained`: the server then shuts down and releases its lease, and the other hosts take the
/// rooms over. Returns when `stop` is cancelled or the lease keeper has ended. `rooms` must be refusing
/// rooms when this starts (see [`JOINING`]).
pub async fn serve_while_leased(
    mut lease: watch::Receiver<LeaseState>,
    (host, store): (Arc<str>, PgStore),
    rooms: Rooms,
    scan: Duration,
    (stop, drained): (CancellationToken, CancellationToken),
) {
    // A task of its own: a scan waits for the store, and the lease must be followed meanwhile.
    let adopting = tokio::spawn(super::adopt::keep_adopting(lease.clone(), (host.clone(), store.clone()), rooms.clone(), scan));
    let _adopting = AbortOnDrop(adopting);
    // The incarnation rooms are served under, if they are.
    let mut serving: Option<i64> = None;
    loop {
        let state = lease.borrow_and_update().clone();
        match state {
            LeaseState::Serving { draining: true, incarnation, .. } if serving.is_some() && !drained.is_cancelled() => {
                tracing::warn!(incarnation, "asked to drain: stopping every room, then leaving the fleet");
                rooms.stop_serving(DRAINING.to_string());
                rooms.stopped_rooms_ended().await;
                drained.cancel();
            }
            LeaseState::Serving { incarnation, .. } if serving != Some(incarnation) => {
                if let Some(old) = serving.take() {
                    // Lapsed and registered again between two looks: stop what the old one held first.
                    rooms.stop_serving(format!("this host's lease (incarnation {old}) lapsed"));
                }
                rooms.stopped_rooms_ended().await;
                // The lease may have run out during that wait (it waits for the store): then the next
                // state decides.
                if lease.borrow().serving() {
                    let held = lease.clone();
                    let check = LeaseCheck::new(move || {
                        let state = held.borrow();
                        state.incarnation() == Some(incarnation) && state.serving()
                    });
                    rooms.serve(Some(Owner { host: host.clone(), incarnation, store: store.clone(), lease: check }));
                    serving = Some(incarnation);
                    tracing::info!(incarnation, "serving rooms under the fleet lease");
                }
            }
            LeaseState::Lapsed { incarnation, reason } if serving.is_some() => {
                serving = None;
                rooms.stop_serving(format!("its fleet lease (incarnation {incarnation}) lapsed: {reason}"));
            }
            _ => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = lease.changed() => if changed.is_err() { return },
        }
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
