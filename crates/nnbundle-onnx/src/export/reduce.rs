//! Reductions as ONNX (opset 17: ReduceSum takes its axes as an input, the others as an attribute).

use nnbundle_graph::OpKind;

use super::{Args, ExportRule, ExportSupport::Full, Exporter, a_int, a_ints};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::ReduceMean, support: Full, export: |ex, n| reduce(ex, n, "ReduceMean") },
    ExportRule { op: OpKind::ReduceSum, support: Full, export: |ex, n| reduce(ex, n, "ReduceSum") },
    ExportRule { op: OpKind::ReduceMax, support: Full, export: |ex, n| reduce(ex, n, "ReduceMax") },
];

fn reduce(ex: &mut Exporter<'_>, n: &Args<'_>, onnx: &str) -> Result<(), String> {
    let a = n.attrs();
    let mut attrs = vec![a_int("keepdims", i64::from(a.bool("keepdim")))];
    let mut inputs = vec![n.x.clone()];
    if let Some(nnbundle_graph::AttrValue::Ints(dims)) = a.get("dims") {
        if onnx == "ReduceSum" {
            inputs.push(ex.shape_constant(&n.out, dims.clone()));
        } else {
            attrs.push(a_ints("axes", dims.clone()));
        }
    }
    ex.emit(onnx, inputs, &n.out, attrs);
    Ok(())
}
