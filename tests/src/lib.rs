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

/// The Python that builds Python plugins: the virtual environment `scripts/build-plugins` makes
/// (`WARDEN_PYTHON` overrides).
pub fn python() -> PathBuf {
    let path = std::env::var_os("WARDEN_PYTHON").map(PathBuf::from).unwrap_or_else(|| target_dir().join("python-venv/bin/python"));
    assert!(path.exists(), "{} is missing: run scripts/build-plugins, which makes it", path.display());
    path
}

/// Builds a variant of the Python plugin `plugins/<name>` from source, as `scripts/build-plugins` builds
/// the plugin itself: a copy of its directory, changed by `edit`, through the Python SDK's build
/// (componentize-py). Returns the component (its manifest says the name and version of its
/// `pyproject.toml`).
pub fn python_variant(name: &str, edit: impl FnOnce(&Path)) -> Vec<u8> {
    plugin_variant(name, edit, |copy, out, root| {
        let mut command = Command::new(python());
        command.args(["-m", "warden_sdk.build"]).arg(copy).arg("-o").arg(out).env("PYTHONPATH", root.join("guest-sdk/python"));
        command
    })
}

/// The same for the JavaScript plugin `plugins/<name>`, through the JavaScript SDK's build (esbuild and
/// componentize-js, installed by `scripts/build-plugins`).
pub fn js_variant(name: &str, edit: impl FnOnce(&Path)) -> Vec<u8> {
    plugin_variant(name, edit, |copy, out, root| {
        let mut command = Command::new("node");
        command.arg(root.join("guest-sdk/js/build.mjs")).arg(copy).arg("-o").arg(out);
        command
    })
}

/// A copy of `plugins/<name>`'s files (not its directories), changed by `edit`, built by `build(copy,
/// out, repository root)`.
fn plugin_variant(name: &str, edit: impl FnOnce(&Path), build: impl FnOnce(&Path, &Path, &Path) -> Command) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(name);
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(root.join("plugins").join(name)).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    edit(&copy);
    let out = dir.path().join("out.wasm");
    let built = build(&copy, &out, &root).output().expect("the plugin's build runs");
    assert!(built.status.success(), "building a variant of {name} failed: {}", String::from_utf8_lossy(&built.stderr));
    std::fs::read(out).unwrap()
}

/// The `warden` binary of this build (`WARDEN_BIN` overrides: benchmarks run a release build).
pub fn warden_bin() -> PathBuf {
    let path = std::env::var_os("WARDEN_BIN").map(PathBuf::from).unwrap_or_else(|| target_dir().join("debug/warden"));
    assert!(path.exists(), "{} is not built: run `cargo build -p warden` (cargo test --workspace builds it)", path.display());
    path
}

/// A benchmark's whole-number setting from the environment variable `name`, or `default`.
pub fn bench_knob(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a whole number"))).unwrap_or(default)
}

/// CPU seconds this process has used, user and system, all threads (Linux: 100 clock ticks a second).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable on Linux");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat has a command").1.split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
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
            // Call latency is wall time: on a loaded machine a version's p99 can pass its predecessor's many
            // times over, and the health monitor would roll back a version a test expects to keep (seen:
            // 8,191 against 511 us rolled 0.2.2 back before durable.rs's operator rollback, which then took
            // 0.2.1 back to 0.2.0). host/tests/rollout.rs tests the latency rule; a test may set it again.
            .args(["--set", "health.latency_factor=0.0"])
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

/// A store for one test: a SQLite file in a temporary directory, or a database of its own on the
/// PostgreSQL server that `WARDEN_TEST_DATABASE_URL` names (created for the test, dropped after it).
pub struct TestStore {
    /// The store's URL (`storage.url`).
    pub url: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The SQLite file's directory.
    pub dir: Option<tempfile::TempDir>,
    /// The server's URL and the database made for the test.
    pg: Option<(String, String)>,
}

