//! Binary elementwise arithmetic with numpy broadcasting: `Add`, `Sub`, `Mul`, `Div`, `Pow`; and `Cast`.

use super::{broadcast, require_float};
use crate::attr::{AttrDefault as D, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, ParamDType, ParamSpec, Role, Slot, slot};
use crate::value::ValueInfo;
use nnbundle_format::DType;

const SLOTS: &[Slot] = &[slot("input", Role::Data), slot("other", Role::Param)];

/// A two-operand op (`input`, `other`) whose rule is `$rule($name)` (`Binary` unless given).
macro_rules! binary {
    ($static:ident, $name:literal, $summary:literal, $numerics:literal) => {
        binary!($static, $name, $summary, $numerics, Binary);
    };
    ($static:ident, $name:literal, $summary:literal, $numerics:literal, $rule:ident) => {
        pub(crate) static $static: OpDef = OpDef {
            name: $name,
            summary: $summary,
            numerics: $numerics,
            attrs: &[],
            slots: SLOTS,
            rule: &$rule($name),
        };
    };
}

binary!(
    ADD,
    "Add",
    "input + other, numpy broadcasting; other is a second input or the weight `<node>.other`",
    "IEEE 754 addition on broadcast operands; on i32 or i64 operands (from opset 2), two's-complement addition that wraps around on overflow."
);
binary!(
    SUB,
    "Sub",
    "input - other, numpy broadcasting; other is a second input or the weight `<node>.other`",
    "IEEE 754 subtraction on broadcast operands; on i32 or i64 operands (from opset 2), two's-complement subtraction that wraps around on overflow."
);
binary!(
    MUL,
    "Mul",
    "input * other, numpy broadcasting; other is a second input or the weight `<node>.other`",
    "IEEE 754 multiplication on broadcast operands; on i32 or i64 operands (from opset 2), two's-complement multiplication that wraps around on overflow."
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

binary!(
    MAXIMUM,
    "Maximum",
    "the larger of input and other, numpy broadcasting (torch.maximum; ONNX Max)",
    "the larger of the broadcast operands; NaN if either is NaN; `max(-0, +0)` is either zero."
);
binary!(
    MINIMUM,
    "Minimum",
    "the smaller of input and other, numpy broadcasting (torch.minimum; ONNX Min)",
    "the smaller of the broadcast operands; NaN if either is NaN; `min(-0, +0)` is either zero."
);

binary!(
    FMOD,
    "Fmod",
    "the remainder of input / other with the sign of input (torch.fmod; ONNX Mod with fmod=1)",
    "C's `fmod`: `input - trunc(input / other) * other` computed exactly; NaN where other is 0 or input is infinite."
);

struct Binary(&'static str);

/// The ops of this family that also compute on i32 and i64 (from opset 2).
const INTEGER_TOO: &[&str] = &["Add", "Sub", "Mul"];

impl OpRule for Binary {
    fn param(&self, slot: &str, _: &Attrs) -> Option<ParamSpec> {
        let dtype = if INTEGER_TOO.contains(&self.0) { ParamDType::SameAsInput } else { ParamDType::Float };
        (slot == "other").then_some(ParamSpec { shape: None, dtype, required: true })
    }

    fn operands_since(&self, ops: &Operands) -> Option<(u32, String)> {
        let dtype = ops.data.first().filter(|_| INTEGER_TOO.contains(&self.0))?.dtype;
        matches!(dtype, DType::I32 | DType::I64).then(|| (2, format!("{dtype} operands")))
    }

    fn infer(&self, _: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let a = ops.input();
        if !(INTEGER_TOO.contains(&self.0) && matches!(a.dtype, DType::I32 | DType::I64)) {
            require_float(self.0, a)?;
        }
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

/// The dtypes comparisons and `Where` take (those the runtime computes in).
const COMPARED: &[DType] = &[DType::F32, DType::F64, DType::I32, DType::I64, DType::Bool];

binary!(
    EQUAL,
    "Equal",
    "input == other elementwise, numpy broadcasting: bool (torch.eq; ONNX Equal)",
    "IEEE 754 equality on broadcast operands (NaN equals nothing, -0 equals +0); integers and bools compare exactly.",
    Comparison
);
binary!(
    LESS,
    "Less",
    "input < other elementwise, numpy broadcasting: bool (torch.lt; ONNX Less)",
    "IEEE 754 ordering on broadcast operands (any comparison with NaN is false); integers compare exactly, false < true.",
    Comparison
);
binary!(
    GREATER,
    "Greater",
    "input > other elementwise, numpy broadcasting: bool (torch.gt; ONNX Greater)",
    "IEEE 754 ordering on broadcast operands (any comparison with NaN is false); integers compare exactly, false < true.",
    Comparison
);

struct Comparison(&'static str);

impl OpRule for Comparison {
    fn param(&self, slot: &str, _: &Attrs) -> Option<ParamSpec> {
        (slot == "other").then_some(ParamSpec { shape: None, dtype: ParamDType::SameAsInput, required: true })
    }

    fn infer(&self, _: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let a = ops.input();
        if !COMPARED.contains(&a.dtype) {
            return Err(format!("{} compares f32, f64, i32, i64 or bool, input is {}", self.0, a.dtype));
        }
        let Some(b) = ops.param("other") else { return Ok(None) };
        if a.dtype != b.dtype {
            return Err(format!("{} operands must have one dtype, found {} and {}", self.0, a.dtype, b.dtype));
        }
        let shape = broadcast(&a.shape, &b.shape).map_err(|e| format!("{}: {e}", self.0))?;
        Ok(Some(ValueInfo::new(DType::Bool, shape)))
    }
}

pub(crate) static WHERE: OpDef = OpDef {
    name: "Where",
    summary: "input where condition is true, else other, numpy broadcasting of the three (torch.where; ONNX Where)",
    numerics: "each output element is copied unchanged from `input` where the broadcast `condition` is true and from `other` where it is false.",
    attrs: &[],
    slots: &[slot("condition", Role::Data), slot("input", Role::Param), slot("other", Role::Param)],
    rule: &WhereRule,
};

struct WhereRule;

impl OpRule for WhereRule {
    fn param(&self, slot: &str, _: &Attrs) -> Option<ParamSpec> {
        matches!(slot, "input" | "other").then_some(ParamSpec { shape: None, dtype: ParamDType::Any, required: true })
    }

    fn infer(&self, _: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let c = ops.input();
        if c.dtype != DType::Bool {
            return Err(format!("Where's condition must be bool, found {}", c.dtype));
        }
        let (Some(a), Some(b)) = (ops.param("input"), ops.param("other")) else { return Ok(None) };
        if a.dtype != b.dtype || !COMPARED.contains(&a.dtype) {
            return Err(format!(
                "Where's input and other must have one dtype of f32, f64, i32, i64, bool; found {} and {}",
                a.dtype, b.dtype
            ));
        }
        let shape = broadcast(&c.shape, &broadcast(&a.shape, &b.shape)?).map_err(|e| format!("Where: {e}"))?;
        Ok(Some(ValueInfo::new(a.dtype, shape)))
    }
}
