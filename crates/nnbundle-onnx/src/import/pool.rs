//! ONNX pooling.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr_i, attr_ints};
use crate::proto::NodeProto;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
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
