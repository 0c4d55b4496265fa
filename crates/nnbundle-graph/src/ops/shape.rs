//! Shape ops: `Flatten`, `Reshape`, `Permute`, `Concat`, and the identities
//! `Dropout`, `Identity`; from opset 2 `Slice`, `Pad`, `Tile` and `Expand`.

use crate::attr::{AttrDefault as D, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, Role, slot};
use crate::value::{Dim, Shape, ValueInfo, normalize_axis};

struct Same;

impl OpRule for Same {
    fn infer(&self, _: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        Ok(Some(ops.input().clone()))
    }
}

pub(crate) static IDENTITY: OpDef = OpDef {
    name: "Identity",
    summary: "returns its input",
    numerics: "the input unchanged.",
    attrs: &[],
    slots: &[slot("input", Role::Data)],
    rule: &Same,
};

pub(crate) static DROPOUT: OpDef = OpDef {
    name: "Dropout",
    summary: "identity at inference (p is kept for the record)",
    numerics: "the input unchanged.",
    attrs: &[attr("p", T::Float, D::Float(0.5), "drop probability during training, in [0, 1)")],
    slots: &[slot("input", Role::Data)],
    rule: &DropoutRule,
};

struct DropoutRule;

impl OpRule for DropoutRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let p = a.float("p");
        if (0.0..1.0).contains(&p) { Vec::new() } else { vec![("p", format!("must be in [0, 1), found {p}"))] }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        Same.infer(a, ops)
    }
}

/// Product of dims: fixed when all are, the lone symbol when the rest are 1, else unknown.
fn product(dims: &[Dim]) -> Dim {
    let mut fixed = 1u64;
    let mut other = None;
    for d in dims {
        match d {
            Dim::Fixed(n) => fixed = fixed.saturating_mul(*n),
            d if other.is_none() => other = Some(d.clone()),
            _ => return Dim::Unknown,
        }
    }
    match other {
        None => Dim::Fixed(fixed),
        Some(d) if fixed == 1 => d,
        Some(_) => Dim::Unknown,
    }
}

pub(crate) static FLATTEN: OpDef = OpDef {
    name: "Flatten",
    summary: "merges dimensions start_dim..=end_dim into one",
    numerics: "moves no element: the same elements in C order under the new shape.",
    attrs: &[
        attr("start_dim", T::Int, D::Int(1), "first dimension merged; negative counts from the end"),
        attr("end_dim", T::Int, D::Int(-1), "last dimension merged; negative counts from the end"),
    ],
    slots: &[slot("input", Role::Data)],
    rule: &FlattenRule,
};

struct FlattenRule;

impl OpRule for FlattenRule {
    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let r = x.shape.rank().max(1);
        let (s, e) = (a.int("start_dim"), a.int("end_dim"));
        let (Some(start), Some(end)) = (normalize_axis(s, r), normalize_axis(e, r)) else {
            return Err(format!("Flatten dims {s}..{e} are out of range for input {}", x.shape));
        };
        if start > end {
            return Err(format!("Flatten start_dim {s} comes after end_dim {e} for input {}", x.shape));
        }
        if x.shape.rank() == 0 {
            return Ok(Some(ValueInfo::new(x.dtype, Shape::fixed(&[1]))));
        }
        let mut dims = x.shape.0[..start].to_vec();
        dims.push(product(&x.shape.0[start..=end]));
        dims.extend(x.shape.0[end + 1..].iter().cloned());
        Ok(Some(ValueInfo::new(x.dtype, Shape(dims))))
    }
}

pub(crate) static RESHAPE: OpDef = OpDef {
    name: "Reshape",
    summary: "same elements, C order, new shape; one -1 is inferred; with zero_copies_input a 0 copies the input's size at that position",
    numerics: "moves no element: the same elements in C order under the new shape.",
    attrs: &[
        attr("shape", T::Ints, D::Required, "the new shape; sizes >= 0, at most one -1"),
        attr(
            "zero_copies_input",
            T::Bool,
            D::Bool(false),
            "a 0 in `shape` copies the input's size at the same position (ONNX's Reshape) instead of meaning an empty dimension",
        ),
    ],
    slots: &[slot("input", Role::Data)],
    rule: &ReshapeRule,
};

