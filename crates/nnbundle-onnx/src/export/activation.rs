//! Activations and softmaxes as ONNX.

use nnbundle_graph::OpKind;

use super::ExportSupport::{Full, Partial};
use super::{Args, ExportRule, Exporter, a_float, a_int};

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
    ExportRule {
        op: OpKind::ELU,
        support: Full,
        export: |ex, n| {
            ex.emit("Elu", vec![n.x.clone()], &n.out, vec![a_float("alpha", n.attrs().float("alpha") as f32)]);
            Ok(())
        },
    },
    ExportRule { op: OpKind::SELU, support: Full, export: |ex, n| same(ex, n, "Selu") },
    ExportRule { op: OpKind::Floor, support: Full, export: |ex, n| same(ex, n, "Floor") },
    ExportRule {
        op: OpKind::Softplus,
        support: Partial("`threshold` other than 20: ONNX's Softplus has no threshold"),
        export: softplus,
    },
    ExportRule { op: OpKind::PReLU, support: Full, export: prelu },
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

/// Softplus(beta * x) / beta; ONNX's Softplus is the one with beta 1 and no
/// threshold, which differs from 20 by less than the f32 rounding.
fn softplus(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    if a.float("threshold") != 20.0 {
        return Err("a Softplus threshold other than 20 has no ONNX counterpart".into());
    }
    let beta = a.float("beta");
    if beta == 1.0 {
        ex.emit("Softplus", vec![n.x.clone()], &n.out, vec![]);
        return Ok(());
    }
    let b = ex.scalar(&n.out, "beta", n.dtype, beta);
    let (scaled, soft) = (ex.temp(&n.out, "scaled"), ex.temp(&n.out, "softplus"));
    ex.emit("Mul", vec![n.x.clone(), b.clone()], &scaled, vec![]);
    ex.emit("Softplus", vec![scaled], &soft, vec![]);
    ex.emit("Div", vec![soft, b], &n.out, vec![]);
    Ok(())
}

/// PRelu with the slopes shaped `[C, 1, ...]` to broadcast along dimension 1.
fn prelu(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let slope = n.get("weight")?;
    let count = n.attrs().int("num_parameters");
    let rank = ex.rank(&n.x).ok_or("PReLU needs its input's rank")?;
    let slope = if count > 1 && rank > 2 {
        let shaped = ex.temp(&n.out, "slope");
        let target = ex.shape_constant(&n.out, [vec![count], vec![1; rank - 2]].concat());
        ex.emit("Reshape", vec![slope, target], &shaped, vec![]);
        shaped
    } else {
        slope
    };
    ex.emit("PRelu", vec![n.x.clone(), slope], &n.out, vec![]);
    Ok(())
}
