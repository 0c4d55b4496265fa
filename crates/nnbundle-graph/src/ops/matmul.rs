//! `MatMul`: numpy `matmul` (batched, broadcasting, 1-D promotion).

use super::{broadcast, require_float};
use crate::attr::Attrs;
use crate::op::{OpDef, OpRule, Operands, ParamDType, ParamSpec, Role, slot};
use crate::value::{Shape, ValueInfo};

pub(crate) static MATMUL: OpDef = OpDef {
    name: "MatMul",
    summary: "numpy matmul(input, other); other is a second input or the weight `<node>.other`",
    numerics: "numpy `matmul`: 1-D operands are promoted (a leading 1 for the left, a trailing 1 for the right) and the added dimension removed; batch dimensions broadcast.",
    attrs: &[],
    slots: &[slot("input", Role::Data), slot("other", Role::Param)],
    rule: &MatMulRule,
};

struct MatMulRule;

impl OpRule for MatMulRule {
    fn param(&self, slot: &str, _: &Attrs) -> Option<ParamSpec> {
        (slot == "other").then_some(ParamSpec { shape: None, dtype: ParamDType::Float, required: true })
    }

    fn infer(&self, _: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let a = ops.input();
        require_float("MatMul", a)?;
        let Some(b) = ops.param("other") else { return Ok(None) };
        if a.dtype != b.dtype {
            return Err(format!("MatMul operands must have one dtype, found {} and {}", a.dtype, b.dtype));
        }
        matmul_shape(&a.shape, &b.shape).map(|s| Some(ValueInfo::new(a.dtype, s)))
    }
}

/// The output shape of numpy's `matmul`.
pub(crate) fn matmul_shape(a: &Shape, b: &Shape) -> Result<Shape, String> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err(format!("MatMul needs operands of rank 1 or more, found {a} and {b}"));
    }
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k1) = if ra == 1 { (None, &a.0[0]) } else { (Some(&a.0[ra - 2]), &a.0[ra - 1]) };
    let (k2, n) = if rb == 1 { (&b.0[0], None) } else { (&b.0[rb - 2], Some(&b.0[rb - 1])) };
    if !k1.compatible(k2) {
        return Err(format!("MatMul inner dimensions differ: {a} @ {b} ({k1} vs {k2})"));
    }
    let batch_a = Shape(a.0[..ra.saturating_sub(2)].to_vec());
    let batch_b = Shape(b.0[..rb.saturating_sub(2)].to_vec());
    let mut dims = broadcast(&batch_a, &batch_b).map_err(|e| format!("MatMul batch dimensions: {e}"))?.0;
    dims.extend(m.cloned());
    dims.extend(n.cloned());
    Ok(Shape(dims))
}
