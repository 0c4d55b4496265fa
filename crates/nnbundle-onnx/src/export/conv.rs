//! Convolutions and transposed convolutions as ONNX.

use nnbundle_graph::{OpKind, conv_padding, conv_transpose_geometry};

use super::{Args, ExportRule, ExportSupport::Full, Exporter, a_int, a_ints};
use crate::proto::AttributeProto;

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::Conv1d, support: Full, export: |ex, n| conv(ex, n, 1, false) },
    ExportRule { op: OpKind::Conv2d, support: Full, export: |ex, n| conv(ex, n, 2, false) },
    ExportRule { op: OpKind::ConvTranspose1d, support: Full, export: |ex, n| conv(ex, n, 1, true) },
    ExportRule { op: OpKind::ConvTranspose2d, support: Full, export: |ex, n| conv(ex, n, 2, true) },
];

/// `Conv` or `ConvTranspose`: the same attributes, ONNX's pads (begins, then
/// ends), and a transposed convolution's output_padding.
fn conv(ex: &mut Exporter<'_>, n: &Args<'_>, spatial: usize, transposed: bool) -> Result<(), String> {
    let a = n.attrs();
    let (pads, extra): (Vec<(i64, i64)>, Option<AttributeProto>) = if transposed {
        let geometry = conv_transpose_geometry(a.raw(), spatial);
        let output_padding = a_ints("output_padding", geometry.iter().map(|g| g[5]).collect());
        (geometry.iter().map(|g| (g[2], g[3])).collect(), Some(output_padding))
    } else {
        (conv_padding(a.raw(), spatial), None)
    };
    let mut onnx_pads: Vec<i64> = pads.iter().map(|p| p.0).collect();
    onnx_pads.extend(pads.iter().map(|p| p.1));
    let mut inputs = vec![n.x.clone(), n.get("weight")?];
    inputs.extend(n.opt("bias"));
    let mut attrs = vec![
        a_ints("kernel_shape", a.ints("kernel_size").to_vec()),
        a_ints("strides", a.ints("stride").to_vec()),
        a_ints("dilations", a.ints("dilation").to_vec()),
        a_ints("pads", onnx_pads),
        a_int("group", a.int("groups")),
    ];
    attrs.extend(extra);
    ex.emit(if transposed { "ConvTranspose" } else { "Conv" }, inputs, &n.out, attrs);
    Ok(())
}
