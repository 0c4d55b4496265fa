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

mod bundle;
mod export;
mod import;
pub mod proto;
mod tensor;

use std::collections::BTreeMap;
use std::path::Path;

pub use bundle::{BundleExportError, ONNX_NAMES_KEY, export_bundle, save_model};
pub use export::{EXPORT_OPSET, ExportError, ExportOptions, ExportSupport, export, export_support, export_with};
pub use import::table::IMPORT_GAPS;
pub use import::{ImportOptions, Imported, SUPPORTED_OPSETS, graph_name, import_model, import_model_with};
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
    /// Nodes outside the vocabulary, or using features it cannot express.
    #[error("{}", unsupported_report(ops, reasons))]
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

/// Nodes listed per op type in an import error.
const NODES_SHOWN: usize = 3;
/// Reasons listed in an import error.
const REASONS_SHOWN: usize = 12;

/// The nearest thing the vocabulary offers for an ONNX op it lacks.
fn alternative(op: &str) -> Option<&'static str> {
    Some(match op {
        "Einsum" => "re-export the contraction as MatMul (with Transpose/Reshape)",
        "Mean" => "Add the inputs and Mul by 1/n",
        "Loop" | "Scan" => "unroll the loop at export time (fixed trip count)",
        "If" => "pin the input the condition depends on with `--input-value NAME=VALUE` so the branch folds",
        "NonMaxSuppression" | "TopK" => "cut the graph before post-processing with `--outputs`",
        _ => return None,
    })
}

/// One line per op type that failed (count, a few nodes, an alternative
/// when there is one), then one line per node's reason, capped.
fn unsupported_report(ops: &BTreeMap<String, Vec<String>>, reasons: &[String]) -> String {
    use std::fmt::Write;
    let total: usize = ops.values().map(Vec::len).sum();
    let mut out = format!("cannot import {total} node(s) of {} op type(s):", ops.len());
    for (op, nodes) in ops {
        let shown: Vec<&str> = nodes.iter().take(NODES_SHOWN).map(String::as_str).collect();
        let more = nodes.len().saturating_sub(NODES_SHOWN);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        let _ = write!(out, "\n  {op}: {} node(s): {}{more}", nodes.len(), shown.join(", "));
        if let Some(hint) = alternative(op) {
            let _ = write!(out, "; instead: {hint}");
        }
    }
    for reason in reasons.iter().take(REASONS_SHOWN) {
        let _ = write!(out, "\n  {reason}");
    }
    if reasons.len() > REASONS_SHOWN {
        let _ = write!(out, "\n  ... and {} more", reasons.len() - REASONS_SHOWN);
    }
    out
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
    import_with(bytes, &ImportOptions::default())
}

/// Imports ONNX bytes with `options`.
pub fn import_with(bytes: &[u8], options: &ImportOptions) -> Result<Imported, ImportError> {
    let model = proto::ModelProto::decode(bytes).map_err(ImportError::Decode)?;
    import_model_with(&model, options)
}

/// Imports an ONNX file (self-contained: external data files are refused).
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    import_file_with(path, &ImportOptions::default())
}

/// Imports an ONNX file with `options`.
pub fn import_file_with(path: &Path, options: &ImportOptions) -> Result<Imported, ImportError> {
    let io = |source| ImportError::Io { path: path.display().to_string(), source };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_ONNX_BYTES {
        return Err(ImportError::TooLarge { size: len });
    }
    import_with(&std::fs::read(path).map_err(io)?, options)
}
