//! Player tokens: `base64url(player "." expiry) "." base64url(HMAC-SHA256(secret, that))`, minted by
//! `warden token` with the operator's secret and checked in `hello`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not of the token's shape.
    #[error("the token is malformed: {0} (mint one with `warden token --player ID`)")]
    Malformed(&'static str),
    /// Signed with another secret, or altered.
    #[error("the token's signature does not match this server's secret (was it minted for another server?)")]
    BadSignature,
    /// Past its expiry.
    #[error("the token expired at {0} (unix seconds); mint a new one")]
    Expired(u64),
}

/// Whether `id` is an acceptable player id: 1 to 64 of ASCII letters, digits and `-_.@:`.
pub fn valid_player_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b))
}

fn mac(secret: &[u8], body: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body.as_bytes());
    mac
}

/// Mints a token for `player`, valid until `expires` (unix seconds).
pub fn mint(secret: &[u8], player: &str, expires: u64) -> String {
    assert!(valid_player_id(player), "player id {player:?} must be 1 to 64 of ASCII letters, digits and -_.@:");
    seal(secret, format!("{player}.{expires}").as_bytes())
}

/// A token of any body, signed: what [`mint`] makes of `player.expires`. The fuzzer seals arbitrary
/// bodies with it so that [`verify`] is exercised past its signature check.
pub fn seal(secret: &[u8], body: &[u8]) -> String {
    let body = B64.encode(body);
    let sig = B64.encode(mac(secret, &body).finalize().into_bytes());
    format!("{body}.{sig}")
}

/// The body of a token [`seal`]ed with `secret`, once its signature checks.
pub fn unseal(secret: &[u8], token: &str) -> Result<Vec<u8>, TokenError> {
    let (body, sig) = token.split_once('.').ok_or(TokenError::Malformed("no signature part"))?;
    let sig = B64.decode(sig).map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
    mac(secret, body).verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    B64.decode(body).map_err(|_| TokenError::Malformed("the body is not base64url"))
}

/// Checks a token at time `now` (unix seconds) and returns the player id.
pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<String, TokenError> {
    let decoded = unseal(secret, token)?;
    let decoded = String::from_utf8(decoded).map_err(|_| TokenError::Malformed("the body is not UTF-8"))?;
    let (player, expires) = decoded.rsplit_once('.').ok_or(TokenError::Malformed("the body has no expiry"))?;
    let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed("the expiry is not a number"))?;
    if !valid_player_id(player) {
        return Err(TokenError::Malformed("the player id has characters outside ASCII letters, digits and -_.@:"));
    }
    if now >= expires {
        return Err(TokenError::Expired(expires));
    }
    Ok(player.to_string())
}

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_refuse_with_reasons() {
        let token = mint(b"s3cret", "ann", 1_000);
        assert_eq!(verify(b"s3cret", &token, 999), Ok("ann".into()));
        assert_eq!(verify(b"other", &token, 999), Err(TokenError::BadSignature));
        assert_eq!(verify(b"s3cret", &token, 1_000), Err(TokenError::Expired(1_000)));
        let (body, sig) = token.split_once('.').unwrap();
        let forged = format!("{}.{sig}", B64.encode("bob.1000"));
        assert_eq!(verify(b"s3cret", &forged, 1), Err(TokenError::BadSignature));
        assert!(matches!(verify(b"s3cret", body, 1), Err(TokenError::Malformed(_))));
        assert!(matches!(verify(b"s3cret", "garbage", 1), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn player_ids_are_restricted() {
        assert!(valid_player_id("ann_1@eu:2"));
        assert!(!valid_player_id(""));
        assert!(!valid_player_id("has space"));
        assert!(!valid_player_id(&"x".repeat(65)));
    }
}
