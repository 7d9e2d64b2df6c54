//! Deploy test helpers: a signing key, stamped versions dropped signed into a plugin directory, a
//! non-dev server on it, tokened players, deploy events.

use super::server::{self as srv, WAIT};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::broadcast;
use warden::config::Config;
use warden::deploy::DeployEvent;
use warden::deploy::sign;
use warden::runtime::manifest;
use warden::server::Server;

pub struct Keys {
    pub sk: minisign::SecretKey,
    pub pk: String,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (sk, _, pk) = sign::keygen().unwrap();
        Keys { sk: sign::parse_secret_key(&sk).unwrap(), pk }
    })
}

/// Data directory shared by this binary's servers, so they share the compile cache.
pub fn shared_data() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
}

/// `base` (a built plugin) stamped as `version`.
pub fn stamped(base: &str, version: &str) -> Vec<u8> {
    stamp_version(&warden_tests::wasm_bytes(base), version)
}

/// A component's bytes stamped as `version` (keeping its manifest's name).
pub fn stamp_version(bytes: &[u8], version: &str) -> Vec<u8> {
    let mut m = manifest::read(bytes).unwrap();
    m.version = version.to_string();
    manifest::stamp(bytes, &m)
}

/// Waits until every open room of `game` runs `version`.
pub async fn rooms_all_on(server: &Server, game: &str, version: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let versions = server.room_manager().versions(game);
        if !versions.is_empty() && versions.keys().all(|v| v == version) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "rooms of {game} are not all on {version}: {versions:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A component given a manifest (so the checks get past it to the world).
pub fn with_manifest(bytes: &[u8], name: &str, version: &str) -> Vec<u8> {
    let m = manifest::Manifest { name: name.into(), version: version.into(), wit: manifest::HOST_WIT_VERSION.into(), sdk: None };
    manifest::stamp(bytes, &m)
}

/// Writes a file the way `warden push` does: hidden temp name, then rename.
pub fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, dir.join(name)).unwrap();
}

/// Drops `bytes` as `file` with a signature claiming `name` `version` (signature first).
pub fn drop_signed(dir: &Path, file: &str, bytes: &[u8], name: &str, version: &str) {
    put(dir, &format!("{file}.minisig"), sign::sign(bytes, &keys().sk, name, version).unwrap().as_bytes());
    put(dir, file, bytes);
}

/// Drops `base` stamped as `version`, signed, as `<plugin>-<version>.wasm`.
pub fn drop_version(dir: &Path, base: &str, plugin: &str, version: &str) {
    drop_signed(dir, &format!("{plugin}-{version}.wasm"), &stamped(base, version), plugin, version);
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        let db = dir.path().join("warden.db");
        Env { dir, db }
    }

    pub fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub async fn start(&self, extra: &[&str]) -> Server {
        let mut sets: Vec<String> = vec![
            format!("plugin_dir={:?}", self.plugins().display().to_string()),
            format!("data_dir={:?}", shared_data().path().display().to_string()),
            format!("storage.url={:?}", format!("sqlite://{}", self.db.display())),
            "net.ws_addr=\"127.0.0.1:0\"".into(),
            "net.tcp_addr=\"127.0.0.1:0\"".into(),
            "admin.addr=\"127.0.0.1:0\"".into(),
            "auth.secret=\"test-secret-0123456789\"".into(),
            format!("deploy.trusted_keys=[{:?}]", keys().pk),
            "deploy.debounce_ms=30".into(),
            "deploy.settle_ms=150".into(),
            "deploy.rescan_ms=300".into(),
            "deploy.signature_wait_ms=600".into(),
            "rooms.empty_grace_ms=60000".into(),
            // Players here wait, silent, while a version compiles; on a loaded machine a debug build can
            // take longer than the default 30 s idle timeout, which would close them.
            "net.idle_timeout_ms=600000".into(),
            // Every room at once unless a test asks for a canary.
            "rollout.strategy=\"immediate\"".into(),
            // No test here is about call latency, which is wall time: on a loaded machine a debug build's
            // p99 can pass 10x the one measured before a deploy, and a latency breach would roll back a
            // version a test expects to advance (a loaded CI run timed out waiting for a canary to
            // advance in rollback::a_version_that_passes_canary_but_fails_probation...).
            "health.latency_factor=0.0".into(),
            // The watchdog audits what it finds; on a loaded machine a room can run late for long enough,
            // and its entry would come between the entries these tests read. tests/inspect.rs tests it.
            "watchdog.enabled=false".into(),
        ];
        sets.extend(extra.iter().map(|s| s.to_string()));
        let config = Config::load(None, Vec::new(), &sets).expect("test configuration");
        Server::start(config).await.expect("server starts")
    }
}

/// A player with a token (the servers here are not in dev mode).
pub async fn player(endpoint: &warden::net::client::Endpoint, game: &str, room: &str) -> srv::Player {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!("p{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let token = warden::net::auth::mint(b"test-secret-0123456789", &id, warden::net::auth::unix_now() + 3600);
    let (mut tx, mut rx) = warden::net::client::connect(endpoint).await.unwrap();
    let id = warden::net::client::handshake(&mut tx, &mut rx, Some(token), game, room).await.unwrap();
    srv::Player { id, tx, rx }
}

/// A server in a fresh environment serving `plugin` 1.0.0 (built from `base`), and its deploy events.
pub async fn serving(base: &str, plugin: &str, extra: &[&str]) -> (Env, PathBuf, Server, broadcast::Receiver<DeployEvent>) {
    let env = Env::new();
    let dir = env.plugins();
    drop_version(&dir, base, plugin, "1.0.0");
    let server = env.start(extra).await;
    assert_eq!(active(&server, plugin), "1.0.0");
    let events = server.deployer().subscribe();
    (env, dir, server, events)
}

pub fn active(server: &Server, game: &str) -> String {
    server.room_manager().game(game).expect("game loaded").active().manifest().version.clone()
}

/// The next event matching `pred`, within `within`.
pub async fn next_event(
    events: &mut broadcast::Receiver<DeployEvent>,
    within: Duration,
    pred: impl Fn(&DeployEvent) -> bool,
) -> DeployEvent {
    tokio::time::timeout(within, async {
        loop {
            let event = events.recv().await.expect("the deployer is running");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the expected deploy event arrives")
}

pub async fn deployed(events: &mut broadcast::Receiver<DeployEvent>, want: &str) {
    deployed_within(events, want, WAIT).await;
}

/// How long a Python or JavaScript component (12 to 19 MB, CPython or StarlingMonkey inside) may take to
/// deploy: a cold compile takes about 10 s in a debug build on an idle machine, and several times that on
/// a loaded one while other tests compile the same.
pub const BIG_COMPONENT: Duration = Duration::from_secs(600);

/// [`deployed`], waiting up to `within`.
pub async fn deployed_within(events: &mut broadcast::Receiver<DeployEvent>, want: &str, within: Duration) {
    let event = next_event(events, within, |e| !matches!(e, DeployEvent::RolledBack { .. } | DeployEvent::Advanced { .. })).await;
    match event {
        DeployEvent::Deployed { version, .. } if version == want => {}
        other => panic!("expected {want} to deploy, got {other:?}"),
    }
}