impl TestStore {
    /// A SQLite store in a new temporary directory.
    pub fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("warden.db").display());
        TestStore { url, backend: "sqlite", dir: Some(dir), pg: None }
    }

    /// A new, empty PostgreSQL database for `test`, or `None` (recorded as skipped) when
    /// `WARDEN_TEST_DATABASE_URL` is not set.
    pub async fn postgres(test: &str) -> Option<TestStore> {
        let Ok(server) = std::env::var("WARDEN_TEST_DATABASE_URL") else {
            record_skip(test);
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut name: String = format!("warden_{}_{}_{n}", test.to_ascii_lowercase(), std::process::id())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        name = name.chars().rev().take(63).collect::<String>().chars().rev().collect();
        let url = pg_database_url(&server, &name);
        pg_admin(&server, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        pg_admin(&server, &format!("CREATE DATABASE \"{name}\"")).await;
        Some(TestStore { url, backend: "postgres", dir: None, pg: Some((server, name)) })
    }

    /// SQLite, and PostgreSQL when the machine has it: the backends a storage test runs against.
    pub async fn all(test: &str) -> Vec<TestStore> {
        let mut stores = vec![TestStore::sqlite()];
        stores.extend(TestStore::postgres(test).await);
        stores
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((server, name)) = self.pg.take() {
            // A runtime of its own on a thread of its own: drop may run inside a test's runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                rt.block_on(pg_admin(&server, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")));
            })
            .join();
        }
    }
}

/// `server` (a PostgreSQL URL) with its database replaced by `database`.
pub fn pg_database_url(server: &str, database: &str) -> String {
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").expect("a PostgreSQL URL has a scheme");
    let authority = rest.split('/').next().unwrap_or(rest);
    match query {
        Some(q) => format!("{scheme}://{authority}/{database}?{q}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// Runs one statement on the PostgreSQL server (panics with the reason if it cannot).
async fn pg_admin(server: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to WARDEN_TEST_DATABASE_URL ({server}): {e}; is PostgreSQL running?"));
    sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// Notes that `test` did not run on PostgreSQL; `scripts/test` lists these at the end.
fn record_skip(test: &str) {
    use std::io::Write as _;
    eprintln!("{test}: skipped on PostgreSQL (WARDEN_TEST_DATABASE_URL is not set)");
    let path = target_dir().join("postgres-skipped.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{test}");
    }
}

/// A TCP proxy (between a host and PostgreSQL, say) that passes bytes, resets every connection and
/// refuses new ones ([`Proxy::cut`]), or holds every byte without closing anything ([`Proxy::blackhole`]:
/// a network partition, as the host sees it).
pub struct Proxy {
    /// Where to connect instead of the target.
    pub addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    hole: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    /// A proxy to `target` (`host:port`) on a port of its own on 127.0.0.1.
    pub async fn start(target: String) -> Proxy {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy =
            Proxy { addr: listener.local_addr().unwrap(), cut: Default::default(), hole: Default::default(), links: Default::default() };
        let (cut, hole, links) = (proxy.cut.clone(), proxy.hole.clone(), proxy.links.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if cut.load(SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let (target, hole) = (target.clone(), hole.clone());
                let link = tokio::spawn(async move {
                    while hole.load(SeqCst) {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                    if let Ok(server) = tokio::net::TcpStream::connect(&target).await {
                        let ((client_in, client_out), (server_in, server_out)) = (client.into_split(), server.into_split());
                        tokio::join!(pump(client_in, server_out, hole.clone()), pump(server_in, client_out, hole));
                    }
                });
                links.lock().unwrap().push(link.abort_handle());
            }
        });
        proxy
    }

    /// A proxy in front of the PostgreSQL server that `url` names, and `url` going through it.
    pub async fn before_postgres(url: &str) -> (Proxy, String) {
        let authority = url.split_once("://").expect("a PostgreSQL URL has a scheme").1.split(['/', '?']).next().unwrap().to_string();
        let (user, target) = authority.rsplit_once('@').map_or(("", authority.as_str()), |(u, h)| (u, h));
        let proxy = Proxy::start(target.to_string()).await;
        let through = match user {
            "" => url.replacen(&authority, &proxy.addr.to_string(), 1),
            user => url.replacen(&authority, &format!("{user}@{}", proxy.addr), 1),
        };
        assert_ne!(through, url, "the URL goes through the proxy");
        (proxy, through)
    }

    /// Drops every connection through it and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Holds every byte in either direction, and every new connection, without closing anything.
    pub fn blackhole(&self) {
        self.hole.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets connections and bytes through again (what a blackhole held goes on).
    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
        self.hole.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes from `from` to `to`, holding them while `hole` is set (the end of the stream too: a
/// partition does not let a closing connection's FIN through either).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    hole: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0; 16 * 1024];
    loop {
        let read = from.read(&mut buf).await;
        while hole.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
