//! `cargo bench -p warden --bench languages` (after scripts/build-plugins)
//!
//! What a plugin's language costs, each next to the same game in Rust, in one run: chat (Rust) and
//! chat-py (Python, componentize-py), arena (Rust) and arena-js (JavaScript, componentize-js). Per plugin:
//! component size, cold compile, compile-cache hit, instantiate (median of 50), the per-room swap pause
//! (snapshot + instantiate + restore, median of 50) and one `on-message` call that answers with a send
//! (median of batches), through `PluginInstance` as a room calls it. Prints one table.

use std::time::{Duration, Instant};
use warden::runtime::{InstanceEnv, Limits, Plugin, PluginInstance, RoomInfo, Runtime};

struct Case {
    label: &'static str,
    wasm: &'static str,
    config: serde_json::Value,
    features: &'static [&'static str],
    /// The message a player sends, for move number `n`.
    message: fn(u64) -> serde_json::Value,
}

fn mp(value: &serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn started(plugin: &Plugin, case: &Case) -> PluginInstance {
    let env = InstanceEnv { features: warden::runtime::Features::on(case.features), ..InstanceEnv::standalone("bench", 7) };
    let mut instance = plugin.instantiate(env).unwrap();
    let room = RoomInfo { id: "bench".into(), game: "bench".into(), seed: 7, tick_hz: 20, max_players: 16 };
    instance.init(&room, &mp(&case.config)).unwrap();
    instance.on_join("p1").unwrap();
    instance
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds this; the run is for `cargo bench`.
    }
    let say = |_: u64| serde_json::json!({"type": "say", "text": "hello there, how is the game going"});
    let step = |n: u64| {
        let dir = ["up", "right", "down", "left"][(n % 4) as usize];
        serde_json::json!({"type": "move", "dir": dir, "seq": n})
    };
    let chat_config = serde_json::json!({"rate_lines": 1_000_000_000u64, "history": 50});
    let cases = [
        Case { label: "chat (Rust)", wasm: "chat", config: chat_config.clone(), features: &["chat"], message: say },
        Case { label: "chat-py (Python)", wasm: "chat-py", config: chat_config, features: &["chat"], message: say },
        Case { label: "arena (Rust)", wasm: "arena", config: serde_json::json!({}), features: &[], message: step },
        Case { label: "arena-js (JavaScript)", wasm: "arena-js", config: serde_json::json!({}), features: &[], message: step },
    ];
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { max_instances: 64, ..Limits::default() };
    println!(
        "\n{:<22} {:>10} {:>12} {:>11} {:>12} {:>12} {:>12}",
        "plugin", "size", "cold compile", "cache hit", "instantiate", "swap pause", "on-message"
    );
    for case in &cases {
        let bytes = warden_tests::wasm_bytes(case.wasm);
        let cache = dir.path().join(case.wasm);
        let cold = Runtime::new(limits.clone(), Some(cache.clone())).unwrap().load(&bytes).unwrap().compile_time();
        let rt = Runtime::new(limits.clone(), Some(cache)).unwrap();
        let plugin = rt.load(&bytes).unwrap();
        let hit = plugin.compile_time();

        let mut instantiate = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            drop(plugin.instantiate(InstanceEnv::standalone("bench", 7)).unwrap());
            instantiate.push(t.elapsed());
        }

        // Calls: warm up, then batches of 200 (Rust) or 50, the median batch's time per call.
        let mut instance = started(&plugin, case);
        let mut n = 0;
        let mut call = |instance: &mut PluginInstance| {
            n += 1;
            instance.on_message("p1", &mp(&(case.message)(n))).unwrap();
            instance.host_mut().take_outbox();
        };
        for _ in 0..200 {
            call(&mut instance);
        }
        let batch = if case.wasm.contains('-') { 50 } else { 200 };
        let mut per_call = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            for _ in 0..batch {
                call(&mut instance);
            }
            per_call.push(t.elapsed() / batch);
        }

        // The per-room swap pause, with the state this play left.
        let mut swap = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let state = instance.snapshot().unwrap();
            let mut next = plugin.instantiate(InstanceEnv::standalone("bench", 7)).unwrap();
            next.restore(&state, "9.9.9").unwrap();
            swap.push(t.elapsed());
            instance = next;
        }
        println!(
            "{:<22} {:>8.1} MB {:>9.0} ms {:>8.1} ms {:>9.2} ms {:>9.2} ms {:>9.1} us",
            case.label,
            bytes.len() as f64 / 1e6,
            cold.as_secs_f64() * 1e3,
            hit.as_secs_f64() * 1e3,
            median(instantiate).as_secs_f64() * 1e3,
            median(swap).as_secs_f64() * 1e3,
            median(per_call).as_secs_f64() * 1e6,
        );
    }
}
