//! What a plugin can make the host hold is bounded: each `[limits]` key holds, the call that crosses it
//! traps as `limit` with a message naming the key, and use below it is untouched.

mod common;

use common::server::*;
use common::*;
use std::sync::atomic::Ordering;
use warden::net::envelope::{Format, ServerEnvelope};
use warden::runtime::{CallError, InstanceEnv, Limits, PluginInstance, Runtime, TrapKind};

/// `hog` in a runtime with the default limits but a long call deadline: copying megabytes of sends on a
/// debug build takes longer than 10 ms of CPU, and these tests are about the other limits.
fn hog(env: &InstanceEnv) -> PluginInstance {
    static HOG: std::sync::OnceLock<(Runtime, warden::runtime::Plugin)> = std::sync::OnceLock::new();
    let (_, plugin) = HOG.get_or_init(|| {
        let rt = Runtime::new(Limits { call_deadline_ms: 5_000, max_instances: 8, ..Limits::default() }, None).unwrap();
        let plugin = rt.load(&warden_tests::wasm_bytes("hog")).unwrap();
        (rt, plugin)
    });
    let mut inst = plugin.instantiate(env.clone()).unwrap();
    inst.init(&room("hog"), &[]).unwrap();
    inst
}

fn command(inst: &mut PluginInstance, cmd: &str) -> Result<(), CallError> {
    inst.on_message("p", &mp(&cmd))
}

fn limit_trap(result: Result<impl std::fmt::Debug, CallError>, setting: &str) {
    match result {
        Err(err @ CallError::Trap { kind: TrapKind::Limit, .. }) => {
            assert!(err.to_string().contains(setting), "the trap names {setting}: {err}")
        }
        other => panic!("expected a limit trap naming {setting}, got {other:?}"),
    }
}

#[test]
fn every_limit_traps_the_call_that_crosses_it_and_not_the_ones_below() {
    let d = Limits::default();
    let env = InstanceEnv::standalone("room-1", 1);
    let cases: Vec<(String, String, &str)> = vec![
        (format!("timers:{}", d.max_timers - 1), format!("timers:{}", d.max_timers + 1), "limits.max_timers"),
        (format!("tag:{}", d.max_name_bytes), format!("tag:{}", d.max_name_bytes + 1), "limits.max_name_bytes"),
        // 64 KiB a send: 60 fit in 4 MiB, 70 do not.
        ("sends:60".into(), "sends:70".into(), "limits.max_queued_send_bytes"),
        (format!("save:{}", d.max_save_bytes - 64), format!("save:{}", d.max_save_bytes + 1), "limits.max_save_bytes"),
        ("state:100".into(), format!("state:{}", d.max_state_bytes + 1), "limits.max_state_bytes"),
    ];
    for (below, above, setting) in &cases {
        let (below, above, setting) = (below.as_str(), above.as_str(), *setting);
        let mut inst = hog(&env);
        command(&mut inst, below).unwrap_or_else(|e| panic!("{below}: {e}"));
        inst.snapshot().unwrap_or_else(|e| panic!("{below}: snapshot: {e}"));
        let mut inst = hog(&env);
        if setting == "limits.max_state_bytes" {
            command(&mut inst, above).unwrap();
            limit_trap(inst.snapshot(), setting);
        } else {
            limit_trap(command(&mut inst, above), setting);
        }
    }
}

#[test]
fn timers_pending_in_the_room_count_against_the_limit() {
    let env = InstanceEnv::standalone("room-1", 1);
    env.timers_pending.store(Limits::default().max_timers - 5, Ordering::Relaxed);
    let mut inst = hog(&env);
    command(&mut inst, "timers:5").unwrap();
    limit_trap(command(&mut hog(&env), "timers:6"), "limits.max_timers");
}

