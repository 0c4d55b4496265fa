//! All YAML parsing and writing of nnbundle, in one place.
//!
//! `serde_yaml` is deprecated upstream; keeping every call here means a
//! maintained fork replaces it by editing this module alone.
//!
//! Reading is strict: the document must be UTF-8, a single document, with
//! no duplicate keys, and the parser's own recursion and alias-expansion
//! limits apply.
//!
//! Documents in the block style serde_yaml writes are read by a fast reader
//! of that subset (the private `block` module), which gives the same values;
//! anything else goes to serde_yaml.

mod block;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::FormatError;

/// Parses `bytes` as the YAML document named `document` (used in errors).
pub fn from_slice<T: DeserializeOwned>(document: &str, bytes: &[u8]) -> Result<T, FormatError> {
    let text = std::str::from_utf8(bytes).map_err(|e| FormatError::Yaml {
        document: document.to_owned(),
        message: format!("not valid UTF-8: {e}"),
        location: None,
    })?;
    from_str(document, text)
}

/// Parses `text` as the YAML document named `document` (used in errors).
pub fn from_str<T: DeserializeOwned>(document: &str, text: &str) -> Result<T, FormatError> {
    Document::parse(document, text)?.decode()
}

/// A YAML document parsed once and checked for duplicate keys, from which
/// typed values are decoded.
pub struct Document<'a> {
    name: &'a str,
    text: &'a str,
    value: serde_yaml::Value,
}

impl<'a> Document<'a> {
    /// Parses `text` (the document named `name` in errors). Typed
    /// deserialization into maps would keep the last of duplicate keys without a
    /// word; this untyped parse refuses them.
    pub fn parse(name: &'a str, text: &'a str) -> Result<Self, FormatError> {
        let value = match block::parse(text) {
            Some(value) => value,
            None => serde_yaml::from_str::<serde_yaml::Value>(text).map_err(|e| yaml_error(name, e))?,
        };
        Ok(Document { name, text, value })
    }

    /// Decodes a typed value. On failure the text is parsed again, typed, so
    /// the error carries the field path and line of the problem.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, FormatError> {
        match T::deserialize(&self.value) {
            Ok(v) => Ok(v),
            Err(_) => serde_yaml::from_str(self.text).map_err(|e| yaml_error(self.name, e)),
        }
    }
}

/// Panics if the fast reader accepts `bytes` but reads a value other than
/// serde_yaml's. For the fuzz targets and tests; not part of the API.
#[doc(hidden)]
pub fn check_fast_path(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Some(fast) = block::parse(text) {
        match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(slow) => assert!(slow == fast, "fast reader disagrees on {text:?}: {fast:?} vs serde_yaml's {slow:?}"),
            Err(e) => panic!("fast reader accepts {text:?}, serde_yaml refuses it: {e}"),
        }
    }
}

fn yaml_error(document: &str, e: serde_yaml::Error) -> FormatError {
    let location = e.location().map(|l| (l.line(), l.column()));
    let mut message = e.to_string();
    if let Some((line, column)) = location {
        let suffix = format!(" at line {line} column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    FormatError::Yaml { document: document.to_owned(), message, location }
}

/// Writes `value` as YAML. Struct fields keep their declared order and maps
/// are written in their iteration order, so sorted maps give canonical text.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, FormatError> {
    serde_yaml::to_string(value).map_err(|e| FormatError::Yaml {
        document: "output".to_owned(),
        message: e.to_string(),
        location: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn rejects_non_utf8() {
        let err = from_slice::<BTreeMap<String, i64>>("m.yaml", b"a: \xff\n").unwrap_err();
        assert!(err.to_string().contains("m.yaml: not valid UTF-8"), "{err}");
    }

    #[test]
    fn rejects_duplicate_keys() {
        let err = from_str::<BTreeMap<String, i64>>("m.yaml", "a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn rejects_multiple_documents() {
        assert!(from_str::<BTreeMap<String, i64>>("m.yaml", "a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = from_str::<serde_json::Value>("m.yaml", &doc).unwrap_err();
        assert!(err.to_string().contains("m.yaml"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = from_str::<serde_json::Value>("m.yaml", &doc).unwrap_err();
        assert!(err.to_string().contains("recursion"), "{err}");
    }
}
