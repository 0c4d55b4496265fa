//! Typed op attributes: their types, defaults, and parsed values.

use std::collections::BTreeMap;
use std::fmt;

use crate::ops::OpKind;
use serde::Serialize;
use serde_json::Value;

/// A parsed attribute value, normalized: a spatial `3` is stored as `[3, 3]`,
/// and an integer given for a float attribute as that float.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// A string (one of the attribute's choices).
    Str(String),
    /// A list of integers.
    Ints(Vec<i64>),
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Bool(b) => write!(f, "{b}"),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Float(x) => write!(f, "{x}"),
            AttrValue::Str(s) => write!(f, "{s}"),
            AttrValue::Ints(v) => write!(f, "{v:?}"),
        }
    }
}

/// The type of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// An integer.
    Int,
    /// A float (an integer is accepted and converted).
    Float,
    /// A boolean.
    Bool,
    /// One of the listed strings.
    Choice(&'static [&'static str]),
    /// A list of integers (a single integer is accepted as a list of one).
    Ints,
    /// An integer or a list of `n` integers, one per spatial dimension.
    Spatial(usize),
    /// Padding: an integer, `n` integers (both sides of each dimension), or
    /// `2n` integers (the begin of each dimension, then the end of each).
    Pads(usize),
    /// Like `Pads`, or one of the strings `valid` and `same`.
    Padding(usize),
}

impl AttrType {
    /// How the type is described in errors and in the spec.
    pub fn describe(self) -> String {
        match self {
            AttrType::Int => "an integer".into(),
            AttrType::Float => "a number".into(),
            AttrType::Bool => "a boolean".into(),
            AttrType::Choice(c) => format!("one of {}", c.join(", ")),
            AttrType::Ints => "a list of integers".into(),
            AttrType::Spatial(n) => format!("an integer or a list of {n} integers"),
            AttrType::Pads(n) => format!("an integer or a list of {n} or {} integers", 2 * n),
            AttrType::Padding(n) => format!("an integer, a list of {n} or {} integers, `valid` or `same`", 2 * n),
        }
    }

    /// Parses `v` as this type, normalizing the result.
    pub fn parse(self, v: &Value) -> Result<AttrValue, String> {
        let int = |v: &Value| v.as_i64().filter(|_| v.is_i64() || v.is_u64());
        let ints = |v: &Value, n: Option<usize>| -> Option<Vec<i64>> {
            if let Some(i) = int(v) {
                return Some(vec![i; n.unwrap_or(1)]);
            }
            let list: Vec<i64> = v.as_array()?.iter().map(int).collect::<Option<_>>()?;
            n.is_none_or(|n| list.len() == n).then_some(list)
        };
        let parsed = match self {
            AttrType::Int => int(v).map(AttrValue::Int),
            AttrType::Float => v.as_f64().filter(|x| x.is_finite()).map(AttrValue::Float),
            AttrType::Bool => v.as_bool().map(AttrValue::Bool),
            AttrType::Choice(choices) => {
                v.as_str().filter(|s| choices.contains(s)).map(|s| AttrValue::Str(s.to_owned()))
            }
            AttrType::Ints => ints(v, None).map(AttrValue::Ints),
            AttrType::Spatial(n) => ints(v, Some(n)).map(AttrValue::Ints),
            AttrType::Pads(n) => pads(v, n),
            AttrType::Padding(n) => match v.as_str() {
                Some(s @ ("valid" | "same")) => Some(AttrValue::Str(s.to_owned())),
                _ => pads(v, n),
            },
        };
        parsed.ok_or_else(|| format!("expected {}, found {}", self.describe(), describe_json(v)))
    }
}

