//! Writing bundles: deterministic bytes, hashed tensors, aligned data.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use nnbundle_format::limits::DATA_ALIGNMENT;
use nnbundle_format::names::{PARAMS_GROUP, SAMPLES_GROUP, check_group_name, check_metadata_key, check_tensor_name};
use nnbundle_format::{
    ChunkDigest, FormatVersion, GRAPH_ENTRY, GraphRecord, MANIFEST_ENTRY, Manifest, MetaValue, SampleRecord,
    Sha256Digest, ShardRecord, Tensor, TensorRecord, tensor_entry_name,
};
use nnbundle_graph::{Graph, WeightInfo};
use rayon::prelude::*;
use zip::write::SimpleFileOptions;

use crate::atomic::{Durability, write_atomically_with};
use crate::error::{ContainerError, Result};
use crate::npy;

/// Which tensors get a chunk digest (spec section 5.1.1), so that a reader
/// can verify one large tensor on every core, and whether they also get a
/// whole SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunking {
    /// Tensors of at least this many bytes get a chunk digest.
    pub from_bytes: u64,
    /// Bytes per chunk: a power of two from 1 MiB to 1 GiB.
    pub chunk_bytes: u64,
    /// Also write a chunked tensor's whole SHA-256 (format 1.1: its data is
    /// hashed twice). `false`, the default, writes the chunk digest alone
    /// (format 1.2: every byte is hashed once).
    pub with_sha256: bool,
}

impl Chunking {
    /// No chunk digests: the bundle stays format 1.0, for readers older than 1.1.
    pub const NONE: Chunking = Chunking { from_bytes: u64::MAX, chunk_bytes: 1 << 20, with_sha256: true };

    /// The chunk size for a tensor of `nbytes`, if it gets a chunk digest.
    fn for_tensor(&self, nbytes: usize) -> Option<u64> {
        (nbytes as u64 >= self.from_bytes).then_some(self.chunk_bytes)
    }
}

/// Tensors of 2 MiB and more get a chunk digest alone, in 1 MiB chunks: a
/// tensor then hashes on every core (SHA-256 runs at about 1 GB/s on one
/// core with SHA-NI), and a save hashes each byte once; smaller tensors get
/// a SHA-256 and hash in parallel with each other.
impl Default for Chunking {
    fn default() -> Self {
        Chunking { from_bytes: 2 << 20, chunk_bytes: 1 << 20, with_sha256: false }
    }
}

/// A tensor's digests: the SHA-256, the chunk digest, or both.
type Digests = (Option<Sha256Digest>, Option<ChunkDigest>);

/// Which digests one tensor gets: a chunk size, and whether it gets a SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DigestKinds {
    chunks: Option<u64>,
    sha256: bool,
}

/// Collects tensors, aliases, metadata and an optional graph, then writes
/// them as one bundle.
///
/// The bytes depend only on the content: entries are sorted, timestamps
/// fixed at 1980-01-01 00:00, permissions 0644, and the YAML canonical.
#[derive(Debug, Clone, Default)]
pub struct BundleWriter {
    tensors: BTreeMap<String, (Tensor, String)>,
    aliases: BTreeMap<String, String>,
    metadata: BTreeMap<String, MetaValue>,
    graph: Option<Graph>,
    samples: Vec<SampleRecord>,
    chunking: Chunking,
    /// The graph's text as given, stored verbatim instead of the canonical form.
    graph_text: Option<String>,
    /// Per-tensor digest kinds that override `chunking`.
    digest_kinds: BTreeMap<String, DigestKinds>,
    /// The lowest format version to declare.
    min_version: Option<FormatVersion>,
    /// For an index bundle: the records of the tensors its shards hold.
    external: BTreeMap<String, TensorRecord>,
    /// For an index bundle: the shard table.
    shards: Vec<ShardRecord>,
}

impl BundleWriter {
    /// An empty bundle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tensor to the `params` group.
    pub fn add_tensor(&mut self, name: impl Into<String>, tensor: Tensor) -> Result<&mut Self> {
        self.add_tensor_to_group(PARAMS_GROUP, name, tensor)
    }

