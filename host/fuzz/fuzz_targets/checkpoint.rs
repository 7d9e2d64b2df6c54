//! Stored room checkpoints (they come back from the store, which may be damaged): decoding never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = warden::room::journal::Stored::decode(data);
    let _ = warden::runtime::payload::to_json(data);
});
