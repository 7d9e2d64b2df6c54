//! `warden push <file.wasm> --to <plugin-dir>` (one host), or `warden push <file.wasm> --fleet` (every
//! host of the fleet on `storage.url`): the CI side of a deploy.

use super::config_args::ConfigArgs;
use crate::deploy::{pipeline, sign};
use crate::runtime::Runtime;
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};

/// Arguments of `warden push`.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The signed plugin (its signature is FILE.minisig).
    pub file: PathBuf,
    /// The server's plugin directory.
    #[arg(long, value_name = "PLUGIN_DIR", required_unless_present = "fleet", conflicts_with = "fleet")]
    pub to: Option<PathBuf>,
    /// Push to the fleet on `storage.url` (PostgreSQL) instead: the file is stored there by its sha256,
    /// and the host running the fleet's rollouts deploys it (every host checks it again), as if it had
    /// been put in a plugin directory. Waits for that host's answer unless `--no-wait`.
    #[arg(long)]
    pub fleet: bool,
    /// With `--fleet`: return once the version is queued.
    #[arg(long, requires = "fleet")]
    pub no_wait: bool,
    /// A trusted public key (a `.pub` file or the `RW...` line); repeatable. Default: deploy.trusted_keys
    /// of the configuration.
    #[arg(long, short = 'k', value_name = "KEY")]
    pub key: Vec<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs `warden push`: the server's checks first (size, signature, names, compile, world, smoke test;
/// the version floor is the server's to check), then the signature and the file are copied in, each
/// written to a hidden temp name and renamed, so the watcher never sees half a file.
pub fn run(args: PushArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let trusted = super::sign::trusted_keys(&args.key, &config)?;
    let refuse = |r: pipeline::Rejection| anyhow::anyhow!("{} would be rejected: {r}; fix: {}", args.file.display(), r.fix());
    let checked = pipeline::read_and_verify(&args.file, config.deploy.max_plugin_bytes, &trusted, false).map_err(refuse)?;
    let runtime = Runtime::new(config.limits.clone(), None)?;
    let settings = config.plugins.get(&checked.manifest.name).cloned().unwrap_or_default();
    pipeline::compile_and_smoke(&runtime, &checked.bytes, None, &crate::deploy::init_config(&settings)?).map_err(refuse)?;

    let m = &checked.manifest;
    let Some(to) = &args.to else { return push_to_fleet(&config.storage_url(), &checked, args.no_wait) };
    if !to.is_dir() {
        bail!("{} is not a directory: pass the server's plugin directory (plugin_dir) to --to", to.display());
    }
    let target = to.join(format!("{}-{}.wasm", m.name, m.version));
    if target.exists() {
        bail!("{} already exists: a version is deployed once; bump the version to deploy again", target.display());
    }
    let sig = std::fs::read(sign::signature_path(&args.file)).context("failed to read the signature")?;
    place(&sign::signature_path(&target), &sig)?;
    place(&target, &checked.bytes)?;
    println!("pushed {} {} to {}", m.name, m.version, target.display());
    Ok(())
}

/// Stores the checked file in the fleet's PostgreSQL and queues it for the rollout's leader; unless
/// `no_wait`, waits (up to 120 s) for the leader's answer: deployed, or rejected and why.
fn push_to_fleet(url: &str, checked: &pipeline::CheckedFile, no_wait: bool) -> Result<()> {
    use crate::storage::{Store, fleet_deploy::Artifact, redact};
    use sha2::Digest as _;
    let m = &checked.manifest;
    let sha256 = hex::encode(sha2::Sha256::digest(&checked.bytes));
    let artifact = Artifact {
        sha256: sha256.clone(),
        plugin: m.name.clone(),
        version: m.version.clone(),
        bytes: checked.bytes.clone(),
        signature: checked.signature.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open(url).await.with_context(|| format!("cannot open the store {}", redact(url)))?;
        let Store::Postgres(pg) = store else {
            bail!("--fleet needs storage.url to name the fleet's PostgreSQL (postgres://USER@HOST:PORT/DATABASE), not {}", redact(url));
        };
        pg.push_artifact(&artifact).await?;
        println!("queued {} {} (sha256 {sha256}) for the fleet on {}", m.name, m.version, redact(url));
        if no_wait {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            match pg.push_state(&sha256).await?.unwrap_or_default() {
                (state, _) if state == "deployed" => {
                    println!("deployed {} {} to the fleet: every host takes it from the registry (`warden fleet` lists who has it ready)", m.name, m.version);
                    return Ok(());
                }
                (state, detail) if state == "rejected" => bail!("the fleet rejected {} {}: {detail}", m.name, m.version),
                _ if std::time::Instant::now() >= deadline => bail!(
                    "no host of the fleet took {} {} within 120 s (is a host live? `warden fleet` says); it stays queued and deploys when one does",
                    m.name,
                    m.version
                ),
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    })
}

/// Writes `bytes` to a hidden temp file beside `target`, syncs it, and renames it into place.
pub(crate) fn place(target: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let name = target.file_name().and_then(|n| n.to_str()).context("a file name")?;
    let temp = target.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&temp).with_context(|| format!("failed to write {}", temp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, target).with_context(|| format!("failed to move {} into place", target.display()))?;
    Ok(())
}
