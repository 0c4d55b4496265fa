//! Chunk digests (format 1.1): written for large tensors, computed as the
//! spec says, checked on access, and both digests checked by a validator.

use std::io::{Cursor, Read, Write};

use nnbundle_container::{Bundle, BundleWriter, Chunking, ContainerError, OpenOptions, Verify};
use nnbundle_format::{Manifest, Tensor};
use sha2::{Digest, Sha256};

const MIB: usize = 1 << 20;

/// 2.5 MiB of bytes that differ from chunk to chunk.
fn big() -> Tensor {
    let values: Vec<u8> = (0..5 * MIB / 2).map(|i| (i % 251) as u8 ^ (i / MIB) as u8).collect();
    Tensor::from_vec(vec![values.len()], values).unwrap()
}

/// A writer that gives tensors of 1 MiB and more a digest in 1 MiB chunks
/// beside their SHA-256 (the format 1.1 layout).
fn writer() -> BundleWriter {
    let mut w = BundleWriter::new();
    w.set_chunking(Chunking { from_bytes: MIB as u64, chunk_bytes: MIB as u64, with_sha256: true });
    w.add_tensor("big", big()).unwrap();
    w.add_tensor("small", Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]).unwrap()).unwrap();
    w
}

#[test]
fn large_tensors_get_a_chunk_digest_computed_as_the_spec_says() {
    let manifest = writer().manifest().unwrap();
    assert_eq!(manifest.format_version.to_string(), "1.1");
    assert!(manifest.tensors["small"].chunks.is_none());
    let chunks = manifest.tensors["big"].chunks.expect("2.5 MiB >= 1 MiB");
    assert_eq!(chunks.size, MIB as u64);
    // By hand: SHA-256 over the digests of [0, 1 MiB), [1, 2 MiB), [2, 2.5 MiB).
    let data = big();
    let mut root = Sha256::new();
    for piece in [&data.as_bytes()[..MIB], &data.as_bytes()[MIB..2 * MIB], &data.as_bytes()[2 * MIB..]] {
        root.update(Sha256::digest(piece));
    }
    assert_eq!(chunks.sha256.0, <[u8; 32]>::from(root.finalize()));
    assert_eq!(manifest.tensors["big"].sha256.unwrap().0, <[u8; 32]>::from(Sha256::digest(data.as_bytes())));
}

#[test]
fn default_chunking_hashes_tensors_from_2_mib_once_in_1_mib_chunks() {
    let mut w = BundleWriter::new();
    w.add_tensor("x", big()).unwrap();
    w.add_tensor("small", Tensor::from_vec(vec![MIB], vec![7u8; MIB]).unwrap()).unwrap();
    let manifest = w.manifest().unwrap();
    assert_eq!(manifest.format_version.to_string(), "1.2", "a record with chunks alone");
    let x = &manifest.tensors["x"];
    assert!(x.sha256.is_none());
    assert_eq!(x.chunks.unwrap().size, MIB as u64);
    assert!(manifest.tensors["small"].chunks.is_none() && manifest.tensors["small"].sha256.is_some());
    w.set_chunking(Chunking::NONE);
    let manifest = w.manifest().unwrap();
    assert_eq!(manifest.format_version.to_string(), "1.0");
    assert!(manifest.tensors["x"].chunks.is_none() && manifest.tensors["x"].sha256.is_some());
}

#[test]
fn a_chunk_digest_alone_is_checked_on_read_and_by_the_validator() {
    let mut w = BundleWriter::new();
    w.add_tensor("x", big()).unwrap();
    let bytes = w.to_bytes().unwrap();
    let bundle = Bundle::from_bytes(bytes.clone()).unwrap();
    assert_eq!(bundle.tensor("x").unwrap(), big());
    bundle.verify_every_digest().unwrap();
    // One byte of the last chunk changed: both the lazy read and the validator name the tensor.
    let mut flipped = bytes;
    let at = flipped.len() - 200;
    flipped[at] ^= 1;
    let bundle = Bundle::from_bytes(flipped).unwrap();
    let err = bundle.tensor("x").unwrap_err();
    assert!(matches!(err, ContainerError::ChunkHashMismatch { ref tensor, .. } if tensor == "x"), "{err}");
    assert!(bundle.verify_every_digest().is_err());
}

#[test]
fn a_record_needs_a_digest_and_chunks_alone_need_format_1_2() {
    let record = |version: &str, digests: &str| {
        format!("format_version: '{version}'\ntensors:\n  x:\n    dtype: u8\n    shape: [1]\n{digests}")
    };
    let chunks = "    chunks:\n      size: 1048576\n      sha256: 'ab00000000000000000000000000000000000000000000000000000000000000'\n";
    assert!(Manifest::parse(record("1.2", chunks).as_bytes()).is_ok());
    let err = Manifest::parse(record("1.1", chunks).as_bytes()).unwrap_err().to_string();
    assert!(err.contains("tensors.x.sha256") && err.contains("needs format_version 1.2"), "{err}");
    let err = Manifest::parse(record("1.2", "").as_bytes()).unwrap_err().to_string();
    assert!(err.contains("tensors.x") && err.contains("has no digest"), "{err}");
}

