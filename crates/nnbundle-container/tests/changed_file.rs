//! A bundle file truncated or rewritten in place while open (as `cp new.nnb
//! model.nnb` does) gives an error naming the file and the tensor, for every
//! backend, instead of killing the process with SIGBUS.

use std::io::Write;
use std::path::Path;

use nnbundle_container::{Backend, Bundle, BundleWriter, OpenOptions, Verify};
use nnbundle_format::Tensor;

/// Two 1 MiB tensors, `a` and `b`, filled with `fill`.
fn save(path: &Path, fill: f32) {
    let mut w = BundleWriter::new();
    for name in ["a", "b"] {
        w.add_tensor(name, Tensor::from_vec(vec![1 << 18], vec![fill; 1 << 18]).unwrap()).unwrap();
    }
    w.save(path).unwrap();
}

/// Overwrites `path` in place: truncate, then write `bytes` (what `cp` does).
fn overwrite_in_place(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

/// `model.nnb` filled with 1.0 in a new folder, and the bytes of the same
/// layout filled with 2.0.
fn two_files() -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (path, other) = (dir.path().join("model.nnb"), dir.path().join("other.nnb"));
    save(&path, 1.0);
    save(&other, 2.0);
    let bytes = std::fs::read(&other).unwrap();
    (dir, path, bytes)
}

fn open(path: &Path, backend: Backend) -> Bundle {
    Bundle::open_with(path, OpenOptions { verify: Verify::OnAccess, backend }).unwrap()
}

#[test]
fn a_truncated_file_gives_an_error_naming_the_file_and_tensor() {
    for backend in [Backend::Mmap, Backend::Pread] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.nnb");
        save(&path, 1.0);
        let bundle = open(&path, backend);
        assert_eq!(bundle.tensor("a").unwrap().to_vec::<f32>().unwrap()[0], 1.0);
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1000).unwrap();
        let err = bundle.tensor("b").unwrap_err();
        let message = err.to_string();
        assert_eq!(err.code(), "io", "{backend:?}: {message}");
        assert!(message.contains("model.nnb") && message.contains("changed while open"), "{backend:?}: {message}");
        assert!(message.contains("tensor `b`"), "{backend:?}: {message}");
        // Every later read says the same; nothing faults.
        assert!(bundle.verify_all().is_err(), "{backend:?}");
    }
}

#[test]
fn a_file_rewritten_in_place_fails_its_digest_check() {
    for backend in [Backend::Mmap, Backend::Pread] {
        let (_dir, path, other) = two_files();
        let bundle = open(&path, backend);
        assert_eq!(bundle.tensor("a").unwrap().to_vec::<f32>().unwrap()[0], 1.0);
        // `b`'s headers are checked (read unverified) before the rewrite.
        bundle.tensor_unverified("b").unwrap();
        // Same layout and length, other values: only the digest can tell.
        overwrite_in_place(&path, &other);
        let err = bundle.tensor("b").unwrap_err();
        assert_eq!(err.code(), "hash-mismatch", "{backend:?}: {err}");
        // `a` again: shared bytes checked once stay checked, which mapped
        // pages that changed under the reader break; positioned reads hash again.
        if backend == Backend::Pread {
            assert_eq!(bundle.tensor("a").unwrap_err().code(), "hash-mismatch");
        }
    }
}

#[test]
fn a_tensor_first_read_after_a_rewrite_fails_its_local_header_check() {
    for backend in [Backend::Mmap, Backend::Pread] {
        let (_dir, path, other) = two_files();
        let bundle = open(&path, backend);
        // Headers are checked at first use: `b`'s local header now carries the
        // other file's CRC-32, which differs from the central directory read at open.
        overwrite_in_place(&path, &other);
        let err = bundle.tensor("b").unwrap_err();
        assert_eq!((err.code(), err.location().as_deref()), ("bad-entry", Some("tensors/b.npy")), "{backend:?}: {err}");
        assert!(err.to_string().contains("CRC-32 differs"), "{backend:?}: {err}");
    }
}

#[test]
fn a_bundle_read_into_memory_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.nnb");
    save(&path, 1.0);
    let bundle = open(&path, Backend::Memory);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    assert_eq!(bundle.tensor("b").unwrap().to_vec::<f32>().unwrap()[0], 1.0);
}

#[test]
fn replacing_the_file_by_rename_leaves_an_open_bundle_intact() {
    // nnb's own writers write a new file and rename it over the old one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.nnb");
    save(&path, 1.0);
    let bundle = open(&path, Backend::Mmap);
    save(&path, 2.0);
    assert_eq!(bundle.tensor("b").unwrap().to_vec::<f32>().unwrap()[0], 1.0);
    assert_eq!(open(&path, Backend::Mmap).tensor("b").unwrap().to_vec::<f32>().unwrap()[0], 2.0);
}
