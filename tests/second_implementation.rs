//! The spec alone is enough: `tests/python/nnb_spec.py`, a reader and writer
//! written from spec/FORMAT.md (not from this code), must give nnb's verdict
//! on every conformance bundle and on byte flips and truncations of two small
//! bundles, and re-write every bundle nnb writes here byte for byte.

#[path = "support/op_cases.rs"]
mod op_cases;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Dimension;
use nnbundle::graph::Graph;
use nnbundle::{BundleWriter, Chunking, Model, Tensor, Value};

fn spec(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("spec").join(path)
}

/// Bundles nnb writes: every spec example with seeded weights (and again with
/// a sample), every op case, every dtype, groups, aliases, metadata, chunk
/// digests.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for example in ["mlp", "lenet", "residual_block", "transformer_encoder_layer"] {
        let yaml = std::fs::read(spec(&format!("examples/{example}.yaml"))).unwrap();
        let model = Model::initialized(Graph::from_yaml(&yaml).unwrap(), BTreeMap::new(), 11).unwrap();
        out.push((example.to_owned(), model.to_writer().unwrap().to_bytes().unwrap()));
        // The same with a sample: the second implementation re-runs it with
        // its own numpy reference of the ops (f32 here, float64 there).
        let inputs: BTreeMap<String, Value> = model
            .graph()
            .inputs()
            .iter()
            .map(|input| {
                let shape: Vec<usize> = input
                    .shape
                    .0
                    .iter()
                    .map(|d| match d {
                        nnbundle::graph::Dim::Fixed(n) => *n as usize,
                        _ => 2,
                    })
                    .collect();
                let data = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&shape), |i| {
                    (i.slice().iter().sum::<usize>() % 7) as f32 / 7.0 - 0.4
                });
                (input.name.clone(), Value::F32(data))
            })
            .collect();
        let outputs = model.run(inputs.clone()).unwrap().into_iter().map(|(k, v)| (k, v.to_tensor())).collect();
        let mut w = model.to_writer().unwrap();
        w.add_sample(inputs.into_iter().map(|(k, v)| (k, v.to_tensor())).collect(), outputs, 1e-4, 1e-5).unwrap();
        out.push((format!("{example}_with_sample"), w.to_bytes().unwrap()));
    }

    // One bundle per op case: every op, its attributes in many forms.
    let mut rng = op_cases::rng();
    for case in op_cases::cases() {
        let built = op_cases::build(&case, &mut rng);
        out.push((format!("op_{}", case.name), built.model.to_writer().unwrap().to_bytes().unwrap()));
    }

    let mut w = BundleWriter::new();
    w.add_tensor("f16", Tensor::from_vec(vec![2], vec![nnbundle::f16::from_f32(1.5); 2]).unwrap()).unwrap();
    w.add_tensor("bf16", Tensor::from_vec(vec![1, 3], vec![nnbundle::bf16::from_f32(-2.0); 3]).unwrap()).unwrap();
    w.add_tensor("f64", Tensor::scalar(std::f64::consts::PI)).unwrap();
    w.add_tensor("i8", Tensor::from_vec(vec![3], vec![-1i8, 0, 1]).unwrap()).unwrap();
    w.add_tensor("i16", Tensor::from_vec(vec![0, 4], Vec::<i16>::new()).unwrap()).unwrap();
    w.add_tensor("i32", Tensor::from_vec(vec![2, 1, 2], vec![7i32; 4]).unwrap()).unwrap();
    w.add_tensor("u8", Tensor::from_vec(vec![5], vec![255u8; 5]).unwrap()).unwrap();
    w.add_tensor("bool", Tensor::from_vec(vec![2], vec![true, false]).unwrap()).unwrap();
    w.add_tensor_to_group("optimizer", "adam.exp_avg.layer 1", Tensor::from_vec(vec![2], vec![0.25f32; 2]).unwrap())
        .unwrap();
    w.add_alias("tied.weight", "i32").unwrap();
    w.set_metadata("epoch", 12i64).unwrap();
    w.set_metadata("lr", 3e-4).unwrap();
    w.set_metadata("tags", vec!["a".to_owned(), "b c".to_owned()]).unwrap();
    out.push(("every_dtype".to_owned(), w.to_bytes().unwrap()));

    let mut w = BundleWriter::new();
    w.set_chunking(Chunking { from_bytes: 1 << 20, chunk_bytes: 1 << 20, with_sha256: true });
    w.add_tensor("big", Tensor::from_vec(vec![3 << 19], (0..3u32 << 19).map(|i| (i % 253) as u8).collect()).unwrap())
        .unwrap();
    w.add_tensor("small", Tensor::scalar(1u8)).unwrap();
    out.push(("chunked".to_owned(), w.to_bytes().unwrap()));
    // The default: tensors of 2 MiB and more hashed once, in chunks (format 1.2).
    let mut w = BundleWriter::new();
    w.add_tensor("big", Tensor::from_vec(vec![5 << 19], (0..5u32 << 19).map(|i| (i % 241) as u8).collect()).unwrap())
        .unwrap();
    w.add_tensor("small", Tensor::scalar(1u8)).unwrap();
    out.push(("chunks_only".to_owned(), w.to_bytes().unwrap()));
    out
}

