//! One session per connection, the same for WebSocket and TCP: handshake, authentication, room
//! membership, rate limit, timeouts and a bounded outbound queue. A transport hands the session a stream
//! of incoming frames and a sink for outgoing ones; every bad input gets an `error` envelope (fatal ones
//! close the connection with that reason), and only that connection is affected.

use crate::config::{Config, NetConfig};
use crate::net::auth;
use crate::net::envelope::{self, ClientEnvelope, ErrorCode, Format, ServerEnvelope, ServerMsg};
use crate::net::limits::ConnectionSlot;
use crate::net::stats::{NetStats, Refusal, Transport};
use crate::room::{Kill, OutQueue, OutReceiver, Outbound, PlayerConn, RoomHandle, RoomInput, Rooms};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What every session shares.
pub struct ServerCtx {
    /// The rooms.
    pub rooms: Rooms,
    /// Network settings.
    pub net: NetConfig,
    /// Dev mode: anonymous guests allowed.
    pub dev: bool,
    /// Token secret, if configured.
    pub secret: Option<Vec<u8>>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// The save queue (for health).
    pub saves: crate::storage::queue::SaveQueue,
    /// Network counts, for `/metrics`.
    pub stats: Arc<NetStats>,
    /// In a fleet: this host's part in seat tokens (set once it has joined).
    pub seats: std::sync::OnceLock<crate::net::seat::Seats>,
    guests: AtomicU64,
}

impl ServerCtx {
    /// Shared state for sessions of a server with `config`.
    pub fn new(rooms: Rooms, config: &Config, saves: crate::storage::queue::SaveQueue) -> Self {
        ServerCtx {
            rooms,
            net: config.net.clone(),
            dev: config.dev,
            secret: config.auth.secret.clone().map(String::into_bytes),
            shutdown: CancellationToken::new(),
            saves,
            stats: Arc::new(NetStats::default()),
            seats: std::sync::OnceLock::new(),
            guests: AtomicU64::new(0),
        }
    }
}

/// An incoming frame.
pub struct InFrame {
    /// The bytes.
    pub data: Bytes,
    /// Their encoding.
    pub format: Format,
}

/// What a transport reports instead of a frame.
#[derive(Debug)]
pub enum FrameError {
    /// A frame over the size cap.
    TooLarge(String),
    /// The connection failed.
    Io(String),
}

/// What a transport writes.
#[derive(Debug)]
pub enum OutFrame {
    /// An encoded envelope.
    Data(Bytes, Format),
    /// A transport-level keepalive (WebSocket ping; nothing on TCP).
    Ping,
    /// Close the connection with this reason (empty: the client ended the session, a normal close).
    Close(String),
}

/// Incoming items: a frame, or `None` for transport-level activity (a WebSocket pong).
pub type Incoming = Result<Option<InFrame>, FrameError>;

/// Runs a session until the connection ends.
pub async fn run<St, Si>(ctx: Arc<ServerCtx>, transport: Transport, peer: SocketAddr, stream: St, sink: Si, slot: ConnectionSlot)
where
    St: Stream<Item = Incoming> + Unpin + Send,
    Si: Sink<OutFrame> + Unpin + Send + 'static,
{
    let (out, queue) = OutQueue::new(ctx.net.outbound_queue, ctx.net.outbound_queue_bytes);
    let heartbeat = Duration::from_millis(ctx.net.heartbeat_ms);
    let (close_tx, close_rx) = tokio::sync::oneshot::channel();
    ctx.stats.session_opened(transport);
    let stats = ctx.stats.clone();
    let writer = tokio::spawn(write_loop(queue, sink, heartbeat, close_rx, Counted(stats.clone(), transport)));
    let quota = Quota::per_second(NonZeroU32::new(ctx.net.msgs_per_sec).expect("validated"))
        .allow_burst(NonZeroU32::new(ctx.net.burst).expect("validated"));
    let mut session = Session {
        ctx,
        transport,
        out,
        kill: Kill::default(),
        limiter: RateLimiter::direct(quota),
        player: None,
        room: None,
        seat: None,
        format: Format::MsgPack,
    };
    let mut stream = stream;
    // Disabled at the default level; at `debug` every line of the session carries these.
    let span = tracing::debug_span!("conn", peer = %peer, transport = transport.name(), player = tracing::field::Empty);
    // A connection rule (`connections` per ip) that fires with `kick` closes this connection at once.
    let refused = session.ctx.rooms.rules().connection(peer.ip()).into_iter().find(|a| a.action == crate::rules::Action::Kick);
    let close = match refused {
        Some(alert) => Some((ErrorCode::Kicked, alert.detail.unwrap_or_default())),
        None => tracing::Instrument::instrument(session.serve(&mut stream), span).await,
    };
    let closed_by_server = close.is_some();
    stats.session_closed(transport, close.as_ref().map(|(code, _)| *code));
    if session.player.is_some() {
        stats.players(-1);
    }
    session.leave_room().await;
    if let Some((code, reason)) = &close {
        tracing::debug!(peer = %peer, ?code, "closing: {reason}");
        // The reason goes after whatever is queued; the writer flushes both, then closes.
        let frame = envelope::encode(&ServerEnvelope::Error { code: *code, message: reason.clone(), fatal: true }, session.format);
        let _ = session.out.push(session.format, vec![frame]);
    }
    let _ = close_tx.send(close.map(|(_, reason)| reason).unwrap_or_default());
    drop(session);
    // A writer stuck on a client that does not read is abandoned after a grace period.
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), writer).await.is_err() {
        abort.abort();
    }
    // A lingering close: the writer has sent the reason and shut down its side; read and discard what
    // the client still sends (a flood, its own close frame) until it closes or a second passes. Closing a
    // socket with unread data makes the kernel reset the connection, and a reset can discard the error
    // frame still on its way to the client, which then never learns why it was closed.
    if closed_by_server {
        let _ = tokio::time::timeout(Duration::from_secs(1), async { while stream.next().await.is_some() {} }).await;
    }
    drop(stream);
    drop(slot);
}

