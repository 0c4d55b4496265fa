//! Tensors as dtype, shape and little-endian bytes.

use std::borrow::Cow;

use crate::limits::{MAX_RANK, MAX_TENSOR_BYTES};
use crate::{Buffer, DType, Element, FormatError};

/// Byte size of a tensor of `dtype` and `shape`, overflow-checked and bounded
/// by [`MAX_TENSOR_BYTES`] and [`MAX_RANK`].
pub fn byte_size(dtype: DType, shape: &[u64]) -> Result<u64, FormatError> {
    if shape.len() > MAX_RANK {
        return Err(FormatError::RankTooHigh { shape: shape.to_vec(), rank: shape.len(), max: MAX_RANK });
    }
    shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_BYTES)
        .ok_or_else(|| FormatError::TooLarge { dtype, shape: shape.to_vec(), max: MAX_TENSOR_BYTES })
}

/// An n-dimensional array: dtype, shape (C order) and little-endian data.
///
/// Cloning is cheap: the data is shared. A tensor loaded from a bundle may
/// point straight into the memory-mapped file.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Buffer,
}

fn shape_u64(shape: &[usize]) -> Vec<u64> {
    shape.iter().map(|&d| d as u64).collect()
}

impl Tensor {
    /// A tensor over existing bytes. Fails when the length does not match
    /// dtype and shape, or when `bool` data holds bytes other than 0 and 1.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, data: impl Into<Buffer>) -> Result<Self, FormatError> {
        let data = data.into();
        let dims = shape_u64(&shape);
        let expected = byte_size(dtype, &dims)?;
        if expected != data.len() as u64 {
            return Err(FormatError::DataLength { dtype, shape: dims, expected, found: data.len() as u64 });
        }
        if dtype == DType::Bool && data.as_bytes().iter().any(|&b| b > 1) {
            return Err(FormatError::InvalidValue { dtype });
        }
        Ok(Tensor { dtype, shape, data })
    }

    /// A tensor owning `values` (no copy), laid out in C order with `shape`.
    pub fn from_vec<T: Element>(shape: Vec<usize>, values: Vec<T>) -> Result<Self, FormatError> {
        Tensor::from_bytes(T::DTYPE, shape, T::into_buffer(values))
    }

    /// The same elements under another shape of the same element count (no copy).
    pub fn reshaped(&self, shape: Vec<usize>) -> Result<Tensor, FormatError> {
        Tensor::from_bytes(self.dtype, shape, self.data.clone())
    }

    /// The tensor with its axes reordered: axis `i` of the result is axis
    /// `perm[i]` of `self`. Element bytes are moved as they are.
    pub fn permuted(&self, perm: &[usize]) -> Result<Tensor, FormatError> {
        let rank = self.shape.len();
        let mut sorted = perm.to_vec();
        sorted.sort_unstable();
        if !sorted.iter().copied().eq(0..rank) {
            return Err(FormatError::InvalidPermutation { perm: perm.to_vec(), shape: shape_u64(&self.shape) });
        }
        let size = self.dtype.size();
        let dst_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut src_strides = vec![1usize; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            src_strides[i] = src_strides[i + 1] * self.shape[i + 1];
        }
        let src = self.as_bytes();
        let mut out = Vec::with_capacity(src.len());
        let mut index = vec![0usize; rank];
        for _ in 0..self.len() {
            let offset: usize = index.iter().zip(perm).map(|(&i, &p)| i * src_strides[p]).sum();
            out.extend_from_slice(&src[offset * size..(offset + 1) * size]);
            for axis in (0..rank).rev() {
                index[axis] += 1;
                if index[axis] < dst_shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Tensor::from_bytes(self.dtype, dst_shape, out)
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar<T: Element>(value: T) -> Self {
        Tensor { dtype: T::DTYPE, shape: Vec::new(), data: T::into_buffer(vec![value]) }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The dimensions, outermost first. Empty for a scalar.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements (1 for a scalar, 0 when any dimension is 0).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the data in bytes.
    pub fn nbytes(&self) -> usize {
        self.data.len()
    }

    /// The raw little-endian bytes, C order.
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_bytes()
    }

    /// The underlying shared buffer.
    pub fn buffer(&self) -> &Buffer {
        &self.data
    }

    fn check_dtype<T: Element>(&self) -> Result<(), FormatError> {
        if T::DTYPE == self.dtype {
            Ok(())
        } else {
            Err(FormatError::DTypeMismatch { expected: T::DTYPE, found: self.dtype })
        }
    }

    /// The values, borrowed when the bytes are aligned for `T` and copied otherwise.
    pub fn values<T: Element>(&self) -> Result<Cow<'_, [T]>, FormatError> {
        self.check_dtype::<T>()?;
        if let Some(view) = T::view(self.as_bytes()) {
            return Ok(Cow::Borrowed(view));
        }
        T::decode(self.as_bytes()).map(Cow::Owned).ok_or(FormatError::InvalidValue { dtype: self.dtype })
    }

    /// The values as a borrowed slice, without copying; `None` when the
    /// bytes are not aligned for `T` or `T` is `bool`.
    pub fn view<T: Element>(&self) -> Result<Option<&[T]>, FormatError> {
        self.check_dtype::<T>()?;
        Ok(T::view(self.as_bytes()))
    }

    /// The values copied into a new vector.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, FormatError> {
        self.values::<T>().map(Cow::into_owned)
    }
}

