//! Normalization: `BatchNorm1d`, `BatchNorm2d` (running statistics),
//! `LayerNorm`; from opset 2 `LocalResponseNorm`, `GroupNorm`, `InstanceNorm1d`
//! and `InstanceNorm2d`.

use super::{at_least_one, require_dim, require_float, require_rank};
use crate::attr::{AttrDefault as D, AttrSpec, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, ParamDType, ParamDoc, ParamSpec, Role, Slot, slot};
use crate::value::{Dim, ValueInfo};

const BN_ATTRS: &[AttrSpec] = &[
    attr("num_features", T::Int, D::Required, "channels C"),
    attr("eps", T::Float, D::Float(1e-5), "added to the variance"),
    attr("affine", T::Bool, D::Bool(true), "whether the node has weight and bias"),
];
const BN_SLOTS: &[Slot] = &[
    slot("input", Role::Data),
    slot("weight", Role::Param),
    slot("bias", Role::Param),
    slot("running_mean", Role::Param),
    slot("running_var", Role::Param),
    slot("num_batches_tracked", Role::Param),
];

pub(crate) static BATCHNORM1D: OpDef = OpDef {
    name: "BatchNorm1d",
    summary: "(x - running_mean) / sqrt(running_var + eps) * weight + bias over channel dim 1 of [N, C] or [N, C, L]",
    numerics: "`y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`, per channel (dimension 1); without `affine`, weight 1 and bias 0. `num_batches_tracked` is not read.",
    attrs: BN_ATTRS,
    slots: BN_SLOTS,
    rule: &BatchNormRule { name: "BatchNorm1d", ranks: &[2, 3], layout: "[N, C] or [N, C, L]" },
};
pub(crate) static BATCHNORM2D: OpDef = OpDef {
    name: "BatchNorm2d",
    summary: "(x - running_mean) / sqrt(running_var + eps) * weight + bias over channel dim 1 of [N, C, H, W]",
    numerics: "`y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`, per channel (dimension 1); without `affine`, weight 1 and bias 0. `num_batches_tracked` is not read.",
    attrs: BN_ATTRS,
    slots: BN_SLOTS,
    rule: &BatchNormRule { name: "BatchNorm2d", ranks: &[4], layout: "[N, C, H, W]" },
};

struct BatchNormRule {
    name: &'static str,
    ranks: &'static [usize],
    layout: &'static str,
}

