//! `warden new` for each language writes a project whose own test passes as written: `cargo test`,
//! pytest (with the Python SDK on the path), and `npm install` then `node --test` (its `warden-sdk`
//! dependency is the repository's `guest-sdk/js`). `warden dev` turns an edit of such a project into the
//! code a live room runs, with the room's state carried over.

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

/// `warden dev` on a new Rust project, against a real `warden serve --dev`: the project goes live, a
/// player greets in a room; an edit to the greeting is built, stamped and swapped into that room with its
/// count carried over; an edit that does not compile prints the compiler's error, with where, in one line
/// and leaves the room on the version it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warden_dev_swaps_an_edit_into_a_live_room_with_its_state() {
    use std::io::BufRead as _;
    use warden::net::client::{self, Endpoint, Received};
    use warden::net::envelope::{ClientEnvelope, Format, ServerEnvelope};

    let dir = tempfile::tempdir().unwrap();
    let project = new(dir.path(), "my-game", "rust");
    let server = dir.path().join("server");
    let serve = warden_tests::Serve::start(&server, &[], &[]);
    let mut dev = Stopped(
        Command::new(warden_bin())
            .arg("dev")
            .arg(&project)
            .args(["--admin", &serve.admin.to_string(), "--set"])
            .arg(format!("plugin_dir={:?}", server.join("plugins").display().to_string()))
            .arg("--set")
            .arg(format!("data_dir={:?}", server.display().to_string()))
            // The compiled SDK is kept between runs (the project is not in our workspace).
            .env("CARGO_TARGET_DIR", target_dir().join("new-rust"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = dev.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The next line that starts with `prefix` (a cold build compiles the SDK: allow for it).
    let next = |prefix: &str| {
        tokio::task::block_in_place(|| {
            loop {
                let line = lines.recv_timeout(std::time::Duration::from_secs(900)).expect("warden dev prints its results");
                if line.starts_with(prefix) {
                    break line;
                }
                assert!(!line.starts_with("live:") && !line.starts_with("build failed:") && !line.starts_with("rejected:"), "{line}");
            }
        })
    };
    let live = next("live: my-game");
    assert!(live.contains("in 0 room(s)"), "{live}");

    let endpoint = Endpoint::Ws(serve.ws.clone(), Format::MsgPack);
    let mut player = client::join_room(&endpoint, None, "my-game", "r").await.unwrap();
    let mut greet = async || {
        let data = rmp_serde::to_vec("Ann").unwrap();
        player.tx.send(&ClientEnvelope::Msg { data }).await.unwrap();
        loop {
            match player.rx.recv().await.unwrap() {
                Received::Envelope(ServerEnvelope::Msg { data }) => break rmp_serde::from_slice::<String>(&data).unwrap(),
                Received::Envelope(_) => continue,
                Received::Closed(why) => panic!("the connection closed: {why:?}"),
            }
        }
    };
    assert_eq!(greet().await, "hello, Ann (greeting #1)");
    assert_eq!(greet().await, "hello, Ann (greeting #2)");

    let source = project.join("src/lib.rs");
    let code = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, code.replace("\"hello, {name}", "\"hey, {name}")).unwrap();
    let live = next("live: my-game");
    assert!(live.contains("in 1 room(s), state carried over (save to live"), "{live}");
    // Live means every room runs it, past the canary share (a dev server's rollout is promoted at once).
    let version = live.split_whitespace().nth(2).unwrap();
    let token = std::fs::read_to_string(server.join("admin.token")).unwrap();
    let status = warden::admin::Client::new(serve.admin, token.trim().to_string()).status().await.unwrap();
    let versions = &status.plugins.iter().find(|p| p.name == "my-game").unwrap().versions;
    let running = versions.iter().find(|v| v.version == version).unwrap();
    assert_eq!((running.state.as_str(), running.rooms), ("probation", 1), "{versions:?}");
    assert_eq!(greet().await, "hey, Ann (greeting #3)", "the new code, with the room's count carried over");

    let edited = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, edited.replace("self.greeted += 1;", "self.greeted += \"1\";")).unwrap();
    let failed = next("build failed:");
    assert!(failed.contains("src/lib.rs:") && failed.contains("error"), "{failed}");
    assert_eq!(greet().await, "hey, Ann (greeting #4)", "a build that failed leaves the room on its version");
}

/// A child process killed when dropped (the test passed or failed).
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
