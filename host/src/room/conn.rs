//! What a room holds of each player's connection: the bounded outbound queue, the kill switch, and
//! the membership flag.

use super::service::LeaseCheck;
use crate::net::envelope::{ErrorCode, Format};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A connection's outbound queue, bounded both in batches and in bytes: a consumer that falls behind
/// fills it and is disconnected instead of being buffered for without bound.
#[derive(Clone)]
pub struct OutQueue {
    tx: mpsc::Sender<Outbound>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The writer's end of an [`OutQueue`].
pub struct OutReceiver {
    rx: mpsc::Receiver<Outbound>,
    queued: Arc<AtomicUsize>,
}

/// The queue refused a batch: the connection is not keeping up.
#[derive(Debug)]
pub struct QueueFull;

impl OutQueue {
    /// A queue of at most `max_batches` batches and `max_bytes` bytes.
    pub fn new(max_batches: usize, max_bytes: usize) -> (OutQueue, OutReceiver) {
        let (tx, rx) = mpsc::channel(max_batches);
        let queued = Arc::new(AtomicUsize::new(0));
        (OutQueue { tx, queued: queued.clone(), max_bytes }, OutReceiver { rx, queued })
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues a batch of frames, or refuses it if either bound would be passed.
    pub fn push(&self, format: Format, frames: Vec<Bytes>) -> Result<(), QueueFull> {
        self.push_under(format, frames, None)
    }

    /// Queues a batch of frames to be written only while `lease` holds, if given (a fleet host's game
    /// answers), or refuses it if either bound would be passed.
    pub fn push_under(&self, format: Format, frames: Vec<Bytes>, lease: Option<&LeaseCheck>) -> Result<(), QueueFull> {
        let size: usize = frames.iter().map(Bytes::len).sum();
        if self.queued.fetch_add(size, Ordering::AcqRel) + size > self.max_bytes {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Err(QueueFull);
        }
        self.tx.try_send(Outbound::Frames(format, frames, lease.cloned())).map_err(|_| {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            QueueFull
        })
    }
}

impl OutReceiver {
    /// The next batch; its bytes stop counting against the queue.
    pub async fn recv(&mut self) -> Option<Outbound> {
        let batch = self.rx.recv().await?;
        self.release(&batch);
        Some(batch)
    }

    /// The next batch if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let batch = self.rx.try_recv().ok()?;
        self.release(&batch);
        Some(batch)
    }

    fn release(&self, batch: &Outbound) {
        let Outbound::Frames(_, frames, _) = batch;
        self.queued.fetch_sub(frames.iter().map(Bytes::len).sum(), Ordering::AcqRel);
    }
}

/// What a session hands a room about its player.
#[derive(Clone)]
pub struct PlayerConn {
    /// Player id.
    pub id: Arc<str>,
    /// The format the player's frames are encoded in.
    pub format: Format,
    /// The player's outbound queue.
    pub out: OutQueue,
    /// Closes the player's connection with a reason (slow consumer, room crash).
    pub kill: Kill,
    /// Whether the player is still in the room it joined; the room clears it when it removes the player.
    pub in_room: Arc<AtomicBool>,
}

impl PlayerConn {
    /// Queues a batch of frames for the player, to be written only while `lease` holds (a fleet host's
    /// game answers; none for the notice that a room moved, which must reach the player after its lease
    /// ran out). A full queue means the player does not read: the connection is closed as a slow consumer
    /// (false), and its session takes the player out of its room.
    pub fn deliver(&self, frames: Vec<Bytes>, lease: Option<&LeaseCheck>) -> bool {
        if self.out.push_under(self.format, frames, lease).is_ok() {
            return true;
        }
        self.kill.kill(ErrorCode::SlowConsumer, "the connection fell behind reading its messages and was closed");
        false
    }
}

/// What goes to a connection's writer.
pub enum Outbound {
    /// Frames to write, in order, all encoded in one format; in a fleet, only while the lease holds.
    Frames(Format, Vec<Bytes>, Option<LeaseCheck>),
}

impl Outbound {
    /// What is to be written now: the frames, or none if they were sent under a lease that has run out
    /// since (the writer drops them: their room runs elsewhere by now).
    pub fn writable(self) -> Option<(Format, Vec<Bytes>)> {
        let Outbound::Frames(format, frames, lease) = self;
        lease.is_none_or(|lease| lease.holds()).then_some((format, frames))
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Outbound::Frames(format, frames, lease) = self;
        f.debug_struct("Frames").field("format", format).field("frames", &frames.len()).field("leased", &lease.is_some()).finish()
    }
}

/// A one-shot "close this connection" signal with its reason.
#[derive(Clone, Default)]
pub struct Kill {
    token: CancellationToken,
    reason: Arc<Mutex<Option<(ErrorCode, String)>>>,
}

impl Kill {
    /// Asks the connection to close with `code` and `reason` (the first reason wins).
    pub fn kill(&self, code: ErrorCode, reason: impl Into<String>) {
        self.reason.lock().unwrap().get_or_insert((code, reason.into()));
        self.token.cancel();
    }

    /// Resolves once killed, with the reason.
    pub async fn killed(&self) -> (ErrorCode, String) {
        self.token.cancelled().await;
        self.reason.lock().unwrap().clone().unwrap_or((ErrorCode::ShuttingDown, "closed".into()))
    }
}
