//! Reading bundles: strict container checks, lazy hashed tensor access.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
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
use crate::npy;
use crate::source::{Backend, OwnedBytes, Source};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// When to check tensor hashes.
    pub verify: Verify,
    /// How to read the file: memory-mapped (the default), positioned reads, or all in memory.
    pub backend: Backend,
}

/// A named entry's bytes: borrowed when the file is mapped or in memory.
pub type NamedBytes<'a> = (&'a str, Cow<'a, [u8]>);

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
    /// The span from the entry's local header to the next entry (or the
    /// central directory): what holds the headers and the data.
    span: Range<usize>,
    /// What the central directory says of the entry; its local and `.npy`
    /// headers are checked when the tensor is first read (spec section 6).
    unread: Unread,
    /// The tensor's data, once its headers are checked (local sources).
    data: OnceLock<Range<usize>>,
    verified: OnceLock<()>,
}

/// What the central directory says of an entry whose local header is read
/// only with its data.
#[derive(Debug, Clone)]
struct Unread {
    raw_name: Vec<u8>,
    size: u64,
    crc: u32,
}

/// An open bundle: its manifest, its graph document and lazy access to its tensors.
///
/// Opening checks the container (entries, names, sizes, the manifest and
/// graph) from the central directory and the documents; each tensor entry's
/// local and `.npy` headers are checked when the tensor is first read, before
/// its data is handed out (spec section 6, step 4). No tensor data is read.
/// Tensors handed out share the bundle's bytes (zero-copy when memory-mapped).
pub struct Bundle {
    source: Arc<Source>,
    /// The entries, as checked by the container rules.
    archive: Archive,
    manifest: Manifest,
    slots: BTreeMap<String, Slot>,
    /// The `graph.yaml` bytes (checked against the manifest at open).
    graph: Option<Vec<u8>>,
    verify: Verify,
    /// An index bundle's shards (format 1.2), opened and checked with it.
    parts: Vec<Bundle>,
    /// Which shard holds each stored tensor of an index.
    part_of: BTreeMap<String, usize>,
}

/// A bundle's zip archive after the container's entry rules (spec 2.2), before
/// its manifest is read: each entry's place, and the bytes. What signatures
/// cover (spec 10) is at this level, so a bundle whose manifest is damaged
/// can still be checked against a signature.
pub struct Archive {
    source: Arc<Source>,
    /// Entry name to where its local header starts, its data (or, when
    /// its headers are not read yet, its span) and whether they are read.
    entries: BTreeMap<String, (usize, Range<usize>, Option<Unread>)>,
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
        let (source, layout) = load(path.as_ref(), Backend::Mmap)?;
        Ok(Archive::new(source, layout))
    }

    /// Opens the bundle at `url` (see [`Bundle::open_url`]) and checks its
    /// entries without reading the manifest; tensor entries' local headers
    /// are checked when [`Archive::read_entry`] reads them.
    #[cfg(feature = "remote")]
    pub fn open_url(url: &str) -> Result<Archive> {
        let source = Arc::new(Source::Remote(crate::remote::RemoteFile::open(url)?));
        let layout = scan_entries(&source)?;
        Ok(Archive::new(source, layout))
    }

    /// Keeps each entry's place (the names move; the `.npy` heads are dropped).
    fn new(source: Arc<Source>, layout: Layout) -> Archive {
        let entries = layout.entries.into_iter().map(|(name, l)| (name, (l.header, l.data, l.unread))).collect();
        Archive { source, entries, directory_start: layout.directory_start }
    }

    /// The whole file's bytes, when it is memory-mapped or in memory (not
    /// with [`Backend::Pread`]).
    pub fn file_bytes(&self) -> Option<&[u8]> {
        self.source.as_slice()
    }

    /// The name of every entry but the signatures, sorted: what a signature
    /// covers (spec section 10). [`Archive::read_entry`] reads them.
    pub fn content_entries(&self) -> Vec<&str> {
        self.entries.keys().filter(|name| signature_name(name).is_none()).map(String::as_str).collect()
    }

    /// The stored bytes of entry `name` (for a tensor, the `.npy` header and
    /// the data): borrowed when in memory. A tensor entry is read whole from
    /// its local header on, which is checked.
    pub fn read_entry(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        let (_, data, unread) = self.entries.get(name).ok_or_else(|| ContainerError::MissingEntry {
            entry: name.to_owned(),
            reason: "asked for by name".into(),
        })?;
        match unread {
            None => self.source.read(data.start, data.len(), name),
            Some(unread) => {
                let span = unread.span(data);
                let bytes = self.source.read(span.start, span.len(), name)?;
                let data = unread.data_in(&bytes, name)?;
                Ok(match bytes {
                    Cow::Borrowed(bytes) => Cow::Borrowed(&bytes[data]),
                    Cow::Owned(mut bytes) => {
                        bytes.truncate(data.end);
                        bytes.drain(..data.start);
                        Cow::Owned(bytes)
                    }
                })
            }
        }
    }

    /// The bytes at `range` of the file: borrowed when mapped or in memory.
    pub fn read(&self, range: Range<usize>) -> Result<Cow<'_, [u8]>> {
        self.source.read(range.start, range.len(), "an entry")
    }

    /// The signature entries (format 1.2) by name, with where their bytes
    /// are. The container checks only their names, sizes and count (spec
    /// section 10); [`Archive::read`] reads them.
    pub fn signature_entries(&self) -> impl Iterator<Item = (&str, Range<usize>)> {
        self.entries.iter().filter_map(|(entry, (_, data, _))| Some((signature_name(entry)?, data.clone())))
    }

    /// The signature entries by name, with their bytes.
    pub fn signatures(&self) -> Result<Vec<NamedBytes<'_>>> {
        self.signature_entries().map(|(name, data)| Ok((name, self.read(data)?))).collect()
    }

    /// The file's length when opened.
    pub(crate) fn len(&self) -> usize {
        self.source.len()
    }

    /// Copies `range` of the file to `out`.
    pub(crate) fn copy_to(&self, range: Range<usize>, out: &mut dyn std::io::Write, dest: &Path) -> Result<()> {
        self.source.copy_to(range, out, dest)
    }

    /// The byte ranges of every entry but the signatures.
    pub(crate) fn content_entry_ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.entries.iter().filter(|(name, _)| signature_name(name).is_none()).map(|(_, (_, data, _))| data.clone())
    }

    /// Each signature's name and the offset of its local header.
    pub(crate) fn signature_headers(&self) -> impl Iterator<Item = (&str, usize)> {
        self.entries.iter().filter_map(|(entry, (header, _, _))| Some((signature_name(entry)?, *header)))
    }

    /// Where the central directory starts.
    pub(crate) fn directory_start(&self) -> usize {
        self.directory_start
    }
}