    /// Adds a tensor to `group` (`optimizer`, `buffers`, ...): tensors outside
    /// `params` sit beside the model without being its parameters.
    pub fn add_tensor_to_group(&mut self, group: &str, name: impl Into<String>, tensor: Tensor) -> Result<&mut Self> {
        let name = name.into();
        let invalid = |source| ContainerError::InvalidTensor { tensor: name.clone(), source };
        check_tensor_name(&name).map_err(invalid)?;
        check_group_name(group).map_err(invalid)?;
        if self.tensors.contains_key(&name) || self.aliases.contains_key(&name) || self.external.contains_key(&name) {
            return Err(ContainerError::InvalidContent { reason: format!("tensor `{name}` is added twice") });
        }
        self.tensors.insert(name, (tensor, group.to_owned()));
        Ok(self)
    }

    /// Ties `alias` to the stored tensor `target`: both names load the same data,
    /// which is stored once.
    pub fn add_alias(&mut self, alias: impl Into<String>, target: impl Into<String>) -> Result<&mut Self> {
        let (alias, target) = (alias.into(), target.into());
        check_tensor_name(&alias).map_err(|source| ContainerError::InvalidTensor { tensor: alias.clone(), source })?;
        if self.tensors.contains_key(&alias) || self.aliases.contains_key(&alias) {
            return Err(ContainerError::InvalidContent { reason: format!("alias `{alias}` is already a name") });
        }
        self.aliases.insert(alias, target);
        Ok(self)
    }

