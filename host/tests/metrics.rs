//! `/metrics` end to end: a real server, real WebSocket players and bots, the admin endpoint over HTTP
//! with its token, and the exposition parsed by a Prometheus text parser (`prometheus-parse`).

mod common;

use common::deploy::*;
use common::scrape::Scrape;
use common::server::{self as srv, WAIT};
use std::time::{Duration, Instant};
use warden::admin::Client;
use warden::commands::bots::{self, BotGame, BotsArgs};
use warden::deploy::DeployEvent;
use warden::net::envelope::Format;
use warden::server::Server;

/// Scrapes until `f` gives `Some`.
async fn until<T>(server: &Server, what: &str, mut f: impl FnMut(&Scrape) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = Scrape::of(server).await;
        if let Some(v) = f(&scrape) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not seen in /metrics within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const ON_MESSAGE_OK: [(&str, &str); 4] = [("plugin", "arena"), ("version", "1.0.0"), ("export", "on-message"), ("outcome", "ok")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_traffic_moves_real_numbers_and_a_rollback_shows_its_reason_and_the_old_version_active() {
    let (_env, dir, server, mut events) = serving("arena", "arena", &["rollout.probation_ms=600000"]).await;
    let endpoint = srv::ws(&server, Format::MsgPack);
    let secret = Some(b"test-secret-0123456789".to_vec());

    // Bots: a known number of moves, every one answered.
    let report = bots::drive(&BotsArgs::new(BotGame::Arena, 8, 4, 10.0, 2.0, "count"), endpoint.clone(), secret.clone()).await.unwrap();
    assert_eq!((report.connected, report.lost), (8, 0), "{report:?}");
    assert!(report.sent > 50, "{report:?}");
    let n = report.sent as f64;
    // Counts are published once a tick, after its answers left: wait for the tick, then it is exact.
    let calls = until(&server, "the moves counted", |s| s.get("warden_guest_calls_total", &ON_MESSAGE_OK).filter(|v| *v >= n)).await;
    assert_eq!(calls, n, "one on-message call with outcome ok per move sent, no more");
    let scrape = Scrape::of(&server).await;
    for outcome in ["err", "trap", "deadline"] {
        let labels = [("plugin", "arena"), ("version", "1.0.0"), ("export", "on-message"), ("outcome", outcome)];
        assert_eq!(scrape.get("warden_guest_calls_total", &labels).unwrap_or(0.0), 0.0, "no {outcome}");
    }
    let joins = [("plugin", "arena"), ("version", "1.0.0"), ("export", "on-join"), ("outcome", "ok")];
    assert_eq!(scrape.get("warden_guest_calls_total", &joins), Some(8.0), "one on-join per bot");
    assert!(scrape.get("warden_messages_received_total", &[("transport", "ws")]).unwrap() >= n + 16.0, "moves, hellos and joins");
    assert!(scrape.get("warden_ticks_total", &[("plugin", "arena"), ("version", "1.0.0")]).unwrap() > 0.0);
    assert_eq!(scrape.get("warden_sessions_opened_total", &[("transport", "ws")]), Some(8.0));

    // Gauges: three players in two rooms.
    let _a = player(&endpoint, "arena", "g1").await;
    let _b = player(&endpoint, "arena", "g1").await;
    let _c = player(&endpoint, "arena", "g2").await;
    let arena = [("plugin", "arena")];
    until(&server, "three players in rooms", |s| s.get("warden_room_players", &arena).filter(|v| *v == 3.0)).await;
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get("warden_players_connected", &[]), Some(3.0));
    assert_eq!(scrape.get("warden_rooms", &[("plugin", "arena"), ("state", "playing")]), Some(2.0));
    assert_eq!(scrape.get("warden_version_rooms", &[("plugin", "arena"), ("version", "1.0.0")]), Some(2.0 + bot_rooms(&scrape)));
    assert!(scrape.get("warden_instance_memory_bytes", &[("plugin", "arena"), ("version", "1.0.0")]).unwrap() > 0.0);
    assert_eq!(
        scrape.get("warden_plugin_version_info", &[("plugin", "arena"), ("version", "1.0.0"), ("role", "active"), ("phase", "stable")]),
        Some(1.0)
    );

    // A bad version under load is rolled back by its error rate: the counter says why, the info gauge
    // shows the old version active again and the bad one nowhere.
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn({
        let (stop, endpoint) = (stop.clone(), endpoint.clone());
        async move { bots::drive_until(&BotsArgs::new(BotGame::Arena, 8, 4, 10.0, 600.0, "chaos"), endpoint, secret, stop).await }
    });
    drop_version(&dir, "arena-chaos", "arena", "1.0.1");
    deployed(&mut events, "1.0.1").await;
    let event = next_event(&mut events, Duration::from_secs(60), |e| matches!(e, DeployEvent::RolledBack { .. })).await;
    assert!(matches!(&event, DeployEvent::RolledBack { cause: "error_rate", .. }), "{event:?}");
    stop.cancel();
    load.await.unwrap().unwrap();
    let scrape = Scrape::of(&server).await;
    assert_eq!(scrape.get("warden_rollbacks_total", &[("plugin", "arena"), ("reason", "error_rate")]), Some(1.0));
    assert_eq!(
        scrape.get("warden_plugin_version_info", &[("plugin", "arena"), ("version", "1.0.0"), ("role", "active"), ("phase", "stable")]),
        Some(1.0)
    );
    let info = scrape.all("warden_plugin_version_info");
    assert!(info.iter().all(|s| s.labels.get("version") != Some("1.0.1")), "the bad version serves in no role: {info:?}");
    let errs = [("plugin", "arena"), ("version", "1.0.1"), ("export", "on-message"), ("outcome", "err")];
    assert!(scrape.get("warden_guest_calls_total", &errs).unwrap() > 0.0, "1.0.1's errors were counted against it");
    assert!(scrape.get("warden_health_window_error_ratio", &[("plugin", "arena"), ("version", "1.0.1")]).unwrap() > 0.05);
    assert_eq!(scrape.get("warden_health_max_error_ratio", &arena), Some(0.05));
    assert!(scrape.get("warden_room_rollbacks_total", &arena).unwrap() >= 1.0);
    server.shutdown().await;
}

/// Rooms the bots opened (they stay open in these servers' long empty grace).
fn bot_rooms(scrape: &Scrape) -> f64 {
    scrape.get("warden_rooms", &[("plugin", "arena"), ("state", "empty")]).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_ask_for_the_token_unless_made_public() {
    let (_env, _dir, server, _events) = serving("arena", "arena", &[]).await;
    let wrong = Client::new(server.admin_addr(), "not-the-token".into());
    let err = wrong.metrics().await.unwrap_err().to_string();
    assert!(err.contains("401") && err.contains("admin token"), "{err}");
    server.shutdown().await;

    let (_env, _dir, server, _events) = serving("arena", "arena", &["admin.metrics_public=true"]).await;
    let text = Client::new(server.admin_addr(), "not-the-token".into()).metrics().await.unwrap();
    assert!(text.contains("warden_tick_rate_hertz 20"), "{text}");
    let err = Client::new(server.admin_addr(), "not-the-token".into()).status().await.unwrap_err().to_string();
    assert!(err.contains("401"), "the other routes still ask for the token: {err}");
    server.shutdown().await;
}
