//! Reading bundles: strict container checks, lazy hashed tensor access.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use nnbundle_format::limits::{
    MAX_ENTRIES, MAX_GRAPH_BYTES, MAX_MANIFEST_BYTES, MAX_NPY_HEADER_BYTES, MAX_SIGNATURE_BYTES, MAX_SIGNATURES,
};
use nnbundle_format::{
    Buffer, ByteOwner, ChunkDigest, DType, GRAPH_ENTRY, MANIFEST_ENTRY, Manifest, Sha256Digest, TENSOR_ENTRY_PREFIX,
    TENSOR_ENTRY_SUFFIX, Tensor, TensorRecord, signature_name,
};
use nnbundle_graph::{Analysis, Graph, WeightInfo};
use rayon::prelude::*;

use crate::error::{ContainerError, Result};
use crate::mmap::MappedFile;
use crate::npy;

/// When tensor hashes are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verify {
    /// Each tensor is hashed the first time it is read (the default).
    #[default]
    OnAccess,
    /// Every tensor is hashed, in parallel, before `open` returns.
    Eager,
    /// Hashes are never checked: the trusted fast path for files you produced.
    Never,
}

/// How to open a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// When to check tensor hashes.
    pub verify: Verify,
    /// Memory-map the file (the default) instead of reading it into memory.
    pub mmap: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { verify: Verify::OnAccess, mmap: true }
    }
}

/// What a bundle lists about one tensor, available without reading its data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorInfo<'a> {
    /// The tensor's name (an alias name for tied weights).
    pub name: &'a str,
    /// The stored tensor it resolves to (equal to `name` unless an alias).
    pub stored_as: &'a str,
    /// The manifest record: dtype, shape, digest, group.
    pub record: &'a TensorRecord,
}

impl TensorInfo<'_> {
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.record.dtype
    }

    /// Data size in bytes.
    pub fn nbytes(&self) -> u64 {
        self.record.byte_size().expect("checked when the bundle was opened")
    }
}

struct Slot {
    entry: String,
    /// The tensor's data.
    data: Range<usize>,
    verified: OnceLock<()>,
}

struct OwnedBytes(Vec<u8>);

impl ByteOwner for OwnedBytes {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// An open bundle: its manifest, its graph document and lazy access to its tensors.
///
/// Opening checks the whole container (entries, names, sizes, the manifest,
/// every `.npy` header against the manifest) but reads no tensor data.
/// Tensors handed out share the bundle's bytes (zero-copy when memory-mapped).
pub struct Bundle {
    source: Arc<dyn ByteOwner>,
    /// The entries, as checked by the container rules.
    archive: Archive,
    manifest: Manifest,
    slots: BTreeMap<String, Slot>,
    graph: Option<Range<usize>>,
    verify: Verify,
}

/// A bundle's zip archive after the container's entry rules (spec 2.2), before
/// its manifest is read: each entry's place, and the bytes. What signatures
/// cover (spec 10) is at this level, so a bundle whose manifest is damaged
/// can still be checked against a signature.
pub struct Archive {
    source: Arc<dyn ByteOwner>,
    /// Entry name to where its local header starts and its data.
    entries: BTreeMap<String, (usize, Range<usize>)>,
    /// Where the central directory starts.
    directory_start: usize,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive").field("entries", &self.entries.len()).finish()
    }
}

impl Archive {
    /// Opens `path`, memory-mapped, and checks its entries (spec 2.2) without
    /// reading the manifest.
    pub fn open(path: impl AsRef<Path>) -> Result<Archive> {
        let (source, layout) = load(path.as_ref(), true)?;
        Ok(Archive::new(source, layout))
    }

    /// Keeps each entry's place (the names move; the `.npy` heads are dropped).
    fn new(source: Arc<dyn ByteOwner>, layout: Layout) -> Archive {
        let entries = layout.entries.into_iter().map(|(name, l)| (name, (l.header, l.data))).collect();
        Archive { source, entries, directory_start: layout.directory_start }
    }

    /// The whole file's bytes.
    pub fn file_bytes(&self) -> &[u8] {
        self.source.bytes()
    }

    /// Every entry but the signatures, with its stored bytes (for a tensor,
    /// the `.npy` header and the data), sorted by entry name: what a
    /// signature covers (spec section 10).
    pub fn content_entries(&self) -> Vec<(&str, &[u8])> {
        let bytes = self.source.bytes();
        self.entries
            .iter()
            .filter(|(name, _)| signature_name(name).is_none())
            .map(|(name, (_, data))| (name.as_str(), &bytes[data.clone()]))
            .collect()
    }

