//! The operator's controls against a real `warden serve`: `warden status`, `pause`, `promote` and
//! `rollback` through the admin endpoint (token checked), each audited, and `warden crashes`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use warden::runtime::manifest;
use warden_tests::{Serve, warden_bin, wasm_bytes};

fn warden(args: &[&str], dir: &Path) -> Output {
    Command::new(warden_bin()).args(args).current_dir(dir).output().expect("warden runs")
}

fn stdout(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of_failure(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Puts `base` stamped as `version` into the plugin directory (dev mode: unsigned is accepted).
fn drop_version(dir: &Path, base: &str, version: &str) {
    let bytes = wasm_bytes(base);
    let mut m = manifest::read(&bytes).unwrap();
    m.version = version.into();
    let name = format!("arena-{version}.wasm");
    let temp = dir.join("plugins").join(format!(".{name}.tmp"));
    std::fs::write(&temp, manifest::stamp(&bytes, &m)).unwrap();
    std::fs::rename(&temp, dir.join("plugins").join(name)).unwrap();
}

/// Runs `warden status` until `pred` holds for its output.
fn status_until(args: &[&str], dir: &Path, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = stdout(&warden(args, dir), "warden status");
        if pred(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "warden status never showed what was expected:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_pause_promote_and_rollback_act_on_a_running_server_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let serve = Serve::start(d, &["arena"], &["--set", "rollout.probation_ms=600000", "--set", "deploy.settle_ms=100"]);
    let token = std::fs::read_to_string(d.join("admin.token")).expect("the server wrote its admin token");
    let admin = serve.admin.to_string();
    // The data directory tells the commands where the token is; the address comes from the flag.
    let data = format!("data_dir={:?}", d.display().to_string());
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        v.extend(["--admin".into(), admin.clone(), "--set".into(), data.clone()]);
        v
    };
    let run = |args: &[String]| warden(&args.iter().map(String::as_str).collect::<Vec<_>>(), d);

    // A wrong token is refused with the fix.
    let err = stderr_of_failure(&warden(&["status", "--admin", &admin, "--token", "nope"], d), "status with a wrong token");
    assert!(err.contains("wrong admin token") && err.contains("401"), "{err}");
    assert_eq!(token.trim().len(), 48);

    // A new version goes to every room (there are no rooms for a canary), on probation.
    drop_version(d, "arena", "0.3.0");
    let status_args = with(&["status"]);
    let status_args: Vec<&str> = status_args.iter().map(String::as_str).collect();
    let out = status_until(&status_args, d, |s| s.contains("0.3.0") && s.contains("probation"));
    println!("{out}");
    assert!(out.contains("0.2.0") && out.contains("stable"), "{out}");

    // Pause holds the phase; promote moves it on anyway (to stable).
    assert!(stdout(&run(&with(&["pause", "arena"])), "pause").contains("paused"));
    status_until(&status_args, d, |s| s.contains("probation*"));
    assert!(stdout(&run(&with(&["pause", "arena", "--resume"])), "resume").contains("resumed"));
    assert!(stdout(&run(&with(&["promote", "arena"])), "promote").contains("stable"));
    let err = stderr_of_failure(&run(&with(&["promote", "arena"])), "promote a stable version");
    assert!(err.contains("already stable"), "{err}");

    // Rolling back further than the previous stable version needs --force.
    drop_version(d, "arena", "0.3.1");
    status_until(&status_args, d, |s| s.contains("0.3.1") && s.contains("probation"));
    let err = stderr_of_failure(&run(&with(&["rollback", "arena", "--to", "0.2.0"])), "rollback past the previous version");
    assert!(err.contains("--force") && err.contains("0.3.0"), "{err}");
    let out = stdout(&run(&with(&["rollback", "arena"])), "rollback");
    assert!(out.contains("0.3.1 marked bad") && out.contains("0.3.0"), "{out}");
    let out = status_until(&status_args, d, |s| s.contains("last rollbacks"));
    println!("{out}");
    assert!(out.contains("operator rollback") && out.contains("by admin"), "{out}");

    // Every action is in the audit log, by `admin`.
    let audit = stdout(&warden(&["audit", "--set", &data, "--json"], d), "warden audit");
    let entries: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for action in ["pause", "resume", "promote", "rollback"] {
        assert!(entries.iter().any(|e| e["actor"] == "admin" && e["action"] == action), "no {action} by admin in the audit log:\n{audit}");
    }
    drop(serve);
}

#[test]
fn crashes_finds_the_report_of_the_incident_a_player_was_shown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let crashes = d.join("crashes");
    std::fs::create_dir_all(&crashes).unwrap();
    for (i, id) in ["0123456789ab", "ba9876543210"].iter().enumerate() {
        let report = serde_json::json!({
            "id": id, "at_ms": 1_700_000_000_000i64 + i as i64, "plugin": "arena", "version": "1.0.1", "room": format!("r{i}"),
            "tick": 7, "export": "on-message", "kind": "panic", "message": format!("panicked: report {i}"), "backtrace": ["arena::f"],
            "player": "p1", "input": null, "checkpoint": {"id": 1, "tick": 5, "version": "1.0.1"},
            "restarts_in_window": 1, "outcome": "rebuilt"
        });
        std::fs::write(crashes.join(format!("{}-00000{i}-arena-1.0.1-r{i}.json", 1_700_000_000_000i64 + i as i64)), report.to_string())
            .unwrap();
    }
    let data = format!("data_dir={:?}", d.display().to_string());
    let out = stdout(&warden(&["crashes", "--set", &data, "--incident", "0123456789ab"], d), "warden crashes --incident");
    assert!(out.contains("incident 0123456789ab") && out.contains("room r0"), "{out}");
    assert!(!out.contains("room r1"), "only the incident asked for: {out}");
    let err = stderr_of_failure(&warden(&["crashes", "--set", &data, "--incident", "ffffffffffff"], d), "an unknown incident");
    assert!(err.contains("no crash report of incident ffffffffffff"), "{err}");
}

#[test]
fn rooms_room_dump_and_replay_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Rooms stay open after the bots leave, and checkpoint rarely: the dump holds every move.
    let serve = Serve::start(d, &["arena"], &["--set", "rooms.empty_grace_ms=600000", "--set", "rooms.checkpoint_every_ms=3600000"]);
    let admin = serve.admin.to_string();
    let data = format!("data_dir={:?}", d.display().to_string());
    let bots = warden(&["bots", "--url", &serve.ws, "--players", "4", "--rate", "10", "--duration", "2", "--room-prefix", "cli"], d);
    stdout(&bots, "warden bots");

    let out = stdout(&warden(&["rooms", "--admin", &admin, "--set", &data, "--sort", "ticks"], d), "warden rooms");
    println!("{out}");
    assert!(out.contains("GAME") && out.contains("TICK p99") && out.contains("cli-0") && out.contains("1 room(s)"), "{out}");
    let json = stdout(&warden(&["rooms", "--admin", &admin, "--set", &data, "--json"], d), "warden rooms --json");
    let rooms: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rooms[0]["room"], "cli-0", "{json}");
    assert!(rooms[0]["usage"]["ticks"].as_u64().unwrap() > 0, "{json}");

    let out = stdout(&warden(&["room", "arena", "cli-0", "--admin", &admin, "--set", &data], d), "warden room");
    println!("{out}");
    assert!(out.contains("arena room cli-0") && out.contains("journal:") && out.contains("checkpoint #"), "{out}");
    // arena reads each joiner's save: as many reads as joins are journaled.
    let journal = out.lines().find(|l| l.starts_with("journal:")).unwrap();
    let count = |what: &str| -> u64 {
        let before = &journal[..journal.find(what).unwrap_or_else(|| panic!("{what} in {journal:?}"))];
        before.trim_end().rsplit([' ', ',']).next().unwrap().parse().unwrap()
    };
    assert!(count(" joins") > 0 && count(" saves read") == count(" joins"), "{journal}");
    let file = d.join("cli-0.json");
    let file = file.to_str().unwrap();
    let out = stdout(&warden(&["room", "arena", "cli-0", "--dump", file, "--admin", &admin, "--set", &data], d), "warden room --dump");
    assert!(out.contains("wrote") && out.contains("warden replay"), "{out}");
    let dump = std::fs::read_to_string(file).unwrap();
    assert!(dump.contains("\"warden-room-dump/2\"") && dump.contains("\"call\": \"loaded\""), "the dump holds the saves read");

    let plugin = d.join("plugins").join("arena.wasm");
    let out = stdout(&warden(&["replay", file, "--plugin", plugin.to_str().unwrap()], d), "warden replay");
    println!("{out}");
    assert!(out.contains("identical to the live room's snapshot"), "{out}");
    let err = stderr_of_failure(&warden(&["room", "arena", "nowhere", "--admin", &admin, "--set", &data], d), "an unknown room");
    assert!(err.contains("no room nowhere of arena is open"), "{err}");
    let out = stdout(&warden(&["dumps", "--set", &data], d), "warden dumps");
    assert!(out.contains("no watchdog dumps"), "{out}");
}