#[cfg(feature = "ndarray")]
mod array {
    use ndarray::{ArrayD, ArrayViewD, IxDyn};

    use super::*;

    impl Tensor {
        /// Converts an array into a tensor, without copying when it is in standard layout.
        pub fn from_array<T: Element>(array: ArrayD<T>) -> Self {
            let shape = array.shape().to_vec();
            let n = array.len();
            let values = if array.is_standard_layout() {
                // Contiguous in C order: the elements are `n` values from `offset`.
                let (mut values, offset) = array.into_raw_vec_and_offset();
                let offset = offset.unwrap_or(0);
                if offset != 0 || values.len() != n {
                    values = values[offset..offset + n].to_vec();
                }
                values
            } else {
                array.iter().copied().collect()
            };
            Tensor::from_vec(shape, values).expect("array length matches its shape")
        }

        /// Copies the tensor into an owned array.
        pub fn to_array<T: Element>(&self) -> Result<ArrayD<T>, FormatError> {
            let values = self.to_vec::<T>()?;
            Ok(ArrayD::from_shape_vec(IxDyn(&self.shape), values).expect("tensor length matches its shape"))
        }

        /// A zero-copy array view; `None` when the data is not aligned for `T`
        /// (never the case for tensors read from a bundle) or `T` is `bool`.
        pub fn array_view<T: Element>(&self) -> Result<Option<ArrayViewD<'_, T>>, FormatError> {
            Ok(self
                .view::<T>()?
                .map(|v| ArrayViewD::from_shape(IxDyn(&self.shape), v).expect("tensor length matches its shape")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuted_moves_elements_to_their_new_positions() {
        // x[i, j, k] = 100 i + 10 j + k, shape [2, 3, 2]; y = x.transpose(2, 0, 1): y[k, i, j] = x[i, j, k].
        let x: Vec<i32> =
            (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..2).map(move |k| 100 * i + 10 * j + k))).collect();
        let t = Tensor::from_vec(vec![2, 3, 2], x).unwrap();
        let y = t.permuted(&[2, 0, 1]).unwrap();
        assert_eq!(y.shape(), [2, 2, 3]);
        assert_eq!(y.to_vec::<i32>().unwrap(), [0, 10, 20, 100, 110, 120, 1, 11, 21, 101, 111, 121]);
        assert!(matches!(t.permuted(&[0, 0, 1]), Err(FormatError::InvalidPermutation { .. })));
        assert!(matches!(t.permuted(&[0, 1]), Err(FormatError::InvalidPermutation { .. })));
    }
}
