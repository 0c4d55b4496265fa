//! The bundle manifest (`manifest.yaml`): format version, tensor records,
//! aliases (weight tying), the graph record and metadata.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::{MAX_CHUNK_BYTES, MAX_MANIFEST_BYTES, MAX_TENSORS, MIN_CHUNK_BYTES};
use crate::names::{PARAMS_GROUP, check_group_name, check_metadata_key, check_tensor_name};
use crate::{DType, FormatError, MetaValue, Sha256Digest, canonical, tensor::byte_size, yaml};

/// Name of the manifest entry.
pub const MANIFEST_ENTRY: &str = "manifest.yaml";
/// Name of the graph entry.
pub const GRAPH_ENTRY: &str = "graph.yaml";
/// Prefix of tensor entries: tensor `t` is stored at `tensors/t.npy`.
pub const TENSOR_ENTRY_PREFIX: &str = "tensors/";
/// Suffix of tensor entries.
pub const TENSOR_ENTRY_SUFFIX: &str = ".npy";

/// Prefix of signature entries (format 1.2): signature `s` is stored at
/// `signatures/s.sigstore.json`.
pub const SIGNATURE_ENTRY_PREFIX: &str = "signatures/";
/// Suffix of signature entries.
pub const SIGNATURE_ENTRY_SUFFIX: &str = ".sigstore.json";

/// The entry name that stores signature `name`.
pub fn signature_entry_name(name: &str) -> String {
    format!("{SIGNATURE_ENTRY_PREFIX}{name}{SIGNATURE_ENTRY_SUFFIX}")
}

/// The signature name of a `signatures/<name>.sigstore.json` entry name, if it is one.
pub fn signature_name(entry: &str) -> Option<&str> {
    entry.strip_prefix(SIGNATURE_ENTRY_PREFIX)?.strip_suffix(SIGNATURE_ENTRY_SUFFIX)
}

/// The entry name that stores tensor `name`.
pub fn tensor_entry_name(name: &str) -> String {
    format!("{TENSOR_ENTRY_PREFIX}{name}{TENSOR_ENTRY_SUFFIX}")
}

/// A `MAJOR.MINOR` format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FormatVersion {
    /// Incompatible changes.
    pub major: u32,
    /// Backward-compatible additions.
    pub minor: u32,
}

impl FormatVersion {
    /// The newest version this library reads and writes.
    pub const CURRENT: FormatVersion = FormatVersion::V1_2;
    /// The first version: everything but chunk digests.
    pub const V1_0: FormatVersion = FormatVersion { major: 1, minor: 0 };
    /// The version that added chunk digests.
    pub const V1_1: FormatVersion = FormatVersion { major: 1, minor: 1 };
    /// The version that added signature entries. Readers of 1.2 accept them
    /// in a bundle of any 1.x version: signing never changes the manifest.
    pub const V1_2: FormatVersion = FormatVersion { major: 1, minor: 2 };
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for FormatVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("format_version `{s}` is not of the form MAJOR.MINOR (like \"1.0\")");
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let num = |p: &str| {
            (!p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u32>().ok())
                .flatten()
        };
        Ok(FormatVersion { major: num(major).ok_or_else(bad)?, minor: num(minor).ok_or_else(bad)? })
    }
}

impl Serialize for FormatVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FormatVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for FormatVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FormatVersion".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "oneOf": [
                {"type": "string", "pattern": "^[0-9]{1,9}\\.[0-9]{1,9}$"},
                {"type": "number", "description": "a plain YAML scalar such as 1.0, which readers read by its text"}
            ],
            "description": "Format version MAJOR.MINOR, written as a string (\"1.0\")."
        })
    }
}