#[test]
fn saved_bytes_with_chunk_digests_match_the_in_order_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.nnb");
    let w = writer();
    let manifest = w.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), w.to_bytes().unwrap());
    let bundle = Bundle::open_with(&path, OpenOptions { verify: Verify::Eager, ..Default::default() }).unwrap();
    assert_eq!(bundle.manifest(), &manifest);
    bundle.verify_every_digest().unwrap();
    assert_eq!(bundle.tensor("big").unwrap().as_bytes(), big().as_bytes());
}

/// Entries of a zip, with `edit` applied to the manifest, zipped again.
fn rezip(bytes: &[u8], edit: impl Fn(&str) -> String) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).with_alignment(64);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().unwrap().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name == "manifest.yaml" {
            data = edit(std::str::from_utf8(&data).unwrap()).into_bytes();
        }
        out.start_file(name, options).unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn a_changed_byte_fails_the_chunk_digest_naming_the_tensor() {
    let mut bytes = writer().to_bytes().unwrap();
    let bundle = Bundle::from_bytes(bytes.clone()).unwrap();
    let at = bytes.len() / 2; // inside `big`, the bulk of the file
    assert!(bundle.tensor("small").is_ok());
    bytes[at] ^= 1;
    let bundle = Bundle::from_bytes(bytes).unwrap();
    let err = bundle.tensor("big").unwrap_err();
    assert!(
        matches!(err, ContainerError::ChunkHashMismatch { ref tensor, size, .. } if tensor == "big" && size == MIB as u64)
    );
    assert!(err.to_string().starts_with("tensor `big`: chunk SHA-256 mismatch (1048576-byte chunks)"), "{err}");
    assert_eq!(err.location().as_deref(), Some("tensors.big.chunks"));
    // A validator reports both digests of the tensor as failed.
    match bundle.verify_every_digest().unwrap_err() {
        ContainerError::Verification(errors) => {
            let kinds: Vec<&str> = errors
                .iter()
                .map(|e| match e {
                    ContainerError::HashMismatch { .. } => "sha256",
                    ContainerError::ChunkHashMismatch { .. } => "chunks",
                    _ => "other",
                })
                .collect();
            assert_eq!(kinds, ["sha256", "chunks"], "{errors:?}");
        }
        other => panic!("expected both digests to fail: {other}"),
    }
}

#[test]
fn a_validator_catches_a_sha256_that_disagrees_with_the_chunk_digest() {
    let bytes = writer().to_bytes().unwrap();
    let manifest = Bundle::from_bytes(bytes.clone()).unwrap().manifest().clone();
    let wrong = "0".repeat(63) + "a";
    let real = manifest.tensors["big"].sha256.unwrap().to_hex();
    let bundle = Bundle::from_bytes(rezip(&bytes, |m| m.replace(&real, &wrong))).unwrap();
    // A reader checks the chunk digest alone, and it holds...
    bundle.tensor("big").unwrap();
    // ...a validator checks both.
    let err = bundle.verify_every_digest().unwrap_err();
    assert!(matches!(err, ContainerError::HashMismatch { ref tensor, .. } if tensor == "big"), "{err}");
}

#[test]
fn chunk_digests_need_format_1_1_and_a_valid_size() {
    let text = writer().manifest().unwrap().to_yaml().unwrap();
    assert!(Manifest::parse(text.as_bytes()).is_ok());
    let old = text.replace("format_version: \"1.1\"", "format_version: \"1.0\"");
    let err = Manifest::parse(old.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("tensors.big.chunks") && err.contains("need format_version 1.1"), "{err}");
    for size in ["3145728", "524288", "2147483648"] {
        let bad = text.replace("size: 1048576", &format!("size: {size}"));
        let err = Manifest::parse(bad.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("tensors.big.chunks.size") && err.contains("not a power of two from 2^20 to 2^30"),
            "{err}"
        );
    }
}

#[test]
fn a_writer_with_a_bad_chunk_size_refuses_to_write() {
    let mut w = writer();
    w.set_chunking(Chunking { from_bytes: MIB as u64, chunk_bytes: 3 * MIB as u64, with_sha256: true });
    let err = w.to_bytes().unwrap_err().to_string();
    assert!(err.contains("tensors.big.chunks.size") && err.contains("3145728 is not a power of two"), "{err}");
}
