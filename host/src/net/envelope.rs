//! The envelope codec: what clients and the server exchange, in MessagePack (binary WebSocket frames,
//! TCP) or JSON (text WebSocket frames, for debugging). One set of envelope types, generic over how the
//! game payload (`data`) is carried: MessagePack `bin` in binary frames, any JSON value in text frames.
//! The plugin always sees MessagePack. See docs/protocol.md.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// How a frame is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// MessagePack (binary WebSocket frames, TCP).
    MsgPack,
    /// JSON (text WebSocket frames).
    Json,
}

/// Envelopes a client sends. `D` carries the game payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientEnvelope<D> {
    /// First envelope of a connection: authenticate. `token` is minted by `warden token`, or is the seat
    /// token of a `redirect` (in a fleet); without one the server admits an anonymous guest only in dev
    /// mode.
    Hello {
        /// Signed player token, or seat token.
        #[serde(default)]
        token: Option<String>,
    },
    /// Enter room `room` of game `game`, creating it if needed.
    Join {
        /// Game (plugin) name.
        game: String,
        /// Room id.
        room: String,
    },
    /// A game message for the room's plugin.
    Msg {
        /// The payload.
        data: D,
    },
    /// Leave the current room.
    Leave,
    /// Liveness check; answered with `pong` carrying the same nonce.
    Ping {
        /// Echoed back.
        #[serde(default)]
        nonce: u64,
    },
}

/// Envelopes the server sends. `D` carries the game payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEnvelope<D> {
    /// Answer to `hello`.
    Welcome {
        /// The player id the server knows you as.
        player: String,
        /// Whether this is an anonymous dev-mode guest.
        guest: bool,
        /// Server version.
        server: String,
    },
    /// You are in a room.
    Joined {
        /// Game name.
        game: String,
        /// Room id.
        room: String,
        /// Version of the plugin running the room.
        version: String,
        /// Seed of the room's deterministic random stream.
        seed: u64,
        /// Game clock rate.
        tick_hz: u32,
        /// Player cap.
        max_players: u32,
        /// Players in the room, you included.
        players: u32,
    },
    /// A game message from the room's plugin.
    Msg {
        /// The payload.
        data: D,
    },
    /// Something you sent was refused. `fatal` errors are followed by the server closing the
    /// connection.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// What happened and what to do.
        message: String,
        /// Whether the connection closes after this.
        #[serde(default)]
        fatal: bool,
    },
    /// You were removed from the room (by the game, or because the room or server closed).
    Kicked {
        /// Why.
        reason: String,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// In a fleet: the room you asked to join runs on another host. Connect to `address` and say `hello`
    /// with `seat` as the token, then `join` the same room (the seat is valid there, for that room, for
    /// `seat_ttl_ms`).
    Redirect {
        /// Game name.
        game: String,
        /// Room id.
        room: String,
        /// The owning host's id.
        host: String,
        /// Where to connect (a WebSocket URL).
        address: String,
        /// A short-lived seat token for `hello` there.
        seat: String,
        /// How long the seat token is valid, in milliseconds.
        seat_ttl_ms: u64,
    },
}

/// Machine-readable error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a valid envelope (bad MessagePack or JSON, missing fields).
    BadFrame,
    /// The frame is larger than the server accepts.
    FrameTooLarge,
    /// An envelope type the server does not know.
    UnknownEnvelope,
    /// `hello` was not the first envelope, or came twice.
    NotAuthenticated,
    /// The token did not verify.
    BadToken,
    /// `msg` or `leave` while not in a room.
    NotInRoom,
    /// `join` while already in a room.
    AlreadyInRoom,
    /// No plugin of that name is loaded.
    UnknownGame,
    /// The room id is not acceptable.
    BadRoom,
    /// The room is at its player cap.
    RoomFull,
    /// The operator closed the game to new joins (maintenance); players already in rooms stay.
    JoinsClosed,
    /// One of the server's threshold rules removed you (the message says which and why).
    Kicked,
    /// The game refused the message (the plugin returned an error).
    GameError,
    /// Too many messages too fast.
    RateLimited,
    /// No `hello` within the handshake timeout, or nothing received within the idle timeout.
    Timeout,
    /// The connection did not read its messages fast enough.
    SlowConsumer,
    /// Connection caps reached.
    ServerFull,
    /// The server is shutting down.
    ShuttingDown,
    /// This host does not serve rooms now (in a fleet: it lost its lease and has not registered again);
    /// connect again, to this host or another.
    NotServing,
}

impl ErrorCode {
    /// Its name on the wire (snake case), also its metric label.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnknownEnvelope => "unknown_envelope",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::BadToken => "bad_token",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::AlreadyInRoom => "already_in_room",
            ErrorCode::UnknownGame => "unknown_game",
            ErrorCode::BadRoom => "bad_room",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::JoinsClosed => "joins_closed",
            ErrorCode::Kicked => "kicked",
            ErrorCode::GameError => "game_error",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::NotServing => "not_serving",
        }
    }
}

