//! WASI as ordinary and hostile guest code uses it (`println!`, `std::thread::sleep`, pollables, stdin,
//! sockets, a panic with the default hook), called on a Tokio worker the way a room calls it. Nothing may
//! panic the thread or block it: output reaches the log, waits that could never end are refused with a
//! clean trap, and a room serving such a plugin carries on.

mod common;

use common::server::*;
use common::*;
use std::io::Write;
use std::sync::{Arc, Mutex};
use warden::net::envelope::{Format, ServerEnvelope};
use warden::runtime::{CallError, InstanceEnv, Limits, PluginInstance, Runtime, TrapKind};

/// Runs `f` on this thread inside a multi-threaded Tokio runtime's context (as a room's call runs),
/// with a log subscriber that captures every event of this thread. Returns `f`'s result and the log.
fn in_tokio_with_log<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber =
        tracing_subscriber::fmt().with_ansi(false).with_max_level(tracing::Level::INFO).with_writer(move || writer.clone()).finish();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let _inside = rt.enter();
    let out = tracing::subscriber::with_default(subscriber, f);
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, log)
}

fn command(inst: &mut PluginInstance, cmd: &str) -> Result<String, CallError> {
    inst.on_message("p", &mp(&cmd))?;
    let out = inst.host_mut().take_outbox();
    Ok(un::<String>(&out.last().expect("an answer").payload))
}

#[test]
fn stdout_and_stderr_go_to_the_log_with_the_room_and_never_panic_the_thread() {
    let env = InstanceEnv::standalone("room-7", 1);
    let (answers, log) = in_tokio_with_log(|| {
        let mut inst = started("stdio", &env);
        ["println", "eprintln", "partial", "stdin", "sleep0", "ready", "ready0", "poll"].map(|c| command(&mut inst, c))
    });
    let answers: Vec<String> = answers.into_iter().map(|a| a.unwrap_or_else(|e| panic!("{e}"))).collect();
    assert_eq!(
        answers,
        [
            "println: printed",
            "eprintln: printed",
            "partial: printed",
            "stdin: read=0",
            "sleep0: slept",
            "ready: ready=false",
            "ready0: ready=true",
            "poll: ready=[1]"
        ]
    );
    let line =
        |needle: &str| log.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}")).to_string();
    let out = line("a line on stdout");
    assert!(
        out.contains("INFO") && out.contains("plugin=\"stdio\"") && out.contains("room=\"room-7\"") && out.contains("stream=\"stdout\""),
        "{out}"
    );
    assert!(line("a line on stderr").contains("WARN"));
    assert!(line("no newline yet").contains("stdout"), "a partial line is logged when its call ends");
}

#[test]
fn waits_that_could_never_end_are_refused_with_a_clean_trap() {
    let env = InstanceEnv::standalone("room-1", 1);
    let (err, _) = in_tokio_with_log(|| command(&mut started("stdio", &env), "sleep").unwrap_err());
    assert!(matches!(&err, CallError::Trap { kind: TrapKind::Blocked, .. }), "{err}");
    assert!(err.to_string().contains("use set-timer"), "the message says what to do instead: {err}");
}

#[test]
fn sockets_are_refused_without_blocking() {
    let env = InstanceEnv::standalone("room-1", 1);
    for cmd in ["udp", "tcp"] {
        let (err, _) = in_tokio_with_log(|| command(&mut started("stdio", &env), cmd).unwrap_err());
        // The guest sees `access-denied` and returns it as a gameplay error: the instance is fine.
        assert!(matches!(&err, CallError::Gameplay { .. }), "{cmd}: {err}");
        assert!(err.to_string().contains("refused") && err.to_string().contains("access-denied"), "{cmd}: {err}");
    }
}

#[test]
fn a_panic_with_the_default_hook_is_a_panic_trap_with_its_message() {
    let env = InstanceEnv::standalone("room-1", 1);
    let (err, _) = in_tokio_with_log(|| command(&mut started("stdio", &env), "default-panic").unwrap_err());
    assert!(matches!(&err, CallError::Trap { kind: TrapKind::Panic, .. }), "{err}");
    assert!(err.to_string().contains("panicking with the default hook"), "{err}");
}

#[test]
fn a_flood_of_output_is_rate_limited_and_cut_to_the_line_limit() {
    // 5,000 lines in one call take longer than the default deadline on a debug build: this test is
    // about the log budget, so its runtime allows a long call.
    let rt = Runtime::new(Limits { call_deadline_ms: 2_000, max_instances: 4, ..Limits::default() }, None).unwrap();
    let stdio = rt.load(&warden_tests::wasm_bytes("stdio")).unwrap();
    let env = InstanceEnv::standalone("room-1", 1);
    let (answers, log) = in_tokio_with_log(|| {
        let mut inst = stdio.instantiate(env.clone()).unwrap();
        inst.init(&room("stdio"), &[]).unwrap();
        (command(&mut inst, "flood").unwrap(), command(&mut inst, "long-line").unwrap())
    });
    assert_eq!(answers, ("flood: flooded".to_string(), "long-line: printed".to_string()));
    let flood_lines = log.lines().filter(|l| l.contains("flood line")).count();
    let burst = Limits::default().log_burst as usize;
    // 5,000 lines within a few milliseconds: the burst passes, at most a few more at 50 a second.
    assert!(flood_lines >= burst && flood_lines < 1_000, "{flood_lines} of 5000 lines logged");
    assert!(env.log_budget.dropped_total.load(std::sync::atomic::Ordering::Relaxed) > 4_000);
    let long = log.lines().find(|l| l.contains("xxxx")).unwrap_or_default();
    assert!(long.len() < 8 << 10, "a 1 MiB line is cut: {} bytes logged", long.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_serving_a_plugin_that_prints_and_sleeps_carries_on() {
    let server = start(&[]).await;
    let mut p = player(&ws(&server, Format::MsgPack), "stdio", "s1").await;
    for cmd in ["println", "eprintln", "ready"] {
        p.msg(&cmd).await;
        let answer: String = p.next_msg(|_| false).await;
        assert!(answer.starts_with(cmd), "{answer}");
    }
    p.msg(&"sleep").await;
    let ServerEnvelope::Error { message, .. } = p.next_error().await else { unreachable!() };
    assert!(message.contains("blocked"), "{message}");
    p.msg(&"println").await;
    let answer: String = p.next_msg(|_| false).await;
    assert_eq!(answer, "println: printed", "the room was rebuilt and serves the next message");
    assert!(server.rooms().iter().any(|r| r.room == "s1"), "the room is still listed");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_messages_reach_tcp_players_and_one_too_big_for_any_client_is_dropped_not_the_players() {
    let server = start(&[]).await;
    let mut tcp = player(&tcp(&server), "stdio", "big").await;
    let mut ws = player(&ws(&server, Format::MsgPack), "stdio", "big").await;
    // 100 KB: above the 64 KiB inbound frame cap, which once closed TCP connections without a word.
    for p in [&mut tcp, &mut ws] {
        p.msg(&"big:100000").await;
        assert_eq!(p.next_msg::<String>(|_| false).await.len(), 100_000);
    }
    // 300 KB: more than limits.max_send_bytes (256 KiB); it reaches no one and nobody is disconnected.
    for p in [&mut tcp, &mut ws] {
        p.msg(&"big:300000").await;
        p.msg(&"println").await;
        assert_eq!(p.next_msg::<String>(|_| false).await, "println: printed", "still connected, the big one dropped");
    }
    server.shutdown().await;
}
