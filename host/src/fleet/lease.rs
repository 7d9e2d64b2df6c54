//! A host's lease on its membership of the fleet.
//!
//! A host registers in the hosts table with a new incarnation and renews its lease every `heartbeat`;
//! the lease runs for `lease` from the database's clock at each renewal. The database alone judges
//! expiry: other hosts take a host's rooms only once `lease_until > now()` is false there.
//!
//! The host must stop serving before that can happen, so it keeps a deadline of its own that is never
//! later than the database's: a renewal *sent* at local instant `t` and acknowledged gives a lease that
//! lasts at least until `t + lease` (the database read its clock after `t`), and the host stops at
//! `t + lease - margin`. The margin covers the difference in clock rates and the time it takes to stop.
//! When the deadline passes without a renewal (the database is unreachable, or too slow), the lease
//! [`LeaseState::Lapsed`]: the host stops serving. It never picks its old lease up again, even if a
//! late renewal would still succeed: it registers anew with a higher incarnation once the database
//! answers, and starts with no rooms. A renewal the database refuses (the lease expired there, or the
//! host id registered again elsewhere) lapses it the same way.

use crate::storage::hosts::HostSession;
use crate::storage::postgres::PgStore;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a lease lapses when no renewal arrived in time.
const NO_RENEWAL: &str = "no renewal before the lease's margin (is PostgreSQL reachable?)";

/// Lease timings: `[fleet]` in `warden.toml` (`heartbeat_ms`, `lease_ms`, `lease_margin_ms`, the keys
/// [`LeaseTimes::check`] names).
#[derive(Clone, Copy, Debug)]
pub struct LeaseTimes {
    /// How often the lease is renewed.
    pub heartbeat: Duration,
    /// How long a renewal lasts, by the database's clock.
    pub lease: Duration,
    /// How much earlier than the lease's end the host stops serving.
    pub margin: Duration,
}

impl Default for LeaseTimes {
    fn default() -> Self {
        LeaseTimes { heartbeat: Duration::from_secs(1), lease: Duration::from_secs(5), margin: Duration::from_millis(1500) }
    }
}

impl LeaseTimes {
    /// Checks that a host can keep its lease with these times: the margin is shorter than the lease, and
    /// at least two heartbeats fit in what is left.
    pub fn check(&self) -> Result<(), String> {
        if self.margin >= self.lease {
            return Err(format!(
                "fleet.lease_margin_ms ({} ms) must be shorter than fleet.lease_ms ({} ms)",
                self.margin.as_millis(),
                self.lease.as_millis()
            ));
        }
        if self.heartbeat * 2 > self.lease - self.margin {
            return Err(format!(
                "fleet.heartbeat_ms ({} ms) is too long: two heartbeats must fit in fleet.lease_ms minus fleet.lease_margin_ms ({} ms); \
                 lower the heartbeat or raise the lease",
                self.heartbeat.as_millis(),
                (self.lease - self.margin).as_millis()
            ));
        }
        Ok(())
    }
}

/// Where the host's lease is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Not registered yet (the database has not answered).
    Joining,
    /// Serving under `incarnation` until the local instant `until` at the latest.
    Serving {
        /// The incarnation registered.
        incarnation: i64,
        /// The local deadline: no later than the database's end of the lease.
        until: Instant,
        /// Asked to drain (`warden drain`): move the rooms off and leave the fleet.
        draining: bool,
    },
    /// The lease of `incarnation` lapsed: the host serves nothing until it has registered again.
    Lapsed {
        /// The incarnation whose lease lapsed.
        incarnation: i64,
        /// Why.
        reason: String,
    },
}

impl LeaseState {
    /// Whether the host may serve now.
    pub fn serving(&self) -> bool {
        matches!(self, LeaseState::Serving { until, .. } if Instant::now() < *until)
    }

    /// The incarnation, once registered.
    pub fn incarnation(&self) -> Option<i64> {
        match self {
            LeaseState::Joining => None,
            LeaseState::Serving { incarnation, .. } | LeaseState::Lapsed { incarnation, .. } => Some(*incarnation),
        }
    }
}

/// What a host reports with each renewal: the rooms it runs and the games it has loaded.
pub type Report = Box<dyn Fn() -> (i64, Vec<String>) + Send + Sync>;

/// A running lease keeper: read its state, or stop it.
pub struct Lease {
    state: watch::Receiver<LeaseState>,
    stop: CancellationToken,
    id: String,
    /// Ends with the session the lease is held in, if it still holds it.
    keeper: Option<tokio::task::JoinHandle<Option<(HostSession, i64)>>>,
}