struct ReshapeRule;

/// Fixed product and symbols of some dims; `None` when one is unknown.
fn split(dims: &[Dim]) -> Option<(u64, Vec<&str>)> {
    let mut fixed = 1u64;
    let mut symbols = Vec::new();
    for d in dims {
        match d {
            Dim::Fixed(n) => fixed = fixed.saturating_mul(*n),
            Dim::Symbol(s) => symbols.push(s.as_str()),
            Dim::Unknown => return None,
        }
    }
    symbols.sort_unstable();
    Some((fixed, symbols))
}

impl OpRule for ReshapeRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let shape = a.ints("shape");
        let wild = shape.iter().filter(|&&d| d == -1).count();
        if wild > 1 || shape.iter().any(|&d| d < -1) {
            vec![("shape", format!("sizes must be >= 0 with at most one -1, found {shape:?}"))]
        } else {
            Vec::new()
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let target = a.ints("shape");
        let copies = a.bool("zero_copies_input");
        let mut given = Vec::with_capacity(target.len());
        for (i, &d) in target.iter().enumerate() {
            given.push(match d {
                -1 => None,
                0 if copies => Some(x.shape.0.get(i).cloned().ok_or_else(|| {
                    format!("Reshape copies dimension {i} of input {}, which has no such dimension", x.shape)
                })?),
                d => Some(Dim::Fixed(d as u64)),
            });
        }
        let known: Vec<Dim> = given.iter().flatten().cloned().collect();
        let mismatch = || format!("Reshape cannot fit input {} into {target:?}", x.shape);
        let resolved = match (split(&x.shape.0), split(&known)) {
            (Some((in_fixed, in_syms)), Some((out_fixed, out_syms))) => {
                // Symbols of the target must come from the input; what is left of the input fills the -1.
                let mut left = in_syms.clone();
                let mut matched = true;
                for s in &out_syms {
                    match left.iter().position(|l| l == s) {
                        Some(p) => {
                            left.remove(p);
                        }
                        None => matched = false,
                    }
                }
                let has_wild = given.iter().any(Option::is_none);
                match (matched, has_wild, left.as_slice()) {
                    (true, false, []) if in_fixed != out_fixed => return Err(mismatch()),
                    (true, true, []) if out_fixed == 0 || in_fixed % out_fixed != 0 => return Err(mismatch()),
                    (true, true, []) => Some(Dim::Fixed(in_fixed / out_fixed)),
                    (true, true, [s]) if in_fixed == out_fixed => Some(Dim::Symbol((*s).to_owned())),
                    _ => Some(Dim::Unknown),
                }
            }
            _ => Some(Dim::Unknown),
        };
        let dims = given.into_iter().map(|d| d.or_else(|| resolved.clone()).unwrap_or(Dim::Unknown)).collect();
        Ok(Some(ValueInfo::new(x.dtype, Shape(dims))))
    }
}

pub(crate) static PERMUTE: OpDef = OpDef {
    name: "Permute",
    summary: "reorders dimensions: output dim i is input dim dims[i]",
    numerics: "output element `[i_0, ..., i_n]` is input element at `i_k` on axis `dims[k]`; values are copied unchanged.",
    attrs: &[attr(
        "dims",
        T::Ints,
        D::Required,
        "a permutation of the input's dimensions; negative counts from the end",
    )],
    slots: &[slot("input", Role::Data)],
    rule: &PermuteRule,
};

struct PermuteRule;

impl OpRule for PermuteRule {
    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let dims = a.ints("dims");
        let r = x.shape.rank();
        let axes: Option<Vec<usize>> = dims.iter().map(|&d| normalize_axis(d, r)).collect();
        let mut sorted = axes.clone().unwrap_or_default();
        sorted.sort_unstable();
        if dims.len() != r || sorted != (0..r).collect::<Vec<_>>() {
            return Err(format!(
                "Permute dims {dims:?} are not a permutation of the {r} dimensions of input {}",
                x.shape
            ));
        }
        let out = axes.unwrap_or_default().into_iter().map(|i| x.shape.0[i].clone()).collect();
        Ok(Some(ValueInfo::new(x.dtype, Shape(out))))
    }
}

