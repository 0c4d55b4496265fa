//! ONNX Conv.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, Operand, attr, attr_i, attr_ints, attr_s};
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
        if attr(node, "output_shape").is_some() {
            return Err("ConvTranspose with output_shape is not supported: give pads and output_padding".into());
        }
        if !matches!(attr_s(node, "auto_pad", "NOTSET").as_str(), "NOTSET" | "VALID") {
            return Err("ConvTranspose with auto_pad SAME_* is not supported: give pads".into());
        }
        let group = attr_i(node, "group", 1);
        let kernel = attr_ints(node, "kernel_shape").unwrap_or_else(|| wshape[2..].to_vec());
        let ones = vec![1; spatial];
        let attrs = vec![
            ("in_channels", AttrValue::Int(wshape[0])),
            (
                "out_channels",
                AttrValue::Int(
                    wshape[1].checked_mul(group).filter(|_| group >= 1).ok_or("group must be at least 1 and small")?,
                ),
            ),
            ("kernel_size", AttrValue::Ints(kernel)),
            ("stride", AttrValue::Ints(attr_ints(node, "strides").unwrap_or_else(|| ones.clone()))),
            ("padding", AttrValue::Ints(attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * spatial]))),
            ("output_padding", AttrValue::Ints(attr_ints(node, "output_padding").unwrap_or_else(|| vec![0; spatial]))),
            ("dilation", AttrValue::Ints(attr_ints(node, "dilations").unwrap_or(ones))),
            ("groups", AttrValue::Int(group)),
            ("bias", AttrValue::Bool(ops.len() > 2)),
        ];
        let kind = if spatial == 1 { OpKind::ConvTranspose1d } else { OpKind::ConvTranspose2d };
        self.add(hint, kind, attrs, ops.to_vec())
    }
}
