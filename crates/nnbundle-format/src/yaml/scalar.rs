//! The spec's scalar table (FORMAT.md section 3.6): how a plain YAML scalar
//! reads, which plain scalars are refused, and how a string is written.
//!
//! The table is YAML 1.2's core schema narrowed to one spelling per number:
//! every other spelling of a number that some common reader (YAML 1.1, the
//! 1.2 core schema, serde_yaml) accepts is refused instead of guessed, so a
//! plain scalar means the same thing to every conforming reader.

/// What a plain scalar reads as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    /// An integer from -2^63 to 2^64 - 1 (`u64` above `i64::MAX`).
    Int(i128),
    Float(f64),
    /// The scalar's own text.
    Str,
    /// Refused; the reason says which reading it could be mistaken for.
    Refused(&'static str),
}

/// Reads a plain scalar by the spec's table.
pub(crate) fn resolve(s: &str) -> Plain {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        _ => {}
    }
    if is_decimal_integer(s) {
        return match s.parse::<i128>() {
            Ok(v) if (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&v) => Plain::Int(v),
            _ => Plain::Refused("an integer outside -2^63 .. 2^64-1"),
        };
    }
    if is_decimal_float(s) {
        return match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Plain::Float(v),
            _ => Plain::Refused("a float too large for binary64"),
        };
    }
    if is_other_number(s) {
        return Plain::Refused(
            "a number in a spelling the table does not allow (sign, base prefix, leading zero, `_`, `:`, or a bare `.`)",
        );
    }
    Plain::Str
}

