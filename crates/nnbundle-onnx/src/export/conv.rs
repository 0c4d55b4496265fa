//! Convolutions as ONNX.

use nnbundle_graph::{OpKind, conv_padding};

use super::{Args, ExportRule, ExportSupport::Full, Exporter, a_int, a_ints};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::Conv1d, support: Full, export: |ex, n| conv(ex, n, 1) },
    ExportRule { op: OpKind::Conv2d, support: Full, export: |ex, n| conv(ex, n, 2) },
    ExportRule { op: OpKind::ConvTranspose1d, support: Full, export: |ex, n| conv_transpose(ex, n, 1) },
    ExportRule { op: OpKind::ConvTranspose2d, support: Full, export: |ex, n| conv_transpose(ex, n, 2) },
];

fn conv_transpose(ex: &mut Exporter<'_>, n: &Args<'_>, spatial: usize) -> Result<(), String> {
    let a = n.attrs();
    let geometry = nnbundle_graph::conv_transpose_geometry(a.raw(), spatial);
    let mut pads: Vec<i64> = geometry.iter().map(|g| g[2]).collect();
    pads.extend(geometry.iter().map(|g| g[3]));
    let mut inputs = vec![n.x.clone(), n.get("weight")?];
    inputs.extend(n.opt("bias"));
    let attrs = vec![
        a_ints("kernel_shape", a.ints("kernel_size").to_vec()),
        a_ints("strides", a.ints("stride").to_vec()),
        a_ints("dilations", a.ints("dilation").to_vec()),
        a_ints("pads", pads),
        a_ints("output_padding", geometry.iter().map(|g| g[5]).collect()),
        a_int("group", a.int("groups")),
    ];
    ex.emit("ConvTranspose", inputs, &n.out, attrs);
    Ok(())
}

fn conv(ex: &mut Exporter<'_>, n: &Args<'_>, spatial: usize) -> Result<(), String> {
    let a = n.attrs();
    let pads = conv_padding(a.raw(), spatial);
    let mut onnx_pads: Vec<i64> = pads.iter().map(|p| p.0).collect();
    onnx_pads.extend(pads.iter().map(|p| p.1));
    let mut inputs = vec![n.x.clone(), n.get("weight")?];
    inputs.extend(n.opt("bias"));
    let attrs = vec![
        a_ints("kernel_shape", a.ints("kernel_size").to_vec()),
        a_ints("strides", a.ints("stride").to_vec()),
        a_ints("dilations", a.ints("dilation").to_vec()),
        a_ints("pads", onnx_pads),
        a_int("group", a.int("groups")),
    ];
    ex.emit("Conv", inputs, &n.out, attrs);
    Ok(())
}
