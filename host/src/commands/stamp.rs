//! `warden stamp FILE --version V`: re-version a built plugin without rebuilding it, by appending a
//! `warden-manifest` section (the last one wins; the code is untouched and shares its compiled form).

use crate::runtime::manifest::{self, HOST_WIT_VERSION, Manifest};
use anyhow::{Context as _, Result, bail};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Arguments of `warden stamp`.
#[derive(clap::Args, Debug)]
pub struct StampArgs {
    /// The plugin component (.wasm).
    pub file: PathBuf,
    /// The new version (semver, e.g. 1.4.2).
    #[arg(long)]
    pub version: String,
    /// The plugin name, for a component that has no manifest yet (else its manifest's name is kept).
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the stamped file [default: NAME-VERSION.wasm next to FILE].
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Runs `warden stamp`.
pub fn run(args: StampArgs) -> Result<()> {
    let shown = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| format!("failed to read {shown}"))?;
    if let Err(e) = semver::Version::parse(&args.version) {
        bail!("--version {:?} is not a semver version ({e}); write it like 1.4.2", args.version);
    }
    let manifest = match (manifest::read(&bytes), &args.name) {
        (Ok(m), None) => Manifest { version: args.version.clone(), ..m },
        (Ok(m), Some(name)) if *name == m.name => Manifest { version: args.version.clone(), ..m },
        (Ok(m), Some(name)) => bail!("{shown} is plugin {:?}, not {name:?}: a stamp changes the version, not the name", m.name),
        (Err(_), Some(name)) => Manifest { name: name.clone(), version: args.version.clone(), wit: HOST_WIT_VERSION.into(), sdk: None },
        (Err(e), None) => bail!("{shown} has no readable manifest ({e}); give the plugin's name with --name"),
    };
    let stamped = manifest::stamp(&bytes, &manifest);
    // The result must read back as what was asked for.
    let check = manifest::read(&stamped).map_err(|e| anyhow::anyhow!("the stamped file does not read back: {e}"))?;
    if check.version != manifest.version || check.name != manifest.name {
        bail!("the stamped file reads back as {} {}, not {} {}", check.name, check.version, manifest.name, manifest.version);
    }
    let out = args.out.unwrap_or_else(|| args.file.with_file_name(format!("{}-{}.wasm", manifest.name, manifest.version)));
    if out.exists() && !args.force {
        bail!("{} exists; choose another --out, or add --force to overwrite it", out.display());
    }
    // Written under a temporary name and renamed, so a watched plugin directory never sees half a file.
    let tmp = out.with_file_name(format!(".{}.tmp", out.file_name().and_then(|n| n.to_str()).unwrap_or("stamped")));
    std::fs::write(&tmp, &stamped).with_context(|| format!("failed to write {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("failed to move {} to {}", tmp.display(), out.display()))?;
    let sha256: String = Sha256::digest(&stamped).iter().map(|b| format!("{b:02x}")).collect();
    println!("{}: {} {} (sha256 {sha256}); sign it with `warden sign {}`", out.display(), manifest.name, manifest.version, out.display());
    Ok(())
}