    /// The signature entries (format 1.2) by name, with their bytes. The
    /// container checks only their names, sizes and count (spec section 10).
    pub fn signatures(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries
            .iter()
            .filter_map(|(entry, (_, data))| Some((signature_name(entry)?, &self.source.bytes()[data.clone()])))
    }

    /// The byte ranges of every entry but the signatures.
    pub(crate) fn content_entry_ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.entries.iter().filter(|(name, _)| signature_name(name).is_none()).map(|(_, (_, data))| data.clone())
    }

    /// Each signature's name and the offset of its local header.
    pub(crate) fn signature_headers(&self) -> impl Iterator<Item = (&str, usize)> {
        self.entries.iter().filter_map(|(entry, (header, _))| Some((signature_name(entry)?, *header)))
    }

    /// Where the central directory starts.
    pub(crate) fn directory_start(&self) -> usize {
        self.directory_start
    }
}

/// Reads or maps `path` and checks its entries.
fn load(path: &Path, mmap: bool) -> Result<(Arc<dyn ByteOwner>, Layout)> {
    let mut file = File::open(path).map_err(|e| ContainerError::io("open", path, e))?;
    let len = file.metadata().map_err(|e| ContainerError::io("stat", path, e))?.len();
    if mmap && len > 0 {
        let map = MappedFile::map(&file).map_err(|e| ContainerError::io("memory-map", path, e))?;
        let source: Arc<dyn ByteOwner> = Arc::new(map);
        let layout = scan_entries(source.bytes(), Headers::file(&file, source.bytes()))?;
        Ok((source, layout))
    } else {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| ContainerError::io("read", path, e))?;
        let source: Arc<dyn ByteOwner> = Arc::new(OwnedBytes(bytes));
        let layout = scan_entries(source.bytes(), Headers::Bytes(source.bytes()))?;
        Ok((source, layout))
    }
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").field("tensors", &self.slots.len()).field("verify", &self.verify).finish()
    }
}

impl Bundle {
    /// Opens `path`, memory-mapped, verifying each tensor's hash on first access.
    pub fn open(path: impl AsRef<Path>) -> Result<Bundle> {
        Bundle::open_with(path, OpenOptions::default())
    }

    /// Opens `path` with explicit options.
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Bundle> {
        let (source, layout) = load(path.as_ref(), options.mmap)?;
        Bundle::from_layout(source, layout, options.verify)
    }

