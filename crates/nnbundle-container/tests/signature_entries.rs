//! Rewriting a bundle's signature entries: the limits and names are checked,
//! and a layout nnbundle never writes (a signature between other entries) is
//! refused with its entry named.

use std::collections::BTreeMap;
use std::io::Write;

use nnbundle_container::{Archive, BundleWriter, Durability};
use nnbundle_format::Tensor;

fn bundle(dir: &std::path::Path) -> std::path::PathBuf {
    let mut w = BundleWriter::new();
    w.add_tensor("x", Tensor::from_vec(vec![3], vec![1f32, 2., 3.]).unwrap()).unwrap();
    let path = dir.join("model.nnb");
    w.save(&path).unwrap();
    path
}

#[test]
fn signature_limits_and_names_are_checked_when_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    let path = bundle(dir.path());
    let archive = Archive::open(&path).unwrap();
    let many: BTreeMap<String, Vec<u8>> = (0..17).map(|i| (format!("s{i}"), b"{}".to_vec())).collect();
    let err = archive.save_with_signatures(&path, &many, Durability::Unsynced).unwrap_err().to_string();
    assert!(err.contains("17 signatures") && err.contains("MAX_SIGNATURES"), "{err}");
    let named = BTreeMap::from([(".hidden".to_owned(), b"{}".to_vec())]);
    let err = archive.save_with_signatures(&path, &named, Durability::Unsynced).unwrap_err().to_string();
    assert!(err.contains(".hidden") && err.contains("must not start with `.`"), "{err}");
    // Nothing was written over the bundle.
    assert_eq!(Archive::open(&path).unwrap().signature_entries().count(), 0);
}

#[test]
fn a_signature_between_other_entries_is_named_and_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = bundle(dir.path());
    // The same entries, a signature written before the tensor entry.
    let mut source = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let read = |archive: &mut zip::ZipArchive<std::fs::File>, name: &str| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name(name).unwrap(), &mut bytes).unwrap();
        bytes
    };
    let (manifest, tensor) = (read(&mut source, "manifest.yaml"), read(&mut source, "tensors/x.npy"));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let odd = dir.path().join("odd.nnb");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&odd).unwrap());
    for (name, bytes) in
        [("manifest.yaml", &manifest[..]), ("signatures/a.sigstore.json", b"{}"), ("tensors/x.npy", &tensor)]
    {
        zip.start_file(name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    let before = std::fs::read(&odd).unwrap();
    let archive = Archive::open(&odd).unwrap();
    let err = archive.save_with_signatures(&odd, &BTreeMap::new(), Durability::Unsynced).unwrap_err().to_string();
    assert!(err.contains("signatures/a.sigstore.json") && err.contains("lies between other entries"), "{err}");
    assert_eq!(std::fs::read(&odd).unwrap(), before);
}
