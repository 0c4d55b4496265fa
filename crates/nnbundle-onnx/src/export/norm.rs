//! Normalizations as ONNX.

use nnbundle_graph::OpKind;

use super::{Args, ExportRule, ExportSupport::Full, Exporter, a_float, a_int};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::BatchNorm1d, support: Full, export: batch_norm },
    ExportRule { op: OpKind::BatchNorm2d, support: Full, export: batch_norm },
    ExportRule { op: OpKind::LayerNorm, support: Full, export: layer_norm },
    ExportRule { op: OpKind::InstanceNorm1d, support: Full, export: instance_norm },
    ExportRule { op: OpKind::InstanceNorm2d, support: Full, export: instance_norm },
    ExportRule { op: OpKind::GroupNorm, support: Full, export: group_norm },
    ExportRule {
        op: OpKind::LocalResponseNorm,
        support: Full,
        export: |ex, n| {
            let a = n.attrs();
            let attrs = vec![
                a_int("size", a.int("size")),
                a_float("alpha", a.float("alpha") as f32),
                a_float("beta", a.float("beta") as f32),
                a_float("bias", a.float("k") as f32),
            ];
            ex.emit("LRN", vec![n.x.clone()], &n.out, attrs);
            Ok(())
        },
    },
];

/// A channel norm's scale and bias: its weight and bias, or ones and zeros without `affine`.
fn scale_and_bias(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(String, String), String> {
    let a = n.attrs();
    if a.bool("affine") {
        return Ok((n.get("weight")?, n.get("bias")?));
    }
    let c = a.int("num_features") as usize;
    Ok((ex.ones(&n.out, n.dtype, &[c], 1.0), ex.ones(&n.out, n.dtype, &[c], 0.0)))
}

fn batch_norm(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let (scale, bias) = scale_and_bias(ex, n)?;
    let inputs = vec![n.x.clone(), scale, bias, n.get("running_mean")?, n.get("running_var")?];
    ex.emit("BatchNormalization", inputs, &n.out, vec![a_float("epsilon", a.float("eps") as f32)]);
    Ok(())
}

fn instance_norm(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let (scale, bias) = scale_and_bias(ex, n)?;
    let attrs = vec![a_float("epsilon", a.float("eps") as f32)];
    ex.emit("InstanceNormalization", vec![n.x.clone(), scale, bias], &n.out, attrs);
    Ok(())
}

/// GroupNorm as torch.onnx writes it below opset 18: an InstanceNormalization
/// of `[N, G, -1]`, reshaped back, then the per-channel weight and bias.
fn group_norm(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let g = a.int("num_groups");
    let rank = ex.rank(&n.x).ok_or("GroupNorm needs its input's rank")?;
    let grouped = ex.temp(&n.out, "grouped");
    let target = ex.shape_constant(&n.out, vec![0, g, -1]);
    ex.emit("Reshape", vec![n.x.clone(), target], &grouped, vec![]);
    let (ones, zeros) = (ex.ones(&n.out, n.dtype, &[g as usize], 1.0), ex.ones(&n.out, n.dtype, &[g as usize], 0.0));
    let normalized = ex.temp(&n.out, "normalized");
    let attrs = vec![a_float("epsilon", a.float("eps") as f32)];
    ex.emit("InstanceNormalization", vec![grouped, ones, zeros], &normalized, attrs);
    let shape = ex.temp(&n.out, "shape");
    ex.emit("Shape", vec![n.x.clone()], &shape, vec![]);
    if !a.bool("affine") {
        ex.emit("Reshape", vec![normalized, shape], &n.out, vec![]);
        return Ok(());
    }
    let back = ex.temp(&n.out, "ungrouped");
    ex.emit("Reshape", vec![normalized, shape], &back, vec![]);
    // [C] as [C, 1, ...] against [N, C, ...].
    let axes = ex.shape_constant(&n.out, (1..rank.saturating_sub(1) as i64).collect());
    let per_channel = |ex: &mut Exporter<'_>, slot: &str| -> Result<String, String> {
        let v = n.get(slot)?;
        if rank <= 2 {
            return Ok(v);
        }
        let out = ex.temp(&n.out, slot);
        ex.emit("Unsqueeze", vec![v, axes.clone()], &out, vec![]);
        Ok(out)
    };
    let (weight, bias) = (per_channel(ex, "weight")?, per_channel(ex, "bias")?);
    let scaled = ex.temp(&n.out, "scaled");
    ex.emit("Mul", vec![back, weight], &scaled, vec![]);
    ex.emit("Add", vec![scaled, bias], &n.out, vec![]);
    Ok(())
}

fn layer_norm(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let ns: Vec<usize> = a.ints("normalized_shape").iter().map(|&d| d as usize).collect();
    let scale = match n.opt("weight") {
        Some(w) => w,
        None => ex.ones(&n.out, n.dtype, &ns, 1.0),
    };
    let mut inputs = vec![n.x.clone(), scale];
    inputs.extend(n.opt("bias"));
    let attrs = vec![a_int("axis", -(ns.len() as i64)), a_float("epsilon", a.float("eps") as f32)];
    ex.emit("LayerNormalization", inputs, &n.out, attrs);
    Ok(())
}
