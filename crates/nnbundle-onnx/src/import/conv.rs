//! ONNX Conv.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, Operand, attr_i, attr_ints, attr_s};
use crate::proto::NodeProto;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
    Translator {
        onnx: "ConvTranspose",
        produces: &[OpKind::ConvTranspose1d, OpKind::ConvTranspose2d],
        translate: |im, n| im.conv_transpose(n.proto, n.hint, &n.operands).map(Some),
    },
    Translator {
        onnx: "Conv",
        produces: &[OpKind::Conv1d, OpKind::Conv2d],
        translate: |im, n| im.conv(n.proto, n.hint, &n.operands).map(Some),
    },
];

impl Importer {
    pub(crate) fn conv(&mut self, node: &NodeProto, hint: &str, ops: &[Operand]) -> Result<String, String> {
        let x = ops.first().cloned().ok_or("Conv needs X")?;
        let w = ops.get(1).cloned().ok_or("Conv needs W")?;
        let wshape = self.static_shape(&w).ok_or("Conv needs the weight's shape")?;
        let spatial = wshape
            .len()
            .checked_sub(2)
            .filter(|s| *s == 1 || *s == 2)
            .ok_or("only 1-D and 2-D convolutions are in opset 1")?;
        let kernel = attr_ints(node, "kernel_shape").unwrap_or_else(|| wshape[2..].to_vec());
        let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
        let dilations = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
        let group = attr_i(node, "group", 1);
        let pads = self.pads(node, &x, &kernel, &strides, &dilations)?;
        let kind = if spatial == 1 { OpKind::Conv1d } else { OpKind::Conv2d };
        let attrs = vec![
            (
                "in_channels",
                AttrValue::Int(
                    wshape[1].checked_mul(group).filter(|_| group >= 1).ok_or("group must be at least 1 and small")?,
                ),
            ),
            ("out_channels", AttrValue::Int(wshape[0])),
            ("kernel_size", AttrValue::Ints(kernel)),
            ("stride", AttrValue::Ints(strides)),
            ("padding", AttrValue::Ints(pads)),
            ("dilation", AttrValue::Ints(dilations)),
            ("groups", AttrValue::Int(group)),
            ("bias", AttrValue::Bool(ops.len() > 2)),
        ];
        self.add(hint, kind, attrs, ops.to_vec())
    }

    pub(crate) fn conv_transpose(&mut self, node: &NodeProto, hint: &str, ops: &[Operand]) -> Result<String, String> {
        let w = ops.get(1).cloned().ok_or("ConvTranspose needs W")?;
        let wshape = self.static_shape(&w).ok_or("ConvTranspose needs the weight's shape")?;
        let spatial = wshape
            .len()
            .checked_sub(2)
            .filter(|s| *s == 1 || *s == 2)
            .ok_or("only 1-D and 2-D transposed convolutions are in the vocabulary")?;
        let group = attr_i(node, "group", 1);
        let kernel = attr_ints(node, "kernel_shape").unwrap_or_else(|| wshape[2..].to_vec());
        let ones = vec![1; spatial];
        let strides = attr_ints(node, "strides").unwrap_or_else(|| ones.clone());
        let dilations = attr_ints(node, "dilations").unwrap_or(ones);
        let mut output_padding = attr_ints(node, "output_padding").unwrap_or_else(|| vec![0; spatial]);
        let mut pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * spatial]);
        let auto_pad = attr_s(node, "auto_pad", "NOTSET");
        let target: Option<Vec<i64>> = match (attr_ints(node, "output_shape"), auto_pad.as_str()) {
            (Some(shape), _) => Some(shape[shape.len().saturating_sub(spatial)..].to_vec()),
            (None, "SAME_UPPER" | "SAME_LOWER") => Some(Vec::new()),
            (None, "NOTSET" | "VALID") => None,
            (None, other) => return Err(format!("auto_pad `{other}` is not an ONNX mode")),
        };
        if let Some(target) = target {
            // ONNX: the padding that gives the output shape asked for (SAME: input size * stride).
            let x = self
                .static_shape(&ops[0])
                .ok_or("ConvTranspose with output_shape or auto_pad SAME_* needs the input's static spatial size")?;
            let input = &x[x.len().saturating_sub(spatial)..];
            for i in 0..spatial {
                let (s, d, k) = (strides.get(i), dilations.get(i), kernel.get(i));
                let (Some(&s), Some(&d), Some(&k), Some(&n)) = (s, d, k, input.get(i)) else {
                    return Err("ConvTranspose attributes do not match its spatial dimensions".into());
                };
                let want = if target.is_empty() { n * s } else { target[i] };
                let total = s * (n - 1) + output_padding[i] + (k - 1) * d + 1 - want;
                if total < 0 {
                    // A longer output than the padding-free one: extra output padding at the end.
                    output_padding[i] -= total;
                    (pads[i], pads[spatial + i]) = (0, 0);
                } else if auto_pad == "SAME_UPPER" {
                    (pads[i], pads[spatial + i]) = (total / 2, total - total / 2);
                } else {
                    (pads[i], pads[spatial + i]) = (total - total / 2, total / 2);
                }
            }
        }
        let attrs = vec![
            ("in_channels", AttrValue::Int(wshape[0])),
            (
                "out_channels",
                AttrValue::Int(
                    wshape[1].checked_mul(group).filter(|_| group >= 1).ok_or("group must be at least 1 and small")?,
                ),
            ),
            ("kernel_size", AttrValue::Ints(kernel)),
            ("stride", AttrValue::Ints(strides)),
            ("padding", AttrValue::Ints(pads)),
            ("output_padding", AttrValue::Ints(output_padding)),
            ("dilation", AttrValue::Ints(dilations)),
            ("groups", AttrValue::Int(group)),
            ("bias", AttrValue::Bool(ops.len() > 2)),
        ];
        let kind = if spatial == 1 { OpKind::ConvTranspose1d } else { OpKind::ConvTranspose2d };
        self.add(hint, kind, attrs, ops.to_vec())
    }
}
