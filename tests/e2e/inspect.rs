//! `warden inspect` on every example plugin, and on each kind of file that is not a valid plugin: the
//! command exits non-zero with a message that names the problem and the fix.

use std::path::Path;
use std::process::{Command, Output};
use warden_tests::{warden_bin, wasm, wasm_bytes};

fn inspect(path: &Path, extra: &[&str]) -> Output {
    Command::new(warden_bin()).arg("inspect").arg(path).args(extra).output().expect("warden runs")
}

/// Runs inspect on `bytes` written to a temp file and returns its stderr, asserting it failed.
fn rejected(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = inspect(&path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "inspect accepted {name}: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(name) && stderr.contains("is not a valid Warden plugin"), "the message names the file: {stderr}");
    stderr
}

fn wat_file(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("malformed").join(name);
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{name} is valid WAT: {e}"))
}

/// Replaces the last `from` with `to` (same length) inside `bytes`.
fn patch(mut bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "a same-length patch keeps the binary's structure");
    // The last occurrence: the one in the manifest section (a copy may sit in the data segment too).
    let at = bytes.windows(from.len()).rposition(|w| w == from).expect("pattern present");
    bytes[at..at + to.len()].copy_from_slice(to);
    bytes
}

#[test]
fn every_example_plugin_inspects() {
    for (name, version) in [("hello", "0.1.0"), ("chat", "0.1.0"), ("arena", "0.2.0")] {
        let out = inspect(&wasm(name), &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("plugin       {name} {version}")), "{stdout}");
        assert!(stdout.contains("world        warden:plugin/game@0.1.0"), "{stdout}");
        assert!(stdout.contains("init, on-join, on-leave, on-message, on-tick, on-timer, snapshot, restore"), "{stdout}");
        assert!(stdout.contains("warden:plugin/messaging@0.1.0"), "{stdout}");
        assert!(stdout.contains("sha256") && stdout.contains("compile") && stdout.contains("size"), "{stdout}");
    }
}

#[test]
fn json_report_carries_the_manifest_and_the_digest() {
    let out = inspect(&wasm("arena"), &["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(report["name"], "arena");
    assert_eq!(report["version"], "0.2.0");
    assert_eq!(report["wit"], "0.1.0");
    assert_eq!(report["size"], wasm_bytes("arena").len());
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(report["exports"].as_array().unwrap().len(), 8);
}

#[test]
fn garbage_bytes_are_not_wasm() {
    let err = rejected("garbage.wasm", b"PK\x03\x04 this is a zip file, not a plugin");
    assert!(err.contains("not a WebAssembly file") && err.contains("50 4b 03 04"), "{err}");
}

#[test]
fn an_empty_file_is_not_wasm() {
    let err = rejected("empty.wasm", b"");
    assert!(err.contains("not a WebAssembly file") && err.contains("empty file"), "{err}");
}

#[test]
fn a_core_module_is_not_a_component() {
    let err = rejected("core.wasm", &wat_file("core-module.wat"));
    assert!(err.contains("core WebAssembly module, not a component") && err.contains("wasm32-wasip2"), "{err}");
}

#[test]
fn a_component_of_another_world_is_named_as_such() {
    let err = rejected("other.wasm", &wat_file("other-world.wat"));
    assert!(err.contains("does not implement the Warden `game` world"), "{err}");
    assert!(err.contains("missing exports init, on-join, on-leave, on-message, on-tick, on-timer, snapshot, restore"), "{err}");
    assert!(err.contains("it exports [hello]"), "{err}");
}

#[test]
fn missing_exports_are_listed() {
    let err = rejected("partial.wasm", &wat_file("missing-exports.wat"));
    assert!(err.contains("missing exports init, on-join, on-leave, on-message, on-timer, snapshot, restore;"), "{err}");
    assert!(!err.contains("missing exports init, on-join, on-leave, on-message, on-tick"), "on-tick is present: {err}");
}

#[test]
fn exports_of_the_wrong_type_are_refused() {
    let err = rejected("wrong.wasm", &wat_file("wrong-types.wat"));
    assert!(err.contains("wrong types"), "{err}");
}

#[test]
fn a_truncated_plugin_is_refused() {
    let bytes = wasm_bytes("hello");
    let err = rejected("truncated.wasm", &bytes[..bytes.len() / 2]);
    assert!(err.contains("not a valid component") && err.contains("truncated"), "{err}");
}

#[test]
fn a_bad_manifest_is_refused() {
    let err = rejected("badmanifest.wasm", &patch(wasm_bytes("hello"), br#"{"name":"#, br#"{"nome":"#));
    assert!(err.contains("bad Warden manifest") && err.contains("name"), "{err}");
}

#[test]
fn an_incompatible_wit_version_is_refused() {
    let err = rejected("newer.wasm", &patch(wasm_bytes("hello"), br#""wit":"0.1.0""#, br#""wit":"0.9.0""#));
    assert!(err.contains("warden:plugin@0.9.0") && err.contains("rebuild it"), "{err}");
}

#[test]
fn a_missing_file_is_named() {
    let out = inspect(Path::new("/nonexistent/plugin.wasm"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("failed to read /nonexistent/plugin.wasm"), "{stderr}");
}

#[test]
fn stamp_re_versions_a_build_that_inspect_then_reads_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("arena.wasm");
    std::fs::write(&src, wasm_bytes("arena")).unwrap();
    let stamp = |args: &[&str]| Command::new(warden_bin()).arg("stamp").args(args).output().expect("warden runs");
    let file = src.to_str().unwrap();

    let out = stamp(&[file, "--version", "9.4.2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stamped = dir.path().join("arena-9.4.2.wasm");
    let out = inspect(&stamped, &["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["name"].as_str(), report["version"].as_str()), (Some("arena"), Some("9.4.2")), "{report}");
    assert_eq!(std::fs::read(&src).unwrap(), wasm_bytes("arena"), "the input is untouched");

    let err = |out: Output| {
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(err(stamp(&[file, "--version", "9.4.2"])).contains("--force"), "an existing output is not overwritten");
    assert!(stamp(&[file, "--version", "9.4.2", "--force"]).status.success());
    assert!(err(stamp(&[file, "--version", "nine"])).contains("semver"));
    assert!(err(stamp(&[file, "--version", "1.0.0", "--name", "chat"])).contains("not \"chat\""));
}
