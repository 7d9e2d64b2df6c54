use super::*;

/// A queue over a fresh database that never flushes on its own (the tests flush).
async fn queue(high_water: usize) -> (tempfile::TempDir, Store, SaveQueue) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("q.db").display())).await.unwrap();
    let config = QueueConfig { flush_interval: Duration::from_secs(3600), max_batch: 2_000, high_water };
    let (q, _writer) = SaveQueue::start(store.clone(), config);
    (dir, store, q)
}

const N: SavePriority = SavePriority::Normal;
const C: SavePriority = SavePriority::Critical;

#[tokio::test]
async fn a_newer_save_replaces_a_queued_one() {
    let (_d, store, q) = queue(100).await;
    for data in [b"one", b"two", b"thr"] {
        q.submit("g", "p", data.to_vec(), N);
    }
    assert_eq!(q.stats().coalesced, 2);
    assert_eq!(q.stats().pending, 1);
    q.flush().await.unwrap();
    let saved = store.load_save("g", "p").await.unwrap().unwrap();
    assert_eq!((saved.data.as_slice(), saved.revision), (&b"thr"[..], 1), "one write, of the newest save");
}

#[tokio::test]
async fn a_critical_save_is_written_at_once_and_normal_ones_wait() {
    let (_d, store, q) = queue(100).await;
    q.submit("g", "normal", b"n".to_vec(), N);
    let ticket = q.submit("g", "buyer", b"purchase".to_vec(), C);
    tokio::time::timeout(Duration::from_secs(5), q.durable(&ticket)).await.expect("a critical save is durable promptly").unwrap();
    assert_eq!(store.load_save("g", "buyer").await.unwrap().unwrap().data, b"purchase");
    assert_eq!(store.load_save("g", "normal").await.unwrap(), None, "the normal save waits for its batch");
    assert_eq!(q.stats().critical_flushes, 1);
    assert_eq!(q.stats().pending, 1);
}

#[tokio::test]
async fn normal_saves_go_out_in_one_transaction() {
    let (_d, store, q) = queue(10_000).await;
    for i in 0..500 {
        q.submit("g", &format!("p{i}"), vec![i as u8; 64], N);
    }
    q.flush().await.unwrap();
    let stats = q.stats();
    assert_eq!((stats.batches, stats.written, stats.pending), (1, 500, 0));
    assert_eq!(store.load_save("g", "p499").await.unwrap().unwrap().data, vec![499u32 as u8; 64]);
}

#[tokio::test]
async fn acknowledgement_waits_for_the_commit_and_revisions_go_up() {
    let (_d, store, q) = queue(100).await;
    let first = q.submit("g", "p", b"a".to_vec(), N);
    assert!(tokio::time::timeout(Duration::from_millis(100), q.durable(&first)).await.is_err(), "not durable before the flush");
    q.flush().await.unwrap();
    q.durable(&first).await.unwrap();
    let second = q.submit("g", "p", b"b".to_vec(), N);
    q.flush().await.unwrap();
    q.durable(&second).await.unwrap();
    assert_eq!(store.load_save("g", "p").await.unwrap().unwrap().revision, 2);
}

#[tokio::test]
async fn loads_see_the_queued_save_first() {
    let (_d, store, q) = queue(100).await;
    store.write_saves(&[SaveWrite { game: "g".into(), player: "p".into(), data: b"old".to_vec() }]).await.unwrap();
    q.preload("g", "p").await.unwrap();
    q.preload("g", "new").await.unwrap();
    assert_eq!(q.load("g", "p").as_deref(), Some(&b"old"[..]));
    assert_eq!(q.load("g", "new"), None);
    q.submit("g", "p", b"queued".to_vec(), N);
    assert_eq!(q.load("g", "p").as_deref(), Some(&b"queued"[..]));
    q.flush().await.unwrap();
    assert_eq!(q.load("g", "p").as_deref(), Some(&b"queued"[..]), "and after it is written");
}

#[tokio::test]
async fn back_pressure_is_reported_and_nothing_is_dropped() {
    let (_d, store, q) = queue(10).await;
    let tickets: Vec<Ticket> = (0..25).map(|i| q.submit("g", &format!("p{i}"), vec![1], N)).collect();
    assert!(q.stats().backpressure);
    assert_eq!(q.stats().pending, 25);
    q.flush().await.unwrap();
    assert!(!q.stats().backpressure);
    for (i, t) in tickets.iter().enumerate() {
        q.durable(t).await.unwrap();
        assert!(store.load_save("g", &format!("p{i}")).await.unwrap().is_some());
    }
}
