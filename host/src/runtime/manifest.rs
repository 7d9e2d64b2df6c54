//! The plugin manifest: JSON in the `warden-manifest` custom section, written by `warden_sdk::export_game!`.

use crate::runtime::LoadError;
use serde::{Deserialize, Serialize};
use wasmparser::{Parser, Payload};

/// Name of the custom section holding the manifest.
pub const MANIFEST_SECTION: &str = "warden-manifest";
/// The version of the `warden:plugin` WIT package this host implements.
pub const HOST_WIT_VERSION: &str = "0.1.0";

/// What a plugin says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Plugin name (the crate name).
    pub name: String,
    /// Plugin version (semver).
    pub version: String,
    /// Version of the `warden:plugin` WIT package it was built against.
    pub wit: String,
    /// Version of `warden-sdk` it was built with, if built with the SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<String>,
}

impl Manifest {
    /// The version, parsed.
    pub fn semver(&self) -> semver::Version {
        semver::Version::parse(&self.version).expect("checked when the manifest was read")
    }
}

/// What the header says the bytes are.
pub(crate) enum Kind {
    Component,
}

/// Reads the first 8 bytes: wasm magic, then the version/layer word that tells a component from a core
/// module.
pub(crate) fn sniff(bytes: &[u8]) -> Result<Kind, LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let shown: String = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ");
        return Err(LoadError::NotWasm { found: if shown.is_empty() { "nothing (empty file)".into() } else { shown } });
    }
    match &bytes[4..8] {
        [0x01, 0x00, 0x00, 0x00] => Err(LoadError::CoreModule),
        [_, _, 0x01, 0x00] => Ok(Kind::Component),
        other => Err(LoadError::Malformed { reason: format!("unknown wasm version/layer {other:02x?}") }),
    }
}

/// Walks the whole binary (nested modules included), which also catches truncation, and returns the
/// manifest section's contents if there is one.
pub(crate) fn find_section(bytes: &[u8]) -> Result<Option<Vec<u8>>, LoadError> {
    let mut found = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::Malformed { reason: e.to_string() })?;
        if let Payload::CustomSection(section) = payload
            && section.name() == MANIFEST_SECTION
        {
            found = Some(section.data().to_vec());
        }
    }
    Ok(found)
}

/// The manifest of a component, read without compiling it: the header, a full walk of the binary (which
/// catches truncation), and the `warden-manifest` section. When there are several, the last one wins, so a
/// build can be stamped with another version by appending a top-level section (the signature covers it).
pub fn read(bytes: &[u8]) -> Result<Manifest, LoadError> {
    let Kind::Component = sniff(bytes)?;
    parse(&find_section(bytes)?.ok_or(LoadError::NoManifest)?)
}

