//! All YAML parsing and writing of nnbundle, in one place.
//!
//! `serde_yaml` is deprecated upstream; keeping every call here means a
//! maintained fork replaces it by editing this module alone.
//!
//! Reading is strict: the document must be UTF-8, a single document, with
//! no duplicate keys, tags, anchors or aliases, plain scalars read by the spec's table
//! (refusing the spellings it does not allow), and the parser's own
//! recursion and alias-expansion limits apply.
//!
//! Documents in the canonical block style are read by a fast reader of that
//! subset (the private `block` module) into a borrowed tree decoded without
//! serde_yaml (the private `node` module), which gives the same values;
//! anything else goes to serde_yaml, after a pass over saphyr-parser's
//! events has checked every plain scalar and tag (serde_yaml resolves plain
//! scalars by rules of its own and does not say which scalars were plain).
//! Writing is the canonical form of the private `emit` module.

mod block;
mod emit;
mod node;
mod scalar;

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
    tree: Tree<'a>,
}

/// A parsed document: by the fast reader, or by serde_yaml.
enum Tree<'a> {
    Fast(node::Node<'a>),
    Slow(serde_yaml::Value),
}

impl<'a> Document<'a> {
    /// Parses `text` (the document named `name` in errors). Typed
    /// deserialization into maps would keep the last of duplicate keys without a
    /// word; this untyped parse refuses them.
    pub fn parse(name: &'a str, text: &'a str) -> Result<Self, FormatError> {
        let tree = match block::parse(text) {
            Some(node) => Tree::Fast(node),
            None => {
                let value = serde_yaml::from_str::<serde_yaml::Value>(text).map_err(|e| yaml_error(name, e))?;
                check_scalars(name, text)?;
                Tree::Slow(value)
            }
        };
        Ok(Document { name, text, tree })
    }

    /// Decodes a typed value. On failure the text is parsed again, typed, so
    /// the error carries the field path and line of the problem.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, FormatError> {
        let decoded = match &self.tree {
            Tree::Fast(node) => T::deserialize(node).ok(),
            Tree::Slow(value) => T::deserialize(value).ok(),
        };
        match decoded {
            Some(v) => Ok(v),
            // Parsed again, typed, the error gets a line and column. When
            // that parse succeeds (serde_yaml gives a plain scalar's text to
            // a string field, where the table reads a number), the error
            // names the path to the field instead.
            None => match serde_yaml::from_str::<T>(self.text) {
                Err(e) => Err(yaml_error(self.name, e)),
                Ok(_) => {
                    let value = match &self.tree {
                        Tree::Fast(node) => node.to_value(),
                        Tree::Slow(value) => value.clone(),
                    };
                    let e = serde_path_to_error::deserialize::<_, T>(&value).err().map_or_else(
                        || "the document does not decode".to_owned(),
                        |e| format!("{}: {}", e.path(), e.inner()),
                    );
                    Err(FormatError::Yaml { document: self.name.to_owned(), message: e, location: None })
                }
            },
        }
    }

    /// Makes the top-level field `key`, when it is a plain scalar, a string
    /// holding the scalar's text (so `format_version: 1.10` is "1.10", not
    /// the float 1.1).
    pub fn read_as_text(&mut self, key: &str) {
        use node::Node;
        let plain_text = || top_level_plain_text(self.text, key);
        match &mut self.tree {
            Tree::Fast(Node::Map(pairs)) => {
                if let Some((_, field)) = pairs.iter_mut().find(|(k, _)| k == key)
                    && !matches!(field, Node::Str(_) | Node::Seq(_) | Node::Map(_))
                    && let Some(text) = plain_text()
                {
                    *field = Node::Str(text.into());
                }
            }
            Tree::Fast(_) => {}
            Tree::Slow(value) => {
                if let Some(field) = value.get_mut(key)
                    && !matches!(
                        field,
                        serde_yaml::Value::String(_) | serde_yaml::Value::Mapping(_) | serde_yaml::Value::Sequence(_)
                    )
                    && let Some(text) = plain_text()
                {
                    *field = serde_yaml::Value::String(text);
                }
            }
        }
    }
}

/// The text of the plain scalar that is the value of `key` in the top-level mapping.
fn top_level_plain_text(text: &str, key: &str) -> Option<String> {
    use saphyr_parser::{Event, Parser, ScalarStyle};
    let mut depth = 0usize;
    let mut at_key = true;
    let mut found = false;
    for event in Parser::new_from_str(text) {
        let (event, _) = event.ok()?;
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if depth == 1 {
                    if found {
                        return None;
                    }
                    at_key = !at_key;
                }
                depth += 1;
            }
            Event::MappingEnd | Event::SequenceEnd => depth = depth.saturating_sub(1),
            Event::Scalar(value, style, ..) if depth == 1 => {
                if found {
                    return (style == ScalarStyle::Plain).then(|| value.into_owned());
                }
                found = at_key && value == key;
                at_key = !at_key;
            }
            _ => {}
        }
    }
    None
}