pub(crate) static CONCAT: OpDef = OpDef {
    name: "Concat",
    summary: "joins its inputs along dim (torch.cat)",
    numerics: "the inputs' elements, unchanged, one after another along `dim`.",
    attrs: &[attr("dim", T::Int, D::Int(0), "the dimension joined; negative counts from the end")],
    slots: &[slot("inputs", Role::Variadic)],
    rule: &ConcatRule,
};

struct ConcatRule;

impl OpRule for ConcatRule {
    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let first = ops.input();
        let r = first.shape.rank();
        let dim = normalize_axis(a.int("dim"), r)
            .ok_or_else(|| format!("Concat dim {} is out of range for input {}", a.int("dim"), first.shape))?;
        let mut joined = Vec::new();
        for (i, v) in ops.data.iter().enumerate() {
            if v.dtype != first.dtype {
                return Err(format!("Concat input {i} is {}, input 0 is {}", v.dtype, first.dtype));
            }
            let fits = v.shape.rank() == r
                && v.shape.0.iter().zip(&first.shape.0).enumerate().all(|(k, (x, y))| k == dim || x.compatible(y));
            if !fits {
                return Err(format!(
                    "Concat inputs must match except in dim {}: input 0 is {}, input {i} is {}",
                    a.int("dim"),
                    first.shape,
                    v.shape
                ));
            }
            joined.push(v.shape.0[dim].clone());
        }
        let total = joined.iter().try_fold(0u64, |acc, d| d.fixed().map(|n| acc + n)).map_or(Dim::Unknown, Dim::Fixed);
        let mut dims = first.shape.0.clone();
        dims[dim] = total;
        Ok(Some(ValueInfo::new(first.dtype, Shape(dims))))
    }
}

/// ONNX's (and numpy's) slicing of one dimension of length `len` from
/// `start` to `end` by `step` (not 0): the first index taken, the step and
/// the count. Negative starts and ends count from the end; both are then
/// clamped to the dimension (to `[0, len]` for a positive step, `[-1, len - 1]`
/// for a negative one), so any i64 is a valid bound.
pub fn slice_range(len: u64, start: i64, end: i64, step: i64) -> (i64, i64, u64) {
    let d = i64::try_from(len).unwrap_or(i64::MAX);
    let fix = |v: i64, lo: i64, hi: i64| (if v < 0 { v.saturating_add(d) } else { v }).clamp(lo, hi);
    let (s, e) =
        if step > 0 { (fix(start, 0, d), fix(end, 0, d)) } else { (fix(start, 0, d - 1), fix(end, -1, d - 1)) };
    // Both spans are non-negative and the step's magnitude at least 1.
    let (span, by) = if step > 0 {
        ((e - s).max(0) as u64, step.unsigned_abs())
    } else {
        ((s - e).max(0) as u64, step.unsigned_abs())
    };
    (s, step, span.div_ceil(by))
}

pub(crate) static SLICE: OpDef = OpDef {
    name: "Slice",
    summary: "elements starts[i]..ends[i] by steps[i] along dims[i] (ONNX Slice; Python slicing)",
    numerics: "along each listed dimension of length n, indices `start, start + step, ...` before `end`, where a negative start or end counts from the end and both are clamped to the dimension (`[0, n]` for a positive step, `[-1, n - 1]` for a negative one); other dimensions are kept whole; elements are copied unchanged.",
    attrs: &[
        attr("starts", T::Ints, D::Required, "the first index along each sliced dimension"),
        attr("ends", T::Ints, D::Required, "the end (exclusive) along each sliced dimension"),
        attr("dims", T::Ints, D::Absent, "the sliced dimensions (negative count from the end); absent: 0, 1, ..."),
        attr("steps", T::Ints, D::Absent, "the step along each sliced dimension, not 0; absent: 1"),
    ],
    slots: &[slot("input", Role::Data)],
    rule: &SliceRule,
};

