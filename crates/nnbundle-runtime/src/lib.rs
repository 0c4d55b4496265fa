//! The nnbundle runtime: rebuild a model from a bundle and run it.
//!
//! - [`Model::load`] opens a bundle, verifies every hash, checks the graph
//!   against the weights and plans the execution once; [`Model::run`] then
//!   computes outputs from named inputs (any batch size the graph's symbols allow).
//! - [`Sequential`] and [`ModelBuilder`] define models in code, with
//!   PyTorch's default initialisation from a seed, and [`Model::save`] writes them.
//! - [`Model::load_state_dict`] and [`extract`] reuse trained parameters.
//!
//! ```
//! use ndarray::ArrayD;
//! use nnbundle_runtime::{Layer, Model, Sequential, Value};
//! use nnbundle_format::DType;
//!
//! let net = Sequential::new("X", DType::F32, &["batch".into(), 20u64.into()])
//!     .add("hidden", Layer::linear(20, 256))
//!     .add("relu", Layer::relu())
//!     .add("output", Layer::linear(256, 10))
//!     .build(42)
//!     .unwrap();
//! let x = ArrayD::<f32>::ones(ndarray::IxDyn(&[2, 20]));
//! let y = net.forward(x).unwrap();
//! assert_eq!(y.shape(), [2, 10]);
//!
//! let dir = tempfile::tempdir().unwrap();
//! net.save(dir.path().join("mlp.nnb")).unwrap();
//! let clone = Model::load(dir.path().join("mlp.nnb")).unwrap();
//! let x = ArrayD::<f32>::ones(ndarray::IxDyn(&[2, 20]));
//! assert_eq!(clone.forward(x).unwrap(), y);
//! # let _ = Value::from(ArrayD::<f32>::zeros(ndarray::IxDyn(&[1])));
//! ```
#![deny(missing_docs)]

mod builder;
mod error;
mod init;
mod linalg;
mod model;
mod ops;
mod plan;
mod pool;
mod reuse;
mod validate;
mod value;

pub use builder::{Layer, ModelBuilder, Sequential};
pub use error::{Result, RuntimeError};
pub use model::Model;
pub use ops::supports;
pub use reuse::{LoadOptions, LoadReport, Mismatch, extract};
pub use validate::{
    Check, Finding, FindingCode, Status, ValidateOptions, ValidationReport, report_schema, validate, validate_opened,
    validate_reporting,
};
pub use value::Value;