    /// Sets a metadata value.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<MetaValue>) -> Result<&mut Self> {
        let (key, value) = (key.into(), value.into());
        check_metadata_key(&key)
            .and_then(|()| value.check(&key))
            .map_err(|e| ContainerError::InvalidContent { reason: e.to_string() })?;
        self.metadata.insert(key, value);
        Ok(self)
    }

    /// A writer holding what `bundle` holds beside its tensors: the graph (its
    /// text as stored), aliases, metadata and samples.
    pub(crate) fn with_model_of(bundle: &crate::Bundle) -> Result<BundleWriter> {
        let manifest = bundle.manifest();
        Ok(BundleWriter {
            aliases: manifest.aliases.clone(),
            metadata: manifest.metadata.clone(),
            samples: manifest.samples.clone(),
            graph: bundle.graph()?,
            graph_text: bundle.graph_yaml().map(|text| String::from_utf8_lossy(text).into_owned()),
            ..BundleWriter::new()
        })
    }

    /// A writer holding everything `bundle` holds (tensors shared, not copied),
    /// to save it again with changes.
    pub fn from_bundle(bundle: &crate::Bundle) -> Result<BundleWriter> {
        let mut w = BundleWriter::with_model_of(bundle)?;
        let manifest = bundle.manifest();
        for (name, record) in &manifest.tensors {
            w.add_tensor_to_group(&record.group, name.clone(), bundle.tensor(name)?)?;
        }
        w.keep_layout_of(manifest);
        if bundle.is_index() {
            // Merging shards: the version the content needs, not the index's 1.2.
            w.min_version = None;
        }
        Ok(w)
    }

    /// Keeps what `manifest` chose beyond the content: its format version (as
    /// the lowest one to declare) and each of its tensors' chunk digests, so
    /// that rewriting a bundle changes neither its bundle digest nor its bytes.
    pub fn keep_layout_of(&mut self, manifest: &Manifest) -> &mut Self {
        self.min_version = Some(manifest.format_version);
        self.digest_kinds = manifest
            .tensors
            .iter()
            .map(|(n, r)| (n.clone(), DigestKinds { chunks: r.chunks.map(|c| c.size), sha256: r.sha256.is_some() }))
            .collect();
        self
    }

    /// Sets the layer graph from its YAML text, which is stored as given
    /// (comments and layout included) rather than in the canonical form.
    pub fn set_graph_yaml(&mut self, text: String) -> Result<&mut Self> {
        let graph = Graph::from_yaml(text.as_bytes()).map_err(|report| ContainerError::Graph { report })?;
        self.graph = Some(graph);
        self.graph_text = Some(text);
        Ok(self)
    }

    /// The digests tensor `name` of `nbytes` gets.
    fn digest_kinds(&self, name: &str, nbytes: usize) -> DigestKinds {
        match self.digest_kinds.get(name) {
            Some(&kept) => kept,
            None => {
                let chunks = self.chunking.for_tensor(nbytes);
                DigestKinds { chunks, sha256: chunks.is_none() || self.chunking.with_sha256 }
            }
        }
    }

    /// Adds a sample: graph inputs and the outputs the model computed from
    /// them, stored in the `samples` group, with the tolerance a re-run must meet.
    pub fn add_sample(
        &mut self,
        inputs: BTreeMap<String, Tensor>,
        outputs: BTreeMap<String, Tensor>,
        rtol: f64,
        atol: f64,
    ) -> Result<&mut Self> {
        let index = self.samples.len();
        let mut record = SampleRecord { inputs: BTreeMap::new(), outputs: BTreeMap::new(), rtol, atol };
        for (kind, tensors) in [("inputs", inputs), ("outputs", outputs)] {
            for (value, tensor) in tensors {
                let name = format!("samples.{index}.{kind}.{value}");
                self.add_tensor_to_group(SAMPLES_GROUP, name.clone(), tensor)?;
                match kind {
                    "inputs" => record.inputs.insert(value, name),
                    _ => record.outputs.insert(value, name),
                };
            }
        }
        self.samples.push(record);
        Ok(self)
    }

    /// Replaces the sample records (their tensors are added separately, in the `samples` group).
    pub fn set_samples(&mut self, samples: Vec<SampleRecord>) -> &mut Self {
        self.samples = samples;
        self
    }

    /// Sets the layer graph. It owns the `params` group: writing fails,
    /// listing every problem, unless each `params` tensor is a parameter of
    /// the graph and each required parameter is present with the dtype and
    /// shape the graph implies.
    pub fn set_graph(&mut self, graph: Graph) -> &mut Self {
        self.graph = Some(graph);
        self.graph_text = None;
        self
    }

    /// Makes this an index bundle (format 1.2): `records` are the tensors the
    /// `shards` hold, listed in the manifest but stored in the shard files.
    pub fn set_shards(&mut self, records: BTreeMap<String, TensorRecord>, shards: Vec<ShardRecord>) -> &mut Self {
        self.external = records;
        self.shards = shards;
        self
    }

    /// Sets which tensors get a chunk digest ([`Chunking::default`]: 2 MiB and more, alone).
    pub fn set_chunking(&mut self, chunking: Chunking) -> &mut Self {
        self.chunking = chunking;
        self
    }

    /// The graph, if set.
    pub fn graph(&self) -> Option<&Graph> {
        self.graph.as_ref()
    }

    /// Dtype and shape of every `params` tensor and alias, as the graph check wants them.
    fn params_table(&self) -> BTreeMap<String, WeightInfo> {
        let mut table: BTreeMap<String, WeightInfo> = self
            .tensors
            .iter()
            .filter(|(_, (_, g))| g == PARAMS_GROUP)
            .map(|(n, (t, _))| (n.clone(), WeightInfo::from(t)))
            .collect();
        table.extend(
            self.external
                .iter()
                .filter(|(_, r)| r.group == PARAMS_GROUP)
                .map(|(n, r)| (n.clone(), WeightInfo::from(r))),
        );
        for (alias, target) in &self.aliases {
            if let Some((t, g)) = self.tensors.get(target)
                && g == PARAMS_GROUP
            {
                table.insert(alias.clone(), WeightInfo::from(t));
            }
            if let Some(r) = self.external.get(target).filter(|r| r.group == PARAMS_GROUP) {
                table.insert(alias.clone(), WeightInfo::from(r));
            }
        }
        table
    }

    /// The manifest this content produces, hashing every tensor (in parallel).
    pub fn manifest(&self) -> Result<Manifest> {
        self.manifest_with(&self.digests())
    }

    /// Every tensor's digests, hashed in parallel (a chunk digest's chunks too).
    fn digests(&self) -> BTreeMap<&str, Digests> {
        crate::largest_first(self.tensors.iter().collect(), |(_, (t, _))| t.nbytes())
            .map(|(name, (t, _))| {
                let bytes = t.as_bytes();
                let kinds = self.digest_kinds(name, bytes.len());
                let (sha256, chunks) = rayon::join(
                    || kinds.sha256.then(|| Sha256Digest::of(bytes)),
                    || kinds.chunks.map(|size| ChunkDigest { size, sha256: crate::chunk_digest(bytes, size) }),
                );
                (name.as_str(), (sha256, chunks))
            })
            .collect()
    }

    /// `digest` in place of every digest, as a manifest draft holds them.
    fn stand_ins(&self, digest: Sha256Digest) -> BTreeMap<&str, Digests> {
        let stand_in = |name: &str, t: &Tensor| {
            let kinds = self.digest_kinds(name, t.nbytes());
            (kinds.sha256.then_some(digest), kinds.chunks.map(|size| ChunkDigest { size, sha256: digest }))
        };
        self.tensors.iter().map(|(name, (t, _))| (name.as_str(), stand_in(name, t))).collect()
    }

    /// The manifest with the given tensor digests.
    fn manifest_with(&self, digests: &BTreeMap<&str, Digests>) -> Result<Manifest> {
        let mut manifest = Manifest::new();
        for (name, (tensor, group)) in &self.tensors {
            let (sha256, chunks) = digests[name.as_str()];
            let record = TensorRecord {
                dtype: tensor.dtype(),
                shape: tensor.shape().iter().map(|&d| d as u64).collect(),
                sha256,
                group: group.clone(),
                chunks,
            };
            manifest.tensors.insert(name.clone(), record);
        }
        manifest.tensors.extend(self.external.clone());
        manifest.shards = self.shards.clone();
        manifest.format_version = manifest.required_version().max(self.min_version.unwrap_or(FormatVersion::V1_0));
        manifest.aliases = self.aliases.clone();
        manifest.metadata = self.metadata.clone();
        manifest.samples = self.samples.clone();
        if let Some(graph) = &self.graph {
            let report = graph.check(Some(&self.params_table())).report;
            if report.has_errors() {
                return Err(ContainerError::Graph { report });
            }
            manifest.graph = Some(GraphRecord {
                opset: graph.opset(),
                sha256: Sha256Digest::of(self.graph_yaml()?.as_bytes()),
                architecture_digest: graph.architecture_digest(),
            });
        }
        manifest.check().map_err(|e| ContainerError::InvalidContent { reason: e.to_string() })?;
        Ok(manifest)
    }

    fn graph_yaml(&self) -> Result<String> {
        if let Some(text) = &self.graph_text {
            return Ok(text.clone());
        }
        self.graph
            .as_ref()
            .map(|g| g.to_yaml().map_err(|e| ContainerError::InvalidContent { reason: e.to_string() }))
            .unwrap_or_else(|| Ok(String::new()))
    }

    /// Writes the bundle to `out` and returns its manifest.
    pub fn write_to<W: Write + Seek>(&self, mut out: W) -> Result<Manifest> {
        let manifest = self.manifest()?;
        let target = Target { path: Path::new("<output>"), progress: &|_| () };
        self.write_entries(&mut out, &manifest.to_yaml().map_err(invalid)?, &target)?;
        Ok(manifest)
    }

    /// Writes the bundle to a file while its tensors are hashed, with the
    /// same bytes as [`BundleWriter::write_to`]. The manifest, the first
    /// entry, is written with `stand_in` for every digest, then over with the
    /// real ones, which print as long unless one reads as a number and is
    /// quoted (then the file is written again, in order, with the digests
    /// already known). `stand_in` is a parameter so that tests can force that
    /// case.
    fn write_hashing_alongside(
        &self,
        out: &mut BufWriter<File>,
        target: &Target<'_>,
        stand_in: Sha256Digest,
    ) -> Result<Manifest> {
        let dest = target.path;
        let mut manifest = self.manifest_with(&self.stand_ins(stand_in))?;
        let draft = manifest.to_yaml().map_err(invalid)?;
        let (digests, written) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| self.digests());
            let written = self.write_entries(&mut *out, &draft, target);
            (hashing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), written)
        });
        written?;
        // The real manifest is the draft with the digests filled in.
        for (name, record) in &mut manifest.tensors {
            if let Some(&digests) = digests.get(name.as_str()) {
                (record.sha256, record.chunks) = digests;
            }
        }
        let yaml = manifest.to_yaml().map_err(invalid)?;
        if yaml.len() == draft.len() {
            overwrite_entry(out, dest, MANIFEST_ENTRY, yaml.as_bytes())?;
        } else {
            let io = write_failed(dest, MANIFEST_ENTRY);
            out.flush().map_err(io)?;
            out.get_mut().set_len(0).map_err(io)?;
            out.seek(SeekFrom::Start(0)).map_err(io)?;
            self.write_entries(&mut *out, &yaml, target)?;
        }
        Ok(manifest)
    }

    /// Writes the entries of a bundle whose manifest is `manifest_yaml`.
    fn write_entries<W: Write + Seek>(&self, out: &mut W, manifest_yaml: &str, target: &Target<'_>) -> Result<()> {
        let dest = target.path;
        let zip_err = |entry: &str| {
            let entry = entry.to_owned();
            move |e: zip::result::ZipError| match e {
                zip::result::ZipError::Io(e) => write_failed(dest, &entry)(e),
                other => ContainerError::entry(entry, format!("zip writer failed: {other}")),
            }
        };
        let io_err = |entry: &str| {
            let entry = entry.to_owned();
            move |e: std::io::Error| write_failed(dest, &entry)(e)
        };
        let base = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644);
        let mut zip = zip::ZipWriter::new(Fuse::new(out));
        let graph_yaml = self.graph_yaml()?;
        let mut documents = vec![(MANIFEST_ENTRY, manifest_yaml.as_bytes())];
        if self.graph.is_some() {
            documents.push((GRAPH_ENTRY, graph_yaml.as_bytes()));
        }
        for (entry, bytes) in documents {
            zip.start_file(entry, base).map_err(zip_err(entry))?;
            zip.write_all(bytes).map_err(io_err(entry))?;
        }
        for (name, (tensor, _)) in &self.tensors {
            let entry = tensor_entry_name(name);
            let header = npy::encode_header(tensor.dtype(), tensor.shape());
            let size = header.len() as u64 + tensor.nbytes() as u64;
            let options = base.with_alignment(DATA_ALIGNMENT as u16).large_file(size >= u64::from(u32::MAX));
            zip.start_file(&entry, options).map_err(zip_err(&entry))?;
            zip.write_all(&header).map_err(io_err(&entry))?;
            zip.write_all(tensor.as_bytes()).map_err(io_err(&entry))?;
            (target.progress)(tensor.nbytes() as u64);
        }
        zip.finish().map_err(zip_err("<central directory>"))?;
        Ok(())
    }

    /// Writes the bundle to `path` atomically and synced (see
    /// [`write_atomically`](crate::write_atomically)) and returns its manifest. A failure leaves any
    /// existing file untouched.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<Manifest> {
        self.save_with(path, Durability::Synced)
    }

    /// [`BundleWriter::save`] with the given durability.
    pub fn save_with(&self, path: impl AsRef<Path>, durability: Durability) -> Result<Manifest> {
        self.save_reporting(path, durability, &|_| ())
    }

    /// [`BundleWriter::save_with`], calling `progress` with the bytes of each
    /// tensor once written, for a progress bar (see [`BundleWriter::data_bytes`]).
    pub fn save_reporting(
        &self,
        path: impl AsRef<Path>,
        durability: Durability,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Manifest> {
        let mut manifest = None;
        let target = Target { path: path.as_ref(), progress };
        write_atomically_with(path.as_ref(), durability, |out| {
            manifest = Some(self.write_hashing_alongside(out, &target, STAND_IN)?);
            Ok(())
        })?;
        Ok(manifest.expect("set by a successful write"))
    }

    /// The bytes of tensor data the bundle will hold.
    pub fn data_bytes(&self) -> u64 {
        self.tensors.values().map(|(t, _)| t.nbytes() as u64).sum()
    }

    /// The bundle as bytes in memory.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut cursor = std::io::Cursor::new(Vec::new());
        self.write_to(&mut cursor)?;
        Ok(cursor.into_inner())
    }
}

