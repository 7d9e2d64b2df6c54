//! Steering a live server: runtime switches on a real server with real WebSocket players and real
//! SQLite. A feature switched off reaches rooms at their next tick (journaled: a room's dump replays to
//! the live bytes across a switch), is audited, shown in the status and `/metrics`, and kept across a
//! restart; closing a game to joins refuses new players and keeps the ones in rooms playing.

mod common;

use chat::{ChatIn, ChatOut};
use common::scrape::Scrape;
use common::server::*;
use warden::admin::SwitchRequest;
use warden::net::envelope::{ClientEnvelope, ErrorCode, Format, ServerEnvelope};
use warden::server::Server;

async fn switch(server: &Server, plugin: &str, switch: &str, on: bool) -> anyhow::Result<String> {
    let req = SwitchRequest { switch: switch.into(), on };
    Ok(server.admin_client().action(plugin, "switch", &req).await?.message)
}

fn say(text: &str) -> ChatIn {
    ChatIn::Say { text: text.into() }
}

/// The next chat message that is not the history a joiner gets.
async fn next(p: &mut Player) -> ChatOut {
    p.next_msg::<ChatOut>(|m| matches!(m, ChatOut::History { .. })).await
}

async fn start_on(db: &std::path::Path, extra: &[&str]) -> Server {
    let url = format!("storage.url={:?}", format!("sqlite://{}", db.join("warden.db").display()));
    let mut sets = vec![url.as_str()];
    sets.extend_from_slice(extra);
    start(&sets).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_chat_off_mutes_it_at_the_next_tick_is_audited_and_survives_a_restart() {
    let db = tempfile::tempdir().unwrap();
    let server = start_on(db.path(), &[]).await;
    let endpoint = ws(&server, Format::MsgPack);
    let mut a = player(&endpoint, "chat", "s1").await;
    let mut b = player(&endpoint, "chat", "s1").await;
    a.msg(&say("hello")).await;
    assert!(matches!(next(&mut b).await, ChatOut::Line(l) if l.text == "hello"));
    assert!(matches!(next(&mut a).await, ChatOut::Line(l) if l.text == "hello"));

    let message = switch(&server, "chat", "feature:chat", false).await.unwrap();
    assert!(message.contains("feature chat: on -> off") && message.contains("next tick"), "{message}");
    // Any input that reaches the room after the switch returned is handled at a later tick's start,
    // where the room takes the change: the next line is refused, the connections stay.
    a.msg(&say("can you hear me?")).await;
    match next(&mut a).await {
        ChatOut::Refused { reason } => assert!(reason.contains("switched off"), "{reason}"),
        other => panic!("chat should be off: {other:?}"),
    }
    a.msg(&ChatIn::Nick { name: "Ann".into() }).await;
    // b's next message is the rename: the muted line never reached it.
    assert!(matches!(next(&mut b).await, ChatOut::Renamed { nick, .. } if nick == "Ann"));

    // Audited with the actor and both values; shown in the status and in /metrics; a repeat is a no-op.
    let audit = server.store().audit_log(20).await.unwrap();
    let entry = audit.iter().find(|e| e.action == "switch").expect("the switch is in the audit log");
    assert_eq!((entry.actor.as_str(), entry.plugin.as_deref(), entry.detail.as_str()), ("admin", Some("chat"), "feature chat: on -> off"));
    let status = server.admin_client().status().await.unwrap();
    let chat = status.plugins.iter().find(|p| p.name == "chat").unwrap();
    let s = chat.switches.iter().find(|s| s.switch == "feature:chat").unwrap();
    assert!(!s.on && s.default, "{s:?}");
    assert!(warden::commands::operate::render(&status).contains("feature:chat off (default on)"));
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get("warden_switch_on", &[("plugin", "chat"), ("switch", "feature:chat")]), Some(0.0));
    assert_eq!(scrape.get("warden_switch_on", &[("plugin", "chat"), ("switch", "joins")]), Some(1.0));
    assert!(switch(&server, "chat", "feature:chat", false).await.unwrap().contains("already off"));
    assert_eq!(server.store().audit_log(20).await.unwrap().iter().filter(|e| e.action == "switch").count(), 1);
    server.shutdown().await;

    // A restart on the same store keeps it off (warden.toml says on).
    let server = start_on(db.path(), &[]).await;
    let endpoint = ws(&server, Format::MsgPack);
    let mut c = player(&endpoint, "chat", "s2").await;
    c.msg(&say("still muted?")).await;
    assert!(matches!(next(&mut c).await, ChatOut::Refused { .. }), "chat stays off after a restart");
    let message = switch(&server, "chat", "feature:chat", true).await.unwrap();
    assert!(message.contains("off -> on"), "{message}");
    c.msg(&say("back")).await;
    assert!(matches!(next(&mut c).await, ChatOut::Line(l) if l.text == "back"));

    // Bad requests name the thing and the fix, and change nothing.
    let err = switch(&server, "chat", "feature:no spaces", false).await.unwrap_err().to_string();
    assert!(err.contains("not a switch") && err.contains("feature:NAME"), "{err}");
    let err = switch(&server, "nosuch", "joins", false).await.unwrap_err().to_string();
    assert!(err.contains("no plugin named \"nosuch\"") && err.contains("chat"), "{err}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_off_refuses_new_joins_with_a_clear_error_while_players_in_rooms_play_on() {
    let server = start(&[]).await;
    let endpoint = ws(&server, Format::MsgPack);
    let mut a = player(&endpoint, "chat", "m1").await;
    let message = switch(&server, "chat", "joins", false).await.unwrap();
    assert!(message.contains("joins: on -> off") && message.contains("joins_closed"), "{message}");

    let (mut tx, mut rx) = warden::net::client::connect(&endpoint).await.unwrap();
    tx.send(&ClientEnvelope::Hello { token: None }).await.unwrap();
    assert!(matches!(rx.envelope(WAIT).await.unwrap(), ServerEnvelope::Welcome { .. }));
    tx.send(&ClientEnvelope::Join { game: "chat".into(), room: "m1".into() }).await.unwrap();
    match rx.envelope(WAIT).await.unwrap() {
        ServerEnvelope::Error { code: ErrorCode::JoinsClosed, message, fatal: false } => {
            assert!(message.contains("closed to new joins for maintenance"), "{message}")
        }
        other => panic!("expected a joins_closed error, got {other:?}"),
    }
    // The player in the room plays on.
    a.msg(&say("still here")).await;
    assert!(matches!(next(&mut a).await, ChatOut::Line(l) if l.text == "still here"));

    // Not fatal: the refused connection joins once joins are open again.
    switch(&server, "chat", "joins", true).await.unwrap();
    tx.send(&ClientEnvelope::Join { game: "chat".into(), room: "m1".into() }).await.unwrap();
    match rx.envelope(WAIT).await.unwrap() {
        ServerEnvelope::Joined { players, .. } => assert_eq!(players, 2),
        other => panic!("expected joined, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_is_journaled_so_a_rooms_dump_replays_to_the_live_bytes_across_it() {
    // Checkpoints far apart: the journal holds every line and both switches.
    let server = start(&["rooms.checkpoint_every_ms=3600000"]).await;
    let endpoint = ws(&server, Format::MsgPack);
    let mut a = player(&endpoint, "chat", "j1").await;
    a.msg(&say("one")).await;
    assert!(matches!(next(&mut a).await, ChatOut::Line(_)));
    switch(&server, "chat", "feature:chat", false).await.unwrap();
    a.msg(&say("two")).await;
    assert!(matches!(next(&mut a).await, ChatOut::Refused { .. }));
    switch(&server, "chat", "feature:chat", true).await.unwrap();
    a.msg(&say("three")).await;
    assert!(matches!(next(&mut a).await, ChatOut::Line(l) if l.text == "three"));

    let dump = server.admin_client().room_dump("chat", "j1").await.unwrap();
    let switches: Vec<_> =
        dump.journal.iter().filter(|e| matches!(e, warden::room::dumpfile::DumpEntry::Features { .. })).cloned().collect();
    assert_eq!(switches.len(), 2, "both changes are journaled: {switches:?}");
    let live = dump.snapshot_bytes().unwrap().expect("the live room answered snapshot");
    let rt = warden::runtime::Runtime::new(warden::runtime::Limits::default(), None).unwrap();
    let plugin = rt.load(&warden_tests::wasm_bytes("chat")).unwrap();
    assert_eq!(dump.replay(&plugin).unwrap().snapshot, live, "the replay sees the switches the room saw");
    // Without the journaled switches a replay keeps chat on and takes the refused line in: other bytes.
    let mut blind = dump.clone();
    blind.journal.retain(|e| !matches!(e, warden::room::dumpfile::DumpEntry::Features { .. }));
    assert_ne!(blind.replay(&plugin).unwrap().snapshot, live, "the comparison can fail");
    server.shutdown().await;
}
