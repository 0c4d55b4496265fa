//! The types that define an op: operand slots, parameter requirements,
//! the shape-rule trait and `OpDef`. The list of ops is in `crate::ops`.

use std::collections::BTreeMap;
use std::fmt;

use nnbundle_format::DType;

use crate::attr::{AttrSpec, Attrs};
use crate::value::ValueInfo;

/// The role of one operand slot of an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A required value.
    Data,
    /// A value that may be left out (only at the end of the data slots).
    OptionalData,
    /// One or more values (the op's only slot).
    Variadic,
    /// A parameter: read from the node's weight `<node>.<slot>` unless the
    /// node's `inputs` list supplies it as a value.
    Param,
}

/// One operand slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Slot name; for parameters, the suffix of the weight name.
    pub name: &'static str,
    /// Its role.
    pub role: Role,
}

/// Shorthand for op tables.
pub const fn slot(name: &'static str, role: Role) -> Slot {
    Slot { name, role }
}

/// The dtype a parameter must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamDType {
    /// The dtype of the node's first input (f32 or f64).
    Float,
    /// `i32` or `i64` (indices).
    Index,
    /// Exactly `i64`.
    I64,
    /// The dtype of the node's first input, whatever it is.
    SameAsInput,
    /// f32 or f64, whatever the input (an `Embedding` table read by integer indices).
    AnyFloat,
    /// Any dtype; the op's shape rule relates it to the others (`Where`'s branches).
    Any,
}

impl ParamDType {
    /// True when `dtype` fits, given the node's first input dtype.
    pub fn accepts(self, dtype: DType, input: Option<DType>) -> bool {
        match self {
            ParamDType::Float => dtype.is_float() && input.is_none_or(|i| i == dtype),
            ParamDType::SameAsInput => input.is_none_or(|i| i == dtype),
            ParamDType::AnyFloat => matches!(dtype, DType::F32 | DType::F64),
            ParamDType::Index => matches!(dtype, DType::I32 | DType::I64),
            ParamDType::I64 => dtype == DType::I64,
            ParamDType::Any => true,
        }
    }

    /// How the rule is described in errors.
    pub fn describe(self, input: Option<DType>) -> String {
        match (self, input) {
            (ParamDType::Float, Some(d)) if !d.is_float() => {
                format!("f32 or f64, and the input ({d}) must be that float type too")
            }
            (ParamDType::Float | ParamDType::SameAsInput, Some(d)) => format!("{d} (the input's dtype)"),
            (ParamDType::Float, None) | (ParamDType::AnyFloat, _) => "f32 or f64".into(),
            (ParamDType::SameAsInput, None) => "the input's dtype".into(),
            (ParamDType::Index, _) => "i32 or i64".into(),
            (ParamDType::I64, _) => "i64".into(),
            (ParamDType::Any, _) => "any dtype".into(),
        }
    }
}

/// What an op requires of one of its parameters under given attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// The exact shape the attributes imply, or `None` when any shape the
    /// op's shape rule accepts will do.
    pub shape: Option<Vec<u64>>,
    /// The dtype rule.
    pub dtype: ParamDType,
    /// Whether the weight must exist (`num_batches_tracked` need not).
    pub required: bool,
}

impl ParamSpec {
    /// A required float parameter of a fixed shape.
    pub fn float(shape: Vec<u64>) -> Self {
        ParamSpec { shape: Some(shape), dtype: ParamDType::Float, required: true }
    }
}

/// A parameter's shape and existence as the spec states them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamDoc {
    /// The shape as a formula over the node's attributes ([`eval_shape_formula`]),
    /// or `None` when any shape the op's shape rule accepts will do.
    pub shape: Option<&'static str>,
    /// The parameter exists only when each of these boolean attributes is true.
    pub when: &'static [&'static str],
}

impl ParamDoc {
    /// A parameter of the shape `formula` that always exists.
    pub const fn shape(formula: &'static str) -> Self {
        ParamDoc { shape: Some(formula), when: &[] }
    }

