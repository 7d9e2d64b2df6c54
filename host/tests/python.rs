//! Python plugins end to end: `plugins/chat-py` (chat in Python, built from source with the Python SDK
//! and componentize-py by scripts/build-plugins) on a real server with real WebSocket players, signed
//! versions and the SQLite registry: played, hot-swapped with its state, and rolled back by the health
//! check from a bad build of it (built from source here) to end exactly as if that build never ran.
//! Also: the `[limits]` a Python component needs, and the rejection that names the key to raise.

mod common;

use common::deploy::*;
use common::server as srv;
use serde_json::{Value, json};
use std::time::Duration;
use warden::deploy::DeployEvent;
use warden::net::envelope::Format;
use warden::room::journal::{self, Entry};
use warden::runtime::{InstanceEnv, Limits, LoadError, Runtime};
use warden::storage::VersionState;

const SETS: &[&str] = &[
    "plugins.chat-py.features=[\"chat\"]",
    // Every line counts here, however fast the players talk.
    "plugins.chat-py.config.rate_lines=100000",
    "plugins.chat-py.config.history=100000",
    // Checkpoints only before swaps, so the room's journal covers everything since the pre-swap one.
    "rooms.checkpoint_every_ms=3600000",
    "rollout.probation_ms=600000",
];

/// The next chat message of `kind` (`history`, `line`, `renamed`, `refused`) `p` receives.
async fn next(p: &mut srv::Player, kind: &str) -> Value {
    p.next_msg(|m: &Value| m["type"] != kind).await
}

