//! ONNX pooling and resampling.

use nnbundle_format::Tensor;
use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr_i, attr_ints};
use crate::proto::NodeProto;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
    Translator { onnx: "Resize", produces: &[OpKind::Upsample], translate: resize },
    Translator { onnx: "Upsample", produces: &[OpKind::Upsample], translate: resize },
    Translator { onnx: "MaxPool", produces: &[OpKind::MaxPool1d, OpKind::MaxPool2d], translate: pool },
    Translator { onnx: "AveragePool", produces: &[OpKind::AvgPool1d, OpKind::AvgPool2d], translate: pool },
    Translator {
        onnx: "GlobalAveragePool",
        produces: &[OpKind::AdaptiveAvgPool2d],
        translate: |im, n| {
            if im.rank(&n.arg(0)?) != Some(4) {
                return Err("GlobalAveragePool is supported on 4-D inputs [N, C, H, W]".into());
            }
            let attrs = vec![("output_size", AttrValue::Ints(vec![1, 1]))];
            im.add(n.hint, OpKind::AdaptiveAvgPool2d, attrs, vec![n.arg(0)?]).map(Some)
        },
    },
];

fn pool(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    if n.extra_outputs_used {
        return Err("MaxPool's indices output is used, which opset 1 does not produce".into());
    }
    im.pool(n.proto, n.hint, n.arg(0)?).map(Some)
}

impl Importer {
    pub(crate) fn pool(&mut self, node: &NodeProto, hint: &str, x: Operand) -> Result<String, String> {
        let kernel = attr_ints(node, "kernel_shape").ok_or("pooling needs kernel_shape")?;
        let spatial = kernel.len();
        if spatial != 1 && spatial != 2 {
            return Err("only 1-D and 2-D pooling is in opset 1".into());
        }
        if attr_i(node, "storage_order", 0) != 0 {
            return Err("storage_order 1 is not supported".into());
        }
        let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
        let dilations = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
        let pads = self.pads(node, &x, &kernel, &strides, &dilations)?;
        let max = node.op_type == "MaxPool";
        let kind = match (max, spatial) {
            (true, 1) => OpKind::MaxPool1d,
            (true, _) => OpKind::MaxPool2d,
            (false, 1) => OpKind::AvgPool1d,
            (false, _) => OpKind::AvgPool2d,
        };
        let mut attrs = vec![
            ("kernel_size", AttrValue::Ints(kernel)),
            ("stride", AttrValue::Ints(strides)),
            ("padding", AttrValue::Ints(pads)),
            ("dilation", AttrValue::Ints(dilations)),
            ("ceil_mode", AttrValue::Bool(attr_i(node, "ceil_mode", 0) != 0)),
        ];
        if !max {
            // ONNX counts only real elements unless told otherwise; PyTorch's default is the opposite.
            attrs.push(("count_include_pad", AttrValue::Bool(attr_i(node, "count_include_pad", 0) != 0)));
        }
        self.add(hint, kind, attrs, vec![x])
    }
}

