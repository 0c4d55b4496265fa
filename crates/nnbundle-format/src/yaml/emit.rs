//! The canonical YAML writer (FORMAT.md section 3.7): block style, two
//! spaces per mapping level, sequences at their key's indent, strings plain
//! only when the scalar table reads them back unchanged and double-quoted
//! with JSON's escapes otherwise, floats as canonical JSON writes them.

use std::fmt::Write;

use serde_yaml::Value;

use super::scalar::{double_quoted, writes_plain};

/// Longest key written in the implicit `key: value` form; YAML limits
/// implicit keys to 1024 characters, so longer ones take the `? key` form.
const MAX_IMPLICIT_KEY_CHARS: usize = 1024;

/// The canonical text of `value`, a mapping at the top.
pub(super) fn to_string(value: &Value) -> Result<String, String> {
    let mut out = String::new();
    match value {
        Value::Mapping(map) if !map.is_empty() => mapping(&mut out, map, 0)?,
        Value::Mapping(_) => out.push_str("{}\n"),
        _ => return Err("the top of a document is a mapping".into()),
    }
    Ok(out)
}

fn mapping(out: &mut String, map: &serde_yaml::Mapping, indent: usize) -> Result<(), String> {
    for (key, value) in map {
        let Value::String(key) = key else { return Err(format!("mapping key {key:?} is not a string")) };
        let mut written = String::new();
        string(&mut written, key);
        pad(out, indent);
        if written.chars().count() > MAX_IMPLICIT_KEY_CHARS {
            out.push_str("? ");
            out.push_str(&written);
            out.push('\n');
            pad(out, indent);
        } else {
            out.push_str(&written);
        }
        out.push(':');
        match value {
            Value::Mapping(m) if !m.is_empty() => {
                out.push('\n');
                mapping(out, m, indent + 2)?;
            }
            Value::Sequence(s) if !s.is_empty() => {
                out.push('\n');
                sequence(out, s, indent)?;
            }
            other => {
                out.push(' ');
                inline(out, other)?;
                out.push('\n');
            }
        }
    }
    Ok(())
}

fn sequence(out: &mut String, items: &[Value], indent: usize) -> Result<(), String> {
    for item in items {
        // A collection item starts on the dash's line: write it two columns
        // in, then put the dash over its first indent.
        let start = out.len();
        match item {
            Value::Mapping(m) if !m.is_empty() => mapping(out, m, indent + 2)?,
            Value::Sequence(s) if !s.is_empty() => sequence(out, s, indent + 2)?,
            other => {
                pad(out, indent + 2);
                inline(out, other)?;
                out.push('\n');
            }
        }
        out.replace_range(start + indent..start + indent + 2, "- ");
    }
    Ok(())
}

/// Writes a scalar, `[]` or `{}`.
fn inline(out: &mut String, value: &Value) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => write!(out, "{u}").expect("writing to a String"),
            (None, Some(i), _) => write!(out, "{i}").expect("writing to a String"),
            (None, None, Some(f)) if f.is_finite() => {
                out.push_str(&serde_json::to_string(&f).expect("a finite float serializes"))
            }
            _ => return Err(format!("{n} is not a finite number")),
        },
        Value::String(s) => string(out, s),
        Value::Sequence(s) if s.is_empty() => out.push_str("[]"),
        Value::Mapping(m) if m.is_empty() => out.push_str("{}"),
        Value::Tagged(_) => return Err("tagged values are not written".into()),
        _ => unreachable!("callers write non-empty collections in block style"),
    }
    Ok(())
}

fn string(out: &mut String, s: &str) {
    if writes_plain(s) {
        out.push_str(s);
    } else {
        double_quoted(s, out);
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}
