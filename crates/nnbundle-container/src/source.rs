//! Where a bundle's bytes are read from: memory, a memory map, or positioned
//! reads (`pread`), behind one interface.
//!
//! A file that shrinks while mapped makes the next access to a page past its
//! end fault (SIGBUS), which no handler can turn into an error. So a mapped
//! source checks the file's length before it hands out a tensor's bytes and
//! holds a shared advisory lock while open; a positioned source reads into
//! memory it owns and reports a short read as an error naming the file.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nnbundle_format::{Buffer, ByteOwner};

use crate::error::{ContainerError, Result};
use crate::mmap::MappedFile;

/// How a bundle file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Memory-map the file (the default): tensors share the mapped pages,
    /// nothing is copied. The file's length is checked before each tensor is
    /// handed out, so a file truncated under the reader gives an error rather
    /// than a fault, except when it shrinks while a tensor is being read.
    #[default]
    Mmap,
    /// Positioned reads (`pread`): each tensor read copies its bytes into
    /// memory the tensor owns. For network file systems, for memory
    /// accounting that counts mapped files, and where a file may change
    /// under the reader: a short read is always an error, never a fault.
    Pread,
    /// Read the whole file into memory when opening.
    Memory,
}

/// An open bundle file, with the length it had when opened.
pub(crate) struct OpenFile {
    file: File,
    path: PathBuf,
    len: u64,
}

impl OpenFile {
    fn open(path: &Path) -> Result<OpenFile> {
        let file = File::open(path).map_err(|e| ContainerError::io("open", path, e))?;
        // Writers that cooperate (lock exclusively before writing in place) wait
        // for readers; nnb's own writers never write in place. A lock that cannot
        // be taken (another process holds an exclusive one, or the file system
        // has no locks) does not stop reading.
        let _ = file.try_lock_shared();
        let len = file.metadata().map_err(|e| ContainerError::io("stat", path, e))?.len();
        Ok(OpenFile { file, path: path.to_owned(), len })
    }

    /// An error unless the file still has the length it had when opened.
    fn check_unchanged(&self, what: &str) -> Result<()> {
        let now = self.file.metadata().map_err(|e| ContainerError::io("stat", &self.path, e))?.len();
        if now < self.len {
            return Err(ContainerError::FileChanged {
                path: self.path.clone(),
                what: what.to_owned(),
                reason: format!("it is now {now} bytes, it was {} when opened", self.len),
            });
        }
        Ok(())
    }

    /// The bytes of `range`, read into a new buffer.
    fn read_vec(&self, range: Range<usize>, what: &str) -> Result<Vec<u8>> {
        let mut buf = vec![0; range.len()];
        self.read_at(range, &mut buf, what)?;
        Ok(buf)
    }

