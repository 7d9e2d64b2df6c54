//! Plugin signatures: minisign's format (Ed25519 over the BLAKE2b-512 of the file, a `.minisig` beside
//! it), with a trusted comment that binds the plugin's name and version:
//!
//! ```text
//! warden-plugin name=arena version=1.3.0
//! ```
//!
//! Files signed by the stock `minisign` tool with that trusted comment verify here, and ours verify with
//! `minisign -V`. Signing uses the `minisign` crate; the server verifies with `minisign-verify`.

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use std::path::{Path, PathBuf};

/// The first word of a Warden trusted comment.
pub const COMMENT_TAG: &str = "warden-plugin";

/// The signature file of `wasm`: `<file>.minisig`.
pub fn signature_path(wasm: &Path) -> PathBuf {
    let mut name = wasm.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// The trusted comment for `name` at `version`.
pub fn trusted_comment(name: &str, version: &str) -> String {
    format!("{COMMENT_TAG} name={name} version={version}")
}

/// What a trusted comment says: `(name, version)`, or `None` if it is not a Warden comment.
pub fn parse_comment(comment: &str) -> Option<(String, String)> {
    let mut words = comment.split_whitespace();
    if words.next()? != COMMENT_TAG {
        return None;
    }
    let (mut name, mut version) = (None, None);
    for word in words {
        if let Some(v) = word.strip_prefix("name=") {
            name = Some(v.to_string());
        } else if let Some(v) = word.strip_prefix("version=") {
            version = Some(v.to_string());
        }
    }
    Some((name?, version?))
}

/// A trusted public key.
#[derive(Clone)]
pub struct TrustedKey {
    key: minisign_verify::PublicKey,
    id: String,
}

impl TrustedKey {
    /// Parses a key as `warden.toml` gives it: the base64 key line (`RW...`) or the path of a `.pub` file.
    pub fn parse(spec: &str) -> Result<TrustedKey> {
        let spec = spec.trim();
        let line = if spec.starts_with("RW") && !Path::new(spec).exists() {
            spec.to_string()
        } else {
            let text = std::fs::read_to_string(spec).with_context(|| {
                format!("trusted key {spec:?} is neither a minisign public key (a line starting with RW) nor a readable .pub file")
            })?;
            text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("untrusted comment:")).unwrap_or_default().to_string()
        };
        let key = minisign_verify::PublicKey::from_base64(&line)
            .map_err(|e| anyhow::anyhow!("trusted key {spec:?} is not a minisign public key: {e}"))?;
        Ok(TrustedKey { key, id: key_id(&line, 2).unwrap_or_default() })
    }

    /// The key id, as minisign prints it (16 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The key id in a base64 minisign blob (public key or signature line), as minisign prints it.
fn key_id(b64: &str, at: usize) -> Option<String> {
    let bin = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let id: [u8; 8] = bin.get(at..at + 8)?.try_into().ok()?;
    Some(format!("{:016X}", u64::from_le_bytes(id)))
}

/// Why a signature does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The `.minisig` file does not parse.
    #[error("the signature file is not a minisign signature ({0})")]
    Malformed(String),
    /// Signed by a key that is not trusted.
    #[error("signed by key {key_id}, which is not among the trusted keys [{trusted}]")]
    UnknownKey {
        /// The signing key's id.
        key_id: String,
        /// Ids of the trusted keys.
        trusted: String,
    },
    /// A trusted key, but the signature does not match the bytes (or the trusted comment was altered).
    #[error("the signature by key {key_id} does not match the file's bytes: the file was changed after signing, or is incomplete")]
    Mismatch {
        /// The signing key's id.
        key_id: String,
    },
    /// The trusted comment is not a Warden one.
    #[error("the trusted comment {0:?} does not name the plugin: it must read `warden-plugin name=NAME version=VERSION`")]
    NotWarden(String),
}

/// A verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Name from the trusted comment.
    pub name: String,
    /// Version from the trusted comment.
    pub version: String,
    /// Id of the key that signed.
    pub key_id: String,
}

/// Checks `signature` (the `.minisig` text) over `bytes` against `trusted`.
pub fn verify(bytes: &[u8], signature: &str, trusted: &[TrustedKey]) -> Result<Verified, SignatureError> {
    let sig = minisign_verify::Signature::decode(signature).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let sig_line = signature.lines().nth(1).unwrap_or_default();
    let key_id = key_id(sig_line, 2).unwrap_or_else(|| "?".into());
    let Some(key) = trusted.iter().find(|k| k.id == key_id) else {
        let ids: Vec<&str> = trusted.iter().map(|k| k.id.as_str()).collect();
        return Err(SignatureError::UnknownKey { key_id, trusted: ids.join(", ") });
    };
    key.key.verify(bytes, &sig, false).map_err(|_| SignatureError::Mismatch { key_id: key_id.clone() })?;
    let comment = sig.trusted_comment();
    let (name, version) = parse_comment(comment).ok_or_else(|| SignatureError::NotWarden(comment.to_string()))?;
    Ok(Verified { name, version, key_id })
}

