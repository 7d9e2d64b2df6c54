//! A client of the Warden protocol over WebSocket or TCP, split into a sending and a receiving half.
//! Used by `warden bots` and by the tests; it speaks the real wire formats and also sends raw frames.

use crate::net::envelope::{self, ClientEnvelope, ClientMsg, Format, ServerMsg};
use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the server said, or that it closed.
#[derive(Debug)]
pub enum Received {
    /// An envelope.
    Envelope(ServerMsg),
    /// The connection closed; the WebSocket close reason if there was one.
    Closed(Option<String>),
}

/// The sending half.
pub enum ClientTx {
    /// Over WebSocket, in the given format.
    Ws(SplitSink<Ws, Message>, Format),
    /// Over TCP.
    Tcp(FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>),
}

/// The receiving half.
pub enum ClientRx {
    /// Over WebSocket.
    Ws(SplitStream<Ws>),
    /// Over TCP.
    Tcp(FramedRead<OwnedReadHalf, LengthDelimitedCodec>),
}

/// Where to connect.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// `ws://host:port/ws`, with binary (MessagePack) or text (JSON) frames.
    Ws(String, Format),
    /// A TCP address.
    Tcp(SocketAddr),
}

/// Connects to `endpoint`.
pub async fn connect(endpoint: &Endpoint) -> Result<(ClientTx, ClientRx)> {
    match endpoint {
        Endpoint::Ws(url, format) => {
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.with_context(|| format!("failed to connect to {url}"))?;
            if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                let _ = tcp.set_nodelay(true);
            }
            let (tx, rx) = ws.split();
            Ok((ClientTx::Ws(tx, *format), ClientRx::Ws(rx)))
        }
        Endpoint::Tcp(addr) => {
            let tcp = TcpStream::connect(addr).await.with_context(|| format!("failed to connect to {addr}"))?;
            tcp.set_nodelay(true)?;
            let (r, w) = tcp.into_split();
            let codec = || crate::net::tcp::codec(16 << 20);
            Ok((ClientTx::Tcp(FramedWrite::new(w, codec())), ClientRx::Tcp(FramedRead::new(r, codec()))))
        }
    }
}

impl ClientTx {
    /// The format this half encodes in.
    pub fn format(&self) -> Format {
        match self {
            ClientTx::Ws(_, format) => *format,
            ClientTx::Tcp(_) => Format::MsgPack,
        }
    }

    /// Sends an envelope.
    pub async fn send(&mut self, env: &ClientMsg) -> Result<()> {
        let format = self.format();
        self.send_raw(envelope::encode_client(env, format)).await
    }

    /// Sends `hello` and `join`... without waiting: see [`handshake`].
    pub async fn send_raw(&mut self, frame: Vec<u8>) -> Result<()> {
        match self {
            ClientTx::Ws(sink, Format::MsgPack) => sink.send(Message::Binary(frame.into())).await?,
            ClientTx::Ws(sink, Format::Json) => sink.send(Message::Text(String::from_utf8(frame)?.into())).await?,
            ClientTx::Tcp(sink) => sink.send(Bytes::from(frame)).await?,
        }
        Ok(())
    }

    /// Sends raw bytes as a frame of the given WebSocket kind (ignored on TCP), for malformed-input tests.
    pub async fn send_frame(&mut self, frame: Vec<u8>, text: bool) -> Result<()> {
        match self {
            ClientTx::Ws(sink, _) if text => sink.send(Message::Text(String::from_utf8_lossy(&frame).into_owned().into())).await?,
            ClientTx::Ws(sink, _) => sink.send(Message::Binary(frame.into())).await?,
            ClientTx::Tcp(sink) => sink.send(Bytes::from(frame)).await?,
        }
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(&mut self) {
        match self {
            ClientTx::Ws(sink, _) => drop(sink.close().await),
            ClientTx::Tcp(sink) => drop(SinkExt::<Bytes>::close(sink).await),
        }
    }
}

impl ClientRx {
    /// The next envelope, skipping transport keepalives.
    pub async fn recv(&mut self) -> Result<Received> {
        loop {
            match self {
                ClientRx::Ws(stream) => match stream.next().await {
                    None => return Ok(Received::Closed(None)),
                    Some(Err(e)) => return Ok(Received::Closed(Some(format!("connection error: {e}")))),
                    Some(Ok(Message::Binary(b))) => return Ok(Received::Envelope(envelope::decode_server(&b, Format::MsgPack)?)),
                    Some(Ok(Message::Text(t))) => return Ok(Received::Envelope(envelope::decode_server(t.as_bytes(), Format::Json)?)),
                    Some(Ok(Message::Close(frame))) => return Ok(Received::Closed(frame.map(|f| f.reason.to_string()))),
                    Some(Ok(_)) => continue,
                },
                ClientRx::Tcp(stream) => match stream.next().await {
                    None => return Ok(Received::Closed(None)),
                    Some(Err(e)) => return Ok(Received::Closed(Some(format!("connection error: {e}")))),
                    Some(Ok(b)) => return Ok(Received::Envelope(envelope::decode_server(&b, Format::MsgPack)?)),
                },
            }
        }
    }

