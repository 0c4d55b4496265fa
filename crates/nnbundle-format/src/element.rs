//! Rust element types that map to bundle dtypes.

use half::{bf16, f16};

use crate::DType;

mod sealed {
    pub trait Sealed {}
}

/// A Rust type whose values can be stored as a tensor element.
///
/// Implemented for `f16`, `bf16` (from the `half` crate), `f32`, `f64`, `i8`,
/// `i16`, `i32`, `i64`, `u8` and `bool`.
pub trait Element: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static + sealed::Sealed {
    /// The dtype these values are stored as.
    const DTYPE: DType;

    /// Borrows little-endian bytes as values, if alignment and validity allow.
    fn view(bytes: &[u8]) -> Option<&[Self]>;

    /// Decodes little-endian bytes into values, validating them.
    /// `bytes.len()` must be a multiple of the element size.
    fn decode(bytes: &[u8]) -> Option<Vec<Self>>;

    /// Converts values into a byte buffer without copying where possible.
    fn into_buffer(values: Vec<Self>) -> crate::Buffer;
}

macro_rules! pod_element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;

            fn view(bytes: &[u8]) -> Option<&[Self]> {
                bytemuck::try_cast_slice(bytes).ok()
            }

            fn decode(bytes: &[u8]) -> Option<Vec<Self>> {
                Some(bytemuck::pod_collect_to_vec(bytes))
            }

            fn into_buffer(values: Vec<Self>) -> crate::Buffer {
                crate::Buffer::from_vec(values)
            }
        }
    )*};
}

#[cfg(not(target_endian = "little"))]
compile_error!("nnbundle reads tensor bytes in place and supports little-endian targets only");

pod_element!(
    f16 => F16, bf16 => BF16, f32 => F32, f64 => F64,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8,
);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::Bool;

    fn view(_: &[u8]) -> Option<&[Self]> {
        // A byte slice cannot be reinterpreted as `bool` without unsafe code;
        // `decode` validates and copies instead.
        None
    }

    fn decode(bytes: &[u8]) -> Option<Vec<Self>> {
        bytes
            .iter()
            .map(|&b| match b {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })
            .collect()
    }

    fn into_buffer(values: Vec<Self>) -> crate::Buffer {
        crate::Buffer::from_vec(values.into_iter().map(u8::from).collect::<Vec<u8>>())
    }
}
