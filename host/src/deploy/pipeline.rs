//! The checks a plugin file passes before it serves, in order, each with a typed rejection: size cap,
//! read once, signature against the trusted keys, name and version agreement (file name, trusted
//! comment, embedded manifest), the durable version floor, compile (or cache), the `game` world, and a
//! smoke test in a scratch store. Nothing here touches a live room.

use super::sign::{self, SignatureError, TrustedKey, Verified};
use crate::runtime::manifest::{self, Manifest};
use crate::runtime::{InstanceEnv, LoadError, Plugin, RoomInfo, Runtime};
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a plugin file was not deployed. `Display` is the reason; [`Rejection::fix`] says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// Larger than `deploy.max_plugin_bytes`.
    #[error("the file is {size} bytes, above the {cap}-byte cap")]
    TooLarge {
        /// File size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Could not be read.
    #[error("the file could not be read: {0}")]
    Unreadable(String),
    /// No `.minisig` beside it.
    #[error("the file is not signed: no {0} beside it")]
    Unsigned(String),
    /// The signature does not check.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// Not a plugin this host can run (not wasm, a core module, truncated, another world, ...).
    #[error("{0}")]
    Load(#[from] LoadError),
    /// File name, trusted comment and manifest disagree.
    #[error("the names disagree: {0}")]
    Mismatch(String),
    /// At or below the plugin's version floor.
    #[error("version {version} is not above the floor {floor} of {plugin} (no downgrades, no re-deploys of an old file)")]
    NotAboveFloor {
        /// Plugin.
        plugin: String,
        /// The file's version.
        version: String,
        /// The floor.
        floor: String,
    },
    /// The version was rolled back before.
    #[error("{plugin} {version} was marked bad ({why})")]
    MarkedBad {
        /// Plugin.
        plugin: String,
        /// Version.
        version: String,
        /// When and why.
        why: String,
    },
    /// The smoke test in a scratch store failed.
    #[error("the smoke test failed: {0}")]
    Smoke(String),
    /// The store could not be read or written.
    #[error("the registry could not be read or written: {0}")]
    Store(String),
}

impl Rejection {
    /// A short, stable name for the kind of rejection (in audit entries and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } => "too-large",
            Rejection::Unreadable(_) => "unreadable",
            Rejection::Unsigned(_) => "unsigned",
            Rejection::Signature(SignatureError::UnknownKey { .. }) => "unknown-key",
            Rejection::Signature(SignatureError::NotWarden(_)) => "not-a-plugin-signature",
            Rejection::Signature(_) => "bad-signature",
            Rejection::Load(LoadError::NotWasm { .. }) => "not-wasm",
            Rejection::Load(LoadError::CoreModule) => "core-module",
            Rejection::Load(LoadError::NotGameWorld { .. } | LoadError::WrongExportTypes { .. }) => "wrong-world",
            Rejection::Load(LoadError::OverLimit { .. }) => "over-limit",
            Rejection::Load(_) => "invalid-component",
            Rejection::Mismatch(_) => "name-mismatch",
            Rejection::NotAboveFloor { .. } => "below-floor",
            Rejection::MarkedBad { .. } => "marked-bad",
            Rejection::Smoke(_) => "smoke-test",
            Rejection::Store(_) => "store",
        }
    }

    /// What the operator should do.
    pub fn fix(&self) -> String {
        match self {
            Rejection::TooLarge { .. } => "check that this is the right file, or raise deploy.max_plugin_bytes".into(),
            Rejection::Unreadable(_) => "check the file's permissions and copy it again".into(),
            Rejection::Unsigned(_) => {
                "sign it (`warden sign FILE --key KEY`) and copy the .minisig first, or deploy with `warden push`, which does both in order".into()
            }
            Rejection::Signature(SignatureError::UnknownKey { .. }) => {
                "sign with a trusted key, or add the signer's public key to deploy.trusted_keys".into()
            }
            Rejection::Signature(_) => "copy the file and its signature again, or sign it again (`warden sign`)".into(),
            Rejection::Load(LoadError::OverLimit { key: Some(key), .. }) => {
                format!("raise {key} in the [limits] section of warden.toml and restart, or make the plugin smaller")
            }
            Rejection::Load(LoadError::OverLimit { key: None, .. }) => "make the plugin smaller".into(),
            Rejection::Load(_) => "rebuild the plugin with warden-sdk for wasm32-wasip2 and check it with `warden inspect`".into(),
            Rejection::Mismatch(_) => {
                "name the file NAME-VERSION.wasm (or NAME.wasm) after the manifest, and sign it again with `warden sign`, which takes both from the manifest".into()
            }
            Rejection::NotAboveFloor { .. } => "bump the plugin's version (Cargo.toml) above the floor, rebuild and sign".into(),
            Rejection::MarkedBad { .. } => "fix the plugin and release it under a higher version".into(),
            Rejection::Smoke(_) => "run the plugin's init, snapshot and restore under `warden_sdk::testing::Harness` and fix the failure".into(),
            Rejection::Store(_) => {
                "nothing was recorded and the serving version is untouched; Warden tries the file again by itself (after 1 s, \
                 doubling up to 30 s) while it is in the plugin directory: if the store stays unavailable, check storage.url"
                    .into()
            }
        }
    }
}

