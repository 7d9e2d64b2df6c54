//! The compile cache: a second load of the same bytes skips compilation, also in a new runtime (a
//! restarted host), and a corrupt cache entry is recompiled rather than trusted.

use warden::runtime::{CacheOutcome, CacheStats, Limits, Runtime};

fn runtime(dir: &std::path::Path) -> Runtime {
    Runtime::new(Limits { max_instances: 4, ..Limits::default() }, Some(dir.to_path_buf())).unwrap()
}

#[test]
fn a_second_load_is_a_cache_hit() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = warden_tests::wasm_bytes("hello");
    let rt = runtime(dir.path());
    assert_eq!(rt.load(&bytes).unwrap().cache_outcome(), CacheOutcome::Miss);
    assert_eq!(rt.cache_stats(), CacheStats { hits: 0, misses: 1 });
    let again = rt.load(&bytes).unwrap();
    assert_eq!(again.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(rt.cache_stats(), CacheStats { hits: 1, misses: 1 });
    again.instantiate(warden::runtime::InstanceEnv::standalone("r", 1)).expect("a cached component instantiates");

    // A restarted host (new engine, same directory) hits too.
    let restarted = runtime(dir.path());
    assert_eq!(restarted.load(&bytes).unwrap().cache_outcome(), CacheOutcome::Hit);
    assert_eq!(restarted.cache_stats(), CacheStats { hits: 1, misses: 0 });
}

#[test]
fn a_corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = warden_tests::wasm_bytes("hello");
    runtime(dir.path()).load(&bytes).unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "one artifact: {entries:?}");
    std::fs::write(&entries[0], b"not an artifact").unwrap();
    let rt = runtime(dir.path());
    assert_eq!(rt.load(&bytes).unwrap().cache_outcome(), CacheOutcome::Miss);
    assert_eq!(rt.load(&bytes).unwrap().cache_outcome(), CacheOutcome::Hit, "the entry was rewritten");
}
