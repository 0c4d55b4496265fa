//! Partial reuse: load_state_dict (strict, non-strict, renamed) and sub-graph extraction.

use std::collections::BTreeMap;

use nnbundle_container::Bundle;
use nnbundle_format::{DType, Tensor};
use nnbundle_runtime::{Layer, LoadOptions, Model, Sequential, extract};

fn mlp(seed: u64, classes: i64) -> Model {
    Sequential::new("X", DType::F32, &["batch".into(), 4u64.into()])
        .add("hidden", Layer::linear(4, 8))
        .add("relu", Layer::relu())
        .add("output", Layer::linear(8, classes))
        .build(seed)
        .unwrap()
}

#[test]
fn non_strict_load_reports_like_pytorch() {
    let source = mlp(1, 3).state_dict();
    let mut target = mlp(2, 5);
    let before = target.state_dict();
    let report = target.load_state_dict(&source, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded, ["hidden.bias", "hidden.weight"]);
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    let names: Vec<_> = report.mismatched.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["output.bias", "output.weight"]);
    assert_eq!(report.mismatched[1].expected, "f32 [5, 8]");
    assert_eq!(report.mismatched[1].found, "f32 [3, 8]");
    let after = target.state_dict();
    assert_eq!(after["hidden.weight"], source["hidden.weight"]);
    assert_eq!(after["output.weight"], before["output.weight"], "mismatched parameters are kept");
}

#[test]
fn strict_load_fails_and_changes_nothing() {
    let mut source = mlp(1, 3).state_dict();
    source.insert("extra".into(), Tensor::scalar(1.0f32));
    let mut target = mlp(2, 3);
    let before = target.state_dict();
    let err =
        target.load_state_dict(&source, &LoadOptions { strict: true, ..Default::default() }).unwrap_err().to_string();
    assert!(err.contains("unexpected: extra"), "{err}");
    assert_eq!(target.state_dict(), before);
    source.remove("extra");
    let report = target.load_state_dict(&source, &LoadOptions { strict: true, ..Default::default() }).unwrap();
    assert!(report.is_complete());
    assert_eq!(target.state_dict(), source);
}

#[test]
fn prefix_renames_map_names() {
    let source: BTreeMap<String, Tensor> =
        mlp(1, 3).state_dict().into_iter().map(|(k, v)| (format!("backbone.{k}"), v)).collect();
    let mut target = mlp(2, 3);
    let options = LoadOptions { strict: true, rename: vec![("backbone.".into(), String::new())] };
    let report = target.load_state_dict(&source, &options).unwrap();
    assert_eq!(report.loaded.len(), 4);
}

#[test]
fn extract_keeps_only_what_the_outputs_need() {
    let dir = tempfile::tempdir().unwrap();
    let model = mlp(3, 3);
    let path = dir.path().join("m.nnb");
    model.save(&path).unwrap();
    let bundle = Bundle::open(&path).unwrap();
    let part = extract(&bundle, &["relu"]).unwrap();
    let part_path = dir.path().join("part.nnb");
    part.save(&part_path).unwrap();
    let part_bundle = Bundle::open(&part_path).unwrap();
    let names: Vec<_> = part_bundle.tensor_infos().iter().map(|i| i.name.to_owned()).collect();
    assert_eq!(names, ["hidden.bias", "hidden.weight"]);
    assert_eq!(part_bundle.graph().unwrap().unwrap().outputs(), ["relu"]);
    let err = extract(&bundle, &["nope"]).unwrap_err().to_string();
    assert!(err.contains("no node named `nope`"), "{err}");
}

/// A model run (which packs its weights for GEMM on first use) and then given
/// new weights computes with the new ones, as a model built with them does.
#[test]
fn loaded_weights_replace_prepared_ones() {
    let wide = |seed| {
        Sequential::new("X", DType::F32, &["batch".into(), 2u64.into(), 8u64.into(), 6u64.into()])
            .add("conv", Layer::conv2d(2, 16, 3))
            .add("flat", Layer::flatten())
            .add("hidden", Layer::linear(16 * 6 * 4, 80))
            .build(seed)
            .unwrap()
    };
    let x =
        ndarray::Array4::from_shape_fn((16, 2, 8, 6), |(i, c, y, x)| ((i * 7 + c * 3 + y * 5 + x) % 11) as f32 - 5.0)
            .into_dyn();
    let (mut target, source) = (wide(1), wide(2));
    let before = target.forward(x.clone()).unwrap();
    target.load_state_dict(&source.state_dict(), &LoadOptions { strict: true, ..Default::default() }).unwrap();
    let after = target.forward(x.clone()).unwrap();
    assert_ne!(after, before);
    assert_eq!(after, source.forward(x).unwrap());
}
