//! Malformed and malicious input: every case is an error that names the culprit, never a panic.

mod common;

use std::io::{Cursor, Seek, SeekFrom, Write};

use nnbundle_container::{
    Backend, Bundle, BundleWriter, ContainerError, Durability, OpenOptions, write_atomically, write_atomically_with,
};
use nnbundle_format::Tensor;
use zip::write::SimpleFileOptions;

/// Opens `bytes` from memory, as a memory-mapped file (whose headers are
/// read with `pread`) and with positioned reads, then reads every tensor
/// without its hash (headers are checked at first use): all must give the
/// same verdict.
fn open(bytes: Vec<u8>) -> Result<Bundle, ContainerError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.nnb");
    std::fs::write(&path, &bytes).unwrap();
    let used = |bundle: Result<Bundle, ContainerError>| {
        bundle.and_then(|b| {
            let names: Vec<String> = b.tensor_infos().iter().map(|i| i.name.to_owned()).collect();
            names.iter().try_for_each(|name| b.tensor_unverified(name).map(drop)).map(|()| b)
        })
    };
    let verdict = |r: &Result<Bundle, ContainerError>| r.as_ref().map(|_| ()).map_err(ToString::to_string);
    let in_memory = used(Bundle::from_bytes(bytes));
    for backend in [Backend::Mmap, Backend::Pread] {
        let from_file = used(Bundle::open_with(&path, OpenOptions { backend, ..Default::default() }));
        assert_eq!(verdict(&from_file), verdict(&in_memory), "{backend:?} vs bytes");
    }
    in_memory
}

fn err_text(bytes: Vec<u8>) -> String {
    open(bytes).expect_err("must be rejected").to_string()
}

/// The error for `bytes`, after checking its stable code and its location.
fn rejected(bytes: Vec<u8>, code: &str, location: Option<&str>) -> String {
    let err = open(bytes).expect_err("must be rejected");
    assert_eq!((err.code(), err.location().as_deref()), (code, location), "{err}");
    err.to_string()
}

/// Byte offset of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).expect("needle present")
}

#[test]
fn flipped_tensor_byte_is_a_hash_mismatch_naming_the_tensor() {
    let mut bytes = common::sample_bundle();
    // The f32 value 0.25 * 5 = 1.25 is in hidden.weight's data.
    let at = find(&bytes, &1.25f32.to_le_bytes());
    bytes[at] ^= 0x01;
    let bundle = open(bytes).unwrap();
    assert!(bundle.tensor("hidden.bias").is_ok(), "other tensors stay readable");
    match bundle.tensor("hidden.weight").unwrap_err() {
        ContainerError::HashMismatch { tensor, expected, actual } => {
            assert_eq!(tensor, "hidden.weight");
            assert_ne!(expected, actual);
        }
        other => panic!("wrong error: {other}"),
    }
    let err = bundle.verify_all().unwrap_err().to_string();
    assert!(err.contains("tensor `hidden.weight`: SHA-256 mismatch: manifest says"), "{err}");
    assert!(bundle.tensor_unverified("hidden.weight").is_ok(), "the trusted path skips hashing");
}

#[test]
fn truncation_at_any_offset_is_an_error() {
    let bytes = common::sample_bundle();
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let err = open(bytes[..len].to_vec());
        assert!(err.is_err(), "truncated to {len} bytes was accepted");
    }
}

#[test]
fn not_a_zip() {
    assert!(err_text(b"hello, world".to_vec()).starts_with("not a bundle:"));
    assert!(err_text(Vec::new()).starts_with("not a bundle:"));
}

