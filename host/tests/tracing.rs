//! Per-call tracing: at `debug`, a plugin call's log lines carry its span (plugin, version, room, player,
//! export, message type) and a session's carry its connection (peer, transport, player). This binary
//! installs its own global subscriber writing to a buffer, so lines from the game threads are caught.

mod common;

use common::server::*;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use warden::net::envelope::{Format, ServerEnvelope};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt().with_env_filter("warden=debug").with_ansi(false).with_writer(move || writer.clone()).init();
        logs
    })
}

#[derive(serde::Serialize)]
struct BadMove {
    r#type: &'static str,
    dir: &'static str,
    seq: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_debug_a_calls_log_lines_carry_its_span_and_a_sessions_carry_its_connection() {
    let logs = captured();
    let server = start(&[]).await;
    let mut p = player(&ws(&server, Format::MsgPack), "arena", "traced-1").await;
    // A move the game cannot read: a gameplay error, logged at debug inside the call's span.
    p.msg(&BadMove { r#type: "move", dir: "sideways", seq: 1 }).await;
    assert!(matches!(p.next_error().await, ServerEnvelope::Error { fatal: false, .. }));
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        if text.contains("gameplay error") {
            break text;
        }
        assert!(Instant::now() < deadline, "no gameplay error logged:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let line = text.lines().find(|l| l.contains("gameplay error")).unwrap();
    println!("{line}");
    for field in [
        "call{",
        "plugin=arena",
        "version=0.2.0",
        "room=traced-1",
        &format!("player=\"{}\"", p.id),
        "export=\"on-message\"",
        "msg_type=\"move\"",
    ] {
        assert!(line.contains(field), "the call's line carries {field}: {line}");
    }
    let hello = text.lines().find(|l| l.contains("hello")).expect("the session logged its hello");
    println!("{hello}");
    for field in ["conn{", "peer=127.0.0.1:", "transport=\"ws\"", &format!("player=\"{}\"", p.id)] {
        assert!(hello.contains(field), "the session's line carries {field}: {hello}");
    }
    server.shutdown().await;
}
