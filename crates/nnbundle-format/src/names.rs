//! Naming rules for tensors, groups and metadata keys.

use crate::FormatError;
use crate::limits::MAX_NAME_BYTES;

/// The group tensors belong to unless said otherwise: the model's parameters.
pub const PARAMS_GROUP: &str = "params";

/// The group of sample inputs and expected outputs.
pub const SAMPLES_GROUP: &str = "samples";

/// A location under a map of names, unambiguous whatever the name holds:
/// `tensors.bias` for a plain identifier, `tensors["fc.weight"]` (JSON string
/// escapes) when the name contains a dot or anything else.
///
/// ```
/// use nnbundle_format::names::keyed;
/// assert_eq!(keyed("tensors", "bias"), "tensors.bias");
/// assert_eq!(keyed("tensors", "fc.weight"), r#"tensors["fc.weight"]"#);
/// ```
pub fn keyed(parent: &str, name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{parent}.{name}")
    } else {
        let quoted = serde_json::to_string(name).unwrap_or_else(|_| format!("{name:?}"));
        format!("{parent}[{quoted}]")
    }
}

fn check_common(kind: &'static str, name: &str) -> Result<(), FormatError> {
    let fail = |reason| Err(FormatError::InvalidName { kind, name: name.to_owned(), reason });
    if name.is_empty() {
        return fail("names must not be empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return fail("longer than 512 UTF-8 bytes (MAX_NAME_BYTES)");
    }
    if name.chars().any(char::is_control) {
        return fail("control characters are not allowed");
    }
    Ok(())
}

/// Tensor names: 1 to 512 UTF-8 bytes, no control characters, no `/` or `\`.
/// Any other Unicode is allowed (`hidden.weight`, `encoder.layers.0.w`, `вес`).
pub fn check_tensor_name(name: &str) -> Result<(), FormatError> {
    check_common("tensor", name)?;
    if name.contains(['/', '\\']) {
        return Err(FormatError::InvalidName {
            kind: "tensor",
            name: name.to_owned(),
            reason: "`/` and `\\` are not allowed (use `.` to separate levels)",
        });
    }
    Ok(())
}

/// Group names: 1 to 512 bytes of ASCII letters, digits, `_`, `-` and `.`.
pub fn check_group_name(name: &str) -> Result<(), FormatError> {
    check_common("group", name)?;
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err(FormatError::InvalidName {
            kind: "group",
            name: name.to_owned(),
            reason: "only ASCII letters, digits, `_`, `-` and `.` are allowed",
        });
    }
    Ok(())
}

/// Signature names (`signatures/<name>.sigstore.json`): 1 to
/// [`MAX_SIGNATURE_NAME_BYTES`](crate::limits::MAX_SIGNATURE_NAME_BYTES) ASCII
/// letters, digits, `_`, `-` and `.`, not starting with `.`.
pub fn check_signature_name(name: &str) -> Result<(), FormatError> {
    let bad = |reason| Err(FormatError::InvalidName { kind: "signature", name: name.to_owned(), reason });
    if name.is_empty() || name.len() > crate::limits::MAX_SIGNATURE_NAME_BYTES {
        return bad("must be 1 to 64 bytes long");
    }
    if name.starts_with('.') {
        return bad("must not start with `.`");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return bad("only ASCII letters, digits, `_`, `-` and `.` are allowed");
    }
    Ok(())
}

/// Metadata keys: 1 to 512 UTF-8 bytes, no control characters.
pub fn check_metadata_key(name: &str) -> Result<(), FormatError> {
    check_common("metadata key", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_names() {
        for ok in ["hidden.weight", "encoder.layers.0.linear1.bias", "вес", "x y", "..", "名前"] {
            check_tensor_name(ok).unwrap();
        }
        for bad in ["", "a/b", "a\\b", "a\nb", "nul\0", &"x".repeat(513)] {
            assert!(check_tensor_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn group_names() {
        check_group_name("optimizer.state").unwrap();
        let err = check_group_name("opt im").unwrap_err().to_string();
        assert!(err.contains("group name \"opt im\""), "{err}");
    }
}