/// Checks every plain scalar against the spec's table and refuses tags,
/// anchors and aliases, naming the line and column of the first offender.
fn check_scalars(name: &str, text: &str) -> Result<(), FormatError> {
    use saphyr_parser::{Event, Parser, ScalarStyle};
    let error = |message: String, at: &saphyr_parser::Marker| FormatError::Yaml {
        document: name.to_owned(),
        message,
        location: Some((at.line(), at.col() + 1)),
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| error(e.info().to_owned(), e.marker()))?;
        let anchored = match &event {
            Event::Alias(_) => true,
            Event::Scalar(_, _, anchor, _) | Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                *anchor != 0
            }
            _ => false,
        };
        if anchored {
            return Err(error("YAML anchors and aliases are not allowed in a bundle".into(), &span.start));
        }
        let tagged = match &event {
            Event::Scalar(value, style, _, tag) => {
                if let (ScalarStyle::Plain, scalar::Plain::Refused(why)) = (style, scalar::resolve(value)) {
                    return Err(error(
                        format!(
                            "plain scalar `{value}` could be read as {why}: quote it (\"{value}\") or write the number as the spec's table does"
                        ),
                        &span.start,
                    ));
                }
                tag.is_some()
            }
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) => tag.is_some(),
            _ => false,
        };
        if tagged {
            return Err(error("YAML tags are not allowed in a bundle".into(), &span.start));
        }
    }
    Ok(())
}

/// Panics if the fast reader accepts `bytes` but reads a value other than
/// serde_yaml's. For the fuzz targets and tests; not part of the API.
#[doc(hidden)]
pub fn check_fast_path(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Some(fast) = block::parse(text).map(|node| node.to_value()) {
        match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(slow) => assert!(slow == fast, "fast reader disagrees on {text:?}: {fast:?} vs serde_yaml's {slow:?}"),
            Err(e) => panic!("fast reader accepts {text:?}, serde_yaml refuses it: {e}"),
        }
    }
}

/// Panics if the fast reader accepts `bytes` but its tree decodes as `T`
/// otherwise than serde_yaml's value does (both must fail, or give equal
/// values). For the fuzz targets and tests; not part of the API.
#[doc(hidden)]
pub fn check_fast_decode<T: DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let Some(node) = block::parse(text) else { return };
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) else { return };
    let fast = T::deserialize(&node).ok();
    let slow = T::deserialize(&value).ok();
    assert!(fast == slow, "fast decoding disagrees on {text:?}: {fast:?} vs serde_yaml's {slow:?}");
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
    let error = |message: String| FormatError::Yaml { document: "output".to_owned(), message, location: None };
    let tree = serde_yaml::to_value(value).map_err(|e| error(e.to_string()))?;
    emit::to_string(&tree).map_err(error)
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
    fn refused_spellings_and_tags_are_errors_with_a_place() {
        for (doc, line) in [("a: 1\nb: [1, 0b11]\n", 2), ("a: 1\nb: 007 # octal?\n", 2), ("a: !!str 3\n", 1)] {
            let err = from_str::<serde_json::Value>("m.yaml", doc).unwrap_err();
            let FormatError::Yaml { location: Some((l, _)), .. } = &err else { panic!("{err:?}") };
            assert_eq!(*l, line, "{doc:?}: {err}");
        }
        // Quoted, the same text is a string; the table's own spellings read as numbers.
        let v: serde_json::Value = from_str("m.yaml", "a: '0b11'\nb: yes\nc: [-12, 1.5e+3, ~, True]\n").unwrap();
        assert_eq!(v, serde_json::json!({"a": "0b11", "b": "yes", "c": [-12, 1500.0, null, true]}));
    }

    #[test]
    fn a_number_where_a_string_belongs_is_an_error_naming_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Node {
            name: String,
        }
        let doc = "name: 0 # a comment keeps this off the fast path\n";
        let err = from_str::<Node>("g.yaml", doc).unwrap_err().to_string();
        assert!(err.contains("name") && err.contains("integer"), "{err}");
    }

    #[test]
    fn a_field_read_as_text_keeps_its_digits() {
        let mut doc = Document::parse("m.yaml", "v: 1.10\nw: {x: 1}\n").unwrap();
        doc.read_as_text("v");
        doc.read_as_text("w");
        let v: serde_json::Value = doc.decode().unwrap();
        assert_eq!(v, serde_json::json!({"v": "1.10", "w": {"x": 1}}));
        // The same on the fast reader's tree (block style only).
        let mut doc = Document::parse("m.yaml", "v: 1.10\nw: 2\n").unwrap();
        assert!(matches!(doc.tree, Tree::Fast(_)));
        doc.read_as_text("v");
        let v: serde_json::Value = doc.decode().unwrap();
        assert_eq!(v, serde_json::json!({"v": "1.10", "w": 2}));
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
