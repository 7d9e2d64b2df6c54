//! Client and server envelopes in both encodings: decoding never panics, and what decodes re-encodes to
//! something that decodes to the same envelope.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warden::net::envelope::{self, Format};

fuzz_target!(|data: &[u8]| {
    for format in [Format::MsgPack, Format::Json] {
        if let Ok(env) = envelope::decode(data, format) {
            let again = envelope::decode(&envelope::encode_client(&env, format), format).expect("a re-encoded envelope decodes");
            // JSON frames carry the payload as JSON: the MessagePack a plugin gets may differ in form
            // (e.g. integer widths) but not after one round trip.
            if format == Format::MsgPack {
                assert_eq!(again, env);
            }
        }
        if let Ok(env) = envelope::decode_server(data, format) {
            let _ = envelope::encode(&env, Format::Json);
            let _ = envelope::encode(&env, Format::MsgPack);
        }
    }
});
