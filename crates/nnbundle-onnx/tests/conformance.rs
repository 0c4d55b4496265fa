//! The ONNX backend node tests vendored in `tests/data/onnx-node/` (from
//! onnx 1.22.0; provenance in its README): import
//! each `model.onnx`, run it on `input_K.npy`, compare with `output_K.npy`.
//!
//! Test-harness adjustments (documented in spec/CONFORMANCE.md):
//! - int64 graph inputs that feed a Reshape's shape or a Gather's indices are
//!   frozen into the model as initializers, with the values of the case's data;
//! - shapes come from `tensors.json` (the `.pb` files' shapes): the `.npy`
//!   copies write ONNX scalars as shape `(1,)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nnbundle_container::npy;
use nnbundle_format::Tensor;
use nnbundle_onnx::proto::{ModelProto, TensorProto};
use nnbundle_runtime::{Model, Value};
use prost::Message;

/// ONNX's backend tolerance.
const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-7;

/// Cases whose semantics are outside opset 1 by design, with the reason.
const EXCLUDED: &[(&str, &str)] = &[];

fn cases_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx-node");
    assert!(dir.is_dir(), "the vendored conformance cases are missing at {}", dir.display());
    dir
}

fn to_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: 7,
        name: name.to_owned(),
        raw_data: t.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    match t.dtype() {
        nnbundle_format::DType::F32 => t.to_vec::<f32>().unwrap().into_iter().map(f64::from).collect(),
        nnbundle_format::DType::F64 => t.to_vec::<f64>().unwrap(),
        nnbundle_format::DType::I64 => t.to_vec::<i64>().unwrap().into_iter().map(|v| v as f64).collect(),
        other => panic!("unexpected output dtype {other}"),
    }
}

/// Runs one case; `Err` says why it failed.
fn run_case(dir: &Path) -> Result<(), String> {
    let bytes = std::fs::read(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let mut model = ModelProto::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    let data = dir.join("test_data_set_0");
    let shapes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("tensors.json")).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let load = |file: String| -> Result<Tensor, String> {
        let t = npy::from_npy(&std::fs::read(data.join(&file)).map_err(|e| e.to_string())?)?;
        let pb = file.replace(".npy", ".pb");
        let shape: Vec<usize> = shapes[&pb]["shape"]
            .as_array()
            .ok_or("tensors.json lacks the shape")?
            .iter()
            .map(|d| d.as_u64().unwrap_or(0) as usize)
            .collect();
        Tensor::from_bytes(t.dtype(), shape, t.as_bytes().to_vec()).map_err(|e| e.to_string())
    };
    let graph = model.graph.as_mut().ok_or("no graph")?;

    // Freeze shape-like int64 inputs.
    let frozen: Vec<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Reshape" || n.op_type == "Gather")
        .filter_map(|n| n.input.get(1).cloned())
        .collect();
    let mut inputs = Vec::new();
    let mut kept = Vec::new();
    for (k, input) in graph.input.clone().into_iter().enumerate() {
        let tensor = load(format!("input_{k}.npy"))?;
        if frozen.contains(&input.name) {
            graph.initializer.push(to_proto(&input.name, &tensor));
        } else {
            inputs.push(tensor);
            kept.push(input);
        }
    }
    graph.input = kept;

    let imported = nnbundle_onnx::import_model(&model).map_err(|e| e.to_string())?;
    let mut weights = imported.weights.clone();
    for (alias, target) in &imported.aliases {
        weights.insert(alias.clone(), imported.weights[target].clone());
    }
    let runtime = Model::new(imported.graph.clone(), weights).map_err(|e| e.to_string())?;
    let named: BTreeMap<String, Value> = runtime
        .graph()
        .inputs()
        .iter()
        .zip(inputs)
        .map(|(i, t)| Ok((i.name.clone(), Value::from_tensor(&t).map_err(|e| e.to_string())?)))
        .collect::<Result<_, String>>()?;
    let outputs = runtime.run(named).map_err(|e| e.to_string())?;
    for (k, name) in runtime.graph().outputs().iter().enumerate() {
        let want = load(format!("output_{k}.npy"))?;
        let got = outputs[name].to_tensor();
        if got.shape() != want.shape() {
            return Err(format!("output {k}: shape {:?}, expected {:?}", got.shape(), want.shape()));
        }
        let (g, w) = (as_f64(&got), as_f64(&want));
        if let Some((i, (a, b))) = g
            .iter()
            .zip(&w)
            .enumerate()
            .find(|(_, (a, b))| !((*a - *b).abs() <= ATOL + RTOL * b.abs() || (a.is_nan() && b.is_nan())))
        {
            return Err(format!("output {k}: element {i} is {a}, expected {b}"));
        }
    }
    Ok(())
}

#[test]
fn onnx_backend_node_cases() {
    let root = cases_dir();
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(!cases.is_empty(), "no case folders under {}", root.display());
    let mut per_op: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("summary.json")).unwrap()).unwrap();
        let op = summary["nodes"][0]["op"].as_str().unwrap_or("?").to_owned();
        if let Some((_, why)) = EXCLUDED.iter().find(|(c, _)| *c == name) {
            println!("excluded {name}: {why}");
            continue;
        }
        let entry = per_op.entry(op.clone()).or_default();
        entry.1 += 1;
        match run_case(case) {
            Ok(()) => entry.0 += 1,
            Err(e) => failures.push(format!("{name} ({op}): {e}")),
        }
    }
    for (op, (pass, total)) in &per_op {
        println!("{op}: {pass}/{total}");
    }
    let (pass, total) = per_op.values().fold((0, 0), |(p, t), (a, b)| (p + a, t + b));
    println!("conformance: {pass} passed, {} failed", total - pass);
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
}
