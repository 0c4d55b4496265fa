//! Pooling as ONNX.

use nnbundle_graph::{OpKind, pool_windows};

use super::ExportSupport::{Full, Partial};
use super::{Args, ExportRule, Exporter, a_int, a_ints, a_str};

const DILATED_AVG: &str = "a dilated AvgPool needs ONNX opset 19; this exporter writes opset 17";

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::MaxPool1d, support: Full, export: |ex, n| pool(ex, n, 1, true) },
    ExportRule { op: OpKind::MaxPool2d, support: Full, export: |ex, n| pool(ex, n, 2, true) },
    ExportRule { op: OpKind::AvgPool1d, support: Partial(DILATED_AVG), export: |ex, n| pool(ex, n, 1, false) },
    ExportRule { op: OpKind::AvgPool2d, support: Partial(DILATED_AVG), export: |ex, n| pool(ex, n, 2, false) },
    ExportRule {
        op: OpKind::Upsample,
        support: Partial(
            "the input's spatial dimensions must be static (Resize's scales are computed from them), and N and C too when a size is not a whole multiple",
        ),
        export: upsample,
    },
    ExportRule {
        op: OpKind::AdaptiveAvgPool2d,
        support: Partial("an output size other than 1x1 needs a static input whose size the output size divides"),
        export: adaptive_avg,
    },
];

fn pool(ex: &mut Exporter<'_>, n: &Args<'_>, spatial: usize, max: bool) -> Result<(), String> {
    let a = n.attrs();
    let windows = pool_windows(a.raw(), spatial);
    let mut pads: Vec<i64> = windows.iter().map(|w| w.pad_begin).collect();
    pads.extend(windows.iter().map(|w| w.pad_end));
    let mut attrs = vec![
        a_ints("kernel_shape", a.ints("kernel_size").to_vec()),
        a_ints("strides", a.ints("stride").to_vec()),
        a_ints("pads", pads),
        a_int("ceil_mode", i64::from(a.bool("ceil_mode"))),
    ];
    if max {
        attrs.push(a_ints("dilations", a.ints("dilation").to_vec()));
    } else {
        if a.ints("dilation").iter().any(|&d| d != 1) {
            return Err(DILATED_AVG.into());
        }
        attrs.push(a_int("count_include_pad", i64::from(a.bool("count_include_pad"))));
    }
    ex.emit(if max { "MaxPool" } else { "AveragePool" }, vec![n.x.clone()], &n.out, attrs);
    Ok(())
}

fn adaptive_avg(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let o = n.attrs().ints("output_size");
    if o == [1, 1] {
        ex.emit("GlobalAveragePool", vec![n.x.clone()], &n.out, vec![]);
        return Ok(());
    }
    let shape = ex
        .values
        .get(&n.x)
        .and_then(|v| v.shape.to_fixed())
        .ok_or("AdaptiveAvgPool2d to a size other than 1x1 needs a static input for ONNX")?;
    let (h, w) = (shape[2] as i64, shape[3] as i64);
    if h % o[0] != 0 || w % o[1] != 0 {
        return Err("AdaptiveAvgPool2d with uneven windows has no ONNX counterpart".into());
    }
    let k = vec![h / o[0], w / o[1]];
    ex.emit("AveragePool", vec![n.x.clone()], &n.out, vec![a_ints("kernel_shape", k.clone()), a_ints("strides", k)]);
    Ok(())
}

fn upsample(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let info = ex.values.get(&n.x).cloned().ok_or("Upsample needs its input's shape")?;
    let mut scales = vec![1.0f32, 1.0];
    for (d, &m) in info.shape.0[2..].iter().zip(a.ints("size")) {
        let len = d.fixed().ok_or("Upsample of a dynamic spatial dimension has no ONNX Resize form here")?;
        scales.push((m as f64 / len as f64) as f32);
    }
    // Scales whose product with the length is exactly the size say the same as the sizes (and
    // keep a dynamic batch); otherwise the sizes themselves, which need N and C static too.
    let exact = info.shape.0[2..]
        .iter()
        .zip(a.ints("size"))
        .zip(&scales[2..])
        .all(|((d, &m), &s)| d.fixed().is_some_and(|len| f64::from(s) * len as f64 == m as f64));
    let resize_inputs = if exact {
        let name = ex.temp(&n.out, "scales");
        let t = nnbundle_format::Tensor::from_vec(vec![scales.len()], scales).map_err(|e| e.to_string())?;
        vec![n.x.clone(), String::new(), ex.constant(&name, &t)]
    } else {
        let lead =
            info.shape.0[..2].iter().map(|d| d.fixed().map(|v| v as i64)).collect::<Option<Vec<i64>>>().ok_or(
                "Upsample to sizes that are not a whole multiple needs a static batch and channel count for ONNX",
            )?;
        let sizes = ex.shape_constant(&n.out, [lead, a.ints("size").to_vec()].concat());
        vec![n.x.clone(), String::new(), String::new(), sizes]
    };
    let attrs = vec![
        a_str("mode", a.str("mode")),
        a_str("coordinate_transformation_mode", a.str("coordinate_mode")),
        a_str("nearest_mode", a.str("nearest_mode")),
    ];
    ex.emit("Resize", resize_inputs, &n.out, attrs);
    Ok(())
}
