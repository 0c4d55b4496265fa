//! Reductions over dimensions (opset 2): `ReduceMean`, `ReduceSum`, `ReduceMax`.

use super::require_float;
use crate::attr::{AttrDefault as D, AttrSpec, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, Role, Slot, slot};
use crate::value::{Dim, Shape, ValueInfo, normalize_axis};

const SLOTS: &[Slot] = &[slot("input", Role::Data)];
const ATTRS: &[AttrSpec] = &[
    attr("dims", T::Ints, D::Absent, "the dimensions reduced (negative count from the end); absent: every dimension"),
    attr("keepdim", T::Bool, D::Bool(false), "keep each reduced dimension with size 1"),
];

macro_rules! reduction {
    ($static:ident, $name:literal, $summary:literal, $numerics:literal) => {
        pub(crate) static $static: OpDef = OpDef {
            name: $name,
            summary: $summary,
            numerics: $numerics,
            attrs: ATTRS,
            slots: SLOTS,
            rule: &Reduction($name),
        };
    };
}

reduction!(
    REDUCEMEAN,
    "ReduceMean",
    "mean over `dims` (torch.mean(input, dims, keepdim))",
    "the sum of the reduced elements divided by their count; an empty reduction gives NaN."
);
reduction!(
    REDUCESUM,
    "ReduceSum",
    "sum over `dims` (torch.sum(input, dims, keepdim))",
    "the sum of the reduced elements (0 for an empty reduction), in any order within the accuracy of section 9.10."
);
reduction!(
    REDUCEMAX,
    "ReduceMax",
    "maximum over `dims` (torch.amax(input, dims, keepdim))",
    "the largest reduced element; a NaN among them gives NaN; an empty reduction is a run-time error."
);

/// The dimensions `attrs` reduce for a rank-`rank` input, sorted, or why not.
pub(crate) fn reduced_dims(attrs: &Attrs, rank: usize) -> Result<Vec<usize>, String> {
    let Some(crate::attr::AttrValue::Ints(dims)) = attrs.get("dims") else { return Ok((0..rank).collect()) };
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let a = normalize_axis(d, rank).ok_or_else(|| format!("dim {d} is out of range for rank {rank}"))?;
        if out.contains(&a) {
            return Err(format!("dim {d} is listed twice"));
        }
        out.push(a);
    }
    out.sort_unstable();
    Ok(out)
}

struct Reduction(&'static str);

impl OpRule for Reduction {
    fn infer(&self, attrs: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float(self.0, x)?;
        let dims = reduced_dims(attrs, x.shape.rank()).map_err(|e| format!("{}: {e}", self.0))?;
        let keep = attrs.bool("keepdim");
        let shape: Vec<Dim> = x
            .shape
            .0
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match (dims.contains(&i), keep) {
                (false, _) => Some(d.clone()),
                (true, true) => Some(Dim::Fixed(1)),
                (true, false) => None,
            })
            .collect();
        Ok(Some(ValueInfo::new(x.dtype, Shape(shape))))
    }
}
