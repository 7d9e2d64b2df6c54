//! `warden saves show`, `export` and `import` against real SQLite stores.

use std::process::Command;
use warden::storage::{SaveWrite, Store};
use warden_tests::warden_bin;

fn saves(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(warden_bin()).arg("saves").arg("--set").arg(format!("storage.url={url:?}")).args(args).output().unwrap()
}

#[tokio::test]
async fn show_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (format!("sqlite://{}", dir.path().join("a.db").display()), format!("sqlite://{}", dir.path().join("b.db").display()));
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