impl Lease {
    /// Starts keeping host `id`'s lease in `store`, advertising `addresses`; `report` says how many rooms
    /// the host runs now and which games it has loaded (recorded with each renewal).
    pub fn start(
        store: PgStore,
        id: String,
        addresses: String,
        times: LeaseTimes,
        report: impl Fn() -> (i64, Vec<String>) + Send + Sync + 'static,
    ) -> Lease {
        let (tx, state) = watch::channel(LeaseState::Joining);
        let stop = CancellationToken::new();
        let keeper = tokio::spawn(keep(store, id.clone(), addresses, times, Box::new(report), tx, stop.clone()));
        Lease { state, stop, id, keeper: Some(keeper) }
    }

    /// Stops renewing and ends the lease in the database now, if it still holds it (a host that shuts
    /// down, after its rooms have stopped: other hosts need not wait for the lease to run out).
    pub async fn release(mut self) {
        self.stop.cancel();
        let held = match self.keeper.take() {
            Some(keeper) => keeper.await.ok().flatten(),
            None => None,
        };
        if let Some((session, incarnation)) = held {
            match session.release(&self.id, incarnation).await {
                Ok(true) => tracing::info!(host = %self.id, incarnation, "left the fleet"),
                Ok(false) => {}
                Err(e) => tracing::warn!(host = %self.id, incarnation, "failed to release the lease (it runs out by itself): {e:#}"),
            }
        }
    }

    /// The state now.
    pub fn state(&self) -> LeaseState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every change of state.
    pub fn watch(&self) -> watch::Receiver<LeaseState> {
        self.state.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn keep(
    store: PgStore,
    id: String,
    addresses: String,
    times: LeaseTimes,
    report: Report,
    tx: watch::Sender<LeaseState>,
    stop: CancellationToken,
) -> Option<(HostSession, i64)> {
    let retry = (times.heartbeat / 4).max(Duration::from_millis(50));
    loop {
        // Register (again), in a session of its own: a new incarnation, nothing held.
        let (mut session, incarnation, mut until) = loop {
            let sent = Instant::now();
            let registered = async {
                let mut session = store.host_session().await?;
                let incarnation = session.register(&id, &addresses, &report().1, times.lease).await?;
                anyhow::Ok((session, incarnation))
            };
            let registered = tokio::select! {
                _ = stop.cancelled() => return None,
                r = tokio::time::timeout(times.lease - times.margin, registered) => r,
            };
            match registered {
                Ok(Ok((session, incarnation))) => break (session, incarnation, sent + times.lease - times.margin),
                Ok(Err(e)) => tracing::warn!(host = %id, "cannot register in the fleet, retrying: {e:#}"),
                Err(_) => tracing::warn!(host = %id, "cannot register in the fleet (no answer), retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(retry) => {}
            }
        };
        tracing::info!(host = %id, incarnation, "registered in the fleet");
        tx.send_replace(LeaseState::Serving { incarnation, until, draining: false });
        let mut next = Instant::now() + times.heartbeat;
        // Renew until the lease lapses.
        let reason = loop {
            tokio::select! {
                _ = stop.cancelled() => return Some((session, incarnation)),
                _ = tokio::time::sleep_until(next) => {}
                _ = tokio::time::sleep_until(until) => break NO_RENEWAL.to_string(),
            }
            let sent = Instant::now();
            if sent >= until {
                break NO_RENEWAL.to_string();
            }
            // Waiting longer than the deadline is pointless: the lease lapses there anyway.
            let (load, games) = report();
            let renewed = tokio::select! {
                _ = stop.cancelled() => return Some((session, incarnation)),
                r = tokio::time::timeout_at(until, session.renew(&id, incarnation, times.lease, load, &games)) => r,
            };
            match renewed {
                Ok(Ok(Some(draining))) => {
                    until = sent + times.lease - times.margin;
                    tx.send_replace(LeaseState::Serving { incarnation, until, draining });
                    next = sent + times.heartbeat;
                }
                Ok(Ok(None)) => {
                    break "the database declared this host's lease over (it expired, or the host id registered again)".to_string();
                }
                // The lease lives in this session: once it fails, the fleet may already see the host
                // gone (PostgreSQL ended the session), so it stops serving at once.
                Ok(Err(e)) => break format!("the lease's session to PostgreSQL failed: {e:#}"),
                Err(_) => break NO_RENEWAL.to_string(),
            }
        };
        drop(session);
        tracing::error!(host = %id, incarnation, "lease lapsed: {reason}; this host stops serving and registers again");
        tx.send_replace(LeaseState::Lapsed { incarnation, reason });
    }
}