/// Opens `path` with `backend` and checks its entries.
fn load(path: &Path, backend: Backend) -> Result<(Arc<Source>, Layout)> {
    let source = Arc::new(Source::open(path, backend)?);
    let layout = scan_entries(&source)?;
    Ok((source, layout))
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
        let path = path.as_ref();
        let (source, layout) = load(path, options.backend)?;
        Bundle::from_layout(source, layout, options, Some(Shards::Beside(path)))
    }

    /// Opens a bundle or an index from a URL (`http(s)://`, `s3://`,
    /// `gs://`, `az://`), verifying each tensor's hash on first access.
    /// Credentials and endpoints come from the environment (object_store's
    /// builders' `from_env`: `AWS_*`, `GOOGLE_*`, `AZURE_*`).
    ///
    /// Opening reads the object's last [`crate::TAIL_BYTES`] and the entries
    /// before the first tensor: two range requests. Each tensor is one
    /// range request; its local and `.npy` headers are checked when it is
    /// read, and it is hashed before it is handed out. An index's shards are
    /// found beside it (relative to its URL).
    #[cfg(feature = "remote")]
    pub fn open_url(url: &str) -> Result<Bundle> {
        Bundle::open_url_with(url, Verify::OnAccess)
    }

    /// [`Bundle::open_url`] with the given hash policy.
    #[cfg(feature = "remote")]
    pub fn open_url_with(url: &str, verify: Verify) -> Result<Bundle> {
        let file = crate::remote::RemoteFile::open(url)?;
        let source = Arc::new(Source::Remote(file));
        let layout = scan_entries(&source)?;
        let options = OpenOptions { verify, backend: Backend::Pread };
        let index = source.clone();
        let place = Shards::BesideUrl(index.remote().expect("a remote source"));
        Bundle::from_layout(source, layout, options, Some(place))
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
    pub fn from_owner(owner: Arc<dyn ByteOwner>, verify: Verify) -> Result<Bundle> {
        let source = Arc::new(Source::Memory(owner));
        let layout = scan_entries(&source)?;
        Bundle::from_layout(source, layout, OpenOptions { verify, backend: Backend::Memory }, None)
    }

    /// Checks the manifest, graph and tensor entries of a scanned archive;
    /// `path` is where it was opened from (an index finds its shards beside it).
    fn from_layout(
        source: Arc<Source>,
        entries: Layout,
        options: OpenOptions,
        shards: Option<Shards<'_>>,
    ) -> Result<Bundle> {
        let verify = options.verify;
        let layout = &entries.entries;
        let manifest_range = layout.get(MANIFEST_ENTRY).ok_or_else(|| ContainerError::MissingEntry {
            entry: MANIFEST_ENTRY.into(),
            reason: "every bundle has a manifest".into(),
        })?;
        let manifest_bytes = source.read(manifest_range.data.start, manifest_range.data.len(), MANIFEST_ENTRY)?;
        let manifest = Manifest::parse(&manifest_bytes)
            .map_err(|source| ContainerError::Document { entry: MANIFEST_ENTRY.into(), source })?;

        let graph = match (&manifest.graph, layout.get(GRAPH_ENTRY)) {
            (Some(record), Some(entry)) => {
                check_size(GRAPH_ENTRY, entry.data.len(), MAX_GRAPH_BYTES)?;
                let text = source.read(entry.data.start, entry.data.len(), GRAPH_ENTRY)?.into_owned();
                let actual = Sha256Digest::of(&text);
                if actual != record.sha256 {
                    return Err(ContainerError::entry(
                        GRAPH_ENTRY,
                        format!("SHA-256 mismatch: manifest says {}, entry hashes to {actual}", record.sha256),
                    ));
                }
                Some(text)
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

        let (parts, part_of) = match manifest.shards.is_empty() {
            true => (Vec::new(), BTreeMap::new()),
            false => match shards {
                Some(Shards::Refused) => {
                    return Err(ContainerError::InvalidContent {
                        reason: "a shard is itself an index (it has shards); shards hold tensors".into(),
                    });
                }
                Some(place) => open_shards(&manifest, place, options)?,
                None => {
                    return Err(ContainerError::InvalidContent {
                        reason: "an index bundle (it has shards) must be opened from its file, beside its shards"
                            .into(),
                    });
                }
            },
        };
        let mut slots = BTreeMap::new();
        for name in manifest.tensors.keys().filter(|name| !part_of.contains_key(*name)) {
            let entry = nnbundle_format::tensor_entry_name(name);
            let located = layout.get(&entry).ok_or_else(|| {
                header_error(&source, layout).unwrap_or_else(|| ContainerError::MissingEntry {
                    entry: entry.clone(),
                    reason: format!("the manifest lists tensor `{name}`"),
                })
            })?;
            let unread = located.unread.clone().expect("tensor entries are read with their data");
            let span = located.data.clone();
            slots.insert(name.clone(), Slot { entry, span, unread, data: OnceLock::new(), verified: OnceLock::new() });
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
            return Err(header_error(&source, layout)
                .unwrap_or_else(|| ContainerError::entry(stray, "not listed in the manifest")));
        }
        let archive = Archive::new(source.clone(), entries);
        let bundle = Bundle { source, archive, manifest, slots, graph, verify, parts, part_of };
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

    /// The whole file's bytes, when memory-mapped or in memory (see [`Archive::file_bytes`]).
    pub fn file_bytes(&self) -> Option<&[u8]> {
        self.archive.file_bytes()
    }

    /// The signature entries by name, with their bytes (see [`Archive::signatures`]).
    pub fn signatures(&self) -> Result<Vec<NamedBytes<'_>>> {
        self.archive.signatures()
    }

    /// Reads the tensors `names` (or aliases) in parallel, checking each
    /// one's hash as the open options say: reading and hashing overlap, one
    /// tensor per thread. With positioned or remote reads each stored tensor
    /// is read once, in file order (remote: neighbouring tensors in one
    /// request). Each name once in the result.
    pub fn prefetch(&self, names: &[&str]) -> Result<BTreeMap<String, Tensor>> {
        if self.is_index() || self.source.is_shared() {
            return names.par_iter().map(|name| Ok(((*name).to_owned(), self.tensor(name)?))).collect();
        }
        let mut wanted: BTreeMap<&String, Vec<&str>> = BTreeMap::new();
        for name in names {
            let (stored, _, _) = self.slot(name)?;
            let (key, _) = self.slots.get_key_value(stored).expect("a resolved tensor has a slot");
            wanted.entry(key).or_default().push(name);
        }
        let slots = wanted.keys().map(|key| (*key, &self.slots[*key])).collect();
        let read = self.each_slot(slots, |name, slot, data| self.checked_tensor(name, slot, data?));
        let mut out = BTreeMap::new();
        for tensor in read {
            let (stored, tensor) = tensor?;
            for name in &wanted[&stored] {
                out.insert((*name).to_owned(), tensor.clone());
            }
        }
        Ok(out)
    }

    /// `data` of stored tensor `name` as a tensor, its hash checked unless
    /// the bundle was opened with [`Verify::Never`].
    fn checked_tensor(&self, name: &str, slot: &Slot, data: Buffer) -> Result<(String, Tensor)> {
        let record = &self.manifest.tensors[name];
        if self.verify != Verify::Never {
            self.verify_slot(name, slot, record, data.as_bytes())?;
        }
        Ok((name.to_owned(), make_tensor(name, record, data)?))
    }

    /// The bundle digest (SHA-256 of the manifest's canonical form).
    pub fn digest(&self) -> Sha256Digest {
        self.manifest.bundle_digest().expect("a parsed manifest has a canonical form")
    }

    /// The `graph.yaml` bytes, when the bundle has a graph (already checked
    /// against the manifest's SHA-256).
    pub fn graph_yaml(&self) -> Option<&[u8]> {
        self.graph.as_deref()
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
            .map(|i| (i.name.to_owned(), WeightInfo::from(i.record)))
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
        if let Some((part, stored)) = self.in_part(name) {
            return part.tensor(stored);
        }
        let (stored, slot, record) = self.slot(name)?;
        let data = self.data(stored, slot)?;
        if self.verify != Verify::Never {
            self.verify_slot(stored, slot, record, data.as_bytes())?;
        }
        make_tensor(stored, record, data)
    }

    /// Reads tensor `name` without checking its hash.
    pub fn tensor_unverified(&self, name: &str) -> Result<Tensor> {
        if let Some((part, stored)) = self.in_part(name) {
            return part.tensor_unverified(stored);
        }
        let (stored, slot, record) = self.slot(name)?;
        make_tensor(stored, record, self.data(stored, slot)?)
    }

    /// The shard holding tensor (or alias) `name`, and its stored name, for an index.
    fn in_part<'a>(&'a self, name: &'a str) -> Option<(&'a Bundle, &'a str)> {
        let (stored, _) = self.manifest.resolve(name)?;
        self.part_of.get(stored).map(|&i| (&self.parts[i], stored))
    }

    /// Whether this is an index bundle whose tensors are in shard files.
    pub fn is_index(&self) -> bool {
        !self.parts.is_empty()
    }

    /// Runs `check` on every shard, collecting their errors (an index's own
    /// entries hold no tensors).
    fn check_parts(&self, check: impl Fn(&Bundle) -> Result<()>) -> Result<()> {
        let errors = self
            .parts
            .iter()
            .filter_map(|part| check(part).err())
            .flat_map(|e| match e {
                ContainerError::Verification(all) => all,
                other => vec![other],
            })
            .collect();
        all_of(errors)
    }

    /// Tensor `name`'s data bytes, its headers checked. From a local source:
    /// the headers are read (once) with a small read, then the data is shared
    /// (mapped, in memory) or read into a buffer of its own (`pread`). From a
    /// remote one: the whole entry with one request.
    fn data(&self, name: &str, slot: &Slot) -> Result<Buffer> {
        let what = format!("tensor `{name}` (entry `{}`)", slot.entry);
        #[cfg(feature = "remote")]
        if self.source.remote().is_some() {
            let span = slot.unread.span(&slot.span);
            return self.resolve(name, slot, &self.source.read(span.start, span.len(), &what)?);
        }
        let data = match slot.data.get() {
            Some(data) => data.clone(),
            None => {
                let data = self.locate(name, slot, &what)?;
                slot.data.get_or_init(|| data).clone()
            }
        };
        self.source.buffer(data, &what)
    }

    /// Reads and checks the local and `.npy` headers of tensor `name`'s
    /// entry (`what` in read errors); returns where its data is.
    fn locate(&self, name: &str, slot: &Slot, what: &str) -> Result<Range<usize>> {
        let (data, first) = slot.unread.local_header(&self.source, (&slot.entry, what), &slot.span)?;
        let need = npy::header_extent(&first).unwrap_or(NPY_HEAD_BYTES).min(NPY_HEAD_BYTES).min(data.len());
        let head = match first.get(..need) {
            Some(head) => Cow::Borrowed(head),
            None => self.source.read(data.start, need, what)?,
        };
        tensor_data(name, &slot.entry, &self.manifest.tensors[name], &head, &data)
    }

    /// Checks the local and `.npy` headers of an entry read whole (from its
    /// local header on) and copies out the tensor's data.
    #[cfg(feature = "remote")]
    fn resolve(&self, name: &str, slot: &Slot, entry: &[u8]) -> Result<Buffer> {
        let data = slot.unread.data_in(entry, &slot.entry)?;
        let head = &entry[data.start..data.start + data.len().min(NPY_HEAD_BYTES)];
        let tensor = tensor_data(name, &slot.entry, &self.manifest.tensors[name], head, &data)?;
        Ok(crate::source::Aligned::copy_of(&entry[tensor]))
    }

    /// Hashes every tensor not yet verified, in parallel, and reports every
    /// mismatch. A tensor with a chunk digest is checked by that digest alone.
    pub fn verify_all(&self) -> Result<()> {
        if self.is_index() {
            return self.check_parts(Bundle::verify_all);
        }
        self.check_all(|name, slot, record, data| {
            self.verify_slot(name, slot, record, data).err().into_iter().collect()
        })
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
        if self.is_index() {
            return self.check_parts(|part| part.verify_every_digest_reporting(progress));
        }
        self.check_all(|name, slot, record, data| {
            let chunked = record.chunks.map(|c| check_chunk_digest(name, data, c));
            let whole = record.sha256.map(|d| check_sha256(name, data, d));
            let errors = [whole, chunked, Some(check_values(name, slot, data, record))]
                .into_iter()
                .flatten()
                .filter_map(Result::err)
                .collect();
            progress(data.len() as u64);
            errors
        })
    }

    /// Reads every tensor and runs `check` on its data, in parallel, largest
    /// first, collecting every error.
    fn check_all(&self, check: impl Fn(&str, &Slot, &TensorRecord, &[u8]) -> Vec<ContainerError> + Sync) -> Result<()> {
        let mut errors: Vec<ContainerError> = self
            .each_tensor(|name, slot, data| match data {
                Ok(data) => check(name, slot, &self.manifest.tensors[name], data.as_bytes()),
                Err(e) => vec![e],
            })
            .into_iter()
            .flatten()
            .collect();
        errors.sort_by_cached_key(ToString::to_string);
        all_of(errors)
    }

    /// Reads every stored tensor's data and calls `f` on it, in parallel:
    /// largest first from shared bytes; with positioned reads, one thread
    /// reads in file order (at most four tensors ahead) while the others
    /// hash, so reading and hashing overlap.
    fn each_tensor<T: Send>(&self, f: impl Fn(&str, &Slot, Result<Buffer>) -> T + Sync) -> Vec<T> {
        self.each_slot(self.slots.iter().collect(), f)
    }

    /// [`Bundle::each_tensor`] for the tensors of `slots`.
    fn each_slot<'a, T: Send>(
        &'a self,
        slots: Vec<(&'a String, &'a Slot)>,
        f: impl Fn(&str, &Slot, Result<Buffer>) -> T + Sync,
    ) -> Vec<T> {
        if self.source.is_shared() {
            return crate::largest_first(slots, |(_, s)| s.span.len())
                .map(|(name, slot)| f(name, slot, self.data(name, slot)))
                .collect();
        }
        let mut in_file_order = slots;
        in_file_order.sort_by_key(|(_, slot)| slot.span.start);
        let (sender, receiver) = std::sync::mpsc::sync_channel(4);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                #[cfg(feature = "remote")]
                if let Some(remote) = self.source.remote() {
                    return self.read_remote(remote, in_file_order, &sender);
                }
                for (name, slot) in in_file_order {
                    if sender.send((name, slot, self.data(name, slot))).is_err() {
                        break;
                    }
                }
            });
            receiver.into_iter().par_bridge().map(|(name, slot, data)| f(name, slot, data)).collect()
        })
    }

    /// Reads the entries of `slots` (in file order) from a remote object in
    /// batches (object_store merges neighbouring ranges into one request and
    /// runs several at once), sending each tensor's checked data.
    #[cfg(feature = "remote")]
    #[allow(clippy::type_complexity)]
    fn read_remote<'a>(
        &'a self,
        remote: &crate::remote::RemoteFile,
        slots: Vec<(&'a String, &'a Slot)>,
        sender: &std::sync::mpsc::SyncSender<(&'a String, &'a Slot, Result<Buffer>)>,
    ) {
        let spans: Vec<Range<usize>> = slots.iter().map(|(_, slot)| slot.unread.span(&slot.span)).collect();
        remote.read_batched(&spans, "tensor entries", |i, bytes| {
            let (name, slot) = slots[i];
            let data = bytes.and_then(|bytes| self.resolve(name, slot, &bytes));
            sender.send((name, slot, data)).is_ok()
        });
    }

    /// Every tensor and alias by name, all hashes checked (in parallel) unless
    /// the bundle was opened with [`Verify::Never`]. Each tensor's bytes are
    /// read once.
    pub fn load_all(&self) -> Result<BTreeMap<String, Tensor>> {
        if self.is_index() {
            let mut stored = BTreeMap::new();
            for part in &self.parts {
                stored.extend(part.load_all()?);
            }
            return Ok(self.with_aliases(stored));
        }
        if !self.source.is_shared() {
            let read = self.each_tensor(|name, slot, data| self.checked_tensor(name, slot, data?));
            return Ok(self.with_aliases(read.into_iter().collect::<Result<_>>()?));
        }
        if self.verify != Verify::Never {
            self.verify_all()?;
        }
        self.tensor_infos()
            .into_iter()
            .map(|info| Ok((info.name.to_owned(), self.tensor_unverified(info.name)?)))
            .collect()
    }

    /// `stored` (every stored tensor by name) with each alias added, sharing its target's data.
    fn with_aliases(&self, mut stored: BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
        for (alias, target) in &self.manifest.aliases {
            let tied = stored[target].clone();
            stored.insert(alias.clone(), tied);
        }
        stored
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

    /// Checks `data` against the tensor's digest (the chunk digest when it has
    /// one) and bool bytes. Shared bytes (mapped or in memory) are checked
    /// once; bytes read with `pread` are new at every read and checked each time.
    fn verify_slot(&self, name: &str, slot: &Slot, record: &TensorRecord, data: &[u8]) -> Result<()> {
        if self.source.is_shared() && slot.verified.get().is_some() {
            return Ok(());
        }
        match (record.chunks, record.sha256) {
            (Some(chunks), _) => check_chunk_digest(name, data, chunks)?,
            (None, Some(sha256)) => check_sha256(name, data, sha256)?,
            (None, None) => {
                return Err(ContainerError::InvalidContent { reason: format!("tensor `{name}` has no digest") });
            }
        }
        check_values(name, slot, data, record)?;
        let _ = slot.verified.set(());
        Ok(())
    }
}