/// What the manifest says about one stored tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TensorRecord {
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first; `[]` for a scalar.
    pub shape: Vec<u64>,
    /// SHA-256 of the tensor's data bytes (little-endian, C order, no header).
    /// A record has this, `chunks`, or both; without it (format 1.2) the chunk
    /// digest is the tensor's one digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Sha256Digest")]
    pub sha256: Option<Sha256Digest>,
    /// The group the tensor belongs to: `params` (the model's parameters,
    /// owned by the graph when there is one) or any other group name, such as
    /// `optimizer` or `buffers`, for tensors that sit beside the model.
    #[serde(default = "default_group")]
    pub group: String,
    /// A digest of the same bytes taken in chunks, so that it can be checked
    /// on many cores at once (format 1.1; the only digest from format 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "ChunkDigest")]
    pub chunks: Option<ChunkDigest>,
}

/// The chunk digest of a tensor's data (spec section 5.1.1): the data split
/// into pieces of `size` bytes (the last one may be shorter), each hashed,
/// and the digests hashed together in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkDigest {
    /// Bytes per chunk: a power of two from 2^20 to 2^30.
    #[schemars(range(min = MIN_CHUNK_BYTES, max = MAX_CHUNK_BYTES))]
    pub size: u64,
    /// SHA-256 of the chunks' SHA-256 digests, concatenated in order.
    pub sha256: Sha256Digest,
}

fn default_group() -> String {
    PARAMS_GROUP.to_owned()
}

impl TensorRecord {
    /// Bytes of data the record declares, overflow-checked.
    pub fn byte_size(&self) -> Result<u64, FormatError> {
        byte_size(self.dtype, &self.shape)
    }

    /// The digest that names the data, for display: the SHA-256 when there
    /// is one, else the chunk digest (`None` only for a record that fails
    /// [`Manifest::check`]).
    pub fn digest(&self) -> Option<TensorDigest> {
        match (self.sha256, self.chunks) {
            (Some(sha256), _) => Some(TensorDigest::Sha256(sha256)),
            (None, Some(chunks)) => Some(TensorDigest::Chunks(chunks)),
            (None, None) => None,
        }
    }

    /// Whether two records' digests show equal data without reading it:
    /// `Some(true)` or `Some(false)` when they share a digest kind (the same
    /// chunk size, for chunk digests), `None` when only the data can tell.
    pub fn same_data(&self, other: &TensorRecord) -> Option<bool> {
        if let (Some(a), Some(b)) = (self.sha256, other.sha256) {
            return Some(a == b);
        }
        match (self.chunks, other.chunks) {
            (Some(a), Some(b)) if a.size == b.size => Some(a.sha256 == b.sha256),
            _ => None,
        }
    }
}

/// The digest that names a tensor's data (see [`TensorRecord::digest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorDigest {
    /// SHA-256 of the data.
    Sha256(Sha256Digest),
    /// The chunk digest.
    Chunks(ChunkDigest),
}

impl TensorDigest {
    /// The first `n` hex digits, `chunks:` first for a chunk digest.
    pub fn short(&self, n: usize) -> String {
        match self {
            TensorDigest::Sha256(d) => d.short(n),
            TensorDigest::Chunks(c) => format!("chunks:{}", c.sha256.short(n)),
        }
    }
}

impl std::fmt::Display for TensorDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TensorDigest::Sha256(d) => write!(f, "{d}"),
            TensorDigest::Chunks(c) => write!(f, "chunks({} bytes):{}", c.size, c.sha256),
        }
    }
}

/// What the manifest says about the graph entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphRecord {
    /// Version of the op vocabulary the graph uses.
    pub opset: u32,
    /// SHA-256 of the `graph.yaml` entry's bytes.
    pub sha256: Sha256Digest,
    /// Semantic architecture digest: SHA-256 of the graph's canonical form,
    /// independent of YAML formatting, key order and shorthand.
    pub architecture_digest: Sha256Digest,
}

