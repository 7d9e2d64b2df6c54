//! Signatures interoperate with the stock `minisign` tool (Debian's package; `scripts/test` installs
//! it), both ways, and `warden push` runs the server's checks before it copies anything.

use std::path::Path;
use std::process::{Command, Output};
use warden_tests::{warden_bin, wasm};

fn warden(args: &[&str], dir: &Path) -> Output {
    Command::new(warden_bin()).args(args).current_dir(dir).output().expect("warden runs")
}

fn minisign(args: &[&str], dir: &Path) -> Output {
    Command::new("minisign").args(args).current_dir(dir).output().unwrap_or_else(|e| {
        panic!("the stock `minisign` tool is needed for this test ({e}): `apt-get install minisign` (scripts/test installs it)")
    })
}

fn ok(out: &Output, what: &str) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed: {text}");
    text
}

fn copy_arena(dir: &Path, name: &str) {
    std::fs::copy(wasm("arena"), dir.join(name)).unwrap();
}

#[test]
fn our_signatures_verify_with_minisign_and_minisign_signatures_verify_with_us() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_arena(d, "arena.wasm");

    // warden keygen + warden sign -> minisign -V.
    let out = ok(&warden(&["keygen", "--name", "ci"], d), "warden keygen");
    assert!(out.contains("trusted_keys = [\"RW"), "keygen prints the line to trust it: {out}");
    ok(&warden(&["sign", "arena.wasm", "--key", "ci.key"], d), "warden sign");
    let out = ok(&minisign(&["-V", "-p", "ci.pub", "-m", "arena.wasm"], d), "minisign -V of our signature");
    assert!(out.contains("Trusted comment: warden-plugin name=arena version=0.2.0"), "{out}");
    ok(&warden(&["verify", "arena.wasm", "--key", "ci.pub"], d), "warden verify of our signature");

    // minisign -G + minisign -S with the Warden trusted comment -> warden verify.
    copy_arena(d, "arena-0.2.0.wasm");
    ok(&minisign(&["-G", "-W", "-p", "stock.pub", "-s", "stock.key"], d), "minisign -G");
    let comment = "warden-plugin name=arena version=0.2.0";
    ok(&minisign(&["-S", "-s", "stock.key", "-m", "arena-0.2.0.wasm", "-t", comment], d), "minisign -S");
    let out = ok(&warden(&["verify", "arena-0.2.0.wasm", "--key", "stock.pub"], d), "warden verify of minisign's signature");
    assert!(out.contains("ok: arena 0.2.0"), "{out}");

    // The wrong key, or minisign's default trusted comment, is refused with the reason.
    let out = warden(&["verify", "arena-0.2.0.wasm", "--key", "ci.pub"], d);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not among the trusted keys"), "{out:?}");
    ok(&minisign(&["-S", "-s", "stock.key", "-m", "arena-0.2.0.wasm"], d), "minisign -S with its default comment");
    let out = warden(&["verify", "arena-0.2.0.wasm", "--key", "stock.pub"], d);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("warden-plugin name=NAME version=VERSION"), "{stderr}");
}

#[test]
fn push_checks_first_then_places_signature_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = d.join("plugins");
    std::fs::create_dir(&target).unwrap();
    copy_arena(d, "arena.wasm");
    ok(&warden(&["keygen"], d), "warden keygen");

    // Unsigned: refused, nothing copied.
    let out = warden(&["push", "arena.wasm", "--to", "plugins", "--key", "warden.pub"], d);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("not signed") && stderr.contains("fix:"), "{stderr}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);

    // Signed: checked, then placed under its canonical name, signature included.
    ok(&warden(&["sign", "arena.wasm", "--key", "warden.key"], d), "warden sign");
    let out = ok(&warden(&["push", "arena.wasm", "--to", "plugins", "--key", "warden.pub"], d), "warden push");
    assert!(out.contains("pushed arena 0.2.0"), "{out}");
    let mut names: Vec<String> = std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["arena-0.2.0.wasm", "arena-0.2.0.wasm.minisig"], "no temp file left behind");
    ok(&warden(&["verify", "plugins/arena-0.2.0.wasm", "--key", "warden.pub"], d), "the pushed copy verifies");

    // The same version again is refused.
    let out = warden(&["push", "arena.wasm", "--to", "plugins", "--key", "warden.pub"], d);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // A flipped byte after signing: refused before anything is copied.
    let mut bytes = std::fs::read(d.join("arena.wasm")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(d.join("arena.wasm"), bytes).unwrap();
    std::fs::remove_dir_all(&target).unwrap();
    std::fs::create_dir(&target).unwrap();
    let out = warden(&["push", "arena.wasm", "--to", "plugins", "--key", "warden.pub"], d);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("does not match"), "{stderr}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

/// The real server, started the way an operator would (relative paths in warden.toml, no --dev), gets
/// a new version through `warden push`: it goes live once, with one audit entry and no rejection.
#[test]
fn a_pushed_version_goes_live_once_in_a_running_server() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("plugins")).unwrap();
    ok(&warden(&["keygen", "--out-dir", "keys"], d), "warden keygen");
    std::fs::write(
        d.join("warden.toml"),
        "plugin_dir = \"plugins\"\ndata_dir = \"data\"\n[net]\nws_addr = \"127.0.0.1:0\"\ntcp_addr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n\
         [deploy]\ntrusted_keys = [\"keys/warden.pub\"]\nsettle_ms = 200\nrescan_ms = 100\n",
    )
    .unwrap();
    copy_arena(d, "arena.wasm");
    ok(&warden(&["sign", "arena.wasm", "--key", "keys/warden.key"], d), "warden sign");
    ok(&warden(&["push", "arena.wasm", "--to", "plugins"], d), "warden push of the first version");

    let mut child = Command::new(warden_bin())
        .arg("serve")
        .current_dir(d)
        .env("WARDEN_AUTH__SECRET", "an-e2e-secret-0123456789")
        .env("WARDEN_LOG", "warden=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("warden listening") && line.contains("games=arena"), "{line:?}");

    // Version 0.2.1: the same build stamped with another version, signed and pushed.
    let bytes = std::fs::read(d.join("arena.wasm")).unwrap();
    let mut m = warden::runtime::manifest::read(&bytes).unwrap();
    m.version = "0.2.1".into();
    std::fs::write(d.join("arena.wasm"), warden::runtime::manifest::stamp(&bytes, &m)).unwrap();
    ok(&warden(&["sign", "arena.wasm", "--key", "keys/warden.key"], d), "warden sign 0.2.1");
    ok(&warden(&["push", "arena.wasm", "--to", "plugins"], d), "warden push 0.2.1");

    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut deployed = 0;
    for line in stderr.lines() {
        let line = line.unwrap();
        assert!(!line.contains("rejected"), "nothing is rejected: {line}");
        if line.contains("deployed") && line.contains("version=0.2.1") {
            deployed += 1;
            break;
        }
    }
    assert_eq!(deployed, 1);
    // Give a duplicate event (if any) time to be handled, then read the audit log.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let out = ok(&warden(&["audit", "--json"], d), "warden audit");
    child.kill().unwrap();
    child.wait().unwrap();
    let entries: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["action"].as_str().unwrap(), e["version"].as_str().unwrap_or("-"))).collect();
    assert_eq!(actions, [("deploy", "0.2.1"), ("deploy", "0.2.0")], "one deploy each, no rejection: {out}");
}
