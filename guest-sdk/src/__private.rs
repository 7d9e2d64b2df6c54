//! Glue used by [`crate::export_game!`]: the wasm-side host, the per-instance game slot and the manifest
//! builder. Not a stable API.

use crate::driver::Driver;
use crate::game::{Game, GameResult};
use crate::types::RoomInfo;
use std::any::Any;
use std::cell::RefCell;

pub use crate::__bindings::warden::plugin::types::RoomInfo as WitRoomInfo;

/// Version of the WIT package this SDK was built against.
pub const WIT_VERSION: &str = "0.1.0";
/// Version of this SDK.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Name of the custom section that carries the plugin manifest.
pub const MANIFEST_SECTION: &str = "warden-manifest";

/// Total length of `parts`, for sizing the manifest array in a const context.
pub const fn manifest_len(parts: &[&str]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// Concatenates `parts` into a fixed-size array in a const context.
pub const fn manifest_bytes<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 0;
    while i < parts.len() {
        let bytes = parts[i].as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            out[at] = bytes[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

impl From<WitRoomInfo> for RoomInfo {
    fn from(r: WitRoomInfo) -> Self {
        RoomInfo { id: r.id, game: r.game, seed: r.seed, tick_hz: r.tick_hz, max_players: r.max_players }
    }
}

/// The host seen from inside wasm: each method is one `warden:plugin` import.
pub struct WasmHost;

#[cfg(target_arch = "wasm32")]
mod wasm_host {
    use super::*;
    use crate::__bindings::warden::plugin::{clock, messaging, random, saves, telemetry, types};

    /// A panic's message goes to the host as an error log line starting with "panicked at" (the host
    /// attaches it to the trap), not to WASI stderr: the panic then costs no stream I/O, and the host
    /// never services a blocking stderr write on a game thread.
    pub fn report_panics_to_host() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let location = info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "Box<dyn Any>".to_string());
                telemetry::log(types::LogLevel::Error, &format!("panicked at {location}:\n{payload}"));
            }));
        });
    }
    use crate::types::{Level, Priority, Recipient};

    impl crate::ctx::HostApi for WasmHost {
        fn send(&mut self, to: &Recipient, payload: &[u8]) {
            let to = match to {
                Recipient::Player(p) => types::Recipient::Player(p.clone()),
                Recipient::All => types::Recipient::All,
                Recipient::AllExcept(p) => types::Recipient::AllExcept(p.clone()),
            };
            messaging::send(&to, payload);
        }
        fn kick(&mut self, player: &str, reason: &str) {
            messaging::kick(player, reason);
        }
        fn now_ms(&self) -> u64 {
            clock::now_ms()
        }
        fn tick(&self) -> u64 {
            clock::tick()
        }
        fn set_timer(&mut self, after_ms: u64, tag: &str) {
            clock::set_timer(after_ms, tag);
        }
        fn random(&mut self) -> u64 {
            random::next()
        }
        fn load_save(&mut self, player: &str) -> Option<Vec<u8>> {
            saves::load_save(player)
        }
        fn store_save(&mut self, player: &str, data: &[u8], priority: Priority) {
            let priority = match priority {
                Priority::Normal => types::SavePriority::Normal,
                Priority::Critical => types::SavePriority::Critical,
            };
            saves::store_save(player, data, priority);
        }
        fn log(&mut self, level: Level, message: &str) {
            let level = match level {
                Level::Trace => types::LogLevel::Trace,
                Level::Debug => types::LogLevel::Debug,
                Level::Info => types::LogLevel::Info,
                Level::Warn => types::LogLevel::Warn,
                Level::Error => types::LogLevel::Error,
            };
            telemetry::log(level, message);
        }
        fn metric(&mut self, name: &str, value: f64) {
            telemetry::metric(name, value);
        }
        fn feature_enabled(&self, name: &str) -> bool {
            telemetry::feature_enabled(name)
        }
    }
}

