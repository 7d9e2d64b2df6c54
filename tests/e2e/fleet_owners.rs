//! Room ownership in a fleet against a real PostgreSQL (`WARDEN_TEST_DATABASE_URL`; skipped, and listed
//! as skipped, without it): who may claim a room, and fenced commits that a host which lost a room can no
//! longer write to it.

use std::sync::Arc;
use std::time::Duration;
use warden::storage::hosts::HostSession;
use warden::storage::owners::{Claim, Claimed, Fenced};
use warden::storage::placement::Placed;
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

/// Registers host `id` (with game `g` loaded) in a session of its own: live while the session is.
async fn register(pg: &PgStore, id: &str, addresses: &str) -> (HostSession, i64) {
    let mut session = pg.host_session().await.unwrap();
    let incarnation = session.register(id, addresses, &["g".to_string()], LEASE).await.unwrap();
    (session, incarnation)
}

/// Waits (up to 30 s, well within the tests' 60 s leases) until host `id` is not live: its session
/// closed, and PostgreSQL noticed.
async fn until_dead(pg: &PgStore, id: &str) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while pg.hosts().await.unwrap().iter().any(|h| h.id == id && h.live) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("host {id}, whose session closed, is dead well before its lease ends"));
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
    let (_a, a1) = register(&pg, "a", "ws://a/ws").await;
    let (_b, b1) = register(&pg, "b", "ws://b/ws").await;

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
    let (_a, a2) = register(&pg, "a", "ws://a/ws").await;
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
    let (_a, a1) = register(&pg, "a", "").await;
    let (_b, b1) = register(&pg, "b", "").await;
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

/// A host whose database session ends (the process died: the operating system closed its connection)
/// is dead at once, long before its lease would run out: its rooms can be claimed straight away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_session_ended_is_dead_at_once_and_its_rooms_are_taken_over() {
    let Some(store) = TestStore::postgres("fleet_owners_session").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let (a, a1) = register(&pg, "a", "ws://a/ws").await;
    let (_b, b1) = register(&pg, "b", "ws://b/ws").await;
    owned("a", a1, claim(&pg, "r0", "a", a1).await);
    assert!(matches!(claim(&pg, "r0", "b", b1).await, Claim::HeldBy { .. }), "a is live");
    // A renewal from any other session than the lease's own is refused.
    let mut other = pg.host_session().await.unwrap();
    assert!(other.renew("a", a1, LEASE, 0, &[]).await.unwrap().is_none(), "a lease is renewed only by its own session");
    drop(a);
    // Its lease has 60 s left, but its session is gone (PostgreSQL notices the closed connection at once;
    // the test waits for it, not for the lease).
    until_dead(&pg, "a").await;
    let a = pg.hosts().await.unwrap().into_iter().find(|h| h.id == "a").unwrap();
    assert!(a.lease_left_ms > 30_000, "judged by its session, not its lease: {a:?}");
    assert!(matches!(claim(&pg, "r0", "b", b1).await, Claim::Owned { .. }), "b takes a's room over");
    assert_eq!(claim(&pg, "r1", "a", a1).await, Claim::NotLive, "a dead host claims nothing");
}