/// The first tensor entry (in file order) whose local header disagrees with
/// the central directory, for an archive whose entries and manifest
/// disagree: a damaged directory name explains both, and the reader that
/// checks local headers at open (spec 6, step 1) reports it. Not for remote
/// sources, where each header would cost a request.
fn header_error(source: &Source, layout: &BTreeMap<String, Located>) -> Option<ContainerError> {
    #[cfg(feature = "remote")]
    if source.remote().is_some() {
        return None;
    }
    let mut tensors: Vec<(&String, &Located)> = layout.iter().filter(|(_, l)| l.unread.is_some()).collect();
    tensors.sort_by_key(|(_, l)| l.header);
    tensors
        .into_iter()
        .find_map(|(entry, located)| located.unread.as_ref()?.local_header(source, (entry, entry), &located.data).err())
}

/// No error, the one error, or all of them.
fn all_of(mut errors: Vec<ContainerError>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(ContainerError::Verification(errors)),
    }
}

fn check_sha256(name: &str, data: &[u8], expected: Sha256Digest) -> Result<()> {
    let actual = Sha256Digest::of(data);
    if actual != expected {
        return Err(ContainerError::HashMismatch { tensor: name.to_owned(), expected, actual });
    }
    Ok(())
}

fn check_chunk_digest(name: &str, data: &[u8], chunks: ChunkDigest) -> Result<()> {
    let actual = crate::chunk_digest(data, chunks.size);
    if actual != chunks.sha256 {
        let (tensor, size, expected) = (name.to_owned(), chunks.size, chunks.sha256);
        return Err(ContainerError::ChunkHashMismatch { tensor, size, expected, actual });
    }
    Ok(())
}