    /// Reads a bundle held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Bundle> {
        Bundle::from_bytes_with(bytes, Verify::OnAccess)
    }

    /// Reads a bundle held in memory, with the given hash policy.
    pub fn from_bytes_with(bytes: Vec<u8>, verify: Verify) -> Result<Bundle> {
        Bundle::from_owner(Arc::new(OwnedBytes(bytes)), verify)
    }

    /// Reads a bundle from bytes owned by `source`, with the given hash policy.
    pub fn from_owner(source: Arc<dyn ByteOwner>, verify: Verify) -> Result<Bundle> {
        let layout = scan_entries(source.bytes(), Headers::Bytes(source.bytes()))?;
        Bundle::from_layout(source, layout, verify)
    }

    fn from_layout(source: Arc<dyn ByteOwner>, entries: Layout, verify: Verify) -> Result<Bundle> {
        let layout = &entries.entries;
        let bytes = source.bytes();
        let manifest_range = layout.get(MANIFEST_ENTRY).ok_or_else(|| ContainerError::MissingEntry {
            entry: MANIFEST_ENTRY.into(),
            reason: "every bundle has a manifest".into(),
        })?;
        let manifest = Manifest::parse(&bytes[manifest_range.data.clone()])
            .map_err(|source| ContainerError::Document { entry: MANIFEST_ENTRY.into(), source })?;

        let graph = match (&manifest.graph, layout.get(GRAPH_ENTRY)) {
            (Some(record), Some(entry)) => {
                check_size(GRAPH_ENTRY, entry.data.len(), MAX_GRAPH_BYTES)?;
                let actual = Sha256Digest::of(&bytes[entry.data.clone()]);
                if actual != record.sha256 {
                    return Err(ContainerError::entry(
                        GRAPH_ENTRY,
                        format!("SHA-256 mismatch: manifest says {}, entry hashes to {actual}", record.sha256),
                    ));
                }
                Some(entry.data.clone())
            }
            (Some(_), None) => {
                return Err(ContainerError::MissingEntry {
                    entry: GRAPH_ENTRY.into(),
                    reason: "the manifest has a `graph` record".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ContainerError::entry(GRAPH_ENTRY, "present, but the manifest has no `graph` record"));
            }
            (None, None) => None,
        };

        let mut slots = BTreeMap::new();
        for (name, record) in &manifest.tensors {
            let entry = nnbundle_format::tensor_entry_name(name);
            let located = layout.get(&entry).ok_or_else(|| ContainerError::MissingEntry {
                entry: entry.clone(),
                reason: format!("the manifest lists tensor `{name}`"),
            })?;
            let data = tensor_data(name, &entry, record, &located.head, &located.data)?;
            slots.insert(name.clone(), Slot { entry, data, verified: OnceLock::new() });
        }
        let signatures = layout.keys().filter(|e| signature_name(e).is_some()).count();
        let expected = slots.len() + 1 + usize::from(graph.is_some()) + signatures;
        if layout.len() != expected {
            let stray = layout
                .keys()
                .find(|e| {
                    *e != MANIFEST_ENTRY
                        && *e != GRAPH_ENTRY
                        && signature_name(e).is_none()
                        && !slots.values().any(|s: &Slot| &s.entry == *e)
                })
                .cloned()
                .unwrap_or_default();
            return Err(ContainerError::entry(stray, "not listed in the manifest"));
        }
        let archive = Archive::new(source.clone(), entries);
        let bundle = Bundle { source, archive, manifest, slots, graph, verify };
        if verify == Verify::Eager {
            bundle.verify_all()?;
        }
        Ok(bundle)
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The archive: every entry's bytes, signatures included.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The whole file's bytes.
    pub fn file_bytes(&self) -> &[u8] {
        self.source.bytes()
    }

    /// Every entry but the signatures, with its stored bytes, sorted by
    /// entry name (see [`Archive::content_entries`]).
    pub fn content_entries(&self) -> Vec<(&str, &[u8])> {
        self.archive.content_entries()
    }

    /// The signature entries by name, with their bytes (see [`Archive::signatures`]).
    pub fn signatures(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.archive.signatures()
    }

    /// The bundle digest (SHA-256 of the manifest's canonical form).
    pub fn digest(&self) -> Sha256Digest {
        self.manifest.bundle_digest().expect("a parsed manifest has a canonical form")
    }

    /// The `graph.yaml` bytes, when the bundle has a graph (already checked
    /// against the manifest's SHA-256).
    pub fn graph_yaml(&self) -> Option<&[u8]> {
        self.graph.clone().map(|r| &self.source.bytes()[r])
    }

    /// Parses the graph and checks its opset and architecture digest against
    /// the manifest's graph record. `Ok(None)` for a bundle without a graph.
    pub fn graph(&self) -> Result<Option<Graph>> {
        let (Some(yaml), Some(record)) = (self.graph_yaml(), &self.manifest.graph) else { return Ok(None) };
        let graph = Graph::from_yaml(yaml).map_err(|report| ContainerError::Graph { report })?;
        if graph.opset() != record.opset {
            return Err(ContainerError::entry(
                GRAPH_ENTRY,
                format!("declares opset {}, the manifest's graph record says {}", graph.opset(), record.opset),
            ));
        }
        let digest = graph.architecture_digest();
        if digest != record.architecture_digest {
            return Err(ContainerError::entry(
                GRAPH_ENTRY,
                format!(
                    "architecture digest mismatch: manifest says {}, the graph gives {digest}",
                    record.architecture_digest
                ),
            ));
        }
        Ok(Some(graph))
    }

    /// Checks the graph against the bundle's `params` tensors (dtype and shape
    /// of each, aliases included) and infers every value's shape, collecting
    /// every problem. `None` for a bundle without a graph.
    pub fn analyze_graph(&self) -> Option<Analysis> {
        let yaml = self.graph_yaml()?;
        Some(nnbundle_graph::analyze(yaml, Some(&self.params_table())))
    }

    /// Dtype and shape of every `params` tensor and alias.
    pub fn params_table(&self) -> BTreeMap<String, WeightInfo> {
        self.tensor_infos()
            .into_iter()
            .filter(|i| i.record.group == nnbundle_format::names::PARAMS_GROUP)
            .map(|i| (i.name.to_owned(), WeightInfo { dtype: i.record.dtype, shape: i.record.shape.clone() }))
            .collect()
    }

    /// Every tensor name, stored tensors and aliases, in name order.
    pub fn tensor_infos(&self) -> Vec<TensorInfo<'_>> {
        let stored = self.manifest.tensors.iter().map(|(n, r)| TensorInfo { name: n, stored_as: n, record: r });
        let aliases = self.manifest.aliases.iter().map(|(a, t)| TensorInfo {
            name: a,
            stored_as: t,
            record: &self.manifest.tensors[t],
        });
        let mut all: Vec<_> = stored.chain(aliases).collect();
        all.sort_by(|a, b| a.name.cmp(b.name));
        all
    }

    /// What the bundle lists about `name` (a stored tensor or an alias).
    pub fn tensor_info<'a>(&'a self, name: &'a str) -> Option<TensorInfo<'a>> {
        self.manifest.resolve(name).map(|(stored_as, record)| TensorInfo { name, stored_as, record })
    }

    /// Reads tensor `name` (or an alias), checking its hash according to the
    /// open options. The tensor shares the bundle's bytes.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let (stored, slot, record) = self.slot(name)?;
        if self.verify != Verify::Never {
            self.verify_slot(stored, slot, record)?;
        }
        self.make_tensor(stored, slot, record)
    }

    /// Reads tensor `name` without checking its hash.
    pub fn tensor_unverified(&self, name: &str) -> Result<Tensor> {
        let (stored, slot, record) = self.slot(name)?;
        self.make_tensor(stored, slot, record)
    }

    /// Hashes every tensor not yet verified, in parallel, and reports every
    /// mismatch. A tensor with a chunk digest is checked by that digest alone.
    pub fn verify_all(&self) -> Result<()> {
        self.check_all(|name, slot, record| self.verify_slot(name, slot, record).err().into_iter().collect())
    }

    /// Checks every digest of every tensor, the SHA-256 and the chunk digest
    /// alike, whether verified before or not, and reports each mismatch: what
    /// a validator does (a writer that disagrees with itself is caught here
    /// and nowhere else).
    pub fn verify_every_digest(&self) -> Result<()> {
        self.verify_every_digest_reporting(&|_| ())
    }

    /// [`Bundle::verify_every_digest`], calling `progress` with the byte size of
    /// each tensor once it is checked (from several threads), for a progress bar.
    pub fn verify_every_digest_reporting(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        self.check_all(|name, slot, record| {
            let chunked = record.chunks.map(|c| self.check_chunk_digest(name, slot, c));
            let errors =
                [Some(self.check_sha256(name, slot, record)), chunked, Some(self.check_values(name, slot, record))]
                    .into_iter()
                    .flatten()
                    .filter_map(Result::err)
                    .collect();
            progress(slot.data.len() as u64);
            errors
        })
    }

    /// Runs `check` on every tensor in parallel, largest first, collecting every error.
    fn check_all(&self, check: impl Fn(&str, &Slot, &TensorRecord) -> Vec<ContainerError> + Sync) -> Result<()> {
        let mut errors: Vec<ContainerError> = crate::largest_first(self.slots.iter().collect(), |(_, s)| s.data.len())
            .flat_map_iter(|(name, slot)| check(name, slot, &self.manifest.tensors[name]))
            .collect();
        errors.sort_by_cached_key(ToString::to_string);
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ContainerError::Verification(errors)),
        }
    }

    /// Every tensor and alias by name, all hashes checked (in parallel) unless
    /// the bundle was opened with [`Verify::Never`].
    pub fn load_all(&self) -> Result<BTreeMap<String, Tensor>> {
        if self.verify != Verify::Never {
            self.verify_all()?;
        }
        self.tensor_infos()
            .into_iter()
            .map(|info| Ok((info.name.to_owned(), self.tensor_unverified(info.name)?)))
            .collect()
    }

    /// Names of tensors in `group`, in name order.
    pub fn group(&self, group: &str) -> Vec<&str> {
        self.manifest.tensors.iter().filter(|(_, r)| r.group == group).map(|(n, _)| n.as_str()).collect()
    }

    fn slot<'a>(&'a self, name: &'a str) -> Result<(&'a str, &'a Slot, &'a TensorRecord)> {
        let (stored, record) =
            self.manifest.resolve(name).ok_or_else(|| ContainerError::UnknownTensor { name: name.to_owned() })?;
        Ok((stored, &self.slots[stored], record))
    }

    fn verify_slot(&self, name: &str, slot: &Slot, record: &TensorRecord) -> Result<()> {
        if slot.verified.get().is_some() {
            return Ok(());
        }
        match record.chunks {
            Some(chunks) => self.check_chunk_digest(name, slot, chunks)?,
            None => self.check_sha256(name, slot, record)?,
        }
        self.check_values(name, slot, record)?;
        let _ = slot.verified.set(());
        Ok(())
    }

    fn check_sha256(&self, name: &str, slot: &Slot, record: &TensorRecord) -> Result<()> {
        let actual = Sha256Digest::of(&self.source.bytes()[slot.data.clone()]);
        if actual != record.sha256 {
            return Err(ContainerError::HashMismatch { tensor: name.to_owned(), expected: record.sha256, actual });
        }
        Ok(())
    }

    fn check_chunk_digest(&self, name: &str, slot: &Slot, chunks: ChunkDigest) -> Result<()> {
        let actual = crate::chunk_digest(&self.source.bytes()[slot.data.clone()], chunks.size);
        if actual != chunks.sha256 {
            let (tensor, size, expected) = (name.to_owned(), chunks.size, chunks.sha256);
            return Err(ContainerError::ChunkHashMismatch { tensor, size, expected, actual });
        }
        Ok(())
    }

    /// Checks what a digest cannot: every byte of a `bool` tensor is 0 or 1.
    fn check_values(&self, name: &str, slot: &Slot, record: &TensorRecord) -> Result<()> {
        if record.dtype != DType::Bool {
            return Ok(());
        }
        let data = &self.source.bytes()[slot.data.clone()];
        match data.iter().position(|&b| b > 1) {
            None => Ok(()),
            Some(at) => Err(ContainerError::BadTensorEntry {
                tensor: name.to_owned(),
                entry: slot.entry.clone(),
                reason: format!("element {at} is the byte {:#04x}; a bool is 0x00 or 0x01", data[at]),
            }),
        }
    }

    fn make_tensor(&self, name: &str, slot: &Slot, record: &TensorRecord) -> Result<Tensor> {
        let buffer = Buffer::from_owner(self.source.clone(), slot.data.clone()).expect("range checked at open");
        let shape = record.shape.iter().map(|&d| d as usize).collect();
        Tensor::from_bytes(record.dtype, shape, buffer)
            .map_err(|source| ContainerError::InvalidTensor { tensor: name.to_owned(), source })
    }
}

