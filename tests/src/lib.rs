//! Helpers shared by Warden's tests: where the built plugins, test guests and the `warden` binary are.
//!
//! `scripts/test` builds the guests (`scripts/build-plugins`) before running `cargo test`; a missing
//! file makes the test fail with the command that builds it, never skip.

use std::path::PathBuf;

/// The cargo target directory (`CARGO_TARGET_DIR`, or `target/` in the workspace).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// Where `scripts/build-plugins` puts the `.wasm` files (`WARDEN_WASM_DIR` overrides).
pub fn wasm_dir() -> PathBuf {
    match std::env::var_os("WARDEN_WASM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => target_dir().join("wasm32-wasip2/wasm"),
    }
}

/// The path of a built plugin or guest, e.g. `wasm("arena")`.
pub fn wasm(name: &str) -> PathBuf {
    let path = wasm_dir().join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is not built: run scripts/build-plugins (scripts/test does it for you)", path.display());
    path
}

/// The bytes of a built plugin or guest.
pub fn wasm_bytes(name: &str) -> Vec<u8> {
    std::fs::read(wasm(name)).expect("readable")
}

/// The `warden` binary of this build.
pub fn warden_bin() -> PathBuf {
    let path = target_dir().join("debug/warden");
    assert!(path.exists(), "{} is not built: run `cargo build -p warden` (cargo test --workspace builds it)", path.display());
    path
}

/// This process's resident set size in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm is readable on Linux");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("statm has a resident field");
    pages * 4096
}