/// Builds a zip by hand with the given entries and options.
fn zip_with(entries: &[(&str, &[u8], SimpleFileOptions)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data, options) in entries {
        zip.start_file(*name, *options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn stored() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored)
}

const MANIFEST: &[u8] = b"format_version: '1.0'\ntensors: {}\n";

#[test]
fn missing_manifest() {
    let err = rejected(zip_with(&[]), "missing-entry", Some("manifest.yaml"));
    assert!(err.contains("entry `manifest.yaml` is missing"), "{err}");
}

#[test]
fn unexpected_entries_are_rejected() {
    for name in ["../evil", "/abs", "tensors/a\\b.npy", "notes.txt", "tensors/x.bin", "tensors/sub/x.npy"] {
        let err = err_text(zip_with(&[("manifest.yaml", MANIFEST, stored()), (name, b"x", stored())]));
        assert!(err.contains(&format!("entry `{name}`")), "{name}: {err}");
    }
}

#[test]
fn stray_tensor_entry_not_in_manifest() {
    let err = rejected(
        zip_with(&[("manifest.yaml", MANIFEST, stored()), ("tensors/x.npy", b"x", stored())]),
        "bad-entry",
        Some("tensors/x.npy"),
    );
    assert!(err.contains("entry `tensors/x.npy`: not listed in the manifest"), "{err}");
}

#[test]
fn compressed_entries_are_rejected() {
    // The crate is built without deflate, so set the method field by hand:
    // any method but 0 (stored) must be refused before decompressing anything.
    let mut bytes = zip_with(&[("manifest.yaml", MANIFEST, stored())]);
    let cd = find(&bytes, b"PK\x01\x02");
    bytes[cd + 10] = 8; // central directory: compression method = deflate
    let err = rejected(bytes, "bad-entry", Some("manifest.yaml"));
    assert!(err.contains("entry `manifest.yaml`") && err.contains("compressed"), "{err}");
}

#[test]
fn encrypted_flag_is_rejected() {
    let mut bytes = zip_with(&[("manifest.yaml", MANIFEST, stored())]);
    let cd = find(&bytes, b"PK\x01\x02");
    bytes[cd + 8] |= 1; // general purpose flag bit 0: encrypted
    let err = rejected(bytes, "bad-entry", Some("manifest.yaml"));
    assert!(err.contains("is encrypted"), "{err}");
}

#[test]
fn duplicate_entries_are_rejected() {
    let mut bytes = zip_with(&[("manifest.yaml", MANIFEST, stored()), ("manifesX.yaml", MANIFEST, stored())]);
    // Rename the second entry in both headers to make a duplicate.
    for _ in 0..2 {
        let at = find(&bytes, b"manifesX");
        bytes[at + 7] = b't';
    }
    let err = rejected(bytes, "bad-entry", Some("manifest.yaml"));
    assert!(err.contains("entry `manifest.yaml`: appears twice"), "{err}");
}

#[test]
fn symlink_entries_are_rejected() {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("manifest.yaml", stored()).unwrap();
    zip.write_all(MANIFEST).unwrap();
    zip.add_symlink("graph.yaml", "/etc/passwd", stored()).unwrap();
    let err = rejected(zip.finish().unwrap().into_inner(), "bad-entry", Some("graph.yaml"));
    assert!(err.contains("entry `graph.yaml`: is not a regular file"), "{err}");
}

#[test]
fn local_header_must_match_central_directory() {
    let mut bytes = common::sample_bundle();
    // Rename the local header of manifest.yaml only.
    let at = find(&bytes, b"manifest.yaml");
    bytes[at] = b'M';
    let err = rejected(bytes, "bad-entry", Some("manifest.yaml"));
    assert!(err.contains("entry `manifest.yaml`: local header names a different entry"), "{err}");
}

#[test]
fn manifest_crc_is_checked() {
    let mut bytes = common::sample_bundle();
    let at = find(&bytes, b"epoch: 3");
    bytes[at + 7] = b'4';
    let err = rejected(bytes, "bad-entry", Some("manifest.yaml"));
    assert!(err.contains("entry `manifest.yaml`: CRC-32 mismatch"), "{err}");
}

#[test]
fn newer_major_version_asks_for_an_upgrade() {
    let manifest = b"format_version: '2.1'\ntensors: {}\nsomething_new: 1\n";
    let err =
        rejected(zip_with(&[("manifest.yaml", manifest, stored())]), "unsupported-version", Some("manifest.yaml"));
    assert!(err.contains("bundle format 2.1, this reader supports up to 1.x: upgrade nnbundle"), "{err}");
}

#[test]
fn newer_minor_version_reads_but_names_unknown_fields() {
    let ok = b"format_version: '1.7'\ntensors: {}\n";
    assert!(open(zip_with(&[("manifest.yaml", ok, stored())])).is_ok());
    let unknown = b"format_version: '1.7'\ntensors: {}\nsomething_new: 1\n";
    let err = rejected(zip_with(&[("manifest.yaml", unknown, stored())]), "invalid-manifest", Some("manifest.yaml"));
    assert!(err.contains("unknown field `something_new`") && err.contains("supports up to 1.2: upgrade"), "{err}");
}

#[test]
fn plain_scalar_version_reads_as_its_text() {
    // YAML gives the text `1.0` either way; the version is compared as text, never as a float.
    assert!(open(zip_with(&[("manifest.yaml", b"format_version: 1.0\ntensors: {}\n", stored())])).is_ok());
    let err = rejected(
        zip_with(&[("manifest.yaml", b"format_version: 1.10.2\ntensors: {}\n", stored())]),
        "invalid-manifest",
        Some("manifest.yaml"),
    );
    assert!(err.contains("format_version `1.10.2` is not of the form MAJOR.MINOR"), "{err}");
}

#[test]
fn manifest_errors_name_the_field() {
    let cases: [(&[u8], &str); 5] = [
        (b"tensors: {}\n", "format_version"),
        (b"format_version: [1, 0]\ntensors: {}\n", "format_version"),
        (b"format_version: '1.0'\ntensors:\n  x: {dtype: f33, shape: [1], sha256: '00'}\n", "f33"),
        (
            b"format_version: '1.0'\ntensors:\n  x: {dtype: f32, shape: [4294967296, 4294967296], sha256: '0000000000000000000000000000000000000000000000000000000000000000'}\n",
            "tensors.x.shape",
        ),
        (b"format_version: '1.0'\ntensors: {}\nmetadata: {a: null}\n", "null is not a metadata value"),
    ];
    for (manifest, want) in cases {
        let err =
            rejected(zip_with(&[("manifest.yaml", manifest, stored())]), "invalid-manifest", Some("manifest.yaml"));
        assert!(err.starts_with("entry `manifest.yaml`") && err.contains(want), "{want}: {err}");
    }
}

#[test]
fn npy_header_must_agree_with_manifest() {
    let good = common::sample_bundle();
    // Change the stored shape (10, 100) to (10, 10) and pad to keep the length.
    let mut bytes = good.clone();
    let at = find(&bytes, b"'shape': (10, 100)");
    bytes[at..at + 18].copy_from_slice(b"'shape': (10, 10) ");
    // Opening reads no tensor entry: the header is checked when the tensor
    // is first read, and other tensors stay readable (spec 6, step 4).
    let bundle = Bundle::from_bytes(bytes.clone()).unwrap();
    assert!(bundle.tensor("hidden.bias").is_ok());
    let err = bundle.tensor_unverified("hidden.weight").unwrap_err();
    assert_eq!(
        (err.code(), err.location().as_deref()),
        ("bad-tensor-entry", Some("tensors/hidden.weight.npy")),
        "{err}"
    );
    let err = err_text(bytes);
    assert!(err.contains("tensor `hidden.weight`") && err.contains("shape [10, 10] differs"), "{err}");
    // Change the descr.
    let mut bytes = good;
    let at = find(&bytes, b"'<f4'");
    bytes[at + 3] = b'8';
    let err = err_text(bytes);
    assert!(err.contains("descr is `<f8`"), "{err}");
}

/// A writer that fails after `budget` bytes, like a full disk.
struct FailAfter<W> {
    inner: W,
    budget: usize,
}

impl<W: Write> Write for FailAfter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.budget {
            return Err(std::io::Error::other("injected: disk full"));
        }
        self.budget -= buf.len();
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Seek> Seek for FailAfter<W> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn save_failing_half_way_keeps_the_previous_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.nnb");
    let old = common::sample_bundle();
    std::fs::write(&path, &old).unwrap();

    let mut w = BundleWriter::new();
    w.add_tensor("big", Tensor::from_vec(vec![1 << 16], vec![1.0f32; 1 << 16]).unwrap()).unwrap();
    let err = write_atomically(&path, |out| w.write_to(FailAfter { inner: out, budget: 100_000 }).map(drop))
        .unwrap_err()
        .to_string();
    assert!(err.contains("injected: disk full"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), old, "the old bundle is untouched");
    Bundle::open(&path).unwrap().verify_all().unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");

    w.save(&path).unwrap();
    assert_eq!(Bundle::open(&path).unwrap().tensor("big").unwrap().len(), 1 << 16);

    // Unsynced saves write the same bytes, just without waiting for the device,
    // and fail the same way.
    let err = write_atomically_with(&path, Durability::Unsynced, |out| {
        w.write_to(FailAfter { inner: out, budget: 100_000 }).map(drop)
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("injected: disk full"), "{err}");
    let synced = std::fs::read(&path).unwrap();
    let other = dir.path().join("unsynced.nnb");
    w.save_with(&other, Durability::Unsynced).unwrap();
    assert_eq!(std::fs::read(&other).unwrap(), synced);
}

/// Offset of the end-of-central-directory record.
fn eocd(bytes: &[u8]) -> usize {
    bytes.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap()
}

#[test]
fn entry_count_claims_are_not_trusted() {
    // The EOCD claims 65535 entries; the central directory holds 4. No huge allocation, an error.
    let mut bytes = common::sample_bundle();
    let at = eocd(&bytes);
    bytes[at + 8..at + 12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    assert!(err_text(bytes).starts_with("not a bundle:"));
}

#[test]
fn offsets_outside_the_file_are_errors() {
    let original = common::sample_bundle();
    // Local header offset of the first entry, far past the end: then no
    // entry starts the file, which is checked before any entry (FORMAT.md 2.2).
    let mut bytes = original.clone();
    let cd = find(&bytes, b"PK\x01\x02");
    bytes[cd + 42..cd + 46].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let err = rejected(bytes, "not-a-zip", None);
    assert!(err.contains("precede the first entry"), "{err}");
    // The same for the last entry: its local header is outside the file.
    let mut bytes = original;
    let last = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    let name_len = usize::from(u16::from_le_bytes([bytes[last + 28], bytes[last + 29]]));
    let name = String::from_utf8(bytes[last + 46..last + 46 + name_len].to_vec()).unwrap();
    bytes[last + 42..last + 46].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let err = rejected(bytes, "bad-entry", Some(&name));
    assert!(err.contains("local header lies outside the file"), "{err}");
    // Central directory offset past the end.
    let mut bytes = common::sample_bundle();
    let at = eocd(&bytes);
    bytes[at + 16..at + 20].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    assert!(err_text(bytes).starts_with("not a bundle:"));
}

#[test]
fn declared_size_must_equal_stored_size() {
    let mut bytes = common::sample_bundle();
    let cd = find(&bytes, b"PK\x01\x02");
    // Uncompressed size of the first entry (the manifest) + 1, compressed size unchanged.
    let size = u32::from_le_bytes(bytes[cd + 24..cd + 28].try_into().unwrap());
    bytes[cd + 24..cd + 28].copy_from_slice(&(size + 1).to_le_bytes());
    let err = rejected(bytes, "bad-entry", Some("manifest.yaml"));
    assert!(err.contains("entry `manifest.yaml`") && err.contains("declares"), "{err}");
}

#[test]
fn sizes_past_the_end_of_the_file_are_errors() {
    let mut bytes = common::sample_bundle();
    let cd = find(&bytes, b"PK\x01\x02");
    for field in [20, 24] {
        bytes[cd + field..cd + field + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    }
    let err = rejected(bytes, "bad-entry", Some("manifest.yaml"));
    assert!(err.contains("manifest.yaml"), "{err}");
}

#[test]
fn overflowing_zip64_fields_are_errors() {
    // A ZIP64 end record claiming 2^64-1 entries and a central directory at 2^64-6,
    // with the classic end record pointing to it: no huge allocation, no panic.
    let bytes = common::sample_bundle();
    let at = eocd(&bytes);
    let mut out = bytes[..at].to_vec();
    let zip64_eocd = out.len() as u64;
    out.extend_from_slice(b"PK\x06\x06");
    out.extend_from_slice(&44u64.to_le_bytes());
    out.extend_from_slice(&[45, 3, 45, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&u64::MAX.to_le_bytes());
    out.extend_from_slice(&u64::MAX.to_le_bytes());
    out.extend_from_slice(&u64::MAX.to_le_bytes());
    out.extend_from_slice(&(u64::MAX - 5).to_le_bytes());
    out.extend_from_slice(b"PK\x06\x07");
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&zip64_eocd.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
    assert!(err_text(out).starts_with("not a bundle:"));
}

fn conformance(file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../spec/conformance/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_checks_of_spec_revision_2_name_what_is_wrong() {
    let err = rejected(conformance("prefix_bytes.nnb"), "not-a-zip", None);
    assert!(err.contains("64 bytes precede the first entry"), "{err}");
    let err = rejected(conformance("directory_size_mismatch.nnb"), "not-a-zip", None);
    assert!(err.contains("the end record gives the central directory") && err.contains("records take"), "{err}");
    let err = rejected(conformance("not_regular_file.nnb"), "bad-entry", Some("manifest.yaml"));
    assert!(err.contains("is not a regular file"), "{err}");
    let err = rejected(conformance("yaml_refused_scalar.nnb"), "invalid-manifest", Some("manifest.yaml"));
    assert!(err.contains("`0x1F`") && err.contains("line 4"), "{err}");
    let err = rejected(conformance("yaml_tag.nnb"), "invalid-manifest", Some("manifest.yaml"));
    assert!(err.contains("tags are not allowed"), "{err}");

    // Found when a tensor is read, and by a validator: the tensor, the element, the byte.
    let bundle = Bundle::from_bytes(conformance("bool_out_of_range.nnb")).unwrap();
    let err = bundle.tensor("flags").unwrap_err();
    assert_eq!((err.code(), err.location().as_deref()), ("bad-tensor-entry", Some("tensors/flags.npy")));
    assert!(err.to_string().contains("element 2 is the byte 0x02"), "{err}");
    assert!(bundle.verify_every_digest().is_err());

    // Found when the graph is used.
    let bundle = Bundle::from_bytes(conformance("graph_opset_mismatch.nnb")).unwrap();
    let err = bundle.graph().unwrap_err();
    assert_eq!((err.code(), err.location().as_deref()), ("bad-entry", Some("graph.yaml")));
    assert!(err.to_string().contains("declares opset 2, the manifest's graph record says 1"), "{err}");
}

#[test]
fn samples_without_a_graph_and_yaml_anchors_are_refused() {
    let manifest = b"format_version: '1.0'\ntensors: {}\nsamples:\n- {inputs: {}, outputs: {}, rtol: 0.0, atol: 0.0}\n";
    let err = rejected(zip_with(&[("manifest.yaml", manifest, stored())]), "invalid-manifest", Some("manifest.yaml"));
    assert!(err.contains("samples") && err.contains("the bundle has none"), "{err}");
    let manifest = b"format_version: '1.0'\ntensors: {}\nmetadata:\n  a: &x 1\n  b: *x\n";
    let err = rejected(zip_with(&[("manifest.yaml", manifest, stored())]), "invalid-manifest", Some("manifest.yaml"));
    assert!(err.contains("anchors and aliases are not allowed") && err.contains("line 4"), "{err}");
}

#[test]
fn a_damaged_directory_name_is_reported_as_its_local_header_mismatch() {
    // A flipped byte in a tensor's central-directory name makes the manifest's
    // entry missing and the renamed entry unlisted; the local header, which
    // still has the old name, says which of the two is at fault.
    let mut bytes = common::sample_bundle();
    let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let at = cd + find(&bytes[cd..], b"tensors/hidden.weight.npy") + "tensors/hidden.weigh".len();
    bytes[at] = b'T';
    let err = rejected(bytes, "bad-entry", Some("tensors/hidden.weighT.npy"));
    assert!(err.contains("local header names a different entry"), "{err}");
}

#[test]
fn a_tensor_whose_data_overruns_its_entry_is_named_at_open_or_first_read() {
    let original = common::sample_bundle();
    let name = b"tensors/hidden.weight.npy";
    // The local header's extra field grown by 64 bytes: the directory still
    // fits the entry, so open succeeds; the first read finds the data
    // running past the next entry's header.
    let mut bytes = original.clone();
    let local = find(&bytes, name) - 30;
    assert_eq!(&bytes[local..local + 4], b"PK\x03\x04");
    let extra = u16::from_le_bytes([bytes[local + 28], bytes[local + 29]]) + 64;
    bytes[local + 28..local + 30].copy_from_slice(&extra.to_le_bytes());
    assert!(Bundle::from_bytes(bytes.clone()).is_ok(), "open reads no tensor entry");
    let err = rejected(bytes, "bad-entry", Some("tensors/hidden.weight.npy"));
    assert!(err.contains("which run into the next entry"), "{err}");
    // The directory's sizes grown past the next entry: refused at open.
    let mut bytes = original;
    let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let record = cd + find(&bytes[cd..], name) - 46;
    let size = u32::from_le_bytes(bytes[record + 24..record + 28].try_into().unwrap()) + 100_000;
    bytes[record + 20..record + 24].copy_from_slice(&size.to_le_bytes());
    bytes[record + 24..record + 28].copy_from_slice(&size.to_le_bytes());
    let err = rejected(bytes, "bad-entry", Some("tensors/hidden.weight.npy"));
    assert!(err.contains("run into the next entry or the central directory"), "{err}");
}
