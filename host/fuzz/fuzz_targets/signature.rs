//! `.minisig` files, trusted comments and trusted-key specs: parsing never panics, and a comment that
//! parses names a plugin and a version that round-trip through `trusted_comment`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden::deploy::sign;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    static TRUSTED: std::sync::OnceLock<Vec<sign::TrustedKey>> = std::sync::OnceLock::new();
    let trusted = TRUSTED.get_or_init(|| vec![sign::TrustedKey::parse(&sign::keygen().unwrap().2).unwrap()]);
    let _ = sign::verify(b"component bytes", text, trusted);
    // A spec that is not a key line is read as a path: only key lines here, never the filesystem.
    if text.trim().starts_with("RW") && !std::path::Path::new(text.trim()).exists() {
        let _ = sign::TrustedKey::parse(text);
    }
    if let Some((name, version)) = sign::parse_comment(text) {
        assert_eq!(sign::parse_comment(&sign::trusted_comment(&name, &version)), Some((name, version)));
    }
});
