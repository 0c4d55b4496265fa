//! Linear as ONNX: Gemm on matrices, MatMul (and Add) on higher ranks.

use nnbundle_graph::OpKind;

use super::{Args, ExportRule, ExportSupport::Full, Exporter, a_int};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[ExportRule { op: OpKind::Linear, support: Full, export: linear }];

fn linear(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let (x, out) = (n.x.clone(), &n.out);
    let w = n.get("weight")?;
    if ex.rank(&x) == Some(2) {
        let mut inputs = vec![x, w];
        inputs.extend(n.opt("bias"));
        ex.emit("Gemm", inputs, out, vec![a_int("transB", 1)]);
    } else {
        let wt = ex.transposed(out, &w);
        match n.opt("bias") {
            Some(b) => {
                let y = ex.temp(out, "product");
                ex.emit("MatMul", vec![x, wt], &y, vec![]);
                ex.emit("Add", vec![y, b], out, vec![]);
            }
            None => ex.emit("MatMul", vec![x, wt], out, vec![]),
        }
    }
    Ok(())
}
