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