fn check_size(entry: &str, len: usize, max: u64) -> Result<()> {
    if len as u64 > max {
        return Err(ContainerError::entry(entry, format!("{len} bytes, above the spec's limit of {max}")));
    }
    Ok(())
}

/// Locates the data of a tensor entry after checking its `.npy` header against the manifest.
fn tensor_data(
    name: &str,
    entry: &str,
    record: &TensorRecord,
    head: &[u8],
    range: &Range<usize>,
) -> Result<Range<usize>> {
    let bad = |reason: String| ContainerError::BadTensorEntry { tensor: name.into(), entry: entry.into(), reason };
    let header = npy::decode_header(head).map_err(bad)?;
    if header.descr != record.dtype.npy_descr() {
        return Err(bad(format!(
            ".npy descr is `{}`, but the manifest's dtype {} is stored as `{}`",
            header.descr,
            record.dtype,
            record.dtype.npy_descr()
        )));
    }
    if header.fortran_order {
        return Err(bad(".npy data is in Fortran order; bundles store C order".into()));
    }
    if header.shape != record.shape {
        return Err(bad(format!(".npy shape {:?} differs from the manifest's {:?}", header.shape, record.shape)));
    }
    let declared = record.byte_size().map_err(|e| bad(e.to_string()))?;
    let stored = (range.len() - header.data_offset) as u64;
    if stored != declared {
        return Err(bad(format!("{stored} data bytes stored, dtype and shape need {declared}")));
    }
    Ok(range.start + header.data_offset..range.end)
}