/// What the file name says: `NAME-VERSION.wasm` or `NAME.wasm`.
pub fn parse_file_name(file: &str) -> Option<(String, Option<semver::Version>)> {
    let stem = file.strip_suffix(".wasm")?;
    for (i, _) in stem.match_indices('-') {
        if let Ok(version) = semver::Version::parse(&stem[i + 1..])
            && i > 0
        {
            return Some((stem[..i].to_string(), Some(version)));
        }
    }
    (!stem.is_empty()).then(|| (stem.to_string(), None))
}

/// A file that passed the checks up to (not including) the floor: its bytes and what it claims.
pub struct CheckedFile {
    /// The bytes, read once.
    pub bytes: Vec<u8>,
    /// The embedded manifest.
    pub manifest: Manifest,
    /// The signature, if signed (only `dev` admits unsigned files).
    pub signed: Option<Verified>,
    /// The signature's text, as read (stored with the file for the rest of a fleet).
    pub signature: Option<String>,
    /// Time spent reading and verifying.
    pub verify_time: Duration,
}

/// Reads `path` once (within `cap` bytes), checks its signature against `trusted` (a missing signature
/// is accepted only if `allow_unsigned`), and checks that the file name, trusted comment and manifest
/// agree.
pub fn read_and_verify(path: &Path, cap: u64, trusted: &[TrustedKey], allow_unsigned: bool) -> Result<CheckedFile, Rejection> {
    let started = Instant::now();
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let size = std::fs::metadata(path).map_err(|e| Rejection::Unreadable(e.to_string()))?.len();
    if size > cap {
        return Err(Rejection::TooLarge { size, cap });
    }
    let bytes = std::fs::read(path).map_err(|e| Rejection::Unreadable(e.to_string()))?;
    let sig_path = sign::signature_path(path);
    let signature = match std::fs::read_to_string(&sig_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Rejection::Unreadable(format!("{}: {e}", sig_path.display()))),
    };
    let sig_name = sig_path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut checked = verify(&file_name, bytes, signature, (cap, trusted, allow_unsigned), &sig_name)?;
    checked.verify_time = started.elapsed();
    Ok(checked)
}

/// The checks of [`read_and_verify`] on bytes and signature text already read (from a file, or from the
/// fleet's artifacts): the cap, the signature against `trusted` (none accepted only if
/// `allow_unsigned`; `sig_name` names the missing signature), and the names against `file_name`.
pub fn verify(
    file_name: &str,
    bytes: Vec<u8>,
    signature: Option<String>,
    (cap, trusted, allow_unsigned): (u64, &[TrustedKey], bool),
    sig_name: &str,
) -> Result<CheckedFile, Rejection> {
    let started = Instant::now();
    if bytes.len() as u64 > cap {
        return Err(Rejection::TooLarge { size: bytes.len() as u64, cap });
    }
    let signed = match &signature {
        Some(text) => Some(sign::verify(&bytes, text, trusted)?),
        None if allow_unsigned => None,
        None => return Err(Rejection::Unsigned(sig_name.to_string())),
    };
    let manifest = manifest::read(&bytes)?;
    check_names(file_name, signed.as_ref(), &manifest)?;
    Ok(CheckedFile { bytes, manifest, signed, signature, verify_time: started.elapsed() })
}

