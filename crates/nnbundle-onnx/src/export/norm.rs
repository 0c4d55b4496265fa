//! Normalizations as ONNX.

use nnbundle_graph::OpKind;

use super::{Args, ExportRule, ExportSupport::Full, Exporter, a_float, a_int};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::BatchNorm1d, support: Full, export: batch_norm },
    ExportRule { op: OpKind::BatchNorm2d, support: Full, export: batch_norm },
    ExportRule { op: OpKind::LayerNorm, support: Full, export: layer_norm },
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

fn batch_norm(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let c = a.int("num_features") as usize;
    let (scale, bias) = if a.bool("affine") {
        (n.get("weight")?, n.get("bias")?)
    } else {
        (ex.ones(&n.out, n.dtype, &[c], 1.0), ex.ones(&n.out, n.dtype, &[c], 0.0))
    };
    let inputs = vec![n.x.clone(), scale, bias, n.get("running_mean")?, n.get("running_var")?];
    ex.emit("BatchNormalization", inputs, &n.out, vec![a_float("epsilon", a.float("eps") as f32)]);
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
