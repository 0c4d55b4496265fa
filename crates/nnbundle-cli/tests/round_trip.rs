//! `nnb unpack` then `nnb pack` of the folder (graph.yaml, weights.safetensors,
//! manifest.yaml) loses nothing: the same bundle
//! digest always, and the same bytes for bundles nnbundle wrote. Checked on
//! every valid conformance bundle, every spec example (with and without a
//! stored sample), and bundles with tied weights, metadata, other groups and
//! chunk digests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ndarray::Dimension;
use nnbundle_container::{Bundle, BundleWriter, Chunking};
use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{Dim, Graph};
use nnbundle_runtime::{Model, Value};

fn spec(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec").join(path)
}

fn nnb(dir: &Path, args: &[&str]) {
    let out = Command::cargo_bin("nnb").unwrap().current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "nnb {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A sample input for every graph input: symbolic dimensions are 2.
fn sample_inputs(graph: &Graph) -> BTreeMap<String, Value> {
    graph
        .inputs()
        .iter()
        .map(|input| {
            let shape: Vec<usize> =
                input.shape.0.iter().map(|d| if let Dim::Fixed(n) = d { *n as usize } else { 2 }).collect();
            let data = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&shape), |i| {
                (i.slice().iter().sum::<usize>() % 7) as f32 / 7.0 - 0.4
            });
            (input.name.clone(), Value::F32(data))
        })
        .collect()
}

/// Bundles nnbundle writes, each with what a lossy round trip would drop.
fn written_by_nnbundle() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for example in ["mlp", "lenet", "residual_block", "transformer_encoder_layer"] {
        let yaml = std::fs::read(spec(&format!("examples/{example}.yaml"))).unwrap();
        let mut model = Model::initialized(Graph::from_yaml(&yaml).unwrap(), BTreeMap::new(), 5).unwrap();
        model.set_metadata("example", example);
        out.push((example.to_owned(), model.to_writer().unwrap().to_bytes().unwrap()));
        let mut w = model.to_writer().unwrap();
        model.add_sample(&mut w, sample_inputs(model.graph()), 1e-4, 1e-5).unwrap();
        model.add_sample(&mut w, sample_inputs(model.graph()), 0.0, 0.0).unwrap();
        out.push((format!("{example}_with_samples"), w.to_bytes().unwrap()));
    }
    // Tied weights (an alias, not a copy), metadata of every kind, a second
    // group, and a chunk digest.
    let yaml = b"opset: 1\ninputs: [{name: x, dtype: f32, shape: [batch, 8]}]\nsequential:\n\
                 - {name: a, op: Linear, attrs: {in_features: 8, out_features: 8, bias: false}}\n\
                 - {name: b, op: Linear, attrs: {in_features: 8, out_features: 8, bias: false}}\n";
    let mut w = BundleWriter::new();
    w.set_graph(Graph::from_yaml(yaml).unwrap());
    w.add_tensor("a.weight", Tensor::from_vec(vec![8, 8], (0..64).map(|i| i as f32 / 64.0).collect()).unwrap())
        .unwrap();
    w.add_alias("b.weight", "a.weight").unwrap();
    w.add_tensor_to_group("optimizer", "step", Tensor::scalar(12i64)).unwrap();
    w.add_tensor_to_group("optimizer", "big", Tensor::from_vec(vec![1 << 19], vec![0.5f32; 1 << 19]).unwrap()).unwrap();
    w.set_chunking(Chunking { from_bytes: 1 << 21, chunk_bytes: 1 << 20, with_sha256: true });
    w.set_metadata("epochs", 10i64).unwrap();
    w.set_metadata("lr", 0.001).unwrap();
    w.set_metadata("name", "tied: \"quoted\" 1e400").unwrap();
    w.set_metadata("done", true).unwrap();
    out.push(("tied_groups_chunks".to_owned(), w.to_bytes().unwrap()));
    out
}

fn valid_conformance_bundles() -> Vec<(String, Vec<u8>)> {
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(spec("conformance/cases.json")).unwrap()).unwrap();
    let valid: Vec<_> = cases
        .iter()
        // Sharded cases (a folder each: `shards_valid/model.nnb`) unpack to one bundle's folder.
        .filter(|c| c["verdict"] == "valid" && !c["file"].as_str().unwrap().contains('/'))
        .map(|c| {
            let file = c["file"].as_str().unwrap();
            (file.to_owned(), std::fs::read(spec(&format!("conformance/{file}"))).unwrap())
        })
        .collect();
    assert!(valid.len() >= 5, "{} valid conformance bundles", valid.len());
    valid
}

/// Unpacks and packs `bytes`; returns the bundle packed again.
fn round_trip(dir: &Path, name: &str, bytes: &[u8]) -> Vec<u8> {
    let original = dir.join(format!("{name}.nnb"));
    std::fs::write(&original, bytes).unwrap();
    let folder = format!("{name}.unpacked");
    let packed = format!("{name}.packed.nnb");
    nnb(dir, &["unpack", original.to_str().unwrap(), "-o", &folder, "--quiet"]);
    nnb(dir, &["pack", &folder, "-o", &packed, "--quiet"]);
    std::fs::read(dir.join(packed)).unwrap()
}

#[test]
fn unpack_then_pack_gives_the_same_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (name, bytes) in valid_conformance_bundles().into_iter().chain(written_by_nnbundle()) {
        let again = round_trip(dir.path(), &name, &bytes);
        let (a, b) = (Bundle::from_bytes(bytes.clone()).unwrap(), Bundle::from_bytes(again.clone()).unwrap());
        assert_eq!(a.digest(), b.digest(), "{name}: bundle digest");
        assert_eq!(a.manifest(), b.manifest(), "{name}: manifest");
        // Every conformance bundle that is valid was written by nnbundle too.
        assert!(bytes == again, "{name}: {} bytes became {}", bytes.len(), again.len());
        checked += 1;
    }
    assert_eq!(checked, valid_conformance_bundles().len() + 9);
}

#[test]
fn tied_weights_stay_tied_and_the_folder_is_editable() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bytes) = written_by_nnbundle().pop().unwrap();
    std::fs::write(dir.path().join("t.nnb"), &bytes).unwrap();
    nnb(dir.path(), &["unpack", "t.nnb", "-o", "t", "-q"]);
    let st = std::fs::read(dir.path().join("t/weights.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&st).unwrap();
    let mut names = file.names();
    names.sort();
    assert_eq!(names, ["a.weight", "big", "step"], "an alias is not written as a copy");

    // An edited tensor is hashed again; everything else stays.
    let edited = Tensor::from_vec(vec![8, 8], vec![1.0f32; 64]).unwrap();
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = Vec::new();
    for name in names {
        let view = file.tensor(name).unwrap();
        let view = if name == "a.weight" {
            safetensors::tensor::TensorView::new(view.dtype(), view.shape().to_vec(), edited.as_bytes()).unwrap()
        } else {
            view
        };
        views.push((name.to_owned(), view));
    }
    std::fs::write(dir.path().join("t/weights.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    nnb(dir.path(), &["pack", "t", "-o", "edited.nnb", "-q"]);
    let b = Bundle::open(dir.path().join("edited.nnb")).unwrap();
    b.verify_every_digest().unwrap();
    assert_eq!(b.tensor("b.weight").unwrap(), edited, "the alias follows the edited tensor");
    assert_eq!(b.manifest().aliases, Bundle::from_bytes(bytes).unwrap().manifest().aliases);
    assert_eq!(b.tensor("step").unwrap().dtype(), DType::I64);
    assert_eq!(b.manifest().metadata["epochs"], 10i64.into());
}
