//! The rollout state machine against the real deployer and registry (in-process servers, signed files,
//! SQLite): one state per version, one definition of "previous stable", phases that survive a restart,
//! rollbacks that work after one, and canaries that only take rooms with players.

mod common;

use common::deploy::*;
use common::server::{self as srv, WAIT};
use std::time::Duration;
use warden::deploy::{DeployEvent, Phase};
use warden::net::envelope::Format;
use warden::server::Server;
use warden::storage::VersionState;

/// Every version's registry state, oldest registration first.
async fn states(server: &Server, plugin: &str) -> Vec<(String, VersionState)> {
    server.store().versions(plugin).await.unwrap().into_iter().map(|r| (r.version, r.state)).collect()
}

/// `states`, checked: at most one version serves every room (probation or active), at most one is a
/// canary, and the one serving is what the rooms are given.
async fn checked_states(server: &Server, plugin: &str) -> Vec<(String, VersionState)> {
    let all = states(server, plugin).await;
    let serving: Vec<_> = all.iter().filter(|(_, s)| matches!(s, VersionState::Active | VersionState::Probation)).collect();
    assert_eq!(serving.len(), 1, "exactly one version serves every room: {all:?}");
    assert!(all.iter().filter(|(_, s)| *s == VersionState::Canary).count() <= 1, "{all:?}");
    assert_eq!(serving[0].0, active(server, plugin), "the registry and the rooms agree: {all:?}");
    all
}

fn state_of(all: &[(String, VersionState)], version: &str) -> VersionState {
    all.iter().find(|(v, _)| v == version).map(|(_, s)| *s).unwrap_or_else(|| panic!("{version} is not registered: {all:?}"))
}

