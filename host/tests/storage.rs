//! The store's contract, on every backend: SQLite always, PostgreSQL when `WARDEN_TEST_DATABASE_URL`
//! names a server (each test in a database of its own). One body per test, run against each.

use warden::storage::{
    AuditWrite, Checkpoint, Expect, JournalRow, RoomCommit, RoomWrite, SaveWrite, Store, Transition, VersionRecord, VersionState,
};
use warden_tests::TestStore;

/// Runs `body` against a fresh store of every backend.
macro_rules! on_every_backend {
    ($test:expr, |$store:ident, $backend:ident| $body:expr) => {
        for test_store in TestStore::all($test).await {
            let $store = Store::open(&test_store.url).await.unwrap_or_else(|e| panic!("{}: {e:#}", test_store.backend));
            let $backend = test_store.backend;
            eprintln!("{}: on {}", $test, $backend);
            $body;
        }
    };
}

fn save(player: &str, data: &[u8]) -> SaveWrite {
    SaveWrite { game: "arena".into(), player: player.into(), data: data.to_vec() }
}

fn checkpoint(room: &str, tick: i64, running: Option<&str>) -> Checkpoint {
    Checkpoint {
        game: "arena".into(),
        room: room.into(),
        version: "1.0.0".into(),
        tick,
        state: vec![tick as u8; 3],
        running: running.map(str::to_string),
    }
}

