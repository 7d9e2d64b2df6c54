//! Threshold rules on a real server with real WebSocket players: an economy rule kicks the player who
//! gains too fast and no one else, counted in `/metrics` and listed in the alerts; rules replaced at
//! runtime through the admin API switch a feature off, refuse a second join and close the fourth
//! connection from one address.

mod common;

use chat::{ChatIn, ChatOut};
use common::scrape::Scrape;
use common::server::*;
use gold::{GoldIn, GoldOut};
use warden::net::client;
use warden::net::envelope::{ClientEnvelope, ErrorCode, Format, ServerEnvelope};
use warden::rules::{Action, Per, Rule};
use warden::server::Server;

/// A plugin directory with `gold` and `chat`.
fn plugins() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["gold", "chat"] {
        std::fs::copy(warden_tests::wasm(name), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

async fn server(plugins: &std::path::Path, rules: &str) -> Server {
    let dir = format!("plugin_dir={:?}", plugins.display().to_string());
    start(&[&dir, rules]).await
}

/// The next envelope that is not a game message.
async fn next_non_msg(p: &mut Player) -> ServerEnvelope<bytes::Bytes> {
    loop {
        match p.rx.envelope(WAIT).await.unwrap() {
            ServerEnvelope::Msg { .. } => continue,
            other => return other,
        }
    }
}

fn rule(name: &str, figure: &str, per: Per, limit: f64, action: Action) -> Rule {
    Rule { name: name.into(), figure: figure.into(), per, game: None, window_ms: 60_000, limit, action, feature: None, reason: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gold_rule_kicks_the_player_who_gains_too_fast_and_no_one_else() {
    let dir = plugins();
    let rules = r#"rules=[{name="gold-farming", figure="metric:gold_gained", per="player", game="gold", window_ms=60000, limit=100, action="kick", reason="gold gained too fast"}]"#;
    let server = server(dir.path(), rules).await;
    let endpoint = ws(&server, Format::MsgPack);
    let mut a = player(&endpoint, "gold", "g1").await;
    let mut b = player(&endpoint, "gold", "g1").await;
    for amount in [30, 30, 30] {
        b.msg(&GoldIn::Earn { amount }).await;
        assert!(matches!(b.next_msg::<GoldOut>(|_| false).await, GoldOut::Purse { .. }));
    }
    a.msg(&GoldIn::Earn { amount: 60 }).await;
    assert_eq!(a.next_msg::<GoldOut>(|_| false).await, GoldOut::Purse { gold: 60 });
    a.msg(&GoldIn::Earn { amount: 60 }).await;
    assert_eq!(a.next_msg::<GoldOut>(|_| false).await, GoldOut::Purse { gold: 120 });
    match next_non_msg(&mut a).await {
        ServerEnvelope::Kicked { reason } => assert_eq!(reason, "gold gained too fast"),
        other => panic!("a should be kicked: {other:?}"),
    }
    // b, at 90, plays on.
    b.msg(&GoldIn::Earn { amount: 5 }).await;
    assert_eq!(b.next_msg::<GoldOut>(|_| false).await, GoldOut::Purse { gold: 95 });

    let alerts = server.admin_client().alerts().await.unwrap();
    assert_eq!(alerts.len(), 1, "one firing, for a only: {alerts:?}");
    assert_eq!((alerts[0].player.as_deref(), alerts[0].value, alerts[0].limit), (Some(a.id.as_str()), 120.0, 100.0));
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get("warden_rule_firings_total", &[("rule", "gold-farming"), ("action", "kick")]), Some(1.0));
    assert_eq!(scrape.get("warden_rules", &[]), Some(1.0));
    // The alert's audit entry is written by the alerts task, after the kick: wait for it (a loaded
    // machine may take a while), do not race it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let audit = server.store().audit_log(50).await.unwrap();
        if audit.iter().any(|e| e.actor == "rules" && e.action == "alert" && e.detail.contains("gold-farming")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the alert's audit entry within 30 s: {audit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_set_at_runtime_switch_a_feature_off_refuse_a_join_and_close_a_connection() {
    let dir = plugins();
    let server = server(dir.path(), "plugins.chat.features=[\"chat\"]").await;
    let client = server.admin_client();
    let endpoint = ws(&server, Format::MsgPack);

    // More than 2 lines said in the game within a minute: chat goes off, by the rule, audited.
    let mut flood = rule("chat-flood", "messages:say", Per::Game, 2.0, Action::Switch);
    flood.feature = Some("chat".into());
    flood.game = Some("chat".into());
    let message = client.set_rules(&[flood]).await.unwrap().message;
    assert!(message.contains("1 rule(s) in force: chat-flood"), "{message}");
    let mut p = player(&endpoint, "chat", "c1").await;
    for i in 0..3 {
        p.msg(&ChatIn::Say { text: format!("line {i}") }).await;
        assert!(matches!(p.next_msg::<ChatOut>(|m| matches!(m, ChatOut::History { .. })).await, ChatOut::Line(_)));
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = client.status().await.unwrap();
        let chat = status.plugins.iter().find(|s| s.name == "chat").unwrap();
        if chat.switches.iter().any(|s| s.switch == "feature:chat" && !s.on) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the rule never switched chat off");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let audit = server.store().audit_log(50).await.unwrap();
    assert!(audit.iter().any(|e| e.actor == "rule:chat-flood" && e.action == "switch"), "{audit:?}");
    p.msg(&ChatIn::Say { text: "muted".into() }).await;
    assert!(matches!(p.next_msg::<ChatOut>(|_| false).await, ChatOut::Refused { .. }));

    // One join per player per minute: the same player's second join is refused, not fatally.
    let mut joins = rule("rejoin", "joins", Per::Player, 1.0, Action::Kick);
    joins.reason = Some("one join a minute".into());
    client.set_rules(&[joins]).await.unwrap();
    let mut q = player(&endpoint, "chat", "c2").await;
    q.tx.send(&ClientEnvelope::Leave).await.unwrap();
    q.tx.send(&ClientEnvelope::Join { game: "chat".into(), room: "c3".into() }).await.unwrap();
    match next_non_msg(&mut q).await {
        ServerEnvelope::Error { code: ErrorCode::Kicked, message, fatal: false } => assert_eq!(message, "one join a minute"),
        other => panic!("the second join should be refused: {other:?}"),
    }

    // Three connections a minute from one address: the fourth is closed.
    let mut conns = rule("conn-flood", "connections", Per::Ip, 3.0, Action::Kick);
    conns.reason = Some("too many connections from your address".into());
    client.set_rules(&[conns]).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        let (mut tx, mut rx) = client::connect(&endpoint).await.unwrap();
        tx.send(&ClientEnvelope::Hello { token: None }).await.unwrap();
        assert!(matches!(rx.envelope(WAIT).await.unwrap(), ServerEnvelope::Welcome { .. }));
        open.push((tx, rx));
    }
    let (_tx, mut rx) = client::connect(&endpoint).await.unwrap();
    let (last, _) = until_closed(&mut rx).await;
    match last {
        Some(ServerEnvelope::Error { code: ErrorCode::Kicked, message, fatal: true }) => assert!(message.contains("too many connections")),
        other => panic!("the fourth connection should be closed by the rule: {other:?}"),
    }
    let fired = client.rules().await.unwrap().fired;
    assert!(fired.iter().any(|(r, a, n)| r == "conn-flood" && *a == Action::Kick && *n == 1), "{fired:?}");

    // A bad rule is refused with the reason and the fix, and the rules in force stay.
    let bad = rule("bad", "gold", Per::Player, 1.0, Action::Log);
    let err = client.set_rules(&[bad]).await.unwrap_err().to_string();
    assert!(err.contains("rule \"bad\"") && err.contains("metric:NAME"), "{err}");
    assert_eq!(client.rules().await.unwrap().rules[0].name, "conn-flood");
    server.shutdown().await;
}