/// Where a connection's outgoing frames are counted.
struct Counted(Arc<NetStats>, Transport);

async fn write_loop<Si>(
    mut queue: OutReceiver,
    mut sink: Si,
    heartbeat: Duration,
    mut close: tokio::sync::oneshot::Receiver<String>,
    counted: Counted,
) where
    Si: Sink<OutFrame> + Unpin,
{
    let mut ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    loop {
        tokio::select! {
            biased;
            batch = queue.recv() => {
                let Some(batch) = batch else {
                    // Every sender is gone: the session has ended, and its close reason is on the way
                    // (this branch is polled first, so it can see the end before the reason).
                    let reason = (&mut close).await.unwrap_or_default();
                    close_with(&mut sink, reason).await;
                    return;
                };
                if !write_batch(&mut sink, batch, &counted).await {
                    return;
                }
                // What else is queued by now goes out in the same write.
                while let Some(batch) = queue.try_recv() {
                    if !write_batch(&mut sink, batch, &counted).await {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            reason = &mut close => {
                // Drain what is queued, then close with the reason.
                while let Some(batch) = queue.try_recv() {
                    if !write_batch(&mut sink, batch, &counted).await {
                        return;
                    }
                }
                close_with(&mut sink, reason.unwrap_or_default()).await;
                return;
            }
            _ = ping.tick() => {
                if sink.send(OutFrame::Ping).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Ends the connection with a close frame carrying `reason`. After a client's own close frame a new one
/// cannot be sent (WebSocket answers it instead): closing the sink then flushes that answer.
async fn close_with<Si: Sink<OutFrame> + Unpin>(sink: &mut Si, reason: String) {
    if sink.send(OutFrame::Close(reason)).await.is_err() {
        let _ = sink.close().await;
    }
}

/// Feeds a batch to the sink (without flushing); false if the connection is gone.
/// Answers of a fleet host whose lease ran out since they were queued are dropped here, the last point
/// before the socket ([`Outbound::writable`]).
async fn write_batch<Si: Sink<OutFrame> + Unpin>(sink: &mut Si, batch: Outbound, counted: &Counted) -> bool {
    let Some((format, frames)) = batch.writable() else { return true };
    let stats = counted.0.transport(counted.1);
    stats.msgs_out.fetch_add(frames.len() as u64, Ordering::Relaxed);
    stats.bytes_out.fetch_add(frames.iter().map(|f| f.len() as u64).sum(), Ordering::Relaxed);
    for frame in frames {
        if sink.feed(OutFrame::Data(frame, format)).await.is_err() {
            return false;
        }
    }
    true
}

struct Session {
    ctx: Arc<ServerCtx>,
    transport: Transport,
    out: OutQueue,
    kill: Kill,
    limiter: DefaultDirectRateLimiter,
    player: Option<Arc<str>>,
    room: Option<(RoomHandle, Arc<AtomicBool>)>,
    /// Admitted with a seat token: the only room it may join (game, room).
    seat: Option<(String, String)>,
    format: Format,
}

type Close = Option<(ErrorCode, String)>;

impl Session {
    async fn serve<St: Stream<Item = Incoming> + Unpin>(&mut self, mut stream: St) -> Close {
        let net = &self.ctx.net;
        let handshake = Duration::from_millis(net.handshake_timeout_ms);
        let idle = Duration::from_millis(net.idle_timeout_ms);
        // The session's own token (see the room loop's): no lock shared with every other session.
        let shutdown = self.ctx.shutdown.child_token();
        let kill = self.kill.clone();
        let opened = Instant::now();
        let mut last_seen = opened;
        let deadline = |player: bool, last_seen: Instant| if player { last_seen + idle } else { opened + handshake };
        // Made once, not at every frame: waiting on a token or a timer registers the session with it,
        // and a frame a player sends ten times a second would otherwise re-register all three. The timer
        // is lazy: it fires at the deadline it was set to, and is set again if a frame came since.
        let killed = kill.killed();
        let stopping = shutdown.cancelled();
        let timer = tokio::time::sleep_until(deadline(false, opened));
        tokio::pin!(killed, stopping, timer);
        loop {
            tokio::select! {
                biased;
                why = &mut killed => return Some(why),
                _ = &mut stopping => return Some((ErrorCode::ShuttingDown, "the server is shutting down".into())),
                _ = &mut timer => {
                    let due = deadline(self.player.is_some(), last_seen);
                    if due > Instant::now() {
                        timer.as_mut().reset(due);
                        continue;
                    }
                    return Some(if self.player.is_none() {
                        (ErrorCode::Timeout, format!("no hello within {} ms of connecting", handshake.as_millis()))
                    } else {
                        (ErrorCode::Timeout, format!("nothing received for {} ms (send ping to stay connected)", idle.as_millis()))
                    });
                }
                item = stream.next() => {
                    match item {
                        None | Some(Err(FrameError::Io(_))) => return None,
                        Some(Err(FrameError::TooLarge(why))) => {
                            self.ctx.stats.refused(Refusal::TooLarge);
                            return Some((ErrorCode::FrameTooLarge, why));
                        }
                        Some(Ok(None)) => last_seen = Instant::now(),
                        Some(Ok(Some(frame))) => {
                            last_seen = Instant::now();
                            if let Some(close) = self.handle(frame).await {
                                return Some(close);
                            }
                        }
                    }
                    // Deadlines only move later, except from the handshake's to the idle one (the
                    // idle timeout may be the shorter): the timer is set earlier only then.
                    let due = deadline(self.player.is_some(), last_seen);
                    if due < timer.deadline() {
                        timer.as_mut().reset(due);
                    }
                }
            }
        }
    }

    /// Sends an envelope now (outside any room batch).
    fn reply(&self, env: &ServerMsg) {
        let frame = envelope::encode(env, self.format);
        if self.out.push(self.format, vec![frame]).is_err() {
            self.kill.kill(ErrorCode::SlowConsumer, "the connection fell behind reading its messages and was closed");
        }
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>) {
        self.reply(&ServerEnvelope::Error { code, message: message.into(), fatal: false });
    }

    async fn handle(&mut self, frame: InFrame) -> Option<(ErrorCode, String)> {
        let stats = self.ctx.stats.transport(self.transport);
        stats.msgs_in.fetch_add(1, Ordering::Relaxed);
        stats.bytes_in.fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        if self.limiter.check().is_err() {
            self.ctx.stats.refused(Refusal::RateLimited);
            let net = &self.ctx.net;
            return Some((ErrorCode::RateLimited, format!("more than {} messages per second (burst {})", net.msgs_per_sec, net.burst)));
        }
        self.format = frame.format;
        let msg = match envelope::decode(&frame.data, frame.format) {
            Ok(msg) => msg,
            Err(e @ envelope::DecodeError::Unknown(_)) => {
                self.ctx.stats.refused(Refusal::Unknown);
                self.error(e.code(), e.to_string());
                return None;
            }
            Err(e) => {
                self.ctx.stats.refused(Refusal::Malformed);
                return Some((e.code(), e.to_string()));
            }
        };
        if let ClientEnvelope::Hello { token } = msg {
            return self.hello(token);
        }
        if self.player.is_none() {
            return Some((ErrorCode::NotAuthenticated, "the first envelope must be hello".into()));
        }
        match msg {
            ClientEnvelope::Hello { .. } => unreachable!("handled above"),
            ClientEnvelope::Ping { nonce } => self.reply(&ServerEnvelope::Pong { nonce }),
            ClientEnvelope::Join { game, room } => self.join(game, room).await,
            ClientEnvelope::Msg { data } => match self.current_room() {
                Some(handle) => {
                    let player = self.player.clone().expect("authenticated");
                    if !handle.send(RoomInput::Msg { player, payload: data }).await {
                        self.room = None;
                        self.error(ErrorCode::NotInRoom, "the room has closed; join again");
                    }
                }
                None => self.error(ErrorCode::NotInRoom, "join a room before sending msg"),
            },
            ClientEnvelope::Leave => {
                if self.current_room().is_some() {
                    self.leave_room().await;
                } else {
                    self.error(ErrorCode::NotInRoom, "not in a room");
                }
            }
        }
        None
    }

    fn hello(&mut self, token: Option<String>) -> Option<(ErrorCode, String)> {
        if self.player.is_some() {
            self.error(ErrorCode::NotAuthenticated, "hello was already received");
            return None;
        }
        let (player, guest) = match (token, &self.ctx.secret) {
            (Some(token), _) if token.starts_with(crate::net::seat::PREFIX) => {
                let seat = match self.ctx.seats.get() {
                    Some(seats) => seats.verify(&token[crate::net::seat::PREFIX.len()..], auth::unix_now()),
                    None => Err(crate::net::seat::SeatError::NoFleet),
                };
                match seat {
                    Ok(seat) => {
                        self.seat = Some((seat.game, seat.room));
                        (seat.player, false)
                    }
                    Err(e) => return Some((ErrorCode::BadToken, e.to_string())),
                }
            }
            (Some(token), Some(secret)) => match auth::verify(secret, &token, auth::unix_now()) {
                Ok(player) => (player, false),
                Err(e) => return Some((ErrorCode::BadToken, e.to_string())),
            },
            (Some(_), None) => return Some((ErrorCode::BadToken, "this server has no auth.secret, so it cannot check tokens".into())),
            (None, _) if self.ctx.dev => (format!("guest-{}", self.ctx.guests.fetch_add(1, Ordering::Relaxed) + 1), true),
            (None, _) => {
                return Some((ErrorCode::BadToken, "a token is required (anonymous guests are only admitted in --dev mode)".into()));
            }
        };
        tracing::Span::current().record("player", player.as_str());
        tracing::debug!(guest, "hello");
        self.reply(&ServerEnvelope::Welcome { player: player.clone(), guest, server: env!("CARGO_PKG_VERSION").into() });
        self.player = Some(player.into());
        self.ctx.stats.players(1);
        None
    }

    fn current_room(&mut self) -> Option<RoomHandle> {
        match &self.room {
            Some((handle, in_room)) if in_room.load(Ordering::Acquire) => Some(handle.clone()),
            Some(_) => {
                self.room = None;
                None
            }
            None => None,
        }
    }

    async fn join(&mut self, game: String, room: String) {
        if self.current_room().is_some() {
            return self.error(ErrorCode::AlreadyInRoom, "leave the current room before joining another");
        }
        if let Some((g, r)) = &self.seat
            && (g, r) != (&game, &room)
        {
            return self
                .error(ErrorCode::BadToken, format!("your seat token is for room {r} of {g} only; join it, or say hello elsewhere"));
        }
        let in_room = Arc::new(AtomicBool::new(false));
        let conn = PlayerConn {
            id: self.player.clone().expect("authenticated"),
            format: self.format,
            out: self.out.clone(),
            kill: self.kill.clone(),
            in_room: in_room.clone(),
        };
        match self.ctx.rooms.join(&game, &room, conn).await {
            Ok(handle) => self.room = Some((handle, in_room)),
            Err(crate::room::JoinError::Elsewhere { game, room, host, address }) => match self.ctx.seats.get() {
                Some(seats) => {
                    let player = self.player.as_deref().expect("authenticated");
                    let seat = seats.mint(player, &game, &room, &host, auth::unix_now());
                    let ttl = crate::net::seat::SEAT_TTL.as_millis() as u64;
                    self.reply(&ServerEnvelope::Redirect { game, room, host, address, seat, seat_ttl_ms: ttl });
                }
                None => self.error(ErrorCode::NotServing, format!("room {room} runs on host {host} ({address})")),
            },
            Err(e) => self.error(e.code(), e.to_string()),
        }
    }

    async fn leave_room(&mut self) {
        if let Some((handle, in_room)) = self.room.take()
            && in_room.swap(false, Ordering::AcqRel)
        {
            let player = self.player.clone().expect("authenticated");
            handle.send(RoomInput::Leave { player }).await;
        }
    }
}
