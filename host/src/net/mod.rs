//! Networking: the envelope codec, player tokens, connection limits, and the WebSocket and TCP
//! listeners that run one session per connection.

pub mod auth;
pub mod client;
pub mod envelope;
pub mod limits;
pub mod seat;
pub mod session;
pub mod stats;
pub mod tcp;
pub mod ws;
