//! The WebSocket listener: `GET /ws` upgrades; binary frames carry MessagePack envelopes, text frames the
//! same envelopes as JSON. `GET /rooms` lists the open rooms (game, id, version, seed, what each holds) as JSON.

use crate::net::envelope::Format;
use crate::net::limits::ConnectionCaps;
use crate::net::session::{self, FrameError, InFrame, OutFrame, ServerCtx};
use axum::Json;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt, future};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Clone)]
struct WsState {
    ctx: Arc<ServerCtx>,
    caps: Arc<ConnectionCaps>,
}

/// Serves WebSocket sessions on `listener` until the server shuts down.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerCtx>, caps: Arc<ConnectionCaps>) -> std::io::Result<()> {
    let shutdown = ctx.shutdown.clone();
    let mut app = Router::new()
        .route("/ws", get(upgrade))
        .route("/health", get(health))
        .route("/", get(|| async { "warden: connect a WebSocket to /ws (see docs/protocol.md)\n" }));
    if ctx.dev {
        // The player page (dev mode: it plays as an anonymous guest) and the reference JavaScript client.
        app = app
            .route("/play", get(|| async { file("text/html; charset=utf-8", include_str!("play/play.html")) }))
            .route("/warden-client.js", get(|| async { file("text/javascript; charset=utf-8", include_str!("play/warden-client.js")) }));
    }
    let app = app.with_state(WsState { ctx, caps });
    // Game traffic is small frames that must leave now: no Nagle delay (it adds up to 40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("failed to set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

fn file(content_type: &'static str, body: &'static str) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    ([(axum::http::header::CONTENT_TYPE, content_type), (axum::http::header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /health`: 200 when saves are being written and rooms served, 503 with the store's error when
/// they are not written, or with why rooms are not served (a fleet host without its lease).
async fn health(State(state): State<WsState>) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let saves = state.ctx.saves.stats();
    let error = state.ctx.saves.health();
    // Room writes (checkpoints and the durable journal) failing: rooms hold their answers meanwhile.
    let room_error = state.ctx.rooms.writer_health();
    let not_serving = state.ctx.rooms.not_serving();
    let ok = error.is_none() && room_error.is_none() && not_serving.is_none();
    let status = if ok { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "ok": ok,
        "rooms": state.ctx.rooms.list().len(),
        "connections": state.caps.open(),
        "saves": saves,
        "save_error": error.map(|(message, fatal)| serde_json::json!({"message": message, "fatal": fatal})),
        "room_store_error": room_error,
        "not_serving": not_serving,
    });
    (status, Json(body))
}

async fn upgrade(ws: WebSocketUpgrade, ConnectInfo(peer): ConnectInfo<SocketAddr>, State(state): State<WsState>) -> Response {
    let max = state.ctx.net.max_frame_bytes;
    let slot = state.caps.acquire(peer.ip());
    let read_buffer = state.ctx.net.ws_read_buffer_bytes;
    ws.max_message_size(max).max_frame_size(max).read_buffer_size(read_buffer).on_upgrade(move |socket| async move {
        match slot {
            Ok(slot) => run(socket, peer, state.ctx, slot).await,
            Err(reason) => {
                state.ctx.stats.transport(crate::net::stats::Transport::Ws).refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                refuse(socket, reason).await
            }
        }
    })
}

/// Tells a connection over the caps why, and closes it.
async fn refuse(mut socket: WebSocket, reason: String) {
    use crate::net::envelope::{ErrorCode, ServerEnvelope, encode};
    let frame = encode(&ServerEnvelope::Error { code: ErrorCode::ServerFull, message: reason.clone(), fatal: true }, Format::MsgPack);
    let _ = socket.send(Message::Binary(frame)).await;
    let _ = socket.send(Message::Close(Some(CloseFrame { code: close_code::AGAIN, reason: truncate(&reason).into() }))).await;
}

/// Close reasons must fit a control frame (123 bytes).
fn truncate(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

async fn run(socket: WebSocket, peer: SocketAddr, ctx: Arc<ServerCtx>, slot: crate::net::limits::ConnectionSlot) {
    let max = ctx.net.max_frame_bytes;
    let (sink, stream) = socket.split();
    let stream = stream.take_while(|m| future::ready(!matches!(m, Ok(Message::Close(_))))).map(move |m| match m {
        Ok(Message::Binary(data)) => Ok(Some(InFrame { data, format: Format::MsgPack })),
        Ok(Message::Text(text)) => {
            Ok(Some(InFrame { data: bytes::Bytes::copy_from_slice(text.as_str().as_bytes()), format: Format::Json }))
        }
        Ok(_) => Ok(None),
        Err(e) => {
            let text = e.to_string();
            if text.contains("too long") || text.contains("too big") {
                Err(FrameError::TooLarge(format!("a frame exceeded the {max} byte cap")))
            } else {
                Err(FrameError::Io(text))
            }
        }
    });
    let sink = sink.with(|frame: OutFrame| {
        future::ready(Ok::<_, axum::Error>(match frame {
            OutFrame::Data(bytes, Format::MsgPack) => Message::Binary(bytes),
            OutFrame::Data(bytes, Format::Json) => {
                Message::Text(Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static("{\"type\":\"error\"}")))
            }
            OutFrame::Ping => Message::Ping(bytes::Bytes::new()),
            OutFrame::Close(reason) if reason.is_empty() => {
                Message::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "".into() }))
            }
            OutFrame::Close(reason) => Message::Close(Some(CloseFrame { code: close_code::POLICY, reason: truncate(&reason).into() })),
        }))
    });
    session::run(ctx, crate::net::stats::Transport::Ws, peer, Box::pin(stream), Box::pin(sink), slot).await;
}