/// Checks what a digest cannot: every byte of a `bool` tensor is 0 or 1.
fn check_values(name: &str, slot: &Slot, data: &[u8], record: &TensorRecord) -> Result<()> {
    if record.dtype != DType::Bool {
        return Ok(());
    }
    match data.iter().position(|&b| b > 1) {
        None => Ok(()),
        Some(at) => Err(ContainerError::BadTensorEntry {
            tensor: name.to_owned(),
            entry: slot.entry.clone(),
            reason: format!("element {at} is the byte {:#04x}; a bool is 0x00 or 0x01", data[at]),
        }),
    }
}

fn make_tensor(name: &str, record: &TensorRecord, data: Buffer) -> Result<Tensor> {
    let shape = record.shape.iter().map(|&d| d as usize).collect();
    Tensor::from_bytes(record.dtype, shape, data)
        .map_err(|source| ContainerError::InvalidTensor { tensor: name.to_owned(), source })
}

/// Where an opened bundle's shards may come from.
#[derive(Clone, Copy)]
enum Shards<'a> {
    /// Beside the index at this path.
    Beside(&'a Path),
    /// Beside the index at this URL, in the same store.
    #[cfg(feature = "remote")]
    BesideUrl(&'a crate::remote::RemoteFile),
    /// Nowhere: this bundle is itself a shard.
    Refused,
}

impl Shards<'_> {
    /// Opens the shard `name` after the checks its place allows before
    /// reading it (a regular file, of the size the index gives); returns
    /// what errors call it and its source.
    fn open(self, name: &str, size: u64, backend: Backend) -> Result<(PathBuf, Arc<Source>)> {
        let (label, source) = match self {
            Shards::Beside(index) => {
                let file = index.parent().unwrap_or(Path::new(".")).join(name);
                let bad = |reason: String| ContainerError::Shard { file: file.clone(), reason };
                let meta = std::fs::symlink_metadata(&file).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => bad(MISSING_SHARD.into()),
                    _ => bad(format!("cannot be read: {e}")),
                })?;
                if !meta.file_type().is_file() {
                    return Err(bad("is not a regular file (symbolic links are not followed)".into()));
                }
                check_shard_size(meta.len(), size).map_err(bad)?;
                let source = Source::open(&file, backend).map_err(|e| bad(e.to_string()))?;
                (file, source)
            }
            #[cfg(feature = "remote")]
            Shards::BesideUrl(index) => {
                let file = PathBuf::from(index.sibling_url(name));
                let bad = |reason: String| ContainerError::Shard { file: file.clone(), reason };
                let remote = index.open_sibling(name).map_err(|e| match e {
                    ContainerError::Remote { not_found: true, .. } => bad(MISSING_SHARD.into()),
                    e => bad(e.to_string()),
                })?;
                check_shard_size(remote.len() as u64, size).map_err(bad)?;
                (file, Source::Remote(remote))
            }
            Shards::Refused => unreachable!("a shard's shards are refused before they are opened"),
        };
        Ok((label, Arc::new(source)))
    }
}

