//! Limits every reader enforces (spec section "Limits").
//!
//! They bound what a hostile file can make a reader do before any data is
//! trusted. A writer refuses to produce a bundle that breaks them.

/// Largest `manifest.yaml` entry, in bytes.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Largest `graph.yaml` entry, in bytes.
pub const MAX_GRAPH_BYTES: u64 = 64 << 20;
/// Most tensors (stored entries plus aliases) one bundle may list.
pub const MAX_TENSORS: usize = 1 << 20;
/// Most zip entries in one bundle: every tensor, the manifest, the graph and
/// the signatures.
pub const MAX_ENTRIES: usize = MAX_TENSORS + 2 + MAX_SIGNATURES;
/// Most signature entries (`signatures/<name>.sigstore.json`, format 1.2) in one bundle.
pub const MAX_SIGNATURES: usize = 16;
/// Largest signature entry, in bytes (its statement lists every other entry).
pub const MAX_SIGNATURE_BYTES: u64 = 256 << 20;
/// Most shards of one index bundle (format 1.2).
pub const MAX_SHARDS: usize = 1 << 16;
/// Longest signature name, in bytes.
pub const MAX_SIGNATURE_NAME_BYTES: usize = 64;
/// Highest tensor rank.
pub const MAX_RANK: usize = 16;
/// Largest byte size of one tensor's data (2^48 bytes, 256 TiB).
pub const MAX_TENSOR_BYTES: u64 = 1 << 48;
/// Longest tensor, group or metadata key name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// Longest `.npy` header (magic to the end of the padded dict), in bytes.
pub const MAX_NPY_HEADER_BYTES: usize = 4096;
/// Deepest nesting of metadata lists and maps.
pub const MAX_METADATA_DEPTH: usize = 32;
/// Smallest chunk of a tensor's chunk digest (format 1.1), in bytes.
pub const MIN_CHUNK_BYTES: u64 = 1 << 20;
/// Largest chunk of a tensor's chunk digest (format 1.1), in bytes.
pub const MAX_CHUNK_BYTES: u64 = 1 << 30;
/// Alignment, in bytes, of every tensor's data within the bundle file.
pub const DATA_ALIGNMENT: u64 = 64;
/// Most nodes in one graph.
pub const MAX_NODES: usize = 1 << 20;
/// Most inputs of one node, and most graph inputs and outputs.
pub const MAX_NODE_INPUTS: usize = 1 << 16;
