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
//!
//! In a fleet, each write carries the claim its room was opened under ([`Claimed`]), and a commit is
//! fenced by them (see [`crate::storage::owners`]): the writes of rooms that another host took over are
//! refused by the store, dropped with the answers waiting on them, and those rooms are told to stop;
//! the rest of the commit is retried at once.

use super::PlayerConn;
use super::service::Service;
use crate::storage::owners::{Claimed, Fenced};
use crate::storage::{RoomCommit, RoomWrite, Store};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What goes to the writer.
enum Msg {
    /// A write, and the claim it is fenced by.
    Write(RoomWrite, Option<Arc<Claimed>>),
    /// A write, and answers to send once it (and everything before it) is durable.
    WriteAndSend(RoomWrite, Option<Arc<Claimed>>, Answers),
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
    /// In a fleet, the room (game, room): they are dropped if its writes were fenced.
    room: Option<RoomNames>,
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

/// A room's names: (game, room).
pub type RoomNames = (Arc<str>, Arc<str>);

/// Told the rooms (game, room) whose writes were fenced: another host owns them now.
pub type OnFenced = Box<dyn Fn(&str, &str) + Send + Sync>;

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
    /// Answers are sent only while their room's term in `service` is current; rooms whose writes were
    /// fenced are passed to `on_fenced`.
    pub(super) fn start(store: Store, interval: Duration, gate_waits: GateWaits, service: Arc<Service>, on_fenced: OnFenced) -> RoomWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        tokio::spawn(run(store, rx, stats.clone(), interval, (gate_waits, service, on_fenced)));
        RoomWriter { tx, stats }
    }

    /// Hands over a write (fenced by `claim` in a fleet); it is committed in order with every other.
    pub fn write(&self, write: RoomWrite, claim: Option<Arc<Claimed>>) {
        let _ = self.tx.send(Msg::Write(write, claim));
    }

    /// Hands over a write, and answers (of a room in `term`) that leave once it is durable. In a fleet,
    /// the write is fenced by `fleet`'s claim, and the answers are dropped if the writes of its room
    /// (game, room) are fenced.
    pub fn write_and_send(&self, write: RoomWrite, batches: Batches, term: u64, fleet: Option<(Arc<Claimed>, RoomNames)>) -> Delivered {
        let (claim, room) = fleet.map_or((None, None), |(c, r)| (Some(c), Some(r)));
        let (answers, delivered) = answers(batches, term, room);
        let _ = self.tx.send(Msg::WriteAndSend(write, claim, answers));
        delivered
    }

    /// Hands over answers (of a room in `term`; in a fleet, of `room`, so that they are dropped if its
    /// writes are fenced) that leave once everything handed over before them is durable.
    pub fn send(&self, batches: Batches, term: u64, room: Option<RoomNames>) -> Delivered {
        let (answers, delivered) = answers(batches, term, room);
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

fn answers(batches: Batches, term: u64, room: Option<RoomNames>) -> (Answers, Delivered) {
    let (done, delivered) = oneshot::channel();
    (Answers { batches, handed: Instant::now(), term, room, done }, delivered)
}

async fn run(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    stats: Arc<Mutex<WriterStats>>,
    interval: Duration,
    (gate_waits, service, on_fenced): (GateWaits, Arc<Service>, OnFenced),
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
        // In a fleet, the claim of each room written (its last write's).
        let mut claims: HashMap<(String, String), Arc<Claimed>> = HashMap::new();
        let mut claim = |write: &RoomWrite, c: Option<Arc<Claimed>>| {
            if let Some(c) = c {
                let (game, room) = write.key();
                claims.insert((game.to_string(), room.to_string()), c);
            }
        };
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Write(write, c) => {
                    claim(&write, c);
                    writes.push(write);
                }
                Msg::WriteAndSend(write, c, answers) => {
                    claim(&write, c);
                    writes.push(write);
                    sends.push(answers);
                }
                Msg::Send(answers) => sends.push(answers),
                Msg::Flush(done) => flushed.push(done),
            }
        }
        let mut commit = RoomCommit::fold(writes);
        if !claims.is_empty() {
            commit.fence_by(&claims);
        }
        let mut fenced = Vec::new();
        if !commit.is_empty() {
            fenced = commit_until_durable(&store, &mut commit, &stats).await;
            for (game, room) in &fenced {
                on_fenced(game, room);
            }
        }
        send(sends, &gate_waits, &service, &fenced);
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Sends answers whose commit is durable, in the order they were handed over, unless their room's term
/// has ended or, in a fleet, the host's lease ran out (they are dropped: see [`super::service`]) or its
/// writes were `fenced`. A player whose
/// queue is full is disconnected as a slow consumer ([`PlayerConn::deliver`]); its session then takes it
/// out of its room, as after any disconnect.
fn send(sends: Vec<Answers>, gate_waits: &GateWaits, service: &Service, fenced: &[(String, String)]) {
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
    let fenced_room =
        |room: &Option<RoomNames>| room.as_ref().is_some_and(|(game, room)| fenced.iter().any(|(g, r)| **g == **game && **r == **room));
    for answers in sends {
        if term.admits(answers.term) && !fenced_room(&answers.room) {
            for (conn, frames) in answers.batches {
                conn.deliver(frames, term.lease());
            }
        }
        let _ = answers.done.send(());
    }
}

/// Commits, retrying with back-off (10 ms doubling to 2 s) until the store takes it. Returns the rooms
/// whose writes the store refused as fenced (left out of the commit, which is retried at once without
/// them).
async fn commit_until_durable(store: &Store, commit: &mut RoomCommit, stats: &Mutex<WriterStats>) -> Vec<(String, String)> {
    let mut backoff = Duration::from_millis(10);
    let mut fenced = Vec::new();
    loop {
        if commit.is_empty() {
            return fenced;
        }
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
                return fenced;
            }
            Err(ref e) if let Some(Fenced(rooms)) = e.downcast_ref::<Fenced>() => {
                tracing::warn!("{e}: their writes are dropped and the rooms stop here");
                commit.remove(rooms);
                fenced.extend(rooms.iter().cloned());
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
