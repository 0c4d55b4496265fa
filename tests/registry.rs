//! Every registry of the workspace held to the vocabulary, with no Python:
//! each op of `OpKind::ALL` has a runtime kernel, an ONNX export rule (full,
//! or partial with a documented reason), an ONNX import translator unless
//! it is a documented gap, a numpy case, and survives save → load → run with
//! identical output bits.

#[path = "support/op_cases.rs"]
mod op_cases;

use std::collections::BTreeSet;

use nnbundle::graph::OpKind;
use nnbundle::onnx::{ExportSupport, IMPORT_GAPS, import_sources, supported_ops};
use nnbundle::{Bundle, Model};

#[test]
fn every_op_has_a_runtime_kernel() {
    let missing: Vec<OpKind> = OpKind::ALL.iter().copied().filter(|&op| !nnbundle::runtime::supports(op)).collect();
    assert!(missing.is_empty(), "ops without a runtime kernel: {missing:?}");
}

#[test]
fn every_op_has_an_export_rule() {
    let missing: Vec<OpKind> =
        OpKind::ALL.iter().copied().filter(|&op| nnbundle::onnx::export_support(op).is_none()).collect();
    assert!(missing.is_empty(), "ops without an ONNX export rule: {missing:?}");
    for &op in OpKind::ALL {
        if let Some(ExportSupport::Partial(reason)) = nnbundle::onnx::export_support(op) {
            assert!(reason.len() > 20, "{op}: a partial export must say what does not export, found {reason:?}");
        }
    }
}

#[test]
fn every_op_imports_from_onnx_or_is_a_documented_gap() {
    let gaps: BTreeSet<OpKind> = IMPORT_GAPS.iter().map(|(op, _)| *op).collect();
    for &op in OpKind::ALL {
        let sources = import_sources(op);
        match (sources.is_empty(), gaps.contains(&op)) {
            (true, false) => panic!("{op} has no ONNX import translator and is not listed in IMPORT_GAPS"),
            (false, true) => panic!("{op} is listed in IMPORT_GAPS but {sources:?} import to it"),
            _ => {}
        }
    }
    // The op list is derived from the translators: one translator per ONNX op type.
    let ops = supported_ops();
    let unique: BTreeSet<&str> = ops.iter().copied().collect();
    assert_eq!(unique.len(), ops.len(), "an ONNX op type has two translators: {ops:?}");
}

#[test]
fn every_op_states_its_numerics() {
    for &op in OpKind::ALL {
        let numerics = op.def().numerics;
        assert!(numerics.len() > 8 && numerics.ends_with('.'), "{op}: numerics {numerics:?} is not a definition");
    }
}

#[test]
fn every_op_has_a_numpy_case() {
    let covered: BTreeSet<OpKind> = op_cases::cases().iter().map(|c| c.op).collect();
    let missing: Vec<OpKind> = OpKind::ALL.iter().copied().filter(|op| !covered.contains(op)).collect();
    assert!(missing.is_empty(), "ops without a case in tests/support/op_cases.rs: {missing:?}");
}