async fn phase_of(server: &Server, plugin: &str) -> Option<Phase> {
    let status = server.deployer().status().await.unwrap();
    status.plugins.into_iter().find(|p| p.name == plugin).and_then(|p| p.versions.into_iter().find_map(|v| v.phase))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_probation_with_the_time_it_had_run() {
    let env = Env::new();
    let dir = env.plugins();
    let on_probation = ["rollout.probation_ms=600000"];
    drop_version(&dir, "arena", "arena", "1.0.0");
    let server = env.start(&on_probation).await;
    let mut events = server.deployer().subscribe();
    drop_version(&dir, "arena-b", "arena", "1.1.0");
    deployed(&mut events, "1.1.0").await;
    assert_eq!(phase_of(&server, "arena").await, Some(Phase::Probation));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = server.store().clone();
    server.shutdown().await;
    let stored = store.rollout("arena").await.unwrap().expect("the probation is stored");
    assert!(stored.elapsed_ms >= 300, "the time it ran is kept at shutdown: {stored:?}");

    let server = env.start(&on_probation).await;
    assert_eq!(active(&server, "arena"), "1.1.0");
    assert_eq!(phase_of(&server, "arena").await, Some(Phase::Probation), "still on probation, not stable");
    let all = checked_states(&server, "arena").await;
    assert_eq!((state_of(&all, "1.0.0"), state_of(&all, "1.1.0")), (VersionState::Stable, VersionState::Probation));
    // The health watch is on again: promoting ends it, once.
    server.deployer().advance("arena", "test", "promoted").await.unwrap();
    let all = checked_states(&server, "arena").await;
    assert_eq!(state_of(&all, "1.1.0"), VersionState::Active);
    assert!(server.store().rollout("arena").await.unwrap().is_none(), "no rollout left in progress");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_rollback_loads_the_previous_stable_version_from_the_plugin_directory() {
    let env = Env::new();
    let dir = env.plugins();
    let immediate = ["rollout.probation_ms=0"];
    drop_version(&dir, "arena", "arena", "1.0.0");
    let server = env.start(&immediate).await;
    let mut events = server.deployer().subscribe();
    drop_version(&dir, "arena-b", "arena", "1.1.0");
    deployed(&mut events, "1.1.0").await;
    server.shutdown().await;

    let server = env.start(&immediate).await;
    assert!(server.deployer().loaded("arena", "1.0.0").is_none(), "1.0.0 was not loaded by the restart");
    let endpoint = srv::ws(&server, Format::MsgPack);
    let _p = player(&endpoint, "arena", "r1").await;
    let (bad, to) = server.deployer().roll_back("arena", None, None, "operator rollback", "test").await.unwrap();
    assert_eq!((bad.as_str(), to.as_str()), ("1.1.0", "1.0.0"));
    assert_eq!(active(&server, "arena"), "1.0.0");
    let all = checked_states(&server, "arena").await;
    assert_eq!((state_of(&all, "1.0.0"), state_of(&all, "1.1.0")), (VersionState::Active, VersionState::Bad));
    // Its file gone, a version cannot be brought back, and the error says what to put back.
    std::fs::remove_file(dir.join("arena-1.0.0.wasm")).unwrap();
    let Err(err) = server.deployer().load_version("arena", "0.9.0").await else { panic!("0.9.0 has no file") };
    let err = err.to_string();
    assert!(err.contains("arena-0.9.0.wasm") && err.contains("put"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rollback_path_uses_one_previous_stable_and_each_version_has_one_state() {
    // Every version on probation until promoted; no automatic rollback gets in the way.
    let (_env, dir, server, mut events) =
        serving("arena", "arena", &["rollout.probation_ms=600000", "health.max_error_rate=1.0", "health.trap_storm=100000"]).await;
    let d = server.deployer().clone();
    drop_version(&dir, "arena-b", "arena", "1.1.0");
    deployed(&mut events, "1.1.0").await;
    d.advance("arena", "test", "promoted").await.unwrap();
    let all = checked_states(&server, "arena").await;
    assert_eq!((state_of(&all, "1.0.0"), state_of(&all, "1.1.0")), (VersionState::Stable, VersionState::Active));

    // 1.1.1 on probation, replaced during it by 1.1.2: 1.1.1 never finished its trial.
    drop_version(&dir, "arena", "arena", "1.1.1");
    deployed(&mut events, "1.1.1").await;
    drop_version(&dir, "arena-b", "arena", "1.1.2");
    deployed(&mut events, "1.1.2").await;
    let all = checked_states(&server, "arena").await;
    assert_eq!(
        (state_of(&all, "1.1.0"), state_of(&all, "1.1.1"), state_of(&all, "1.1.2")),
        (VersionState::Stable, VersionState::Superseded, VersionState::Probation)
    );
    assert_eq!(d.previous_stable("arena").await.unwrap().as_deref(), Some("1.1.0"), "not 1.1.1, which never finished its trial");

    // A forced rollback further down, to 1.0.0.
    let (bad, to) = d.roll_back("arena", None, Some("1.0.0"), "operator rollback", "test").await.unwrap();
    assert_eq!((bad.as_str(), to.as_str()), ("1.1.2", "1.0.0"));
    let all = checked_states(&server, "arena").await;
    assert_eq!(
        (state_of(&all, "1.0.0"), state_of(&all, "1.1.0"), state_of(&all, "1.1.2")),
        (VersionState::Active, VersionState::Stable, VersionState::Bad)
    );
    // From 1.0.0 there is nothing below: a plain rollback never goes "back" up to 1.1.x.
    assert_eq!(d.previous_stable("arena").await.unwrap(), None);
    let err = d.roll_back("arena", None, None, "operator rollback", "test").await.unwrap_err().to_string();
    assert!(err.contains("no previous stable version"), "{err}");
    assert_eq!(active(&server, "arena"), "1.0.0");
    // A bad version is never a target, even forced.
    let err = d.roll_back("arena", None, Some("1.1.2"), "operator rollback", "test").await.unwrap_err().to_string();
    assert!(err.contains("rolled back earlier"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_takes_only_rooms_with_players_and_holds_until_players_have_used_it() {
    let (_env, dir, server, mut events) = serving(
        "arena",
        "arena",
        &["rollout.strategy=\"canary\"", "rollout.canary_share=0.5", "rollout.canary_ms=100", "rollout.probation_ms=600000"],
    )
    .await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut p = player(&endpoint, "arena", "full").await;
    // Two rooms left empty (they stay open for the grace period).
    for room in ["empty-a", "empty-b"] {
        let q = player(&endpoint, "arena", room).await;
        drop(q);
    }
    // Wait until each room's listing shows who is in it.
    let listed = async {
        loop {
            let rooms = server.rooms();
            let players = |id: &str| rooms.iter().find(|r| r.room == id).map(|r| r.usage.players);
            if (players("full"), players("empty-a"), players("empty-b")) == (Some(1), Some(0), Some(0)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, listed).await.expect("the rooms list their players");

    drop_version(&dir, "arena-b", "arena", "1.1.0");
    deployed(&mut events, "1.1.0").await;
    let serving = server.room_manager().game("arena").unwrap().serving();
    let audit = server.store().audit_log(5).await.unwrap();
    let canary = serving.canary.as_ref().unwrap_or_else(|| panic!("a canary: {audit:#?} {:?}", server.rooms()));
    assert_eq!(canary.rooms.iter().cloned().collect::<Vec<_>>(), ["full"], "only the room with a player");

    // Its 100 ms pass with ticks but no player input: it holds. Wait until the canary has ticked twice
    // the policy's minimum of calls, and a few more health checks (every 100 ms) have run.
    let game = server.room_manager().game("arena").unwrap();
    let ticked = async {
        while game.health("1.1.0").window().tick_calls < 40 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, ticked).await.expect("the canary room ticks");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(phase_of(&server, "arena").await, Some(Phase::Canary), "held on ticks alone");
    // Player inputs: it moves on.
    for seq in 1..=25u64 {
        p.msg(&serde_json::json!({"type": "move", "dir": "left", "seq": seq})).await;
    }
    let event = next_event(&mut events, WAIT, |e| matches!(e, DeployEvent::Advanced { .. })).await;
    assert!(matches!(event, DeployEvent::Advanced { phase: Phase::Probation, .. }), "{event:?}");
    let all = checked_states(&server, "arena").await;
    assert_eq!((state_of(&all, "1.0.0"), state_of(&all, "1.1.0")), (VersionState::Stable, VersionState::Probation));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_the_store_could_not_record_leaves_no_half_state_and_is_tried_again() {
    let (env, dir, server, mut events) = serving("arena", "arena", &[]).await;
    // Another writer holds the database's write lock for longer than the busy timeout (5 s).
    let other = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect(&format!("sqlite://{}", env.db.display())).await.unwrap();
    let lock = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    drop_version(&dir, "arena-b", "arena", "1.1.0");
    // (The store waits out its busy timeout twice: for the deploy, then for the rejection's audit entry.)
    let event = next_event(&mut events, WAIT * 2, |e| matches!(e, DeployEvent::Rejected { .. })).await;
    let DeployEvent::Rejected { kind, message, .. } = event else { unreachable!() };
    assert_eq!(kind, "store", "{message}");
    assert!(message.contains("tries the file again by itself"), "advice that works: {message}");
    // Nothing of it was recorded, and 1.0.0 serves on.
    assert_eq!(active(&server, "arena"), "1.0.0");
    let all = states(&server, "arena").await;
    assert_eq!(all, [("1.0.0".to_string(), VersionState::Active)], "no half state");
    assert_eq!(server.store().floor("arena").await.unwrap(), Some(semver::Version::new(1, 0, 0)));
    // The store is back: the file goes live without anyone dropping it again.
    lock.rollback().await.unwrap();
    deployed(&mut events, "1.1.0").await;
    let all = checked_states(&server, "arena").await;
    assert_eq!((state_of(&all, "1.0.0"), state_of(&all, "1.1.0")), (VersionState::Stable, VersionState::Probation));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_on_trial_whose_rooms_trap_in_init_is_rolled_back() {
    // One trap is a trap storm here: a single room that cannot start must be enough.
    let (_env, dir, server, mut events) = serving("faulty", "faulty", &["rollout.probation_ms=600000", "health.trap_storm=1"]).await;
    drop_version(&dir, "faulty", "faulty", "1.1.0");
    deployed(&mut events, "1.1.0").await;
    assert_eq!(phase_of(&server, "faulty").await, Some(Phase::Probation));
    // A new room on 1.1.0 cannot start: its init traps (the smoke test's room and others are fine).
    let endpoint = srv::ws(&server, Format::MsgPack);
    let token = warden::net::auth::mint(b"test-secret-0123456789", "p-init", warden::net::auth::unix_now() + 3600);
    let (mut tx, mut rx) = warden::net::client::connect(&endpoint).await.unwrap();
    let refused = warden::net::client::handshake(&mut tx, &mut rx, Some(token), "faulty", "trap-init-1").await;
    let err = format!("{:#}", refused.expect_err("the room cannot start"));
    assert!(err.contains("incident"), "the player gets an incident id: {err}");
    let event = next_event(&mut events, WAIT, |e| matches!(e, DeployEvent::RolledBack { .. })).await;
    let DeployEvent::RolledBack { bad, to, reason, .. } = event else { unreachable!() };
    assert_eq!((bad.as_str(), to.as_str()), ("1.1.0", "1.0.0"), "{reason}");
    assert!(reason.contains("trap"), "{reason}");
    let all = checked_states(&server, "faulty").await;
    assert_eq!((state_of(&all, "1.0.0"), state_of(&all, "1.1.0")), (VersionState::Active, VersionState::Bad));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_is_judged_on_latency_against_the_version_running_beside_it() {
    let (_env, dir, server, mut events) = serving(
        "faulty",
        "faulty",
        &[
            "rollout.strategy=\"canary\"",
            "rollout.canary_share=1.0",
            "rollout.canary_ms=600000",
            "health.latency_factor=10.0",
            // Real calls of a debug build on a loaded machine stay far below this; the figures below are
            // added to the windows by hand.
            "health.latency_floor_us=100000",
        ],
    )
    .await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let _p = player(&endpoint, "faulty", "lat").await;
    let game = server.room_manager().game("faulty").unwrap();
    let listed = async {
        while server.rooms().iter().find(|r| r.room == "lat").map(|r| r.usage.players) != Some(1) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, listed).await.expect("the room lists its player");
    let calls = |version: &str, micros: u64, n: usize| {
        let mut c = warden::health::Counts::default();
        for _ in 0..n {
            c.call(micros);
        }
        game.health(version).add(&c);
    };
    drop_version(&dir, "faulty", "faulty", "1.1.0");
    deployed(&mut events, "1.1.0").await;
    assert!(game.serving().canary.is_some(), "a canary in the occupied room");
    let stored = server.store().rollout("faulty").await.unwrap().expect("the canary is stored");
    let before = stored.previous_p99_us.unwrap_or(0);
    assert!(before < 50_000, "1.0.0's p99 before the deploy: {before} µs");

    // The machine gets busier: both versions' calls take 500 ms. The canary is no slower than the version
    // beside it, so it stays, whatever 1.0.0 measured before.
    calls("1.0.0", 500_000, 40);
    calls("1.1.0", 500_000, 40);
    server.deployer().evaluate().await;
    let all = checked_states(&server, "faulty").await;
    assert_eq!(state_of(&all, "1.1.0"), VersionState::Canary, "not rolled back for a slowdown both versions share");

    // The canary alone is far slower than the version beside it: rolled back.
    calls("1.1.0", 20_000_000, 40);
    server.deployer().evaluate().await;
    let event = next_event(&mut events, WAIT, |e| matches!(e, DeployEvent::RolledBack { .. })).await;
    let DeployEvent::RolledBack { bad, reason, .. } = event else { unreachable!() };
    assert_eq!(bad, "1.1.0");
    assert!(reason.contains("p99 call latency"), "{reason}");
    server.shutdown().await;
}