/// The digest a manifest draft holds until the tensors are hashed: its hex
/// form is a plain YAML scalar, as almost every real digest is.
const STAND_IN: Sha256Digest = Sha256Digest([0xaa; 32]);

/// Where a bundle is being written: the file errors name, and who hears of progress.
struct Target<'a> {
    path: &'a Path,
    progress: &'a (dyn Fn(u64) + Sync),
}

/// The error of a failed write of `entry` into the bundle `dest`.
pub(crate) fn write_failed<'a>(
    dest: &'a Path,
    entry: &'a str,
) -> impl Fn(std::io::Error) -> ContainerError + Copy + 'a {
    move |source| ContainerError::WriteFailed { path: dest.to_owned(), entry: entry.to_owned(), source }
}

/// A writer that, once a write or seek has failed, accepts and drops
/// everything (keeping count of the position, as the zip writer checks it):
/// the zip writer's destructor then finalizes quietly instead of printing to
/// stderr, and the first error is the one reported.
struct Fuse<'a, W> {
    inner: &'a mut W,
    failed: bool,
    /// The position, as the writer sees it.
    pos: u64,
    /// The furthest position written.
    end: u64,
}

impl<'a, W> Fuse<'a, W> {
    fn new(inner: &'a mut W) -> Self {
        Fuse { inner, failed: false, pos: 0, end: 0 }
    }

