//! The store's contract, on every backend: SQLite always, PostgreSQL when `WARDEN_TEST_DATABASE_URL`
//! names a server (each test in a database of its own). One body per test, run against each.

use warden::storage::{Checkpoint, JournalRow, RoomCommit, RoomWrite, SaveWrite, Store, Transition, VersionRecord, VersionState};
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
        .transition("arena", &Transition { versions: vec![v], floor: Some(("arena".into(), semver::Version::new(1, 0, 0))), rollout: None })
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
