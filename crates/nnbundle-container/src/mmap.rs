//! The one place that memory-maps files.
//!
//! # Safety argument
//!
//! `memmap2::Mmap::map` is unsafe because the mapped file may change while
//! mapped, which would change memory Rust believes immutable (or, if the file
//! shrinks, fault on access). nnbundle maps bundles read-only and never writes
//! through the mapping. Bundles are replaced by atomic rename, never rewritten
//! in place, so a mapping keeps the old file's contents even when a new
//! bundle is saved over the same path. A file truncated or rewritten in place
//! by another program is guarded against as far as a mapping allows (see
//! `source.rs`): a shared advisory lock while open, the file's length checked
//! before each tensor is handed out (an error instead of SIGBUS), and digests
//! checked on first access. What remains: a file that shrinks while a tensor
//! is being read, or that changes after its tensor was verified and handed
//! out. Callers who cannot rule that out use [`crate::Backend::Pread`], whose
//! tensors own their bytes.
#![allow(unsafe_code)]

use std::fs::File;

use nnbundle_format::ByteOwner;

/// A read-only memory map of a whole file.
pub(crate) struct MappedFile(memmap2::Mmap);

impl MappedFile {
    /// Maps `file` read-only. An empty file cannot be mapped; callers read it instead.
    pub(crate) fn map(file: &File) -> std::io::Result<Self> {
        // SAFETY: read-only mapping of a file replaced only by rename; see the module doc.
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        Ok(MappedFile(map))
    }
}

impl ByteOwner for MappedFile {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}