/// Byte flips and truncations of `bytes`, each with nnb's verdict.
fn variants(name: &str, bytes: &[u8], dir: &Path, stride: usize) -> Vec<serde_json::Value> {
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for at in (0..bytes.len()).step_by(stride) {
        let mut flipped = bytes.to_vec();
        flipped[at] ^= 0x01;
        cases.push((format!("flip {at}"), flipped));
    }
    for len in (0..bytes.len()).step_by(stride * 7).chain(bytes.len().saturating_sub(30)..bytes.len()) {
        cases.push((format!("truncate to {len}"), bytes[..len].to_vec()));
    }
    cases
        .into_iter()
        .enumerate()
        .map(|(i, (what, data))| {
            let path = dir.join(format!("{name}-{i}.nnb"));
            std::fs::write(&path, &data).unwrap();
            let report = nnbundle::runtime::validate(&path, Default::default());
            let codes: Vec<String> = match report.valid {
                true => Vec::new(),
                false => report.problems.iter().map(|p| p.code.to_string()).collect(),
            };
            serde_json::json!({"file": path, "what": what, "codes": codes})
        })
        .collect()
}

#[test]
fn a_reader_and_writer_from_the_spec_agree_with_nnb() {
    let Some(python) = support::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let corpus_dir = dir.path().join("corpus");
    std::fs::create_dir(&corpus_dir).unwrap();
    for (name, bytes) in corpus() {
        std::fs::write(corpus_dir.join(format!("{name}.nnb")), bytes).unwrap();
    }
    for file in [
        "valid_tensors_only",
        "valid_mlp",
        "valid_mlp_with_sample",
        "valid_chunk_digest",
        "valid_names_and_metadata",
        "valid_signed",
    ] {
        std::fs::copy(spec(&format!("conformance/{file}.nnb")), corpus_dir.join(format!("{file}.nnb"))).unwrap();
    }
    let variants_dir = dir.path().join("variants");
    std::fs::create_dir(&variants_dir).unwrap();
    let mut all =
        variants("tensors", &std::fs::read(spec("conformance/valid_tensors_only.nnb")).unwrap(), &variants_dir, 1);
    all.extend(variants(
        "mlp",
        &std::fs::read(spec("conformance/valid_mlp_with_sample.nnb")).unwrap(),
        &variants_dir,
        13,
    ));
    let listing = dir.path().join("variants.json");
    std::fs::write(&listing, serde_json::to_string(&all).unwrap()).unwrap();

    let args = [
        support::script("second_implementation.py").into_os_string(),
        spec("OPS.md").into_os_string(),
        spec("conformance").into_os_string(),
        corpus_dir.into_os_string(),
        listing.into_os_string(),
    ];
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = support::run_python(&python, &refs);
    println!("{out}");
    assert!(out.contains(" 0 disagreements"), "{out}");
}
