//! Signing and verifying bundles in place: what a signature covers, that
//! signing changes no other byte, and that every kind of change is caught.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nnbundle_container::{Archive, Bundle, BundleWriter, Durability};
use nnbundle_format::Tensor;
use nnbundle_signing::{SigningKey, VerifyingKey, default_name, sign_bundle, sign_file, verify_bundle, verify_file};

fn keys(file: &str) -> String {
    std::fs::read_to_string(format!("{}/../../spec/conformance/keys/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn private(file: &str) -> SigningKey {
    SigningKey::from_pem(&keys(file)).unwrap()
}

fn public(file: &str) -> VerifyingKey {
    VerifyingKey::from_pem(&keys(file)).unwrap()
}

/// Saves `model.nnb` in `dir`, its last weight `last`.
fn save_model(dir: &Path, last: f32) -> PathBuf {
    let mut w = BundleWriter::new();
    w.add_tensor("fc.weight", Tensor::from_vec(vec![2, 3], vec![1f32, 2., 3., 4., 5., last]).unwrap()).unwrap();
    w.add_tensor("fc.bias", Tensor::from_vec(vec![2], vec![0.5f32, -0.5]).unwrap()).unwrap();
    w.set_metadata("author", "tests").unwrap();
    let path = dir.join("model.nnb");
    w.save(&path).unwrap();
    path
}

fn unsigned(dir: &Path) -> PathBuf {
    save_model(dir, 6.0)
}

fn sign_in_place(path: &Path, key: &SigningKey, name: &str) {
    let bundle = Bundle::open(path).unwrap();
    let mut signatures: BTreeMap<String, Vec<u8>> =
        bundle.signatures().unwrap().into_iter().map(|(n, b)| (n.to_owned(), b.into_owned())).collect();
    signatures.insert(name.to_owned(), sign_bundle(&bundle, key, "model").unwrap());
    bundle.archive().save_with_signatures(path, &signatures, Durability::Unsynced).unwrap();
}

#[test]
fn signing_adds_one_entry_and_changes_no_other_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = unsigned(dir.path());
    let original = std::fs::read(&path).unwrap();
    let digest = Bundle::open(&path).unwrap().digest();
    let key = private("p256.pem");
    sign_in_place(&path, &key, "release");
    let signed = std::fs::read(&path).unwrap();
    let bundle = Bundle::open(&path).unwrap();
    assert_eq!(bundle.digest(), digest, "the bundle digest ignores signatures");
    assert_eq!(bundle.archive().signature_entries().map(|(n, _)| n).collect::<Vec<_>>(), ["release"]);
    // Every entry keeps its bytes at its offset: the unsigned file's entries are a prefix.
    let content_end = original.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
    let first_record = original.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    assert!(first_record <= content_end);
    assert_eq!(signed[..first_record], original[..first_record]);

    let verified = verify_bundle(bundle.archive(), &public("p256.pub.pem")).unwrap();
    assert_eq!(verified.name, "release");
    assert_eq!(verified.entries, 3, "manifest.yaml and two tensors");

    // Signing again with the same key and name gives the same bytes.
    sign_in_place(&path, &key, "release");
    assert_eq!(std::fs::read(&path).unwrap(), signed);

    // Removing every signature gives back the original file, byte for byte.
    Bundle::open(&path).unwrap().archive().save_with_signatures(&path, &BTreeMap::new(), Durability::Unsynced).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), original);
}

#[test]
fn a_second_key_adds_a_second_signature_and_each_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = unsigned(dir.path());
    let (p256, ed25519) = (private("p256.pem"), private("ed25519.pem"));
    sign_in_place(&path, &p256, &default_name(&p256.verifying_key()));
    sign_in_place(&path, &ed25519, &default_name(&ed25519.verifying_key()));
    let bundle = Bundle::open(&path).unwrap();
    assert_eq!(bundle.archive().signature_entries().count(), 2);
    for (public_key, signer) in [("p256.pub.pem", &p256), ("ed25519.pub.pem", &ed25519)] {
        let verified = verify_bundle(bundle.archive(), &public(public_key)).unwrap();
        assert_eq!(verified.name, default_name(&signer.verifying_key()));
    }
    let err = verify_bundle(bundle.archive(), &public("other_p256.pub.pem")).unwrap_err().to_string();
    assert!(err.contains("signed by another key"), "{err}");
}

#[test]
fn an_unsigned_bundle_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = Bundle::open(unsigned(dir.path())).unwrap();
    let err = verify_bundle(bundle.archive(), &public("p256.pub.pem")).unwrap_err();
    assert_eq!(err.to_string(), "the bundle has no signatures");
}

/// Rewrites the bundle at `path` with one tensor's data changed and the same
/// signature entries: the container is valid (the manifest's digest follows
/// the data), only the signature can tell.
#[test]
fn a_changed_tensor_with_a_consistent_manifest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = unsigned(dir.path());
    sign_in_place(&path, &private("p256.pem"), "release");
    let signature = Bundle::open(&path).unwrap().signatures().unwrap()[0].1.to_vec();

    save_model(dir.path(), 7.0);
    Archive::open(&path)
        .unwrap()
        .save_with_signatures(&path, &BTreeMap::from([("release".to_owned(), signature)]), Durability::Unsynced)
        .unwrap();

    let err = verify_bundle(Bundle::open(&path).unwrap().archive(), &public("p256.pub.pem")).unwrap_err().to_string();
    assert!(err.contains("entry `manifest.yaml` changed"), "{err}");
}

#[test]
fn a_detached_signature_covers_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = unsigned(dir.path());
    let file = std::fs::read(&path).unwrap();
    let signature = sign_file(&file, &private("ed25519.pem"), "model.nnb").unwrap();
    verify_file(&file, &signature, &public("ed25519.pub.pem")).unwrap();
    let mut flipped = file.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let err = verify_file(&flipped, &signature, &public("ed25519.pub.pem")).unwrap_err().to_string();
    assert!(err.contains("entry `.` changed"), "{err}");
    assert!(verify_file(&file, &signature, &public("p256.pub.pem")).is_err());
}