impl OpRule for BatchNormRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let mut out = at_least_one(a, &["num_features"]);
        if a.float("eps") < 0.0 {
            out.push(("eps", format!("must not be negative, found {}", a.float("eps"))));
        }
        out
    }

    fn param_doc(&self, slot: &str) -> ParamDoc {
        match slot {
            "weight" | "bias" => ParamDoc::shape_when("[num_features]", &["affine"]),
            "running_mean" | "running_var" => ParamDoc::shape("[num_features]"),
            "num_batches_tracked" => ParamDoc::shape("[]"),
            _ => ParamDoc::default(),
        }
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<ParamSpec> {
        let c = a.int("num_features") as u64;
        match slot {
            "weight" | "bias" if a.bool("affine") => Some(ParamSpec::float(vec![c])),
            "running_mean" | "running_var" => Some(ParamSpec::float(vec![c])),
            "num_batches_tracked" => Some(ParamSpec { shape: Some(vec![]), dtype: ParamDType::I64, required: false }),
            _ => None,
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float(self.name, x)?;
        require_rank(self.name, x, self.ranks, self.layout)?;
        require_dim(self.name, "channels (dimension 1)", &x.shape.0[1], a.int("num_features") as u64, &x.shape)?;
        Ok(Some(x.clone()))
    }
}

pub(crate) static LAYERNORM: OpDef = OpDef {
    name: "LayerNorm",
    summary: "normalizes over the last len(normalized_shape) dimensions (biased variance), then * weight + bias",
    numerics: "over the last `len(normalized_shape)` dimensions, mean `m` and biased variance `v` (divided by the element count); `y = (x - m) / sqrt(v + eps) * weight + bias`.",
    attrs: &[
        attr("normalized_shape", T::Ints, D::Required, "the trailing dimensions normalized over"),
        attr("eps", T::Float, D::Float(1e-5), "added to the variance"),
        attr("elementwise_affine", T::Bool, D::Bool(true), "whether the node has weight (and bias)"),
        attr("bias", T::Bool, D::Bool(true), "whether the node has a bias (with elementwise_affine)"),
    ],
    slots: &[slot("input", Role::Data), slot("weight", Role::Param), slot("bias", Role::Param)],
    rule: &LayerNormRule,
};

struct LayerNormRule;

impl OpRule for LayerNormRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let ns = a.ints("normalized_shape");
        let mut out = Vec::new();
        if ns.is_empty() || ns.iter().any(|&d| d < 1) {
            out.push(("normalized_shape", format!("must be a non-empty list of sizes of at least 1, found {ns:?}")));
        }
        if a.float("eps") < 0.0 {
            out.push(("eps", format!("must not be negative, found {}", a.float("eps"))));
        }
        out
    }

    fn param_doc(&self, slot: &str) -> ParamDoc {
        match slot {
            "weight" => ParamDoc::shape_when("[*normalized_shape]", &["elementwise_affine"]),
            "bias" => ParamDoc::shape_when("[*normalized_shape]", &["elementwise_affine", "bias"]),
            _ => ParamDoc::default(),
        }
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<ParamSpec> {
        let shape: Vec<u64> = a.ints("normalized_shape").iter().map(|&d| d as u64).collect();
        match slot {
            "weight" if a.bool("elementwise_affine") => Some(ParamSpec::float(shape)),
            "bias" if a.bool("elementwise_affine") && a.bool("bias") => Some(ParamSpec::float(shape)),
            _ => None,
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float("LayerNorm", x)?;
        let ns = a.ints("normalized_shape");
        let r = x.shape.rank();
        let fits = r >= ns.len()
            && x.shape.0[r - ns.len()..].iter().zip(ns).all(|(d, &n)| d.compatible(&Dim::Fixed(n as u64)));
        if !fits {
            return Err(format!("LayerNorm expects trailing dimensions {ns:?}, input has {}", x.shape));
        }
        Ok(Some(x.clone()))
    }
}

pub(crate) static LOCALRESPONSENORM: OpDef = OpDef {
    name: "LocalResponseNorm",
    summary: "x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta, channels in dim 1 of [N, C, ...]",
    numerics: "for channel c, the sum of squares runs over channels `max(0, c - floor((size - 1) / 2))` to `min(C - 1, c + ceil((size - 1) / 2))` (missing channels count as zeros); `y = x / (k + alpha / size * sum)^beta`.",
    attrs: &[
        attr("size", T::Int, D::Required, "channels in the window"),
        attr("alpha", T::Float, D::Float(1e-4), "scale of the sum of squares"),
        attr("beta", T::Float, D::Float(0.75), "exponent"),
        attr("k", T::Float, D::Float(1.0), "additive constant"),
    ],
    slots: &[slot("input", Role::Data)],
    rule: &LocalResponseNormRule,
};

struct LocalResponseNormRule;

impl OpRule for LocalResponseNormRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        at_least_one(a, &["size"])
    }

    fn infer(&self, _: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float("LocalResponseNorm", x)?;
        if x.shape.rank() < 3 {
            return Err(format!(
                "LocalResponseNorm expects input [N, C, ...] of rank 3 or more, input has {}",
                x.shape
            ));
        }
        Ok(Some(x.clone()))
    }
}

const GROUP_NUMERICS: &str = "per sample and group of `num_channels / num_groups` consecutive channels (dimension 1), the mean `m` and biased variance `v` (divided by the element count) over the group's channels and every position; `y = (x - m) / sqrt(v + eps) * weight[c] + bias[c]` for channel c; without `affine`, weight 1 and bias 0.";
const INSTANCE_NUMERICS: &str = "per sample and channel (dimension 1), the mean `m` and biased variance `v` (divided by the element count) over every position; `y = (x - m) / sqrt(v + eps) * weight[c] + bias[c]` for channel c; without `affine`, weight 1 and bias 0 (running statistics are not kept: `track_running_stats=False`).";

