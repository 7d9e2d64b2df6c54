//! `warden dev DIR`: the edit-to-live loop. Builds the plugin project in DIR (Rust, Python or
//! JavaScript, as `warden new` writes them), stamps a development version above everything the server
//! has seen of the plugin, checks it as the server will (names, compile, `game` world, smoke test; the
//! compile lands in the server's own cache, so the server's load is a cache hit), drops it into the
//! server's plugin directory, and follows it through the server's admin endpoint until every room runs
//! it with its state carried over (promoting it past the canary share at once: a `--dev` server is one
//! developer's). Then it watches DIR and does the same on every save. Each build error, rejection and
//! swap result is one line, with the time from the save to the rooms running the new code.

mod build;

use super::operate::AdminArgs;
use crate::admin::Client;
use crate::deploy::pipeline;
use crate::runtime::{Limits, Runtime};
use anyhow::{Context as _, Result, bail};
use build::{BuildFailed, Project, Tools};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Arguments of `warden dev`.
#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// The plugin project: a directory with Cargo.toml (Rust), app.py and pyproject.toml (Python), or
    /// app.js and package.json (JavaScript).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    admin: AdminArgs,
    /// The Warden repository whose SDKs Python and JavaScript projects build with [default: the one this
    /// binary was built from].
    #[arg(long, value_name = "REPO")]
    pub sdk: Option<PathBuf>,
    /// The Python that has componentize-py (for Python projects).
    #[arg(long, env = "WARDEN_PYTHON", default_value = "python3")]
    pub python: PathBuf,
    /// Build and deploy once, wait for the result, and exit (status 1 if it did not go live).
    #[arg(long)]
    pub once: bool,
    /// How long to wait for the server to run a version in every room.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub wait: u64,
}

/// Runs `warden dev`.
pub fn run(args: DevArgs) -> Result<()> {
    let dir = args.dir.canonicalize().with_context(|| format!("{} is not there", args.dir.display()))?;
    let project = Project::find(&dir)?;
    let config = args.admin.config()?;
    if !config.plugin_dir.is_dir() {
        bail!(
            "the server's plugin directory {} is not there: run `warden dev` with the server's configuration",
            config.plugin_dir.display()
        );
    }
    let client = args.admin.client()?;
    let tools = Tools { sdk: super::new::sdk_repo(args.sdk.clone())?, python: args.python.clone() };
    // The server's compile cache: what is compiled here to check it is a cache hit there.
    let limits = Limits { max_instances: 4, ..config.limits.clone() };
    let runtime = Runtime::new(limits, Some(config.data_dir.join("cache")))?;
    let dev = Dev {
        project,
        tools,
        runtime,
        client,
        plugin_dir: config.plugin_dir.clone(),
        staging: config.data_dir.join("dev"),
        wait: Duration::from_secs(args.wait),
        written: Vec::new(),
    };
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(dev.run(args.once))
}

struct Dev {
    project: Project,
    tools: Tools,
    runtime: Runtime,
    client: Client,
    plugin_dir: PathBuf,
    /// Where builds are written before they are checked (under the server's data directory).
    staging: PathBuf,
    wait: Duration,
    /// The files this session put in the plugin directory, oldest first.
    written: Vec<PathBuf>,
}

/// How one round went.
enum Round {
    /// Every room runs the new version.
    Live,
    /// It did not go live (a build error, a rejection, a rollback): the server serves what it did.
    Failed,
}

