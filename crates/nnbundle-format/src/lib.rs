//! Format types of nnbundle: the vocabulary every other crate speaks.
//!
//! This crate does no I/O. It defines dtypes, tensors as little-endian bytes
//! with a shape, the manifest that describes a bundle, typed metadata, the
//! limits every reader enforces, the one module that reads and writes YAML,
//! and the canonical JSON form that digests are computed over.
//!
//! ```
//! use nnbundle_format::{DType, Tensor};
//!
//! let t = Tensor::from_vec(vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
//! assert_eq!(t.dtype(), DType::F32);
//! assert_eq!(t.nbytes(), 16);
//! assert_eq!(t.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
//! ```
#![deny(missing_docs)]

mod buffer;
pub mod canonical;
mod digest;
mod dtype;
mod element;
mod error;
pub mod limits;
mod manifest;
mod metadata;
pub mod names;
mod tensor;
pub mod yaml;

pub use buffer::{Buffer, ByteOwner};
pub use digest::Sha256Digest;
pub use dtype::DType;
pub use element::Element;
pub use error::FormatError;
pub use half::{bf16, f16};
pub use manifest::{
    ChunkDigest, FormatVersion, GRAPH_ENTRY, GraphRecord, MANIFEST_ENTRY, Manifest, SIGNATURE_ENTRY_PREFIX,
    SIGNATURE_ENTRY_SUFFIX, SampleRecord, ShardRecord, TENSOR_ENTRY_PREFIX, TENSOR_ENTRY_SUFFIX, TensorDigest,
    TensorRecord, check_shard_file_name, manifest_schema, signature_entry_name, signature_name, tensor_entry_name,
};
pub use metadata::MetaValue;
pub use tensor::{Tensor, byte_size};
