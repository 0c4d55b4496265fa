//! Activations and softmaxes as ONNX.

use nnbundle_graph::OpKind;

use super::{Args, ExportRule, ExportSupport::Full, Exporter, a_float, a_int};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::ReLU, support: Full, export: |ex, n| same(ex, n, "Relu") },
    ExportRule { op: OpKind::Sigmoid, support: Full, export: |ex, n| same(ex, n, "Sigmoid") },
    ExportRule { op: OpKind::Tanh, support: Full, export: |ex, n| same(ex, n, "Tanh") },
    ExportRule {
        op: OpKind::LeakyReLU,
        support: Full,
        export: |ex, n| {
            let alpha = a_float("alpha", n.attrs().float("negative_slope") as f32);
            ex.emit("LeakyRelu", vec![n.x.clone()], &n.out, vec![alpha]);
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::SiLU,
        support: Full,
        export: |ex, n| {
            ex.silu(&n.out, n.x.clone());
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::GELU,
        support: Full,
        export: |ex, n| {
            ex.gelu(&n.out, n.x.clone(), n.dtype, n.attrs().str("approximate") == "tanh");
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::Hardtanh,
        support: Full,
        export: |ex, n| {
            let a = n.attrs();
            let lo = ex.scalar(&n.out, "min", n.dtype, a.float("min_val"));
            let hi = ex.scalar(&n.out, "max", n.dtype, a.float("max_val"));
            ex.emit("Clip", vec![n.x.clone(), lo, hi], &n.out, vec![]);
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::Hardsigmoid,
        support: Full,
        export: |ex, n| {
            let a = n.attrs();
            let attrs = vec![a_float("alpha", a.float("alpha") as f32), a_float("beta", a.float("beta") as f32)];
            ex.emit("HardSigmoid", vec![n.x.clone()], &n.out, attrs);
            Ok(())
        },
    },
    ExportRule { op: OpKind::Hardswish, support: Full, export: |ex, n| same(ex, n, "HardSwish") },
    ExportRule { op: OpKind::Exp, support: Full, export: |ex, n| same(ex, n, "Exp") },
    ExportRule { op: OpKind::Log, support: Full, export: |ex, n| same(ex, n, "Log") },
    ExportRule { op: OpKind::Sqrt, support: Full, export: |ex, n| same(ex, n, "Sqrt") },
    ExportRule { op: OpKind::Erf, support: Full, export: |ex, n| same(ex, n, "Erf") },
    ExportRule { op: OpKind::Neg, support: Full, export: |ex, n| same(ex, n, "Neg") },
    ExportRule { op: OpKind::Abs, support: Full, export: |ex, n| same(ex, n, "Abs") },
    ExportRule { op: OpKind::Reciprocal, support: Full, export: |ex, n| same(ex, n, "Reciprocal") },
    ExportRule { op: OpKind::Softmax, support: Full, export: |ex, n| softmax(ex, n, "Softmax") },
    ExportRule { op: OpKind::LogSoftmax, support: Full, export: |ex, n| softmax(ex, n, "LogSoftmax") },
];

/// An op ONNX has under `onnx`, with no attributes.
fn same(ex: &mut Exporter<'_>, n: &Args<'_>, onnx: &str) -> Result<(), String> {
    ex.emit(onnx, vec![n.x.clone()], &n.out, vec![]);
    Ok(())
}

fn softmax(ex: &mut Exporter<'_>, n: &Args<'_>, onnx: &str) -> Result<(), String> {
    ex.emit(onnx, vec![n.x.clone()], &n.out, vec![a_int("axis", n.attrs().int("dim"))]);
    Ok(())
}
