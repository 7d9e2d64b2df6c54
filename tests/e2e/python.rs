//! Python and JavaScript plugins against the real binary: what `chat-py` prints and what `arena-js` writes
//! with `console.log` reach the server's log with the plugin and room attached, and harm nothing (the room
//! goes on answering); a Python exception's traceback goes to the log, not to the player.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use warden::net::client::{self, Endpoint};
use warden::net::envelope::{ClientEnvelope, Format, ServerEnvelope};
use warden_tests::{Serve, warden_bin};

const WAIT: Duration = Duration::from_secs(60);

/// The next game message (decoded) the client receives.
async fn next_msg(rx: &mut client::ClientRx) -> serde_json::Value {
    loop {
        if let ServerEnvelope::Msg { data } = rx.envelope(WAIT).await.unwrap() {
            return rmp_serde::from_slice(&data).unwrap();
        }
    }
}

fn log_lines(log: &Path, pred: impl Fn(&str) -> bool) -> Vec<String> {
    std::fs::read_to_string(log).unwrap().lines().filter(|l| pred(l)).map(String::from).collect()
}

/// A server on `d` (with `plugins` put in its plugin directory first, as (built name, file name)) that logs
/// plugin lines at info to `d/server.log` (its default filter is warn), and that log's path.
fn serve_logging_plugins(d: &Path, plugins: &[(&str, &str)], extra: &[&str]) -> (Serve, std::path::PathBuf) {
    let log = d.join("server.log");
    std::fs::create_dir_all(d.join("plugins")).unwrap();
    for (built, file) in plugins {
        std::fs::copy(warden_tests::wasm(built), d.join("plugins").join(file)).unwrap();
    }
    let serve = Serve::start_logging_to(d, &[], extra, &log);
    let data = format!("data_dir={:?}", d.display().to_string());
    let admin = serve.admin.to_string();
    let out = Command::new(warden_bin()).args(["log", "warn,warden::plugin=info", "--admin", &admin, "--set", &data]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (serve, log)
}

#[test]
fn what_a_python_plugin_prints_reaches_the_server_log_with_its_room_and_harms_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (serve, log) = serve_logging_plugins(dir.path(), &[("chat-py", "chat-py.wasm")], &["--set", "plugins.chat-py.features=[\"chat\"]"]);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (mut tx, mut rx) = client::connect(&Endpoint::Ws(serve.ws.clone(), Format::MsgPack)).await.unwrap();
        client::handshake(&mut tx, &mut rx, None, "chat-py", "py-room").await.unwrap();
        assert_eq!(next_msg(&mut rx).await["type"], "history");
        let say = |value: serde_json::Value| ClientEnvelope::Msg { data: rmp_serde::to_vec_named(&value).unwrap() };
        tx.send(&say(serde_json::json!({"type": "nick", "name": "alice"}))).await.unwrap();
        assert_eq!(next_msg(&mut rx).await["type"], "renamed");
        tx.send(&say(serde_json::json!({"type": "say", "text": "still here"}))).await.unwrap();
        let line = next_msg(&mut rx).await;
        assert_eq!(
            (line["type"].as_str(), line["text"].as_str(), line["nick"].as_str()),
            (Some("line"), Some("still here"), Some("alice"))
        );
        // A line that is not text makes chat.py fail (`text.strip()` on a number): the player gets the
        // exception's type and message, and the room goes on.
        tx.send(&say(serde_json::json!({"type": "say", "text": 5}))).await.unwrap();
        let error = loop {
            if let ServerEnvelope::Error { message, .. } = rx.envelope(WAIT).await.unwrap() {
                break message;
            }
        };
        assert_eq!(error, "AttributeError: 'int' object has no attribute 'strip'");
        tx.send(&say(serde_json::json!({"type": "say", "text": "and on"}))).await.unwrap();
        assert_eq!(next_msg(&mut rx).await["text"], "and on");
    });

    let deadline = Instant::now() + WAIT;
    let printed = loop {
        let found = log_lines(&log, |l| l.contains("is now known as alice"));
        if let Some(line) = found.into_iter().next() {
            break line;
        }
        assert!(Instant::now() < deadline, "the print never reached the log:\n{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("{printed}");
    assert!(printed.contains("INFO") && printed.contains("warden::plugin"), "{printed}");
    assert!(printed.contains("chat-py") && printed.contains("py-room"), "the line names the plugin and the room: {printed}");
    // The exception's traceback is in the log, at error, where the player's error message is not.
    let traceback = log_lines(&log, |l| l.contains("Traceback (most recent call last)"));
    assert!(
        traceback.iter().any(|l| l.contains("ERROR") && l.contains("in say") && l.contains("AttributeError") && l.contains("py-room")),
        "{traceback:?}"
    );
}

#[test]
fn what_a_javascript_plugin_logs_with_console_log_reaches_the_server_log_with_its_room() {
    let dir = tempfile::tempdir().unwrap();
    // The JavaScript build is plugin `arena`: its file is named after it.
    let (serve, log) = serve_logging_plugins(dir.path(), &[("arena-js", "arena.wasm")], &[]);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (mut tx, mut rx) = client::connect(&Endpoint::Ws(serve.ws.clone(), Format::MsgPack)).await.unwrap();
        client::handshake(&mut tx, &mut rx, None, "arena", "js-room").await.unwrap();
        assert_eq!(next_msg(&mut rx).await["type"], "welcome");
        let data = rmp_serde::to_vec_named(&serde_json::json!({"type": "move", "dir": "up", "seq": 1})).unwrap();
        tx.send(&ClientEnvelope::Msg { data }).await.unwrap();
        loop {
            let msg = next_msg(&mut rx).await;
            if msg["type"] == "moved" {
                assert_eq!(msg["seq"], 1, "the room goes on answering");
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let logged = loop {
        if let Some(line) = log_lines(&log, |l| l.contains("joined at") && l.contains("coins in all")).into_iter().next() {
            break line;
        }
        assert!(Instant::now() < deadline, "console.log never reached the log:\n{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    };
    println!("{logged}");
    assert!(logged.contains("INFO") && logged.contains("warden::plugin") && logged.contains("js-room"), "{logged}");
}
