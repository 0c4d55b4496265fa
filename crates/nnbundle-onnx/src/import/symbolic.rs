//! Shape arithmetic on dynamic dimensions, evaluated at import.
//!
//! `Shape` of a value whose shape holds symbols (a batch, a sequence
//! length) cannot fold to a constant. It becomes [`Dims`]: a vector of
//! sizes, symbols and unknowns, which the usual shape plumbing (`Gather`,
//! `Unsqueeze`, `Concat`, `Slice`, `Cast`, arithmetic...) transforms like
//! a constant. A `Reshape` or `Expand` whose target is such a vector
//! becomes a graph node that keeps the symbols (a copied or kept
//! dimension), so the imported graph runs at any size of them. Once every
//! entry is known the vector is an ordinary constant again.

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{Dim, Shape};

use super::{attr, attr_i, attr_ints};
use crate::proto::NodeProto;
use crate::tensor::dtype_of;

/// One entry of a shape vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sym {
    /// A known integer.
    Known(i64),
    /// A named dimension fixed only when the model runs.
    Symbol(String),
    /// A size derived from symbols by arithmetic.
    Unknown,
}

impl Sym {
    fn of(d: &Dim) -> Sym {
        match d {
            Dim::Fixed(n) => i64::try_from(*n).map_or(Sym::Unknown, Sym::Known),
            Dim::Symbol(s) => Sym::Symbol(s.clone()),
            Dim::Unknown => Sym::Unknown,
        }
    }

    fn known(&self) -> Option<i64> {
        match self {
            Sym::Known(v) => Some(*v),
            _ => None,
        }
    }
}

impl std::fmt::Display for Sym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sym::Known(v) => write!(f, "{v}"),
            Sym::Symbol(s) => f.write_str(s),
            Sym::Unknown => f.write_str("?"),
        }
    }
}

/// An integer vector (or scalar) some of whose entries are not known at import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dims {
    /// The entries.
    pub items: Vec<Sym>,
    /// Rank 0 (one entry) rather than rank 1.
    pub scalar: bool,
    /// The ONNX dtype it has (i64, i32 or bool).
    pub dtype: DType,
}

impl std::fmt::Display for Dims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: Vec<String> = self.items.iter().map(Sym::to_string).collect();
        if self.scalar { f.write_str(&items.join("")) } else { write!(f, "[{}]", items.join(", ")) }
    }
}

impl Dims {
    /// The dimensions of `shape`, the window `[start, end)` of them that
    /// ONNX's `Shape` (opset 15's `start`/`end`, clamped) gives.
    pub fn shape_of(shape: &Shape, node: &NodeProto) -> Dims {
        let rank = shape.rank() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let (start, end) = (clamp(attr_i(node, "start", 0)), clamp(attr_i(node, "end", rank)));
        let items = shape.0[start..end.max(start)].iter().map(Sym::of).collect();
        Dims { items, scalar: false, dtype: DType::I64 }
    }

    /// The element count of `shape` as ONNX's `Size` gives it.
    pub fn size_of(shape: &Shape) -> Dims {
        let n = shape.0.iter().try_fold(1i64, |n, d| d.fixed().and_then(|d| n.checked_mul(i64::try_from(d).ok()?)));
        Dims { items: vec![n.map_or(Sym::Unknown, Sym::Known)], scalar: true, dtype: DType::I64 }
    }

    /// An integer or bool constant of rank 0 or 1 as a vector.
    pub fn of_const(t: &Tensor) -> Option<Dims> {
        if t.shape().len() > 1 {
            return None;
        }
        let items: Vec<i64> = match t.dtype() {
            DType::I64 => t.to_vec::<i64>().ok()?,
            DType::I32 => t.to_vec::<i32>().ok()?.into_iter().map(i64::from).collect(),
            DType::Bool => t.to_vec::<bool>().ok()?.into_iter().map(i64::from).collect(),
            _ => return None,
        };
        Some(Dims {
            items: items.into_iter().map(Sym::Known).collect(),
            scalar: t.shape().is_empty(),
            dtype: t.dtype(),
        })
    }

