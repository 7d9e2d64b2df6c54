//! The host's one writer of room data: checkpoints, the durable journal and which version each open
//! room runs, group-committed.
//!
//! Rooms hand it [`RoomWrite`]s in the order they happen. It takes everything that arrived while its
//! last commit ran, folds it ([`RoomCommit::fold`]) and commits it in one transaction, then wakes every
//! room that waits on one of those writes. That is the output gate of a durable room: a tick's answers
//! leave only after the commit that holds the tick's journal. One commit is in flight at a time, and one
//! starts at most every `rooms.commit_interval_ms` (2 ms: 25 per tick interval at 20 Hz): the commit cost
//! is paid per interval, however many rooms and inputs a commit carries (1,000 rooms at 20 Hz hand over
//! about 18 ticks per commit); while the store is slow, more arrives per commit instead of more commits
//! queueing.
//!
//! A commit that fails (a lost PostgreSQL connection, a locked or full SQLite file) is retried with
//! back-off, holding what it had: nothing a room handed over is dropped, and the rooms waiting on it keep
//! their answers until it is durable. [`RoomWriter::health`] reports the failure meanwhile.

use crate::storage::{RoomCommit, RoomWrite, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What goes to the writer.
enum Msg {
    /// A write, and whom to tell once it is durable.
    Write(RoomWrite, Option<oneshot::Sender<()>>),
    /// Tell once everything sent before is durable.
    Flush(oneshot::Sender<()>),
}

/// Figures, for `/metrics` and `/health`.
#[derive(Clone, Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Journal rows written.
    pub journal_rows: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Commits that failed and were retried.
    pub retries: u64,
    /// How long each commit took (µs).
    pub commit_us: crate::health::Histogram,
    /// The last commit's error while commits fail.
    pub error: Option<String>,
}

/// A handle on the writer. Cheap to clone.
#[derive(Clone)]
pub struct RoomWriter {
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<Mutex<WriterStats>>,
}

impl RoomWriter {
    /// Starts the writer on the current runtime, starting a commit at most every `interval`.
    pub fn start(store: Store, interval: Duration) -> RoomWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        tokio::spawn(run(store, rx, stats.clone(), interval));
        RoomWriter { tx, stats }
    }

    /// Hands over a write; it is committed in order with every other.
    pub fn write(&self, write: RoomWrite) {
        let _ = self.tx.send(Msg::Write(write, None));
    }

    /// Hands over a write and resolves once it is durable (an `Err` if the writer has stopped).
    pub fn write_durable(&self, write: RoomWrite) -> oneshot::Receiver<()> {
        let (done, wait) = oneshot::channel();
        let _ = self.tx.send(Msg::Write(write, Some(done)));
        wait
    }

    /// Resolves once everything handed over so far is durable.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// The figures so far.
    pub fn stats(&self) -> WriterStats {
        self.stats.lock().unwrap().clone()
    }

    /// The error of the commit being retried, if commits fail now.
    pub fn health(&self) -> Option<String> {
        self.stats.lock().unwrap().error.clone()
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Msg>, stats: Arc<Mutex<WriterStats>>, interval: Duration) {
    let mut last = tokio::time::Instant::now() - interval;
    while let Some(first) = rx.recv().await {
        // What arrives until the interval is up goes in the same commit.
        tokio::time::sleep_until(last + interval).await;
        last = tokio::time::Instant::now();
        let mut writes = Vec::new();
        let mut waiting = Vec::new();
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Write(write, done) => {
                    writes.push(write);
                    waiting.extend(done);
                }
                Msg::Flush(done) => waiting.push(done),
            }
        }
        let commit = RoomCommit::fold(writes);
        if !commit.is_empty() {
            commit_until_durable(&store, &commit, &stats).await;
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
}

/// Commits, retrying with back-off (10 ms doubling to 2 s) until the store takes it.
async fn commit_until_durable(store: &Store, commit: &RoomCommit, stats: &Mutex<WriterStats>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let started = std::time::Instant::now();
        match store.commit_rooms(commit).await {
            Ok(()) => {
                let mut s = stats.lock().unwrap();
                s.commits += 1;
                s.journal_rows += commit.journal.len() as u64;
                s.checkpoints += commit.checkpoints.len() as u64;
                s.commit_us.record(started.elapsed().as_micros() as u64);
                if s.error.take().is_some() {
                    tracing::info!("room writes are durable again");
                }
                return;
            }
            Err(e) => {
                let text = format!("{e:#}");
                {
                    let mut s = stats.lock().unwrap();
                    s.retries += 1;
                    s.error = Some(text.clone());
                }
                tracing::warn!(
                    rooms_checkpointed = commit.checkpoints.len(),
                    journal_rows = commit.journal.len(),
                    "failed to commit room writes, retrying in {backoff:?} (rooms hold their answers meanwhile): {text}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}
