//! The fleet's leases against a real PostgreSQL (`WARDEN_TEST_DATABASE_URL`; skipped, and listed as
//! skipped, without it): a host stops serving before the database can call its lease expired, even when
//! PostgreSQL stops answering mid-renewal, and comes back under a new incarnation.

use std::time::Duration;
use tokio::sync::watch;
use warden::fleet::lease::{Lease, LeaseState, LeaseTimes};
use warden::storage::hosts::HostRecord;
use warden::storage::postgres::PgStore;
use warden_tests::{Proxy, TestStore};

/// Generous times, so that a loaded machine's scheduling delays (up to seconds) cannot lapse a lease
/// that nothing cut: 250 ms heartbeats, a 6 s lease, stop 2 s before it ends.
const TIMES: LeaseTimes =
    LeaseTimes { heartbeat: Duration::from_millis(250), lease: Duration::from_secs(6), margin: Duration::from_secs(2) };

/// Waits (up to 60 s) for a state that `wanted` accepts, and returns it.
async fn state(lease: &mut watch::Receiver<LeaseState>, what: &str, wanted: impl Fn(&LeaseState) -> bool) -> LeaseState {
    let seen = match tokio::time::timeout(Duration::from_secs(60), lease.wait_for(|s| wanted(s))).await {
        Ok(seen) => Some(seen.expect("the lease keeper runs").clone()),
        Err(_) => None,
    };
    seen.unwrap_or_else(|| panic!("{what} within 60 s (state: {:?})", *lease.borrow()))
}

async fn host(observer: &PgStore, id: &str) -> HostRecord {
    observer.hosts().await.unwrap().into_iter().find(|h| h.id == id).unwrap_or_else(|| panic!("host {id} is registered"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_host_stops_serving_before_its_lease_expires_and_rejoins_with_a_new_incarnation() {
    let Some(store) = TestStore::postgres("fleet_lease_partition").await else { return };
    let observer = PgStore::open(&store.url).await.unwrap();
    let (proxy, proxied) = Proxy::before_postgres(&store.url).await;
    assert!(TIMES.check().is_ok());

    let lease = Lease::start(PgStore::open(&proxied).await.unwrap(), "h1".into(), "ws://127.0.0.1:1/ws".into(), TIMES, || (7, vec![]));
    let mut states = lease.watch();
    let first = state(&mut states, "registered", |s| matches!(s, LeaseState::Serving { .. })).await;
    assert_eq!(first.incarnation(), Some(1));
    // Renewed for two whole leases: without renewals it would have expired twice over.
    tokio::time::sleep(TIMES.lease * 2).await;
    assert!(lease.state().serving(), "a host that reaches the database keeps serving: {:?}", lease.state());
    let h = host(&observer, "h1").await;
    assert!(h.live && h.incarnation == 1 && h.load == 7, "renewed, with its load: {h:?}");

    // PostgreSQL stops answering, without closing anything: the renewal in flight hangs.
    proxy.blackhole();
    let lapsed = state(&mut states, "the lease lapses", |s| matches!(s, LeaseState::Lapsed { .. })).await;
    // The database still holds the lease: the host stopped first (by the margin, 2 s), so no other host
    // could have taken its rooms while it still ran them.
    let h = host(&observer, "h1").await;
    assert!(h.live && h.lease_left_ms > 0, "the host stopped serving before the database's lease ended: {h:?}, {lapsed:?}");
    assert!(!lease.state().serving());

    // The database's clock alone ends the lease; then the cut heals and the host comes back, new.
    tokio::time::timeout(Duration::from_secs(60), async {
        while host(&observer, "h1").await.live {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the database expires the lease within 60 s");
    assert!(matches!(lease.state(), LeaseState::Lapsed { incarnation: 1, .. }), "it stays down while cut off: {:?}", lease.state());
    proxy.heal();
    let back = state(&mut states, "registered again", |s| matches!(s, LeaseState::Serving { .. })).await;
    assert_eq!(back.incarnation(), Some(2), "a host that lapsed never picks its old lease up again");
    let h = host(&observer, "h1").await;
    assert!(h.live && h.incarnation == 2, "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_lease_the_database_refuses_registers_again() {
    let Some(store) = TestStore::postgres("fleet_lease_refused").await else { return };
    let observer = PgStore::open(&store.url).await.unwrap();
    let lease = Lease::start(PgStore::open(&store.url).await.unwrap(), "h1".into(), String::new(), TIMES, || (0, vec![]));
    let mut states = lease.watch();
    state(&mut states, "registered", |s| s.incarnation() == Some(1) && s.serving()).await;
    // Someone else registered under the same id (incarnation 2): h1's next renewal is refused, and it
    // registers again above that.
    observer.execute("UPDATE hosts SET incarnation = incarnation + 1 WHERE id = 'h1'").await.unwrap();
    let back = state(&mut states, "registered again", |s| s.incarnation() == Some(3)).await;
    assert!(back.serving(), "{back:?}");
    assert_eq!(host(&observer, "h1").await.incarnation, 3);
}

#[test]
fn lease_times_that_cannot_hold_a_lease_are_refused_with_the_key_to_change() {
    let e = LeaseTimes { margin: Duration::from_secs(6), ..TIMES }.check().unwrap_err();
    assert!(e.contains("fleet.lease_margin_ms"), "{e}");
    let e = LeaseTimes { heartbeat: Duration::from_secs(3), ..TIMES }.check().unwrap_err();
    assert!(e.contains("fleet.heartbeat_ms") && e.contains("lower the heartbeat"), "{e}");
    assert!(LeaseTimes::default().check().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_never_renewed() {
    let Some(store) = TestStore::postgres("fleet_lease_expired").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let mut session = pg.host_session().await.unwrap();
    let incarnation = session.register("h1", "", &[], Duration::from_millis(300)).await.unwrap();
    assert!(session.renew("h1", incarnation, Duration::from_millis(300), 0, &[]).await.unwrap().is_some(), "a current lease renews");
    tokio::time::timeout(Duration::from_secs(60), async {
        while host(&pg, "h1").await.live {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the database expires the lease within 60 s");
    assert!(
        session.renew("h1", incarnation, Duration::from_secs(60), 0, &[]).await.unwrap().is_none(),
        "other hosts may hold its rooms by now"
    );
    assert!(!host(&pg, "h1").await.live);
    assert_eq!(session.register("h1", "", &[], Duration::from_secs(60)).await.unwrap(), incarnation + 1);
}
