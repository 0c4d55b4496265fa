//! ONNX reductions.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr_i, attr_ints};

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
    Translator {
        onnx: "ReduceMean",
        produces: &[OpKind::ReduceMean],
        translate: |im, n| reduce(im, n, OpKind::ReduceMean),
    },
    Translator {
        onnx: "ReduceSum",
        produces: &[OpKind::ReduceSum],
        translate: |im, n| reduce(im, n, OpKind::ReduceSum),
    },
    Translator {
        onnx: "ReduceMax",
        produces: &[OpKind::ReduceMax],
        translate: |im, n| reduce(im, n, OpKind::ReduceMax),
    },
];

/// Axes from the `axes` attribute or, from the opset that moved them
/// (13 for ReduceSum, 18 for the others), the second input, which must be a
/// constant; none means every axis unless `noop_with_empty_axes`.
fn reduce(im: &mut Importer, n: &OnnxNode<'_>, op: OpKind) -> Result<Option<String>, String> {
    let x = n.arg(0)?;
    let from_input = n.proto.input.get(1).is_some_and(|s| !s.is_empty());
    let axes = if from_input {
        match n.operands.get(1) {
            Some(Operand::Const(t, _)) => {
                Some(t.to_vec::<i64>().map_err(|e| format!("{} axes: {e}", n.proto.op_type))?)
            }
            _ => return Err(format!("{} with axes computed at run time is not in the vocabulary", n.proto.op_type)),
        }
    } else {
        attr_ints(n.proto, "axes")
    };
    let axes = axes.filter(|a| !a.is_empty());
    if axes.is_none() && attr_i(n.proto, "noop_with_empty_axes", 0) != 0 {
        return im.add(n.hint, OpKind::Identity, vec![], vec![x]).map(Some);
    }
    let mut attrs = vec![("keepdim", AttrValue::Bool(attr_i(n.proto, "keepdims", 1) != 0))];
    if let Some(axes) = axes {
        attrs.push(("dims", AttrValue::Ints(axes)));
    }
    im.add(n.hint, op, attrs, vec![x]).map(Some)
}
