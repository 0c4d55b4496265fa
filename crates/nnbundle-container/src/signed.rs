//! Rewriting a bundle's signature entries (format 1.2) without changing any
//! other byte: every other entry, and its central-directory record, is copied
//! as it is, so the entries a signature covers keep their bytes and offsets.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use nnbundle_format::limits::{MAX_SIGNATURE_BYTES, MAX_SIGNATURES};
use nnbundle_format::{names::check_signature_name, signature_entry_name, signature_name};

use crate::Archive;
use crate::atomic::{Durability, write_atomically_with};
use crate::error::{ContainerError, Result};
use crate::reader::raw_directory;
use crate::writer::write_failed;

const U32_SATURATED: u32 = u32::MAX;

impl Archive {
    /// Saves this bundle to `path`, atomically, with exactly `signatures`
    /// (name to the bytes of `signatures/<name>.sigstore.json`) as its
    /// signature entries. Every other entry keeps its bytes and its offset;
    /// the signature entries follow them, sorted by name (spec 2.3 rule 1).
    /// `path` may be the file this bundle was opened from.
    pub fn save_with_signatures(
        &self,
        path: impl AsRef<Path>,
        signatures: &BTreeMap<String, Vec<u8>>,
        durability: Durability,
    ) -> Result<()> {
        let path = path.as_ref();
        if signatures.len() > MAX_SIGNATURES {
            return Err(ContainerError::InvalidContent {
                reason: format!(
                    "{} signatures, above the limit of {MAX_SIGNATURES} (MAX_SIGNATURES)",
                    signatures.len()
                ),
            });
        }
        for (name, bytes) in signatures {
            check_signature_name(name).map_err(|e| ContainerError::InvalidContent { reason: e.to_string() })?;
            if bytes.len() as u64 > MAX_SIGNATURE_BYTES {
                return Err(ContainerError::entry(
                    signature_entry_name(name),
                    format!("{} bytes, above the limit of {MAX_SIGNATURE_BYTES} (MAX_SIGNATURE_BYTES)", bytes.len()),
                ));
            }
        }
        let content_end = self.content_end()?;
        write_atomically_with(path, durability, |out| {
            self.copy_to(0..content_end, out, path)?;
            let mut at = content_end as u64;
            let mut records = Vec::with_capacity(signatures.len());
            for (name, bytes) in signatures {
                let entry = signature_entry_name(name);
                let record =
                    NewEntry { name: entry, crc: crc32fast::hash(bytes), size: bytes.len() as u32, offset: at };
                let header = record.local_header();
                out.write_all(&header).and_then(|()| out.write_all(bytes)).map_err(write_failed(path, &record.name))?;
                at += (header.len() + bytes.len()) as u64;
                records.push(record);
            }
            let directory_start = at;
            let mut count = 0u64;
            let tail = self.read(self.directory_start()..self.len())?;
            for raw in raw_directory(&tail, 0)
                .filter(|r| !std::str::from_utf8(r.name).is_ok_and(|n| signature_name(n).is_some()))
            {
                out.write_all(&tail[raw.start..raw.end]).map_err(write_failed(path, "(central directory)"))?;
                at += (raw.end - raw.start) as u64;
                count += 1;
            }
            for record in &records {
                let bytes = record.central_record();
                out.write_all(&bytes).map_err(write_failed(path, "(central directory)"))?;
                at += bytes.len() as u64;
                count += 1;
            }
            let end = end_records(count, at - directory_start, directory_start);
            out.write_all(&end).map_err(write_failed(path, "(end of central directory)"))
        })
    }

    /// Where the last non-signature entry ends; an error when a signature
    /// entry lies before it (a layout nnbundle never writes).
    fn content_end(&self) -> Result<usize> {
        let end = self.content_entry_ranges().map(|r| r.end).max().unwrap_or(0);
        match self.signature_headers().find(|(_, header)| *header < end) {
            Some((name, _)) => Err(ContainerError::entry(
                signature_entry_name(name),
                "lies between other entries; signatures can only be rewritten when they follow every other \
                 entry (repack the bundle with `nnb unpack` and `nnb pack`, which drops its signatures)",
            )),
            None => Ok(end),
        }
    }
}

/// A signature entry being written: small, stored, ASCII-named.
struct NewEntry {
    name: String,
    crc: u32,
    size: u32,
    offset: u64,
}

impl NewEntry {
    /// The fields a local header and a central record share (spec 2.3):
    /// version needed 10, no flags, stored, DOS time 0 and date 0x0021, the
    /// CRC-32, both sizes and the name's length.
    fn shared_fields(&self, out: &mut Vec<u8>) {
        for field in [10u16, 0, 0, 0, 0x21] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(&self.crc.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
    }

    /// The local file header: no extra field.
    fn local_header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(30 + self.name.len());
        h.extend_from_slice(b"PK\x03\x04");
        self.shared_fields(&mut h);
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(self.name.as_bytes());
        h
    }

    /// The central-directory record: made by Unix 1.0, mode 0o100644, with a
    /// ZIP64 field holding the offset when it does not fit 32 bits.
    fn central_record(&self) -> Vec<u8> {
        let large = self.offset >= u64::from(U32_SATURATED);
        let mut r = Vec::with_capacity(46 + self.name.len() + 12);
        r.extend_from_slice(b"PK\x01\x02");
        r.extend_from_slice(&0x030au16.to_le_bytes());
        self.shared_fields(&mut r);
        // Extra field length, comment length, disk number, internal attributes.
        for field in [if large { 12u16 } else { 0 }, 0, 0, 0] {
            r.extend_from_slice(&field.to_le_bytes());
        }
        r.extend_from_slice(&0x81a4_0000u32.to_le_bytes());
        r.extend_from_slice(&(if large { U32_SATURATED } else { self.offset as u32 }).to_le_bytes());
        r.extend_from_slice(self.name.as_bytes());
        if large {
            r.extend_from_slice(&1u16.to_le_bytes());
            r.extend_from_slice(&8u16.to_le_bytes());
            r.extend_from_slice(&self.offset.to_le_bytes());
        }
        r
    }
}

/// The end-of-central-directory record, preceded by the ZIP64 end record
/// and locator when the count, size or offset needs them (spec 2.3).
fn end_records(count: u64, size: u64, offset: u64) -> Vec<u8> {
    let zip64 = count > 0xFFFF || size > u64::from(U32_SATURATED) || offset > u64::from(U32_SATURATED);
    let mut e = Vec::with_capacity(98);
    if zip64 {
        let record_at = offset + size;
        e.extend_from_slice(b"PK\x06\x06");
        e.extend_from_slice(&44u64.to_le_bytes());
        e.extend_from_slice(&45u16.to_le_bytes());
        e.extend_from_slice(&45u16.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&count.to_le_bytes());
        e.extend_from_slice(&count.to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&offset.to_le_bytes());
        e.extend_from_slice(b"PK\x06\x07");
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&record_at.to_le_bytes());
        e.extend_from_slice(&1u32.to_le_bytes());
    }
    let short_count = if count > 0xFFFF { 0xFFFF } else { count as u16 };
    e.extend_from_slice(b"PK\x05\x06");
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(&short_count.to_le_bytes());
    e.extend_from_slice(&short_count.to_le_bytes());
    let (size32, offset32) = if zip64 { (U32_SATURATED, U32_SATURATED) } else { (size as u32, offset as u32) };
    e.extend_from_slice(&size32.to_le_bytes());
    e.extend_from_slice(&offset32.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e
}
