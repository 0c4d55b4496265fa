//! Dimensions and the dtype-and-shape facts that shape inference computes.

use std::fmt;

use nnbundle_format::DType;
use serde::{Serialize, Serializer};

/// One dimension of a shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Fixed(u64),
    /// A named size fixed only when the model runs, such as `batch`.
    Symbol(String),
    /// A size inference cannot express (derived from a symbol by arithmetic).
    Unknown,
}

impl Dim {
    /// The size, when known.
    pub fn fixed(&self) -> Option<u64> {
        match self {
            Dim::Fixed(n) => Some(*n),
            _ => None,
        }
    }

    /// True when both dims are certainly equal (same size or same symbol).
    pub fn same_as(&self, other: &Dim) -> bool {
        match (self, other) {
            (Dim::Fixed(a), Dim::Fixed(b)) => a == b,
            (Dim::Symbol(a), Dim::Symbol(b)) => a == b,
            _ => false,
        }
    }

    /// True when the dims could be equal at run time.
    pub fn compatible(&self, other: &Dim) -> bool {
        match (self, other) {
            (Dim::Fixed(a), Dim::Fixed(b)) => a == b,
            _ => true,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

impl Serialize for Dim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dim::Fixed(n) => s.serialize_u64(*n),
            Dim::Symbol(sym) => s.serialize_str(sym),
            Dim::Unknown => s.serialize_str("?"),
        }
    }
}

/// A shape, written `[batch, 256]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A shape of known sizes.
    pub fn fixed(dims: &[u64]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Fixed(d)).collect())
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// All sizes, when every one is known.
    pub fn to_fixed(&self) -> Option<Vec<u64>> {
        self.0.iter().map(Dim::fixed).collect()
    }

    /// The dim at a possibly negative axis (`-1` is the last).
    pub fn at(&self, axis: i64) -> Option<&Dim> {
        normalize_axis(axis, self.rank()).map(|a| &self.0[a])
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Turns a possibly negative axis into an index below `rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let rank = i64::try_from(rank).ok()?;
    let a = if axis < 0 { axis + rank } else { axis };
    (0..rank).contains(&a).then_some(a as usize)
}

/// What inference knows about a value: its dtype and shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValueInfo {
    /// Element type.
    pub dtype: DType,
    /// Shape, possibly with symbols.
    pub shape: Shape,
}

impl ValueInfo {
    /// A value of `dtype` and `shape`.
    pub fn new(dtype: DType, shape: Shape) -> Self {
        ValueInfo { dtype, shape }
    }
}

impl fmt::Display for ValueInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.dtype, self.shape)
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Self {
        Dim::Fixed(n)
    }
}

impl From<&str> for Dim {
    fn from(s: &str) -> Self {
        Dim::Symbol(s.to_owned())
    }
}
