//! Network counts for `/metrics`: sessions, players, messages and bytes each way per transport, frames
//! refused, slow consumers. Plain relaxed atomics, one add per frame (never a lookup by label).

use crate::net::envelope::ErrorCode;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// How a client is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket (`/ws`).
    Ws,
    /// Length-prefixed TCP.
    Tcp,
}

impl Transport {
    /// Both, in index order.
    pub const ALL: [Transport; 2] = [Transport::Ws, Transport::Tcp];

    /// Its name as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Tcp => "tcp",
        }
    }
}

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over the connection's rate limit.
    RateLimited,
    /// Over the frame size cap.
    TooLarge,
    /// Not a valid envelope.
    Malformed,
    /// A valid envelope of an unknown type.
    Unknown,
}

impl Refusal {
    /// Every reason, in index order.
    pub const ALL: [Refusal; 4] = [Refusal::RateLimited, Refusal::TooLarge, Refusal::Malformed, Refusal::Unknown];

    /// Its name as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::RateLimited => "rate_limited",
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown_envelope",
        }
    }
}

/// One transport's counts.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Connections accepted (sessions started).
    pub opened: AtomicU64,
    /// Connections refused at the connection caps.
    pub refused: AtomicU64,
    /// Frames received.
    pub msgs_in: AtomicU64,
    /// Bytes of those frames.
    pub bytes_in: AtomicU64,
    /// Frames sent.
    pub msgs_out: AtomicU64,
    /// Bytes of those frames.
    pub bytes_out: AtomicU64,
}

/// Every network count of a server.
#[derive(Debug, Default)]
pub struct NetStats {
    transports: [TransportStats; 2],
    refused: [AtomicU64; 4],
    players: AtomicI64,
    sessions: AtomicI64,
    closed: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl NetStats {
    /// The counts of `transport`.
    pub fn transport(&self, transport: Transport) -> &TransportStats {
        &self.transports[transport as usize]
    }

    /// A frame was refused.
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Frames refused for `why` so far.
    pub fn refusals(&self, why: Refusal) -> u64 {
        self.refused[why as usize].load(Ordering::Relaxed)
    }

    /// A session started.
    pub fn session_opened(&self, transport: Transport) {
        self.transport(transport).opened.fetch_add(1, Ordering::Relaxed);
        self.sessions.fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended, closed by the server with `code` or (`None`) by the client or the network.
    pub fn session_closed(&self, transport: Transport, code: Option<ErrorCode>) {
        self.sessions.fetch_sub(1, Ordering::Relaxed);
        let reason = code.map_or("client", ErrorCode::name);
        *self.closed.lock().unwrap().entry((transport.name(), reason)).or_default() += 1;
    }

    /// A player authenticated (`+1`) or its session ended (`-1`).
    pub fn players(&self, delta: i64) {
        self.players.fetch_add(delta, Ordering::Relaxed);
    }

    /// Authenticated players connected now.
    pub fn players_connected(&self) -> i64 {
        self.players.load(Ordering::Relaxed)
    }

    /// Sessions open now.
    pub fn sessions_open(&self) -> i64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Sessions closed so far, by (transport, reason).
    pub fn closed(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        self.closed.lock().unwrap().clone()
    }
}
