//! Errors of the runtime.

use nnbundle_container::ContainerError;
use nnbundle_format::DType;
use nnbundle_format::names::keyed;
use nnbundle_graph::Report;

use crate::reuse::LoadReport;

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
    /// A node reads a weight the model does not hold.
    #[error("node `{node}` reads weight `{name}`, which the model does not have")]
    MissingWeight {
        /// The node.
        node: String,
        /// The weight's full name (`hidden.weight`).
        name: String,
    },
    /// The graph uses an op this runtime has no kernel for.
    #[error("node `{node}`: this runtime has no kernel for op {op}")]
    NoKernel {
        /// The node.
        node: String,
        /// Its op.
        op: &'static str,
    },
    /// A call that needs a model with a given number of inputs or outputs.
    #[error("{call} needs a model with {expected} {what}(s); this one has {found}")]
    Arity {
        /// The call (`forward`).
        call: &'static str,
        /// `input` or `output`.
        what: &'static str,
        /// How many the call needs.
        expected: usize,
        /// How many the model has.
        found: usize,
    },
    /// A parameter that could not be initialised.
    #[error("parameter `{parameter}`: {reason}")]
    Init {
        /// The parameter's full name.
        parameter: String,
        /// Why.
        reason: String,
    },
    /// A strict state-dict load that did not match the model exactly.
    #[error("strict load_state_dict failed:\n{report}")]
    StrictLoad {
        /// What was loaded, missing, unexpected and mismatched.
        report: Box<LoadReport>,
    },
}

impl RuntimeError {
    /// A stable kebab-case code for the error (the container's codes for container errors).
    pub fn code(&self) -> &'static str {
        match self {
            RuntimeError::Container(e) => e.code(),
            RuntimeError::NoGraph => "no-graph",
            RuntimeError::Graph { .. } => "invalid-graph",
            RuntimeError::UnknownInput { .. } => "unknown-input",
            RuntimeError::MissingInput { .. } => "missing-input",
            RuntimeError::BadInput { .. } => "bad-input",
            RuntimeError::Node { .. } => "node-failed",
            RuntimeError::MissingWeight { .. } => "missing-parameter",
            RuntimeError::NoKernel { .. } => "no-kernel",
            RuntimeError::Arity { .. } => "arity",
            RuntimeError::Init { .. } => "init",
            RuntimeError::StrictLoad { .. } => "strict-load",
        }
    }

    /// Where the error is: an entry or tensor for container errors, else the
    /// input, node or parameter concerned.
    pub fn location(&self) -> Option<String> {
        match self {
            RuntimeError::Container(e) => e.location(),
            RuntimeError::UnknownInput { name, .. }
            | RuntimeError::MissingInput { name, .. }
            | RuntimeError::BadInput { name, .. } => Some(keyed("inputs", name)),
            RuntimeError::Node { node, .. } | RuntimeError::NoKernel { node, .. } => Some(keyed("nodes", node)),
            RuntimeError::MissingWeight { name, .. } => Some(keyed("tensors", name)),
            RuntimeError::Init { parameter, .. } => Some(keyed("tensors", parameter)),
            _ => None,
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
