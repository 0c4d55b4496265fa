//! Every op of the vocabulary against an independent numpy implementation.
//!
//! The runtime computes each case; `tests/python/ops_reference.py` recomputes
//! it in float64 with its own numpy code, from the same operands, and
//! compares. Tolerances (documented in spec/CONFORMANCE.md): f32 outputs
//! rtol 1e-4, atol 1e-5 (wider where a case says why); f64 outputs rtol
//! 1e-9, atol 1e-12.

#[path = "support/op_cases.rs"]
mod op_cases;
mod support;

use std::collections::BTreeSet;

use nnbundle::DType;
use nnbundle::container::npy;
use nnbundle::graph::{OpKind, Role};
use op_cases::cases;

/// Exported cases onnxruntime's CPU provider cannot run, with why.
const ORT_CANNOT_RUN: &[(&str, &str)] = &[
    ("conv2d_f64_no_bias", "no f64 Conv kernel"),
    ("gelu_exact_f64", "no f64 Erf kernel"),
    ("hardswish_f64", "no f64 HardSigmoid kernel (HardSwish is decomposed into it)"),
    ("local_response_norm_f64", "no f64 LRN kernel"),
    ("local_response_norm_even_window", "its LRN accepts odd sizes only (ONNX allows even ones)"),
    ("upsample_linear_pytorch_1d_f64", "no f64 Resize kernel"),
    ("conv_transpose1d_f64", "no f64 ConvTranspose kernel"),
    ("lstm_c_n_batch_first_no_bias_f64", "no f64 LSTM kernel"),
    ("gru_batch_first_f64", "no f64 GRU kernel"),
    ("group_norm_1d_no_affine_f64", "no f64 InstanceNormalization kernel (GroupNorm is exported through it)"),
    ("selu_f64", "no f64 Selu kernel"),
];

#[test]
fn every_op_matches_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = op_cases::rng();
    let mut manifest = Vec::new();
    let mut covered = BTreeSet::new();
    let mut ort_checks = Vec::new();
    let mut not_exported = Vec::new();
    for (index, case) in cases().into_iter().enumerate() {
        covered.insert(case.op);
        let op_cases::Built { model, inputs, operands } = op_cases::build(&case, &mut rng);
        let node = model.graph().node("node").unwrap().clone();
        let weights = model.state_dict();
        let output = model.run(inputs).unwrap_or_else(|e| panic!("{}: {e}", case.name)).remove("node").unwrap();
        // Operand files in slot order: values first as given, then the stored parameters.
        let mut files = serde_json::Map::new();
        let slots = node.op.def().present_slots(&node.attrs);
        let mut data_index = 0;
        for slot in &slots {
            let tensor = if slot.role == Role::Variadic {
                for (k, t) in operands.iter().enumerate() {
                    let file = format!("{index}_{}_{k}.npy", slot.name);
                    std::fs::write(dir.path().join(&file), npy::to_npy(t)).unwrap();
                    files.insert(format!("{}{k}", slot.name), file.into());
                }
                continue;
            } else if data_index < operands.len() {
                data_index += 1;
                operands[data_index - 1].clone()
            } else if let Some(w) = weights.get(&format!("node.{}", slot.name)) {
                w.clone()
            } else {
                continue;
            };
            let file = format!("{index}_{}.npy", slot.name.replace('.', "_"));
            std::fs::write(dir.path().join(&file), npy::to_npy(&tensor)).unwrap();
            files.insert(slot.name.to_string(), file.into());
        }
        let out_file = format!("{index}_out.npy");
        std::fs::write(dir.path().join(&out_file), npy::to_npy(&output.to_tensor())).unwrap();
        // The same node exported to ONNX, for onnxruntime to run on the same inputs.
        match nnbundle::onnx::export(model.graph(), &weights, &Default::default()) {
            Ok(onnx) => {
                let file = format!("{index}.onnx");
                std::fs::write(dir.path().join(&file), prost::Message::encode_to_vec(&onnx)).unwrap();
                let inputs: serde_json::Map<String, serde_json::Value> =
                    (0..case.data.len()).map(|i| (format!("in{i}"), format!("{index}_in{i}.npy").into())).collect();
                for (i, t) in operands.iter().enumerate() {
                    std::fs::write(dir.path().join(format!("{index}_in{i}.npy")), npy::to_npy(t)).unwrap();
                }
                let (rtol, atol) = if case.dtype == DType::F64 { (1e-9, 1e-12) } else { (1e-4, 1e-5) };
                let atol = case.atol.unwrap_or(atol);
                if !ORT_CANNOT_RUN.iter().any(|(name, _)| *name == case.name) {
                    ort_checks.push(serde_json::json!({"name": case.name, "model": file, "inputs": inputs, "expect": {"node": out_file.clone()}, "rtol": rtol, "atol": atol}));
                }
            }
            Err(e) => not_exported.push(format!("{}: {e}", case.name)),
        }
        manifest.push(serde_json::json!({
            "name": case.name,
            "op": node.op.name(),
            "attrs": serde_json::to_value(&node.attrs).unwrap(),
            "operands": files,
            "output": out_file,
            "atol": case.atol,
        }));
    }
    let missing: Vec<_> = OpKind::ALL.iter().filter(|op| !covered.contains(op)).collect();
    assert!(missing.is_empty(), "ops without a numpy case: {missing:?}");
    let cases_path = dir.path().join("cases.json");
    std::fs::write(&cases_path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();

    let Some(python) = support::python() else { return };
    let out = support::run_python(&python, &[support::script("ops_reference.py").as_os_str(), cases_path.as_os_str()]);
    println!("{out}");
    assert!(out.contains(&format!("{} passed, 0 failed", manifest.len())), "{out}");

    // Export: every case but the documented ones runs in onnxruntime with the same result.
    assert_eq!(
        not_exported,
        [
            "avgpool2d_dilation_ceil: node `node` (AvgPool2d): a dilated AvgPool needs ONNX opset 19; this exporter writes opset 17",
            "adaptiveavgpool2d: node `node` (AdaptiveAvgPool2d): AdaptiveAvgPool2d with uneven windows has no ONNX counterpart",
            "pad_circular_3d: node `node` (Pad): a circular Pad needs ONNX opset 19 (`wrap`); this exporter writes opset 17",
            "softplus_threshold: node `node` (Softplus): a Softplus threshold other than 20 has no ONNX counterpart",
        ]
    );
    let checks_path = dir.path().join("ort_checks.json");
    std::fs::write(&checks_path, serde_json::to_vec_pretty(&ort_checks).unwrap()).unwrap();
    let out = support::run_python(&python, &[support::script("ort_check.py").as_os_str(), checks_path.as_os_str()]);
    println!("onnxruntime: {out}");
    assert!(out.contains(&format!("{} passed, 0 failed", ort_checks.len())), "{out}");
}
