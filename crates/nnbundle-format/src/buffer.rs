//! Shared, immutable byte storage for tensor data.
//!
//! A [`Buffer`] is a cheap-to-clone view of bytes owned elsewhere: a typed
//! `Vec` handed over without copying, or a memory-mapped bundle file. Typed
//! views of it are zero-copy when the bytes are suitably aligned.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// Something that owns bytes and can lend them out for as long as it lives.
pub trait ByteOwner: Send + Sync + 'static {
    /// The owned bytes.
    fn bytes(&self) -> &[u8];
}

struct PodVec<T>(Vec<T>);

impl<T: bytemuck::Pod + Send + Sync> ByteOwner for PodVec<T> {
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Immutable bytes, shared by reference counting.
#[derive(Clone)]
pub struct Buffer {
    owner: Arc<dyn ByteOwner>,
    range: Range<usize>,
}

impl Buffer {
    /// Takes ownership of a vector of plain values without copying it.
    pub fn from_vec<T: bytemuck::Pod + Send + Sync>(values: Vec<T>) -> Self {
        let len = std::mem::size_of_val(values.as_slice());
        Buffer { owner: Arc::new(PodVec(values)), range: 0..len }
    }

    /// A view of `range` within bytes owned by `owner`.
    ///
    /// Returns `None` when the range does not fit in the owner's bytes.
    pub fn from_owner(owner: Arc<dyn ByteOwner>, range: Range<usize>) -> Option<Self> {
        let len = owner.bytes().len();
        (range.start <= range.end && range.end <= len).then_some(Buffer { owner, range })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.owner.bytes()[self.range.clone()]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}

impl From<Vec<u8>> for Buffer {
    fn from(v: Vec<u8>) -> Self {
        Buffer::from_vec(v)
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer({} bytes)", self.len())
    }
}

impl PartialEq for Buffer {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
