//! Activations and elementwise float functions: `ReLU`, `LeakyReLU`,
//! `GELU`, `SiLU`, `Sigmoid`, `Tanh`, `Softmax`, `LogSoftmax`; from opset 2
//! `Hardtanh`, `Hardsigmoid`, `Hardswish`, `Exp`, `Log`, `Sqrt`, `Erf`,
//! `Neg`, `Abs`, `Reciprocal`, `Floor`, `ELU`, `SELU`, `Softplus`, `PReLU`.

use super::require_float;
use crate::attr::{AttrDefault as D, AttrSpec, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, Role, Slot, slot};
use crate::value::{ValueInfo, normalize_axis};

const SLOTS: &[Slot] = &[slot("input", Role::Data)];

/// Elementwise float functions: output dtype and shape equal the input's.
struct Unary(&'static str);

impl OpRule for Unary {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let (lo, hi) = (a.float("min_val"), a.float("max_val"));
        match self.0 {
            "Hardtanh" if lo > hi || lo.is_nan() || hi.is_nan() => vec![(
                "max_val",
                format!("must be at least min_val ({}), found {}", a.float("min_val"), a.float("max_val")),
            )],
            _ => Vec::new(),
        }
    }

    fn infer(&self, _: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        require_float(self.0, ops.input())?;
        Ok(Some(ops.input().clone()))
    }
}

macro_rules! unary {
    ($static:ident, $name:literal, $summary:literal, $numerics:literal, $attrs:expr) => {
        pub(crate) static $static: OpDef = OpDef {
            name: $name,
            summary: $summary,
            numerics: $numerics,
            attrs: $attrs,
            slots: SLOTS,
            rule: &Unary($name),
        };
    };
}

unary!(RELU, "ReLU", "max(x, 0)", "`max(x, 0)`; NaN stays NaN.", &[]);
unary!(
    LEAKYRELU,
    "LeakyReLU",
    "x if x >= 0 else negative_slope * x",
    "`x` for `x >= 0`, else `negative_slope * x`; NaN stays NaN.",
    &[attr("negative_slope", T::Float, D::Float(0.01), "slope for negative inputs")]
);
unary!(
    GELU,
    "GELU",
    "exact: x * 0.5 * (1 + erf(x / sqrt(2))); tanh: x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))",
    "`approximate: none` is `x/2 * (1 + erf(x / sqrt 2))`; `tanh` is `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x³)))`.",
    &[attr("approximate", T::Choice(&["none", "tanh"]), D::Str("none"), "`none` (exact, erf) or `tanh`")]
);
unary!(SILU, "SiLU", "x * sigmoid(x)", "`x * sigmoid(x)`.", &[]);
unary!(SIGMOID, "Sigmoid", "1 / (1 + exp(-x))", "`1 / (1 + exp(-x))`.", &[]);
unary!(TANH, "Tanh", "tanh(x)", "the hyperbolic tangent.", &[]);

unary!(
    HARDTANH,
    "Hardtanh",
    "x clamped to [min_val, max_val] (ReLU6 is Hardtanh(0, 6); ONNX's Clip)",
    "`min_val` where `x < min_val`, `max_val` where `x > max_val`, else `x`; NaN stays NaN.",
    &[
        attr("min_val", T::Float, D::Float(-1.0), "the lower bound"),
        attr("max_val", T::Float, D::Float(1.0), "the upper bound (at least `min_val`)"),
    ]
);
unary!(
    HARDSIGMOID,
    "Hardsigmoid",
    "alpha * x + beta clamped to [0, 1] (PyTorch's Hardsigmoid with the defaults; ONNX's HardSigmoid)",
    "`t = alpha * x + beta`, then 0 where `t < 0`, 1 where `t > 1`, else `t`; NaN stays NaN.",
    &[attr("alpha", T::Float, D::Float(1.0 / 6.0), "the slope"), attr("beta", T::Float, D::Float(0.5), "the offset"),]
);
unary!(
    HARDSWISH,
    "Hardswish",
    "x * relu6(x + 3) / 6",
    "`x * min(max(x + 3, 0), 6) / 6`, the clamp keeping a NaN.",
    &[]
);
unary!(EXP, "Exp", "exp(x)", "the natural exponential.", &[]);
unary!(LOG, "Log", "ln(x)", "the natural logarithm: -inf at 0, NaN below 0.", &[]);
unary!(SQRT, "Sqrt", "sqrt(x)", "the IEEE 754 square root: NaN below 0, -0 at -0.", &[]);
unary!(
    ERF,
    "Erf",
    "erf(x), the Gauss error function",
    "the Gauss error function, `2/sqrt(pi)` times the integral of `exp(-t²)` from 0 to x.",
    &[]
);
unary!(NEG, "Neg", "-x", "the sign flipped (NaN and zeros included).", &[]);
unary!(ABS, "Abs", "|x|", "the sign cleared (NaN and zeros included).", &[]);
unary!(RECIPROCAL, "Reciprocal", "1 / x", "`1 / x` in IEEE 754 division (infinities at zeros).", &[]);

