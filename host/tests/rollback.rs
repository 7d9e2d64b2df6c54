//! Health, automatic rollback and supervision end to end: a real server with signed versions, real
//! WebSocket players and bots, the SQLite registry, checkpoints and audit log.
//!
//! The faulty version is `arena-chaos` (arena built with its `chaos` feature, same state format): every
//! fifth move returns `err` after it is applied and answered, a `crash` message panics and a `spin`
//! message loops forever.

mod common;

use common::deploy::*;
use common::server::{self as srv, WAIT};
use serde::Deserialize;
use std::time::{Duration, Instant};
use warden::commands::bots::{self, BotGame, BotsArgs};
use warden::deploy::{DeployEvent, Phase};
use warden::net::envelope::{Format, ServerMsg};
use warden::room::journal::{self, Entry};
use warden::runtime::InstanceEnv;
use warden::server::Server;
use warden::storage::VersionState;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ArenaOut {
    Welcome {},
    Moved { seq: u64, score: u64 },
    State {},
}

/// Replays a room's journal from its checkpoint into `version` in a fresh environment (the room's seed,
/// nothing shared with the server's room) and returns the snapshot.
fn offline_replay(server: &Server, game: &str, dump: &warden::room::RoomDump, room: &str) -> Vec<u8> {
    let plugin = server.deployer().loaded(game, dump.base.version()).expect("the checkpoint's version is loaded");
    let env = InstanceEnv::standalone(room, dump.seed);
    let mut replayed = journal::replay(&plugin, &env, 20, &dump.base, &dump.journal, &[]).expect("the journal replays");
    assert!(replayed.skipped.is_empty(), "nothing trapped in the replay");
    replayed.instance.snapshot().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_returning_err_on_a_fifth_of_moves_is_rolled_back_and_rooms_end_as_if_it_never_ran() {
    rolled_back_as_if_it_never_ran("tick").await;
}

/// The same with rooms that hand the plugin each move as it arrives and answer it at once: their
/// journal replays to the same bytes, a swap and a rollback under load lose and repeat no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_that_answer_on_arrival_replay_exactly_and_are_rolled_back_with_no_answer_lost_or_repeated() {
    rolled_back_as_if_it_never_ran("arrival").await;
}