/// `-?(0|[1-9][0-9]*)`.
fn is_decimal_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'))
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?` with a fraction or an
/// exponent or both.
fn is_decimal_float(s: &str) -> bool {
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let int_len = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    let int = &unsigned[..int_len];
    if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
        return false;
    }
    let mut rest = &unsigned[int_len..];
    let mut tail = false;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
        tail = true;
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        rest = "";
        tail = true;
    }
    tail && rest.is_empty()
}

/// Every other spelling of a number that some YAML reader accepts:
/// `[-+]?(0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|\.(inf|Inf|INF|nan|NaN|NAN)
/// |([0-9][0-9_]*(:[0-5]?[0-9])*(\.[0-9_]*)?|\.[0-9_]+)([eE][-+]?[0-9]+)?)`.
fn is_other_number(s: &str) -> bool {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    let all = |r: &str, ok: fn(u8) -> bool| !r.is_empty() && r.bytes().all(ok);
    if let Some(r) = t.strip_prefix("0b") {
        return all(r, |b| matches!(b, b'0' | b'1' | b'_'));
    }
    if let Some(r) = t.strip_prefix("0o") {
        return all(r, |b| matches!(b, b'0'..=b'7' | b'_'));
    }
    if let Some(r) = t.strip_prefix("0x") {
        return all(r, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let digits_or_underscore = |r: &str| r.bytes().take_while(|&b| b.is_ascii_digit() || b == b'_').count();
    let mut rest;
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        rest = &t[digits_or_underscore(t)..];
        while let Some(group) = rest.strip_prefix(':') {
            let n = group.bytes().take_while(u8::is_ascii_digit).count();
            let ok = n == 1 || (n == 2 && group.as_bytes()[0] <= b'5');
            if !ok {
                return false;
            }
            rest = &group[n..];
        }
        if let Some(frac) = rest.strip_prefix('.') {
            rest = &frac[digits_or_underscore(frac)..];
        }
    } else if let Some(frac) = t.strip_prefix('.') {
        let n = digits_or_underscore(frac);
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    } else {
        return false;
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        return all(digits, |b| b.is_ascii_digit());
    }
    rest.is_empty()
}

/// Whether canonical YAML writes the string `s` plain: `[A-Za-z0-9_][A-Za-z0-9_.-]*`
/// that the table reads back as the same string.
pub(crate) fn writes_plain(s: &str) -> bool {
    let bytes = s.as_bytes();
    let first = bytes.first().is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_');
    first
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && resolve(s) == Plain::Str
}

/// `s` as a double-quoted YAML scalar with JSON's escapes (section 5.3),
/// plus `\u00xx` for DEL and the C1 controls and `\uxxxx` for the BOM, the
/// line and paragraph separators and the two non-characters U+FFFE and
/// U+FFFF: characters YAML either forbids in a document or folds as line
/// breaks.
pub(crate) fn double_quoted(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                write!(out, "\\u{:04x}", c as u32).expect("writing to a String")
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Reads the double-quoted scalar that is all of `s` (quotes included) when
/// it uses only the escapes [`double_quoted`] writes (`\u` with four hex
/// digits in either case, no surrogates) and no character it escapes;
/// `None` otherwise.
pub(crate) fn read_double_quoted(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => out.push(match chars.next()? {
                '"' => '"',
                '\\' => '\\',
                'b' => '\u{8}',
                't' => '\t',
                'n' => '\n',
                'f' => '\u{c}',
                'r' => '\r',
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex.len() != 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                }
                _ => return None,
            }),
            '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {
                return None;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_by_example() {
        for (s, want) in [
            ("", Plain::Null),
            ("~", Plain::Null),
            ("NULL", Plain::Null),
            ("True", Plain::Bool(true)),
            ("FALSE", Plain::Bool(false)),
            ("0", Plain::Int(0)),
            ("-0", Plain::Int(0)),
            ("-12", Plain::Int(-12)),
            ("18446744073709551615", Plain::Int(u64::MAX.into())),
            ("-9223372036854775808", Plain::Int(i64::MIN.into())),
            ("1.0", Plain::Float(1.0)),
            ("1.50", Plain::Float(1.5)),
            ("1e+16", Plain::Float(1e16)),
            ("-2.5E-3", Plain::Float(-2.5e-3)),
            ("1e-400", Plain::Float(0.0)),
            ("hidden.weight", Plain::Str),
            ("0.weight", Plain::Str),
            ("2.1.0", Plain::Str),
            ("inf", Plain::Str),
            ("nan", Plain::Str),
            ("1e", Plain::Str),
            ("e5", Plain::Str),
            (".", Plain::Str),
            ("0x", Plain::Str),
            ("0b102", Plain::Str),
            ("12:60", Plain::Str),
            ("x y", Plain::Str),
            ("yes", Plain::Str),
            ("n", Plain::Str),
        ] {
            assert_eq!(resolve(s), want, "{s:?}");
        }
    }

    #[test]
    fn spellings_other_readers_take_for_numbers_or_booleans_are_refused() {
        for s in [
            "0b11",
            "-0x1F",
            "0o17",
            "007",
            "-01",
            "+1",
            "+1.5",
            "1_000",
            "1:20",
            "1:20.5",
            "1.",
            ".5",
            "-.5",
            "01.5",
            "1.e5",
            "1e400",
            "-1e400",
            ".inf",
            "-.Inf",
            ".NaN",
            "18446744073709551616",
            "-9223372036854775809",
            "99999999999999999999",
        ] {
            assert!(matches!(resolve(s), Plain::Refused(_)), "{s:?} reads as {:?}", resolve(s));
        }
    }

    #[test]
    fn plain_strings_are_the_safe_ones() {
        for s in ["hidden.weight", "f32", "Linear", "_x", "a-b", "encoder.layers.0.linear1", "inf", "y", "on"] {
            assert!(writes_plain(s), "{s}");
        }
        for s in ["", "0", "1.0", "null", "True", "x y", "вес", "-x", ".5", "a:b", "0b11"] {
            assert!(!writes_plain(s), "{s}");
        }
    }

    #[test]
    fn double_quotes_round_trip() {
        for s in
            ["", "a\"b\\c", "tab\there\nline\r\u{8}\u{c}", "\u{1}\u{7f}\u{85}\u{9f}", "вес \u{2028}\u{feff}\u{fffe}😀"]
        {
            let mut q = String::new();
            double_quoted(s, &mut q);
            assert!(q.is_ascii() || !q.contains(['\u{85}', '\u{2028}']), "{q}");
            assert_eq!(read_double_quoted(&q).as_deref(), Some(s), "{q}");
        }
        let mut q = String::new();
        double_quoted("\u{1}\u{7f}", &mut q);
        assert_eq!(q, "\"\\u0001\\u007f\"");
        assert_eq!(read_double_quoted("\"\\x41\""), None);
        assert_eq!(read_double_quoted("\"\\ud800\""), None);
    }
}