unary!(
    FLOOR,
    "Floor",
    "the largest integer not above x",
    "IEEE 754 round toward negative infinity; NaN, infinities and zeros unchanged.",
    &[]
);
unary!(
    ELU,
    "ELU",
    "x if x > 0 else alpha * (exp(x) - 1)",
    "`x` for `x > 0`, else `alpha * expm1(x)` (`exp(x) - 1` without cancellation); NaN stays NaN.",
    &[attr("alpha", T::Float, D::Float(1.0), "the scale of the negative part")]
);
unary!(
    SELU,
    "SELU",
    "scale * (x if x > 0 else alpha * (exp(x) - 1)), alpha and scale PyTorch's constants",
    "`scale * x` for `x > 0`, else `scale * alpha * expm1(x)`, with alpha = 1.6732632423543772848170429916717 and scale = 1.0507009873554804934193349852946, each rounded to the dtype.",
    &[]
);
unary!(
    SOFTPLUS,
    "Softplus",
    "log(1 + exp(beta * x)) / beta, or x where beta * x > threshold",
    "`x` where `beta * x > threshold`, else `log1p(exp(beta * x)) / beta`.",
    &[
        attr("beta", T::Float, D::Float(1.0), "the sharpness"),
        attr("threshold", T::Float, D::Float(20.0), "above it (of beta * x) the output is x"),
    ]
);

pub(crate) static PRELU: OpDef = OpDef {
    name: "PReLU",
    summary: "x if x >= 0 else weight * x, one learned slope or one per channel (dim 1)",
    numerics: "`x` for `x >= 0`, else `weight[c] * x` where c is the index along dimension 1 when `num_parameters > 1` (else the one slope); NaN stays NaN.",
    attrs: &[attr("num_parameters", T::Int, D::Int(1), "slopes: 1, or the channel count C")],
    slots: &[slot("input", Role::Data), slot("weight", Role::Param)],
    rule: &PReluRule,
};

struct PReluRule;

impl OpRule for PReluRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        super::at_least_one(a, &["num_parameters"])
    }

    fn param_doc(&self, slot: &str) -> crate::op::ParamDoc {
        match slot {
            "weight" => crate::op::ParamDoc::shape("[num_parameters]"),
            _ => crate::op::ParamDoc::default(),
        }
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<crate::op::ParamSpec> {
        (slot == "weight").then(|| crate::op::ParamSpec::float(vec![a.int("num_parameters") as u64]))
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float("PReLU", x)?;
        let n = a.int("num_parameters");
        if n > 1 {
            let c =
                x.shape.0.get(1).ok_or_else(|| {
                    format!("PReLU with {n} slopes needs a channel dimension 1, input has {}", x.shape)
                })?;
            super::require_dim("PReLU", "channels (dimension 1)", c, n as u64, &x.shape)?;
        }
        Ok(Some(x.clone()))
    }
}

const DIM: &[AttrSpec] =
    &[attr("dim", T::Int, D::Required, "the dimension normalized over; negative counts from the end")];

pub(crate) static SOFTMAX: OpDef = OpDef {
    name: "Softmax",
    summary: "exp(x - max) / sum(exp(x - max)) along dim",
    numerics: "`exp(x - max) / sum(exp(x - max))` along `dim`, the maximum taken along `dim`.",
    attrs: DIM,
    slots: SLOTS,
    rule: &AlongDim("Softmax"),
};
pub(crate) static LOGSOFTMAX: OpDef = OpDef {
    name: "LogSoftmax",
    summary: "x - max - log(sum(exp(x - max))) along dim",
    numerics: "`x - max - log(sum(exp(x - max)))` along `dim`, the maximum taken along `dim`.",
    attrs: DIM,
    slots: SLOTS,
    rule: &AlongDim("LogSoftmax"),
};

struct AlongDim(&'static str);

impl OpRule for AlongDim {
    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        require_float(self.0, x)?;
        normalize_axis(a.int("dim"), x.shape.rank().max(1))
            .ok_or_else(|| format!("{} dim {} is out of range for input {}", self.0, a.int("dim"), x.shape))?;
        Ok(Some(x.clone()))
    }
}