/// Placement: a new room goes to the least-loaded live host that has its game; a room with a live owner
/// stays there; a dead owner's room is placed anew; two hosts placing one room agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_rooms_go_to_the_least_loaded_live_host_with_the_game() {
    let Some(store) = TestStore::postgres("fleet_placement").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let (_a, a1) = register(&pg, "a", "ws://a/ws").await;
    let (b, b1) = register(&pg, "b", "ws://b/ws").await;
    let mut c = pg.host_session().await.unwrap();
    let c1 = c.register("c", "ws://c/ws", &["other".to_string()], LEASE).await.unwrap();
    let there = |host: &str| Placed::There { host: host.into(), addresses: format!("ws://{host}/ws") };

    // Asked by a, with nothing placed: a (ties go to the asking host). Then b, the least loaded; never
    // c, which does not have the game.
    assert_eq!(pg.place_room("g", "r0", "a", a1).await.unwrap(), Placed::Here);
    assert_eq!(pg.place_room("g", "r1", "a", a1).await.unwrap(), there("b"));
    assert_eq!(pg.place_room("g", "r1", "b", b1).await.unwrap(), Placed::Here, "the owner finds it its own");
    // Each host has one: the next two spread again, and asking again gives the same answer.
    let r2 = pg.place_room("g", "r2", "c", c1).await.unwrap();
    let r3 = pg.place_room("g", "r3", "c", c1).await.unwrap();
    assert!(r2 != r3 && r2 != Placed::Here && r3 != Placed::Here, "{r2:?} {r3:?}");
    assert_eq!(pg.place_room("g", "r2", "c", c1).await.unwrap(), r2, "a placed room stays placed");
    assert!(pg.place_room("nope", "r9", "a", a1).await.unwrap_err().to_string().contains("no live host"));

    // Two hosts placing one new room at once get one answer.
    let (x, y) = tokio::join!(pg.place_room("g", "r4", "a", a1), pg.place_room("g", "r4", "b", b1));
    let owner_of = |p: Placed, asker: &str| match p {
        Placed::Here => asker.to_string(),
        Placed::There { host, .. } => host,
    };
    assert_eq!(owner_of(x.unwrap(), "a"), owner_of(y.unwrap(), "b"));

    // Bursts of thirty new rooms placed at once, asked by a and b in turn, spread evenly over the two
    // hosts with the game: each placement sees the one before (without the placement lock, a burst went
    // to the host that was least loaded before any of it: 16 against 19 after one burst).
    // Before the bursts, a had r0, one of r2 and r3, and maybe r4; b the rest of the five.
    let r4_on_a = owner_of(pg.place_room("g", "r4", "a", a1).await.unwrap(), "a") == "a";
    let mut total_a = 1 + [&r2, &r3].iter().filter(|p| ***p == there("a")).count() + usize::from(r4_on_a);
    let mut total_b = 5 - total_a;
    for burst in 0..3 {
        let placing: Vec<_> = (0..30)
            .map(|i| {
                let (pg, asker, inc) = (pg.clone(), if i % 2 == 0 { "a" } else { "b" }, if i % 2 == 0 { a1 } else { b1 });
                tokio::spawn(async move { owner_of(pg.place_room("g", &format!("burst{burst}-{i}"), asker, inc).await.unwrap(), asker) })
            })
            .collect();
        for p in placing {
            match p.await.unwrap().as_str() {
                "a" => total_a += 1,
                _ => total_b += 1,
            }
        }
        assert!(total_a.abs_diff(total_b) <= 1, "after burst {burst}: a {total_a} rooms, b {total_b}: a burst spreads evenly");
    }

    // A host that could not make the game's serving version ready gets no new room, even when it is the
    // least loaded.
    let store = warden::storage::Store::Postgres(pg.clone());
    let v1 = warden::storage::VersionRecord {
        plugin: "g".into(),
        version: "1.0.0".into(),
        state: warden::storage::VersionState::Active,
        sha256: "00".into(),
    };
    store.transition("g", &warden::storage::Transition { versions: vec![v1], ..Default::default() }).await.unwrap();
    let (least, other) = if total_a <= total_b { (("a", a1), ("b", b1)) } else { (("b", b1), ("a", a1)) };
    pg.report_version(least.0, "g", "1.0.0", "00", Err("compile failed")).await.unwrap();
    assert_eq!(owner_of(pg.place_room("g", "after-failure", least.0, least.1).await.unwrap(), least.0), other.0);
    pg.report_version(least.0, "g", "1.0.0", "00", Ok(())).await.unwrap();

    // b dies: its room r1 is placed anew, on a live host.
    drop(b);
    until_dead(&pg, "b").await;
    assert_eq!(pg.place_room("g", "r1", "a", a1).await.unwrap(), Placed::Here, "a dead owner's room is placed on a live host");
}