/// One entry's place in the file.
#[derive(Debug)]
struct Located {
    /// Where its local header starts.
    header: usize,
    data: Range<usize>,
    /// The first bytes of the data, enough for a `.npy` header.
    head: Vec<u8>,
}

/// Longest `.npy` preamble and header: magic, version, length, header text.
const NPY_HEAD_BYTES: usize = 12 + MAX_NPY_HEADER_BYTES;

/// Where entry headers are read from: the bundle's bytes, or the file behind
/// a memory map. Each local header of a large bundle sits on a page (and
/// page table) of its own; reading it with `pread` costs less than mapping
/// that page in and out, which was half the time of opening 256 tensors.
#[derive(Clone, Copy)]
enum Headers<'a> {
    Bytes(&'a [u8]),
    #[cfg(unix)]
    File {
        file: &'a File,
        len: usize,
    },
}

impl<'a> Headers<'a> {
    #[cfg(unix)]
    fn file(file: &'a File, bytes: &'a [u8]) -> Self {
        Headers::File { file, len: bytes.len() }
    }

    #[cfg(not(unix))]
    fn file(_: &'a File, bytes: &'a [u8]) -> Self {
        Headers::Bytes(bytes)
    }

    /// Up to `len` bytes from `start`, fewer at the end of the file.
    fn read(&self, start: usize, len: usize) -> std::io::Result<Cow<'a, [u8]>> {
        match *self {
            Headers::Bytes(bytes) => {
                let start = start.min(bytes.len());
                Ok(Cow::Borrowed(&bytes[start..start.saturating_add(len).min(bytes.len())]))
            }
            #[cfg(unix)]
            Headers::File { file, len: file_len } => {
                use std::os::unix::fs::FileExt;
                let start = start.min(file_len);
                let mut buf = vec![0; len.min(file_len - start)];
                file.read_exact_at(&mut buf, start as u64)?;
                Ok(Cow::Owned(buf))
            }
        }
    }
}

