//! The memory bomb traps at the per-instance cap, and the host's own memory stays bounded across many
//! bombs. Its own test binary, so that no other test's allocations move the resident-set figure.

use warden::runtime::{CallError, InstanceEnv, Limits, RoomInfo, Runtime, TrapKind};

const CAP: usize = 16 << 20;
const BOMBS: usize = 12;

#[test]
fn the_memory_bomb_traps_at_the_cap_and_host_memory_stays_bounded() {
    // A generous CPU deadline: this test is about the memory cap, and on a loaded machine the page faults
    // of filling 16 MiB can take longer than the default 10 ms of CPU (the deadline then fires first).
    let rt = Runtime::new(Limits { memory_bytes: CAP, max_instances: 4, call_deadline_ms: 2_000, ..Limits::default() }, None).unwrap();
    let bomb = rt.load(&warden_tests::wasm_bytes("membomb")).unwrap();
    let room = RoomInfo { id: "r".into(), game: "membomb".into(), seed: 1, tick_hz: 20, max_players: 4 };
    let payload = rmp_serde::to_vec(&1).unwrap();
    let explode = || {
        let mut inst = bomb.instantiate(InstanceEnv::standalone("r", 1)).unwrap();
        inst.init(&room, &[]).unwrap();
        let err = inst.on_message("p", &payload).unwrap_err();
        assert!(
            matches!(&err, CallError::Trap { kind: TrapKind::MemoryCap, message, .. } if message.contains(&format!("past the cap of {CAP} bytes"))),
            "{err}"
        );
    };
    explode(); // warm up: first-use allocations of the runtime itself
    let before = warden_tests::rss_bytes();
    for _ in 0..BOMBS {
        explode();
    }
    let grown = warden_tests::rss_bytes().saturating_sub(before);
    // Each bomb fills its 16 MiB; were instance memory kept, the host would grow by ~192 MiB.
    assert!(grown < 4 * CAP as u64, "host RSS grew by {} MiB over {BOMBS} bombs", grown >> 20);

    let mut fine = bomb.instantiate(InstanceEnv::standalone("r", 1)).unwrap();
    fine.init(&room, &[]).unwrap();
    fine.on_tick(1, 50).expect("a new instance works after the bombs");
}