thread_local! {
    // One instance runs one game; wasm is single-threaded, so the slot is only ever touched by one call.
    static SLOT: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` on this instance's driver, creating it on first use.
pub fn with_driver<G: Game, R>(version: &'static str, f: impl FnOnce(&mut Driver<G>) -> GameResult<R>) -> GameResult<R> {
    #[cfg(target_arch = "wasm32")]
    wasm_host::report_panics_to_host();
    SLOT.with(|slot| {
        let mut slot = slot.borrow_mut();
        let any = slot.get_or_insert_with(|| Box::new(Driver::<G>::new(version)));
        let driver = any.downcast_mut::<Driver<G>>().expect("one game type per plugin");
        f(driver)
    })
}

/// Declares the wasm exports and the manifest for a [`Game`] type: `warden_sdk::export_game!(MyGame);`
/// (see the crate docs for a whole plugin).
///
/// Use it once per plugin crate, at the crate root. The manifest (crate name and version from
/// `Cargo.toml`, WIT and SDK versions) is embedded in the `warden-manifest` custom section, where the
/// host and `warden inspect` read it. On non-wasm targets the macro expands to nothing, so the same crate
/// builds natively for unit tests.
#[macro_export]
macro_rules! export_game {
    ($game:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::{WasmHost, with_driver};
            const VERSION: &str = env!("CARGO_PKG_VERSION");
            struct WardenGame;
            impl $crate::__bindings::Guest for WardenGame {
                fn init(room: $crate::__private::WitRoomInfo, config: ::std::vec::Vec<u8>) -> Result<(), String> {
                    with_driver::<$game, _>(VERSION, |d| d.init(&mut WasmHost, &room.into(), &config))
                }
                fn on_join(player: String) -> Result<(), String> {
                    with_driver::<$game, _>(VERSION, |d| d.on_join(&mut WasmHost, &player))
                }
                fn on_leave(player: String) -> Result<(), String> {
                    with_driver::<$game, _>(VERSION, |d| d.on_leave(&mut WasmHost, &player))
                }
                fn on_message(player: String, payload: ::std::vec::Vec<u8>) -> Result<(), String> {
                    with_driver::<$game, _>(VERSION, |d| d.on_message(&mut WasmHost, &player, &payload))
                }
                fn on_tick(tick: u64, dt_ms: u32) -> Result<(), String> {
                    with_driver::<$game, _>(VERSION, |d| d.on_tick(&mut WasmHost, tick, dt_ms))
                }
                fn on_timer(tag: String) -> Result<(), String> {
                    with_driver::<$game, _>(VERSION, |d| d.on_timer(&mut WasmHost, &tag))
                }
                fn snapshot() -> Result<::std::vec::Vec<u8>, String> {
                    with_driver::<$game, _>(VERSION, |d| d.snapshot())
                }
                fn restore(state: ::std::vec::Vec<u8>, from_version: String) -> Result<(), String> {
                    with_driver::<$game, _>(VERSION, |d| d.restore(&state, &from_version))
                }
            }
    $crate::__bindings::__export_game_world!(WardenGame with_types_in $crate::__bindings);

            const PARTS: &[&str] = &[
                "{\"name\":\"",
                env!("CARGO_PKG_NAME"),
                "\",\"version\":\"",
                VERSION,
                "\",\"wit\":\"",
                $crate::__private::WIT_VERSION,
                "\",\"sdk\":\"",
                $crate::__private::SDK_VERSION,
                "\"}",
            ];
            const LEN: usize = $crate::__private::manifest_len(PARTS);
            #[used]
            #[unsafe(link_section = "warden-manifest")]
            static MANIFEST: [u8; LEN] = $crate::__private::manifest_bytes::<LEN>(PARTS);
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_bytes_concatenate_parts() {
        const PARTS: &[&str] = &["{\"a\":", "1", "}"];
        const LEN: usize = manifest_len(PARTS);
        let bytes = manifest_bytes::<LEN>(PARTS);
        assert_eq!(&bytes, b"{\"a\":1}");
    }
}
