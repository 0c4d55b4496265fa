//! A fast reader for the block-style YAML subset that `serde_yaml` writes.
//!
//! serde_yaml reads about 14 MB/s here: 3 ms for the manifest of a
//! 256-tensor bundle, 13 ms for 1000 tensors, most of the time it takes to
//! open one. This reader accepts only the layout serde_yaml itself produces:
//! block mappings and sequences, one document, no comments, anchors, tags,
//! flow collections (but `[]` and `{}`), block scalars or double quotes, and
//! scalars whose type is plain to see. For anything else it returns `None` and
//! the caller parses with serde_yaml, which also writes every error message.
//!
//! Where it returns a tree, the tree equals the value serde_yaml parses from
//! the same text and decodes to the same typed values. The unit tests and the
//! `manifest` and `graph` fuzz targets check this property
//! ([`super::check_fast_path`], [`super::check_fast_decode`]).

use std::borrow::Cow;

use super::node::Node;
use super::scalar::{Plain, read_double_quoted, resolve};

/// Deepest nesting accepted; serde_yaml's own limit (128) is higher, so a
/// document this reader takes never trips it.
const MAX_DEPTH: usize = 64;

/// Longest key accepted: libyaml refuses implicit keys of over 1024 characters.
const MAX_KEY_BYTES: usize = 512;

/// Parses `text` if it lies in the subset, `None` otherwise.
pub(super) fn parse(text: &str) -> Option<Node<'_>> {
    if !text.ends_with('\n') {
        return None; // serde_yaml writes a final line break; "" is null
    }
    let mut reader = Reader { rest: text, current: None, unclean: false, depth: 0 };
    let root = reader.mapping(0)?;
    reader.at_end().then_some(root)
}

#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    content: &'a str,
}

/// Reads lines one at a time (memory stays proportional to the nesting,
/// not to the number of lines).
struct Reader<'a> {
    /// The text after the current line.
    rest: &'a str,
    /// The line being looked at, if read and not yet consumed.
    current: Option<Line<'a>>,
    /// A line outside the subset was met: parsing fails.
    unclean: bool,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// The current line; `None` at the end of the text or at a line outside
    /// the subset (blank, a comment, a tab, a carriage return, trailing
    /// spaces, no final line break), which makes [`Reader::at_end`] false.
    fn peek(&mut self) -> Option<Line<'a>> {
        if self.current.is_none() && !self.unclean && !self.rest.is_empty() {
            let Some((line, rest)) = self.rest.split_once('\n') else {
                self.unclean = true;
                return None;
            };
            let content = line.trim_start_matches(' ');
            let clean = !content.is_empty()
                && !content.ends_with(' ')
                && !content.starts_with('#')
                && !content.bytes().any(|b| b == b'\t' || b == b'\r');
            if !clean {
                self.unclean = true;
                return None;
            }
            self.rest = rest;
            self.current = Some(Line { indent: line.len() - content.len(), content });
        }
        self.current
    }

    /// Consumes the current line.
    fn advance(&mut self) {
        self.current = None;
    }

    /// Whether every line was read and consumed.
    fn at_end(&mut self) -> bool {
        self.peek().is_none() && !self.unclean
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// A block mapping whose keys sit at `indent`, starting at the current line.
    fn mapping(&mut self, indent: usize) -> Option<Node<'a>> {
        self.enter()?;
        let mut map = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_item(line.content) {
                return None;
            }
            let (key, rest) = split_key(line.content)?;
            let Node::Str(key) = scalar(key)? else { return None };
            self.advance();
            let value = if rest.is_empty() { self.nested(indent)? } else { inline(rest)? };
            map.push((key, value));
        }
        self.depth -= 1;
        // A repeated key is left to serde_yaml, which reports it.
        (!has_duplicate_key(&map)).then_some(Node::Map(map))
    }

    /// The value of a `key:` whose value starts on the next line: a sequence
    /// at the key's indent (serde_yaml's style), or any node indented further.
    fn nested(&mut self, indent: usize) -> Option<Node<'a>> {
        let next = self.peek()?;
        match next.indent {
            i if i == indent && is_item(next.content) => self.sequence(indent),
            i if i > indent && is_item(next.content) => self.sequence(i),
            i if i > indent => self.mapping(i),
            _ => None,
        }
    }

    /// A block sequence whose `- ` sit at `indent`, starting at the current line.
    fn sequence(&mut self, indent: usize) -> Option<Node<'a>> {
        self.enter()?;
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent || (line.indent == indent && !is_item(line.content)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let rest = line.content.strip_prefix("- ")?;
            // The item's content starts two columns in: read it as a line of its own.
            let inner = Line { indent: indent + 2, content: rest };
            let item = if is_item(rest) {
                self.current = Some(inner);
                self.sequence(indent + 2)?
            } else if split_key(rest).is_some() {
                self.current = Some(inner);
                self.mapping(indent + 2)?
            } else {
                self.advance();
                inline(rest)?
            };
            items.push(item);
        }
        self.depth -= 1;
        Some(Node::Seq(items))
    }
}