/// A client envelope as the host handles it: the payload already MessagePack.
pub type ClientMsg = ClientEnvelope<Vec<u8>>;
/// A server envelope as the host builds it: the payload MessagePack.
pub type ServerMsg = ServerEnvelope<Bytes>;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not an envelope at all.
    #[error("malformed {format} envelope: {reason}")]
    Malformed {
        /// "MessagePack" or "JSON".
        format: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// A well-formed envelope of an unknown type.
    #[error("unknown envelope type {0:?}: expected hello, join, msg, leave or ping")]
    Unknown(String),
}

impl DecodeError {
    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Malformed { .. } => ErrorCode::BadFrame,
            DecodeError::Unknown(_) => ErrorCode::UnknownEnvelope,
        }
    }
}

impl<A> ClientEnvelope<A> {
    /// The same envelope with its payload converted by `f`.
    pub fn map_data<B, E>(self, f: impl FnOnce(A) -> Result<B, E>) -> Result<ClientEnvelope<B>, E> {
        Ok(match self {
            ClientEnvelope::Hello { token } => ClientEnvelope::Hello { token },
            ClientEnvelope::Join { game, room } => ClientEnvelope::Join { game, room },
            ClientEnvelope::Msg { data } => ClientEnvelope::Msg { data: f(data)? },
            ClientEnvelope::Leave => ClientEnvelope::Leave,
            ClientEnvelope::Ping { nonce } => ClientEnvelope::Ping { nonce },
        })
    }
}

impl<A> ServerEnvelope<A> {
    /// The same envelope with its payload converted by `f`.
    pub fn map_data<B, E>(self, f: impl FnOnce(A) -> Result<B, E>) -> Result<ServerEnvelope<B>, E> {
        Ok(match self {
            ServerEnvelope::Welcome { player, guest, server } => ServerEnvelope::Welcome { player, guest, server },
            ServerEnvelope::Joined { game, room, version, seed, tick_hz, max_players, players } => {
                ServerEnvelope::Joined { game, room, version, seed, tick_hz, max_players, players }
            }
            ServerEnvelope::Msg { data } => ServerEnvelope::Msg { data: f(data)? },
            ServerEnvelope::Error { code, message, fatal } => ServerEnvelope::Error { code, message, fatal },
            ServerEnvelope::Kicked { reason } => ServerEnvelope::Kicked { reason },
            ServerEnvelope::Pong { nonce } => ServerEnvelope::Pong { nonce },
            ServerEnvelope::Redirect { game, room, host, address, seat, seat_ttl_ms } => {
                ServerEnvelope::Redirect { game, room, host, address, seat, seat_ttl_ms }
            }
        })
    }
}

/// A payload in a MessagePack frame: a `bin`.
struct Bin<T>(T);

/// A payload read from a MessagePack frame.
#[derive(Deserialize)]
#[serde(transparent)]
struct BinIn(#[serde(with = "serde_bytes")] Vec<u8>);

impl<T: AsRef<[u8]>> Serialize for Bin<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0.as_ref())
    }
}

fn classify(format: &'static str, reason: String) -> DecodeError {
    // serde reports an unknown tag as "unknown variant `x`, expected one of ...".
    match reason.split('`').nth(1) {
        Some(name) if reason.starts_with("unknown variant") => DecodeError::Unknown(name.to_string()),
        _ => DecodeError::Malformed { format, reason },
    }
}

fn json_to_msgpack(value: serde_json::Value) -> Result<Vec<u8>, DecodeError> {
    rmp_serde::to_vec_named(&value).map_err(|e| DecodeError::Malformed { format: "JSON", reason: format!("data: {e}") })
}

/// MessagePack payload bytes shown as JSON; bytes that are not valid MessagePack become a JSON string
/// saying so (the MessagePack form of the same envelope is unaffected).
fn msgpack_to_json(data: &[u8]) -> Result<serde_json::Value, std::convert::Infallible> {
    // Nesting is bounded (`runtime::payload`): a deep payload from a plugin cannot overflow the stack.
    Ok(crate::runtime::payload::to_json(data)
        .unwrap_or_else(|e| serde_json::Value::String(format!("<payload cannot be shown as JSON: {e}>"))))
}

/// An envelope from MessagePack: its own two levels, and a payload as deep as any payload may be.
fn from_msgpack<'de, T: Deserialize<'de>>(frame: &'de [u8]) -> Result<T, String> {
    crate::runtime::payload::from_msgpack(frame, crate::runtime::payload::MAX_DEPTH + 2)
}