/// sha256 of the component's code: every top-level section except `warden-manifest` ones, so builds that
/// differ only in their stamped manifest share one compiled artifact. The caller has already walked the
/// binary; a malformed layout hashes the whole file.
pub(crate) fn code_hash(bytes: &[u8]) -> String {
    fn leb(bytes: &[u8], pos: &mut usize) -> Option<usize> {
        let mut value = 0usize;
        for shift in (0..35).step_by(7) {
            let byte = *bytes.get(*pos)?;
            *pos += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let sections = || -> Option<Vec<std::ops::Range<usize>>> {
        let mut kept: Vec<std::ops::Range<usize>> = std::iter::once(0..8).collect();
        let mut pos = 8;
        while pos < bytes.len() {
            let start = pos;
            let id = bytes[pos];
            pos += 1;
            let size = leb(bytes, &mut pos)?;
            let end = pos.checked_add(size).filter(|&e| e <= bytes.len())?;
            let is_manifest = id == 0 && {
                let mut at = pos;
                let len = leb(bytes, &mut at)?;
                bytes.get(at..at + len) == Some(MANIFEST_SECTION.as_bytes())
            };
            if !is_manifest {
                kept.push(start..end);
            }
            pos = end;
        }
        Some(kept)
    };
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    match sections() {
        Some(ranges) => ranges.into_iter().for_each(|r| hasher.update(&bytes[r])),
        None => hasher.update(bytes),
    }
    hex::encode(hasher.finalize())
}

/// Appends a top-level `warden-manifest` section to a component: the result loads as `manifest` (the
/// last manifest section wins) and shares the original's compiled code. `warden stamp` and the tests use
/// it to turn one build into many versions.
pub fn stamp(bytes: &[u8], manifest: &Manifest) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let json = serde_json::to_vec(manifest).expect("a manifest serializes");
    let mut content = Vec::new();
    leb(MANIFEST_SECTION.len(), &mut content);
    content.extend_from_slice(MANIFEST_SECTION.as_bytes());
    content.extend_from_slice(&json);
    let mut out = bytes.to_vec();
    out.push(0);
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}

/// Parses and checks a manifest section: JSON with a semver version and a WIT version this host runs.
pub(crate) fn parse(data: &[u8]) -> Result<Manifest, LoadError> {
    let manifest: Manifest =
        serde_json::from_slice(data).map_err(|e| LoadError::BadManifest { reason: format!("not the expected JSON: {e}") })?;
    if manifest.name.is_empty() || !manifest.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(LoadError::BadManifest {
            reason: format!("plugin name {:?} must be non-empty ASCII letters, digits, - or _", manifest.name),
        });
    }
    semver::Version::parse(&manifest.version)
        .map_err(|e| LoadError::BadManifest { reason: format!("version {:?} is not semver: {e}", manifest.version) })?;
    if !wit_compatible(&manifest.wit) {
        return Err(LoadError::IncompatibleWit { found: manifest.wit.clone() });
    }
    Ok(manifest)
}

/// Semver compatibility with the host's WIT version (for 0.x: the same minor).
fn wit_compatible(wit: &str) -> bool {
    let host = semver::Version::parse(HOST_WIT_VERSION).expect("valid");
    semver::VersionReq::parse(&format!("^{wit}")).is_ok_and(|req| req.matches(&host))
        && semver::Version::parse(wit).is_ok_and(|v| v <= host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_versions_are_compatible_within_the_same_minor_only() {
        assert!(wit_compatible("0.1.0"));
        assert!(!wit_compatible("0.2.0"));
        assert!(!wit_compatible("1.0.0"));
        assert!(!wit_compatible("0.1.9"), "a plugin needing a newer WIT than the host's");
        assert!(!wit_compatible("banana"));
    }

    #[test]
    fn a_stamped_component_reads_as_the_new_version_with_the_same_code_hash() {
        let bytes = wat::parse_str(
            r#"(component (core module (@custom "warden-manifest" "{\"name\":\"a\",\"version\":\"1.0.0\",\"wit\":\"0.1.0\"}")))"#,
        )
        .unwrap();
        assert_eq!(read(&bytes).unwrap().version, "1.0.0");
        let mut m = read(&bytes).unwrap();
        m.version = "1.0.7".into();
        let stamped = stamp(&bytes, &m);
        assert_eq!(read(&stamped).unwrap(), m);
        assert_eq!(code_hash(&stamped), code_hash(&bytes), "only the manifest differs");
        let mut other = bytes.clone();
        *other.last_mut().unwrap() ^= 1;
        assert_ne!(code_hash(&other), code_hash(&bytes));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let err = parse(br#"{"name":"a b","version":"1.0.0","wit":"0.1.0"}"#).unwrap_err();
        assert!(err.to_string().contains("plugin name"), "{err}");
        let err = parse(br#"{"name":"ab","version":"one","wit":"0.1.0"}"#).unwrap_err();
        assert!(err.to_string().contains("not semver"), "{err}");
        let err = parse(br#"{"name":"ab","version":"1.0.0","wit":"0.3.0"}"#).unwrap_err();
        assert!(matches!(err, LoadError::IncompatibleWit { .. }), "{err}");
        let ok = parse(br#"{"name":"ab","version":"1.2.3","wit":"0.1.0","sdk":"0.1.0"}"#).unwrap();
        assert_eq!(ok.semver(), semver::Version::new(1, 2, 3));
    }
}
