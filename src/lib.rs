//! nnbundle: self-describing neural network bundles.
//!
//! A `.nnb` file is a zip archive holding a declarative layer graph (YAML)
//! and SHA-256-hashed weights (`.npy` entries). This facade re-exports the
//! pieces most users need; the crates behind it each do one job:
//!
//! - [`format`](mod@crate::format): dtypes, tensors, the manifest, limits, YAML, digests;
//! - [`graph`](mod@crate::graph): the layer graph, its op vocabulary, validation and shape inference;
//! - [`container`](mod@crate::container): the zip layout, reading, verifying and saving bundles;
//! - [`runtime`](mod@crate::runtime): rebuilding models from bundles, running them, building them in code;
//! - [`onnx`](mod@crate::onnx): ONNX import and export;
//! - [`signing`](mod@crate::signing): OpenSSF Model Signing signatures in and beside bundles.
//!
//! ```
//! use nnbundle::{Tensor, load_tensor, save_tensor};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("x.nnb");
//! let x = Tensor::from_vec(vec![4], vec![0i64, 1, 2, 3]).unwrap();
//! save_tensor(&path, &x).unwrap();
//! assert_eq!(load_tensor(&path).unwrap(), x);
//! ```
#![deny(missing_docs)]

pub use nnbundle_container::{
    self as container, Bundle, BundleWriter, Chunking, ContainerError, OpenOptions, TensorInfo, Verify, load_tensor,
    load_tensors, save_tensor, save_tensors,
};
pub use nnbundle_format::{self as format, DType, Element, Manifest, MetaValue, Sha256Digest, Tensor, bf16, f16};
pub use nnbundle_graph as graph;
pub use nnbundle_onnx as onnx;
pub use nnbundle_runtime::{
    self as runtime, Layer, LoadOptions, LoadReport, Model, ModelBuilder, RuntimeError, Sequential, Value, extract,
};
pub use nnbundle_signing as signing;

/// The README's code, compiled and run as a doctest so it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