impl Dev {
    async fn run(mut self, once: bool) -> Result<()> {
        let p = &self.project;
        println!("warden dev: {} ({:?}) in {}, into {}", p.name, p.lang, p.dir.display(), self.plugin_dir.display());
        let round = self.round(Instant::now()).await;
        if once {
            return match round {
                Round::Live => Ok(()),
                Round::Failed => bail!("{} did not go live", self.project.name),
            };
        }
        let (tx, mut saved) = mpsc::unbounded_channel();
        let _watcher = watch(&self.project.dir, tx)?;
        println!("watching {} for changes (Ctrl-C to stop)", self.project.dir.display());
        while let Some(first) = saved.recv().await {
            // An editor's save is several events: wait until they stop, then build once.
            while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(30), saved.recv()).await {}
            self.round(first).await;
        }
        Ok(())
    }

    /// Builds, checks, deploys and follows one version; `saved` is when the change was seen.
    async fn round(&mut self, saved: Instant) -> Round {
        let version = match self.next_version().await {
            Ok(v) => v,
            Err(e) => {
                println!("failed: {e:#}");
                return Round::Failed;
            }
        };
        let name = self.project.name.clone();
        if let Err(e) = std::fs::create_dir_all(&self.staging) {
            println!("failed: cannot create {}: {e}", self.staging.display());
            return Round::Failed;
        }
        let file_name = format!("{name}-{version}.wasm");
        let built = self.staging.join(&file_name);
        let (project, tools, out) = (self.project.clone(), self.tools.clone(), built.clone());
        let v = version.clone();
        let result = tokio::task::spawn_blocking(move || project.build(&v, &out, &tools)).await;
        let build_time = saved.elapsed();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(BuildFailed(errors))) => {
                for error in errors.iter().take(10) {
                    println!("build failed: {}", one_line(error));
                }
                return Round::Failed;
            }
            Err(e) => {
                println!("build failed: {e}");
                return Round::Failed;
            }
        }
        let checked = self.check(&built, &file_name);
        let _ = std::fs::remove_file(&built);
        let bytes = match checked {
            Ok(bytes) => bytes,
            Err(e) => {
                println!("rejected: {name} {version}: {e}");
                return Round::Failed;
            }
        };
        let target = self.plugin_dir.join(&file_name);
        if let Err(e) = super::push::place(&target, &bytes) {
            println!("failed: {e:#}");
            return Round::Failed;
        }
        self.written.push(target);
        let outcome = self.follow(&version.to_string()).await;
        let total = saved.elapsed();
        match outcome {
            Ok(rooms) => {
                println!(
                    "live: {name} {version} in {rooms} room(s), state carried over (save to live {:.2} s: build {:.2} s, check and swap {:.2} s)",
                    total.as_secs_f64(),
                    build_time.as_secs_f64(),
                    (total - build_time).as_secs_f64()
                );
                self.forget_old();
                Round::Live
            }
            Err(e) => {
                println!("not live: {name} {version}: {e}");
                Round::Failed
            }
        }
    }

    /// The next development version: the patch after the newest version of the plugin that the project
    /// or the server has, with a `dev.<milliseconds>` pre-release, so that each is newer than the last
    /// and below the release it leads to.
    async fn next_version(&self) -> Result<semver::Version> {
        let mut base = self.project.version.clone();
        let status = self
            .client
            .status()
            .await
            .context("the server's admin endpoint does not answer (is `warden serve --dev` running with this configuration?)")?;
        if let Some(plugin) = status.plugins.iter().find(|p| p.name == self.project.name) {
            for v in plugin.versions.iter().filter_map(|v| semver::Version::parse(&v.version).ok()) {
                base = base.max(v);
            }
        }
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
        let patch = if base.pre.is_empty() { base.patch + 1 } else { base.patch };
        let mut next = semver::Version::new(base.major, base.minor, patch);
        next.pre = semver::Prerelease::new(&format!("dev.{ms}"))?;
        Ok(next)
    }

    /// The server's checks that can be made here: names, compile, the `game` world and a smoke test.
    /// Returns the file's bytes.
    fn check(&self, built: &Path, file_name: &str) -> Result<Vec<u8>> {
        let bytes = std::fs::read(built).with_context(|| format!("failed to read {}", built.display()))?;
        let fail = |r: pipeline::Rejection| anyhow::anyhow!("{r}; fix: {}", r.fix());
        let checked = pipeline::verify(file_name, bytes, None, (u64::MAX, &[], true), "").map_err(fail)?;
        pipeline::compile_and_smoke(&self.runtime, &checked.bytes, None, &[]).map_err(fail)?;
        Ok(checked.bytes)
    }

    /// Follows `version` on the server until every room of the plugin runs it; the number of rooms.
    async fn follow(&self, version: &str) -> Result<usize> {
        let name = &self.project.name;
        let deadline = Instant::now() + self.wait;
        let mut promoted = false;
        loop {
            let status = self.client.status().await?;
            let plugin = status.plugins.iter().find(|p| p.name == *name);
            if let Some(v) = plugin.and_then(|p| p.versions.iter().find(|v| v.version == version)) {
                let rooms: usize = plugin.map_or(0, |p| p.versions.iter().map(|v| v.rooms).sum());
                match v.state.as_str() {
                    "canary" if !promoted => {
                        self.client.action(name, "promote", &()).await?;
                        promoted = true;
                    }
                    "probation" | "active" | "stable" if v.rooms == rooms => return Ok(rooms),
                    "bad" => {
                        let why = status.rollbacks.first().map_or(String::new(), |r| format!(": {}", r.detail));
                        bail!("rolled back{why}");
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                bail!("the server did not run it within {} s (its log says why)", self.wait.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes this session's older files from the plugin directory, keeping the two newest (the one
    /// serving, and the one a rollback goes back to).
    fn forget_old(&mut self) {
        while self.written.len() > 2 {
            let old = self.written.remove(0);
            let _ = std::fs::remove_file(&old);
        }
    }
}

/// Sends when a source file of the project changes (build outputs and dependencies left out).
fn watch(dir: &Path, tx: mpsc::UnboundedSender<Instant>) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if !(event.kind.is_modify() || event.kind.is_create() || event.kind.is_remove()) {
            return;
        }
        if event.paths.iter().any(|p| is_source(p)) {
            let _ = tx.send(Instant::now());
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive).with_context(|| format!("failed to watch {}", dir.display()))?;
    Ok(watcher)
}

/// Whether a changed path is a source: not under a build or dependency directory, not a build output,
/// not an editor's temporary file.
fn is_source(path: &Path) -> bool {
    const SKIP: [&str; 6] = ["target", "node_modules", "__pycache__", ".git", ".pytest_cache", "dist"];
    if path.components().any(|c| SKIP.iter().any(|s| c.as_os_str() == *s)) {
        return false;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    !(name.starts_with('.') || name.ends_with('~') || name.ends_with(".wasm") || name.ends_with(".swp") || name == "Cargo.lock")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_what_a_developer_edits() {
        for source in ["/p/src/lib.rs", "/p/app.py", "/p/game.js", "/p/Cargo.toml", "/p/package.json"] {
            assert!(is_source(Path::new(source)), "{source}");
        }
        for output in [
            "/p/target/release/x.rs",
            "/p/node_modules/a/index.js",
            "/p/__pycache__/g.pyc",
            "/p/.game.py.swp",
            "/p/x.wasm",
            "/p/Cargo.lock",
        ] {
            assert!(!is_source(Path::new(output)), "{output}");
        }
    }
}