/// Parses padding as `n` values, or `2n` (begins, then ends) normalized to
/// `n` when every dimension is padded equally on both sides.
fn pads(v: &Value, n: usize) -> Option<AttrValue> {
    if let Some(i) = v.as_i64().filter(|_| v.is_i64() || v.is_u64()) {
        return Some(AttrValue::Ints(vec![i; n]));
    }
    let list: Vec<i64> =
        v.as_array()?.iter().map(|x| x.as_i64().filter(|_| x.is_i64() || x.is_u64())).collect::<Option<_>>()?;
    if list.len() == n {
        Some(AttrValue::Ints(list))
    } else if list.len() == 2 * n {
        let (begin, end) = list.split_at(n);
        Some(AttrValue::Ints(if begin == end { begin.to_vec() } else { list }))
    } else {
        None
    }
}

/// `(begin, end)` padding of each of `n` dimensions from a normalized padding list.
pub fn pad_pairs(list: &[i64], n: usize) -> Vec<(i64, i64)> {
    if list.len() == 2 * n {
        (0..n).map(|i| (list[i], list[n + i])).collect()
    } else {
        list.iter().map(|&p| (p, p)).collect()
    }
}

/// A short description of a JSON value for error messages.
pub fn describe_json(v: &Value) -> String {
    let text = v.to_string();
    let shown = if text.len() > 40 { format!("{}...", &text[..text.floor_char_boundary(40)]) } else { text };
    let kind = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    };
    format!("{kind} {shown}")
}

/// The default of an attribute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrDefault {
    /// The attribute must be given.
    Required,
    /// Optional, with no value when absent.
    Absent,
    /// This boolean.
    Bool(bool),
    /// This integer.
    Int(i64),
    /// This float.
    Float(f64),
    /// This string.
    Str(&'static str),
    /// This integer for every spatial dimension.
    Spatial(i64),
    /// The value of another attribute (`stride` defaults to `kernel_size`).
    SameAs(&'static str),
}

impl fmt::Display for AttrDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrDefault::Required => f.write_str("required"),
            AttrDefault::Absent => f.write_str("absent"),
            AttrDefault::Bool(b) => write!(f, "{b}"),
            AttrDefault::Int(i) | AttrDefault::Spatial(i) => write!(f, "{i}"),
            AttrDefault::Float(x) => write!(f, "{x:?}"),
            AttrDefault::Str(s) => write!(f, "{s}"),
            AttrDefault::SameAs(a) => write!(f, "same as {a}"),
        }
    }
}

/// One attribute an op accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttrSpec {
    /// Attribute name (PyTorch's).
    pub name: &'static str,
    /// Its type.
    pub ty: AttrType,
    /// Its default.
    pub default: AttrDefault,
    /// What it means.
    pub doc: &'static str,
}

/// Shorthand for op tables.
pub const fn attr(name: &'static str, ty: AttrType, default: AttrDefault, doc: &'static str) -> AttrSpec {
    AttrSpec { name, ty, default, doc }
}

/// A node's attributes seen through its op: the same accessors as
/// [`Attrs`], but asking for a name the op does not define fails in debug
/// builds (and reads as absent in release builds, as [`Attrs`] does).
#[derive(Debug, Clone, Copy)]
pub struct NodeAttrs<'a> {
    op: OpKind,
    attrs: &'a Attrs,
}

macro_rules! checked_accessors {
    ($($(#[$doc:meta])* $name:ident -> $ret:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self, name: &str) -> $ret {
                self.expect_defined(name);
                self.attrs.$name(name)
            }
        )*
    };
}

impl<'a> NodeAttrs<'a> {
    /// The attributes `attrs` of a node of `op`.
    pub fn new(op: OpKind, attrs: &'a Attrs) -> Self {
        NodeAttrs { op, attrs }
    }

