//! Activations: `ReLU`, `LeakyReLU`, `GELU`, `SiLU`, `Sigmoid`, `Tanh`, `Softmax`, `LogSoftmax`.

use super::require_float;
use crate::attr::{AttrDefault as D, AttrSpec, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, Role, Slot, slot};
use crate::value::{ValueInfo, normalize_axis};

const SLOTS: &[Slot] = &[slot("input", Role::Data)];

/// Elementwise float functions: output dtype and shape equal the input's.
struct Unary(&'static str);

impl OpRule for Unary {
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