/// A sample: inputs, the outputs the model computed from them when the
/// bundle was made, and the tolerance a re-run must meet. The tensors are
/// stored in the bundle (group `samples`) and named here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleRecord {
    /// Graph input name to stored tensor name.
    pub inputs: BTreeMap<String, String>,
    /// Graph output name to stored tensor name.
    pub outputs: BTreeMap<String, String>,
    /// Relative tolerance: `|got - want| <= atol + rtol * |want|` elementwise.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

/// The contents of `manifest.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Version of the bundle format: `"1.0"`, or `"1.1"` when a tensor has a chunk digest.
    pub format_version: FormatVersion,
    /// The layer graph, when the bundle has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "GraphRecord")]
    pub graph: Option<GraphRecord>,
    /// Every stored tensor, by name.
    pub tensors: BTreeMap<String, TensorRecord>,
    /// Tied weights: each key is another name for the stored tensor it maps to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
    /// Free-form typed metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, MetaValue>,
    /// Sample inputs with expected outputs, for self-checking bundles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SampleRecord>,
    /// For an index bundle (format 1.2): the shard files that hold every
    /// tensor, in order. An index stores no tensor entries itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRecord>,
}

/// One shard of an index bundle: a standalone bundle in the index's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardRecord {
    /// The shard's file name, in the index's folder (no folders, no `..`).
    pub file: String,
    /// The shard file's size in bytes.
    pub size: u64,
    /// The shard's bundle digest.
    pub bundle_digest: Sha256Digest,
    /// The stored tensors it holds, sorted.
    pub tensors: Vec<String>,
}

/// Checks a shard file name: 1 to 255 bytes of ASCII letters, digits, `_`,
/// `-` and `.`, not starting with `.`, ending in `.nnb`: a name in the
/// index's own folder, never a path.
pub fn check_shard_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("must be 1 to 255 bytes long".into());
    }
    if name.starts_with('.') || !name.ends_with(".nnb") || name.len() == 4 {
        return Err("must not start with `.` and must end in `.nnb`".into());
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err("only ASCII letters, digits, `_`, `-` and `.`: a file in the index's folder, not a path".into());
    }
    Ok(())
}

#[derive(Deserialize)]
struct VersionProbe {
    format_version: Option<String>,
}

impl Manifest {
    /// An empty manifest of version 1.0 (see [`Manifest::required_version`]).
    pub fn new() -> Self {
        Manifest {
            format_version: FormatVersion::V1_0,
            graph: None,
            tensors: BTreeMap::new(),
            aliases: BTreeMap::new(),
            metadata: BTreeMap::new(),
            samples: Vec::new(),
            shards: Vec::new(),
        }
    }

