//! ONNX export and import against onnxruntime, on every spec example:
//! exported models compute what the nnbundle runtime computes, and
//! import-then-export computes what the first export computes.

mod support;

use std::collections::BTreeMap;

use nnbundle::container::npy;
use nnbundle::graph::{Dim, Graph};
use nnbundle::{Model, Value};
use prost::Message;
use rand::{RngExt, SeedableRng};

#[test]
fn spec_examples_through_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let mut checks = Vec::new();
    for name in ["mlp", "lenet", "residual_block", "transformer_encoder_layer"] {
        let path = format!("{}/spec/examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let graph = Graph::from_yaml(&std::fs::read(path).unwrap()).unwrap();
        let model = Model::initialized(graph, BTreeMap::new(), 3).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let mut inputs = BTreeMap::new();
        let mut files = serde_json::Map::new();
        for input in model.graph().inputs() {
            let shape: Vec<usize> =
                input.shape.0.iter().map(|d| if let Dim::Fixed(n) = d { *n as usize } else { 2 }).collect();
            let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&shape), |_| rng.random_range(-1.0f32..1.0));
            let file = format!("{name}_{}.npy", input.name);
            std::fs::write(dir.path().join(&file), npy::to_npy(&nnbundle::Tensor::from_array(a.clone()))).unwrap();
            files.insert(input.name.clone(), file.into());
            inputs.insert(input.name.clone(), Value::F32(a));
        }
        let outputs = model.run(inputs.clone()).unwrap();
        let mut expect = serde_json::Map::new();
        for (k, v) in &outputs {
            let file = format!("{name}_out_{k}.npy");
            std::fs::write(dir.path().join(&file), npy::to_npy(&v.to_tensor())).unwrap();
            expect.insert(k.clone(), file.into());
        }

        let first = nnbundle::onnx::export(model.graph(), &model.state_dict(), &BTreeMap::new()).unwrap();
        let first_bytes = first.encode_to_vec();
        std::fs::write(dir.path().join(format!("{name}.onnx")), &first_bytes).unwrap();

        // Import what was exported: same outputs in the nnbundle runtime, then export again.
        let imported = nnbundle::onnx::import(&first_bytes).unwrap();
        let mut weights = imported.weights.clone();
        for (alias, target) in &imported.aliases {
            weights.insert(alias.clone(), imported.weights[target].clone());
        }
        let again = Model::new(imported.graph.clone(), weights).unwrap();
        let renamed: BTreeMap<String, Value> =
            again.graph().inputs().iter().zip(inputs.values()).map(|(i, v)| (i.name.clone(), v.clone())).collect();
        let reimported = again.run(renamed).unwrap();
        for ((k, want), got) in outputs.iter().zip(reimported.values()) {
            let (w, g) = (want.to_tensor().to_vec::<f32>().unwrap(), got.to_tensor().to_vec::<f32>().unwrap());
            let worst = w.iter().zip(&g).map(|(a, b)| (a - b).abs() / (1e-6 + a.abs())).fold(0f32, f32::max);
            assert!(worst < 1e-4, "{name}: output {k} after import differs (relative {worst})");
        }
        let second = nnbundle::onnx::export(&imported.graph, &imported.weights, &imported.aliases).unwrap();
        std::fs::write(dir.path().join(format!("{name}_again.onnx")), second.encode_to_vec()).unwrap();

        checks.push(serde_json::json!({"name": format!("{name}: export"), "model": format!("{name}.onnx"), "inputs": files, "expect": expect, "rtol": 1e-4, "atol": 1e-5}));
        let renamed_files: serde_json::Map<String, serde_json::Value> =
            imported.graph.inputs().iter().zip(files.values()).map(|(i, f)| (i.name.clone(), f.clone())).collect();
        assert_eq!(
            renamed_files.keys().collect::<Vec<_>>(),
            files.keys().collect::<Vec<_>>(),
            "input names survive the round trip"
        );
        checks.push(serde_json::json!({"name": format!("{name}: import then export"), "model": format!("{name}_again.onnx"), "same_as": format!("{name}.onnx"), "inputs": files, "rtol": 1e-5, "atol": 1e-6}));
    }
    let Some(python) = support::python() else { return };
    let path = dir.path().join("checks.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&checks).unwrap()).unwrap();
    let out = support::run_python(&python, &[support::script("ort_check.py").as_os_str(), path.as_os_str()]);
    println!("{out}");
    assert!(out.contains("8 passed, 0 failed"), "{out}");
}
