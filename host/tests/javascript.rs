//! JavaScript plugins end to end: `plugins/arena-js` (the arena in JavaScript, built from source with the
//! JavaScript SDK, esbuild and componentize-js by scripts/build-plugins) takes over a room from the Rust
//! arena and hands it back, under bots on real WebSockets, and every score survives both swaps; a bad
//! build of it (built from source here) is rolled back by the health check and its rooms end exactly as
//! the good build makes them.

mod common;

use common::deploy::*;
use common::server::{self as srv, WAIT};
use std::time::{Duration, Instant};
use warden::commands::bots::{self, BotGame, BotsArgs};
use warden::deploy::DeployEvent;
use warden::net::envelope::Format;
use warden::room::journal::{self, Entry};

/// The score of each player the room's state holds, read from its dump (none before the room opens).
async fn scores(server: &warden::server::Server, room: &str) -> Vec<(String, u64)> {
    let Some(dump) = server.room_manager().dump("arena", room).await else { return Vec::new() };
    let state: serde_json::Value = rmp_serde::from_slice(dump.state.as_deref().expect("the room has a state")).unwrap();
    // Players in the room, then those who left (kept as [id, player] pairs).
    let mut scores: Vec<(String, u64)> =
        state["players"].as_object().unwrap().iter().map(|(id, p)| (id.clone(), p["score"].as_u64().unwrap())).collect();
    for pair in state["departed"].as_array().into_iter().flatten() {
        scores.push((pair[0].as_str().unwrap().to_string(), pair[1]["score"].as_u64().unwrap()));
    }
    scores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_swaps_from_the_rust_arena_to_the_javascript_one_and_back_keeping_every_score() {
    // A small grid, so that coins are picked up (and scores rise) within seconds.
    let config = ["plugins.arena.config.width=3", "plugins.arena.config.height=3", "plugins.arena.config.spawn_every_ticks=2"];
    let (_env, dir, server, mut events) = serving("arena", "arena", &[&config[..], &["rollout.probation_ms=600000"]].concat()).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let args = BotsArgs::new(BotGame::Arena, 8, 4, 10.0, 600.0, "js");
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let stop = stop.clone();
        async move { bots::drive_until(&args, endpoint, Some(b"test-secret-0123456789".to_vec()), stop).await }
    });
    let deadline = Instant::now() + WAIT;
    while !scores(&server, "js-0").await.iter().any(|(_, s)| *s > 0) {
        assert!(Instant::now() < deadline, "no coin was picked up on the Rust arena");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The JavaScript build, as the same plugin's next version.
    drop_version(&dir, "arena-js", "arena", "1.1.0");
    deployed_within(&mut events, "1.1.0", BIG_COMPONENT).await;
    rooms_all_on(&server, "arena", "1.1.0").await;
    let on_js = scores(&server, "js-0").await;
    println!("on the JavaScript arena: {on_js:?}");
    let deadline = Instant::now() + WAIT;
    while scores(&server, "js-0").await.iter().map(|(_, s)| s).sum::<u64>() <= on_js.iter().map(|(_, s)| s).sum::<u64>() {
        assert!(Instant::now() < deadline, "no coin was picked up on the JavaScript arena");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // And back to the Rust build.
    server.deployer().advance("arena", "operator", "the test promotes it").await.unwrap();
    drop_version(&dir, "arena", "arena", "1.2.0");
    deployed_within(&mut events, "1.2.0", BIG_COMPONENT).await;
    rooms_all_on(&server, "arena", "1.2.0").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let report = load.await.unwrap().unwrap();
    println!("{report:?}");
    assert_eq!(report.connected, 8);
    assert_eq!(report.failed_connections, 0, "no player was disconnected by the swaps");
    assert_eq!((report.lost, report.duplicated), (0, 0), "every move answered once");
    assert_eq!(report.score_resets, 0, "no score went down across Rust -> JavaScript -> Rust");
    assert_eq!(report.errors, 0, "neither build refused a move");
    let back = scores(&server, "js-0").await;
    for (id, score) in &on_js {
        let now = back.iter().find(|(i, _)| i == id).map(|(_, s)| *s).unwrap_or(0);
        assert!(now >= *score, "{id}: {score} on the JavaScript arena, {now} back on the Rust one");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_javascript_build_is_rolled_back_and_its_rooms_end_exactly_as_the_good_build_makes_them() {
    // Checkpoints only before swaps, so the room's journal covers everything since the pre-swap one.
    let (_env, dir, server, mut events) =
        serving("arena-js", "arena", &["rooms.checkpoint_every_ms=3600000", "rollout.probation_ms=600000"]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let args = BotsArgs::new(BotGame::Arena, 8, 4, 8.0, 600.0, "jsbad");
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let stop = stop.clone();
        async move { bots::drive_until(&args, endpoint, Some(b"test-secret-0123456789".to_vec()), stop).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A bad build, made from source: every fifth move throws after it is applied and answered.
    let bad = warden_tests::js_variant("arena-js", |dir| {
        let path = dir.join("arena.js");
        let code = std::fs::read_to_string(&path).unwrap();
        let answer = "    ctx.send(id, { type: 'moved', seq, pos: to, score: current.score, picked });\n";
        assert!(code.contains(answer), "arena.js still has the line the bad build edits");
        let broken = code.replace(answer, &format!("{answer}    if (seq % 5 === 0) throw new Error(`bad build: move ${{seq}}`);\n"));
        std::fs::write(path, broken).unwrap();
    });
    drop_signed(&dir, "arena-1.0.1.wasm", &stamp_version(&bad, "1.0.1"), "arena", "1.0.1");
    deployed_within(&mut events, "1.0.1", BIG_COMPONENT).await;
    let event = next_event(&mut events, BIG_COMPONENT, |e| matches!(e, DeployEvent::RolledBack { .. })).await;
    let DeployEvent::RolledBack { bad, to, reason, .. } = event else { unreachable!() };
    assert_eq!((bad.as_str(), to.as_str()), ("1.0.1", "1.0.0"), "{reason}");
    assert!(reason.contains("error rate"), "{reason}");
    rooms_all_on(&server, "arena", "1.0.0").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let report = load.await.unwrap().unwrap();
    println!("{report:?}");
    assert!(report.errors > 0, "the bots saw the bad build's errors");
    assert_eq!((report.lost, report.duplicated, report.score_resets), (0, 0, 0), "every move answered once, no score lost");

    // Each room is exactly what 1.0.0 makes of its pre-swap checkpoint and every move since, the bad
    // build's era included: replayed offline, the same snapshot bytes.
    for room in ["jsbad-0", "jsbad-1"] {
        let dump = server.room_manager().dump("arena", room).await.expect("the room is open");
        assert_eq!((dump.version.as_str(), dump.base.version()), ("1.0.0", "1.0.0"), "{room}");
        assert!(dump.journal.entries().filter(|e| matches!(e, Entry::Msg(..))).count() > 10, "{room}: the moves since the swap");
        let plugin = server.deployer().loaded("arena", "1.0.0").expect("1.0.0 is loaded");
        let env = warden::runtime::InstanceEnv::standalone(room, dump.seed);
        let mut replayed = journal::replay(&plugin, &env, 20, &dump.base, &dump.journal, &[]).unwrap();
        assert!(replayed.skipped.is_empty());
        assert_eq!(Some(replayed.instance.snapshot().unwrap()), dump.state, "{room} is exactly 1.0.0's result");
    }
    server.shutdown().await;
}