const MISSING_SHARD: &str = "missing: the index lists it, the folder does not hold it";

fn check_shard_size(actual: u64, listed: u64) -> std::result::Result<(), String> {
    match actual == listed {
        true => Ok(()),
        false => Err(format!("is {actual} bytes, the index says {listed} (truncated, or another file)")),
    }
}

/// Opens and checks an index's shards, in the index's folder: each file is
/// there, a regular file (symbolic links are not followed), of the size the
/// index gives, a valid bundle that is not itself an index, with the bundle
/// digest the index gives, holding exactly the tensors listed, with the
/// index's records for them. Every failure names the shard file.
fn open_shards(
    manifest: &Manifest,
    place: Shards<'_>,
    options: OpenOptions,
) -> Result<(Vec<Bundle>, BTreeMap<String, usize>)> {
    // Opened in parallel (over a network each open waits for two round
    // trips, so remote shards get threads of their own rather than one per
    // core), checked in order (the first failing shard is the one reported).
    let open_all = || -> Vec<Result<(PathBuf, Bundle)>> {
        manifest
            .shards
            .par_iter()
            .map(|shard| {
                let (file, source) = place.open(&shard.file, shard.size, options.backend)?;
                // A shard that is an index is refused before its own shards are
                // opened (an index naming itself would otherwise open itself
                // without end).
                let part = scan_entries(&source)
                    .and_then(|layout| Bundle::from_layout(source, layout, options, Some(Shards::Refused)))
                    .map_err(|e| ContainerError::Shard { file: file.clone(), reason: e.to_string() })?;
                Ok((file, part))
            })
            .collect()
    };
    let opened = match place {
        #[cfg(feature = "remote")]
        Shards::BesideUrl(_) => match crate::remote::waiting_pool() {
            Some(pool) => pool.install(open_all),
            None => open_all(),
        },
        _ => open_all(),
    };
    let mut parts = Vec::with_capacity(manifest.shards.len());
    let mut part_of = BTreeMap::new();
    for (i, (shard, opened)) in manifest.shards.iter().zip(opened).enumerate() {
        let (file, part) = opened?;
        let bad = |reason: String| ContainerError::Shard { file: file.clone(), reason };
        let digest = part.digest();
        if digest != shard.bundle_digest {
            return Err(bad(format!(
                "has bundle digest {}, the index says {} (another shard, or swapped)",
                digest.short(16),
                shard.bundle_digest.short(16)
            )));
        }
        let held: Vec<&String> = part.manifest.tensors.keys().collect();
        if held.len() != shard.tensors.len() || held.iter().zip(&shard.tensors).any(|(a, b)| *a != b) {
            return Err(bad(format!("holds other tensors than the {} the index lists", shard.tensors.len())));
        }
        for name in &shard.tensors {
            if part.manifest.tensors[name] != manifest.tensors[name] {
                return Err(bad(format!("its record of tensor `{name}` differs from the index's")));
            }
            part_of.insert(name.clone(), i);
        }
        parts.push(part);
    }
    Ok((parts, part_of))
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
    /// Its data; for a tensor entry (not read at open), the span from its
    /// local header to the next entry.
    data: Range<usize>,
    /// Set for a tensor entry, whose local header is read only with its data.
    unread: Option<Unread>,
}

