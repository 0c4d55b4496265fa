//! Activations and elementwise float functions: `ReLU`, `LeakyReLU`,
//! `GELU`, `SiLU`, `Sigmoid`, `Tanh`, `Softmax`, `LogSoftmax`; from opset 2
//! `Hardtanh`, `Hardsigmoid`, `Hardswish`, `Exp`, `Log`, `Sqrt`, `Erf`,
//! `Neg`, `Abs`, `Reciprocal`.

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
