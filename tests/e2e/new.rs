//! `warden new` for each language writes a project whose own test passes as written: `cargo test`,
//! pytest (with the Python SDK on the path), and `npm install` then `node --test` (its `warden-sdk`
//! dependency is the repository's `guest-sdk/js`).

use std::path::Path;
use std::process::{Command, Output};
use warden_tests::{python, target_dir, warden_bin};

fn ok(out: Output, what: &str) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn new(dir: &Path, name: &str, lang: &str) -> std::path::PathBuf {
    let project = dir.join(name);
    let out = ok(Command::new(warden_bin()).args(["new", name, "--lang", lang, "--dir"]).arg(&project).output().unwrap(), "warden new");
    assert!(out.contains(&format!("wrote {name}")), "{out}");
    project
}

#[test]
fn a_new_rust_project_passes_its_own_test() {
    let dir = tempfile::tempdir().unwrap();
    let project = new(dir.path(), "my-game", "rust");
    // A target directory of its own kept between runs (the project is not in our workspace).
    let out =
        Command::new("cargo").arg("test").current_dir(&project).env("CARGO_TARGET_DIR", target_dir().join("new-rust")).output().unwrap();
    let text = ok(out, "cargo test in the new Rust project");
    assert!(text.contains("greets_and_counts ... ok"), "{text}");
}

#[test]
fn a_new_python_project_passes_its_own_test() {
    let dir = tempfile::tempdir().unwrap();
    let project = new(dir.path(), "my-game", "python");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/python");
    let path = format!("{}:{}", sdk.display(), project.display());
    let out = Command::new(python())
        .args(["-m", "pytest", "-p", "no:cacheprovider"])
        .current_dir(&project)
        .env("PYTHONPATH", path)
        .output()
        .unwrap();
    let text = ok(out, "pytest in the new Python project");
    assert!(text.contains("1 passed"), "{text}");
}

#[test]
fn a_new_javascript_project_passes_its_own_test() {
    let dir = tempfile::tempdir().unwrap();
    let project = new(dir.path(), "my-game", "js");
    ok(Command::new("npm").args(["install", "--no-audit", "--no-fund"]).current_dir(&project).output().unwrap(), "npm install");
    let text = ok(Command::new("npm").arg("test").current_dir(&project).output().unwrap(), "npm test in the new JavaScript project");
    assert!(text.contains("# pass 1") && text.contains("# fail 0"), "{text}");
}

#[test]
fn a_bad_name_or_an_existing_directory_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(warden_bin()).args(["new", "My Game"]).current_dir(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("lowercase letters, digits and dashes"), "{err}");
    new(dir.path(), "taken", "python");
    let out = Command::new(warden_bin()).args(["new", "taken", "--dir"]).arg(dir.path().join("taken")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("exists; choose another --dir"), "{err}");
}