    fn moved(&mut self, pos: u64) -> u64 {
        self.pos = pos;
        self.end = self.end.max(pos);
        pos
    }
}

impl<W: Write> Write for Fuse<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            self.moved(self.pos + buf.len() as u64);
            return Ok(buf.len());
        }
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        self.moved(self.pos + n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Ok(());
        }
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

impl<W: Seek> Seek for Fuse<'_, W> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        if self.failed {
            let pos = match to {
                SeekFrom::Start(n) => n,
                SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
                SeekFrom::End(d) => self.end.saturating_add_signed(d),
            };
            return Ok(self.moved(pos));
        }
        let pos = self.inner.seek(to).inspect_err(|_| self.failed = true)?;
        Ok(self.moved(pos))
    }
}

fn invalid(e: impl std::fmt::Display) -> ContainerError {
    ContainerError::InvalidContent { reason: e.to_string() }
}

/// Replaces the data of the stored entry `name` of the zip written to `out`
/// with `data` of the same length, and its CRC-32 in the local and central
/// headers.
fn overwrite_entry(out: &mut BufWriter<File>, dest: &Path, name: &str, data: &[u8]) -> Result<()> {
    let io = write_failed(dest, name);
    let reread = |e: zip::result::ZipError| ContainerError::entry(name, format!("reading the written zip failed: {e}"));
    out.flush().map_err(io)?;
    let (local, central) = {
        let mut archive = zip::ZipArchive::new(out.get_ref()).map_err(reread)?;
        let entry = archive.by_name_raw(name.as_bytes()).map_err(reread)?;
        (entry.header_start(), entry.central_header_start())
    };
    let mut header = [0u8; 30];
    let mut file = out.get_ref();
    file.seek(SeekFrom::Start(local)).and_then(|_| file.read_exact(&mut header)).map_err(io)?;
    let lengths = u64::from(u16::from_le_bytes([header[26], header[27]]))
        + u64::from(u16::from_le_bytes([header[28], header[29]]));
    let crc = crc32fast::hash(data).to_le_bytes();
    for (at, bytes) in [(local + 30 + lengths, data), (local + 14, &crc[..]), (central + 16, &crc[..])] {
        out.seek(SeekFrom::Start(at)).and_then(|_| out.write_all(bytes)).map_err(io)?;
    }
    out.seek(SeekFrom::End(0)).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::Durability;

    /// Progress hears of every tensor byte once, and the file is the same.
    #[test]
    fn save_reporting_counts_every_tensor_byte() {
        let mut writer = BundleWriter::new();
        writer.add_tensor("a", Tensor::from_vec(vec![3], vec![1f32; 3]).unwrap()).unwrap();
        writer.add_tensor("b", Tensor::from_vec(vec![2, 5], vec![7i64; 10]).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.nnb");
        let seen = std::sync::atomic::AtomicU64::new(0);
        let progress = |n: u64| {
            seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        writer.save_reporting(&path, Durability::Unsynced, &progress).unwrap();
        assert_eq!(writer.data_bytes(), 12 + 80);
        assert_eq!(seen.into_inner(), 92);
        assert_eq!(std::fs::read(&path).unwrap(), writer.to_bytes().unwrap());
    }

    /// A digest that prints quoted (it reads as a number) makes the draft
    /// manifest longer than the real one: the file is written again in order.
    #[test]
    fn a_draft_of_another_length_is_rewritten_in_order() {
        let numeric = Sha256Digest([0x11; 32]);
        let mut writer = BundleWriter::new();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            writer
                .add_tensor(name, Tensor::from_vec(vec![1000 * (i + 1)], vec![i as f32; 1000 * (i + 1)]).unwrap())
                .unwrap();
        }
        let lengths = [numeric, STAND_IN].map(|d| {
            let draft = writer.manifest_with(&writer.stand_ins(d)).unwrap();
            draft.to_yaml().unwrap().len()
        });
        assert_ne!(lengths[0], lengths[1], "the numeric stand-in prints quoted");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.nnb");
        write_atomically_with(&path, Durability::Unsynced, |out| {
            writer.write_hashing_alongside(out, &Target { path: &path, progress: &|_| () }, numeric).map(drop)
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), writer.to_bytes().unwrap());
    }
}
