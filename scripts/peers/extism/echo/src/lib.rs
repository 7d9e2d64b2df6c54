//! `on_message`: the payload decoded as a MessagePack bin, encoded again and handed to the host's
//! `send`, as `tests/guests/echo` does through the Warden SDK.
use extism_pdk::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Blob(#[serde(with = "serde_bytes")] Vec<u8>);

#[host_fn]
extern "ExtismHost" {
    fn send(data: Vec<u8>);
}

#[plugin_fn]
pub fn on_message(input: Vec<u8>) -> FnResult<()> {
    let blob: Blob = rmp_serde::from_slice(&input).map_err(|e| Error::msg(e.to_string()))?;
    let out = rmp_serde::to_vec(&blob).map_err(|e| Error::msg(e.to_string()))?;
    unsafe { send(out)? };
    Ok(())
}