/// ONNX Resize (opset 10+) and Upsample (before): nearest or linear over the
/// spatial dimensions, to sizes given or computed from constant scales and
/// the input's static shape.
fn resize(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let op = n.proto.op_type.as_str();
    let x = n.arg(0)?;
    let shape = im.static_shape(&x);
    let rank = im.rank(&x).ok_or_else(|| format!("{op} needs its input's rank"))?;
    if rank < 3 {
        return Err(format!("{op} of a rank-{rank} input: the vocabulary resizes [N, C, ...] only"));
    }
    let constant = |i: usize| n.constant(im, i, "scales or sizes");
    // Inputs: Upsample-7 has an attribute, Upsample-9 and Resize-10 (X, scales), Resize-11+ (X, roi, scales, sizes).
    let (scales, sizes) = match (op, im.opset) {
        ("Upsample", _) if n.proto.input.len() < 2 => (
            Some(
                super::attr(n.proto, "scales")
                    .map(|a| a.floats.iter().map(|&f| f64::from(f)).collect())
                    .ok_or("Upsample needs scales")?,
            ),
            None,
        ),
        ("Upsample", _) | (_, 10) => (constant(1)?.map(|t| floats(&t)).transpose()?, None),
        _ => (
            constant(2)?.map(|t| floats(&t)).transpose()?.filter(|s| !s.is_empty()),
            constant(3)?.map(|t| t.to_vec::<i64>().map_err(|e| e.to_string())).transpose()?,
        ),
    };
    // Resize-18's `axes`: the scales or sizes of those axes only; the others keep their size.
    let (scales, sizes) = match super::attr_ints(n.proto, "axes") {
        None => (scales, sizes),
        Some(axes) => {
            let axes: Vec<usize> = axes
                .iter()
                .map(|&a| nnbundle_graph::normalize_axis(a, rank).ok_or(format!("{op} axis {a} is out of range")))
                .collect::<Result<_, _>>()?;
            let spread = |given: &[f64], rest: &dyn Fn(usize) -> Option<f64>| -> Result<Vec<f64>, String> {
                (0..rank)
                    .map(|d| match axes.iter().position(|&a| a == d) {
                        Some(k) => given.get(k).copied().ok_or(format!("{op} has fewer values than axes")),
                        None => rest(d).ok_or(format!("{op} over axes {axes:?} needs the other sizes static")),
                    })
                    .collect()
            };
            let same_size = |d: usize| shape.as_ref().map(|s| s[d] as f64);
            (
                scales.map(|s| spread(&s, &|_| Some(1.0))).transpose()?,
                sizes
                    .map(|s| {
                        let s: Vec<f64> = s.iter().map(|&v| v as f64).collect();
                        spread(&s, &same_size).map(|v| v.into_iter().map(|f| f as i64).collect::<Vec<i64>>())
                    })
                    .transpose()?,
            )
        }
    };
    if super::attr_s(n.proto, "keep_aspect_ratio_policy", "stretch") != "stretch" {
        return Err(format!("{op} keep_aspect_ratio_policy other than `stretch` is not in the vocabulary"));
    }
    let size: Vec<i64> = match (sizes, scales) {
        (Some(sizes), _) => {
            if sizes.len() != rank || shape.as_ref().is_some_and(|s| s[..2] != sizes[..2]) {
                return Err(format!("{op} sizes {sizes:?} must keep N and C"));
            }
            sizes[2..].to_vec()
        }
        (None, Some(scales)) => {
            if scales.len() != rank || scales[0] != 1.0 || scales[1] != 1.0 {
                return Err(format!("{op} scales {scales:?}: the vocabulary resizes the spatial dimensions only"));
            }
            let shape = shape.ok_or_else(|| {
                format!(
                    "{op} by scales needs the input's spatial size: fix the inputs' dimensions with `--input-shape`"
                )
            })?;
            let mut out = Vec::new();
            for (&len, &s) in shape[2..].iter().zip(&scales[2..]) {
                let m = len as f64 * s;
                if m.fract() != 0.0 {
                    return Err(format!(
                        "{op} scale {s} of a length {len} gives a fractional size, which Upsample does not express"
                    ));
                }
                out.push(m as i64);
            }
            out
        }
        (None, None) => return Err(format!("{op} needs scales or sizes")),
    };
    let mode = match super::attr_s(n.proto, "mode", "nearest").as_str() {
        "nearest" => "nearest",
        "linear" | "bilinear" => "linear",
        other => return Err(format!("{op} mode `{other}` is not in the vocabulary (nearest, linear)")),
    };
    // Resize from opset 11 defaults to half_pixel; before, coordinates were asymmetric.
    let default_coordinates = if op == "Resize" && im.opset >= 11 { "half_pixel" } else { "asymmetric" };
    let coordinates = super::attr_s(n.proto, "coordinate_transformation_mode", default_coordinates);
    if !["asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners"].contains(&coordinates.as_str()) {
        return Err(format!("{op} coordinate_transformation_mode `{coordinates}` is not in the vocabulary"));
    }
    let default_nearest = if op == "Resize" && im.opset >= 11 { "round_prefer_floor" } else { "floor" };
    let nearest = super::attr_s(n.proto, "nearest_mode", default_nearest);
    if attr_i(n.proto, "antialias", 0) != 0 {
        return Err(format!("{op} with antialias is not in the vocabulary"));
    }
    let attrs = vec![
        ("size", AttrValue::Ints(size)),
        ("mode", AttrValue::Str(mode.into())),
        ("coordinate_mode", AttrValue::Str(coordinates)),
        ("nearest_mode", AttrValue::Str(nearest)),
    ];
    im.add(n.hint, OpKind::Upsample, attrs, vec![x]).map(Some)
}

/// A float tensor's values as f64.
fn floats(t: &Tensor) -> Result<Vec<f64>, String> {
    t.to_vec::<f32>()
        .map(|v| v.into_iter().map(f64::from).collect())
        .or_else(|_| t.to_vec::<f64>())
        .map_err(|e| e.to_string())
}
