//! `warden serve`, `warden bots` and `warden token` as processes: the real binary, real sockets.

use std::process::Command;
use std::time::Duration;
use warden::net::client::{self, Endpoint, Received};
use warden::net::envelope::{ClientEnvelope, ErrorCode, Format, ServerEnvelope};
use warden_tests::{Serve, warden_bin};

/// An upper bound for failing, generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(60);

/// Every envelope until the connection closes.
async fn rest(rx: &mut client::ClientRx) -> Vec<ServerEnvelope<bytes::Bytes>> {
    let mut all = Vec::new();
    loop {
        match rx.recv_within(WAIT).await.expect("the connection closes") {
            Received::Envelope(env) => all.push(env),
            Received::Closed(_) => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_players_connected_exits_0_and_tells_every_player() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(dir.path(), &["arena", "chat"], &[]);
    let ws = Endpoint::Ws(serve.ws.clone(), Format::MsgPack);
    let (mut a_tx, mut a_rx) = client::connect(&ws).await.unwrap();
    client::handshake(&mut a_tx, &mut a_rx, None, "arena", "r").await.unwrap();
    let (mut b_tx, mut b_rx) = client::connect(&Endpoint::Tcp(serve.tcp)).await.unwrap();
    client::handshake(&mut b_tx, &mut b_rx, None, "chat", "r").await.unwrap();
    let (mut c_tx, mut c_rx) = client::connect(&ws).await.unwrap();
    c_tx.send(&ClientEnvelope::Hello { token: None }).await.unwrap();
    assert!(matches!(c_rx.envelope(WAIT).await.unwrap(), ServerEnvelope::Welcome { .. }));

    let status = tokio::task::spawn_blocking(move || {
        let status = serve.terminate();
        drop(serve);
        status
    });
    for rx in [&mut a_rx, &mut b_rx] {
        let got = rest(rx).await;
        assert!(got.iter().any(|e| matches!(e, ServerEnvelope::Kicked { reason } if reason.contains("shutting down"))), "{got:?}");
        assert!(matches!(got.last(), Some(ServerEnvelope::Error { code: ErrorCode::ShuttingDown, fatal: true, .. })), "{got:?}");
    }
    let got = rest(&mut c_rx).await;
    assert!(matches!(got.last(), Some(ServerEnvelope::Error { code: ErrorCode::ShuttingDown, fatal: true, .. })), "{got:?}");
    assert!(status.await.unwrap().success(), "warden serve exits 0 after SIGTERM");
}

fn bots(args: &[&str]) -> std::process::Output {
    Command::new(warden_bin()).arg("bots").args(args).output().unwrap()
}

#[test]
fn bots_play_over_websocket_and_tcp_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["arena", "chat"], &[]);
    let tcp = serve.tcp.to_string();
    for target in [vec!["--url", serve.ws.as_str()], vec!["--url", serve.ws.as_str(), "--json"], vec!["--tcp", tcp.as_str()]] {
        let mut args = target.clone();
        args.extend(["--players", "12", "--rate", "10", "--duration", "2", "--report-json"]);
        let out = bots(&args);
        assert!(out.status.success(), "{target:?}: {}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["connected"], 12);
        assert_eq!(report["lost"], 0);
        assert_eq!(report["duplicated"], 0);
        assert!(report["sent"].as_u64().unwrap() >= 12 * 15, "{report}");
        assert_eq!(report["sent"], report["answered"]);
    }
}

#[test]
fn bots_fail_when_the_server_is_not_there() {
    let out = bots(&["--url", "ws://127.0.0.1:9/ws", "--players", "2", "--duration", "1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 failed connections"), "{stderr}");
}

#[test]
fn print_config_shows_file_env_and_flag_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("warden.toml"), "[rooms]\ntick_hz = 30\nmax_players = 6\n").unwrap();
    let out = Command::new(warden_bin())
        .current_dir(dir.path())
        .args(["serve", "--print-config", "--set", "rooms.max_players=5"])
        .env("WARDEN_NET__MSGS_PER_SEC", "99")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(shown.contains("tick_hz = 30"), "from the file: {shown}");
    assert!(shown.contains("max_players = 5"), "the flag wins: {shown}");
    assert!(shown.contains("msgs_per_sec = 99"), "from the environment: {shown}");
}

#[test]
fn token_mints_what_the_server_accepts_and_needs_a_secret() {
    let out =
        Command::new(warden_bin()).args(["token", "--player", "ann"]).env("WARDEN_AUTH__SECRET", "a-secret-of-16-chars").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(warden::net::auth::verify(b"a-secret-of-16-chars", token.trim(), warden::net::auth::unix_now()), Ok("ann".into()));
    let out = Command::new(warden_bin()).args(["token", "--player", "ann"]).env_remove("WARDEN_AUTH__SECRET").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARDEN_AUTH__SECRET"));
}

#[test]
fn a_server_whose_stdout_was_closed_still_shuts_down_cleanly() {
    // What `scripts/demo` does on Ctrl-C: the `tee` reading the server's stdout is gone before the
    // server prints its last line. That line must not panic the server (exit 101).
    let dir = tempfile::tempdir().unwrap();
    let mut serve = warden_tests::Serve::start(dir.path(), &["arena"], &[]);
    drop(serve.child.stdout.take());
    let status = serve.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn bots_help_says_where_player_tokens_come_from() {
    let out = Command::new(warden_bin()).args(["bots", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("auth.secret") && help.contains("WARDEN_AUTH__SECRET") && help.contains("--dev"), "{help}");
}

#[test]
fn the_python_client_in_docs_plays_hello() {
    // docs/play.py: the way to play without websocat (Debian 12 has none), standard library only.
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &["hello"], &[]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/play.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--url", &serve.ws, "--game", "hello", "--room", "py-1", "--send", "Ann", "--send", "Bob", "--count", "2", "--wait", "60"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs (the machine has Python 3.11)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(r#""type": "joined""#), "{stdout}");
    assert!(stdout.contains("hello, Ann (greeting #1)") && stdout.contains("hello, Bob (greeting #2)"), "{stdout}");
}
