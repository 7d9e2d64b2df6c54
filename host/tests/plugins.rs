//! Every export of the example plugins, called through `PluginInstance` on the real components, and
//! snapshot -> restore into a fresh instance.

mod common;

use arena::{Arena, ArenaIn, ArenaOut, Dir, Pos};
use chat::{ChatConfig, ChatIn, ChatOut};
use common::*;
use std::sync::Arc;
use warden::runtime::{CallError, Features, InstanceEnv, MemorySaves, Recipient, SavePriority};

fn chat_env() -> InstanceEnv {
    InstanceEnv { features: Features::on(&["chat"]), ..InstanceEnv::standalone("room-1", 42) }
}

#[test]
fn chat_every_export() {
    let env = chat_env();
    let mut chat = fresh("chat", &env);
    chat.init(&room("chat"), &mp(&ChatConfig { history: 2, ..ChatConfig::default() })).unwrap();

    chat.on_join("ann").unwrap();
    chat.on_join("bob").unwrap();
    let out = chat.host_mut().take_outbox();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].to, Recipient::Player("ann".into()));
    assert_eq!(un::<ChatOut>(&out[0].payload), ChatOut::History { lines: vec![] });

    chat.on_message("ann", &mp(&ChatIn::Nick { name: "Ann".into() })).unwrap();
    for text in ["one", "two", "three"] {
        chat.on_message("ann", &mp(&ChatIn::Say { text: text.into() })).unwrap();
    }
    let out = chat.host_mut().take_outbox();
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|o| o.to == Recipient::All));
    let ChatOut::Line(line) = un::<ChatOut>(&out[3].payload) else { panic!("a line") };
    assert_eq!((line.nick.as_str(), line.text.as_str()), ("Ann", "three"));

    let err = chat.on_message("bob", b"\xc1 not msgpack").unwrap_err();
    assert!(matches!(&err, CallError::Gameplay { export: "on-message", message } if message.contains("message from bob")), "{err}");
    assert!(!chat.is_poisoned(), "a gameplay error leaves the instance usable");

    chat.on_tick(1, 50).unwrap();
    chat.on_timer("unused").unwrap();
    chat.on_leave("bob").unwrap();

    // The configured history of 2 reaches a joiner of a restored instance.
    let snapshot = chat.snapshot().unwrap();
    let mut copy = fresh("chat", &env);
    copy.restore(&snapshot, "0.2.0").unwrap();
    assert_eq!(copy.snapshot().unwrap(), snapshot, "restore gives back equal state");
    copy.on_join("cat").unwrap();
    let out = copy.host_mut().take_outbox();
    let ChatOut::History { lines } = un::<ChatOut>(&out[0].payload) else { panic!("history") };
    assert_eq!(lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["two", "three"]);
}

#[test]
fn chat_feature_switch_is_read_live() {
    let env = chat_env();
    let mut chat = started("chat", &env);
    chat.on_join("ann").unwrap();
    env.features.set("chat", false);
    chat.on_message("ann", &mp(&ChatIn::Say { text: "hi".into() })).unwrap();
    let out = chat.host_mut().take_outbox();
    assert!(matches!(un::<ChatOut>(&out[1].payload), ChatOut::Refused { reason } if reason.contains("switched off")));
}

fn arena_state(inst: &mut warden::runtime::PluginInstance) -> Arena {
    un(&inst.snapshot().unwrap())
}

#[test]
fn arena_every_export_and_saves() {
    let saves = Arc::new(MemorySaves::default());
    let env = InstanceEnv { saves: saves.clone(), ..InstanceEnv::standalone("room-1", 42) };
    let mut arena = started("arena", &env);
    arena.on_join("p").unwrap();
    let out = arena.host_mut().take_outbox();
    assert!(matches!(un::<ArenaOut>(&out[0].payload), ArenaOut::Welcome { total: 0, width: 16, .. }));

    for tick in 1..=20 {
        env.clock.set(tick, tick * 50);
        arena.on_tick(tick, 50).unwrap();
    }
    let state = arena_state(&mut arena);
    assert_eq!(state.coins.len(), 1, "a coin spawns on tick 20");
    let (coin, mut pos) = (state.coins[0], state.players["p"].pos);

    // Walk onto the coin.
    let mut seq = 0;
    let mut picked = false;
    while let Some(dir) = pos.dir_towards(coin) {
        seq += 1;
        arena.on_message("p", &mp(&ArenaIn::Move { dir, seq })).unwrap();
        let out = arena.host_mut().take_outbox();
        let ArenaOut::Moved { seq: s, pos: p, picked: got, .. } = un::<ArenaOut>(&out.last().unwrap().payload) else { panic!("moved") };
        assert_eq!(s, seq);
        (pos, picked) = (p, got);
    }
    assert!(picked, "stepping on the coin picks it");
    let (save, priority) = saves.get("arena", "p").expect("the score was saved");
    assert_eq!(un::<arena::Save>(&save), arena::Save { total: 1 });
    assert_eq!(priority, SavePriority::Normal);

    arena.on_timer("t").unwrap();
    arena.on_leave("p").unwrap();
    assert!(arena_state(&mut arena).players.is_empty());

    // A later room reads the lifetime total back through load-save.
    let mut later = started("arena", &env);
    later.on_join("p").unwrap();
    assert!(matches!(un::<ArenaOut>(&later.host_mut().take_outbox()[0].payload), ArenaOut::Welcome { total: 1, .. }));
}