/// Whether a key repeats (sorted when there are many, as in a manifest's
/// tensor table).
fn has_duplicate_key(map: &[(Cow<'_, str>, Node<'_>)]) -> bool {
    if map.len() <= 8 {
        return map.iter().enumerate().any(|(i, (k, _))| map[..i].iter().any(|(other, _)| other == k));
    }
    let mut keys: Vec<&str> = map.iter().map(|(k, _)| k.as_ref()).collect();
    keys.sort_unstable();
    keys.windows(2).any(|pair| pair[0] == pair[1])
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// Splits `key: rest` or `key:` (then `rest` is empty); `None` if the line
/// is not a mapping entry of the subset.
fn split_key(content: &str) -> Option<(&str, &str)> {
    let key_end = match content.as_bytes().first() {
        Some(b'\'') => quoted_len(content)?,
        Some(b'"') => double_quoted_len(content)?,
        _ => content.find(':')?,
    };
    if key_end > MAX_KEY_BYTES {
        return None;
    }
    let (key, after) = content.split_at(key_end);
    let rest = after.strip_prefix(':')?;
    if rest.is_empty() {
        return Some((key, rest));
    }
    let rest = rest.strip_prefix(' ')?;
    (!rest.starts_with(' ')).then_some((key, rest))
}

/// Length of the single-quoted scalar that starts `s`, quotes included.
fn quoted_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Length of the double-quoted scalar that starts `s`, quotes included.
fn double_quoted_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// A value written on its key's line: a scalar, `[]` or `{}`.
fn inline(s: &str) -> Option<Node<'_>> {
    match s {
        "[]" => Some(Node::Seq(Vec::new())),
        "{}" => Some(Node::Map(Vec::new())),
        _ => scalar(s),
    }
}

/// A scalar read by the spec's table (which serde_yaml agrees with wherever
/// the table does not refuse a spelling), or `None` where the type is not
/// plain to see or the table refuses the spelling (the slow path says why).
fn scalar(s: &str) -> Option<Node<'_>> {
    if s.starts_with('\'') {
        return (quoted_len(s)? == s.len()).then(|| single_quoted(s)).flatten().map(Node::Str);
    }
    if s.starts_with('"') {
        return read_double_quoted(s).map(|s| Node::Str(Cow::Owned(s)));
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'+')) {
        return None;
    }
    match resolve(s) {
        Plain::Null => Some(Node::Null),
        Plain::Bool(b) => Some(Node::Bool(b)),
        Plain::Int(n) => Some(match u64::try_from(n) {
            Ok(u) => Node::UInt(u),
            Err(_) => Node::Int(i64::try_from(n).ok()?),
        }),
        Plain::Float(x) => Some(Node::Float(x)),
        // A `-` first could start a sequence item in other contexts; leave it to serde_yaml.
        Plain::Str => (!s.starts_with('-')).then_some(Node::Str(Cow::Borrowed(s))),
        Plain::Refused(_) => None,
    }
}