/// Reads the central directory and checks every entry against the container
/// rules; returns entry name to data range.
fn scan_entries(bytes: &[u8], headers: Headers<'_>) -> Result<Layout> {
    scan_entries_limited(bytes, headers, MAX_ENTRIES)
}

/// The entries of an archive and where its central directory starts.
struct Layout {
    entries: BTreeMap<String, Located>,
    directory_start: usize,
}

/// One central-directory record, read raw.
pub(crate) struct RawRecord<'a> {
    /// The offset of the record.
    pub(crate) start: usize,
    pub(crate) name: &'a [u8],
    /// The local header's offset (0xFFFFFFFF when in a ZIP64 field).
    local_header: u32,
    /// The offset just past the record.
    pub(crate) end: usize,
}

/// The central-directory records from `cd_start`, read raw (the zip crate
/// keeps one entry per name and reads records by count). Stops at the first
/// byte that is not a record.
pub(crate) fn raw_directory(bytes: &[u8], cd_start: usize) -> impl Iterator<Item = RawRecord<'_>> {
    let field =
        |at: usize| -> Option<usize> { Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?).into()) };
    let mut at = cd_start;
    std::iter::from_fn(move || {
        if bytes.get(at..at + 4)? != b"PK\x01\x02" {
            return None;
        }
        let (name_len, extra_len, comment_len) = (field(at + 28)?, field(at + 30)?, field(at + 32)?);
        let name = bytes.get(at + 46..at + 46 + name_len)?;
        let local_header = le32(bytes, at + 42);
        let start = at;
        at += 46 + name_len + extra_len + comment_len;
        Some(RawRecord { start, name, local_header, end: at })
    })
}

/// The first entry name that appears twice in the central directory.
fn duplicate_name(bytes: &[u8], cd_start: usize) -> Option<String> {
    let mut seen = HashSet::new();
    raw_directory(bytes, cd_start).find(|r| !seen.insert(r.name)).map(|r| String::from_utf8_lossy(r.name).into_owned())
}

/// The central directory's size as the end record declares it (the ZIP64
/// end record's when the classic field is saturated); `None` when no end
/// record that ends the file is found.
fn declared_directory_size(bytes: &[u8]) -> Option<u64> {
    const EOCD: usize = 22;
    let last = bytes.len().checked_sub(EOCD)?;
    let eocd = (last.saturating_sub(u16::MAX as usize)..=last).rev().find(|&at| {
        bytes[at..at + 4] == *b"PK\x05\x06" && at + EOCD + usize::from(le16(bytes, at + 20)) == bytes.len()
    })?;
    let size = le32(bytes, eocd + 12);
    if size != u32::MAX {
        return Some(size.into());
    }
    let locator = eocd.checked_sub(20)?;
    if bytes[locator..locator + 4] != *b"PK\x06\x07" {
        return None;
    }
    let record = usize::try_from(le64(bytes, locator + 8)).ok()?;
    (bytes.get(record..record + 56)?[..4] == *b"PK\x06\x06").then(|| le64(bytes, record + 40))
}

