//! Shared by the runtime tests: one runtime per test binary, plugins loaded once, MessagePack helpers.
#![allow(dead_code)]

pub mod deploy;
pub mod scrape;
pub mod server;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use warden::runtime::{InstanceEnv, Limits, Plugin, PluginInstance, RoomInfo, Runtime};

/// The runtime shared by every test of this binary (small pool, default limits).
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(Limits { max_instances: 32, ..Limits::default() }, None).expect("runtime builds"))
}

/// A built plugin or guest, loaded (compiled) once per test binary.
pub fn plugin(name: &str) -> Arc<Plugin> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<Plugin>>>> = OnceLock::new();
    let loaded = LOADED.get_or_init(Default::default);
    if let Some(p) = loaded.lock().unwrap().get(name) {
        return p.clone();
    }
    let plugin = Arc::new(runtime().load(&warden_tests::wasm_bytes(name)).unwrap_or_else(|e| panic!("{name} loads: {e}")));
    loaded.lock().unwrap().entry(name.to_string()).or_insert(plugin).clone()
}

pub fn room(game: &str) -> RoomInfo {
    RoomInfo { id: "room-1".into(), game: game.into(), seed: 42, tick_hz: 20, max_players: 16 }
}

/// A new instance of `name` in a standalone environment with seed 42, not yet initialised.
pub fn fresh(name: &str, env: &InstanceEnv) -> PluginInstance {
    plugin(name).instantiate(env.clone()).expect("instantiates")
}

/// A new, initialised instance of `name` with no configuration.
pub fn started(name: &str, env: &InstanceEnv) -> PluginInstance {
    let mut inst = fresh(name, env);
    inst.init(&room(name), &[]).expect("init succeeds");
    inst
}

pub fn mp<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap()
}

pub fn un<T: DeserializeOwned>(bytes: &[u8]) -> T {
    rmp_serde::from_slice(bytes).unwrap_or_else(|e| panic!("decodes as {}: {e}", std::any::type_name::<T>()))
}
