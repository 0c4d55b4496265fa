//! Cross-language check: numpy, zipfile and hashlib read what nnbundle writes.

mod support;

use std::collections::BTreeMap;

use nnbundle::{BundleWriter, Chunking, DType, Tensor, bf16, f16};

/// Tensors with values written out by hand, so the check compares against
/// the literals here, not against anything nnbundle computed.
fn cases() -> Vec<(&'static str, Tensor, Vec<&'static str>)> {
    let v = |t: Result<Tensor, _>| t.unwrap();
    vec![
        (
            "f16",
            v(Tensor::from_vec(vec![3], vec![f16::from_f32(0.5), f16::from_f32(-2.0), f16::from_f32(65504.0)])),
            vec!["0.5", "-2", "65504"],
        ),
        ("bf16", v(Tensor::from_vec(vec![2], vec![bf16::from_f32(-1.5), bf16::from_f32(256.0)])), vec!["-1.5", "256"]),
        (
            "f32",
            v(Tensor::from_vec(vec![2, 3], vec![0.0f32, -0.0, 1.5, 1e-45, 3.25, -7.0])),
            vec!["0", "-0", "1.5", "1e-45", "3.25", "-7"],
        ),
        ("f64", v(Tensor::from_vec(vec![2], vec![0.1f64, -1e300])), vec!["0.1", "-1e300"]),
        ("i8", v(Tensor::from_vec(vec![3], vec![-128i8, 0, 127])), vec!["-128", "0", "127"]),
        ("i16", v(Tensor::from_vec(vec![2], vec![-32768i16, 32767])), vec!["-32768", "32767"]),
        ("i32", v(Tensor::from_vec(vec![1, 2], vec![-2147483648i32, 2147483647])), vec!["-2147483648", "2147483647"]),
        ("i64", v(Tensor::from_vec(vec![4], vec![0i64, 1, 2, 3])), vec!["0", "1", "2", "3"]),
        ("u8", v(Tensor::from_vec(vec![2, 2], vec![0u8, 1, 254, 255])), vec!["0", "1", "254", "255"]),
        ("bool", v(Tensor::from_vec(vec![3], vec![true, false, true])), vec!["true", "false", "true"]),
        ("scalar", Tensor::scalar(42.5f32), vec!["42.5"]),
        ("empty", v(Tensor::from_vec::<f32>(vec![0, 5], vec![])), vec![]),
        ("encoder.layers.0.вес", v(Tensor::from_vec(vec![2], vec![1.0f32, 2.0])), vec!["1", "2"]),
    ]
}

#[test]
fn numpy_reads_every_tensor_and_python_recomputes_every_hash() {
    let Some(python) = support::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bundle_path = dir.path().join("all.nnb");
    let mut w = BundleWriter::new();
    let mut expected = BTreeMap::new();
    for (name, tensor, values) in cases() {
        let dtype: DType = tensor.dtype();
        expected.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype.name(), "shape": tensor.shape(), "values": values}),
        );
        w.add_tensor(name, tensor).unwrap();
    }
    // Read by numpy too, but checked here only by its digests: a chunk
    // digest in 1 MiB chunks over 2.5 MiB, the last chunk shorter.
    w.set_chunking(Chunking { from_bytes: 1 << 20, chunk_bytes: 1 << 20, with_sha256: true });
    let ramp: Vec<u8> = (0..5 << 19).map(|i: u32| (i % 253) as u8).collect();
    w.add_tensor("chunked", Tensor::from_vec(vec![ramp.len()], ramp).unwrap()).unwrap();
    w.add_alias("decoder.weight", "f32").unwrap();
    w.add_tensor_to_group("optimizer", "optimizer.step", Tensor::scalar(10i64)).unwrap();
    w.set_metadata("epochs", 3i64).unwrap();
    w.set_metadata("lr", 0.5f64).unwrap();
    w.set_metadata("name", "textbook ümlaut \"quoted\"\n").unwrap();
    let manifest = w.save(&bundle_path).unwrap();
    let expected = serde_json::json!({
        "tensors": expected,
        "bundle_digest": manifest.bundle_digest().unwrap().to_hex(),
    });
    let expected_path = dir.path().join("expected.json");
    std::fs::write(&expected_path, serde_json::to_vec(&expected).unwrap()).unwrap();
    let out = support::run_python(
        &python,
        &[support::script("check_bundle.py").as_os_str(), bundle_path.as_os_str(), expected_path.as_os_str()],
    );
    assert!(out.contains("ok: 13 tensors read by numpy, 15 hashes recomputed, 1 chunk digests recomputed"), "{out}");
}