struct SliceRule;

/// The sliced dimensions and steps of a `Slice` node's attributes.
pub fn slice_dims_steps(a: &Attrs) -> (Vec<i64>, Vec<i64>) {
    let n = a.ints("starts").len();
    let dims = match a.get("dims") {
        Some(crate::attr::AttrValue::Ints(d)) => d.clone(),
        _ => (0..n as i64).collect(),
    };
    let steps = match a.get("steps") {
        Some(crate::attr::AttrValue::Ints(s)) => s.clone(),
        _ => vec![1; n],
    };
    (dims, steps)
}

impl OpRule for SliceRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let n = a.ints("starts").len();
        let (dims, steps) = slice_dims_steps(a);
        let mut out = Vec::new();
        for (name, len) in [("ends", a.ints("ends").len()), ("dims", dims.len()), ("steps", steps.len())] {
            if len != n {
                out.push((name, format!("has {len} values, `starts` has {n}")));
            }
        }
        if steps.contains(&0) {
            out.push(("steps", "a step of 0 is not allowed".into()));
        }
        out
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let rank = x.shape.rank();
        let (dims, steps) = slice_dims_steps(a);
        let mut shape = x.shape.0.clone();
        let mut seen = Vec::new();
        for (k, &d) in dims.iter().enumerate() {
            let axis =
                normalize_axis(d, rank).ok_or_else(|| format!("Slice: dim {d} is out of range for {}", x.shape))?;
            if seen.contains(&axis) {
                return Err(format!("Slice: dim {d} is listed twice"));
            }
            seen.push(axis);
            shape[axis] = match &x.shape.0[axis] {
                Dim::Fixed(len) => Dim::Fixed(slice_range(*len, a.ints("starts")[k], a.ints("ends")[k], steps[k]).2),
                _ => Dim::Unknown,
            };
        }
        Ok(Some(ValueInfo::new(x.dtype, Shape(shape))))
    }
}

/// The largest padding a `Pad` adds on one side of a dimension.
const MAX_PAD: i64 = 1 << 24;

pub(crate) static PAD: OpDef = OpDef {
    name: "Pad",
    summary: "adds elements before and after each dimension: a constant, the reflection, the edge, or the wrapped-around input (F.pad; ONNX Pad)",
    numerics: "along a dimension of length n padded by `b` before and `e` after, output index i reads input index `i - b` when it is in [0, n); outside, `constant` gives `value` (cast to the dtype), `reflect` mirrors around the edge element without repeating it (index -k reads k, n - 1 + k reads n - 1 - k), `replicate` reads the nearest edge element, `circular` wraps around (index i reads `i mod n`); elements are copied unchanged.",
    attrs: &[
        attr(
            "padding",
            T::Ints,
            D::Required,
            "2 × rank values, each >= 0: the elements added before each dimension, then after each (ONNX order)",
        ),
        attr(
            "mode",
            T::Choice(&["constant", "reflect", "replicate", "circular"]),
            D::Str("constant"),
            "what the added elements are",
        ),
        attr("value", T::Float, D::Float(0.0), "the added elements in `constant` mode"),
    ],
    slots: &[slot("input", Role::Data)],
    rule: &PadRule,
};

struct PadRule;

impl OpRule for PadRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        match a.ints("padding").iter().find(|&&p| !(0..=MAX_PAD).contains(&p)) {
            Some(p) => vec![("padding", format!("{p} is not between 0 and {MAX_PAD}"))],
            None => Vec::new(),
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let rank = x.shape.rank();
        let padding = a.ints("padding");
        if padding.len() != 2 * rank {
            return Err(format!("Pad: `padding` has {} values, input {} needs {}", padding.len(), x.shape, 2 * rank));
        }
        let reflect = a.str("mode") == "reflect";
        let mut shape = Vec::with_capacity(rank);
        for (d, dim) in x.shape.0.iter().enumerate() {
            let (before, after) = (padding[d] as u64, padding[rank + d] as u64);
            shape.push(match dim {
                Dim::Fixed(n) => {
                    if reflect && (before >= *n || after >= *n) && before + after > 0 {
                        return Err(format!(
                            "Pad: reflecting {before} and {after} elements on dimension {d} of {} needs them below its size",
                            x.shape
                        ));
                    }
                    Dim::Fixed(n + before + after)
                }
                d if before + after == 0 => d.clone(),
                _ => Dim::Unknown,
            });
        }
        Ok(Some(ValueInfo::new(x.dtype, Shape(shape))))
    }
}