/// File name, trusted comment and manifest must name the same plugin and version.
pub fn check_names(file_name: &str, signed: Option<&Verified>, manifest: &Manifest) -> Result<(), Rejection> {
    let (name, version) = (&manifest.name, &manifest.version);
    let Some((file_plugin, file_version)) = parse_file_name(file_name) else {
        return Err(Rejection::Mismatch(format!("the file name {file_name:?} is not NAME-VERSION.wasm")));
    };
    if &file_plugin != name {
        return Err(Rejection::Mismatch(format!("the file name says plugin {file_plugin:?}, the manifest says {name:?}")));
    }
    if let Some(v) = file_version
        && v.to_string() != *version
    {
        return Err(Rejection::Mismatch(format!("the file name says version {v}, the manifest says {version}")));
    }
    if let Some(s) = signed
        && (&s.name != name || &s.version != version)
    {
        return Err(Rejection::Mismatch(format!(
            "the signature's trusted comment says {} {}, the manifest says {name} {version}",
            s.name, s.version
        )));
    }
    Ok(())
}

/// Compiles (or loads from the cache) and smoke-tests a verified file. Blocking: run it off the game
/// threads.
pub fn compile_and_smoke(rt: &Runtime, bytes: &[u8], current: Option<&Plugin>, config: &[u8]) -> Result<(Plugin, Duration), Rejection> {
    let plugin = rt.load(bytes)?;
    let started = Instant::now();
    smoke(&plugin, current, config).map_err(Rejection::Smoke)?;
    Ok((plugin, started.elapsed()))
}

/// In scratch stores: `init`, `snapshot`, and `restore` of that snapshot into a second instance; then, if
/// a version serves now, `restore` of a fresh state of the serving version (the move every room makes).
pub fn smoke(plugin: &Plugin, current: Option<&Plugin>, config: &[u8]) -> Result<(), String> {
    let m = plugin.manifest();
    let info = RoomInfo { id: "smoke-test".into(), game: m.name.clone(), seed: 0, tick_hz: 20, max_players: 16 };
    let fresh = |p: &Plugin| -> Result<Vec<u8>, String> {
        let mut instance = p.instantiate(InstanceEnv::standalone("smoke-test", 0)).map_err(|e| format!("{e:#}"))?;
        instance.init(&info, config).map_err(|e| format!("{} {} init: {e}", p.manifest().name, p.manifest().version))?;
        instance.snapshot().map_err(|e| format!("{} {} snapshot: {e}", p.manifest().name, p.manifest().version))
    };
    let restore = |state: &[u8], from: &str| -> Result<(), String> {
        let mut instance = plugin.instantiate(InstanceEnv::standalone("smoke-test", 0)).map_err(|e| format!("{e:#}"))?;
        instance.restore(state, from).map_err(|e| format!("restore of a {from} state ({} bytes): {e}", state.len()))
    };
    restore(&fresh(plugin)?, &m.version)?;
    if let Some(current) = current {
        let state = fresh(current).map_err(|e| format!("the serving version failed: {e}"))?;
        restore(&state, &current.manifest().version)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_name_and_optional_version() {
        assert_eq!(parse_file_name("arena-1.3.0.wasm"), Some(("arena".into(), Some(semver::Version::new(1, 3, 0)))));
        assert_eq!(parse_file_name("my-game-2.0.0-rc.1.wasm").unwrap().1.unwrap().to_string(), "2.0.0-rc.1");
        assert_eq!(parse_file_name("my-game-2.0.0-rc.1.wasm").unwrap().0, "my-game");
        assert_eq!(parse_file_name("arena.wasm"), Some(("arena".into(), None)));
        assert_eq!(parse_file_name("arena-x.wasm"), Some(("arena-x".into(), None)));
        assert_eq!(parse_file_name("arena.minisig"), None);
    }
}