async fn rolled_back_as_if_it_never_ran(dispatch: &str) {
    // Checkpoints only before swaps, so each room's journal covers everything since the pre-swap one.
    let dispatch = format!("rooms.dispatch={dispatch:?}");
    let (env, dir, server, mut events) =
        serving("arena", "arena", &["rooms.checkpoint_every_ms=3600000", "rollout.probation_ms=600000", &dispatch]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let secret = Some(b"test-secret-0123456789".to_vec());
    let args = BotsArgs::new(BotGame::Arena, 40, 4, 8.0, 600.0, "chaos");
    let stop_bots = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let stop = stop_bots.clone();
        async move { bots::drive_until(&args, endpoint, secret, stop).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Replay is exact: a room on 1.0.0 only, replayed offline from its first checkpoint, gives the same
    // snapshot bytes.
    let before = server.room_manager().dump("arena", "chaos-0").await.expect("room chaos-0 is open");
    assert_eq!(before.base.tick, 0, "the first checkpoint is the room's start");
    assert!(before.journal.entries().filter(|e| matches!(e, Entry::Msg(..))).count() > 20, "the bots played");
    assert_eq!(
        Some(offline_replay(&server, "arena", &before, "chaos-0")),
        before.state,
        "replaying the recorded room gives identical bytes"
    );

    let swapped_at = Instant::now();
    drop_version(&dir, "arena-chaos", "arena", "1.0.1");
    deployed(&mut events, "1.0.1").await;
    let event = next_event(&mut events, Duration::from_secs(30), |e| matches!(e, DeployEvent::RolledBack { .. })).await;
    let DeployEvent::RolledBack { bad, to, reason, .. } = event else { unreachable!() };
    println!("rolled back {:?} after the deploy: {reason}", swapped_at.elapsed());
    assert_eq!((bad.as_str(), to.as_str()), ("1.0.1", "1.0.0"));
    assert!(reason.contains("error rate"), "{reason}");
    rooms_all_on(&server, "arena", "1.0.0").await;

    // The bots go on for a while on 1.0.0, then stop; every message was answered once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_bots.cancel();
    let report = load.await.unwrap().unwrap();
    println!("{report:?}");
    assert_eq!(report.connected, 40);
    assert_eq!(report.failed_connections, 0, "no player was disconnected");
    assert!(report.errors > 0, "the bots saw 1.0.1's errors");
    assert_eq!(report.lost, 0, "every move answered");
    assert_eq!(report.duplicated, 0, "no move answered twice");
    assert_eq!(report.score_resets, 0, "no score went down");

    // Each room equals what 1.0.0 alone makes of the same inputs: its pre-swap checkpoint and every
    // input since (1.0.1's era included), replayed into 1.0.0 offline.
    let rollbacks = server.room_manager().take_rollbacks();
    assert_eq!(rollbacks.len(), 10, "every room was rebuilt by replay");
    for r in 0..10 {
        let room = format!("chaos-{r}");
        let dump = server.room_manager().dump("arena", &room).await.expect("the room is open");
        assert_eq!(dump.version, "1.0.0");
        assert_eq!(dump.base.version(), "1.0.0", "{room}: the checkpoint is the pre-swap one");
        assert!(dump.base.tick > 0, "{room}: taken at the swap");
        let moves = dump.journal.entries().filter(|e| matches!(e, Entry::Msg(..))).count();
        assert!(moves > 10, "{room}: the journal holds the moves since the swap ({moves})");
        assert_eq!(Some(offline_replay(&server, "arena", &dump, &room)), dump.state, "{room} is exactly 1.0.0's result");
    }

    // The registry and the audit log say what happened.
    let versions = server.store().versions("arena").await.unwrap();
    let state = |v: &str| versions.iter().find(|r| r.version == v).unwrap().state;
    assert_eq!((state("1.0.0"), state("1.0.1")), (VersionState::Active, VersionState::Bad));
    let audit = server.store().audit_log(10).await.unwrap();
    let entry = audit.iter().find(|e| e.action == "rollback").expect("a rollback entry");
    assert_eq!((entry.actor.as_str(), entry.version.as_deref()), ("health", Some("1.0.1")));
    let status = server.deployer().status().await.unwrap();
    let text = warden::commands::operate::render(&status);
    println!("{text}");
    assert!(text.contains("1.0.1") && text.contains("bad") && text.contains("error rate"), "{text}");

    // The same file again is refused; a restart comes back on 1.0.0.
    std::fs::remove_file(dir.join("arena-1.0.1.wasm")).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop_version(&dir, "arena-chaos", "arena", "1.0.1");
    let event = next_event(&mut events, WAIT, |e| matches!(e, DeployEvent::Rejected { .. })).await;
    assert!(matches!(&event, DeployEvent::Rejected { kind: "marked-bad", .. }), "{event:?}");
    server.shutdown().await;
    let server = env.start(&[]).await;
    assert_eq!(active(&server, "arena"), "1.0.0", "a restart serves the stable version, not the bad one");
    server.shutdown().await;
}

/// What the `bank` test guest answers.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BankOut {
    Balance { balance: u64 },
    Receipt { balance: u64 },
}

/// Deposits `amount` and returns the balance on the receipt.
async fn deposit(p: &mut srv::Player, amount: u64) -> u64 {
    #[derive(serde::Serialize)]
    struct Deposit {
        amount: u64,
    }
    p.msg(&Deposit { amount }).await;
    match p.next_msg::<BankOut>(|_| false).await {
        BankOut::Receipt { balance } => balance,
        other => panic!("{}: a deposit is answered with a receipt, got {other:?}", p.id),
    }
}

/// A rollback replays the journal into the previous version, and each replayed call reads a save as it
/// read it when it ran, not as the store holds it by then: the bank reads a player's balance on join and
/// adds each deposit, so a replay whose join read the balance as it is now would count every deposit
/// since the join twice (and save that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_replays_each_save_as_the_call_read_it() {
    let (_env, dir, server, mut events) =
        serving("bank", "bank", &["rooms.checkpoint_every_ms=3600000", "rollout.probation_ms=600000"]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut early = player(&endpoint, "bank", "vault").await;
    assert_eq!(early.next_msg::<BankOut>(|_| false).await, BankOut::Balance { balance: 0 });
    assert_eq!(deposit(&mut early, 5).await, 5);
    drop_version(&dir, "bank", "bank", "1.0.1");
    deployed(&mut events, "1.0.1").await;
    rooms_all_on(&server, "bank", "1.0.1").await;

    // A player who joins on 1.0.1: the join, which reads the player's save (none yet), and the deposits
    // after it are in the journal since the pre-swap checkpoint.
    let mut late = player(&endpoint, "bank", "vault").await;
    assert_eq!(late.next_msg::<BankOut>(|_| false).await, BankOut::Balance { balance: 0 });
    assert_eq!(deposit(&mut late, 7).await, 7);
    assert_eq!(deposit(&mut late, 11).await, 18);
    assert_eq!(deposit(&mut early, 1).await, 6);
    let (bad, to) = server.deployer().operator_rollback("bank", None, false, "test").await.unwrap();
    assert_eq!((bad.as_str(), to.as_str()), ("1.0.1", "1.0.0"));
    rooms_all_on(&server, "bank", "1.0.0").await;
    assert_eq!(server.room_manager().take_rollbacks().len(), 1, "the room was rebuilt by replay");

    assert_eq!(deposit(&mut late, 1).await, 19, "each deposit since the join counts once");
    assert_eq!(deposit(&mut early, 1).await, 7);
    let saved = server.store().load_save("bank", &late.id).await.unwrap().expect("the late player's save");
    assert_eq!(rmp_serde::from_slice::<u64>(&saved.data).unwrap(), 19, "and the save says so");
    // The journal holds what the join read, so an offline replay with an empty save store gives the live
    // room's bytes too.
    let dump = server.room_manager().dump("bank", "vault").await.unwrap();
    let read = |e: &Entry| matches!(e, Entry::Loaded(p, None) if **p == *late.id);
    assert!(dump.journal.entries().any(|e| read(&e)), "the join's read (no save) is journaled");
    assert_eq!(Some(offline_replay(&server, "bank", &dump, "vault")), dump.state, "the room is exactly 1.0.0's result");
    server.shutdown().await;
}

#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Cmd {
    Move { dir: &'static str, seq: u64 },
    Crash,
    Spin,
}

/// Sends `n` moves from `seq` on and returns the last score; every move must be answered.
async fn moves(p: &mut srv::Player, seq: &mut u64, n: u64) -> u64 {
    let mut score = 0;
    for _ in 0..n {
        *seq += 1;
        let want = *seq;
        p.msg(&Cmd::Move { dir: if want.is_multiple_of(2) { "left" } else { "right" }, seq: want }).await;
        loop {
            match p.rx.envelope(WAIT).await.unwrap() {
                ServerMsg::Msg { data } => {
                    if let Ok(ArenaOut::Moved { seq, score: s }) = rmp_serde::from_slice(&data)
                        && seq == want
                    {
                        score = s;
                        break;
                    }
                }
                ServerMsg::Error { .. } => {}
                other => panic!("{}: unexpected {other:?}", p.id),
            }
        }
    }
    score
}

/// Sends `n` moves at once, then reads until the last one is answered.
async fn burst(p: &mut srv::Player, seq: &mut u64, n: u64) {
    for _ in 0..n {
        *seq += 1;
        p.msg(&Cmd::Move { dir: if seq.is_multiple_of(2) { "left" } else { "right" }, seq: *seq }).await;
    }
    let want = *seq;
    loop {
        if let ServerMsg::Msg { data } = p.rx.envelope(WAIT).await.unwrap()
            && let Ok(ArenaOut::Moved { seq, .. }) = rmp_serde::from_slice(&data)
            && seq == want
        {
            return;
        }
    }
}

/// A player's next `error` envelope's message, past the errors of chaos moves.
async fn error_of(p: &mut srv::Player) -> String {
    loop {
        match p.next_error().await {
            ServerMsg::Error { message, fatal, .. } => {
                assert!(!fatal, "the player stays connected");
                if !message.contains("every fifth move") {
                    return message;
                }
            }
            _ => unreachable!(),
        }
    }
}

/// A player's entry in a room's state.
fn player_state(dump: &warden::room::RoomDump, id: &str) -> serde_json::Value {
    let state: serde_json::Value = rmp_serde::from_slice(dump.state.as_ref().expect("a snapshot")).unwrap();
    state["players"][id].clone()
}

/// Waits until `f` gives `Some`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The crash reports of `rooms`, once there are at least `n`.
async fn crashes_of(server: &Server, rooms: &[&str], n: usize) -> Vec<warden::health::crash::CrashReport> {
    let dir = server.crash_dir();
    eventually("crash reports", || {
        let dir = dir.clone();
        async move {
            let ours: Vec<_> = warden::health::crash::list(&dir)
                .unwrap()
                .into_iter()
                .map(|(_, r)| r)
                .filter(|r| rooms.contains(&r.room.as_str()))
                .collect();
            (ours.len() >= n).then_some(ours)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_and_infinite_loops_are_skipped_then_the_version_is_rolled_back() {
    let (_env, dir, server, mut events) =
        serving("arena", "arena", &["health.trap_storm=4", "health.max_error_rate=1.0", "rollout.probation_ms=600000"]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut a = player(&endpoint, "arena", "t1").await;
    let mut b = player(&endpoint, "arena", "t2").await;
    let (mut seq_a, mut seq_b) = (0, 0);
    moves(&mut a, &mut seq_a, 4).await;
    moves(&mut b, &mut seq_b, 4).await;
    // A room of another plugin, to show it is not held up by the loops.
    drop_version(&dir, "echo", "echo", "1.0.0");
    deployed(&mut events, "1.0.0").await;
    let mut e = player(&endpoint, "echo", "bystander").await;
    drop_version(&dir, "arena-chaos", "arena", "1.0.1");
    deployed(&mut events, "1.0.1").await;
    rooms_all_on(&server, "arena", "1.0.1").await;

    // A trap: the sender gets an error, the room keeps its state and goes on.
    let before = server.room_manager().dump("arena", "t1").await.unwrap();
    a.msg(&Cmd::Crash).await;
    let message = error_of(&mut a).await;
    assert!(message.contains("on-message trapped: panic") && message.contains("dropped"), "{message}");
    // The player is told what failed and an incident id; the panic text, paths and backtrace are for
    // operators (the crash report, below, and the log).
    for detail in ["chaos: crash on command", "panicked", ".rs", "backtrace", "wasm"] {
        assert!(!message.contains(detail), "the player's error holds {detail:?}: {message}");
    }
    assert!(message.len() < 200, "a short error: {message}");
    let incident = message.split("incident ").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_hexdigit()).next()).unwrap();
    assert_eq!(incident.len(), 12, "{message}");
    let after = server.room_manager().dump("arena", "t1").await.unwrap();
    assert_eq!(after.version, "1.0.1", "the room still runs 1.0.1");
    assert_eq!(after.counts.traps, 1);
    assert_eq!(player_state(&after, &a.id), player_state(&before, &a.id), "the rebuilt room kept the player's state");
    moves(&mut a, &mut seq_a, 1).await; // answered: the room goes on after the rebuild

    // An infinite loop: stopped at its deadline, the same way; the other rooms are not held up.
    let echo_before = server.room_manager().dump("echo", "bystander").await.unwrap().tick;
    b.msg(&Cmd::Spin).await;
    for i in 0..5u8 {
        e.msg(&serde_bytes::ByteBuf::from(vec![i; 8])).await;
        let back: serde_bytes::ByteBuf = e.next_msg(|_| false).await;
        assert_eq!(back.as_ref(), [i; 8], "the echo room answers while arena spins");
    }
    let message = error_of(&mut b).await;
    assert!(message.contains("deadline"), "{message}");
    let echo_after = server.room_manager().dump("echo", "bystander").await.unwrap().tick;
    assert!(echo_after > echo_before, "the echo room kept ticking ({echo_before} -> {echo_after})");
    moves(&mut a, &mut seq_a, 3).await;
    moves(&mut b, &mut seq_b, 1).await;

    // Past the trap storm threshold the version is rolled back, the rooms keep their players and state.
    a.msg(&Cmd::Crash).await;
    b.msg(&Cmd::Spin).await;
    let event = next_event(&mut events, WAIT, |e| matches!(e, DeployEvent::RolledBack { .. })).await;
    let DeployEvent::RolledBack { reason, .. } = event else { unreachable!() };
    assert!(reason.contains("trap storm"), "{reason}");
    rooms_all_on(&server, "arena", "1.0.0").await;
    let score = moves(&mut a, &mut seq_a, 2).await;
    let dump = server.room_manager().dump("arena", "t1").await.unwrap();
    let state = player_state(&dump, &a.id);
    assert_eq!(state["moves"], seq_a, "every move counted, no trapped input: {state}");
    assert_eq!(state["score"], score);

    // Each trap left a crash report naming the input and the backtrace.
    let ours = crashes_of(&server, &["t1", "t2"], 4).await;
    let crash = ours.iter().find(|r| r.kind == "panic").expect("a panic report");
    println!("{}", serde_json::to_string_pretty(crash).unwrap());
    assert_eq!(crash.input, Some(serde_json::json!({"type": "crash"})));
    assert_eq!(crash.id, incident, "the report is found by the id the player was shown");
    assert!(crash.message.contains("chaos: crash on command"), "the operator gets the panic message: {}", crash.message);
    assert_eq!((crash.version.as_str(), crash.export.as_str(), crash.outcome.as_str()), ("1.0.1", "on-message", "rebuilt"));
    assert_eq!(crash.player.as_deref(), Some(a.id.as_str()));
    assert!(crash.backtrace.iter().any(|f| f.contains("arena")), "function names from the name section: {:?}", crash.backtrace);
    assert!(ours.iter().any(|r| r.kind == "deadline" && r.input == Some(serde_json::json!({"type": "spin"}))));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_passes_canary_but_fails_probation_is_rolled_back_from_every_room() {
    let (_env, dir, server, mut events) = serving(
        "arena",
        "arena",
        &[
            "rollout.strategy=\"canary\"",
            "rollout.canary_share=0.25",
            "rollout.canary_ms=1500",
            "rollout.probation_ms=600000",
            "net.msgs_per_sec=1000",
            "net.burst=1000",
            "health.window_ms=20000",
        ],
    )
    .await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut players = Vec::new();
    for r in 0..8 {
        players.push((player(&endpoint, "arena", &format!("c{r}")).await, 0u64));
    }
    drop_version(&dir, "arena-chaos", "arena", "1.0.1");
    deployed(&mut events, "1.0.1").await;
    let game = server.room_manager().game("arena").unwrap();
    assert_eq!(game.health("1.0.1").span(), Duration::from_secs(20), "the configured health window");
    let canary_rooms = eventually("the canary rooms to move", || async {
        let versions = server.room_manager().versions("arena");
        (versions.get("1.0.1") == Some(&2)).then_some(versions)
    })
    .await;
    assert_eq!(canary_rooms.get("1.0.0"), Some(&6), "25% of 8 rooms run the canary: {canary_rooms:?}");

    // Canary: moves that 1.0.1 handles well (never a fifth one).
    let event = {
        let canary = async {
            loop {
                for (p, seq) in players.iter_mut() {
                    if (*seq + 1).is_multiple_of(5) {
                        *seq += 1;
                    }
                    moves(p, seq, 1).await;
                }
            }
        };
        // A rollback instead would end the wait with its reason.
        let advanced = next_event(&mut events, WAIT, |e| matches!(e, DeployEvent::Advanced { .. } | DeployEvent::RolledBack { .. }));
        tokio::select! {
            e = advanced => e,
            _ = canary => unreachable!(),
        }
    };
    assert!(matches!(&event, DeployEvent::Advanced { phase: Phase::Probation, .. }), "{event:?}");
    rooms_all_on(&server, "arena", "1.0.1").await;

    // Probation: every fifth move fails now, in every room (moves sent ten at a time).
    let event = {
        let fail = async {
            loop {
                for (p, seq) in players.iter_mut() {
                    burst(p, seq, 10).await;
                }
            }
        };
        let rolled = next_event(&mut events, WAIT, |e| matches!(e, DeployEvent::RolledBack { .. }));
        tokio::select! {
            e = rolled => e,
            _ = fail => unreachable!(),
        }
    };
    let DeployEvent::RolledBack { reason, .. } = event else { unreachable!() };
    assert!(reason.contains("during probation") && reason.contains("error rate"), "{reason}");
    rooms_all_on(&server, "arena", "1.0.0").await;
    assert_eq!(server.room_manager().versions("arena").get("1.0.0"), Some(&8));
    let audit = server.store().audit_log(10).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "promote" && e.version.as_deref() == Some("1.0.1")));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_trapping_every_tick_is_closed_after_its_restart_limit_with_a_checkpoint_saved() {
    let server = srv::start(&["rooms.crash_cooldown_ms=2000"]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut p = srv::player(&endpoint, "faulty", "loop").await;
    p.msg(&serde_json::json!({"fail": "on-tick", "mode": "trap"})).await;
    let kicked = loop {
        match p.rx.envelope(WAIT).await.unwrap() {
            ServerMsg::Kicked { reason } => break reason,
            _ => continue,
        }
    };
    assert!(kicked.contains("more than the restart limit of 3"), "{kicked}");
    let store = server.store().clone();
    let checkpoint = eventually("the checkpoint saved at close", || {
        let store = store.clone();
        async move { store.checkpoint("faulty", "loop").await.unwrap().filter(|c| c.tick > 0) }
    })
    .await;
    let state: serde_json::Value = rmp_serde::from_slice(&warden::room::journal::Stored::decode(&checkpoint.state).unwrap().state).unwrap();
    assert_eq!(state["plan"]["on-tick"], "trap", "the checkpoint holds the room's state: {state}");
    let reports = crashes_of(&server, &["loop"], 4).await;
    let ours: Vec<&str> = reports.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(ours, ["rebuilt", "rebuilt", "rebuilt", "closed"], "three restarts, then the limit");
    // Back-off between restarts: none after the first trap, then 250 ms, then 500 ms (lower bounds, which
    // a loaded machine only lengthens).
    let at: Vec<i64> = reports.iter().map(|r| r.at_ms).collect();
    assert!(at[2] - at[1] >= 250 && at[3] - at[2] >= 500, "restarts backed off: {at:?}");

    // Rejoining during the cooldown is refused with a reason; after it, the room opens from its checkpoint.
    let (mut tx, mut rx) = warden::net::client::connect(&endpoint).await.unwrap();
    let refused = warden::net::client::handshake(&mut tx, &mut rx, None, "faulty", "loop").await.unwrap_err();
    assert!(refused.to_string().contains("closed after its game crashed repeatedly"), "{refused}");
    let reopened = eventually("the room reopens after its cooldown", || {
        let endpoint = endpoint.clone();
        async move {
            let (mut tx, mut rx) = warden::net::client::connect(&endpoint).await.unwrap();
            warden::net::client::handshake(&mut tx, &mut rx, None, "faulty", "loop").await.ok()
        }
    })
    .await;
    assert!(!reopened.is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_resumes_a_room_from_its_last_checkpoint() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("storage.url={:?}", format!("sqlite://{}", db.path().join("resume.db").display()));
    let server = srv::start(&[&url]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut p = srv::player(&endpoint, "faulty", "kept").await;
    for want in 1..=3u64 {
        p.msg(&"hello").await;
        assert_eq!(p.next_msg::<u64>(|_| false).await, want);
    }
    let before = server.room_manager().dump("faulty", "kept").await.unwrap();
    server.shutdown().await;

    // A new process on the same store: the room opens where it stopped (its tick, its state).
    let server = srv::start(&[&url]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut p = srv::player(&endpoint, "faulty", "kept").await;
    p.msg(&"hello").await;
    assert_eq!(p.next_msg::<u64>(|_| false).await, 4, "the fourth message of the room, not the first");
    let after = server.room_manager().dump("faulty", "kept").await.unwrap();
    assert!(after.base.tick >= before.tick, "resumed at tick {} (was at {})", after.base.tick, before.tick);
    // The new process would give the room another seed; it resumed with its own, so its random stream
    // and hash order carry on.
    assert_eq!(after.seed, before.seed, "the seed is stored with the checkpoint");
    assert_eq!(after.base.hash_key, before.base.hash_key, "so is the hash key");
    assert_ne!(after.base.hash_key, after.seed, "the hash key is not the published seed");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_past_its_restart_limit_on_a_version_on_trial_rolls_the_version_back() {
    // Trap storms off: only the room's restart intensity (3 in 10 s) can condemn the version.
    let (_env, dir, server, mut events) =
        serving("arena", "arena", &["health.trap_storm=1000", "health.max_error_rate=1.0", "rollout.probation_ms=600000"]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut p = player(&endpoint, "arena", "e1").await;
    let mut seq = 0;
    moves(&mut p, &mut seq, 3).await;
    drop_version(&dir, "arena-chaos", "arena", "1.0.1");
    deployed(&mut events, "1.0.1").await;
    rooms_all_on(&server, "arena", "1.0.1").await;
    for _ in 0..4 {
        p.msg(&Cmd::Crash).await;
        let message = error_of(&mut p).await;
        assert!(message.contains("on-message trapped: panic") && message.contains("incident"), "{message}");
    }
    let event = next_event(&mut events, WAIT, |e| matches!(e, DeployEvent::RolledBack { .. })).await;
    let DeployEvent::RolledBack { reason, .. } = event else { unreachable!() };
    assert!(reason.contains("restart intensity"), "{reason}");
    rooms_all_on(&server, "arena", "1.0.0").await;
    moves(&mut p, &mut seq, 1).await;
    let outcomes: Vec<String> = crashes_of(&server, &["e1"], 4).await.into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, ["rebuilt", "rebuilt", "rebuilt", "escalated"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_snapshot_traps_at_a_swap_backs_off_and_keeps_its_version_and_state() {
    let (_env, dir, server, mut events) = serving("faulty", "faulty", &[]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut p = player(&endpoint, "faulty", "snap").await;
    for want in 1..=2u64 {
        p.msg(&"hello").await;
        assert_eq!(p.next_msg::<u64>(|_| false).await, want);
    }
    p.msg(&serde_json::json!({"fail": "snapshot", "mode": "trap"})).await;
    drop_version(&dir, "faulty", "faulty", "1.0.1");
    deployed(&mut events, "1.0.1").await;

    // Each swap attempt traps in the serving version's snapshot: the room is rebuilt and waits (1 s, then
    // 2 s) before it tries again, ticking and answering in between.
    let reports = crashes_of(&server, &["snap"], 2).await;
    assert!(reports.iter().all(|r| r.export == "snapshot" && r.outcome == "rebuilt"), "{reports:?}");
    assert!(reports[1].at_ms - reports[0].at_ms >= 1_000, "the swap backed off: {:?}", reports.iter().map(|r| r.at_ms).collect::<Vec<_>>());
    p.msg(&"hello").await;
    assert_eq!(p.next_msg::<u64>(|_| false).await, 3, "the room kept its state");
    assert_eq!(server.room_manager().versions("faulty").get("1.0.0"), Some(&1), "and its version");
    server.shutdown().await;
}