impl Unread {
    /// Checks the local header at the start of `entry_bytes` (the entry
    /// `name` read from its header on); returns where its data is in them.
    fn data_in(&self, entry_bytes: &[u8], name: &str) -> Result<Range<usize>> {
        let offset = check_local_header(entry_bytes, name, &self.raw_name, self.size, self.crc)?;
        let data = offset..offset.saturating_add(usize::try_from(self.size).unwrap_or(usize::MAX));
        if data.end > entry_bytes.len() {
            return Err(runs_into_next(name, self.size));
        }
        Ok(data)
    }

    /// Reads and checks the local header of the entry `name` (`what` in read
    /// errors) at the start of `span`: [`local_header`], and the data must
    /// end within the span.
    fn local_header(
        &self,
        source: &Source,
        (name, what): (&str, &str),
        span: &Range<usize>,
    ) -> Result<(Range<usize>, Vec<u8>)> {
        let (data, first) = local_header(source, (name, what), &self.raw_name, span.start, self.size, self.crc)?;
        if data.end > span.end {
            return Err(runs_into_next(name, self.size));
        }
        Ok((data, first))
    }

    /// The bytes to read for the entry at `span`: from its local header, at
    /// most up to the next entry, and no more than the headers and data can take.
    fn span(&self, span: &Range<usize>) -> Range<usize> {
        let most = 30 + self.raw_name.len() + usize::from(u16::MAX);
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        span.start..span.end.min(span.start.saturating_add(most).saturating_add(size))
    }
}

/// The error for an entry whose declared size overruns its span.
fn runs_into_next(entry: &str, size: u64) -> ContainerError {
    ContainerError::entry(entry, format!("declares {size} bytes, which run into the next entry"))
}

/// Longest `.npy` preamble and header: magic, version, length, header text.
const NPY_HEAD_BYTES: usize = 12 + MAX_NPY_HEADER_BYTES;

