//! Fault guests through `PluginInstance`: deadlines, stack overflow, traps and errors in every export.
//! Each trap is reported as a trap, each `err` as an error, and a rebuilt instance serves the next call.

mod common;

use common::*;
use faulty::{Command, Mode};
use warden::runtime::{CallError, Features, InstanceEnv, TrapKind};

#[test]
fn an_endless_loop_hits_the_deadline_and_a_rebuilt_instance_serves_the_next_call() {
    let env = InstanceEnv::standalone("room-1", 1);
    let mut looper = started("looper", &env);
    looper.on_tick(1, 50).unwrap();
    let err = looper.on_message("p", &mp(&1)).unwrap_err();
    assert!(matches!(err, CallError::Deadline { export: "on-message", deadline_ms: 10 }), "{err}");
    assert!(looper.is_poisoned());
    let err = looper.on_tick(2, 50).unwrap_err();
    assert!(matches!(&err, CallError::Poisoned(why) if why.contains("deadline")), "{err}");

    let mut rebuilt = started("looper", &env);
    rebuilt.on_tick(2, 50).expect("the rebuilt instance serves the next call");
}

#[test]
fn unbounded_recursion_traps_as_a_stack_overflow() {
    let env = InstanceEnv::standalone("room-1", 1);
    let mut recurse = started("recurse", &env);
    let err = recurse.on_message("p", &mp(&1)).unwrap_err();
    assert!(matches!(&err, CallError::Trap { export: "on-message", kind: TrapKind::StackOverflow, .. }), "{err}");
    assert!(err.is_fatal());
    started("recurse", &env).on_tick(1, 50).expect("the host is alive and a new instance works");
}

fn faulty_with(features: &[&str]) -> (InstanceEnv, warden::runtime::PluginInstance) {
    let env = InstanceEnv { features: Features::on(features), ..InstanceEnv::standalone("room-1", 1) };
    let inst = fresh("faulty", &env);
    (env, inst)
}

/// Calls `export` on an instance (initialised first unless the export is `init`).
fn call(inst: &mut warden::runtime::PluginInstance, export: &str) -> Result<(), CallError> {
    if export != "init" {
        inst.init(&room("faulty"), &[]).expect("init behaves");
    }
    match export {
        "init" => inst.init(&room("faulty"), &[]),
        "on-join" => inst.on_join("p"),
        "on-leave" => inst.on_leave("p"),
        "on-message" => inst.on_message("p", &mp(&"hi")),
        "on-tick" => inst.on_tick(1, 50),
        "on-timer" => inst.on_timer("t"),
        other => unreachable!("{other}"),
    }
}

#[test]
fn commanded_errors_are_gameplay_errors_in_every_export() {
    for export in ["init", "on-join", "on-leave", "on-message", "on-tick", "on-timer"] {
        let (_env, mut inst) = faulty_with(&[&format!("fault.err.{export}")]);
        let err = call(&mut inst, export).unwrap_err();
        assert!(
            matches!(&err, CallError::Gameplay { export: e, message } if *e == export && message.contains("fails on command")),
            "{export}: {err}"
        );
        assert!(!inst.is_poisoned(), "{export}: an err leaves the instance usable");
        if export != "init" && export != "on-tick" {
            inst.on_tick(9, 50).unwrap_or_else(|e| panic!("{export}: the next call works: {e}"));
        }
    }
}

#[test]
fn commanded_traps_are_traps_in_every_export_with_the_panic_message() {
    for export in ["init", "on-join", "on-leave", "on-message", "on-tick", "on-timer"] {
        let (_env, mut inst) = faulty_with(&[&format!("fault.trap.{export}")]);
        let err = call(&mut inst, export).unwrap_err();
        let CallError::Trap { export: e, kind, message } = &err else { panic!("{export}: {err}") };
        assert_eq!((*e, *kind), (export, TrapKind::Panic));
        assert!(message.contains(&format!("faulty: {export} traps on command")), "{export}: the guest's panic message is kept: {message}");
        assert!(inst.is_poisoned());
    }
}

#[test]
fn snapshot_and_restore_fail_on_command() {
    for mode in [Mode::Err, Mode::Trap] {
        let (env, mut inst) = faulty_with(&[]);
        inst.init(&room("faulty"), &[]).unwrap();
        inst.on_message("p", &mp(&Command { fail: "snapshot".into(), mode })).unwrap();
        let err = inst.snapshot().unwrap_err();
        assert_eq!(matches!(err, CallError::Trap { export: "snapshot", .. }), mode == Mode::Trap, "{err}");
        assert_eq!(matches!(err, CallError::Gameplay { export: "snapshot", .. }), mode == Mode::Err, "{err}");

        let mut inst = started("faulty", &env);
        inst.on_message("p", &mp(&Command { fail: "restore".into(), mode })).unwrap();
        let snapshot = inst.snapshot().unwrap();
        let err = fresh("faulty", &env).restore(&snapshot, "0.0.1").unwrap_err();
        assert_eq!(matches!(err, CallError::Trap { export: "restore", .. }), mode == Mode::Trap, "{err}");
        assert_eq!(matches!(err, CallError::Gameplay { export: "restore", .. }), mode == Mode::Err, "{err}");
    }
}

#[test]
fn a_trapping_call_loses_what_it_queued_and_an_erroring_call_keeps_it() {
    let (_env, mut inst) = faulty_with(&["fault.err.on-message"]);
    inst.init(&room("faulty"), &[]).unwrap();
    assert!(inst.on_message("p", &mp(&"hi")).is_err());
    assert_eq!(inst.host().outbox().len(), 1, "sends of an err call are delivered");

    let (_env, mut inst) = faulty_with(&[]);
    inst.init(&room("faulty"), &[]).unwrap();
    inst.on_message("p", &mp(&"fine")).unwrap();
    inst.on_message("p", &mp(&Command { fail: "on-message".into(), mode: Mode::Trap })).unwrap();
    assert!(matches!(inst.on_message("p", &mp(&"boom")), Err(CallError::Trap { .. })));
    let out = inst.host_mut().take_outbox();
    assert_eq!(out.len(), 1, "only the send of the successful call is left");
    assert_eq!(un::<u64>(&out[0].payload), 1);
}