    /// A parameter of the shape `formula` that exists when every attribute of `when` is true.
    pub const fn shape_when(formula: &'static str, when: &'static [&'static str]) -> Self {
        ParamDoc { shape: Some(formula), when }
    }
}

/// Evaluates a parameter shape formula (OPS.md states the language):
/// `[t, t, ...]`, each term either `*name` (the values of a list attribute)
/// or integer attributes and literals joined by `*` and `/` (integer
/// division), evaluated left to right; `directions` is 2 when the attribute
/// `bidirectional` is true and 1 otherwise.
pub fn eval_shape_formula(formula: &str, attrs: &Attrs) -> Result<Vec<u64>, String> {
    let inner = formula
        .strip_prefix('[')
        .and_then(|f| f.strip_suffix(']'))
        .ok_or_else(|| format!("`{formula}` is not a [...] list"))?;
    let atom = |name: &str| -> Result<i64, String> {
        if let Ok(n) = name.parse::<i64>() {
            return Ok(n);
        }
        if name == "directions" {
            return Ok(if attrs.bool("bidirectional") { 2 } else { 1 });
        }
        match attrs.get(name) {
            Some(crate::attr::AttrValue::Int(n)) => Ok(*n),
            other => Err(format!("`{name}` in `{formula}` is not an integer attribute: {other:?}")),
        }
    };
    let mut shape = Vec::new();
    for term in inner.split(", ").filter(|t| !t.is_empty()) {
        if let Some(list) = term.strip_prefix('*') {
            shape.extend(attrs.ints(list).iter().map(|&d| d as u64));
            continue;
        }
        let mut value = atom(term.split(['*', '/']).next().unwrap_or_default())?;
        let mut rest = &term[term.find(['*', '/']).unwrap_or(term.len())..];
        while let Some(op) = rest.chars().next() {
            let tail = &rest[1..];
            let end = tail.find(['*', '/']).unwrap_or(tail.len());
            let operand = atom(&tail[..end])?;
            value = if op == '*' { value * operand } else { value / operand.max(1) };
            rest = &tail[end..];
        }
        shape.push(value as u64);
    }
    Ok(shape)
}

/// The operands a shape rule sees: each present slot by name, in slot order.
/// A `None` entry is an operand whose facts are unknown (a weight not given).
#[derive(Debug, Clone, Default)]
pub(crate) struct Operands {
    /// Data operands, in order (variadic ones included).
    pub data: Vec<ValueInfo>,
    /// Parameter operands by slot name.
    pub params: BTreeMap<&'static str, Option<ValueInfo>>,
}

impl Operands {
    /// The first data operand.
    pub(crate) fn input(&self) -> &ValueInfo {
        &self.data[0]
    }

    /// A parameter operand, when present and known.
    pub(crate) fn param(&self, name: &str) -> Option<&ValueInfo> {
        self.params.get(name).and_then(Option::as_ref)
    }
}

/// The behaviour of one op: attribute checks, parameters and the shape rule.
pub(crate) trait OpRule: Sync {
    /// Checks attribute values beyond their types; returns (attribute, message) pairs.
    fn check_attrs(&self, _attrs: &Attrs) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The requirements on parameter slot `slot`, or `None` when the slot
    /// does not exist under these attributes (`bias: false`).
    fn param(&self, _slot: &str, _attrs: &Attrs) -> Option<ParamSpec> {
        None
    }

    /// What OPS.md states about parameter slot `slot`: the same facts as
    /// [`OpRule::param`] gives, as text a reader in another language can
    /// apply (the registry tests check the two agree on every op case).
    fn param_doc(&self, _slot: &str) -> ParamDoc {
        ParamDoc::default()
    }

    /// The output dtype and shape, `Ok(None)` when unknown for lack of facts
    /// about a parameter, or an error that says what does not fit.
    fn infer(&self, attrs: &Attrs, operands: &Operands) -> Result<Option<ValueInfo>, String>;

    /// The opset these operands need when it is later than the op's own
    /// (an opset-1 op that takes more dtypes from opset 2); `None` otherwise.
    fn operands_since(&self, _operands: &Operands) -> Option<(u32, String)> {
        None
    }
}

/// The definition of one op.
pub struct OpDef {
    /// The op's name in graphs.
    pub name: &'static str,
    /// One line on what it computes.
    pub summary: &'static str,
    /// The exact definition of its result, where the summary leaves a
    /// choice (normative: generated into `spec/OPS.md`).
    pub numerics: &'static str,
    /// Its attributes.
    pub attrs: &'static [AttrSpec],
    /// Its operand slots, data first, then parameters.
    pub slots: &'static [Slot],
    /// Its behaviour.
    pub(crate) rule: &'static dyn OpRule,
}

impl fmt::Debug for OpDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpDef").field("name", &self.name).finish()
    }
}

impl OpDef {
    /// The requirements on parameter slot `slot` under `attrs`; `None` when
    /// the slot does not exist under them.
    pub fn param(&self, slot: &str, attrs: &Attrs) -> Option<ParamSpec> {
        self.rule.param(slot, attrs)
    }

    /// What the spec states about parameter slot `slot` (shape formula, existence).
    pub fn param_doc(&self, slot: &str) -> ParamDoc {
        self.rule.param_doc(slot)
    }

    /// The attribute spec named `name`.
    pub fn attr(&self, name: &str) -> Option<&AttrSpec> {
        self.attrs.iter().find(|a| a.name == name)
    }

    /// The slots present under `attrs` (parameter slots that exist), in order.
    pub fn present_slots(&self, attrs: &Attrs) -> Vec<Slot> {
        self.slots
            .iter()
            .copied()
            .filter(|s| s.role != Role::Param || self.rule.param(s.name, attrs).is_some())
            .collect()
    }
}

/// The latest version of the op vocabulary this library implements; it
/// reads graphs of every opset from 1 to this one.
pub const OPSET: u32 = 2;
