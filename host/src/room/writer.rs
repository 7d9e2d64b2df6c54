//! The host's one writer of room data: checkpoints, the durable journal and which version each open
//! room runs, group-committed.
//!
//! Rooms hand it [`RoomWrite`]s in the order they happen. It takes everything that arrived while its
//! last commit ran, folds it ([`RoomCommit::fold`]) and commits it in one transaction. One commit is in
//! flight at a time, and one starts at most every `rooms.commit_interval_ms` (2 ms: 25 per tick interval
//! at 20 Hz): the commit cost is paid per interval, however many rooms and inputs a commit carries (1,000
//! rooms at 20 Hz, 10 moves a second each, hand over about 40 ticks per commit, about 300 commits a second); while the store is slow, more arrives per commit
//! instead of more commits queueing.
//!
//! It is also the output gate of durable rooms: a tick's answers leave only after the commit that holds
//! the tick's journal. A room hands them over with the journal ([`RoomWriter::write_and_send`]) and goes
//! on; the writer queues them on the players' connections once the commit is durable. The room neither
//! waits for the commit nor runs again to send them (at 1,000 rooms, a second wake-up of every room
//! every tick was a fifth of what durability cost in CPU). A room has at most one hand-over in flight
//! ([`Delivered`]): while the store is slow, its next answers wait in the room, and its inputs in its
//! inbox. Answers are sent in the order they were handed over, so a room's answers keep their order
//! whether they went through the writer or not (a room sends directly only when nothing of it is in
//! flight). Answers are sent only while the term of the room that handed them over is current
//! ([`super::service`]): those of a room that stopped because its host stopped serving are dropped.
//!
//! A commit that fails (a lost PostgreSQL connection, a locked or full SQLite file) is retried with
//! back-off, holding what it had: nothing a room handed over is dropped, and the answers waiting on it
//! are held until it is durable. [`RoomWriter::health`] reports the failure meanwhile.

use super::PlayerConn;
use super::service::Service;
use crate::storage::{RoomCommit, RoomWrite, Store};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What goes to the writer.
enum Msg {
    /// A write.
    Write(RoomWrite),
    /// A write, and answers to send once it (and everything before it) is durable.
    WriteAndSend(RoomWrite, Answers),
    /// Answers to send once everything before them is durable.
    Send(Answers),
    /// Tell once everything sent before is durable.
    Flush(oneshot::Sender<()>),
}

/// A room's answers to one or more players, each player's frames in order.
pub type Batches = Vec<(Arc<PlayerConn>, Vec<Bytes>)>;

/// Answers held until a commit is durable.
struct Answers {
    batches: Batches,
    /// When the room handed them over (how long they waited is the output gate's cost).
    handed: Instant,
    /// The room's term: they are dropped if it has ended by the time they are durable.
    term: u64,
    done: oneshot::Sender<()>,
}

/// Resolves once a room's hand-over has been sent (an `Err` if the writer stopped first). Poll it with
/// `try_recv` to know without waiting.
pub type Delivered = oneshot::Receiver<()>;

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

/// How long answers waited for their commit (µs), shared with [`super::Rooms`].
pub type GateWaits = Arc<Mutex<hdrhistogram::Histogram<u64>>>;

impl RoomWriter {
    /// Starts the writer on the current runtime, starting a commit at most every `interval` and
    /// recording in `gate_waits` how long answers waited for their commit.
    /// Answers are sent only while their room's term in `service` is current.
    pub(super) fn start(store: Store, interval: Duration, gate_waits: GateWaits, service: Arc<Service>) -> RoomWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        tokio::spawn(run(store, rx, stats.clone(), interval, (gate_waits, service)));
        RoomWriter { tx, stats }
    }

    /// Hands over a write; it is committed in order with every other.
    pub fn write(&self, write: RoomWrite) {
        let _ = self.tx.send(Msg::Write(write));
    }

    /// Hands over a write, and answers (of a room in `term`) that leave once it is durable.
    pub fn write_and_send(&self, write: RoomWrite, batches: Batches, term: u64) -> Delivered {
        let (answers, delivered) = answers(batches, term);
        let _ = self.tx.send(Msg::WriteAndSend(write, answers));
        delivered
    }

    /// Hands over answers (of a room in `term`) that leave once everything handed over before them is
    /// durable.
    pub fn send(&self, batches: Batches, term: u64) -> Delivered {
        let (answers, delivered) = answers(batches, term);
        let _ = self.tx.send(Msg::Send(answers));
        delivered
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

fn answers(batches: Batches, term: u64) -> (Answers, Delivered) {
    let (done, delivered) = oneshot::channel();
    (Answers { batches, handed: Instant::now(), term, done }, delivered)
}

async fn run(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    stats: Arc<Mutex<WriterStats>>,
    interval: Duration,
    (gate_waits, service): (GateWaits, Arc<Service>),
) {
    let mut last = tokio::time::Instant::now() - interval;
    while let Some(first) = rx.recv().await {
        // What arrives until the interval is up goes in the same commit.
        tokio::time::sleep_until(last + interval).await;
        last = tokio::time::Instant::now();
        // Sized once: a commit carries a few dozen rooms' ticks, and growing these one push at a time
        // showed in the profile.
        let arrived = rx.len() + 1;
        let mut writes = Vec::with_capacity(arrived);
        let mut sends = Vec::with_capacity(arrived);
        let mut flushed = Vec::new();
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Write(write) => writes.push(write),
                Msg::WriteAndSend(write, answers) => {
                    writes.push(write);
                    sends.push(answers);
                }
                Msg::Send(answers) => sends.push(answers),
                Msg::Flush(done) => flushed.push(done),
            }
        }
        let commit = RoomCommit::fold(writes);
        if !commit.is_empty() {
            commit_until_durable(&store, &commit, &stats).await;
        }
        send(sends, &gate_waits, &service);
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Sends answers whose commit is durable, in the order they were handed over, unless their room's term
/// has ended (they are dropped: see [`super::service`]). A player whose queue is full is disconnected as
/// a slow consumer ([`PlayerConn::deliver`]); its session then takes it out of its room, as after any
/// disconnect.
fn send(sends: Vec<Answers>, gate_waits: &GateWaits, service: &Service) {
    if sends.is_empty() {
        return;
    }
    let now = Instant::now();
    let mut waits = gate_waits.lock().unwrap();
    for answers in &sends {
        waits.saturating_record((now - answers.handed).as_micros().max(1) as u64);
    }
    drop(waits);
    // Held while sending: a term cannot end half-way through, between the check and the sends.
    let term = service.current();
    for answers in sends {
        if term.admits(answers.term) {
            for (conn, frames) in answers.batches {
                conn.deliver(frames);
            }
        }
        let _ = answers.done.send(());
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
