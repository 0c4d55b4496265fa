//! Binary elementwise arithmetic with numpy broadcasting: `Add`, `Sub`, `Mul`, `Div`, `Pow`; and `Cast`.

use super::{broadcast, require_float};
use crate::attr::{AttrDefault as D, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, ParamDType, ParamSpec, Role, Slot, slot};
use crate::value::ValueInfo;

const SLOTS: &[Slot] = &[slot("input", Role::Data), slot("other", Role::Param)];

macro_rules! binary {
    ($static:ident, $name:literal, $summary:literal, $numerics:literal) => {
        pub(crate) static $static: OpDef = OpDef {
            name: $name,
            summary: $summary,
            numerics: $numerics,
            attrs: &[],
            slots: SLOTS,
            rule: &Binary($name),
        };
    };
}

binary!(
    ADD,
    "Add",
    "input + other, numpy broadcasting; other is a second input or the weight `<node>.other`",
    "IEEE 754 addition on broadcast operands."
);
binary!(
    SUB,
    "Sub",
    "input - other, numpy broadcasting; other is a second input or the weight `<node>.other`",
    "IEEE 754 subtraction on broadcast operands."
);
binary!(
    MUL,
    "Mul",
    "input * other, numpy broadcasting; other is a second input or the weight `<node>.other`",
    "IEEE 754 multiplication on broadcast operands."
);
binary!(
    POW,
    "Pow",
    "input ** other, numpy broadcasting; other is a second input or the weight `<node>.other`",
    "C's `pow` on broadcast operands: a negative base with a non-integer exponent gives NaN, `0 ** 0` is 1."
);
binary!(
    DIV,
    "Div",
    "input / other (IEEE division), numpy broadcasting; other is a second input or the weight `<node>.other`",
    "IEEE 754 division on broadcast operands (division by zero gives infinities or NaN)."
);

struct Binary(&'static str);

impl OpRule for Binary {
    fn param(&self, slot: &str, _: &Attrs) -> Option<ParamSpec> {
        (slot == "other").then_some(ParamSpec { shape: None, dtype: ParamDType::Float, required: true })
    }

    fn infer(&self, _: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let a = ops.input();
        require_float(self.0, a)?;
        let Some(b) = ops.param("other") else { return Ok(None) };
        if a.dtype != b.dtype {
            return Err(format!("{} operands must have one dtype, found {} and {}", self.0, a.dtype, b.dtype));
        }
        let shape = broadcast(&a.shape, &b.shape).map_err(|e| format!("{}: {e}", self.0))?;
        Ok(Some(ValueInfo::new(a.dtype, shape)))
    }
}

/// The dtypes `Cast` converts between (those the runtime computes in).
pub const CAST_DTYPES: &[&str] = &["f32", "f64", "i32", "i64", "bool"];

pub(crate) static CAST: OpDef = OpDef {
    name: "Cast",
    summary: "the input converted to `dtype` (tensor.to(dtype); ONNX Cast)",
    numerics: "float to float rounds to nearest, ties to even; float to integer truncates toward zero and saturates at the integer type's bounds, NaN giving 0; integer to float rounds to nearest; integer to integer keeps the value when it fits and saturates otherwise; to bool, non-zero (NaN included) is true; from bool, true is 1 and false 0.",
    attrs: &[attr("dtype", T::Choice(CAST_DTYPES), D::Required, "the output dtype")],
    slots: &[slot("input", Role::Data)],
    rule: &CastRule,
};

struct CastRule;

impl OpRule for CastRule {
    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let dtype: nnbundle_format::DType =
            a.str("dtype").parse().map_err(|_| format!("Cast: `{}` is not a dtype", a.str("dtype")))?;
        if !CAST_DTYPES.contains(&x.dtype.to_string().as_str()) {
            return Err(format!("Cast converts {}; the input is {}", CAST_DTYPES.join(", "), x.dtype));
        }
        Ok(Some(ValueInfo::new(dtype, x.shape.clone())))
    }
}