/// Reads the central directory and checks every entry against the container
/// rules; returns entry name to data range.
fn scan_entries(source: &Source) -> Result<Layout> {
    scan_entries_limited(source, MAX_ENTRIES)
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

/// The central directory's size and offset as the end record declares them
/// (the ZIP64 end record's when the classic field is saturated); `None` when
/// no end record that ends the file is found. `bytes` is the end of the
/// file, starting at file offset `base`.
fn declared_directory(bytes: &[u8], base: usize) -> Option<(u64, u64)> {
    const EOCD: usize = 22;
    let last = bytes.len().checked_sub(EOCD)?;
    let eocd = (last.saturating_sub(u16::MAX as usize)..=last).rev().find(|&at| {
        bytes[at..at + 4] == *b"PK\x05\x06" && at + EOCD + usize::from(le16(bytes, at + 20)) == bytes.len()
    })?;
    let (size, offset) = (le32(bytes, eocd + 12), le32(bytes, eocd + 16));
    if size != u32::MAX && offset != u32::MAX {
        return Some((size.into(), offset.into()));
    }
    let classic = (size != u32::MAX).then_some((size.into(), offset.into()));
    let Some(locator) = eocd.checked_sub(20).filter(|&l| bytes[l..l + 4] == *b"PK\x06\x07") else { return classic };
    let record = usize::try_from(le64(bytes, locator + 8)).ok()?.checked_sub(base)?;
    let record = bytes.get(record..record + 56)?;
    (record[..4] == *b"PK\x06\x06").then(|| {
        let size = if size == u32::MAX { le64(record, 40) } else { size.into() };
        let offset = if offset == u32::MAX { le64(record, 48) } else { offset.into() };
        (size, offset)
    })
}

/// Reads a remote bundle's central directory with one request when it
/// starts before the tail the opening request read (more than about 10,000
/// entries), rather than record by record.
#[cfg(feature = "remote")]
fn read_directory_ahead(remote: &crate::remote::RemoteFile) -> Result<()> {
    /// Past this, the directory is left to the entry limits' checks.
    const MOST: usize = 256 << 20;
    let len = remote.len();
    let tail_start = len.saturating_sub(crate::remote::TAIL_BYTES as usize);
    let tail = remote.read(tail_start..len, "the end of the file")?;
    let Some((_, offset)) = declared_directory(&tail, tail_start) else { return Ok(()) };
    match usize::try_from(offset) {
        Ok(start) if start < tail_start && tail_start - start <= MOST => remote.keep(start..tail_start),
        _ => Ok(()),
    }
}

/// Checks the rules the zip crate does not, before any entry: the first
/// entry starts the file (no prefix bytes), and the end record's directory
/// size is the size of the records there. `tail` is the file from the
/// central directory's start to its end.
fn check_archive_bounds(tail: &[u8], cd_start: usize) -> Result<()> {
    // Every record there (the zip crate counts an entry with a repeated name once).
    let records: Vec<RawRecord<'_>> = raw_directory(tail, 0).collect();
    if let Some(first) = records.iter().map(|r| r.local_header).min().filter(|&f| f != 0) {
        return Err(ContainerError::NotAZip {
            reason: format!("{first} bytes precede the first entry; a bundle's archive starts at offset 0"),
        });
    }
    let walked = records.last().map_or(0, |r| r.end) as u64;
    match declared_directory(tail, cd_start).map(|(size, _)| size) {
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

/// What the zip crate reads of each central-directory record.
struct EntryMeta {
    raw_name: Vec<u8>,
    encrypted: bool,
    unix_mode: Option<u32>,
    symlink_or_dir: bool,
    compression: zip::CompressionMethod,
    size: u64,
    compressed_size: u64,
    header_start: u64,
    crc32: u32,
}

/// The archive's records as the zip crate reads them, its entry count, the
/// offset it finds before the first entry, the central directory's start,
/// and whether a name repeats.
struct ZipIndex {
    entries: Vec<EntryMeta>,
    offset: u64,
    directory_start: u64,
    duplicates: bool,
}

fn zip_index<R: Read + Seek>(reader: R, max_entries: usize) -> Result<ZipIndex> {
    let archive = zip::ZipArchive::new(reader).map_err(ContainerError::zip)?;
    if archive.len() > max_entries {
        return Err(ContainerError::NotAZip {
            reason: format!("{} entries, above the limit of {max_entries} (MAX_ENTRIES)", archive.len()),
        });
    }
    let (offset, directory_start, duplicates) =
        (archive.offset(), archive.central_directory_start(), archive.has_duplicate_names());
    let entries = (0..archive.len())
        .map(|index| {
            let file = archive.by_index_data(index).map_err(ContainerError::zip)?;
            Ok(EntryMeta {
                raw_name: file.name_raw().to_vec(),
                encrypted: file.encrypted(),
                unix_mode: file.unix_mode(),
                symlink_or_dir: file.is_symlink() || file.is_dir(),
                compression: file.compression(),
                size: file.size(),
                compressed_size: file.compressed_size(),
                header_start: file.header_start(),
                crc32: file.crc32(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(ZipIndex { entries, offset, directory_start, duplicates })
}

fn scan_entries_limited(source: &Source, max_entries: usize) -> Result<Layout> {
    #[cfg(feature = "remote")]
    if let Some(remote) = source.remote() {
        read_directory_ahead(remote)?;
    }
    let index = match source.as_slice() {
        Some(bytes) => zip_index(Cursor::new(bytes), max_entries)?,
        None => zip_index(PositionedReader { source, at: 0 }, max_entries)?,
    };
    scan_index(source, index)
}

/// `Read + Seek` over a source, for the zip crate (positioned reads).
struct PositionedReader<'a> {
    source: &'a Source,
    at: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(self.at).unwrap_or(usize::MAX);
        let bytes = self.source.read(start, buf.len(), "the central directory").map_err(std::io::Error::other)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.at += bytes.len() as u64;
        Ok(bytes.len())
    }
}

impl Seek for PositionedReader<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let len = self.source.len() as i128;
        let target = match to {
            std::io::SeekFrom::Start(n) => i128::from(n),
            std::io::SeekFrom::End(n) => len + i128::from(n),
            std::io::SeekFrom::Current(n) => i128::from(self.at) + i128::from(n),
        };
        self.at = u64::try_from(target).map_err(|_| std::io::Error::other("seek before the start of the file"))?;
        Ok(self.at)
    }
}

fn scan_index(source: &Source, archive: ZipIndex) -> Result<Layout> {
    if archive.offset != 0 {
        return Err(ContainerError::NotAZip { reason: format!("{} bytes precede the first entry", archive.offset) });
    }
    let len = source.len();
    let cd_start = usize::try_from(archive.directory_start).unwrap_or(usize::MAX).min(len);
    let tail = source.read(cd_start, len - cd_start, "the central directory")?;
    check_archive_bounds(&tail, cd_start)?;
    if archive.duplicates {
        // The zip crate keeps one entry per name: find the repeated one in the raw directory.
        let name = duplicate_name(&tail, 0).unwrap_or_else(|| "(unknown)".into());
        return Err(ContainerError::entry(name, "appears twice in the central directory"));
    }
    let mut starts: Vec<usize> =
        archive.entries.iter().map(|f| usize::try_from(f.header_start).unwrap_or(usize::MAX)).collect();
    starts.sort_unstable();
    // Where the entry whose local header is at `start` must end: the next
    // entry's header, or the central directory.
    let next_start = |start: usize| starts.get(starts.partition_point(|&s| s <= start)).copied().unwrap_or(cd_start);
    read_documents_ahead(source, &archive.entries, &next_start)?;
    let mut out = BTreeMap::new();
    let mut spans = Vec::with_capacity(archive.entries.len());
    let mut signatures = 0;
    for file in &archive.entries {
        let raw_name = file.raw_name.as_slice();
        let name = String::from_utf8_lossy(raw_name).into_owned();
        let Ok(utf8) = std::str::from_utf8(raw_name) else {
            return Err(ContainerError::entry(name, "name is not UTF-8"));
        };
        check_entry_name(utf8)?;
        if file.encrypted {
            return Err(ContainerError::entry(name, "is encrypted"));
        }
        let special = file.unix_mode.is_some_and(|m| m & 0o170000 != 0 && m & 0o170000 != 0o100000);
        if file.symlink_or_dir || special {
            return Err(ContainerError::entry(name, "is not a regular file"));
        }
        if file.compression != zip::CompressionMethod::Stored {
            return Err(ContainerError::entry(
                name,
                format!("is compressed ({}); every entry must be stored", file.compression),
            ));
        }
        if file.size != file.compressed_size {
            return Err(ContainerError::entry(
                name,
                format!("stored entry declares {} bytes but occupies {}", file.size, file.compressed_size),
            ));
        }
        let header_start = usize::try_from(file.header_start).unwrap_or(usize::MAX);
        if is_tensor_entry(&name) {
            // The local and `.npy` headers are read with the data (spec 6 step 4).
            let span = header_start..next_start(header_start).max(header_start);
            if header_start.saturating_add(30) > len {
                return Err(ContainerError::entry(name, "local header lies outside the file"));
            }
            let fits = (30 + raw_name.len()).checked_add(usize::try_from(file.size).unwrap_or(usize::MAX));
            if fits.is_none_or(|need| need > span.len()) {
                return Err(ContainerError::entry(
                    name,
                    format!("declares {} bytes, which run into the next entry or the central directory", file.size),
                ));
            }
            spans.push((header_start, span.end, name.clone()));
            let unread = Some(Unread { raw_name: raw_name.to_vec(), size: file.size, crc: file.crc32 });
            out.insert(name, Located { header: header_start, data: span, unread });
            continue;
        }
        let (data, _) = local_header(source, (&name, &name), raw_name, header_start, file.size, file.crc32)?;
        if data.end > cd_start {
            return Err(ContainerError::entry(name, "data runs into the central directory"));
        }
        if name == MANIFEST_ENTRY {
            check_size(&name, data.len(), MAX_MANIFEST_BYTES)?;
            let crc = crc32fast::hash(&source.read(data.start, data.len(), MANIFEST_ENTRY)?);
            if crc != file.crc32 {
                return Err(ContainerError::entry(
                    name,
                    format!("CRC-32 mismatch: directory says {:08x}, data gives {crc:08x}", file.crc32),
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
        out.insert(name, Located { header: header_start, data, unread: None });
    }
    spans.sort();
    for pair in spans.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(ContainerError::entry(pair[1].2.clone(), format!("overlaps entry `{}`", pair[0].2)));
        }
    }
    Ok(Layout { entries: out, directory_start: cd_start })
}

/// Whether `name` is a tensor entry's name (`tensors/....npy`).
fn is_tensor_entry(name: &str) -> bool {
    name.starts_with(TENSOR_ENTRY_PREFIX) && name.ends_with(TENSOR_ENTRY_SUFFIX)
}

/// Reads the entries an open needs (all but the tensors) ahead, each run of
/// them less than 1 MiB apart with one request, so that checking them costs
/// no request each. Entries larger than their limits are left to the checks.
#[cfg_attr(not(feature = "remote"), allow(unused_variables))]
fn read_documents_ahead(source: &Source, entries: &[EntryMeta], next_start: &dyn Fn(usize) -> usize) -> Result<()> {
    #[cfg(feature = "remote")]
    if let Some(remote) = source.remote() {
        const GAP: usize = 1 << 20;
        let mut spans: Vec<Range<usize>> = entries
            .iter()
            .filter_map(|f| {
                let limit = match f.raw_name.as_slice() {
                    name if name == MANIFEST_ENTRY.as_bytes() => MAX_MANIFEST_BYTES,
                    name if name == GRAPH_ENTRY.as_bytes() => MAX_GRAPH_BYTES,
                    name if is_tensor_entry(&String::from_utf8_lossy(name)) => return None,
                    // Signatures: read ahead when small, as they are.
                    _ => 1 << 20,
                };
                let start = usize::try_from(f.header_start).ok()?;
                let span = start..next_start(start).max(start);
                (span.len() as u64 <= limit + 30 + 2 * u64::from(u16::MAX)).then_some(span)
            })
            .collect();
        spans.sort_by_key(|s| s.start);
        let mut runs: Vec<Range<usize>> = Vec::new();
        for span in spans {
            match runs.last_mut() {
                Some(run) if span.start <= run.end.saturating_add(GAP) => run.end = run.end.max(span.end),
                _ => runs.push(span),
            }
        }
        for run in runs {
            remote.keep(run)?;
        }
    }
    Ok(())
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

/// Checks the local header of entry `name` (`what` in read errors) against
/// the central directory; returns the entry's data range and the first bytes
/// of the data read with the header (enough for a `.npy` header as numpy
/// writes it).
fn local_header(
    source: &Source,
    (name, what): (&str, &str),
    raw_name: &[u8],
    start: usize,
    size: u64,
    crc: u32,
) -> Result<(Range<usize>, Vec<u8>)> {
    // One read covers the header, the name, the writer's alignment padding
    // and a `.npy` header as numpy writes it (128 bytes).
    let file_len = source.len();
    let block = source.read(start, 30 + raw_name.len() + 128 + 256, what)?;
    let offset = check_local_header(&block, name, raw_name, size, crc)?;
    let data_start = start + offset;
    let data = match usize::try_from(size).ok().and_then(|s| data_start.checked_add(s)) {
        Some(end) if end <= file_len => data_start..end,
        _ => return Err(ContainerError::entry(name, format!("declares {size} bytes, past the end of the file"))),
    };
    let first = block.get(offset..).unwrap_or_default();
    Ok((data.clone(), first[..first.len().min(data.len())].to_vec()))
}

/// Checks the local header at the start of `block` against the central
/// directory's record of the entry; returns where the data starts.
fn check_local_header(block: &[u8], name: &str, raw_name: &[u8], size: u64, crc: u32) -> Result<usize> {
    let bad = |reason: &str| ContainerError::entry(name, format!("local header {reason}"));
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
    Ok(30 + name_len + extra_len)
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
        let source = Source::Memory(Arc::new(OwnedBytes(bytes)));
        let err = scan_entries_limited(&source, 2).err().unwrap().to_string();
        assert_eq!(err, "not a bundle: 3 entries, above the limit of 2 (MAX_ENTRIES)");
        assert!(scan_entries_limited(&source, 3).is_ok());
    }
}