/// The text of a single-quoted scalar (`''` stands for `'`), limited to
/// characters libyaml takes without question: printable ASCII, and non-ASCII
/// outside the C1 controls, the line and paragraph separators and the BOM.
fn single_quoted(s: &str) -> Option<Cow<'_, str>> {
    let inner = &s[1..s.len() - 1];
    let printable = |c: char| match c {
        ' '..='~' => true,
        '\u{a0}'..='\u{d7ff}' => !matches!(c, '\u{2028}' | '\u{2029}'),
        '\u{e000}'..='\u{fffd}' => c != '\u{feff}',
        _ => c >= '\u{10000}',
    };
    inner.chars().all(printable).then(|| match inner.contains("''") {
        true => Cow::Owned(inner.replace("''", "'")),
        false => Cow::Borrowed(inner),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_yaml::{Mapping, Value};

    use super::*;
    use crate::yaml::{check_fast_decode, check_fast_path};

    fn parse(text: &str) -> Option<Value> {
        super::parse(text).map(|node| node.to_value())
    }

    /// Scalars whose type turns on a detail of YAML 1.2 or of serde_yaml.
    const TRICKY: &[&str] = &[
        "0.weight",
        "layers.0.bias",
        "1.0",
        "1.",
        ".5",
        "1e5",
        "1E5",
        "1e+5",
        "1.5e-3",
        "1e",
        "e5",
        "-1",
        "-0",
        "+1",
        "012",
        "0",
        "00",
        "0x1f",
        "0x1g",
        "0x",
        "0o17",
        "0o8",
        "0b101",
        "0b102",
        "0b62707b85",
        "1_000",
        "inf",
        "-inf",
        ".inf",
        "nan",
        "NaN",
        "infinity",
        "true",
        "True",
        "TRUE",
        "false",
        "null",
        "Null",
        "~",
        "yes",
        "no",
        "on",
        "y",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "a-",
        "_x",
        "-x",
        "x y",
        "a: b",
        "a:b",
        "#x",
        "x #y",
        "'q'",
        "it's",
        "",
        " ",
        "tab\there",
        "line\nbreak",
        "\u{85}",
        "вес",
        "\u{feff}x",
        "\u{2028}",
        "a\u{7f}b",
        "1041ff0bdf3fce25c91dc22f93738cfd616562ed662ca591383333100f4fc68d",
        "1234567890123456789012345678901234567890123456789012345678901234",
        "12e45",
    ];

    #[test]
    fn tricky_scalars_read_as_serde_yaml_reads_them() {
        for raw in TRICKY {
            let s = raw.to_string();
            for text in [
                format!("a: {s}\n"),
                format!("a:\n- {s}\n"),
                format!("{s}: 1\n"),
                format!("a: '{}'\n", s.replace('\'', "''")),
                format!("'{}': x\n", s.replace('\'', "''")),
            ] {
                check_fast_path(text.as_bytes());
            }
            // What serde_yaml writes for the string, the key and the list item.
            let value = Value::String(s.clone());
            let mut map = Mapping::new();
            map.insert(value.clone(), Value::Sequence(vec![value.clone()]));
            check_fast_path(serde_yaml::to_string(&Value::Mapping(map)).unwrap().as_bytes());
        }
    }

    #[test]
    fn reads_what_the_writer_writes_for_common_names() {
        let mut map = Mapping::new();
        for name in ["0.weight", "encoder.layers.11.attn.q_proj.weight", "bn1.running_mean", "_x", "O'Brien's"] {
            let mut record = Mapping::new();
            record.insert("shape".into(), Value::Sequence(vec![3u64.into(), 4u64.into()]));
            record.insert("scalar".into(), Value::Sequence(vec![]));
            record.insert("rtol".into(), 1e-5.into());
            record.insert("neg".into(), (-3i64).into());
            record.insert("on".into(), true.into());
            map.insert(name.into(), Value::Mapping(record));
        }
        map.insert("version".into(), "1.0".into());
        map.insert(
            "items".into(),
            Value::Sequence(vec![Value::Mapping(map.clone()), Value::Sequence(vec![1u64.into()])]),
        );
        let root = Value::Mapping(map);
        let text = crate::yaml::emit::to_string(&root).unwrap();
        assert_eq!(parse(&text), Some(root), "{text}");
    }

    #[test]
    fn reads_the_documents_bundles_hold() {
        // A manifest and a graph as the writers write them (also fuzz seeds).
        for text in [
            include_str!("../../../../fuzz/seeds/manifest/canonical_mlp_with_sample.yaml"),
            include_str!("../../../../fuzz/seeds/graph/canonical_mlp.yaml"),
        ] {
            let fast = parse(text).expect("the fast reader takes the writers' output");
            assert_eq!(fast, serde_yaml::from_str::<Value>(text).unwrap());
            check_fast_decode::<serde_json::Value>(text.as_bytes());
        }
        let manifest = include_str!("../../../../fuzz/seeds/manifest/canonical_mlp_with_sample.yaml");
        check_fast_decode::<crate::Manifest>(manifest.as_bytes());
        let decoded: crate::Manifest = crate::yaml::from_str("manifest.yaml", manifest).unwrap();
        assert!(!decoded.tensors.is_empty());
    }

    /// A record with the shapes serde derives: decoded from the fast tree as
    /// serde_yaml's value decodes, field by field, in success and in failure.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Record {
        name: String,
        #[serde(default)]
        shape: Vec<u64>,
        scale: Option<f32>,
        kind: Option<Kind>,
        #[serde(default)]
        extra: std::collections::BTreeMap<String, i64>,
        flag: Option<bool>,
        pair: Option<(u8, i8)>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Dense,
        Sparse,
    }

    #[test]
    fn decodes_typed_values_as_serde_yaml_does() {
        let cases = [
            "name: a\nshape:\n- 1\n- 2\nscale: 1\nkind: dense\nflag: true\npair:\n- 255\n- -128\n",
            "name: a\nshape: []\nextra: {}\nscale: 1.5e-3\n",
            "name: a\nshape: null\nextra: null\nscale: null\n", // null as an empty sequence and mapping
            "name: a\nextra:\n  x: -3\n  y: 18446744073709551615\n", // out of i64
            "name: 12\n",                                       // a number where a string belongs
            "name: a\nkind: other\n",                           // no such variant
            "name: a\nkind:\n  dense: 1\n",                     // a mapping for a unit variant
            "name: a\nshape:\n- -1\n",                          // negative into u64
            "name: a\nscale: x\n",                              // a string where a number belongs
            "name: a\npair:\n- 1\n",                            // too short a tuple
            "name: a\npair:\n- 1\n- 2\n- 3\n",                  // too long a tuple
            "name: a\nflag: 'true'\n",                          // a quoted bool
            "name: a\nmore: 1\n",                               // an unknown field
            "name: a\nname: b\n",                               // a repeated key: left to serde_yaml
        ];
        for text in cases {
            check_fast_decode::<Record>(text.as_bytes());
            check_fast_decode::<serde_json::Value>(text.as_bytes());
        }
        let ok: Record = crate::yaml::from_str("r.yaml", cases[0]).unwrap();
        assert_eq!(
            (ok.shape, ok.scale, ok.kind, ok.pair),
            (vec![1, 2], Some(1.0), Some(Kind::Dense), Some((255, -128)))
        );
        assert!(crate::yaml::from_str::<Record>("r.yaml", cases[4]).is_err());
    }

    #[test]
    fn leaves_the_rest_to_serde_yaml() {
        for text in [
            "a: 1\na: 2\n",      // duplicate key: serde_yaml reports it
            "a: 1\n---\nb: 2\n", // two documents
            "a: 1 # note\n",     // comment
            "a: &x 1\nb: *x\n",  // anchor and alias
            "a: [1, 2]\n",       // flow sequence
            "a: \"\\x41\"\n",    // an escape JSON does not have
            "a: 0b11\n",         // a spelling the table refuses
            "a: |\n  x\n",       // block scalar
            "a:\n\tb: 1\n",      // tab
            "a: 1\r\n",          // CRLF
            "a:\n",              // null by omission
            "a: 1",              // no final line break
            "  a: 1\n",          // indented root
            "- 1\n",             // root sequence
            "x\n",               // root scalar
            "",                  // empty: serde_yaml's null
            "\n",                // a blank line
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        // Nesting beyond MAX_DEPTH is left to serde_yaml and its recursion limit.
        let nest = |levels: usize| {
            (0..levels).map(|i| format!("{}k:\n", " ".repeat(i))).collect::<String>() + &" ".repeat(levels) + "v: 1\n"
        };
        assert!(parse(&nest(MAX_DEPTH - 1)).is_some());
        assert_eq!(parse(&nest(MAX_DEPTH)), None);
    }

    fn any_scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
            prop::sample::select(TRICKY).prop_map(|s| Value::String(s.to_string())),
            "[a-z0-9._+' :#-]{0,12}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
        ]
    }

    fn any_value() -> impl Strategy<Value = Value> {
        any_scalar().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Sequence),
                prop::collection::vec(("[a-z0-9._' -]{0,8}", inner), 0..6)
                    .prop_map(|kv| Value::Mapping(kv.into_iter().map(|(k, v)| (Value::String(k), v)).collect())),
            ]
        })
    }

    proptest! {
        /// What the canonical writer writes, the fast reader reads back
        /// unchanged, and so does serde_yaml.
        #[test]
        fn reads_back_what_the_writer_writes(value in any_value()) {
            let mut root = Mapping::new();
            root.insert("root".into(), value);
            let root = Value::Mapping(root);
            let text = crate::yaml::emit::to_string(&root).unwrap();
            prop_assert_eq!(parse(&text), Some(root), "{}", text);
            check_fast_path(text.as_bytes());
            check_fast_decode::<serde_json::Value>(text.as_bytes());
        }

        /// Edits of a written document: the fast reader declines, or agrees.
        #[test]
        fn agrees_with_serde_yaml_on_edited_text(
            value in any_value(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(&[" ", "\n", "-", ":", "'", "0", "a", "#", "- ", ": ", "  ", "[]", "e", "\"", "\\"][..]), 0..3usize), 1..4),
        ) {
            let mut root = Mapping::new();
            root.insert("root".into(), value);
            let mut text = crate::yaml::emit::to_string(&Value::Mapping(root)).unwrap().into_bytes();
            for (at, piece, cut) in edits {
                let at = at.index(text.len() + 1);
                let end = (at + cut).min(text.len());
                text.splice(at..end, piece.bytes());
            }
            check_fast_path(&text);
        }
    }
}