fn row(room: &str, tick: i64) -> JournalRow {
    JournalRow { game: "arena".into(), room: room.into(), tick, data: vec![tick as u8, 1, 2] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_only_go_up_and_survive_reopening() {
    for test_store in TestStore::all("revisions_only_go_up").await {
        let s = Store::open(&test_store.url).await.unwrap();
        assert_eq!(s.write_saves(&[save("ann", b"a")]).await.unwrap(), [1]);
        assert_eq!(s.write_saves(&[save("ann", b"b")]).await.unwrap(), [2]);
        assert_eq!(s.write_saves(&[save("ann", b"c")]).await.unwrap(), [3]);
        drop(s);
        let s = Store::open(&test_store.url).await.unwrap();
        let got = s.load_save("arena", "ann").await.unwrap().unwrap();
        assert_eq!((got.data.as_slice(), got.revision), (&b"c"[..], 3), "{}", test_store.backend);
        assert_eq!(s.write_saves(&[save("ann", b"d")]).await.unwrap(), [4]);
        assert_eq!(s.load_save("arena", "bob").await.unwrap(), None);
        if let Store::Sqlite(sqlite) = &s {
            assert_eq!(sqlite.integrity_check().await.unwrap(), "ok");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_many_players_gets_each_its_own_revision() {
    on_every_backend!("a_batch_of_many_players", |s, backend| {
        let batch: Vec<SaveWrite> =
            (0..1_200).map(|i| SaveWrite { game: "g".into(), player: format!("p{i}"), data: vec![i as u8] }).collect();
        assert!(s.write_saves(&batch).await.unwrap().iter().all(|&r| r == 1));
        let again = s.write_saves(&batch[..700]).await.unwrap();
        assert_eq!(again.len(), 700);
        assert!(again.iter().all(|&r| r == 2), "{backend}: every row of the batch goes up by one");
        assert_eq!(s.load_save("g", "p1199").await.unwrap().unwrap().revision, 1);
        assert_eq!(s.load_save("g", "p5").await.unwrap().unwrap().data, vec![5]);
        assert_eq!(s.all_saves(Some("g")).await.unwrap().len(), 1_200);
        assert_eq!(s.all_saves(Some("other")).await.unwrap().len(), 0);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_saves_are_stored_compressed_and_load_back_whole() {
    on_every_backend!("large_saves_are_stored_compressed", |s, backend| {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 7) as u8).collect();
        s.write_saves(&[save("p", &data)]).await.unwrap();
        let got = s.load_save("arena", "p").await.unwrap().unwrap();
        assert!(got.compressed, "{backend}");
        assert_eq!(got.data, data);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_then_write_transactions_wait_for_each_other_instead_of_failing() {
    on_every_backend!("concurrent_read_then_write", |s, backend| {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..40u64 {
                        // Reads the floor, then writes it.
                        s.raise_floor(&format!("p{}", w % 2), &semver::Version::new(1, 0, i * 4 + w)).await?;
                        s.write_saves(&[SaveWrite { game: "g".into(), player: format!("w{w}"), data: vec![i as u8; 64] }]).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap().expect("no write fails with a lock error");
        }
        // Two writers raised each floor: it ends at the highest either wrote, never lower.
        assert_eq!(s.floor("p0").await.unwrap(), Some(semver::Version::new(1, 0, 39 * 4 + 2)), "{backend}");
        assert_eq!(s.floor("p1").await.unwrap(), Some(semver::Version::new(1, 0, 39 * 4 + 3)), "{backend}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_floors_switches_audit_and_checkpoints() {
    on_every_backend!("registry_floors_switches_audit", |s, backend| {
        let v = |version: &str, state| VersionRecord { plugin: "arena".into(), version: version.into(), state, sha256: "00".into() };
        let set = |r: VersionRecord| Transition { versions: vec![r], ..Transition::default() };
        s.transition("arena", &set(v("1.0.0", VersionState::Staged))).await.unwrap();
        s.transition("arena", &set(v("1.0.0", VersionState::Stable))).await.unwrap();
        s.transition("arena", &set(v("1.1.0", VersionState::Bad))).await.unwrap();
        let versions = s.versions("arena").await.unwrap();
        assert_eq!(
            versions.iter().map(|r| (r.version.as_str(), r.state)).collect::<Vec<_>>(),
            [("1.0.0", VersionState::Stable), ("1.1.0", VersionState::Bad)],
            "{backend}"
        );
        assert_eq!(s.plugins().await.unwrap(), ["arena"]);

        assert_eq!(s.floor("arena").await.unwrap(), None);
        s.raise_floor("arena", &semver::Version::new(1, 1, 0)).await.unwrap();
        s.raise_floor("arena", &semver::Version::new(1, 0, 5)).await.unwrap();
        assert_eq!(s.floor("arena").await.unwrap(), Some(semver::Version::new(1, 1, 0)), "{backend}: a floor never goes down");

        let rollout = warden::storage::RolloutRecord {
            plugin: "arena".into(),
            version: "1.2.0".into(),
            phase: "canary".into(),
            elapsed_ms: 1_500,
            paused: true,
            canary_rooms: vec!["r1".into()],
            previous_p99_us: Some(800),
        };
        s.transition("arena", &Transition { rollout: Some(Some(rollout.clone())), ..Transition::default() }).await.unwrap();
        s.rollout_elapsed("arena", "1.2.0", 2_500).await.unwrap();
        assert_eq!(s.rollout("arena").await.unwrap(), Some(warden::storage::RolloutRecord { elapsed_ms: 2_500, ..rollout }));
        s.transition("arena", &Transition { rollout: Some(None), ..Transition::default() }).await.unwrap();
        assert_eq!(s.rollout("arena").await.unwrap(), None);

        s.set_switch("arena", "feature:chat", false, "ops", "chat off").await.unwrap();
        s.set_switch("arena", "joins", true, "ops", "joins on").await.unwrap();
        assert_eq!(s.switches("arena").await.unwrap(), [("feature:chat".to_string(), false), ("joins".to_string(), true)]);

        let first = s.audit("deploy", "reject", Some("arena"), Some("0.9.0"), "below the floor").await.unwrap();
        let second = s.audit("operator", "rollback", Some("arena"), None, "manual").await.unwrap();
        assert!(second > first);
        let log = s.audit_log(10).await.unwrap();
        assert_eq!(log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["rollback", "reject", "switch", "switch"], "{backend}");

        let cp = checkpoint("r1", 400, None);
        s.put_checkpoint(&cp).await.unwrap();
        s.put_checkpoint(&Checkpoint { tick: 500, ..cp.clone() }).await.unwrap();
        assert_eq!(s.checkpoint("arena", "r1").await.unwrap().unwrap().tick, 500);
        assert_eq!(s.checkpoint("arena", "nope").await.unwrap(), None);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_several_hosts_take_at_once_is_written_once_with_its_audit_entry() {
    // Hosts of a fleet that see the same breach each try to mark the version bad, at once: the
    // registry takes one of the steps (and its audit entry), and tells the others it was taken.
    on_every_backend!("a_step_several_hosts_take_at_once", |s, backend| {
        let v = |version: &str, state| VersionRecord { plugin: "arena".into(), version: version.into(), state, sha256: "00".into() };
        let set = |rs: Vec<VersionRecord>| Transition { versions: rs, ..Transition::default() };
        let rollback = Transition {
            versions: vec![v("2.0.0", VersionState::Bad), v("1.0.0", VersionState::Active)],
            expect: Some(Expect {
                version: "2.0.0".into(),
                states: vec![VersionState::Canary, VersionState::Probation, VersionState::Active],
            }),
            audit: Some(AuditWrite {
                actor: "health".into(),
                action: "rollback".into(),
                version: Some("2.0.0".into()),
                detail: "breach".into(),
            }),
            ..Transition::default()
        };
        // Ten rounds of eight at once: a race that goes one way by luck goes the other way in some round.
        for round in 0..10 {
            s.transition("arena", &set(vec![v("1.0.0", VersionState::Stable), v("2.0.0", VersionState::Probation)])).await.unwrap();
            let tries: Vec<_> = (0..8)
                .map(|_| {
                    let (s, t) = (s.clone(), rollback.clone());
                    tokio::spawn(async move { s.transition("arena", &t).await.unwrap() })
                })
                .collect();
            let mut taken = 0;
            for t in tries {
                taken += usize::from(t.await.unwrap());
            }
            assert_eq!(taken, 1, "{backend}, round {round}: one of eight concurrent rollbacks is taken");
        }
        let rollbacks = s.audit_log(100).await.unwrap().into_iter().filter(|e| e.action == "rollback").count();
        assert_eq!(rollbacks, 10, "{backend}: one audit entry per step taken, in the step's transaction");
        // A new version is registered once: a second registration finds it there, and writes nothing.
        let register = Transition {
            expect: Some(Expect { version: "3.0.0".into(), states: Vec::new() }),
            ..set(vec![v("3.0.0", VersionState::Probation)])
        };
        assert!(s.transition("arena", &register).await.unwrap(), "{backend}");
        let again = Transition { versions: vec![v("3.0.0", VersionState::Canary)], ..register.clone() };
        assert!(!s.transition("arena", &again).await.unwrap(), "{backend}");
        assert!(s.versions("arena").await.unwrap().iter().any(|r| r.version == "3.0.0" && r.state == VersionState::Probation), "{backend}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_commit_keeps_a_checkpoint_and_exactly_the_journal_after_it() {
    on_every_backend!("a_room_commit_keeps_a_checkpoint", |s, backend| {
        let commit = |writes: Vec<RoomWrite>| RoomCommit::fold(writes);
        s.commit_rooms(&commit(vec![
            RoomWrite::Checkpoint(checkpoint("a", 10, Some("1.0.0"))),
            RoomWrite::Journal(row("a", 11)),
            RoomWrite::Journal(row("a", 12)),
            RoomWrite::Checkpoint(checkpoint("b", 3, Some("1.0.0"))),
            RoomWrite::Journal(row("b", 4)),
        ]))
        .await
        .unwrap();
        assert_eq!(s.journal("arena", "a", 10).await.unwrap(), [row("a", 11), row("a", 12)], "{backend}");
        // The next commit: a's checkpoint moves past 12 and its rows go with it; a version change for b.
        s.commit_rooms(&commit(vec![
            RoomWrite::Journal(row("a", 13)),
            RoomWrite::Checkpoint(checkpoint("a", 13, Some("1.0.0"))),
            RoomWrite::Journal(row("a", 14)),
            RoomWrite::Running { game: "arena".into(), room: "b".into(), version: Some("1.1.0".into()) },
            RoomWrite::Journal(row("b", 5)),
        ]))
        .await
        .unwrap();
        assert_eq!(s.journal("arena", "a", 0).await.unwrap(), [row("a", 14)], "{backend}: rows at or below the checkpoint are gone");
        assert_eq!(s.journal("arena", "b", 3).await.unwrap(), [row("b", 4), row("b", 5)]);
        let open = s.open_rooms().await.unwrap();
        assert_eq!(
            open.iter().map(|c| (c.room.as_str(), c.tick, c.running.as_deref())).collect::<Vec<_>>(),
            [("a", 13, Some("1.0.0")), ("b", 3, Some("1.1.0"))],
            "{backend}"
        );
        // b closes cleanly: its final checkpoint has no running version, and it is no longer open.
        s.commit_rooms(&commit(vec![RoomWrite::Checkpoint(checkpoint("b", 5, None))])).await.unwrap();
        assert_eq!(s.open_rooms().await.unwrap().len(), 1);
        assert!(s.journal("arena", "b", 0).await.unwrap().is_empty());
        assert_eq!(s.checkpoint("arena", "b").await.unwrap().unwrap().tick, 5);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_everything_between_backends_and_refuses_a_non_empty_target() {
    let mut stores = TestStore::all("migrate_copies_everything").await;
    stores.push(TestStore::sqlite());
    // SQLite -> PostgreSQL (-> SQLite), or SQLite -> SQLite without PostgreSQL.
    let opened: Vec<Store> =
        futures_util::future::join_all(stores.iter().map(|t| Store::open(&t.url))).await.into_iter().map(Result::unwrap).collect();
    let source = &opened[0];
    source.write_saves(&[save("ann", &vec![7u8; 5_000]), save("bob", b"b")]).await.unwrap();
    source.write_saves(&[save("ann", &vec![8u8; 5_000])]).await.unwrap();
    let v = VersionRecord { plugin: "arena".into(), version: "1.0.0".into(), state: VersionState::Active, sha256: "ab".into() };
    source
        .transition(
            "arena",
            &Transition { versions: vec![v], floor: Some(("arena".into(), semver::Version::new(1, 0, 0))), ..Transition::default() },
        )
        .await
        .unwrap();
    source.set_switch("arena", "joins", false, "ops", "maintenance").await.unwrap();
    source.audit("ops", "note", None, None, "hello").await.unwrap();
    source
        .commit_rooms(&RoomCommit::fold([RoomWrite::Checkpoint(checkpoint("r", 5, Some("1.0.0"))), RoomWrite::Journal(row("r", 6))]))
        .await
        .unwrap();
    let exported = source.export().await.unwrap();
    assert!(exported.counts().iter().all(|(_, n)| *n > 0) || exported.rollouts.is_empty(), "{:?}", exported.counts());
    for (target, test_store) in opened.iter().zip(&stores).skip(1) {
        assert!(target.is_empty().await.unwrap());
        target.import(&exported).await.unwrap_or_else(|e| panic!("{}: {e:#}", test_store.backend));
        let copy = target.export().await.unwrap();
        assert_eq!(copy, exported, "{}: the copy holds exactly what the source held", test_store.backend);
        assert_eq!(target.load_save("arena", "ann").await.unwrap().unwrap().revision, 2);
        // New audit entries continue after the copied ids.
        let next = target.audit("ops", "after", None, None, "").await.unwrap();
        assert!(next > exported.audit.last().unwrap().id, "{}", test_store.backend);
        assert!(!target.is_empty().await.unwrap());
        assert!(target.import(&exported).await.is_err(), "{}: importing twice fails instead of mixing", test_store.backend);
    }
}

/// A random run of commits (rooms writing ticks, checkpointing now and then, one room that never
/// checkpoints again, reopening the store) against a model of what each room's journal must be: the rows
/// after its last checkpoint, nothing more, nothing less. The journal is written as one segment a commit
/// (on both backends); the run also checks that segments go once checkpoints cover them, that a segment kept only
/// by a room that stopped checkpointing moves out (its rows to per-room rows), and that reopening
/// rebuilds the same journals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rooms_journal_is_exactly_its_rows_after_its_checkpoint_through_many_commits() {
    for test_store in TestStore::all("every_rooms_journal_is_exactly").await {
        let backend = test_store.backend;
        let mut s = Store::open(&test_store.url).await.unwrap();
        let rooms = ["a", "b", "c", "d", "e", "pinned"];
        let mut tick = [0i64; 6];
        let mut floor = [0i64; 6];
        let mut model: Vec<Vec<JournalRow>> = vec![Vec::new(); 6];
        // The version each room runs, as its stored checkpoint says (a room without one has nothing).
        let mut running: Vec<Option<String>> = vec![None; 6];
        let mut checkpointed = [false; 6];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut segments_seen = 0;
        let pool = match &s {
            Store::Sqlite(_) => Err(sqlx::SqlitePool::connect(&test_store.url).await.unwrap()),
            Store::Postgres(_) => Ok(sqlx::PgPool::connect(&test_store.url).await.unwrap()),
        };
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                match pool {
                    Err(sqlite) => sqlx::query_scalar::<_, i64>(sql).fetch_one(&sqlite).await.unwrap(),
                    Ok(pg) => sqlx::query_scalar::<_, i64>(sql).fetch_one(&pg).await.unwrap(),
                }
            }
        };
        let segments_stored = || count("SELECT COUNT(*) FROM room_journal_segments");
        for step in 0..400 {
            let mut writes = Vec::new();
            for r in 0..rooms.len() {
                if next(3) > 0 {
                    tick[r] += 1;
                    let row = JournalRow { data: vec![r as u8, tick[r] as u8, step as u8], ..row(rooms[r], tick[r]) };
                    model[r].push(row.clone());
                    writes.push(RoomWrite::Journal(row));
                }
                // A version change, before or after the room's checkpoint of this commit, if any.
                let change = (next(6) == 0).then(|| {
                    let version = (next(4) > 0).then(|| format!("1.{step}.{r}"));
                    (next(2) == 0, RoomWrite::Running { game: "arena".into(), room: rooms[r].into(), version })
                });
                fn change_now(change: &Option<(bool, RoomWrite)>, after: bool, running: &mut Option<String>, writes: &mut Vec<RoomWrite>) {
                    if let Some((_, write @ RoomWrite::Running { version, .. })) = change.as_ref().filter(|c| c.0 == after) {
                        *running = version.clone();
                        writes.push(write.clone());
                    }
                }
                change_now(&change, false, &mut running[r], &mut writes);
                // Every room but the pinned one checkpoints now and then (after step 50, it never does).
                if (r < 5 || step < 50) && next(8) == 0 {
                    floor[r] = tick[r];
                    model[r].clear();
                    writes.push(RoomWrite::Checkpoint(checkpoint(rooms[r], tick[r], Some("1.0.0"))));
                    checkpointed[r] = true;
                    running[r] = Some("1.0.0".into());
                }
                change_now(&change, true, &mut running[r], &mut writes);
            }
            s.commit_rooms(&RoomCommit::fold(writes)).await.unwrap();
            segments_seen = segments_seen.max(s.journal_segments().await.unwrap());
            // From step 200 on, segments older than none at all move out: the pinned room's rows go to
            // per-room rows and the segments it kept are deleted.
            s.set_spill_after(std::time::Duration::from_secs(if step >= 200 { 0 } else { 3600 }));
            if step % 97 == 96 {
                drop(s);
                s = Store::open(&test_store.url).await.unwrap();
            }
            if step % 10 == 9 || step == 399 {
                for r in 0..rooms.len() {
                    assert_eq!(
                        s.journal("arena", rooms[r], floor[r]).await.unwrap(),
                        model[r],
                        "{backend}: room {} at step {step}",
                        rooms[r]
                    );
                    let stored = s.checkpoint("arena", rooms[r]).await.unwrap();
                    assert_eq!(
                        stored.map(|c| c.running),
                        checkpointed[r].then(|| running[r].clone()),
                        "{backend}: room {}'s version at step {step}",
                        rooms[r]
                    );
                }
                let live = s.journal_segments().await.unwrap() as i64;
                assert_eq!(segments_stored().await, live, "{backend}: step {step}: the table holds exactly the segments still needed");
            }
        }
        assert!(model[5].len() > 200, "the pinned room kept a long journal");
        let exported = s.export().await.unwrap();
        let mut expected: Vec<JournalRow> = model.concat();
        expected.sort_by(|a, b| (&a.room, a.tick).cmp(&(&b.room, b.tick)));
        assert_eq!(exported.journal, expected, "{backend}: the export holds every room's journal after its checkpoint");
        {
            // Before step 200 the pinned room kept every segment since its last checkpoint.
            assert!(segments_seen > 100, "{backend}: segments accumulated while a room did not checkpoint: {segments_seen}");
            let live = s.journal_segments().await.unwrap();
            assert!(live <= 10, "{backend}: spilled segments are deleted, the others freed by checkpoints: {live} left");
            assert_eq!(segments_stored().await, live as i64, "{backend}: the table holds exactly the segments still needed");
            // A segment holds at most one row of a room: what the pinned room has not in segments, it has in
            // per-room rows.
            let moved = count("SELECT COUNT(*) FROM room_journal WHERE room = 'pinned'").await;
            assert!(moved <= model[5].len() as i64 && moved + live as i64 >= model[5].len() as i64, "{moved} rows moved, {live} segments");
            // Every room checkpoints (no segment old enough to move out): nothing is left in either table.
            s.set_spill_after(std::time::Duration::from_secs(3600));
            s.commit_rooms(&RoomCommit::fold([RoomWrite::Journal(row("a", tick[0] + 1))])).await.unwrap();
            tick[0] += 1;
            assert_eq!(s.journal_segments().await.unwrap(), live + 1);
            let all: Vec<RoomWrite> =
                (0..rooms.len()).map(|r| RoomWrite::Checkpoint(checkpoint(rooms[r], tick[r], Some("1.0.0")))).collect();
            s.commit_rooms(&RoomCommit::fold(all)).await.unwrap();
            assert_eq!((segments_stored().await, count("SELECT COUNT(*) FROM room_journal").await), (0, 0), "{backend}");
            assert_eq!(s.journal_segments().await.unwrap(), 0);
        }
    }
}

/// A PostgreSQL store waits for its first connection past the pool's 3 s acquire timeout (a CLI's store,
/// `warden push`, once failed on a loaded machine whose first connection took longer): here the server
/// answers only after 5 s, through a proxy that holds every byte until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_waits_for_a_first_connection_slower_than_the_pools_timeout() {
    let Some(test_store) = TestStore::postgres("slow_first_connection").await else { return };
    let (proxy, through) = warden_tests::Proxy::before_postgres(&test_store.url).await;
    proxy.blackhole();
    let open = tokio::spawn(async move { Store::open(&through).await });
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(!open.is_finished(), "the store stopped waiting within 5 s: {:?}", open.await.unwrap().err());
    proxy.heal();
    let s = open.await.unwrap().expect("the store opens once the server answers");
    assert_eq!(s.write_saves(&[save("ann", b"a")]).await.unwrap(), [1]);
    assert_eq!(s.load_save("arena", "ann").await.unwrap().unwrap().data, b"a");
}
