//! Room ownership in a fleet against a real PostgreSQL (`WARDEN_TEST_DATABASE_URL`; skipped, and listed
//! as skipped, without it): who may claim a room, and fenced commits that a host which lost a room can no
//! longer write to it.

use std::sync::Arc;
use std::time::Duration;
use warden::storage::owners::{Claim, Claimed, Fenced};
use warden::storage::postgres::PgStore;
use warden::storage::{Checkpoint, JournalRow, RoomCommit, RoomWrite};
use warden_tests::TestStore;

const LEASE: Duration = Duration::from_secs(60);

fn checkpoint(room: &str, tick: i64) -> RoomWrite {
    RoomWrite::Checkpoint(Checkpoint {
        game: "g".into(),
        room: room.into(),
        version: "1.0.0".into(),
        tick,
        state: vec![tick as u8],
        running: Some("1.0.0".into()),
    })
}

fn row(room: &str, tick: i64) -> RoomWrite {
    RoomWrite::Journal(JournalRow { game: "g".into(), room: room.into(), tick, data: vec![tick as u8] })
}

/// `writes`, fenced by each room's claim.
fn commit(writes: Vec<RoomWrite>, claims: &[(&str, &Claimed)]) -> RoomCommit {
    let mut commit = RoomCommit::fold(writes);
    let claims = claims.iter().map(|(room, c)| (("g".to_string(), room.to_string()), Arc::new((*c).clone()))).collect();
    commit.fence_by(&claims);
    commit
}

async fn claim(pg: &PgStore, room: &str, host: &str, incarnation: i64) -> Claim {
    pg.claim_room("g", room, host, incarnation).await.unwrap()
}

fn owned(host: &str, incarnation: i64, claim: Claim) -> Claimed {
    let Claim::Owned { epoch } = claim else { panic!("{host} claims the room: {claim:?}") };
    Claimed { host: host.into(), incarnation, epoch }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_is_claimed_by_one_live_host_and_a_host_that_lost_it_cannot_write_to_it() {
    let Some(store) = TestStore::postgres("fleet_owners").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let a1 = pg.register_host("a", "ws://a/ws", LEASE).await.unwrap();
    let b1 = pg.register_host("b", "ws://b/ws", LEASE).await.unwrap();

    // The first claim, and the owner's own claim again, each raise the epoch.
    assert_eq!(claim(&pg, "r0", "a", a1).await, Claim::Owned { epoch: 1 });
    let a_r0 = owned("a", a1, claim(&pg, "r0", "a", a1).await);
    assert_eq!(a_r0.epoch, 2);
    // A live owner keeps it.
    assert_eq!(claim(&pg, "r0", "b", b1).await, Claim::HeldBy { host: "a".into(), addresses: "ws://a/ws".into() });
    pg.commit_rooms(&commit(vec![checkpoint("r0", 10)], &[("r0", &a_r0)])).await.expect("the owner writes");
    assert_eq!(pg.checkpoint("g", "r0").await.unwrap().unwrap().tick, 10);

    // a's lease expires (by the database's clock): it may claim nothing, and b takes r0 over.
    pg.execute("UPDATE hosts SET lease_until = now() - interval '1 second' WHERE id = 'a'").await.unwrap();
    assert_eq!(claim(&pg, "r1", "a", a1).await, Claim::NotLive);
    let b_r0 = owned("b", b1, claim(&pg, "r0", "b", b1).await);
    assert_eq!(b_r0.epoch, 3);

    // a's late commit (a partition held it) is refused whole, and writes nothing.
    let late = commit(vec![row("r0", 11), checkpoint("r0", 20), row("r0", 21)], &[("r0", &a_r0)]);
    let e = pg.commit_rooms(&late).await.expect_err("a's writes to r0 are fenced");
    assert_eq!(e.downcast_ref::<Fenced>(), Some(&Fenced(vec![("g".into(), "r0".into())])), "{e:#}");
    assert_eq!(pg.checkpoint("g", "r0").await.unwrap().unwrap().tick, 10, "the checkpoint is b's to write now");
    assert!(pg.journal("g", "r0", 10).await.unwrap().is_empty(), "no journal row of a's landed");

    // a, registered again, owns r1: a commit of both rooms names only r0 as fenced; without it, it goes in.
    let a2 = pg.register_host("a", "ws://a/ws", LEASE).await.unwrap();
    let a_r1 = owned("a", a2, claim(&pg, "r1", "a", a2).await);
    let mut both = commit(vec![row("r0", 12), checkpoint("r1", 5), row("r1", 6)], &[("r0", &a_r0), ("r1", &a_r1)]);
    let e = pg.commit_rooms(&both).await.expect_err("r0 is fenced");
    let Some(Fenced(rooms)) = e.downcast_ref::<Fenced>() else { panic!("{e:#}") };
    assert_eq!(rooms, &[("g".to_string(), "r0".to_string())]);
    assert!(pg.checkpoint("g", "r1").await.unwrap().is_none(), "a fenced commit writes nothing at all");
    both.remove(rooms);
    pg.commit_rooms(&both).await.expect("the rest goes in");
    assert_eq!(pg.checkpoint("g", "r1").await.unwrap().unwrap().tick, 5);
    assert_eq!(pg.journal("g", "r1", 5).await.unwrap().len(), 1);
    assert!(pg.journal("g", "r0", 10).await.unwrap().is_empty());

    // b, the owner, writes r0.
    pg.commit_rooms(&commit(vec![checkpoint("r0", 30)], &[("r0", &b_r0)])).await.expect("b writes r0");
    assert_eq!(pg.checkpoint("g", "r0").await.unwrap().unwrap().tick, 30);
}

/// A host partitioned in the middle of a fenced commit holds its owner rows' share locks in an open
/// transaction; PostgreSQL ends that transaction by itself (`idle_in_transaction_session_timeout`), so
/// the host that takes the room over is not blocked for as long as the partition lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_open_by_a_partitioned_host_does_not_block_a_takeover() {
    let Some(store) = TestStore::postgres("fleet_owners_open_tx").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let a1 = pg.register_host("a", "", LEASE).await.unwrap();
    let b1 = pg.register_host("b", "", LEASE).await.unwrap();
    owned("a", a1, claim(&pg, "r0", "a", a1).await);
    // a's commit as far as its fence check: the owner row share-locked, then nothing more is sent.
    let mut tx = pg.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM room_owners WHERE game = 'g' AND room = 'r0' FOR SHARE").execute(&mut *tx).await.unwrap();
    pg.execute("UPDATE hosts SET lease_until = now() - interval '1 second' WHERE id = 'a'").await.unwrap();
    let took =
        tokio::time::timeout(Duration::from_secs(60), claim(&pg, "r0", "b", b1)).await.expect("the takeover is not blocked for good");
    assert!(matches!(took, Claim::Owned { .. }), "{took:?}");
    assert!(sqlx::query("SELECT 1").execute(&mut *tx).await.is_err(), "PostgreSQL ended the idle transaction");
}
