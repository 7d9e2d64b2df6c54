//! WebSocket close frames, seen by a plain tokio-tungstenite client: every server-side close sends one
//! with its reason (before `hello`, at shutdown), and a client's close frame is answered with one. A
//! client that gets none sees an abnormal closure (1006) and cannot tell why it was closed.

mod common;

use common::server::{self as srv, WAIT};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use warden::server::Server;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{}/ws", server.ws_addr())).await.expect("the WebSocket connects").0
}

/// Reads until the server's close frame and returns it; fails if the connection ends without one.
async fn close_frame(ws: &mut Ws) -> CloseFrame {
    let read = async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(Some(frame))) => return frame,
                Ok(Message::Close(None)) => panic!("a close frame without a code or reason"),
                Ok(_) => continue,
                Err(e) => panic!("the connection ended without a close frame: {e}"),
            }
        }
        panic!("the connection ended without a close frame")
    };
    tokio::time::timeout(WAIT, read).await.expect("the server closes the connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_before_hello_gets_a_close_frame_with_the_reason() {
    let server = srv::start(&["net.handshake_timeout_ms=300"]).await;
    let mut ws = connect(&server).await;
    let frame = close_frame(&mut ws).await;
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(frame.reason.contains("no hello within 300 ms"), "{frame:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutting_down_sends_every_client_a_close_frame() {
    let server = srv::start(&[]).await;
    let mut waiting = connect(&server).await;
    // A player in a room, through the raw protocol: hello, then join.
    let mut player = connect(&server).await;
    let hello = serde_json::json!({"type": "hello"});
    player.send(Message::text(hello.to_string())).await.unwrap();
    let join = serde_json::json!({"type": "join", "game": "echo", "room": "close-room"});
    player.send(Message::text(join.to_string())).await.unwrap();
    let joined = async {
        while let Some(Ok(m)) = player.next().await {
            if let Message::Text(t) = m
                && t.contains("\"joined\"")
            {
                return;
            }
        }
        panic!("no joined");
    };
    tokio::time::timeout(WAIT, joined).await.expect("the player joins");

    let stop = tokio::spawn(server.shutdown());
    for ws in [&mut waiting, &mut player] {
        let frame = close_frame(ws).await;
        assert_eq!(frame.code, CloseCode::Policy);
        assert!(frame.reason.contains("shutting down"), "{frame:?}");
    }
    stop.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_close_frame_is_answered() {
    let server = srv::start(&[]).await;
    let mut ws = connect(&server).await;
    ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))).await.unwrap();
    let frame = close_frame(&mut ws).await;
    assert_eq!(frame.code, CloseCode::Normal, "the answer echoes the client's code: {frame:?}");
    // After the close handshake the stream ends cleanly.
    let end = tokio::time::timeout(WAIT, ws.next()).await.expect("the stream ends");
    assert!(matches!(end, None | Some(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed))), "{end:?}");
    server.shutdown().await;
}
