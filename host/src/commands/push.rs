//! `warden push <file.wasm> --to <plugin-dir>`: the CI side of a deploy.

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
    #[arg(long, value_name = "PLUGIN_DIR")]
    pub to: PathBuf,
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

    if !args.to.is_dir() {
        bail!("{} is not a directory: pass the server's plugin directory (plugin_dir) to --to", args.to.display());
    }
    let m = &checked.manifest;
    let target = args.to.join(format!("{}-{}.wasm", m.name, m.version));
    if target.exists() {
        bail!("{} already exists: a version is deployed once; bump the version to deploy again", target.display());
    }
    let sig = std::fs::read(sign::signature_path(&args.file)).context("failed to read the signature")?;
    place(&sign::signature_path(&target), &sig)?;
    place(&target, &checked.bytes)?;
    println!("pushed {} {} to {}", m.name, m.version, target.display());
    Ok(())
}

/// Writes `bytes` to a hidden temp file beside `target`, syncs it, and renames it into place.
fn place(target: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let name = target.file_name().and_then(|n| n.to_str()).context("a file name")?;
    let temp = target.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&temp).with_context(|| format!("failed to write {}", temp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, target).with_context(|| format!("failed to move {} into place", target.display()))?;
    Ok(())
}
