//! The tree the fast reader builds: borrowed from the text, mappings as
//! lists of pairs, decoded into typed values without a `serde_yaml::Value`
//! (whose hashed mappings and owned strings cost most of a manifest's parse).
//!
//! Decoding follows serde_yaml's `&Value` deserializer case by case (numbers
//! only from numbers, strings only from strings, null as an empty sequence or
//! mapping, enums from strings), so a tree and the `Value` serde_yaml reads
//! from the same text decode to the same result; `check_fast_decode` tests it.

use std::borrow::Cow;

use serde::de::value::{BorrowedStrDeserializer, Error};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Number, Value};

/// A node of a document in the block subset.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node<'a> {
    Null,
    Bool(bool),
    /// A non-negative integer (serde_yaml's positive number).
    UInt(u64),
    /// A negative integer.
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    /// Keys are unique (the reader checks) and in document order.
    Map(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl Node<'_> {
    /// The `serde_yaml::Value` of the same document.
    pub(super) fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::UInt(n) => Value::Number(Number::from(*n)),
            Node::Int(n) => Value::Number(Number::from(*n)),
            Node::Float(x) => Value::Number(Number::from(*x)),
            Node::Str(s) => Value::String(s.clone().into_owned()),
            Node::Seq(items) => Value::Sequence(items.iter().map(Node::to_value).collect()),
            Node::Map(pairs) => Value::Mapping(
                pairs.iter().map(|(k, v)| (Value::String(k.clone().into_owned()), v.to_value())).collect::<Mapping>(),
            ),
        }
    }

    fn unexpected(&self) -> de::Unexpected<'_> {
        match self {
            Node::Null => de::Unexpected::Unit,
            Node::Bool(b) => de::Unexpected::Bool(*b),
            Node::UInt(n) => de::Unexpected::Unsigned(*n),
            Node::Int(n) => de::Unexpected::Signed(*n),
            Node::Float(x) => de::Unexpected::Float(*x),
            Node::Str(s) => de::Unexpected::Str(s),
            Node::Seq(_) => de::Unexpected::Seq,
            Node::Map(_) => de::Unexpected::Map,
        }
    }

    fn invalid_type<'de, V: Visitor<'de>>(&self, visitor: &V) -> Error {
        de::Error::invalid_type(self.unexpected(), visitor)
    }
}

/// Visits `items` as a sequence, all of which must be taken.
fn visit_seq<'de, V: Visitor<'de>>(items: &'de [Node<'_>], visitor: V) -> Result<V::Value, Error> {
    let mut access = Items { rest: items.iter() };
    let out = visitor.visit_seq(&mut access)?;
    match access.rest.len() {
        0 => Ok(out),
        _ => Err(de::Error::invalid_length(items.len(), &"fewer elements in sequence")),
    }
}

/// Visits `pairs` as a mapping, all of which must be taken.
fn visit_map<'de, V: Visitor<'de>>(pairs: &'de [(Cow<'_, str>, Node<'_>)], visitor: V) -> Result<V::Value, Error> {
    let mut access = Pairs { rest: pairs.iter(), value: None };
    let out = visitor.visit_map(&mut access)?;
    match access.rest.len() {
        0 => Ok(out),
        _ => Err(de::Error::invalid_length(pairs.len(), &"fewer elements in map")),
    }
}

struct Items<'de, 'a> {
    rest: std::slice::Iter<'de, Node<'a>>,
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        self.rest.next().map(|node| seed.deserialize(node)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.rest.len())
    }
}

struct Pairs<'de, 'a> {
    rest: std::slice::Iter<'de, (Cow<'a, str>, Node<'a>)>,
    value: Option<&'de Node<'a>>,
}

impl<'de> MapAccess<'de> for Pairs<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.rest.next() else { return Ok(None) };
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self.value.take().ok_or_else(|| de::Error::custom("a value asked for before its key"))?;
        seed.deserialize(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.rest.len())
    }
}

impl<'de> Deserializer<'de> for &'de Node<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::UInt(n) => visitor.visit_u64(*n),
            Node::Int(n) => visitor.visit_i64(*n),
            Node::Float(x) => visitor.visit_f64(*x),
            Node::Str(s) => visitor.visit_borrowed_str(s),
            Node::Seq(items) => visit_seq(items, visitor),
            Node::Map(pairs) => visit_map(pairs, visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Bool(b) => visitor.visit_bool(*b),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_number(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Str(s) => visitor.visit_borrowed_str(s),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Str(s) => visitor.visit_borrowed_str(s),
            Node::Seq(items) => visit_seq(items, visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Null => visitor.visit_unit(),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Seq(items) => visit_seq(items, visitor),
            Node::Null => visit_seq(&[], visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::Map(pairs) => visit_map(pairs, visitor),
            Node::Null => visit_map(&[], visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    /// An enum is a string naming a unit variant (the block subset has no tags).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Node::Str(s) => visitor.visit_enum(BorrowedStrDeserializer::<Error>::new(s)),
            other => Err(de::Error::invalid_type(other.unexpected(), &"a Value::Tagged enum")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

impl Node<'_> {
    fn deserialize_number<'de, V: Visitor<'de>>(&'de self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Node::UInt(_) | Node::Int(_) | Node::Float(_) => self.deserialize_any(visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }
}
