//! Byte reproducibility: the same content gives the same bytes, in any process.

use std::process::Command;

use nnbundle::{BundleWriter, Sha256Digest, Tensor};

const CHILD_ENV: &str = "NNB_REPRODUCIBLE_CHILD_OUT";

fn known_bundle() -> BundleWriter {
    let mut w = BundleWriter::new();
    let weight: Vec<f32> = (0..256 * 20).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    w.add_tensor("hidden.weight", Tensor::from_vec(vec![256, 20], weight).unwrap()).unwrap();
    w.add_tensor("hidden.bias", Tensor::from_vec(vec![256], vec![0.125f32; 256]).unwrap()).unwrap();
    w.add_tensor_to_group("optimizer", "optimizer.step", Tensor::scalar(100i64)).unwrap();
    w.add_alias("tied.weight", "hidden.weight").unwrap();
    // Several metadata keys: their order must not depend on hashing or insertion.
    for (k, v) in [("zeta", 1i64), ("alpha", 2), ("mid", 3)] {
        w.set_metadata(k, v).unwrap();
    }
    w
}

/// Not a check on its own: when run by `bundles_written_by_two_processes_are_identical`
/// with the environment variable set, it writes the known bundle where told.
#[test]
fn child_process_writer() {
    if let Some(out) = std::env::var_os(CHILD_ENV) {
        known_bundle().save(out).unwrap();
    }
}

#[test]
fn bundles_written_by_two_processes_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("run{i}.nnb"));
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_process_writer", "--test-threads=1"])
            .env(CHILD_ENV, &out)
            .output()
            .unwrap();
        assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], known_bundle().to_bytes().unwrap(), "and equal to this process's bytes");
}

/// Pins the bytes of a known bundle. It changes only when the format does:
/// update it together with spec/FORMAT.md and the changelog's Format section.
#[test]
fn known_bundle_digest_is_pinned() {
    let bytes = known_bundle().to_bytes().unwrap();
    assert_eq!(
        Sha256Digest::of(&bytes).to_hex(),
        "7a98409a6b50bc8238ca708ef6f5d9c323ff86d6186642b69c510f331efa9604",
        "the writer's output changed; if intended, it is a format change"
    );
}
