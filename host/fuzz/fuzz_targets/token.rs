//! Player tokens: any text, and any body sealed with the right key (so that parsing past the signature
//! check is reached). Verification never panics, and an accepted player id is a valid one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden::net::auth;

const SECRET: &[u8] = b"fuzz-secret-0123456789";

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = auth::verify(SECRET, text, 0);
    }
    if let Ok(player) = auth::verify(SECRET, &auth::seal(SECRET, data), 1_000) {
        assert!(auth::valid_player_id(&player), "{player:?}");
    }
});
