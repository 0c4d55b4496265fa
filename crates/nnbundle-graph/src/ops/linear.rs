//! `Linear`: `y = x W^T + b`.

use super::{at_least_one, require_dim, require_float};
use crate::attr::{AttrDefault as D, AttrSpec, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, ParamDoc, ParamSpec, Role, Slot, slot};
use crate::value::{Dim, ValueInfo};

const ATTRS: &[AttrSpec] = &[
    attr("in_features", T::Int, D::Required, "size of the input's last dimension"),
    attr("out_features", T::Int, D::Required, "size of the output's last dimension"),
    attr("bias", T::Bool, D::Bool(true), "whether the node has a bias"),
];
const SLOTS: &[Slot] = &[slot("input", Role::Data), slot("weight", Role::Param), slot("bias", Role::Param)];

pub(crate) static LINEAR: OpDef = OpDef {
    name: "Linear",
    summary: "y = x W^T + b over the last dimension; weight [out_features, in_features], bias [out_features]",
    numerics: "`y = x Wᵀ + b` with `W` `[out, in]`, over the last dimension of `x`.",
    attrs: ATTRS,
    slots: SLOTS,
    rule: &LinearRule,
};

struct LinearRule;

impl OpRule for LinearRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        at_least_one(a, &["in_features", "out_features"])
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<ParamSpec> {
        let (i, o) = (a.int("in_features") as u64, a.int("out_features") as u64);
        match slot {
            "weight" => Some(ParamSpec::float(vec![o, i])),
            "bias" if a.bool("bias") => Some(ParamSpec::float(vec![o])),
            _ => None,
        }
    }

    fn param_doc(&self, slot: &str) -> ParamDoc {
        match slot {
            "weight" => ParamDoc::shape("[out_features, in_features]"),
            "bias" => ParamDoc::shape_when("[out_features]", &["bias"]),
            _ => ParamDoc::default(),
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float("Linear", x)?;
        let last = x
            .shape
            .0
            .last()
            .ok_or_else(|| "Linear expects an input of rank 1 or more, input is a scalar".to_string())?;
        require_dim("Linear", "last dimension", last, a.int("in_features") as u64, &x.shape)?;
        let mut shape = x.shape.clone();
        *shape.0.last_mut().expect("rank checked") = Dim::Fixed(a.int("out_features") as u64);
        Ok(Some(ValueInfo::new(x.dtype, shape)))
    }
}