/// Checks the rules the zip crate does not, before any entry: the first
/// entry starts the file (no prefix bytes), and the end record's directory
/// size is the size of the records there.
fn check_archive_bounds(bytes: &[u8], cd_start: usize) -> Result<()> {
    // Every record there (the zip crate counts an entry with a repeated name once).
    let records: Vec<RawRecord<'_>> = raw_directory(bytes, cd_start).collect();
    if let Some(first) = records.iter().map(|r| r.local_header).min().filter(|&f| f != 0) {
        return Err(ContainerError::NotAZip {
            reason: format!("{first} bytes precede the first entry; a bundle's archive starts at offset 0"),
        });
    }
    let end = records.last().map_or(cd_start, |r| r.end);
    let walked = (end - cd_start) as u64;
    match declared_directory_size(bytes) {
        Some(declared) if declared == walked => Ok(()),
        Some(declared) => Err(ContainerError::NotAZip {
            reason: format!(
                "the end record gives the central directory {declared} bytes, its {} records take {walked}",
                records.len()
            ),
        }),
        None => Err(ContainerError::NotAZip { reason: "no end-of-central-directory record ends the file".into() }),
    }
}

fn scan_entries_limited(bytes: &[u8], headers: Headers<'_>, max_entries: usize) -> Result<Layout> {
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(ContainerError::zip)?;
    if archive.len() > max_entries {
        return Err(ContainerError::NotAZip {
            reason: format!("{} entries, above the limit of {max_entries} (MAX_ENTRIES)", archive.len()),
        });
    }
    if archive.offset() != 0 {
        return Err(ContainerError::NotAZip { reason: format!("{} bytes precede the first entry", archive.offset()) });
    }
    let cd_start = usize::try_from(archive.central_directory_start()).unwrap_or(usize::MAX);
    check_archive_bounds(bytes, cd_start)?;
    if archive.has_duplicate_names() {
        // The zip crate keeps one entry per name: find the repeated one in the raw directory.
        let name = duplicate_name(bytes, cd_start).unwrap_or_else(|| "(unknown)".into());
        return Err(ContainerError::entry(name, "appears twice in the central directory"));
    }
    let mut out = BTreeMap::new();
    let mut spans = Vec::with_capacity(archive.len());
    let mut signatures = 0;
    for index in 0..archive.len() {
        let file = archive.by_index_data(index).map_err(ContainerError::zip)?;
        let raw_name = file.name_raw();
        let name = String::from_utf8_lossy(raw_name).into_owned();
        let Ok(utf8) = std::str::from_utf8(raw_name) else {
            return Err(ContainerError::entry(name, "name is not UTF-8"));
        };
        check_entry_name(utf8)?;
        if file.encrypted() {
            return Err(ContainerError::entry(name, "is encrypted"));
        }
        let special = file.unix_mode().is_some_and(|m| m & 0o170000 != 0 && m & 0o170000 != 0o100000);
        if file.is_symlink() || file.is_dir() || special {
            return Err(ContainerError::entry(name, "is not a regular file"));
        }
        if file.compression() != zip::CompressionMethod::Stored {
            return Err(ContainerError::entry(
                name,
                format!("is compressed ({}); every entry must be stored", file.compression()),
            ));
        }
        if file.size() != file.compressed_size() {
            return Err(ContainerError::entry(
                name,
                format!("stored entry declares {} bytes but occupies {}", file.size(), file.compressed_size()),
            ));
        }
        let header_start = usize::try_from(file.header_start()).unwrap_or(usize::MAX);
        let (data, head) =
            local_header(headers, bytes.len(), &name, raw_name, header_start, file.size(), file.crc32())?;
        if data.end > cd_start {
            return Err(ContainerError::entry(name, "data runs into the central directory"));
        }
        if name == MANIFEST_ENTRY {
            check_size(&name, data.len(), MAX_MANIFEST_BYTES)?;
            let crc = crc32fast::hash(&bytes[data.clone()]);
            if crc != file.crc32() {
                return Err(ContainerError::entry(
                    name,
                    format!("CRC-32 mismatch: directory says {:08x}, data gives {crc:08x}", file.crc32()),
                ));
            }
        }
        if signature_name(&name).is_some() {
            signatures += 1;
            if signatures > MAX_SIGNATURES {
                return Err(ContainerError::entry(
                    name,
                    format!("more than {MAX_SIGNATURES} signature entries (MAX_SIGNATURES)"),
                ));
            }
            check_size(&name, data.len(), MAX_SIGNATURE_BYTES)?;
        }
        spans.push((header_start, data.end, name.clone()));
        out.insert(name, Located { header: header_start, data, head });
    }
    spans.sort();
    for pair in spans.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(ContainerError::entry(pair[1].2.clone(), format!("overlaps entry `{}`", pair[0].2)));
        }
    }
    Ok(Layout { entries: out, directory_start: cd_start })
}

