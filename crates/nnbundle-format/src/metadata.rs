//! Typed metadata: strings, integers, floats, booleans, and lists and maps of them.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::FormatError;
use crate::limits::MAX_METADATA_DEPTH;
use crate::names::check_metadata_key;

/// One metadata value. YAML `null` is not a value: leave the key out instead.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MetaValue {
    /// `true` or `false`.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A finite 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// A list of values.
    List(Vec<MetaValue>),
    /// A map from keys to values, sorted by key.
    Map(BTreeMap<String, MetaValue>),
}

impl MetaValue {
    /// Checks keys, float finiteness and nesting depth; `path` names the value in errors.
    pub fn check(&self, path: &str) -> Result<(), FormatError> {
        self.check_at(path, 0)
    }

    fn check_at(&self, path: &str, depth: usize) -> Result<(), FormatError> {
        let invalid = |reason: String| FormatError::InvalidMetadata { path: path.to_owned(), reason };
        if depth > MAX_METADATA_DEPTH {
            return Err(invalid(format!("nested deeper than {MAX_METADATA_DEPTH} levels (MAX_METADATA_DEPTH)")));
        }
        match self {
            MetaValue::Float(f) if !f.is_finite() => Err(invalid(format!("{f} is not a finite number"))),
            MetaValue::List(items) => {
                items.iter().enumerate().try_for_each(|(i, v)| v.check_at(&format!("{path}[{i}]"), depth + 1))
            }
            MetaValue::Map(map) => map.iter().try_for_each(|(k, v)| {
                check_metadata_key(k)?;
                v.check_at(&format!("{path}.{k}"), depth + 1)
            }),
            _ => Ok(()),
        }
    }
}

macro_rules! meta_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for MetaValue {
            fn from(x: $t) -> Self { MetaValue::$v(x.into()) }
        }
    )*};
}
meta_from!(bool => Bool, i64 => Int, i32 => Int, u32 => Int, f64 => Float, f32 => Float, String => String, &str => String);

impl<T: Into<MetaValue>> From<Vec<T>> for MetaValue {
    fn from(v: Vec<T>) -> Self {
        MetaValue::List(v.into_iter().map(Into::into).collect())
    }
}

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("<invalid>"),
        }
    }
}

impl<'de> Deserialize<'de> for MetaValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MetaVisitor)
    }
}

struct MetaVisitor;

impl<'de> Visitor<'de> for MetaVisitor {
    type Value = MetaValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a metadata value: string, integer, float, boolean, list or map")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<MetaValue, E> {
        Ok(MetaValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<MetaValue, E> {
        Ok(MetaValue::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<MetaValue, E> {
        i64::try_from(v)
            .map(MetaValue::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in a signed 64-bit integer")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<MetaValue, E> {
        if v.is_finite() { Ok(MetaValue::Float(v)) } else { Err(E::custom(format!("{v} is not a finite number"))) }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<MetaValue, E> {
        Ok(MetaValue::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<MetaValue, E> {
        Ok(MetaValue::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<MetaValue, E> {
        Err(E::custom("null is not a metadata value (leave the key out instead)"))
    }

    fn visit_none<E: de::Error>(self) -> Result<MetaValue, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MetaValue, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(MetaValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaValue, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, MetaValue>()? {
            if out.insert(k.clone(), v).is_some() {
                return Err(de::Error::custom(format!("duplicate metadata key `{k}`")));
            }
        }
        Ok(MetaValue::Map(out))
    }
}
