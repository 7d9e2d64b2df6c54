//! A TCP byte stream: length-prefixed frames under the frame cap, each decoded as an envelope.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use warden::net::envelope::{self, Format};

fuzz_target!(|data: &[u8]| {
    let mut codec = warden::net::tcp::codec(64 << 10);
    let mut buf = bytes::BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        assert!(frame.len() <= 64 << 10, "a frame over the cap was let through");
        let _ = envelope::decode(&frame, Format::MsgPack);
    }
});
