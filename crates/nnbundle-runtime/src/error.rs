//! Errors of the runtime.

use nnbundle_container::ContainerError;
use nnbundle_format::DType;
use nnbundle_graph::Report;

/// What went wrong while loading, building or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The bundle could not be read or verified.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The bundle has no graph to run.
    #[error("the bundle has no graph: it holds tensors only")]
    NoGraph,
    /// The graph or its weights have problems.
    #[error("the graph has {} problem(s):\n{report}", report.errors().count())]
    Graph {
        /// Every problem found.
        report: Report,
    },
    /// A run was given an input the graph does not declare.
    #[error("unknown input `{name}` (the graph's inputs are: {expected})")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The declared names.
        expected: String,
    },
    /// A declared input was not given.
    #[error("missing input `{name}`: expected {dtype} of shape {shape}")]
    MissingInput {
        /// The input's name.
        name: String,
        /// Its dtype.
        dtype: DType,
        /// Its declared shape.
        shape: String,
    },
    /// An input of the wrong dtype or shape.
    #[error("input `{name}`: expected {expected}, found {found}")]
    BadInput {
        /// The input's name.
        name: String,
        /// What the graph declares (`f32 [batch, 20]`).
        expected: String,
        /// What was given.
        found: String,
    },
    /// A node failed while running (an index out of range, say).
    #[error("node `{node}` ({op}): {message}")]
    Node {
        /// The node's name.
        node: String,
        /// Its op.
        op: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A builder or state-dict call that cannot be honoured.
    #[error("{0}")]
    Invalid(String),
}

/// Result type of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
