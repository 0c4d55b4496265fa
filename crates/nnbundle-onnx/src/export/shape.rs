//! Pass-throughs and shape ops as ONNX.

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{OpKind, normalize_axis};

use super::ExportSupport::{Full, Partial};
use super::{Args, ExportRule, Exporter, a_int, a_ints, a_str};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::Dropout, support: Full, export: identity },
    ExportRule { op: OpKind::Identity, support: Full, export: identity },
    ExportRule {
        op: OpKind::Flatten,
        support: Partial("dimensions after `end_dim` must be static: ONNX's Reshape cannot keep a symbolic one there"),
        export: flatten,
    },
    ExportRule { op: OpKind::Reshape, support: Full, export: reshape },
    ExportRule { op: OpKind::Permute, support: Full, export: permute },
    ExportRule {
        op: OpKind::Slice,
        support: Full,
        export: |ex, n| {
            let a = n.attrs();
            let (dims, steps) = nnbundle_graph::slice_dims_steps(a.raw());
            let mut inputs = vec![n.x.clone()];
            for v in [a.ints("starts").to_vec(), a.ints("ends").to_vec(), dims, steps] {
                inputs.push(ex.shape_constant(&n.out, v));
            }
            ex.emit("Slice", inputs, &n.out, vec![]);
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::Expand,
        support: Full,
        export: |ex, n| {
            // ONNX keeps an input dimension where the target says 1.
            let sizes: Vec<i64> = n.attrs().ints("sizes").iter().map(|&s| if s == -1 { 1 } else { s }).collect();
            let shape = ex.shape_constant(&n.out, sizes);
            ex.emit("Expand", vec![n.x.clone(), shape], &n.out, vec![]);
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::Tile,
        support: Full,
        export: |ex, n| {
            let repeats = ex.shape_constant(&n.out, n.attrs().ints("repeats").to_vec());
            ex.emit("Tile", vec![n.x.clone(), repeats], &n.out, vec![]);
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::Pad,
        support: Partial("`circular` is ONNX's `wrap`, added in opset 19; this exporter writes opset 17"),
        export: pad,
    },
    ExportRule {
        op: OpKind::Concat,
        support: Full,
        export: |ex, n| {
            ex.emit("Concat", n.node.inputs.clone(), &n.out, vec![a_int("axis", n.attrs().int("dim"))]);
            Ok(())
        },
    },
];

fn pad(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let pads = ex.shape_constant(&n.out, a.ints("padding").to_vec());
    let v = a.float("value");
    let value = match ex.values.get(&n.x).map(|i| i.dtype) {
        Some(DType::F64) => Tensor::scalar(v),
        Some(DType::I64) => Tensor::scalar(v as i64),
        Some(DType::I32) => Tensor::scalar(v as i32),
        Some(DType::Bool) => Tensor::scalar(v != 0.0),
        _ => Tensor::scalar(v as f32),
    };
    let name = ex.temp(&n.out, "value");
    let value = ex.constant(&name, &value);
    let mode = match a.str("mode") {
        "replicate" => "edge",
        "circular" => return Err("a circular Pad needs ONNX opset 19 (`wrap`); this exporter writes opset 17".into()),
        m => m,
    };
    ex.emit("Pad", vec![n.x.clone(), pads, value], &n.out, vec![a_str("mode", mode)]);
    Ok(())
}

fn identity(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    ex.emit("Identity", vec![n.x.clone()], &n.out, vec![]);
    Ok(())
}

fn flatten(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let info = ex.values.get(&n.x).cloned().ok_or("Flatten needs its input's shape")?;
    let r = info.shape.rank().max(1);
    let (s, e) = (normalize_axis(a.int("start_dim"), r), normalize_axis(a.int("end_dim"), r));
    let (Some(s), Some(e)) = (s, e) else { return Err("Flatten dims out of range".into()) };
    let mut shape: Vec<i64> = vec![0; s];
    shape.push(-1);
    for d in &info.shape.0[e + 1..] {
        shape.push(d.fixed().ok_or("Flatten before a symbolic trailing dimension has no ONNX Reshape form")? as i64);
    }
    let sh = ex.shape_constant(&n.out, shape);
    ex.emit("Reshape", vec![n.x.clone(), sh], &n.out, vec![]);
    Ok(())
}

fn reshape(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let sh = ex.shape_constant(&n.out, a.ints("shape").to_vec());
    // ONNX reads 0 as "copy" unless allowzero; opset 1 does so only with zero_copies_input.
    let allow_zero = a.ints("shape").contains(&0) && !a.bool("zero_copies_input");
    ex.emit("Reshape", vec![n.x.clone(), sh], &n.out, if allow_zero { vec![a_int("allowzero", 1)] } else { vec![] });
    Ok(())
}

fn permute(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    // ONNX wants non-negative axes.
    let r = ex.rank(&n.x).ok_or("Permute needs its input's rank")?;
    let perm = n
        .attrs()
        .ints("dims")
        .iter()
        .map(|&d| normalize_axis(d, r).map(|v| v as i64))
        .collect::<Option<Vec<_>>>()
        .ok_or("Permute dims out of range")?;
    ex.emit("Transpose", vec![n.x.clone()], &n.out, vec![a_ints("perm", perm)]);
    Ok(())
}
