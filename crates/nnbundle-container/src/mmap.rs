//! The one place that memory-maps files.
//!
//! # Safety argument
//!
//! `memmap2::Mmap::map` is unsafe because the mapped file may change while
//! mapped, which would change memory Rust believes immutable (or, if the file
//! shrinks, fault on access). nnbundle maps bundles read-only and never writes
//! through the mapping. Bundles are replaced by atomic rename, never rewritten
//! in place, so a mapping keeps the old file's contents even when a new
//! bundle is saved over the same path. What remains is a file truncated or
//! modified in place by another program while mapped; that is outside what
//! any memory-mapping reader (safetensors, numpy's `mmap_mode`) can defend
//! against, and callers who cannot rule it out use [`crate::Bundle::from_bytes`]
//! or [`crate::OpenOptions::mmap`] set to `false`, which read the file into memory.
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
