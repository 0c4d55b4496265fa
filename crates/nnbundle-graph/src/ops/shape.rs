//! Shape ops: `Flatten`, `Reshape`, `Permute`, `Concat`, and the identities `Dropout`, `Identity`.

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
    attrs: &[],
    slots: &[slot("input", Role::Data)],
    rule: &Same,
};

pub(crate) static DROPOUT: OpDef = OpDef {
    name: "Dropout",
    summary: "identity at inference (p is kept for the record)",
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
    summary: "same elements, C order, new shape; one -1 is inferred",
    attrs: &[attr("shape", T::Ints, D::Required, "the new shape; sizes >= 0, at most one -1")],
    slots: &[slot("input", Role::Data)],
    rule: &ReshapeRule,
};

struct ReshapeRule;

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
        let known: u64 = target.iter().filter(|&&d| d >= 0).map(|&d| d as u64).product();
        let whole = product(&x.shape.0);
        let wild = target.iter().position(|&d| d == -1);
        let resolved = match (&whole, wild) {
            (Dim::Fixed(n), None) if *n != known => {
                return Err(format!("Reshape to {target:?} needs {known} elements, input {} has {n}", x.shape));
            }
            (Dim::Fixed(n), Some(_)) if known == 0 || n % known != 0 => {
                return Err(format!("Reshape cannot fit input {} ({n} elements) into {target:?}", x.shape));
            }
            (Dim::Fixed(n), Some(_)) => Dim::Fixed(n / known),
            // [batch, 3, 4] -> [-1, 12]: the symbol survives when the known parts agree.
            _ => {
                let in_known: u64 = x.shape.0.iter().filter_map(Dim::fixed).product();
                let symbols: Vec<&Dim> = x.shape.0.iter().filter(|d| d.fixed().is_none()).collect();
                match symbols.as_slice() {
                    [Dim::Symbol(s)] if in_known == known => Dim::Symbol(s.clone()),
                    _ => Dim::Unknown,
                }
            }
        };
        let dims = target.iter().map(|&d| if d == -1 { resolved.clone() } else { Dim::Fixed(d as u64) }).collect();
        Ok(Some(ValueInfo::new(x.dtype, Shape(dims))))
    }
}

pub(crate) static PERMUTE: OpDef = OpDef {
    name: "Permute",
    summary: "reorders dimensions: output dim i is input dim dims[i]",
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
