//! ONNX import and export for nnbundle.
//!
//! [`import`] maps an ONNX model built from the vocabulary's counterparts
//! (Gemm, MatMul, Conv, pools, normalizations, Gather, shape ops,
//! elementwise ops, activations, softmaxes, Dropout) to a checked nnbundle
//! graph with its weights; anything outside the vocabulary is refused with
//! one error listing every unsupported op and the nodes using it.
//! [`export`] writes a bundle's graph and weights as ONNX (opset 17).
//!
//! The protobuf messages are declared in [`proto`] with `prost` derives, so
//! building needs no protobuf compiler.
#![deny(missing_docs)]

mod export;
mod import;
pub mod proto;
mod tensor;

use std::collections::BTreeMap;
use std::path::Path;

pub use export::{EXPORT_OPSET, ExportError, ExportSupport, export, export_support};
pub use import::table::IMPORT_GAPS;
pub use import::{Imported, SUPPORTED_OPSETS, import_model};
use nnbundle_graph::OpKind;
use prost::Message;

/// The ONNX op types (default domain) the importer translates, sorted.
pub fn supported_ops() -> Vec<&'static str> {
    let mut ops: Vec<&'static str> = import::table::translators().map(|t| t.onnx).collect();
    ops.sort_unstable();
    ops
}

/// The ONNX op types that import to `op` when a node fits it directly
/// (empty for the ops in [`IMPORT_GAPS`]).
pub fn import_sources(op: OpKind) -> Vec<&'static str> {
    import::table::translators().filter(|t| t.produces.contains(&op)).map(|t| t.onnx).collect()
}

/// Largest ONNX file read (protobuf's own limit is 2 GiB).
pub const MAX_ONNX_BYTES: u64 = 2 << 30;

/// Why an ONNX model cannot be imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be read.
    #[error("read `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model: {0}")]
    Decode(#[source] prost::DecodeError),
    /// The file is larger than an ONNX protobuf can be.
    #[error("{size} bytes, above protobuf's 2 GiB limit")]
    TooLarge {
        /// The file's size.
        size: u64,
    },
    /// The model has no graph.
    #[error("the ONNX model has no graph")]
    NoGraph,
    /// The default-domain opset is missing or outside what the importer reads.
    #[error("ONNX opset {}: the importer reads opsets 6 to 25 of the default domain", version.map_or("(none)".to_string(), |v| v.to_string()))]
    Opset {
        /// The model's opset, if it has one.
        version: Option<i64>,
    },
    /// A tensor that cannot be read.
    #[error("tensor `{name}`: {reason}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A graph input or output that cannot be imported.
    #[error("graph input or output `{name}` {reason}")]
    Input {
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Nodes outside the vocabulary, or using features opset 1 cannot express.
    #[error("cannot import: {}\n{}", ops.iter().map(|(op, nodes)| format!("{op} (used by {})", nodes.join(", "))).collect::<Vec<_>>().join("; "), reasons.join("\n"))]
    Unsupported {
        /// Each op that failed, with the nodes using it.
        ops: BTreeMap<String, Vec<String>>,
        /// One line per failed node saying why.
        reasons: Vec<String>,
    },
    /// The imported graph does not pass the graph checks.
    #[error("the imported graph is invalid:\n{0}")]
    Graph(nnbundle_graph::Report),
}

impl ImportError {
    /// A stable kebab-case code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::Io { .. } => "io",
            ImportError::Decode(_) | ImportError::TooLarge { .. } | ImportError::NoGraph => "not-onnx",
            ImportError::Opset { .. } => "unsupported-opset",
            ImportError::Tensor { .. } => "bad-tensor",
            ImportError::Input { .. } => "bad-input",
            ImportError::Unsupported { .. } => "unsupported-op",
            ImportError::Graph(_) => "invalid-graph",
        }
    }
}

/// Imports ONNX bytes.
pub fn import(bytes: &[u8]) -> Result<Imported, ImportError> {
    let model = proto::ModelProto::decode(bytes).map_err(ImportError::Decode)?;
    import_model(&model)
}

/// Imports an ONNX file (self-contained: external data files are refused).
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    let io = |source| ImportError::Io { path: path.display().to_string(), source };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_ONNX_BYTES {
        return Err(ImportError::TooLarge { size: len });
    }
    import(&std::fs::read(path).map_err(io)?)
}
