//! Seat tokens: what a host of a fleet hands a player it sends to another host (`redirect`). The token
//! names the player, the room and the host it is valid on, expires after [`SEAT_TTL`], and is signed with
//! the fleet's shared `seat` secret (kept in PostgreSQL, `storage/placement.rs`). The player says
//! `hello` to the owning host with it in place of a player token: that host admits the player the first
//! host authenticated, for that room only, without a secret of the player's own.

use crate::net::auth::{self, TokenError};
use serde::{Deserialize, Serialize};

/// How long a seat token is valid.
pub const SEAT_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// What marks a `hello` token as a seat token.
pub const PREFIX: &str = "seat:";

/// What a seat token grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    /// The player.
    #[serde(rename = "p")]
    pub player: String,
    /// The game.
    #[serde(rename = "g")]
    pub game: String,
    /// The room.
    #[serde(rename = "r")]
    pub room: String,
    /// The host it is valid on.
    #[serde(rename = "h")]
    pub host: String,
    /// Unix seconds after which it is refused.
    #[serde(rename = "e")]
    pub expires: u64,
}

/// This host's part in seat tokens.
pub struct Seats {
    /// This host's id.
    pub host: String,
    /// The fleet's seat secret.
    pub secret: Vec<u8>,
}

/// Why a seat token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeatError {
    /// Not a token of this fleet, or altered.
    #[error("the seat token does not verify: {0}")]
    Token(#[from] TokenError),
    /// Minted for another host.
    #[error("the seat token is for host {0}, not this one (connect to the address of the redirect)")]
    OtherHost(String),
    /// Past its expiry.
    #[error("the seat token expired at {0} (unix seconds); join again on any host for a new one")]
    Expired(u64),
    /// This host is not in a fleet.
    #[error("this host is not in a fleet, so it takes no seat tokens")]
    NoFleet,
}

impl Seats {
    /// A seat token for `player` in room `room` of `game` on host `host`, valid for [`SEAT_TTL`] from `now`
    /// (unix seconds).
    pub fn mint(&self, player: &str, game: &str, room: &str, host: &str, now: u64) -> String {
        let seat =
            Seat { player: player.into(), game: game.into(), room: room.into(), host: host.into(), expires: now + SEAT_TTL.as_secs() };
        format!("{PREFIX}{}", auth::seal(&self.secret, &serde_json::to_vec(&seat).expect("a seat encodes")))
    }

    /// The seat `token` (without [`PREFIX`]) grants on this host at `now` (unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Seat, SeatError> {
        let body = auth::unseal(&self.secret, token)?;
        let seat: Seat = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed("the seat is not of a seat's shape"))?;
        if !auth::valid_player_id(&seat.player) {
            return Err(TokenError::Malformed("the player id has characters outside ASCII letters, digits and -_.@:").into());
        }
        if seat.host != self.host {
            return Err(SeatError::OtherHost(seat.host));
        }
        if now >= seat.expires {
            return Err(SeatError::Expired(seat.expires));
        }
        Ok(seat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_is_valid_on_its_host_until_it_expires_and_cannot_be_forged() {
        let a = Seats { host: "a".into(), secret: b"fleet".to_vec() };
        let b = Seats { host: "b".into(), secret: b"fleet".to_vec() };
        let token = a.mint("ann", "arena", "r1", "b", 1_000);
        let body = token.strip_prefix(PREFIX).unwrap();
        let seat = b.verify(body, 1_000).unwrap();
        assert_eq!((seat.player.as_str(), seat.game.as_str(), seat.room.as_str()), ("ann", "arena", "r1"));
        assert_eq!(a.verify(body, 1_000), Err(SeatError::OtherHost("b".into())));
        let ttl = SEAT_TTL.as_secs();
        assert_eq!(b.verify(body, 1_000 + ttl), Err(SeatError::Expired(1_000 + ttl)));
        let other_fleet = Seats { host: "b".into(), secret: b"another".to_vec() };
        assert_eq!(other_fleet.verify(body, 1_000), Err(SeatError::Token(TokenError::BadSignature)));
        // A player token of the same secret is not a seat.
        let player_token = auth::mint(b"fleet", "ann", 2_000);
        assert!(matches!(b.verify(&player_token, 1_000), Err(SeatError::Token(TokenError::Malformed(_)))));
    }
}