    /// The unchecked attributes.
    pub fn raw(&self) -> &'a Attrs {
        self.attrs
    }

    fn expect_defined(&self, name: &str) {
        debug_assert!(self.op.def().attr(name).is_some(), "{} has no attribute `{name}`", self.op);
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&'a AttrValue> {
        self.expect_defined(name);
        self.attrs.get(name)
    }

    /// A list-of-integers attribute.
    pub fn ints(&self, name: &str) -> &'a [i64] {
        self.expect_defined(name);
        self.attrs.ints(name)
    }

    /// A string attribute.
    pub fn str(&self, name: &str) -> &'a str {
        self.expect_defined(name);
        self.attrs.str(name)
    }

    checked_accessors! {
        /// An integer attribute.
        int -> i64;
        /// An optional integer attribute.
        opt_int -> Option<i64>;
        /// A float attribute.
        float -> f64;
        /// A boolean attribute.
        bool -> bool;
    }
}

/// A node's attributes after parsing, with every default filled in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Attrs(pub BTreeMap<String, AttrValue>);

impl Attrs {
    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.0.get(name)
    }

    /// An integer attribute (0 when absent or of another type; validation rules that out).
    pub fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Some(AttrValue::Int(i)) => *i,
            _ => 0,
        }
    }

    /// An optional integer attribute.
    pub fn opt_int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(AttrValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// A float attribute.
    pub fn float(&self, name: &str) -> f64 {
        match self.get(name) {
            Some(AttrValue::Float(x)) => *x,
            Some(AttrValue::Int(i)) => *i as f64,
            _ => 0.0,
        }
    }

    /// A boolean attribute.
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), Some(AttrValue::Bool(true)))
    }

    /// A string attribute.
    pub fn str(&self, name: &str) -> &str {
        match self.get(name) {
            Some(AttrValue::Str(s)) => s,
            _ => "",
        }
    }

    /// A list-of-integers attribute.
    pub fn ints(&self, name: &str) -> &[i64] {
        match self.get(name) {
            Some(AttrValue::Ints(v)) => v,
            _ => &[],
        }
    }

    /// Sets a value (used by builders and importers).
    pub fn set(&mut self, name: &str, value: AttrValue) -> &mut Self {
        self.0.insert(name.to_owned(), value);
        self
    }

    /// Fills defaults for `specs`, returning the names of required attributes that are absent.
    pub fn fill_defaults(&mut self, specs: &[AttrSpec]) -> Vec<&'static str> {
        let mut missing = Vec::new();
        for spec in specs {
            if self.0.contains_key(spec.name) {
                continue;
            }
            let value = match spec.default {
                AttrDefault::Required => {
                    missing.push(spec.name);
                    None
                }
                AttrDefault::Absent | AttrDefault::SameAs(_) => None,
                AttrDefault::Bool(b) => Some(AttrValue::Bool(b)),
                AttrDefault::Int(i) => Some(AttrValue::Int(i)),
                AttrDefault::Float(x) => Some(AttrValue::Float(x)),
                AttrDefault::Str(s) => Some(AttrValue::Str(s.to_owned())),
                AttrDefault::Spatial(i) => match spec.ty {
                    AttrType::Spatial(n) | AttrType::Padding(n) | AttrType::Pads(n) => {
                        Some(AttrValue::Ints(vec![i; n]))
                    }
                    _ => Some(AttrValue::Int(i)),
                },
            };
            if let Some(v) = value {
                self.0.insert(spec.name.to_owned(), v);
            }
        }
        // Second pass: defaults that copy another attribute.
        for spec in specs {
            if let AttrDefault::SameAs(other) = spec.default
                && !self.0.contains_key(spec.name)
                && let Some(v) = self.0.get(other).cloned()
            {
                self.0.insert(spec.name.to_owned(), v);
            }
        }
        missing
    }
}

macro_rules! attr_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for AttrValue {
            fn from(x: $t) -> Self { AttrValue::$v(x.into()) }
        }
    )*};
}
attr_from!(bool => Bool, i64 => Int, i32 => Int, u32 => Int, f64 => Float, f32 => Float, String => Str, &str => Str, Vec<i64> => Ints);

impl<const N: usize> From<[i64; N]> for AttrValue {
    fn from(v: [i64; N]) -> Self {
        AttrValue::Ints(v.to_vec())
    }
}