    /// Parses and checks manifest bytes, applying the reader contract: a newer
    /// major version is refused up front; a newer minor version is read, and
    /// fields this reader does not know are reported with an upgrade hint.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, FormatError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(FormatError::Manifest {
                field: "<document>".into(),
                reason: format!("{} bytes, above the limit of {MAX_MANIFEST_BYTES} (MAX_MANIFEST_BYTES)", bytes.len()),
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| FormatError::Yaml {
            document: MANIFEST_ENTRY.to_owned(),
            message: format!("not valid UTF-8: {e}"),
            location: None,
        })?;
        let mut document = yaml::Document::parse(MANIFEST_ENTRY, text)?;
        document.read_as_text("format_version");
        let probe: VersionProbe = document.decode()?;
        let raw = probe.format_version.ok_or_else(|| FormatError::Manifest {
            field: "format_version".into(),
            reason: "missing: every manifest starts with format_version".into(),
        })?;
        let version: FormatVersion =
            raw.parse().map_err(|reason| FormatError::Manifest { field: "format_version".into(), reason })?;
        let current = FormatVersion::CURRENT;
        if version.major != current.major {
            return Err(FormatError::UnsupportedVersion {
                found: version.to_string(),
                supported: format!("{}.x", current.major),
                hint: if version.major > current.major {
                    "upgrade nnbundle to read this bundle"
                } else {
                    "this major version was never released; the file is not a valid bundle"
                },
            });
        }
        let manifest: Manifest = document.decode().map_err(|e| match e {
            FormatError::Yaml { message, location, document } if version.minor > current.minor => FormatError::Yaml {
                message: format!(
                    "{message} (the bundle declares format {version}, this reader supports up to {current}: upgrade nnbundle)"
                ),
                location,
                document,
            },
            other => other,
        })?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks names, shapes, sizes, aliases and metadata against the spec's rules.
    pub fn check(&self) -> Result<(), FormatError> {
        let count = self.tensors.len() + self.aliases.len();
        if count > MAX_TENSORS {
            return Err(FormatError::Manifest {
                field: "tensors".into(),
                reason: format!("{count} tensors and aliases, above the limit of {MAX_TENSORS} (MAX_TENSORS)"),
            });
        }
        for (name, record) in &self.tensors {
            check_tensor_name(name)?;
            check_group_name(&record.group)?;
            record.byte_size().map_err(|e| FormatError::Manifest {
                field: format!("{}.shape", crate::names::keyed("tensors", name)),
                reason: e.to_string(),
            })?;
            if record.sha256.is_none() {
                let field = crate::names::keyed("tensors", name);
                if record.chunks.is_none() {
                    return Err(FormatError::Manifest {
                        field,
                        reason: "has no digest: a tensor record has `sha256`, `chunks` or both".into(),
                    });
                }
                if self.format_version < FormatVersion::V1_2 {
                    return Err(FormatError::Manifest {
                        field: format!("{field}.sha256"),
                        reason: format!(
                            "missing: a record with `chunks` alone needs format_version 1.2 or later; the manifest declares {}",
                            self.format_version
                        ),
                    });
                }
            }
            if let Some(chunks) = &record.chunks {
                let field = || format!("{}.chunks", crate::names::keyed("tensors", name));
                if self.format_version < FormatVersion::V1_1 {
                    return Err(FormatError::Manifest {
                        field: field(),
                        reason: format!(
                            "chunk digests need format_version 1.1 or later; the manifest declares {}",
                            self.format_version
                        ),
                    });
                }
                let size = chunks.size;
                if !size.is_power_of_two() || !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&size) {
                    return Err(FormatError::Manifest {
                        field: format!("{}.size", field()),
                        reason: format!("{size} is not a power of two from 2^20 to 2^30"),
                    });
                }
            }
        }
        self.check_shards()?;
        for (alias, target) in &self.aliases {
            check_tensor_name(alias)?;
            if self.tensors.contains_key(alias) {
                return Err(FormatError::Manifest {
                    field: format!("aliases.{alias}"),
                    reason: "an alias must not also be a stored tensor".into(),
                });
            }
            if !self.tensors.contains_key(target) {
                return Err(FormatError::Manifest {
                    field: format!("aliases.{alias}"),
                    reason: format!("points to `{target}`, which is not a stored tensor"),
                });
            }
        }
        for (key, value) in &self.metadata {
            check_metadata_key(key)?;
            value.check(key)?;
        }
        if !self.samples.is_empty() && self.graph.is_none() {
            return Err(FormatError::Manifest {
                field: "samples".into(),
                reason: "samples need a graph to run, and the bundle has none".into(),
            });
        }
        for (i, sample) in self.samples.iter().enumerate() {
            for (kind, map) in [("inputs", &sample.inputs), ("outputs", &sample.outputs)] {
                for (value, tensor) in map {
                    if self.resolve(tensor).is_none() {
                        return Err(FormatError::Manifest {
                            field: format!("samples[{i}].{kind}.{value}"),
                            reason: format!("names tensor `{tensor}`, which the bundle does not have"),
                        });
                    }
                }
            }
            for (name, tol) in [("rtol", sample.rtol), ("atol", sample.atol)] {
                if !(tol.is_finite() && tol >= 0.0) {
                    return Err(FormatError::Manifest {
                        field: format!("samples[{i}].{name}"),
                        reason: format!("must be a finite number >= 0, found {tol}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The shard table's rules: format 1.2, at most `MAX_SHARDS` shards, file
    /// names in the index's folder and each once, and every stored tensor in
    /// exactly one shard.
    fn check_shards(&self) -> Result<(), FormatError> {
        if self.shards.is_empty() {
            return Ok(());
        }
        let bad = |field: String, reason: String| Err(FormatError::Manifest { field, reason });
        if self.format_version < FormatVersion::V1_2 {
            return bad(
                "shards".into(),
                format!("shards need format_version 1.2; the manifest declares {}", self.format_version),
            );
        }
        if self.shards.len() > crate::limits::MAX_SHARDS {
            return bad(
                "shards".into(),
                format!("{} shards, above the limit of {} (MAX_SHARDS)", self.shards.len(), crate::limits::MAX_SHARDS),
            );
        }
        let mut files = std::collections::BTreeSet::new();
        let mut holder: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, shard) in self.shards.iter().enumerate() {
            if let Err(reason) = check_shard_file_name(&shard.file) {
                return bad(format!("shards[{i}].file"), format!("`{}`: {reason}", shard.file));
            }
            if !files.insert(shard.file.as_str()) {
                return bad(format!("shards[{i}].file"), format!("`{}` is listed twice", shard.file));
            }
            if !shard.tensors.windows(2).all(|w| w[0] < w[1]) {
                return bad(format!("shards[{i}].tensors"), "not sorted, or a name repeats".into());
            }
            for name in &shard.tensors {
                if !self.tensors.contains_key(name) {
                    return bad(
                        format!("shards[{i}].tensors"),
                        format!("`{name}` is not a stored tensor of the manifest"),
                    );
                }
                if let Some(other) = holder.insert(name, i) {
                    return bad(
                        format!("shards[{i}].tensors"),
                        format!("`{name}` is also in shards[{other}]: a tensor is in exactly one shard"),
                    );
                }
            }
        }
        if let Some(name) = self.tensors.keys().find(|n| !holder.contains_key(n.as_str())) {
            return bad(
                crate::names::keyed("tensors", name),
                "in no shard: an index stores no tensor data itself".into(),
            );
        }
        Ok(())
    }

    /// The lowest format version whose features the manifest uses: 1.2 when
    /// a tensor has a chunk digest alone, 1.1 when one has both digests, 1.0
    /// otherwise (writers must write it).
    pub fn required_version(&self) -> FormatVersion {
        if !self.shards.is_empty() || self.tensors.values().any(|r| r.sha256.is_none()) {
            FormatVersion::V1_2
        } else if self.tensors.values().any(|r| r.chunks.is_some()) {
            FormatVersion::V1_1
        } else {
            FormatVersion::V1_0
        }
    }

    /// The canonical YAML text the writer stores.
    pub fn to_yaml(&self) -> Result<String, FormatError> {
        yaml::to_string(self)
    }

    /// The bundle digest: SHA-256 of the manifest's canonical JSON form.
    ///
    /// The manifest lists every tensor's SHA-256 and the graph's digests, so
    /// this one value identifies the whole bundle's content.
    pub fn bundle_digest(&self) -> Result<Sha256Digest, FormatError> {
        canonical::canonical_digest(self)
    }

    /// Resolves a name that is either a stored tensor or an alias of one.
    pub fn resolve<'a>(&'a self, name: &'a str) -> Option<(&'a str, &'a TensorRecord)> {
        let stored = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.tensors.get_key_value(stored).map(|(k, r)| (k.as_str(), r))
    }
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest::new()
    }
}

/// The manifest schema (JSON Schema draft 2020-12), as published in `spec/schema/`.
pub fn manifest_schema() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<Manifest>().to_value()
}
