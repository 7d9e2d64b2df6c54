use super::*;

/// A queue over a fresh database that never flushes on its own (the tests flush).
async fn queue(high_water: usize) -> (tempfile::TempDir, Store, SaveQueue) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("q.db").display())).await.unwrap();
    let config = QueueConfig { flush_interval: Duration::from_secs(3600), high_water, ..QueueConfig::default() };
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

#[tokio::test]
async fn back_pressure_is_per_game_and_counts_bytes_and_batches_are_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("q.db").display())).await.unwrap();
    let config = QueueConfig {
        flush_interval: Duration::from_secs(3600),
        high_water: 1_000,
        high_water_bytes: 1 << 20,
        max_batch_bytes: 256 << 10,
        ..QueueConfig::default()
    };
    let (q, _writer) = SaveQueue::start(store.clone(), config);
    // 40 saves of 64 KiB: few by count, 2.5 MiB by bytes.
    for i in 0..40 {
        q.submit("flood", &format!("p{i}"), vec![7; 64 << 10], N);
    }
    q.submit("calm", "ann", b"ok".to_vec(), N);
    assert!(SaveBackend::backpressure(&q, "flood"), "the game that saves too much is held");
    assert!(!SaveBackend::backpressure(&q, "calm"), "another game is not");
    // A batch takes at most 256 KiB: four of the flood's saves, not all forty.
    assert_eq!(q.write_batch(false).await.unwrap(), 4);
    // A save bigger than a whole batch still goes (alone).
    q.submit("calm", "big", vec![1; 512 << 10], N);
    let calm = q.submit("calm", "bob", b"critical".to_vec(), C);
    q.durable(&calm).await.unwrap();
    q.flush().await.unwrap();
    assert!(!SaveBackend::backpressure(&q, "flood"));
    assert_eq!(q.stats().pending_bytes, 0);
    assert_eq!(store.load_save("calm", "big").await.unwrap().unwrap().data.len(), 512 << 10);
}

#[tokio::test]
async fn a_full_store_reports_the_error_keeps_every_save_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("full.db").display());
    // One connection, so a PRAGMA reaches the connection the queue writes with.
    let sqlite = crate::storage::sqlite::SqliteStore::open_with(&url, 1, |o| o).await.unwrap();
    let store = Store::Sqlite(sqlite.clone());
    let (q, _writer) = SaveQueue::start(store.clone(), QueueConfig { flush_interval: Duration::from_millis(20), ..QueueConfig::default() });
    let first = q.submit("g", "early", vec![1; 100], N);
    q.durable(&first).await.unwrap();

    // The disk is "full": the database may not grow past its current size.
    sqlite.execute("PRAGMA max_page_count = 1").await.unwrap();
    let tickets: Vec<Ticket> = (0..200).map(|i| q.submit("g", &format!("p{i}"), vec![7; 4000], N)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        if let Some((error, fatal)) = q.health() {
            assert!(!fatal, "a full disk is not fatal: {error}");
            break error;
        }
        assert!(tokio::time::Instant::now() < deadline, "the store error was not reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(error.to_lowercase().contains("full"), "the error says why: {error}");
    assert_eq!(q.stats().pending, 200, "nothing was dropped");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), q.durable(&tickets[0])).await.is_err(),
        "nothing is acknowledged while failing"
    );
    assert_eq!(store.load_save("g", "early").await.unwrap().unwrap().data, vec![1; 100], "what was acknowledged is still there");
    // 200 saves are far below the high-water mark, but the store fails: the game's rooms are held.
    assert!(q.stats().pending < QueueConfig::default().high_water);
    assert!(SaveBackend::backpressure(&q, "g"), "a game with saves pending while the store fails is held");
    assert!(!SaveBackend::backpressure(&q, "other"), "a game with nothing pending is not");

    // Space again: the queue's retries get everything written.
    sqlite.execute("PRAGMA max_page_count = 1073741823").await.unwrap();
    for t in &tickets {
        tokio::time::timeout(Duration::from_secs(10), q.durable(t)).await.expect("written after recovery").unwrap();
    }
    assert_eq!(q.stats().pending, 0);
    assert!(q.health().is_none(), "the error clears once writes succeed");
    assert!(!SaveBackend::backpressure(&q, "g"), "and the game's rooms go on");
    assert_eq!(store.load_save("g", "p199").await.unwrap().unwrap().data, vec![7; 4000]);
}

#[tokio::test]
async fn a_read_only_store_reports_the_error_and_acknowledges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ro.db").display());
    Store::open(&url).await.unwrap(); // create and migrate
    let read_only = crate::storage::sqlite::SqliteStore::open_with(&url, 1, |o| o.read_only(true)).await.unwrap();
    let (q, _writer) =
        SaveQueue::start(Store::Sqlite(read_only), QueueConfig { flush_interval: Duration::from_millis(20), ..QueueConfig::default() });
    let ticket = q.submit("g", "p", vec![1, 2, 3], C);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        if let Some((error, _)) = q.health() {
            break error;
        }
        assert!(tokio::time::Instant::now() < deadline, "the store error was not reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        error.to_lowercase().contains("readonly")
            || error.to_lowercase().contains("read-only")
            || error.to_lowercase().contains("read only"),
        "{error}"
    );
    assert!(tokio::time::timeout(Duration::from_millis(200), q.durable(&ticket)).await.is_err(), "never pretend a write succeeded");
    assert_eq!(q.stats().pending, 1);
    assert_eq!(q.load("g", "p").as_deref(), Some(&[1u8, 2, 3][..]), "the save is kept and still served");
}

/// A database error with a given SQLite extended result code.
#[derive(Debug)]
struct CodedError(&'static str);

impl std::fmt::Display for CodedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sqlite error {}", self.0)
    }
}

impl std::error::Error for CodedError {}

impl sqlx::error::DatabaseError for CodedError {
    fn message(&self) -> &str {
        "simulated"
    }
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.0.into())
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

#[test]
fn an_fsync_failure_is_fatal_and_a_busy_or_full_store_is_not() {
    let err = |code| anyhow::Error::from(sqlx::Error::Database(Box::new(CodedError(code)))).context("failed to write saves");
    assert!(is_fatal(&err("1034")), "SQLITE_IOERR_FSYNC");
    assert!(is_fatal(&err("1290")), "SQLITE_IOERR_DIR_FSYNC");
    for transient in ["5", "6", "13", "8"] {
        assert!(!is_fatal(&err(transient)), "busy, locked, full and read-only are retried: {transient}");
    }
}
