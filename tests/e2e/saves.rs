//! `warden saves show`, `export` and `import`, and `warden store migrate`, against real SQLite and
//! PostgreSQL stores.

use std::process::Command;
use warden::storage::{SaveWrite, Store};
use warden_tests::{TestStore, warden_bin};

fn saves(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(warden_bin()).arg("saves").arg("--set").arg(format!("storage.url={url:?}")).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_export_and_import() {
    // From SQLite into PostgreSQL, and from PostgreSQL into SQLite (SQLite into SQLite without it).
    for pg_first in [false, true] {
        let sqlite = TestStore::sqlite();
        let other = match TestStore::postgres("show_export_and_import").await {
            Some(pg) => pg,
            None => TestStore::sqlite(),
        };
        let (a, b) = if pg_first { (&other, &sqlite) } else { (&sqlite, &other) };
        show_export_and_import_between(&a.url, &b.url).await;
    }
}

async fn show_export_and_import_between(a: &str, b: &str) {
    let (a, b) = (a.to_string(), b.to_string());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&a).await.unwrap();
    let save = |player: &str, total: u64| SaveWrite {
        game: "arena".into(),
        player: player.into(),
        data: rmp_serde::to_vec_named(&serde_json::json!({"total": total})).unwrap(),
    };
    store.write_saves(&[save("ann", 3), save("bob", 5)]).await.unwrap();
    store.write_saves(&[save("ann", 4)]).await.unwrap();
    drop(store);

    let out = saves(&a, &["show", "--game", "arena", "--player", "ann"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(shown.contains("revision    2"), "{shown}");
    assert!(shown.contains("\"total\": 4"), "decoded as JSON: {shown}");

    let out = saves(&a, &["show", "--game", "arena", "--player", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody has no save in arena"));

    let file = dir.path().join("export.jsonl");
    let out = saves(&a, &["export", "--game", "arena", "--out", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);

    let out = saves(&b, &["import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let imported = Store::open(&b).await.unwrap();
    let ann = imported.load_save("arena", "ann").await.unwrap().unwrap();
    let total: serde_json::Value = rmp_serde::from_slice(&ann.data).unwrap();
    assert_eq!(total["total"], 4);

    std::fs::write(&file, "{\"game\": \"arena\"}\n").unwrap();
    let out = saves(&b, &["import", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(":1: not an export line"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_migrate_copies_a_single_host_store_and_the_store_commands_work_on_the_copy() {
    let from = TestStore::sqlite();
    let to = match TestStore::postgres("store_migrate_copies").await {
        Some(pg) => pg,
        None => TestStore::sqlite(),
    };
    let store = Store::open(&from.url).await.unwrap();
    let data = rmp_serde::to_vec_named(&serde_json::json!({"total": 9})).unwrap();
    store.write_saves(&[SaveWrite { game: "arena".into(), player: "ann".into(), data }]).await.unwrap();
    store.audit("ops", "note", Some("arena"), None, "before the move").await.unwrap();
    drop(store);
    let migrate =
        |from: &str, to: &str| Command::new(warden_bin()).args(["store", "migrate", "--from", from, "--to", to]).output().unwrap();

    let out = migrate(&from.url, &to.url);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("1 saves") && text.contains("1 audit entries"), "{text}");
    let out = saves(&to.url, &["show", "--game", "arena", "--player", "ann"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("\"total\": 9"), "the copy answers `warden saves show` on {}: {shown}", to.backend);
    let out = Command::new(warden_bin()).args(["audit", "--set", &format!("storage.url={:?}", to.url)]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("before the move"), "{}", String::from_utf8_lossy(&out.stdout));

    // A second migration into the same store is refused and writes nothing.
    let out = migrate(&from.url, &to.url);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds data") && err.contains("nothing was written"), "{err}");
    let out = migrate("mysql://nowhere/db", &to.url);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported store URL"), "{}", String::from_utf8_lossy(&out.stderr));
}