/// A host's rooms send nothing once its lease has run out by its own clock, before anything else on the
/// host has noticed: here the lease keeper never says so (the check is the test's own switch, and the
/// store never fences the room, which no other host wants). A host woken from a pause longer than its
/// lease runs its rooms' ticks, the writer and the connections' writers in whatever order its runtime
/// picks, so each looks at the lease itself. What the player's connection would write from the moment
/// the lease fails is the notice that the room moved and nothing else, even the answers that were queued
/// on the connection before and not yet written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_sends_nothing_once_its_hosts_lease_ran_out_by_the_hosts_own_clock() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use warden::net::envelope::{self, Format, ServerEnvelope};
    use warden::room::{GameEntry, Kill, LeaseCheck, OutQueue, Owner, PlayerConn, Rooms, Switches};

    let Some(store) = TestStore::postgres("fleet_lease_check").await else { return };
    let pg = PgStore::open(&store.url).await.unwrap();
    let mut session = pg.host_session().await.unwrap();
    let incarnation = session.register("h", "ws://127.0.0.1:9/ws", &["arena".to_string()], LEASE).await.unwrap();
    let runtime = warden::runtime::Runtime::new(warden::runtime::Limits::default(), None).unwrap();
    let plugin = Arc::new(runtime.load(&warden_tests::wasm_bytes("arena")).unwrap());
    let game = Arc::new(GameEntry::new(plugin, Vec::new(), Switches::default()));
    let config = warden::config::RoomConfig::default();
    assert_eq!(config.durability, warden::config::Durability::Durable, "answers wait for their journal's commit");
    let rooms = Rooms::new(HashMap::from([("arena".to_string(), game)]), config, Arc::new(warden::runtime::MemorySaves::default()));
    let crashes = tempfile::tempdir().unwrap();
    rooms.attach(warden::storage::Store::Postgres(pg.clone()), crashes.path().to_path_buf(), 1 << 20);
    let holds = Arc::new(AtomicBool::new(true));
    let lease = {
        let holds = holds.clone();
        LeaseCheck::new(move || holds.load(Ordering::SeqCst))
    };
    rooms.stop_serving("joining the fleet".into());
    rooms.serve(Some(Owner { host: "h".into(), incarnation, store: pg.clone(), lease }));

    let (out, mut rx) = OutQueue::new(10_000, 1 << 30);
    let conn = PlayerConn {
        id: "p".into(),
        format: Format::MsgPack,
        out: out.clone(),
        kill: Kill::default(),
        in_room: Arc::new(AtomicBool::new(false)),
    };
    rooms.join("arena", "r", conn).await.expect("the host owns the room and takes the player in");
    let decode = |frame: &bytes::Bytes| envelope::decode_server(frame, Format::MsgPack).unwrap();
    // Playing: arena broadcasts its state every other tick.
    loop {
        let batch = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("the room answers").expect("open");
        let (_, frames) = batch.writable().expect("the lease holds");
        if frames.iter().any(|f| matches!(decode(f), ServerEnvelope::Msg { .. })) {
            break;
        }
    }
    // Unread answers wait on the connection when the lease fails.
    tokio::time::timeout(Duration::from_secs(30), async {
        while out.queued_bytes() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the room goes on broadcasting");
    holds.store(false, Ordering::SeqCst);
    let reason = loop {
        let batch = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("the room tells its player it moved, by itself, within 30 s")
            .expect("the notice comes before the queue closes");
        let Some((_, frames)) = batch.writable() else { continue };
        let seen: Vec<_> = frames.iter().map(decode).collect();
        match seen.as_slice() {
            [ServerEnvelope::Kicked { reason }] => break reason.clone(),
            other => panic!("the connection would write {other:?} after the host's lease ran out"),
        }
    };
    assert!(reason.contains("moved") && reason.contains("lease ran out"), "{reason}");
    tokio::time::timeout(Duration::from_secs(30), async {
        while rooms.open_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the room stopped");
    drop(session);
}
