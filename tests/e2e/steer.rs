//! Steering a real `warden serve` from the command line: `warden log` changes what the running server
//! logs (read from its stderr), by itself back after `--for`, audited; `warden switch` flips a feature
//! and closes joins, shown by `warden status`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use warden::net::client::{self, Endpoint};
use warden::net::envelope::{ClientEnvelope, Format, ServerEnvelope};
use warden_tests::{Serve, warden_bin};

const WAIT: Duration = Duration::from_secs(60);

fn warden(args: &[&str], dir: &Path) -> Output {
    Command::new(warden_bin()).args(args).current_dir(dir).output().expect("warden runs")
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `warden ARGS` against the server at `admin` whose data directory `data` (a `--set`) names.
fn against(admin: &str, data: &str, args: &[&str], dir: &Path) -> Output {
    let mut all = args.to_vec();
    all.extend(["--admin", admin, "--set", data]);
    warden(&all, dir)
}

/// Says hello as a guest and waits for the welcome: the server logs `hello` at debug before it answers.
fn hello(ws: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (mut tx, mut rx) = client::connect(&Endpoint::Ws(ws.to_string(), Format::MsgPack)).await.unwrap();
        tx.send(&ClientEnvelope::Hello { token: None }).await.unwrap();
        assert!(matches!(rx.envelope(WAIT).await.unwrap(), ServerEnvelope::Welcome { .. }));
        tx.close().await;
    });
}

/// Debug `hello` lines in the server's log so far.
fn hellos(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap().lines().filter(|l| l.contains("DEBUG") && l.contains("hello")).count()
}

#[test]
fn warden_log_changes_what_a_running_server_logs_and_a_timed_change_goes_back_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("server.log");
    let serve = Serve::start_logging_to(d, &["chat"], &[], &log);
    let (admin, data) = (serve.admin.to_string(), format!("data_dir={:?}", d.display().to_string()));
    let cli = |args: &[&str]| against(&admin, &data, args, d);

    assert_eq!(ok(cli(&["log"]), "warden log").trim(), "log filter: warn");
    hello(&serve.ws);
    assert_eq!(hellos(&log), 0, "warn does not log a hello");

    let out = ok(cli(&["log", "warden=debug"]), "warden log warden=debug");
    assert!(out.contains("warn -> warden=debug"), "{out}");
    hello(&serve.ws);
    assert_eq!(hellos(&log), 1, "debug logs the hello:\n{}", std::fs::read_to_string(&log).unwrap());

    ok(cli(&["log", "warn"]), "warden log warn");
    hello(&serve.ws);
    assert_eq!(hellos(&log), 1, "back at warn, nothing more");

    // A timed change: debug for a second, then back to warn by itself.
    let out = ok(cli(&["log", "warden=debug", "--for", "1s"]), "warden log --for");
    assert!(out.contains("for 1 s, then back to warn"), "{out}");
    let status = ok(cli(&["status"]), "warden status");
    assert!(status.contains("log filter: warden=debug (back to warn at"), "{status}");
    let deadline = Instant::now() + WAIT;
    while ok(cli(&["log"]), "warden log").trim() != "log filter: warn" {
        assert!(Instant::now() < deadline, "the timed change never went back");
        std::thread::sleep(Duration::from_millis(100));
    }
    hello(&serve.ws);
    assert_eq!(hellos(&log), 1, "the timed change ended");

    let err = String::from_utf8_lossy(&cli(&["log", "warden=loud"]).stderr).into_owned();
    assert!(err.contains("not a log filter") && err.contains("warden=debug"), "{err}");

    // Every change is audited: three by the operator, one by the timer.
    let audit = ok(warden(&["audit", "--set", &data, "--json"], d), "warden audit");
    let entries: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let logs: Vec<_> = entries.iter().filter(|e| e["action"] == "log").collect();
    assert_eq!(logs.iter().filter(|e| e["actor"] == "admin").count(), 3, "{audit}");
    assert!(logs.iter().any(|e| e["actor"] == "log-timer" && e["detail"].as_str().unwrap().contains("warden=debug -> warn")), "{audit}");
    drop(serve);
}

#[test]
fn warden_switch_flips_a_feature_and_closes_joins_and_status_shows_both() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let serve = Serve::start(d, &["chat"], &["--set", "plugins.chat.features=[\"chat\"]"]);
    let (admin, data) = (serve.admin.to_string(), format!("data_dir={:?}", d.display().to_string()));
    let cli = |args: &[&str]| against(&admin, &data, args, d);
    let out = ok(cli(&["switch", "chat", "chat", "off"]), "warden switch chat chat off");
    assert!(out.contains("feature chat: on -> off"), "{out}");
    let out = ok(cli(&["switch", "chat", "--joins", "off"]), "warden switch --joins off");
    assert!(out.contains("joins: on -> off"), "{out}");
    let status = ok(cli(&["status"]), "warden status");
    assert!(status.contains("switches: feature:chat off (default on), joins off (default on)"), "{status}");
    let err = String::from_utf8_lossy(&cli(&["switch", "chat"]).stderr).into_owned();
    assert!(err.contains("FEATURE on|off") && err.contains("--joins"), "{err}");
    drop(serve);
}
