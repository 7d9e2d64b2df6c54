//! `warden keygen`, `warden sign` and `warden verify`: minisign-compatible plugin signatures.

use super::config_args::ConfigArgs;
use crate::deploy::pipeline;
use crate::deploy::sign::{self, TrustedKey};
use anyhow::{Context as _, Result, bail};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `warden keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// Directory to write the key pair to.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// File name stem: writes NAME.key (secret, mode 0600) and NAME.pub.
    #[arg(long, default_value = "warden")]
    pub name: String,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

/// Runs `warden keygen`.
pub fn keygen(args: KeygenArgs) -> Result<()> {
    let (sk_path, pk_path) = (args.out_dir.join(format!("{}.key", args.name)), args.out_dir.join(format!("{}.pub", args.name)));
    for path in [&sk_path, &pk_path] {
        if path.exists() && !args.force {
            bail!("{} already exists: pass --force to replace it (signatures made with the old key will no longer verify)", path.display());
        }
    }
    let (sk, pk, pk_line) = sign::keygen()?;
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("failed to create {}", args.out_dir.display()))?;
    write_private(&sk_path, sk.as_bytes())?;
    std::fs::write(&pk_path, pk).with_context(|| format!("failed to write {}", pk_path.display()))?;
    println!("secret key: {} (keep it secret: CI signs with it; it has no password)", sk_path.display());
    println!("public key: {}", pk_path.display());
    println!("trust it in warden.toml:\n\n[deploy]\ntrusted_keys = [\"{pk_line}\"]");
    Ok(())
}

/// Writes `bytes` to `path`, readable by its owner only (mode 0600): secret keys, the admin token.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// Arguments of `warden sign`.
#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The plugin to sign; the signature goes to FILE.minisig.
    pub file: PathBuf,
    /// Secret key (ours, or minisign's; a password-protected one reads WARDEN_SIGNING_PASSWORD).
    #[arg(long, short = 'k', value_name = "KEY")]
    pub key: PathBuf,
}

/// Runs `warden sign`: the trusted comment carries the name and version from the embedded manifest.
pub fn sign(args: SignArgs) -> Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("failed to read {}", args.file.display()))?;
    let manifest =
        crate::runtime::manifest::read(&bytes).with_context(|| format!("{} cannot be signed as a plugin", args.file.display()))?;
    let sk = sign::read_secret_key(&args.key)?;
    let text = sign::sign(&bytes, &sk, &manifest.name, &manifest.version)?;
    let sig_path = sign::signature_path(&args.file);
    std::fs::write(&sig_path, text).with_context(|| format!("failed to write {}", sig_path.display()))?;
    println!("signed {} {} -> {}", manifest.name, manifest.version, sig_path.display());
    Ok(())
}

/// Arguments of `warden verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The plugin to check (its signature is FILE.minisig).
    pub file: PathBuf,
    /// A trusted public key (a `.pub` file or the `RW...` line); repeatable. Default: deploy.trusted_keys
    /// of the configuration.
    #[arg(long, short = 'k', value_name = "KEY")]
    pub key: Vec<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

/// The trusted keys from `--key`, or else from the configuration.
pub fn trusted_keys(keys: &[String], config: &crate::config::Config) -> Result<Vec<TrustedKey>> {
    let specs = if keys.is_empty() { &config.deploy.trusted_keys } else { keys };
    if specs.is_empty() {
        bail!("no trusted key: pass --key FILE.pub, or set deploy.trusted_keys in warden.toml");
    }
    specs.iter().map(|k| TrustedKey::parse(k)).collect()
}

/// Runs `warden verify`: signature, trusted comment and names, as the server checks them.
pub fn verify(args: VerifyArgs) -> Result<()> {
    let config = args.config.load(Vec::new())?;
    let trusted = trusted_keys(&args.key, &config)?;
    let checked = pipeline::read_and_verify(&args.file, config.deploy.max_plugin_bytes, &trusted, false)
        .map_err(|r| anyhow::anyhow!("{}: {r}; fix: {}", args.file.display(), r.fix()))?;
    let signed = checked.signed.expect("unsigned files are refused here");
    println!("ok: {} {} signed by key {}", checked.manifest.name, checked.manifest.version, signed.key_id);
    Ok(())
}