pub(crate) static GROUPNORM: OpDef = OpDef {
    name: "GroupNorm",
    summary: "normalizes each group of channels of [N, C, ...] over its channels and positions (biased variance), then * weight + bias per channel",
    numerics: GROUP_NUMERICS,
    attrs: &[
        attr("num_groups", T::Int, D::Required, "groups G; divides num_channels"),
        attr("num_channels", T::Int, D::Required, "channels C"),
        attr("eps", T::Float, D::Float(1e-5), "added to the variance"),
        attr("affine", T::Bool, D::Bool(true), "whether the node has weight and bias"),
    ],
    slots: &[slot("input", Role::Data), slot("weight", Role::Param), slot("bias", Role::Param)],
    rule: &GroupNormRule { name: "GroupNorm", channels: "num_channels", ranks: None },
};

const INSTANCE_ATTRS: &[AttrSpec] = &[
    attr("num_features", T::Int, D::Required, "channels C"),
    attr("eps", T::Float, D::Float(1e-5), "added to the variance"),
    attr("affine", T::Bool, D::Bool(false), "whether the node has weight and bias (PyTorch's default: no)"),
];

pub(crate) static INSTANCENORM1D: OpDef = OpDef {
    name: "InstanceNorm1d",
    summary: "normalizes each channel of each sample of [N, C, L] over its positions (biased variance), then * weight + bias",
    numerics: INSTANCE_NUMERICS,
    attrs: INSTANCE_ATTRS,
    slots: &[slot("input", Role::Data), slot("weight", Role::Param), slot("bias", Role::Param)],
    rule: &GroupNormRule { name: "InstanceNorm1d", channels: "num_features", ranks: Some((3, "[N, C, L]")) },
};

pub(crate) static INSTANCENORM2D: OpDef = OpDef {
    name: "InstanceNorm2d",
    summary: "normalizes each channel of each sample of [N, C, H, W] over its positions (biased variance), then * weight + bias",
    numerics: INSTANCE_NUMERICS,
    attrs: INSTANCE_ATTRS,
    slots: &[slot("input", Role::Data), slot("weight", Role::Param), slot("bias", Role::Param)],
    rule: &GroupNormRule { name: "InstanceNorm2d", channels: "num_features", ranks: Some((4, "[N, C, H, W]")) },
};

/// GroupNorm, and the instance norms (one group per channel).
struct GroupNormRule {
    name: &'static str,
    /// The attribute that gives C.
    channels: &'static str,
    /// The one rank the op takes and its layout, or `None` for any rank from 2.
    ranks: Option<(usize, &'static str)>,
}

/// The groups of a `GroupNorm` or instance-norm node: one per channel for the latter.
fn norm_groups(a: &Attrs) -> i64 {
    match a.get("num_groups") {
        Some(crate::attr::AttrValue::Int(g)) => *g,
        _ => a.int("num_features"),
    }
}

impl OpRule for GroupNormRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let mut out = at_least_one(a, &[self.channels]);
        let (g, c) = (norm_groups(a), a.int(self.channels));
        if g < 1 || (c >= 1 && c % g != 0) {
            out.push(("num_groups", format!("must be at least 1 and divide {} {c}, found {g}", self.channels)));
        }
        if a.float("eps") < 0.0 {
            out.push(("eps", format!("must not be negative, found {}", a.float("eps"))));
        }
        out
    }

    fn param_doc(&self, slot: &str) -> ParamDoc {
        let shape = if self.channels == "num_channels" { "[num_channels]" } else { "[num_features]" };
        match slot {
            "weight" | "bias" => ParamDoc::shape_when(shape, &["affine"]),
            _ => ParamDoc::default(),
        }
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<ParamSpec> {
        let c = a.int(self.channels) as u64;
        matches!(slot, "weight" | "bias")
            .then_some(())
            .filter(|()| a.bool("affine"))
            .map(|()| ParamSpec::float(vec![c]))
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float(self.name, x)?;
        match self.ranks {
            Some((rank, layout)) => require_rank(self.name, x, &[rank], layout)?,
            None if x.shape.rank() < 2 => {
                return Err(format!("{} expects [N, C, ...], input has {}", self.name, x.shape));
            }
            None => {}
        }
        require_dim(self.name, "channels (dimension 1)", &x.shape.0[1], a.int(self.channels) as u64, &x.shape)?;
        Ok(Some(x.clone()))
    }
}