/// Decodes a client frame.
pub fn decode(frame: &[u8], format: Format) -> Result<ClientMsg, DecodeError> {
    match format {
        Format::MsgPack => from_msgpack::<ClientEnvelope<BinIn>>(frame).map_err(|e| classify("MessagePack", e))?.map_data(|d| Ok(d.0)),
        Format::Json => serde_json::from_slice::<ClientEnvelope<serde_json::Value>>(frame)
            .map_err(|e| classify("JSON", e.to_string()))?
            .map_data(json_to_msgpack),
    }
}

/// Room for a MessagePack `msg` envelope's fields around its payload (`{"type":"msg","data":...}`: a map
/// of two, 20 bytes with a 32-bit `bin` length).
const MSG_ENVELOPE_BYTES: usize = 24;

/// Encodes a server envelope.
///
/// A `msg` (every answer a room sends) is written from a borrowed view of its payload into a buffer
/// sized for it: cloning the envelope made the payload's `Bytes` shared (an allocation, freed by the
/// connection's writer on another thread), and a buffer grown from empty was reallocated five or six
/// times per frame; both showed in the tick loop's profile.
pub fn encode(env: &ServerMsg, format: Format) -> Bytes {
    let out = match (format, env) {
        (Format::MsgPack, ServerEnvelope::Msg { data }) => {
            let mut out = Vec::with_capacity(data.len() + MSG_ENVELOPE_BYTES);
            rmp_serde::encode::write_named(&mut out, &ServerEnvelope::Msg { data: Bin(&data[..]) }).map(|()| out).ok()
        }
        (Format::MsgPack, _) => msgpack_whole(env),
        (Format::Json, _) => serde_json::to_vec(&env.clone().map_data(|d| msgpack_to_json(&d)).unwrap()).ok(),
    };
    Bytes::from(out.expect("server envelopes always encode"))
}

/// A server envelope in MessagePack, serialized whole (its payload, if any, as `bin`).
fn msgpack_whole(env: &ServerMsg) -> Option<Vec<u8>> {
    rmp_serde::to_vec_named(&env.clone().map_data(|d| Ok::<_, std::convert::Infallible>(Bin(d))).unwrap()).ok()
}

/// Decodes a server frame (clients: `warden bots`, tests).
pub fn decode_server(frame: &[u8], format: Format) -> Result<ServerMsg, DecodeError> {
    match format {
        Format::MsgPack => {
            from_msgpack::<ServerEnvelope<BinIn>>(frame).map_err(|e| classify("MessagePack", e))?.map_data(|d| Ok(Bytes::from(d.0)))
        }
        Format::Json => serde_json::from_slice::<ServerEnvelope<serde_json::Value>>(frame)
            .map_err(|e| classify("JSON", e.to_string()))?
            .map_data(|v| json_to_msgpack(v).map(Bytes::from)),
    }
}