#[test]
fn random_bytes_are_bounded_per_call_and_metric_names_per_instance() {
    let env = InstanceEnv::standalone("room-1", 1);
    let mut inst = hog(&env);
    command(&mut inst, "random:1000").unwrap();
    let err = command(&mut inst, "random:62914560").unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }) && err.to_string().contains("exceeds limit 65536"), "{err}");

    let mut inst = hog(&env);
    command(&mut inst, "metrics:1000").unwrap();
    command(&mut inst, "metrics:1000").unwrap();
    let metrics = inst.host_mut().take_metrics();
    assert_eq!(metrics.len(), Limits::default().max_metric_names, "names past the limit are dropped");
    assert_eq!(metrics["m0"].count, 2, "a name reported twice is one entry counted twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_holds_its_timer_limit_across_calls_and_carries_on() {
    let server = start(&[]).await;
    let mut p = player(&ws(&server, Format::MsgPack), "hog", "h1").await;
    p.msg(&"timers:600").await;
    assert_eq!(p.next_msg::<String>(|_| false).await, "timers:600: ok");
    // 600 pending in the room, 600 more would pass 1,000: the call traps, the room is rebuilt.
    p.msg(&"timers:600").await;
    let ServerEnvelope::Error { message, .. } = p.next_error().await else { unreachable!() };
    assert!(message.contains("trapped: limit"), "{message}");
    p.msg(&"timers:10").await;
    assert_eq!(p.next_msg::<String>(|_| false).await, "timers:10: ok", "the room goes on with its 600 timers");
    let dump = server.room_manager().dump("hog", "h1").await.unwrap();
    assert!(dump.base.timers.len() + dump.journal.len() > 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_of_players_the_host_has_not_read_are_refused_not_answered_none_or_overwritten() {
    let server = start(&[]).await;
    // A durable save of a player who is not on this server now.
    let away = warden::storage::SaveWrite { game: "hog".into(), player: "away-1".into(), data: b"progress".to_vec() };
    server.store().write_saves(&[away]).await.unwrap();
    let mut p = player(&ws(&server, Format::MsgPack), "hog", "s1").await;
    // Its own save is there to read (read before the join).
    p.msg(&"save:10").await;
    assert_eq!(p.next_msg::<String>(|_| false).await, "save:10: ok");
    p.msg(&format!("load-of:{}", p.id)).await;
    assert_eq!(p.next_msg::<String>(|_| false).await, format!("load-of:{}: 10 bytes", p.id));
    for cmd in ["load-of:away-1", "save-of:away-1"] {
        p.msg(&cmd).await;
        let ServerEnvelope::Error { message, .. } = p.next_error().await else { unreachable!() };
        assert!(message.contains("trapped"), "{cmd}: refused, not answered none: {message}");
    }
    server.saves().flush().await.unwrap();
    let kept = server.store().load_save("hog", "away-1").await.unwrap().unwrap();
    assert_eq!(kept.data, b"progress", "the durable save was not overwritten");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_room_lists_what_it_makes_the_host_hold() {
    let server = start(&[]).await;
    let mut p = player(&ws(&server, Format::MsgPack), "hog", "u1").await;
    let _q = player(&ws(&server, Format::MsgPack), "hog", "u2").await;
    let tag = Limits::default().max_name_bytes;
    for cmd in ["timers:500".to_string(), format!("tag:{tag}")] {
        p.msg(&cmd).await;
        assert_eq!(p.next_msg::<String>(|_| false).await, format!("{cmd}: ok"));
    }
    // The room writes its usage at the end of the tick that answered: wait for that tick's reading.
    let reading = async {
        loop {
            let listed = server.rooms().into_iter().find(|r| r.room == "u1");
            if let Some(listed) = listed.filter(|r| r.usage.timers == 501) {
                break listed.usage;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let usage = tokio::time::timeout(std::time::Duration::from_secs(20), reading)
        .await
        .unwrap_or_else(|_| panic!("u1 never listed its 501 timers: {:?}", server.rooms()));
    assert_eq!(usage.players, 1);
    assert!(usage.timer_bytes >= (500 * 2 + tag) as u64, "the timers' tags are counted: {usage:?}");
    assert!(usage.linear_memory_bytes >= 64 << 10, "at least one wasm page: {usage:?}");
    assert!(usage.host_bytes >= usage.timer_bytes + usage.journal_bytes, "{usage:?}");
    let other = server.rooms().into_iter().find(|r| r.room == "u2").unwrap().usage;
    assert!(other.timers == 0 && other.timer_bytes < usage.timer_bytes / 10, "each room counts its own: {other:?}");

    // The listing over the admin endpoint carries the same figures.
    let listed = server.admin_client().rooms().await.unwrap();
    let u1 = listed.iter().find(|r| r.room == "u1").unwrap();
    assert!(u1.usage.timers == 501 && u1.usage.host_bytes >= usage.timer_bytes, "{u1:?}");
    server.shutdown().await;
}