/// OPS.md states each parameter's shape as a formula and when it exists;
/// the registry's own rule must give the same on every node of every case.
#[test]
fn every_parameter_shape_in_ops_md_matches_the_rule() {
    let mut checked = 0;
    for case in op_cases::cases() {
        let built = op_cases::build(&case, &mut op_cases::rng());
        for node in built.model.graph().nodes() {
            let def = node.op.def();
            for slot in def.slots.iter().filter(|s| s.role == nnbundle::graph::Role::Param) {
                let (rule, doc) = (def.param(slot.name, &node.attrs), def.param_doc(slot.name));
                let exists = doc.when.iter().all(|a| node.attrs.bool(a));
                assert_eq!(
                    rule.is_some(),
                    exists,
                    "{}: `{}` exists per the rule, not per OPS.md",
                    case.name,
                    slot.name
                );
                let Some(spec) = rule else { continue };
                match (spec.shape, doc.shape) {
                    (Some(shape), Some(formula)) => {
                        let stated = nnbundle::graph::eval_shape_formula(formula, &node.attrs).unwrap();
                        assert_eq!(stated, shape, "{}: `{}` formula {formula}", case.name, slot.name);
                        checked += 1;
                    }
                    (None, None) => {}
                    (rule, doc) => panic!("{}: `{}`: the rule gives {rule:?}, OPS.md {doc:?}", case.name, slot.name),
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} parameter shapes checked");
}

/// tract's `test-nnef-cycle`: every case, saved to bundle bytes and loaded
/// back, computes bit-identical outputs.
#[test]
fn every_op_survives_save_load_run() {
    let mut rng = op_cases::rng();
    let mut covered = BTreeSet::new();
    for case in op_cases::cases() {
        let built = op_cases::build(&case, &mut rng);
        let before = built.model.run(built.inputs.clone()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let bytes = built.model.to_writer().unwrap().to_bytes().unwrap_or_else(|e| panic!("{}: save: {e}", case.name));
        let bundle = Bundle::from_bytes(bytes).unwrap_or_else(|e| panic!("{}: open: {e}", case.name));
        let reloaded = Model::from_bundle(&bundle).unwrap_or_else(|e| panic!("{}: load: {e}", case.name));
        assert_eq!(reloaded.graph(), built.model.graph(), "{}: the graph changed", case.name);
        let after = reloaded.run(built.inputs).unwrap_or_else(|e| panic!("{}: run after load: {e}", case.name));
        for (name, value) in &before {
            let (a, b) = (value.to_tensor(), after[name].to_tensor());
            assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()), "{}: output `{name}`", case.name);
            assert!(a.as_bytes() == b.as_bytes(), "{}: output `{name}` differs in its bits after a reload", case.name);
        }
        covered.insert(case.op);
    }
    assert_eq!(covered.len(), OpKind::ALL.len(), "the cycle must cover every op");
}

/// The export rule and the import translators of each op agree: every op
/// case exported to ONNX and imported back computes the same output, of the
/// same dtype and shape (within 1e-5 relative: an import may map an op to
/// an equivalent that rounds differently, as `c - x` to `-x + c`).
#[test]
fn every_op_survives_onnx_export_then_import() {
    let mut rng = op_cases::rng();
    let mut refused = Vec::new();
    for case in op_cases::cases() {
        let built = op_cases::build(&case, &mut rng);
        let want = built.model.run(built.inputs.clone()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let onnx = match nnbundle::onnx::export(built.model.graph(), &built.model.state_dict(), &Default::default()) {
            Ok(onnx) => onnx,
            Err(e) => {
                refused.push(case.name);
                assert!(
                    !matches!(nnbundle::onnx::export_support(case.op), Some(ExportSupport::Full)),
                    "{}: {e}",
                    case.name
                );
                continue;
            }
        };
        let imported = nnbundle::onnx::import_model(&onnx).unwrap_or_else(|e| panic!("{}: import: {e}", case.name));
        let mut weights = imported.weights.clone();
        for (alias, target) in &imported.aliases {
            weights.insert(alias.clone(), imported.weights[target].clone());
        }
        let model = Model::new(imported.graph, weights).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // Graph inputs keep their names (`in0`, ...) through export and import.
        let got = model.run(built.inputs).unwrap_or_else(|e| panic!("{}: run after import: {e}", case.name));
        let (a, b) = (want["node"].to_tensor(), got["node"].to_tensor());
        assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()), "{}: output dtype or shape", case.name);
        let (x, y) = (as_f64(&a), as_f64(&b));
        let scale = x.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0f64, f64::max) / scale;
        assert!(worst <= 1e-5, "{}: output differs after ONNX export and import (relative {worst:.2e})", case.name);
    }
    assert_eq!(refused, ["avgpool2d_dilation_ceil", "adaptiveavgpool2d", "pad_circular_3d", "softplus_threshold"]);
}

fn as_f64(t: &nnbundle::Tensor) -> Vec<f64> {
    use nnbundle::DType;
    match t.dtype() {
        DType::F32 => t.to_vec::<f32>().unwrap().into_iter().map(f64::from).collect(),
        DType::F64 => t.to_vec::<f64>().unwrap(),
        DType::I32 => t.to_vec::<i32>().unwrap().into_iter().map(f64::from).collect(),
        DType::I64 => t.to_vec::<i64>().unwrap().into_iter().map(|v| v as f64).collect(),
        DType::Bool => t.to_vec::<bool>().unwrap().into_iter().map(|b| f64::from(u8::from(b))).collect(),
        other => panic!("unexpected dtype {other}"),
    }
}
