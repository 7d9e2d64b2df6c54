//! Helpers shared by Warden's tests: where the built plugins, test guests and the `warden` binary are.
//!
//! `scripts/test` builds the guests (`scripts/build-plugins`) before running `cargo test`; a missing
//! file makes the test fail with the command that builds it, never skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// A `warden serve --dev` process on ephemeral loopback ports, with its plugin and data directories in
/// `dir` (reuse `dir` to restart on the same data). Killed when dropped.
pub struct Serve {
    /// The process.
    pub child: Child,
    /// `ws://127.0.0.1:PORT/ws`.
    pub ws: String,
    /// The TCP listener.
    pub tcp: std::net::SocketAddr,
    /// The admin endpoint.
    pub admin: std::net::SocketAddr,
}

impl Serve {
    /// Starts the server with copies of the built `plugins`, plus `extra` arguments.
    pub fn start(dir: &Path, plugins: &[&str], extra: &[&str]) -> Serve {
        Self::spawn(dir, plugins, extra, None)
    }

    /// The same, with the server's logs (stderr) written to `log`, at the default filter (whatever
    /// `WARDEN_LOG` this process has).
    pub fn start_logging_to(dir: &Path, plugins: &[&str], extra: &[&str], log: &Path) -> Serve {
        Self::spawn(dir, plugins, extra, Some(log))
    }

    fn spawn(dir: &Path, plugins: &[&str], extra: &[&str], log: Option<&Path>) -> Serve {
        let plugin_dir = dir.join("plugins");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        for name in plugins {
            std::fs::copy(wasm(name), plugin_dir.join(format!("{name}.wasm"))).unwrap();
        }
        let mut command = Command::new(warden_bin());
        if let Some(log) = log {
            command.env_remove("WARDEN_LOG").stderr(Stdio::from(std::fs::File::create(log).unwrap()));
        }
        let mut child = command
            .args(["serve", "--dev", "--plugin-dir"])
            .arg(&plugin_dir)
            .args(["--set", "net.ws_addr=\"127.0.0.1:0\"", "--set", "net.tcp_addr=\"127.0.0.1:0\"", "--set", "admin.addr=\"127.0.0.1:0\""])
            // The watchdog's audit entries would come between those the tests read (host/tests/inspect.rs tests it).
            .args(["--set", "watchdog.enabled=false"])
            .arg("--set")
            .arg(format!("data_dir={:?}", dir.display().to_string()))
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("warden serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("warden listening"), "first line: {line:?}");
        let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap().to_string();
        Serve { ws: field("ws="), tcp: field("tcp=").parse().unwrap(), admin: field("admin=").parse().unwrap(), child }
    }

    /// Sends SIGTERM and waits (up to 10 s) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().unwrap();
        panic!("warden serve did not exit within 10 s of SIGTERM");
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
