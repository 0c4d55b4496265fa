//! The nnbundle container: how a bundle's bytes are laid out and checked.
//!
//! A bundle is a zip archive whose entries are all stored (uncompressed):
//!
//! ```text
//! manifest.yaml           format version, tensor records (dtype, shape, SHA-256, group),
//!                         aliases, graph record, metadata
//! graph.yaml              the layer graph (optional)
//! tensors/<name>.npy      one numpy array per stored tensor; data 64-byte aligned
//! ```
//!
//! [`BundleWriter`] writes byte-reproducible bundles, atomically when saving
//! to a path; [`Bundle`] opens them (memory-mapped by default), checks the
//! container without reading tensor data, and verifies each tensor's SHA-256
//! when it is first read.
//!
//! ```
//! use nnbundle_container::{Bundle, BundleWriter};
//! use nnbundle_format::Tensor;
//!
//! let mut w = BundleWriter::new();
//! w.add_tensor("x", Tensor::from_vec(vec![4], vec![0i64, 1, 2, 3]).unwrap()).unwrap();
//! let bundle = Bundle::from_bytes(w.to_bytes().unwrap()).unwrap();
//! assert_eq!(bundle.tensor("x").unwrap().to_vec::<i64>().unwrap(), [0, 1, 2, 3]);
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

pub use nnbundle_format as format;
use nnbundle_format::Tensor;
pub use nnbundle_graph as graph;

mod atomic;
mod error;
mod mmap;
pub mod npy;
mod reader;
#[cfg(feature = "remote")]
mod remote;
mod shard;
mod signed;
mod source;
mod writer;

pub use atomic::{Durability, TEMP_SUFFIX, write_atomically, write_atomically_with, write_bytes_atomically};
pub use error::{ContainerError, Result};
pub use reader::{Archive, Bundle, NamedBytes, OpenOptions, TensorInfo, Verify};
#[cfg(feature = "remote")]
pub use remote::{TAIL_BYTES, is_url};
pub use shard::{plan_shards, shard_file_name, write_sharded};
pub use source::Backend;
pub use writer::{BundleWriter, Chunking};

/// The name [`save_tensor`] stores a lone tensor under.
pub const SINGLE_TENSOR_NAME: &str = "tensor";

/// Saves one tensor as a bundle (under the name [`SINGLE_TENSOR_NAME`]).
pub fn save_tensor(path: impl AsRef<Path>, tensor: &Tensor) -> Result<()> {
    let mut w = BundleWriter::new();
    w.add_tensor(SINGLE_TENSOR_NAME, tensor.clone())?;
    w.save(path).map(drop)
}

/// Loads the one tensor of a bundle, verifying its hash. Fails when the
/// bundle holds more or fewer than one tensor.
pub fn load_tensor(path: impl AsRef<Path>) -> Result<Tensor> {
    let bundle = Bundle::open(path)?;
    let infos = bundle.tensor_infos();
    match infos.as_slice() {
        [one] => bundle.tensor(one.name),
        _ => Err(ContainerError::InvalidContent {
            reason: format!("expected a bundle with one tensor, found {} (use load_tensors)", infos.len()),
        }),
    }
}

/// Saves named tensors (a dict of tensors, or a state dict with dotted names).
pub fn save_tensors<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>,
) -> Result<()> {
    let mut w = BundleWriter::new();
    for (name, tensor) in tensors {
        w.add_tensor(name.clone(), tensor.clone())?;
    }
    w.save(path).map(drop)
}

/// Loads every tensor of a bundle by name, all hashes checked in parallel.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    Bundle::open(path)?.load_all()
}

/// `items` as a parallel iterator for hashing: one task each, by descending
/// `size`, so the largest start first and the small ones fill the gaps and no
/// thread is left hashing a big tensor alone at the end.
fn largest_first<T: Send>(
    mut items: Vec<T>,
    size: impl Fn(&T) -> usize,
) -> impl rayon::iter::IndexedParallelIterator<Item = T> {
    use rayon::prelude::*;
    items.sort_by_key(|item| std::cmp::Reverse(size(item)));
    items.into_par_iter().with_max_len(1)
}

/// The chunk digest of `bytes` in `size`-byte chunks (spec section 5.1.1),
/// the chunks hashed in parallel.
fn chunk_digest(bytes: &[u8], size: u64) -> nnbundle_format::Sha256Digest {
    use rayon::prelude::*;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let digests: Vec<_> = bytes.par_chunks(size).with_max_len(1).map(nnbundle_format::Sha256Digest::of).collect();
    nnbundle_format::Sha256Digest::chunk_root(&digests)
}