    /// The constant this is, once every entry is known.
    pub fn to_const(&self) -> Option<Tensor> {
        let v: Vec<i64> = self.items.iter().map(Sym::known).collect::<Option<_>>()?;
        let shape = if self.scalar { vec![] } else { vec![v.len()] };
        match self.dtype {
            DType::I32 => Tensor::from_vec(shape, v.into_iter().map(|x| x as i32).collect::<Vec<_>>()),
            DType::Bool => Tensor::from_vec(shape, v.into_iter().map(|x| x != 0).collect::<Vec<_>>()),
            _ => Tensor::from_vec(shape, v),
        }
        .ok()
    }

    /// The entries as target dimensions: a size, a symbol, or unknown
    /// (`-1` and other negative entries are unknown).
    pub fn target(&self) -> Vec<Dim> {
        self.items
            .iter()
            .map(|s| match s {
                Sym::Known(v) if *v >= 0 => Dim::Fixed(*v as u64),
                Sym::Symbol(s) => Dim::Symbol(s.clone()),
                _ => Dim::Unknown,
            })
            .collect()
    }

    fn with(&self, items: Vec<Sym>, scalar: bool) -> Dims {
        Dims { items, scalar, dtype: self.dtype }
    }
}

/// `node` applied to shape vectors (`None` for an input left out); `Ok(None)`
/// when the op is not one this module applies to them, or the result
/// depends on what the vectors do not know.
pub(crate) fn evaluate(node: &NodeProto, inputs: &[Option<Dims>], opset: i64) -> Result<Option<Dims>, String> {
    let op = node.op_type.as_str();
    let Some(Some(x)) = inputs.first() else { return Ok(None) };
    let ints = |i: usize| -> Option<Vec<i64>> {
        inputs.get(i)?.as_ref()?.items.iter().map(Sym::known).collect::<Option<Vec<_>>>()
    };
    let out = match op {
        "Identity" => x.clone(),
        "Cast" => match dtype_of(attr_i(node, "to", 1) as i32) {
            Some(dtype @ (DType::I64 | DType::I32)) => Dims { dtype, ..x.clone() },
            _ => return Ok(None),
        },
        "Gather" if attr_i(node, "axis", 0) == 0 && !x.scalar => {
            let Some(Some(indices)) = inputs.get(1) else { return Ok(None) };
            let len = x.items.len() as i64;
            let mut items = Vec::new();
            for s in &indices.items {
                let Some(i) = s.known() else { return Ok(None) };
                let j = if i < 0 { i + len } else { i };
                let item = usize::try_from(j).ok().and_then(|j| x.items.get(j));
                items.push(item.ok_or_else(|| format!("Gather index {i} is out of range for size {len}"))?.clone());
            }
            x.with(items, indices.scalar)
        }
        "Unsqueeze" if x.scalar => {
            let axes = if opset >= 13 { ints(1) } else { attr_ints(node, "axes") };
            if !matches!(axes.as_deref(), Some([0] | [-1])) {
                return Ok(None);
            }
            x.with(x.items.clone(), false)
        }
        "Squeeze" if !x.scalar && x.items.len() == 1 => x.with(x.items.clone(), true),
        "Reshape" => match ints(1).as_deref() {
            Some([]) if x.items.len() == 1 => x.with(x.items.clone(), true),
            Some([n]) if *n == -1 || *n == x.items.len() as i64 => x.with(x.items.clone(), false),
            _ => return Ok(None),
        },
        "Concat" if attr(node, "axis").is_some_and(|a| a.i == 0 || a.i == -1) => {
            let mut items = Vec::new();
            for part in inputs {
                match part {
                    Some(p) if !p.scalar => items.extend(p.items.iter().cloned()),
                    _ => return Ok(None),
                }
            }
            x.with(items, false)
        }
        "Slice" if !x.scalar => {
            let (starts, ends, axes, steps) = if opset >= 10 {
                (ints(1), ints(2), ints(3), ints(4))
            } else {
                (attr_ints(node, "starts"), attr_ints(node, "ends"), attr_ints(node, "axes"), None)
            };
            let (Some([start]), Some([end])) = (starts.as_deref(), ends.as_deref()) else { return Ok(None) };
            if !matches!(axes.as_deref(), None | Some([0] | [-1])) {
                return Ok(None);
            }
            let step = match steps.as_deref() {
                None => 1,
                Some([0]) => return Err("Slice with a zero step".into()),
                Some([s]) => *s,
                _ => return Ok(None),
            };
            let (first, step, count) = nnbundle_graph::slice_range(x.items.len() as u64, *start, *end, step);
            let items = (0..count as i64).map(|k| x.items[(first + k * step) as usize].clone()).collect();
            x.with(items, false)
        }
        "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Equal" => {
            let Some(Some(y)) = inputs.get(1) else { return Ok(None) };
            let Some(pairs) = broadcast(x, y) else { return Ok(None) };
            let mut items = Vec::with_capacity(pairs.len());
            for (a, b) in pairs {
                items.push(match arithmetic(op, a, b) {
                    Some(s) => s,
                    // A comparison whose answer is not known cannot fold.
                    None => return Ok(None),
                });
            }
            let dtype = if op == "Equal" { DType::Bool } else { x.dtype };
            Dims { items, scalar: x.scalar && y.scalar, dtype }
        }
        "Where" => {
            let (Some(Some(a)), Some(Some(b))) = (inputs.get(1), inputs.get(2)) else { return Ok(None) };
            let Some(cond) = x.items.iter().map(Sym::known).collect::<Option<Vec<_>>>() else { return Ok(None) };
            let n = [cond.len(), a.items.len(), b.items.len()].into_iter().max().unwrap_or(0);
            let at = |v: &[Sym], i: usize| if v.len() == 1 { v.first().cloned() } else { v.get(i).cloned() };
            let mut items = Vec::with_capacity(n);
            for i in 0..n {
                let c = if cond.len() == 1 { cond.first() } else { cond.get(i) };
                let pick = match c {
                    Some(&c) if c != 0 => at(&a.items, i),
                    Some(_) => at(&b.items, i),
                    None => None,
                };
                items.push(pick.ok_or("Where of vectors that do not broadcast")?);
            }
            Dims { items, scalar: x.scalar && a.scalar && b.scalar, dtype: a.dtype }
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// Element pairs of two vectors under numpy broadcasting (rank 0 or 1).
fn broadcast<'a>(x: &'a Dims, y: &'a Dims) -> Option<Vec<(&'a Sym, &'a Sym)>> {
    let (n, m) = (x.items.len(), y.items.len());
    let len = if n == m || m == 1 {
        n
    } else if n == 1 {
        m
    } else {
        return None;
    };
    Some((0..len).map(|i| (&x.items[if n == 1 { 0 } else { i }], &y.items[if m == 1 { 0 } else { i }])).collect())
}

/// `a op b` on entries; `None` when a comparison's answer is not known.
fn arithmetic(op: &str, a: &Sym, b: &Sym) -> Option<Sym> {
    use Sym::{Known, Unknown};
    Some(match (op, a, b) {
        (_, Known(x), Known(y)) => Known(match op {
            "Add" => x.wrapping_add(*y),
            "Sub" => x.wrapping_sub(*y),
            "Mul" => x.wrapping_mul(*y),
            "Div" => x.checked_div(*y).unwrap_or(0),
            "Max" => *x.max(y),
            "Min" => *x.min(y),
            _ => i64::from(x == y),
        }),
        // A dimension is never negative, so never equal to a negative constant.
        ("Equal", Known(k), _) | ("Equal", _, Known(k)) if *k < 0 => Known(0),
        ("Equal", a, b) if a == b && *a != Unknown => Known(1),
        ("Equal", ..) => return None,
        ("Add" | "Sub", s, Known(0)) | ("Add", Known(0), s) | ("Mul" | "Div", s, Known(1)) | ("Mul", Known(1), s) => {
            s.clone()
        }
        ("Max", s, Known(k)) | ("Max", Known(k), s) if *k <= 0 => s.clone(),
        _ => Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(items: Vec<Sym>) -> Dims {
        Dims { items, scalar: false, dtype: DType::I64 }
    }

    fn node(op: &str) -> NodeProto {
        NodeProto { op_type: op.into(), ..Default::default() }
    }

    fn konst(v: &[i64]) -> Option<Dims> {
        Dims::of_const(&Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap())
    }

    #[test]
    fn torch_reshape_target_keeps_the_batch_symbol() {
        // Shape(x) -> Gather(0) -> Unsqueeze(0) -> Concat([batch], [-1, 64]).
        let shape = dims(vec![Sym::Symbol("batch".into()), Sym::Known(8), Sym::Known(64)]);
        let index = Some(Dims::of_const(&Tensor::scalar(0i64)).unwrap());
        let batch = evaluate(&node("Gather"), &[Some(shape), index], 17).unwrap().unwrap();
        assert!(batch.scalar);
        let axes = konst(&[0]);
        let batch = evaluate(&node("Unsqueeze"), &[Some(batch), axes], 17).unwrap().unwrap();
        let axis = crate::proto::AttributeProto { name: "axis".into(), i: 0, ..Default::default() };
        let concat = NodeProto { attribute: vec![axis], ..node("Concat") };
        let target = evaluate(&concat, &[Some(batch), konst(&[-1, 64])], 17).unwrap().unwrap();
        assert_eq!(target.to_string(), "[batch, -1, 64]");
        assert_eq!(target.to_const(), None);
        assert_eq!(target.target(), vec![Dim::Symbol("batch".into()), Dim::Unknown, Dim::Fixed(64)]);
    }

    #[test]
    fn arithmetic_keeps_what_it_can_and_folds_when_known() {
        let s = || Sym::Symbol("seq".into());
        let x = dims(vec![s(), Sym::Known(6)]);
        let plus = evaluate(&node("Add"), &[Some(x.clone()), konst(&[0, 2])], 17).unwrap().unwrap();
        assert_eq!(plus.items, vec![s(), Sym::Known(8)]);
        let times = evaluate(&node("Mul"), &[Some(x.clone()), konst(&[2])], 17).unwrap().unwrap();
        assert_eq!(times.items, vec![Sym::Unknown, Sym::Known(12)]);
        // Equal against -1 (torch's expand pattern) folds: a dimension is never negative.
        let eq = evaluate(&node("Equal"), &[Some(x.clone()), konst(&[-1])], 17).unwrap().unwrap();
        assert_eq!(eq.to_const().unwrap().to_vec::<bool>().unwrap(), [false, false]);
        // Equal against a size it may or may not have does not fold.
        assert_eq!(evaluate(&node("Equal"), &[Some(x), konst(&[6])], 17).unwrap(), None);
    }

    #[test]
    fn shape_window_and_slice() {
        let shape = Shape(vec![Dim::Symbol("b".into()), Dim::Fixed(3), Dim::Fixed(4)]);
        let start = crate::proto::AttributeProto { name: "start".into(), i: -2, ..Default::default() };
        let tail = Dims::shape_of(&shape, &NodeProto { attribute: vec![start], ..node("Shape") });
        assert_eq!(tail.to_const().unwrap().to_vec::<i64>().unwrap(), [3, 4]);
        let all = Dims::shape_of(&shape, &node("Shape"));
        let reversed =
            evaluate(&node("Slice"), &[Some(all), konst(&[-1]), konst(&[-10]), None, konst(&[-1])], 17).unwrap();
        assert_eq!(reversed.unwrap().to_string(), "[4, 3, b]");
        assert_eq!(Dims::size_of(&shape).items, vec![Sym::Unknown]);
    }
}