/// Entry names allowed by the spec: the manifest, the graph, tensors and
/// signatures.
fn check_entry_name(name: &str) -> Result<()> {
    if name == MANIFEST_ENTRY || name == GRAPH_ENTRY {
        return Ok(());
    }
    if let Some(signature) = signature_name(name) {
        return nnbundle_format::names::check_signature_name(signature)
            .map_err(|e| ContainerError::entry(name, format!("bad signature entry name: {e}")));
    }
    let tensor = name.strip_prefix(TENSOR_ENTRY_PREFIX).and_then(|n| n.strip_suffix(TENSOR_ENTRY_SUFFIX));
    match tensor {
        Some(t) => nnbundle_format::names::check_tensor_name(t)
            .map_err(|e| ContainerError::entry(name, format!("bad tensor entry name: {e}"))),
        None => Err(ContainerError::entry(
            name,
            "unexpected entry: a bundle holds only manifest.yaml, graph.yaml, tensors/<name>.npy and signatures/<name>.sigstore.json",
        )),
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks an entry's local header against the central directory and returns
/// its data range and the data's first bytes (up to [`NPY_HEAD_BYTES`]).
fn local_header(
    headers: Headers<'_>,
    file_len: usize,
    name: &str,
    raw_name: &[u8],
    start: usize,
    size: u64,
    crc: u32,
) -> Result<(Range<usize>, Vec<u8>)> {
    let bad = |reason: &str| ContainerError::entry(name, format!("local header {reason}"));
    let unreadable = |e: std::io::Error| ContainerError::entry(name, format!("local header cannot be read: {e}"));
    // One read covers the header, the name, the writer's alignment padding
    // and a `.npy` header as numpy writes it (128 bytes); longer ones take a
    // second read.
    let block = headers.read(start, 30 + raw_name.len() + 128 + 256).map_err(unreadable)?;
    let header = block.get(..30).ok_or_else(|| bad("lies outside the file"))?;
    if le32(header, 0) != 0x0403_4b50 {
        return Err(bad("has a wrong signature"));
    }
    let flags = le16(header, 6);
    if flags & 0x0001 != 0 {
        return Err(bad("marks the entry encrypted"));
    }
    if flags & 0x0008 != 0 {
        return Err(bad("defers sizes to a data descriptor, which bundles do not use"));
    }
    if le16(header, 8) != 0 {
        return Err(bad("declares a compression method"));
    }
    if le32(header, 14) != crc {
        return Err(bad("CRC-32 differs from the central directory"));
    }
    let (local_csize, local_size) = (le32(header, 18), le32(header, 22));
    if local_size != u32::MAX && (u64::from(local_size) != size || u64::from(local_csize) != size) {
        return Err(bad("sizes differ from the central directory"));
    }
    let name_len = usize::from(le16(header, 26));
    let extra_len = usize::from(le16(header, 28));
    if block.get(30..30 + name_len) != Some(raw_name) {
        return Err(bad("names a different entry"));
    }
    // Where the data starts, from the header's start.
    let offset = 30 + name_len + extra_len;
    let data_start = start + offset;
    let data = match usize::try_from(size).ok().and_then(|s| data_start.checked_add(s)) {
        Some(end) if end <= file_len => data_start..end,
        _ => return Err(ContainerError::entry(name, format!("declares {size} bytes, past the end of the file"))),
    };
    let want = data.len().min(NPY_HEAD_BYTES);
    let head = match block.get(offset..offset + want) {
        Some(head) => head.to_vec(),
        None => headers.read(data_start, want).map_err(unreadable)?.into_owned(),
    };
    Ok((data, head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_count_limit() {
        // MAX_ENTRIES is 2^20 + 2; a bundle that large is impractical here, so
        // the same check runs with a limit of 2 on a bundle of 3 entries.
        let mut w = crate::BundleWriter::new();
        w.add_tensor("a", nnbundle_format::Tensor::scalar(1u8)).unwrap();
        w.add_tensor("b", nnbundle_format::Tensor::scalar(2u8)).unwrap();
        let bytes = w.to_bytes().unwrap();
        let err = scan_entries_limited(&bytes, Headers::Bytes(&bytes), 2).err().unwrap().to_string();
        assert_eq!(err, "not a bundle: 3 entries, above the limit of 2 (MAX_ENTRIES)");
        assert!(scan_entries_limited(&bytes, Headers::Bytes(&bytes), 3).is_ok());
    }
}
