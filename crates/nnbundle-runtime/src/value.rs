//! Values that flow through a model: typed n-dimensional arrays.

use std::fmt;

use ndarray::{ArrayD, ArrayViewD};
use nnbundle_format::{DType, Element, FormatError, Tensor};

/// A runtime value: an owned array of one of the dtypes the runtime computes with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// 32-bit floats.
    F32(ArrayD<f32>),
    /// 64-bit floats.
    F64(ArrayD<f64>),
    /// 32-bit integers (indices).
    I32(ArrayD<i32>),
    /// 64-bit integers (indices).
    I64(ArrayD<i64>),
    /// Booleans (masks).
    Bool(ArrayD<bool>),
}

impl Value {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Value::F32(_) => DType::F32,
            Value::F64(_) => DType::F64,
            Value::I32(_) => DType::I32,
            Value::I64(_) => DType::I64,
            Value::Bool(_) => DType::Bool,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => a.shape(),
            Value::F64(a) => a.shape(),
            Value::I32(a) => a.shape(),
            Value::I64(a) => a.shape(),
            Value::Bool(a) => a.shape(),
        }
    }

    /// Converts to a tensor (copying into C order where needed).
    pub fn to_tensor(&self) -> Tensor {
        match self {
            Value::F32(a) => Tensor::from_array(a.clone()),
            Value::F64(a) => Tensor::from_array(a.clone()),
            Value::I32(a) => Tensor::from_array(a.clone()),
            Value::I64(a) => Tensor::from_array(a.clone()),
            Value::Bool(a) => Tensor::from_array(a.clone()),
        }
    }

    /// Converts a tensor of a dtype the runtime computes with.
    pub fn from_tensor(t: &Tensor) -> Result<Value, FormatError> {
        Ok(match t.dtype() {
            DType::F32 => Value::F32(t.to_array()?),
            DType::F64 => Value::F64(t.to_array()?),
            DType::I32 => Value::I32(t.to_array()?),
            DType::I64 => Value::I64(t.to_array()?),
            DType::Bool => Value::Bool(t.to_array()?),
            other => return Err(FormatError::DTypeMismatch { expected: DType::F32, found: other }),
        })
    }

    /// The f32 array, if this is one.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Value::F32(a) => Some(a),
            _ => None,
        }
    }

    /// The f64 array, if this is one.
    pub fn as_f64(&self) -> Option<&ArrayD<f64>> {
        match self {
            Value::F64(a) => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.dtype(), self.shape())
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<ArrayD<$t>> for Value {
            fn from(a: ArrayD<$t>) -> Self { Value::$v(a) }
        }
    )*};
}
value_from!(f32 => F32, f64 => F64, i32 => I32, i64 => I64, bool => Bool);

/// An operand of a kernel: a computed value, or a weight that stays in the
/// bundle's memory (never copied).
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a> {
    Value(&'a Value),
    Weight(&'a Tensor),
}

impl<'a> Arg<'a> {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Arg::Value(v) => v.dtype(),
            Arg::Weight(t) => t.dtype(),
        }
    }

    pub(crate) fn shape(&self) -> &'a [usize] {
        match self {
            Arg::Value(v) => v.shape(),
            Arg::Weight(t) => t.shape(),
        }
    }

    /// A typed view; `None` on a dtype mismatch (ruled out by validation).
    pub(crate) fn view<T: Scalar>(&self) -> Option<ArrayViewD<'a, T>> {
        match self {
            Arg::Value(v) => T::view_value(v),
            Arg::Weight(t) => t.array_view::<T>().ok().flatten(),
        }
    }
}

/// Element types the runtime stores in [`Value`]s.
pub(crate) trait Scalar: Element + Clone {
    fn view_value(v: &Value) -> Option<ArrayViewD<'_, Self>>;
}

macro_rules! scalar {
    ($($t:ty => $v:ident),*) => {$(
        impl Scalar for $t {
            fn view_value(v: &Value) -> Option<ArrayViewD<'_, Self>> {
                match v { Value::$v(a) => Some(a.view()), _ => None }
            }
        }
    )*};
}
scalar!(f32 => F32, f64 => F64, i32 => I32, i64 => I64, bool => Bool);