/// A new key pair: `(secret key file text, public key file text, public key line)`. The secret key is
/// not password-protected (CI keeps it as a secret); minisign reads it with `-s`.
pub fn keygen() -> Result<(String, String, String)> {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| anyhow::anyhow!("failed to generate a key pair: {e}"))?;
    let pk_line = kp.pk.to_base64();
    let pk_box = kp.pk.to_box().map_err(|e| anyhow::anyhow!("{e}"))?.into_string();
    let sk_box = kp.sk.to_box(Some("warden plugin signing key (unencrypted)")).map_err(|e| anyhow::anyhow!("{e}"))?.into_string();
    Ok((sk_box, pk_box, pk_line))
}

/// Reads a secret key file (ours or minisign's). An encrypted key needs its password in
/// `WARDEN_SIGNING_PASSWORD`.
pub fn read_secret_key(path: &Path) -> Result<minisign::SecretKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("failed to read the secret key {}", path.display()))?;
    parse_secret_key(&text).with_context(|| format!("secret key {}", path.display()))
}

/// Parses a secret key file's text (see [`read_secret_key`]).
pub fn parse_secret_key(text: &str) -> Result<minisign::SecretKey> {
    let sk_box = minisign::SecretKeyBox::from_string(text).map_err(|e| anyhow::anyhow!("not a minisign secret key: {e}"))?;
    if let Ok(sk) = minisign::SecretKey::from_unencrypted_box(sk_box.clone()) {
        return Ok(sk);
    }
    let Ok(password) = std::env::var("WARDEN_SIGNING_PASSWORD") else {
        bail!("the key is password-protected: put its password in WARDEN_SIGNING_PASSWORD");
    };
    minisign::SecretKey::from_box(sk_box, Some(password))
        .map_err(|e| anyhow::anyhow!("failed to open the key: {e} (wrong WARDEN_SIGNING_PASSWORD?)"))
}

/// Signs `bytes` as plugin `name` at `version`; returns the `.minisig` text.
pub fn sign(bytes: &[u8], sk: &minisign::SecretKey, name: &str, version: &str) -> Result<String> {
    let comment = trusted_comment(name, version);
    let sig = minisign::sign(None, sk, bytes, Some(&comment), Some("signature from warden secret key"))
        .map_err(|e| anyhow::anyhow!("failed to sign: {e}"))?;
    Ok(sig.into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(pk_line: &str) -> Vec<TrustedKey> {
        vec![TrustedKey::parse(pk_line).unwrap()]
    }

    #[test]
    fn a_signature_binds_bytes_name_and_version() {
        let (sk_text, _, pk_line) = keygen().unwrap();
        let sk = parse_secret_key(&sk_text).unwrap();
        let bytes = b"\0asm some plugin".to_vec();
        let sig = sign(&bytes, &sk, "arena", "1.3.0").unwrap();
        let ok = verify(&bytes, &sig, &trusted(&pk_line)).unwrap();
        assert_eq!((ok.name.as_str(), ok.version.as_str()), ("arena", "1.3.0"));

        let mut flipped = bytes.clone();
        flipped[5] ^= 1;
        assert!(matches!(verify(&flipped, &sig, &trusted(&pk_line)), Err(SignatureError::Mismatch { .. })));
        assert!(matches!(verify(&bytes[..10], &sig, &trusted(&pk_line)), Err(SignatureError::Mismatch { .. })));

        let (_, _, other) = keygen().unwrap();
        let err = verify(&bytes, &sig, &trusted(&other)).unwrap_err();
        assert!(matches!(err, SignatureError::UnknownKey { .. }), "{err}");

        // Editing the trusted comment breaks the global signature.
        let forged = sig.replace("version=1.3.0", "version=9.9.9");
        assert!(matches!(verify(&bytes, &forged, &trusted(&pk_line)), Err(SignatureError::Mismatch { .. })));
        assert!(matches!(verify(&bytes, "garbage", &trusted(&pk_line)), Err(SignatureError::Malformed(_))));
    }

    #[test]
    fn trusted_comments_parse() {
        assert_eq!(parse_comment("warden-plugin name=a version=1.0.0"), Some(("a".into(), "1.0.0".into())));
        assert_eq!(parse_comment("warden-plugin version=1.0.0 name=a timestamp:1"), Some(("a".into(), "1.0.0".into())));
        assert_eq!(parse_comment("timestamp:1234 file:a.wasm"), None);
        assert_eq!(parse_comment("warden-plugin name=a"), None);
    }
}