    fn read_at(&self, range: Range<usize>, out: &mut [u8], what: &str) -> Result<()> {
        read_exact_at(&self.file, out, range.start as u64).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ContainerError::FileChanged {
                path: self.path.clone(),
                what: what.to_owned(),
                reason: format!(
                    "bytes {}..{} are past its end now (it was {} bytes when opened)",
                    range.start, range.end, self.len
                ),
            },
            _ => ContainerError::io("read", &self.path, e),
        })
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, out: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, out, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut out: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !out.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, out, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                out = &mut out[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Bytes owned with 8-byte alignment, for tensors read with `pread` (every
/// dtype's elements can be used in place).
pub(crate) struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    /// The first `len` bytes of `words` as a buffer.
    fn buffer(words: Vec<u64>, len: usize) -> Buffer {
        let owner: Arc<dyn ByteOwner> = Arc::new(Aligned { words, len });
        Buffer::from_owner(owner, 0..len).expect("the range is the whole buffer")
    }

    /// `bytes`, copied to an aligned buffer.
    #[cfg(feature = "remote")]
    pub(crate) fn copy_of(bytes: &[u8]) -> Buffer {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Aligned::buffer(words, bytes.len())
    }
}

impl ByteOwner for Aligned {
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

/// A bundle's bytes.
pub(crate) enum Source {
    /// In memory.
    Memory(Arc<dyn ByteOwner>),
    /// Memory-mapped, with the file kept open to check its length.
    Mapped(Arc<MappedFile>, OpenFile),
    /// Read with positioned reads.
    Positioned(OpenFile),
    /// An object in a store, read with range requests.
    #[cfg(feature = "remote")]
    Remote(crate::remote::RemoteFile),
}

impl Source {
    /// Opens `path` with `backend`.
    pub(crate) fn open(path: &Path, backend: Backend) -> Result<Source> {
        let file = OpenFile::open(path)?;
        match backend {
            Backend::Mmap if file.len > 0 => {
                let map = MappedFile::map(&file.file).map_err(|e| ContainerError::io("memory-map", path, e))?;
                Ok(Source::Mapped(Arc::new(map), file))
            }
            Backend::Pread => Ok(Source::Positioned(file)),
            Backend::Mmap | Backend::Memory => {
                let mut bytes = vec![0; usize::try_from(file.len).unwrap_or(usize::MAX)];
                file.read_at(0..bytes.len(), &mut bytes, "the whole file")?;
                Ok(Source::Memory(Arc::new(OwnedBytes(bytes))))
            }
        }
    }

    /// The length (when opened).
    pub(crate) fn len(&self) -> usize {
        match self {
            Source::Memory(owner) => owner.bytes().len(),
            Source::Mapped(map, _) => map.bytes().len(),
            Source::Positioned(file) => file.len as usize,
            #[cfg(feature = "remote")]
            Source::Remote(file) => file.len(),
        }
    }

    /// All the bytes, when they are in memory or mapped.
    pub(crate) fn as_slice(&self) -> Option<&[u8]> {
        match self {
            Source::Memory(owner) => Some(owner.bytes()),
            Source::Mapped(map, _) => Some(map.bytes()),
            _ => None,
        }
    }

    /// Whether tensors share the source's bytes (mapped or in memory), so a
    /// tensor checked once stays checked; bytes read anew at every read are
    /// checked at every read.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Source::Memory(_) | Source::Mapped(..))
    }

    /// The remote object, when the source is one.
    #[cfg(feature = "remote")]
    pub(crate) fn remote(&self) -> Option<&crate::remote::RemoteFile> {
        match self {
            Source::Remote(file) => Some(file),
            _ => None,
        }
    }

    /// Up to `len` bytes from `start`, fewer at the end of the file: headers,
    /// the central directory, small entries. A mapped file is read with
    /// `pread` too: each local header of a large bundle sits on a page of its
    /// own, and reading it costs less than mapping that page in and out (half
    /// the time of opening 256 tensors).
    pub(crate) fn read(&self, start: usize, len: usize, what: &str) -> Result<Cow<'_, [u8]>> {
        let start = start.min(self.len());
        let range = start..start.saturating_add(len).min(self.len());
        match self {
            Source::Memory(owner) => Ok(Cow::Borrowed(&owner.bytes()[range])),
            #[cfg(not(unix))]
            Source::Mapped(map, _) => Ok(Cow::Borrowed(&map.bytes()[range])),
            #[cfg(unix)]
            Source::Mapped(_, file) => file.read_vec(range, what).map(Cow::Owned),
            Source::Positioned(file) => file.read_vec(range, what).map(Cow::Owned),
            #[cfg(feature = "remote")]
            // Zero-copy when the response is the only owner of its buffer.
            Source::Remote(file) => Ok(Cow::Owned(Vec::from(file.read(range, what)?))),
        }
    }

    /// The bytes of `range` (inside the file as opened) as a buffer a tensor
    /// can own: shared pages when mapped or in memory, a fresh aligned copy
    /// with positioned reads. A mapped file must still have its length.
    pub(crate) fn buffer(&self, range: Range<usize>, what: &str) -> Result<Buffer> {
        let owner: Arc<dyn ByteOwner> = match self {
            Source::Memory(owner) => owner.clone(),
            Source::Mapped(map, file) => {
                file.check_unchanged(what)?;
                map.clone()
            }
            Source::Positioned(file) => {
                let mut words = vec![0u64; range.len().div_ceil(8)];
                let len = range.len();
                file.read_at(range, &mut bytemuck::cast_slice_mut(&mut words)[..len], what)?;
                return Ok(Aligned::buffer(words, len));
            }
            #[cfg(feature = "remote")]
            Source::Remote(file) => return Ok(Aligned::copy_of(&file.read(range, what)?)),
        };
        Buffer::from_owner(owner, range)
            .ok_or_else(|| ContainerError::InvalidContent { reason: format!("{what}: a range outside the file") })
    }

    /// Copies `range` to `out` in pieces of at most 8 MiB (positioned reads
    /// never hold more than that).
    pub(crate) fn copy_to(&self, range: Range<usize>, out: &mut dyn Write, dest: &Path) -> Result<()> {
        const PIECE: usize = 8 << 20;
        let mut at = range.start;
        while at < range.end {
            let n = PIECE.min(range.end - at);
            let piece = self.read(at, n, "copied entries")?;
            out.write_all(&piece).map_err(crate::writer::write_failed(dest, "(copied entries)"))?;
            at += n;
        }
        Ok(())
    }
}

/// Bytes read into memory.
pub(crate) struct OwnedBytes(pub(crate) Vec<u8>);

impl ByteOwner for OwnedBytes {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}