    /// The next envelope within `timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> Result<Received> {
        tokio::time::timeout(timeout, self.recv()).await.map_err(|_| anyhow!("nothing received within {timeout:?}"))?
    }

    /// The next envelope within `timeout`, which must not be a close.
    pub async fn envelope(&mut self, timeout: Duration) -> Result<ServerMsg> {
        match self.recv_within(timeout).await? {
            Received::Envelope(env) => Ok(env),
            Received::Closed(reason) => bail!("the connection closed ({reason:?})"),
        }
    }
}

/// Says hello (with `token`, or as a dev guest), then joins `room` of `game`; returns the player id. A
/// `redirect` is an error here (see [`join_room`], which follows it).
pub async fn handshake(tx: &mut ClientTx, rx: &mut ClientRx, token: Option<String>, game: &str, room: &str) -> Result<String> {
    match hello_and_join(tx, rx, token, game, room).await? {
        Ok(player) => Ok(player),
        Err(redirect) => bail!("expected joined, got {redirect:?}"),
    }
}

/// Says hello and joins: the player id, or the `redirect` the server answered the join with.
async fn hello_and_join(
    tx: &mut ClientTx,
    rx: &mut ClientRx,
    token: Option<String>,
    game: &str,
    room: &str,
) -> Result<Result<String, ServerMsg>> {
    use crate::net::envelope::ServerEnvelope;
    let wait = Duration::from_secs(10);
    tx.send(&ClientEnvelope::Hello { token }).await?;
    let player = match rx.envelope(wait).await? {
        ServerEnvelope::Welcome { player, .. } => player,
        other => bail!("expected welcome, got {other:?}"),
    };
    tx.send(&ClientEnvelope::Join { game: game.into(), room: room.into() }).await?;
    match rx.envelope(wait).await? {
        ServerEnvelope::Joined { .. } => Ok(Ok(player)),
        redirect @ ServerEnvelope::Redirect { .. } => Ok(Err(redirect)),
        other => bail!("expected joined, got {other:?}"),
    }
}

/// A player in a room, connected to the host that runs it.
pub struct InRoom {
    /// The sending half.
    pub tx: ClientTx,
    /// The receiving half.
    pub rx: ClientRx,
    /// The player id.
    pub player: String,
    /// How many `redirect`s it followed to get there.
    pub redirects: u32,
}

/// Connects to `endpoint`, says hello with `token` and joins `room` of `game`, following `redirect`s (in a
/// fleet, the room may run on another host: the player connects there with the seat token it was given).
pub async fn join_room(endpoint: &Endpoint, token: Option<String>, game: &str, room: &str) -> Result<InRoom> {
    use crate::net::envelope::ServerEnvelope;
    let (mut endpoint, mut token) = (endpoint.clone(), token);
    for redirects in 0..4 {
        let (mut tx, mut rx) = connect(&endpoint).await?;
        match hello_and_join(&mut tx, &mut rx, token.clone(), game, room).await? {
            Ok(player) => return Ok(InRoom { tx, rx, player, redirects }),
            Err(ServerEnvelope::Redirect { address, seat, .. }) => {
                tx.close().await;
                let format = match &endpoint {
                    Endpoint::Ws(_, format) => *format,
                    Endpoint::Tcp(_) => Format::MsgPack,
                };
                endpoint = Endpoint::Ws(address, format);
                token = Some(seat);
            }
            Err(other) => bail!("expected joined, got {other:?}"),
        }
    }
    bail!("room {room} of {game}: redirected more than three times")
}
