//! MessagePack payloads shown as JSON (for text-frame clients and crash reports), with their nesting
//! bounded: a payload from a player or a plugin may be nested arbitrarily deep, and decoding or
//! converting it recursively would overflow the stack and abort the whole process.

/// The deepest nesting of arrays and maps converted; deeper payloads are refused.
pub const MAX_DEPTH: usize = 64;

/// MessagePack decoded as `T`, with nesting bounded by `max_depth` (rmp-serde's own default, 1,024
/// levels, is already too deep for a debug build's stack when serde buffers a tagged enum).
pub fn from_msgpack<'de, T: serde::Deserialize<'de>>(data: &'de [u8], max_depth: usize) -> Result<T, String> {
    let mut de = rmp_serde::Deserializer::from_read_ref(data);
    de.set_max_depth(max_depth);
    T::deserialize(&mut de).map_err(|e| match e {
        rmp_serde::decode::Error::DepthLimitExceeded => format!("nested deeper than {MAX_DEPTH} levels"),
        other => other.to_string(),
    })
}

/// `data` decoded as a JSON value, or why it cannot be (not MessagePack, or nested past [`MAX_DEPTH`]).
pub fn to_json(data: &[u8]) -> Result<serde_json::Value, String> {
    from_msgpack(data, MAX_DEPTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` nested one-element arrays around a 1, as MessagePack.
    pub(crate) fn nested(depth: usize) -> Vec<u8> {
        let mut out = vec![0x91; depth];
        out.push(0x01);
        out
    }

    #[test]
    fn nesting_is_bounded_and_shallow_payloads_convert() {
        assert_eq!(to_json(&nested(3)).unwrap(), serde_json::json!([[[1]]]));
        assert!(to_json(&nested(MAX_DEPTH - 1)).is_ok());
        // 100,000 levels: without the bound this overflows the stack of a debug build.
        assert!(to_json(&nested(100_000)).unwrap_err().contains("nested deeper than 64"));
    }
}
