//! Errors of the container layer. Every variant names the entry or tensor at fault.

use std::path::PathBuf;

use nnbundle_format::names::keyed;
use nnbundle_format::{FormatError, Sha256Digest};

/// What went wrong while reading or writing a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    /// A file-system operation failed.
    #[error("{op} `{}`: {source}", path.display())]
    Io {
        /// What was being done (`open`, `write`, `rename`, ...).
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing an entry of a bundle failed in the file system (full disk, quota, I/O error).
    #[error("write `{}` (entry `{entry}`): {source}", path.display())]
    WriteFailed {
        /// The bundle being written.
        path: PathBuf,
        /// The entry being written when it failed.
        entry: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a readable zip archive.
    #[error("not a bundle: {reason}")]
    NotAZip {
        /// Why the zip structure could not be read.
        reason: String,
    },
    /// The zip library could not read the archive's structure.
    #[error("not a bundle: {source}")]
    Zip {
        /// The zip library's error.
        #[source]
        source: zip::result::ZipError,
    },
    /// A zip entry that breaks the container rules.
    #[error("entry `{entry}`: {reason}")]
    BadEntry {
        /// The entry name as stored (lossily decoded).
        entry: String,
        /// The rule it breaks.
        reason: String,
    },
    /// An entry the manifest or the spec requires is absent.
    #[error("entry `{entry}` is missing: {reason}")]
    MissingEntry {
        /// The expected entry name.
        entry: String,
        /// Why it is required.
        reason: String,
    },
    /// The manifest or graph entry is invalid.
    #[error("entry `{entry}`: {source}")]
    Document {
        /// `manifest.yaml` or `graph.yaml`.
        entry: String,
        /// What is wrong in it.
        #[source]
        source: FormatError,
    },
    /// A tensor's `.npy` entry disagrees with the manifest or is malformed.
    #[error("tensor `{tensor}` (entry `{entry}`): {reason}")]
    BadTensorEntry {
        /// Tensor name.
        tensor: String,
        /// Its entry.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's data does not hash to the manifest's digest.
    #[error("tensor `{tensor}`: SHA-256 mismatch: manifest says {expected}, data hashes to {actual}")]
    HashMismatch {
        /// Tensor name.
        tensor: String,
        /// Digest in the manifest.
        expected: Sha256Digest,
        /// Digest of the stored bytes.
        actual: Sha256Digest,
    },
    /// A tensor's data does not hash to the manifest's chunk digest.
    #[error(
        "tensor `{tensor}`: chunk SHA-256 mismatch ({size}-byte chunks): manifest says {expected}, data hashes to {actual}"
    )]
    ChunkHashMismatch {
        /// Tensor name.
        tensor: String,
        /// Chunk size in bytes.
        size: u64,
        /// Chunk digest in the manifest.
        expected: Sha256Digest,
        /// Chunk digest of the stored bytes.
        actual: Sha256Digest,
    },
    /// Several tensors failed verification.
    #[error("{} tensors failed verification; first: {}", .0.len(), .0[0])]
    Verification(Vec<ContainerError>),
    /// A tensor that the bundle does not have.
    #[error("no tensor named `{name}` in the bundle")]
    UnknownTensor {
        /// The requested name.
        name: String,
    },
    /// The graph has problems (all of them are listed).
    #[error("graph: {} problem(s):\n{report}", report.errors().count())]
    Graph {
        /// Every problem found.
        report: nnbundle_graph::Report,
    },
    /// A tensor, name or value given to the writer is invalid.
    #[error("tensor `{tensor}`: {source}")]
    InvalidTensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// The writer was asked for something the format cannot hold.
    #[error("cannot write bundle: {reason}")]
    InvalidContent {
        /// What is wrong.
        reason: String,
    },
    /// A shard of an index bundle is missing, truncated, swapped or otherwise wrong.
    #[error("shard `{}`: {reason}", file.display())]
    Shard {
        /// The shard file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The bundle file changed (shrank) while open, found when reading it.
    #[error("`{}` changed while open, reading {what}: {reason}; reopen it", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// What was being read (a tensor and its entry).
        what: String,
        /// How it changed.
        reason: String,
    },
    /// Reading a remote object failed: it is missing, the store refused,
    /// the network failed, or it changed while open.
    #[error("`{url}`: {reason}")]
    Remote {
        /// The object's URL.
        url: String,
        /// What failed.
        reason: String,
        /// Whether the store says the object does not exist.
        not_found: bool,
    },
}

impl ContainerError {
    /// A stable, kebab-case code for reports (`hash-mismatch`, `bad-entry`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ContainerError::Io { .. } | ContainerError::WriteFailed { .. } | ContainerError::FileChanged { .. } => "io",
            ContainerError::Remote { .. } => "io",
            ContainerError::NotAZip { .. } | ContainerError::Zip { .. } => "not-a-zip",
            ContainerError::BadEntry { .. } => "bad-entry",
            ContainerError::MissingEntry { .. } => "missing-entry",
            ContainerError::Document { source: FormatError::UnsupportedVersion { .. }, .. } => "unsupported-version",
            ContainerError::Document { .. } => "invalid-manifest",
            ContainerError::BadTensorEntry { .. } => "bad-tensor-entry",
            ContainerError::HashMismatch { .. }
            | ContainerError::ChunkHashMismatch { .. }
            | ContainerError::Verification(_) => "hash-mismatch",
            ContainerError::UnknownTensor { .. } => "unknown-tensor",
            ContainerError::Graph { .. } => "invalid-graph",
            ContainerError::InvalidTensor { .. } => "invalid-tensor",
            ContainerError::InvalidContent { .. } => "invalid-content",
            ContainerError::Shard { .. } => "bad-shard",
        }
    }

    /// Where the problem is: the file, entry or tensor it names, when it names one.
    pub fn location(&self) -> Option<String> {
        match self {
            ContainerError::Io { path, .. }
            | ContainerError::WriteFailed { path, .. }
            | ContainerError::FileChanged { path, .. }
            | ContainerError::Shard { file: path, .. } => Some(path.display().to_string()),
            ContainerError::Remote { url, .. } => Some(url.clone()),
            ContainerError::BadEntry { entry, .. }
            | ContainerError::MissingEntry { entry, .. }
            | ContainerError::Document { entry, .. } => Some(entry.clone()),
            ContainerError::BadTensorEntry { entry, .. } => Some(entry.clone()),
            ContainerError::HashMismatch { tensor, .. } | ContainerError::InvalidTensor { tensor, .. } => {
                Some(keyed("tensors", tensor))
            }
            ContainerError::ChunkHashMismatch { tensor, .. } => Some(format!("{}.chunks", keyed("tensors", tensor))),
            ContainerError::UnknownTensor { name } => Some(keyed("tensors", name)),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ContainerError::Io { op, path: path.into(), source }
    }

    pub(crate) fn zip(source: zip::result::ZipError) -> Self {
        ContainerError::Zip { source }
    }

    pub(crate) fn entry(entry: impl Into<String>, reason: impl Into<String>) -> Self {
        ContainerError::BadEntry { entry: entry.into(), reason: reason.into() }
    }
}

/// Result type of this crate.
pub type Result<T, E = ContainerError> = std::result::Result<T, E>;
