//! Errors of the format layer.

use crate::DType;

/// What went wrong while building, checking or parsing format-level values.
///
/// Variants carry what was expected and what was found; the container layer
/// adds the entry or tensor name in which the problem was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The data's length does not match the dtype and shape.
    #[error("data has {found} bytes, but dtype {dtype} with shape {shape:?} needs {expected}")]
    DataLength {
        /// Element type.
        dtype: DType,
        /// Declared shape.
        shape: Vec<u64>,
        /// Bytes the shape needs.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
    /// The shape's element or byte count overflows, or exceeds the tensor size limit.
    #[error("shape {shape:?} of dtype {dtype} is too large: more than {max} bytes (limit MAX_TENSOR_BYTES)")]
    TooLarge {
        /// Element type.
        dtype: DType,
        /// Declared shape.
        shape: Vec<u64>,
        /// The limit in bytes.
        max: u64,
    },
    /// The shape has more dimensions than the spec allows.
    #[error("shape {shape:?} has rank {rank}, above the limit of {max} (MAX_RANK)")]
    RankTooHigh {
        /// Declared shape.
        shape: Vec<u64>,
        /// Its rank.
        rank: usize,
        /// The limit.
        max: usize,
    },
    /// The tensor's dtype is not the one asked for.
    #[error("dtype mismatch: tensor is {found}, asked for {expected}")]
    DTypeMismatch {
        /// Requested dtype.
        expected: DType,
        /// Stored dtype.
        found: DType,
    },
    /// Bytes that are not a valid value of the dtype (a `bool` byte other than 0 or 1).
    #[error("data holds a byte that is not a valid {dtype} value")]
    InvalidValue {
        /// Element type.
        dtype: DType,
    },
    /// A tensor, group or metadata key name that breaks the naming rules.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// What kind of name (`tensor`, `group`, `metadata key`).
        kind: &'static str,
        /// The name.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A metadata value the format cannot hold.
    #[error("metadata `{path}`: {reason}")]
    InvalidMetadata {
        /// Path of the value (`key`, `key[2]`, `key.sub`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A YAML document that does not parse, or does not match the expected structure.
    #[error("{document}: {message}{}", location.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
    Yaml {
        /// Which document (`manifest.yaml`, `graph.yaml`, ...).
        document: String,
        /// What is wrong, with the YAML path where the parser knows it.
        message: String,
        /// Line and column, 1-based, where known.
        location: Option<(usize, usize)>,
    },
    /// The bundle was written by a format this reader cannot read.
    #[error("bundle format {found}, this reader supports up to {supported}: {hint}")]
    UnsupportedVersion {
        /// The bundle's `format_version`.
        found: String,
        /// The newest version this reader supports.
        supported: String,
        /// What the user should do.
        hint: &'static str,
    },
    /// An axis order that is not a permutation of a tensor's axes.
    #[error("perm {perm:?} is not a permutation of the axes of shape {shape:?}")]
    InvalidPermutation {
        /// The order asked for.
        perm: Vec<usize>,
        /// The tensor's shape.
        shape: Vec<u64>,
    },
    /// A manifest whose fields disagree with each other.
    #[error("manifest field `{field}`: {reason}")]
    Manifest {
        /// YAML path of the field (`tensors.hidden.weight.shape`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}