#[test]
fn arena_snapshot_restore_carries_the_whole_room() {
    let env = InstanceEnv::standalone("room-1", 42);
    let mut arena = started("arena", &env);
    for p in ["a", "b", "c"] {
        arena.on_join(p).unwrap();
    }
    for tick in 1..=60 {
        arena.on_tick(tick, 50).unwrap();
    }
    arena.on_message("a", &mp(&ArenaIn::Move { dir: Dir::Up, seq: 1 })).unwrap();
    let snapshot = arena.snapshot().unwrap();

    // A fresh instance in a room whose random stream is at the same position.
    let env2 = InstanceEnv::standalone("room-1", 42);
    env2.rng.set_draws(env.rng.draws());
    let mut copy = fresh("arena", &env2);
    copy.restore(&snapshot, "0.2.0").unwrap();
    assert_eq!(copy.snapshot().unwrap(), snapshot);
    let restored: Arena = un(&snapshot);
    assert_eq!(restored.players.len(), 3);
    assert_eq!(restored.coins.len(), 3);

    // Both go on identically.
    for tick in 61..=120 {
        arena.on_tick(tick, 50).unwrap();
        copy.on_tick(tick, 50).unwrap();
    }
    assert_eq!(arena_state(&mut copy), arena_state(&mut arena));
}

#[test]
fn wasm_and_the_native_harness_agree_on_the_same_seed() {
    // The host's random stream and the SDK harness's are the same function.
    for (seed, draw) in [(0, 0), (42, 7), (u64::MAX, 123_456)] {
        assert_eq!(warden::runtime::random_at(seed, draw), warden_sdk::testing::random_at(seed, draw));
    }
    // So the same game, run as wasm and natively from the same seed and inputs, ends in the same state.
    let env = InstanceEnv::standalone("room-1", 42);
    let mut wasm = started("arena", &env);
    let mut native = warden_sdk::testing::Harness::<Arena>::new();
    wasm.on_join("p").unwrap();
    native.join("p").unwrap();
    for tick in 1..=100 {
        env.clock.set(tick, tick * 50);
        wasm.on_tick(tick, 50).unwrap();
        native.tick().unwrap();
    }
    let wasm_state = arena_state(&mut wasm);
    assert_eq!(&wasm_state, native.game());
    assert_eq!(wasm_state.coins.len(), 5);
    assert!(wasm_state.coins.iter().all(|c: &Pos| c.x < 16 && c.y < 16));
}

#[test]
fn restoring_a_snapshot_of_another_version_goes_through_migrate() {
    // The SDK's default migrate (echo has none of its own) decodes a compatible shape.
    let env = InstanceEnv::standalone("room-1", 42);
    let mut echo = started("echo", &env);
    echo.on_join("a").unwrap();
    echo.on_message("a", &mp(&serde_bytes::ByteBuf::from(vec![1u8, 2, 3]))).unwrap();
    let snapshot = echo.snapshot().unwrap();
    let mut next = fresh("echo", &env);
    next.restore(&snapshot, "0.0.9").unwrap();
    assert_eq!(next.snapshot().unwrap(), snapshot, "the default migrate decodes a compatible shape");
    let mut bad = fresh("echo", &env);
    let err = bad.restore(b"\x93\x01\x02\x03", "0.0.9").unwrap_err();
    assert!(matches!(&err, CallError::Gameplay { export: "restore", message } if message.contains("implement Game::migrate")), "{err}");

    // arena's own migrate, in wasm: a state in format 1 (arena 0.1) comes back in format 2.
    let mut players = std::collections::BTreeMap::new();
    players.insert("a".to_string(), arena::v1::Player { pos: Pos { x: 2, y: 3 }, score: 4, total: 9 });
    let v1 = arena::v1::Arena { config: arena::ArenaConfig::default(), players, coins: vec![Pos { x: 5, y: 5 }] };
    let mut v2 = fresh("arena", &env);
    v2.restore(&mp(&v1), "0.1.0").unwrap();
    let state = arena_state(&mut v2);
    assert_eq!(state.players["a"], arena::Player { pos: Pos { x: 2, y: 3 }, score: 4, lifetime: 9, moves: 0, last_seq: 0 });
    assert_eq!(state.coins, [Pos { x: 5, y: 5 }]);
}