pub(crate) static TILE: OpDef = OpDef {
    name: "Tile",
    summary: "the input repeated `repeats[i]` times along each dimension i (torch.Tensor.repeat; ONNX Tile)",
    numerics: "output index `j` along a dimension of length n reads input index `j mod n`; elements are copied unchanged.",
    attrs: &[attr("repeats", T::Ints, D::Required, "one count (>= 0) per dimension of the input")],
    slots: &[slot("input", Role::Data)],
    rule: &TileRule,
};

struct TileRule;

impl OpRule for TileRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        match a.ints("repeats").iter().find(|&&r| !(0..=MAX_PAD).contains(&r)) {
            Some(r) => vec![("repeats", format!("{r} is not between 0 and {MAX_PAD}"))],
            None => Vec::new(),
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let repeats = a.ints("repeats");
        if repeats.len() != x.shape.rank() {
            return Err(format!("Tile: {} repeats for an input of shape {}", repeats.len(), x.shape));
        }
        let shape = x
            .shape
            .0
            .iter()
            .zip(repeats)
            .map(|(d, &r)| match d {
                Dim::Fixed(n) => Dim::Fixed(n * r as u64),
                d if r == 1 => d.clone(),
                _ => Dim::Unknown,
            })
            .collect();
        Ok(Some(ValueInfo::new(x.dtype, Shape(shape))))
    }
}

pub(crate) static EXPAND: OpDef = OpDef {
    name: "Expand",
    summary: "the input broadcast to `sizes` (torch.Tensor.expand; ONNX Expand): -1 keeps a dimension, size-1 dimensions repeat, new ones lead",
    numerics: "aligned from the last dimension, output size `sizes[i]`, or the input's size where `sizes[i]` is -1; an input dimension of size 1 repeats its element, others must equal the output's; leading output dimensions without an input one repeat the whole input; elements are copied unchanged.",
    attrs: &[attr(
        "sizes",
        T::Ints,
        D::Required,
        "the output's sizes; -1 keeps the input's (not for new leading dimensions)",
    )],
    slots: &[slot("input", Role::Data)],
    rule: &ExpandRule,
};

struct ExpandRule;

impl OpRule for ExpandRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        match a.ints("sizes").iter().find(|&&s| !(-1..=MAX_PAD).contains(&s)) {
            Some(s) => vec![("sizes", format!("{s} is not -1 or a size up to {MAX_PAD}"))],
            None => Vec::new(),
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let sizes = a.ints("sizes");
        let lead = sizes
            .len()
            .checked_sub(x.shape.rank())
            .ok_or_else(|| format!("Expand: {} sizes for an input of shape {}", sizes.len(), x.shape))?;
        let mut shape = Vec::with_capacity(sizes.len());
        for (i, &s) in sizes.iter().enumerate() {
            let d = i.checked_sub(lead).map(|k| &x.shape.0[k]);
            shape.push(match (d, s) {
                (None, -1) => return Err(format!("Expand: size -1 at new leading dimension {i}")),
                (None, s) => Dim::Fixed(s as u64),
                (Some(d), -1) => d.clone(),
                (Some(d), s) if d.fixed() == Some(1) || d.compatible(&Dim::Fixed(s as u64)) => Dim::Fixed(s as u64),
                (Some(d), s) => return Err(format!("Expand: dimension {i} of size {d} cannot become {s}")),
            });
        }
        Ok(Some(ValueInfo::new(x.dtype, Shape(shape))))
    }
}