/// Encodes a client envelope (clients: `warden bots`, tests). `data` must be valid MessagePack.
pub fn encode_client(env: &ClientMsg, format: Format) -> Vec<u8> {
    let out = match format {
        Format::MsgPack => rmp_serde::to_vec_named(&env.clone().map_data(|d| Ok::<_, std::convert::Infallible>(Bin(d))).unwrap()).ok(),
        Format::Json => serde_json::to_vec(&env.clone().map_data(|d| msgpack_to_json(&d)).unwrap()).ok(),
    };
    out.expect("client envelopes always encode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_names_are_their_wire_names() {
        use ErrorCode::*;
        let all = [
            BadFrame,
            FrameTooLarge,
            UnknownEnvelope,
            NotAuthenticated,
            BadToken,
            NotInRoom,
            AlreadyInRoom,
            UnknownGame,
            BadRoom,
            RoomFull,
            GameError,
            RateLimited,
            Timeout,
            SlowConsumer,
            ServerFull,
            ShuttingDown,
            NotServing,
        ];
        for code in all {
            assert_eq!(serde_json::to_value(code).unwrap(), code.name(), "{code:?}");
        }
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Move {
        dir: String,
        seq: u64,
    }

    fn payload() -> Vec<u8> {
        rmp_serde::to_vec_named(&Move { dir: "up".into(), seq: 7 }).unwrap()
    }

    #[test]
    fn client_envelopes_round_trip_in_both_formats() {
        let all = [
            ClientEnvelope::Hello { token: Some("t".into()) },
            ClientEnvelope::Hello { token: None },
            ClientEnvelope::Join { game: "arena".into(), room: "r1".into() },
            ClientEnvelope::Msg { data: payload() },
            ClientEnvelope::Leave,
            ClientEnvelope::Ping { nonce: 9 },
        ];
        for format in [Format::MsgPack, Format::Json] {
            for env in &all {
                assert_eq!(&decode(&encode_client(env, format), format).unwrap(), env, "{format:?}");
            }
        }
    }

    #[test]
    fn json_frames_carry_the_payload_as_plain_json_and_the_plugin_gets_msgpack() {
        let frame = br#"{"type":"msg","data":{"dir":"up","seq":7}}"#;
        let ClientEnvelope::Msg { data } = decode(frame, Format::Json).unwrap() else { panic!() };
        assert_eq!(rmp_serde::from_slice::<Move>(&data).unwrap(), Move { dir: "up".into(), seq: 7 });
        let out = encode(&ServerEnvelope::Msg { data: Bytes::from(payload()) }, Format::Json);
        assert_eq!(std::str::from_utf8(&out).unwrap(), r#"{"type":"msg","data":{"dir":"up","seq":7}}"#);
    }

    #[test]
    fn server_envelopes_round_trip_in_both_formats() {
        let all = [
            ServerEnvelope::Welcome { player: "p".into(), guest: true, server: "0.1.0".into() },
            ServerEnvelope::Joined {
                game: "arena".into(),
                room: "r".into(),
                version: "0.1.0".into(),
                seed: 5,
                tick_hz: 20,
                max_players: 4,
                players: 1,
            },
            ServerEnvelope::Msg { data: Bytes::from(payload()) },
            ServerEnvelope::Error { code: ErrorCode::RoomFull, message: "full".into(), fatal: false },
            ServerEnvelope::Kicked { reason: "bye".into() },
            ServerEnvelope::Pong { nonce: 3 },
            ServerEnvelope::Redirect {
                game: "arena".into(),
                room: "r".into(),
                host: "b".into(),
                address: "ws://b/ws".into(),
                seat: "seat:x.y".into(),
                seat_ttl_ms: 30_000,
            },
        ];
        for format in [Format::MsgPack, Format::Json] {
            for env in &all {
                assert_eq!(&decode_server(&encode(env, format), format).unwrap(), env, "{format:?}");
            }
        }
    }

    #[test]
    fn a_msg_is_encoded_from_its_payload_into_a_buffer_sized_for_it() {
        for len in [0, 1, 31, 255, 256, 65_535, 65_536, 300_000] {
            let data = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            let env = ServerEnvelope::Msg { data: data.clone() };
            let frame = encode(&env, Format::MsgPack);
            // The same bytes as the envelope serialized whole, as every other envelope is.
            let whole = msgpack_whole(&env).unwrap();
            assert_eq!(&frame[..], &whole[..], "payload of {len} bytes");
            assert!(frame.len() <= len + MSG_ENVELOPE_BYTES, "{} bytes for a payload of {len}: the buffer had to grow", frame.len());
        }
    }

    #[test]
    fn deeply_nested_payloads_neither_crash_nor_convert() {
        // 100,000 nested arrays from a plugin, to a text-frame client.
        let mut deep = vec![0x91u8; 100_000];
        deep.push(0x01);
        let out = encode(&ServerEnvelope::Msg { data: Bytes::from(deep.clone()) }, Format::Json);
        assert!(std::str::from_utf8(&out).unwrap().contains("nested deeper than 64"));
        assert!(encode(&ServerEnvelope::Msg { data: Bytes::from(deep) }, Format::MsgPack).len() > 100_000, "binary clients get the bytes");
        // And from a player: a 100,000-deep JSON frame is refused as malformed.
        let frame = format!("{{\"type\":\"msg\",\"data\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(decode(frame.as_bytes(), Format::Json), Err(DecodeError::Malformed { .. })));
        let mut frame = rmp_serde::to_vec_named(&serde_json::json!({"type": "msg"})).unwrap();
        frame[0] = 0x82; // two entries: type and data
        frame.extend(rmp_serde::to_vec("data").unwrap());
        frame.extend(std::iter::repeat_n(0x91u8, 100_000));
        frame.push(0x01);
        assert!(decode(&frame, Format::MsgPack).is_err(), "a deep MessagePack frame is refused too");
    }

    #[test]
    fn bad_frames_are_classified() {
        assert!(matches!(decode(b"\xc1\xc1", Format::MsgPack), Err(DecodeError::Malformed { format: "MessagePack", .. })));
        assert!(matches!(decode(b"{not json", Format::Json), Err(DecodeError::Malformed { format: "JSON", .. })));
        assert_eq!(decode(br#"{"type":"dance"}"#, Format::Json), Err(DecodeError::Unknown("dance".into())));
        let unknown = rmp_serde::to_vec_named(&serde_json::json!({"type": "dance"})).unwrap();
        assert_eq!(decode(&unknown, Format::MsgPack), Err(DecodeError::Unknown("dance".into())));
        let err = decode(br#"{"type":"join","game":"arena"}"#, Format::Json).unwrap_err();
        assert!(err.to_string().contains("room"), "a missing field is named: {err}");
        assert_eq!(err.code(), ErrorCode::BadFrame);
    }
}