fn texts(history: &Value) -> Vec<String> {
    history["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("{}: {}", l["nick"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_in_python_is_played_swapped_with_its_history_and_rolled_back_from_a_bad_build() {
    let (_env, dir, server, mut events) = serving("chat-py", "chat-py", SETS).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let mut a = player(&endpoint, "chat-py", "lobby").await;
    assert_eq!(texts(&next(&mut a, "history").await), Vec::<String>::new());
    a.msg(&json!({"type": "nick", "name": "alice"})).await;
    assert_eq!(next(&mut a, "renamed").await["nick"], "alice");
    a.msg(&json!({"type": "say", "text": "one"})).await;
    assert_eq!(next(&mut a, "line").await["text"], "one");
    let mut b = player(&endpoint, "chat-py", "lobby").await;
    assert_eq!(texts(&next(&mut b, "history").await), ["alice: one"]);

    // A new version (the same build stamped 1.0.1) takes over the room with its state.
    drop_version(&dir, "chat-py", "chat-py", "1.0.1");
    deployed_within(&mut events, "1.0.1", BIG_COMPONENT).await;
    rooms_all_on(&server, "chat-py", "1.0.1").await;
    // Promoted, so that a bad version after it rolls back to it.
    server.deployer().advance("chat-py", "operator", "the test promotes it").await.unwrap();
    let mut c = player(&endpoint, "chat-py", "lobby").await;
    assert_eq!(texts(&next(&mut c, "history").await), ["alice: one"], "the history crossed the swap");
    b.msg(&json!({"type": "say", "text": "two"})).await;
    assert_eq!(next(&mut a, "line").await["text"], "two");

    // A bad build, made from source: every line is refused with an error (after it prints).
    let bad = warden_tests::python_variant("chat-py", |dir| {
        let path = dir.join("chat.py");
        let code = std::fs::read_to_string(&path).unwrap();
        let broken = code.replace(
            "        if not ctx.feature_enabled(\"chat\"):",
            "        print(f\"bad build: dropping {text!r}\")\n        raise ValueError(\"this build drops every line\")\n        if not ctx.feature_enabled(\"chat\"):",
        );
        assert_ne!(broken, code, "chat.py still has the line the bad build edits");
        std::fs::write(path, broken).unwrap();
    });
    drop_signed(&dir, "chat-py-1.0.2.wasm", &stamp_version(&bad, "1.0.2"), "chat-py", "1.0.2");
    deployed_within(&mut events, "1.0.2", BIG_COMPONENT).await;
    rooms_all_on(&server, "chat-py", "1.0.2").await;
    let mut said = 0;
    let rolled_back = loop {
        for p in [&mut a, &mut b, &mut c] {
            said += 1;
            p.msg(&json!({"type": "say", "text": format!("bad-era {said}")})).await;
        }
        let event = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                if let Ok(DeployEvent::RolledBack { bad, to, reason, .. }) = events.recv().await {
                    return (bad, to, reason);
                }
            }
        })
        .await;
        if let Ok(event) = event {
            break event;
        }
        assert!(said < 3_000, "no rollback after {said} failing lines");
    };
    let (bad, to, reason) = rolled_back;
    assert_eq!((bad.as_str(), to.as_str()), ("1.0.2", "1.0.1"), "{reason}");
    assert!(reason.contains("error rate"), "{reason}");
    rooms_all_on(&server, "chat-py", "1.0.1").await;
    // The players saw the bad build's errors as `error` envelopes, nothing of the host's insides.
    // A Python exception reaches the player as its type and message; its traceback goes to the log.
    let error = format!("{:?}", a.next_error().await);
    assert!(error.contains("ValueError: this build drops every line"), "{error}");
    assert!(!error.contains("chat.py") && !error.contains("Traceback") && !error.contains("/tmp"), "{error}");

    // The room is exactly what 1.0.1 makes of its pre-swap checkpoint and every line since, the bad
    // build's era included: replayed offline, the same snapshot bytes; a joiner sees those lines.
    let dump = server.room_manager().dump("chat-py", "lobby").await.expect("the room is open");
    assert_eq!((dump.version.as_str(), dump.base.version()), ("1.0.1", "1.0.1"));
    assert!(dump.journal.entries().filter(|e| matches!(e, Entry::Msg(..))).count() >= said, "the journal holds every line since the swap");
    let plugin = server.deployer().loaded("chat-py", "1.0.1").expect("1.0.1 is loaded");
    let mut replayed = journal::replay(&plugin, &InstanceEnv::standalone("lobby", dump.seed), 20, &dump.base, &dump.journal, &[]).unwrap();
    assert!(replayed.skipped.is_empty());
    assert_eq!(Some(replayed.instance.snapshot().unwrap()), dump.state, "the room is exactly 1.0.1's result");
    let mut d = player(&endpoint, "chat-py", "lobby").await;
    let history = texts(&next(&mut d, "history").await);
    assert_eq!(history[..2], ["alice: one".to_string(), format!("{}: two", b.id)]);
    assert_eq!(history.len(), 2 + said, "every line said while 1.0.2 ran is in the history: {history:?}");

    let versions = server.store().versions("chat-py").await.unwrap();
    assert_eq!(versions.iter().find(|v| v.version == "1.0.2").unwrap().state, VersionState::Bad);
    server.shutdown().await;
}

#[test]
fn a_python_component_over_the_core_instance_limit_is_refused_naming_the_key_that_raises_it() {
    let bytes = warden_tests::wasm_bytes("chat-py");
    let tight = Runtime::new(Limits { core_instances_per_component: 8, max_instances: 2, ..Limits::default() }, None).unwrap();
    let err = tight.load(&bytes).err().expect("8 core instances are too few for CPython's component");
    assert!(matches!(err, LoadError::OverLimit { key: Some("limits.core_instances_per_component"), .. }), "{err:?}");
    let text = err.to_string();
    println!("{text}");
    assert!(text.contains("raise `limits.core_instances_per_component`") && text.contains("at least 14"), "{text}");
    assert!(!text.contains("truncated"), "not blamed on the file: {text}");

    // The defaults take it, and instantiation is not held to a call's budget: with calls held to 1 ms,
    // an instance (megabytes of CPython's memory copied in) still starts, and a call runs.
    let limits = Limits { call_deadline_ms: 1, epoch_tick_us: 100, max_instances: 2, ..Limits::default() };
    let plugin = Runtime::new(limits, None).unwrap().load(&bytes).expect("the default limits take a Python component");
    let mut instance = plugin.instantiate(InstanceEnv::standalone("r", 1)).expect("instantiation is judged by its own budget");
    let room = warden::runtime::RoomInfo { id: "r".into(), game: "chat-py".into(), seed: 1, tick_hz: 20, max_players: 4 };
    instance.init(&room, &[]).expect("init");
}
