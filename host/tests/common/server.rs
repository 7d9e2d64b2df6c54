//! An in-process server for the network tests: the real listeners on loopback ports, real plugins
//! copied into a temporary plugin directory, and a compile cache shared by the tests of a binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use warden::config::Config;
use warden::net::client::{self, ClientRx, ClientTx, Endpoint, Received};
use warden::net::envelope::{ClientEnvelope, Format, ServerEnvelope, ServerMsg};
use warden::server::Server;

/// How long a test waits for something that must happen: an upper bound for failing, never a figure; generous,
/// so that a loaded machine (a compile, a test run beside this one) is slow, not failing.
pub const WAIT: Duration = Duration::from_secs(60);

fn shared_dirs() -> &'static (tempfile::TempDir, PathBuf) {
    static DIRS: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let data = tempfile::tempdir().unwrap();
        let plugins = data.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        for name in ["arena", "chat", "echo", "faulty", "stdio", "hog"] {
            std::fs::copy(warden_tests::wasm(name), plugins.join(format!("{name}.wasm"))).unwrap();
        }
        (data, plugins)
    })
}

/// Server logs on stderr when `WARDEN_LOG` is set (e.g. `WARDEN_LOG=warden=debug cargo test ...`).
fn logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}

/// A fresh database per server, in the shared data directory.
fn next_db() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A dev-mode server on ephemeral loopback ports, with `sets` applied over the test defaults.
pub async fn start(sets: &[&str]) -> Server {
    logs();
    let (data, plugins) = shared_dirs();
    let mut all: Vec<String> = vec![
        "dev=true".into(),
        format!("plugin_dir={:?}", plugins.display().to_string()),
        format!("data_dir={:?}", data.path().display().to_string()),
        "net.ws_addr=\"127.0.0.1:0\"".into(),
        "net.tcp_addr=\"127.0.0.1:0\"".into(),
        "admin.addr=\"127.0.0.1:0\"".into(),
        "auth.secret=\"test-secret-0123456789\"".into(),
        "plugins.chat.features=[\"chat\"]".into(),
        "rooms.empty_grace_ms=200".into(),
        // Off unless a test is about it (tests/inspect.rs): its audit entries and dumps are no one else's.
        "watchdog.enabled=false".into(),
        format!("storage.url={:?}", format!("sqlite://{}", data.path().join(format!("saves-{}.db", next_db())).display())),
    ];
    all.extend(sets.iter().map(|s| s.to_string()));
    let config = Config::load(None, Vec::new(), &all).expect("test configuration");
    Server::start(config).await.expect("server starts")
}

pub fn ws(server: &Server, format: Format) -> Endpoint {
    Endpoint::Ws(format!("ws://{}/ws", server.ws_addr()), format)
}

pub fn tcp(server: &Server) -> Endpoint {
    Endpoint::Tcp(server.tcp_addr())
}

/// A connected, joined player.
pub struct Player {
    pub id: String,
    pub tx: ClientTx,
    pub rx: ClientRx,
}

pub async fn player(endpoint: &Endpoint, game: &str, room: &str) -> Player {
    let (mut tx, mut rx) = client::connect(endpoint).await.unwrap();
    let id = client::handshake(&mut tx, &mut rx, None, game, room).await.unwrap();
    Player { id, tx, rx }
}

impl Player {
    pub async fn msg<T: serde::Serialize>(&mut self, value: &T) {
        self.tx.send(&ClientEnvelope::Msg { data: rmp_serde::to_vec_named(value).unwrap() }).await.unwrap();
    }

    /// The next game message decoded as `T`, skipping other envelopes for which `skip` says true.
    pub async fn next_msg<T: serde::de::DeserializeOwned>(&mut self, mut skip: impl FnMut(&T) -> bool) -> T {
        loop {
            match self.rx.envelope(WAIT).await.unwrap() {
                ServerEnvelope::Msg { data } => {
                    let value: T = rmp_serde::from_slice(&data).unwrap();
                    if !skip(&value) {
                        return value;
                    }
                }
                other => panic!("{}: expected a game message, got {other:?}", self.id),
            }
        }
    }

    /// Reads until an `error` envelope and returns it.
    pub async fn next_error(&mut self) -> ServerMsg {
        loop {
            match self.rx.envelope(WAIT).await.unwrap() {
                err @ ServerEnvelope::Error { .. } => return err,
                _ => continue,
            }
        }
    }
}

/// Reads envelopes until the connection closes; returns the last `error` seen and the close reason.
pub async fn until_closed(rx: &mut ClientRx) -> (Option<ServerMsg>, Option<String>) {
    let mut last_error = None;
    loop {
        match rx.recv_within(WAIT).await.expect("the server closes the connection") {
            Received::Envelope(err @ ServerEnvelope::Error { .. }) => last_error = Some(err),
            Received::Envelope(_) => {}
            Received::Closed(reason) => return (last_error, reason),
        }
    }
}
