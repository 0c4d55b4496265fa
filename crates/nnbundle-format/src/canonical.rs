//! The canonical JSON form used for digests.
//!
//! UTF-8 JSON with no insignificant whitespace, object keys sorted by their
//! UTF-8 bytes, strings escaped minimally (`"`, `\`, and control characters
//! as `\b \f \n \r \t` or `\u00xx`), integers in decimal, and floats in the
//! shortest form that reads back to the same value (spec: "Canonical form").

use serde::Serialize;

use crate::{FormatError, Sha256Digest};

/// The canonical JSON bytes of `value`.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, FormatError> {
    // `serde_json::Value` keeps objects in a sorted map (the crate is built
    // without `preserve_order`), which gives the key order the spec requires.
    let tree = serde_json::to_value(value).map_err(|e| FormatError::Manifest {
        field: "<root>".into(),
        reason: format!("not representable as JSON: {e}"),
    })?;
    Ok(serde_json::to_vec(&tree).expect("a JSON value always serializes"))
}

/// SHA-256 of the canonical JSON of `value`.
pub fn canonical_digest<T: Serialize>(value: &T) -> Result<Sha256Digest, FormatError> {
    Ok(Sha256Digest::of(&to_canonical_json(value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_compact_json() {
        let v = serde_json::json!({"b": [1, 2.5, "x\n"], "a": {"d": true, "c": null}});
        let s = String::from_utf8(to_canonical_json(&v).unwrap()).unwrap();
        assert_eq!(s, r#"{"a":{"c":null,"d":true},"b":[1,2.5,"x\n"]}"#);
    }
}
