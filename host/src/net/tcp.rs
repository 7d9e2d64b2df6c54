//! The TCP listener: each frame is a 4-byte big-endian length followed by a MessagePack envelope.

use crate::net::envelope::Format;
use crate::net::limits::ConnectionCaps;
use crate::net::session::{self, FrameError, InFrame, OutFrame, ServerCtx};
use futures_util::{SinkExt, StreamExt, stream};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// The length-prefix codec with the frame cap.
pub fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_type::<u32>().big_endian().max_frame_length(max_frame_bytes).new_codec()
}

/// Accepts TCP sessions on `listener` until the server shuts down.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerCtx>, caps: Arc<ConnectionCaps>) {
    let shutdown = ctx.shutdown.clone();
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("failed to accept a TCP connection: {e}");
                    continue;
                }
            },
        };
        match caps.acquire(peer.ip()) {
            Ok(slot) => {
                tokio::spawn(run(socket, ctx.clone(), slot));
            }
            Err(reason) => {
                ctx.stats.transport(crate::net::stats::Transport::Tcp).refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::spawn(refuse(socket, ctx.net.max_frame_bytes, reason));
            }
        }
    }
}

async fn refuse(socket: TcpStream, max: usize, reason: String) {
    use crate::net::envelope::{ErrorCode, ServerEnvelope, encode};
    let mut out = FramedWrite::new(socket, codec(max));
    let _ = out.send(encode(&ServerEnvelope::Error { code: ErrorCode::ServerFull, message: reason, fatal: true }, Format::MsgPack)).await;
}

async fn run(socket: TcpStream, ctx: Arc<ServerCtx>, slot: crate::net::limits::ConnectionSlot) {
    let Ok(peer) = socket.peer_addr() else { return };
    let _ = socket.set_nodelay(true);
    let max = ctx.net.max_frame_bytes;
    let (read, write) = socket.into_split();
    let frames = FramedRead::new(read, codec(max)).map(move |r| match r {
        Ok(data) => Ok(Some(InFrame { data: data.freeze(), format: Format::MsgPack })),
        Err(e) if e.to_string().contains("frame size too big") => Err(FrameError::TooLarge(format!("a frame exceeded the {max} byte cap"))),
        Err(e) => Err(FrameError::Io(e.to_string())),
    });
    // The inbound cap is for what clients send; what the server sends is bounded by the connection's
    // outbound queue (a frame larger than the inbound cap once closed the connection without a word).
    let sink = FramedWrite::new(write, codec(ctx.net.outbound_queue_bytes)).with_flat_map(|frame: OutFrame| {
        stream::iter(match frame {
            OutFrame::Data(bytes, _) => Some(Ok(bytes)),
            OutFrame::Ping | OutFrame::Close(_) => None,
        })
    });
    session::run(ctx, crate::net::stats::Transport::Tcp, peer, Box::pin(frames), Box::pin(sink), slot).await;
}
