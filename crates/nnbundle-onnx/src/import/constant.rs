//! Constant evaluation at import: ONNX nodes whose operands are all
//! constants (shape arithmetic, `ConstantOfShape`, casts, index plumbing)
//! become constants, so the graph holds only the computation that depends
//! on its inputs.
//!
//! Values are held as f64, i64 or bool vectors whatever their dtype
//! (integers never pass through f64), and converted back to the node's
//! output dtype exactly as a cast of that value would.

use nnbundle_format::{DType, Tensor, bf16, f16};

use super::{attr, attr_i, attr_ints};
use crate::proto::NodeProto;
use crate::tensor::{dtype_of, from_proto};

/// Elements above which a folded constant is refused (the graph would
/// store it as a weight): 64 Mi elements.
const MAX_FOLDED_ELEMENTS: usize = 1 << 26;

/// A constant's elements by kind.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    F(Vec<f64>),
    I(Vec<i64>),
    B(Vec<bool>),
}

/// A constant being evaluated: dtype, shape and elements in C order.
#[derive(Debug, Clone, PartialEq)]
struct Arr {
    dtype: DType,
    shape: Vec<usize>,
    data: Data,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Arr {
    fn of(t: &Tensor) -> Result<Arr, String> {
        let data = match t.dtype() {
            DType::F32 => Data::F(t.to_vec::<f32>().map_err(err)?.into_iter().map(f64::from).collect()),
            DType::F64 => Data::F(t.to_vec::<f64>().map_err(err)?),
            DType::F16 => Data::F(t.to_vec::<f16>().map_err(err)?.into_iter().map(f64::from).collect()),
            DType::BF16 => Data::F(t.to_vec::<bf16>().map_err(err)?.into_iter().map(f64::from).collect()),
            DType::I64 => Data::I(t.to_vec::<i64>().map_err(err)?),
            DType::I32 => Data::I(t.to_vec::<i32>().map_err(err)?.into_iter().map(i64::from).collect()),
            DType::I16 => Data::I(t.to_vec::<i16>().map_err(err)?.into_iter().map(i64::from).collect()),
            DType::I8 => Data::I(t.to_vec::<i8>().map_err(err)?.into_iter().map(i64::from).collect()),
            DType::U8 => Data::I(t.to_vec::<u8>().map_err(err)?.into_iter().map(i64::from).collect()),
            DType::Bool => Data::B(t.to_vec::<bool>().map_err(err)?),
        };
        Ok(Arr { dtype: t.dtype(), shape: t.shape().to_vec(), data })
    }

    fn len(&self) -> usize {
        match &self.data {
            Data::F(v) => v.len(),
            Data::I(v) => v.len(),
            Data::B(v) => v.len(),
        }
    }

    /// The elements as f64 (bools as 0 and 1).
    fn floats(&self) -> Vec<f64> {
        match &self.data {
            Data::F(v) => v.clone(),
            Data::I(v) => v.iter().map(|&x| x as f64).collect(),
            Data::B(v) => v.iter().map(|&b| f64::from(u8::from(b))).collect(),
        }
    }

    /// The elements as i64 (floats truncated toward zero, as a cast does).
    fn ints(&self) -> Vec<i64> {
        match &self.data {
            Data::F(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I(v) => v.clone(),
            Data::B(v) => v.iter().map(|&b| i64::from(b)).collect(),
        }
    }

    fn bools(&self) -> Vec<bool> {
        match &self.data {
            Data::F(v) => v.iter().map(|&x| x != 0.0).collect(),
            Data::I(v) => v.iter().map(|&x| x != 0).collect(),
            Data::B(v) => v.clone(),
        }
    }

    /// This value converted to `dtype` as ONNX's Cast converts it.
    fn cast(&self, dtype: DType) -> Arr {
        let data = if dtype.is_float() {
            Data::F(self.floats())
        } else if dtype == DType::Bool {
            Data::B(self.bools())
        } else {
            Data::I(self.ints())
        };
        Arr { dtype, shape: self.shape.clone(), data }
    }

    fn tensor(&self) -> Result<Tensor, String> {
        let shape = self.shape.clone();
        let t = match (self.dtype, &self.data) {
            (DType::F32, Data::F(v)) => Tensor::from_vec(shape, v.iter().map(|&x| x as f32).collect::<Vec<_>>()),
            (DType::F64, Data::F(v)) => Tensor::from_vec(shape, v.clone()),
            (DType::F16, Data::F(v)) => {
                Tensor::from_vec(shape, v.iter().map(|&x| f16::from_f64(x)).collect::<Vec<_>>())
            }
            (DType::BF16, Data::F(v)) => {
                Tensor::from_vec(shape, v.iter().map(|&x| bf16::from_f64(x)).collect::<Vec<_>>())
            }
            (DType::I64, Data::I(v)) => Tensor::from_vec(shape, v.clone()),
            (DType::I32, Data::I(v)) => Tensor::from_vec(shape, v.iter().map(|&x| x as i32).collect::<Vec<_>>()),
            (DType::I16, Data::I(v)) => Tensor::from_vec(shape, v.iter().map(|&x| x as i16).collect::<Vec<_>>()),
            (DType::I8, Data::I(v)) => Tensor::from_vec(shape, v.iter().map(|&x| x as i8).collect::<Vec<_>>()),
            (DType::U8, Data::I(v)) => Tensor::from_vec(shape, v.iter().map(|&x| x as u8).collect::<Vec<_>>()),
            (DType::Bool, Data::B(v)) => Tensor::from_vec(shape, v.clone()),
            (dtype, _) => return self.cast(dtype).tensor(),
        };
        t.map_err(err)
    }

    /// This value's elements then `other`'s (as this dtype), flat.
    fn followed_by(&self, other: &Arr) -> Arr {
        let data = match &self.data {
            Data::F(v) => Data::F([v.clone(), other.floats()].concat()),
            Data::I(v) => Data::I([v.clone(), other.ints()].concat()),
            Data::B(v) => Data::B([v.clone(), other.bools()].concat()),
        };
        Arr { dtype: self.dtype, shape: vec![self.len() + other.len()], data }
    }

    /// The elements at `indices` (C-order positions) under `shape`.
    fn pick(&self, shape: Vec<usize>, indices: impl Iterator<Item = usize>) -> Arr {
        let data = match &self.data {
            Data::F(v) => Data::F(indices.map(|i| v[i]).collect()),
            Data::I(v) => Data::I(indices.map(|i| v[i]).collect()),
            Data::B(v) => Data::B(indices.map(|i| v[i]).collect()),
        };
        Arr { dtype: self.dtype, shape, data }
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_FOLDED_ELEMENTS)
        .ok_or_else(|| format!("a folded constant of shape {shape:?} is above {MAX_FOLDED_ELEMENTS} elements"))
}

/// numpy broadcasting of several shapes.
fn broadcast(shapes: &[&[usize]]) -> Result<Vec<usize>, String> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..rank)
        .map(|i| {
            let dims = shapes.iter().map(|s| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 });
            dims.clone().filter(|&d| d != 1).try_fold(1, |acc, d| match acc {
                1 => Ok(d),
                a if a == d => Ok(a),
                _ => Err(format!("shapes {shapes:?} do not broadcast")),
            })
        })
        .collect()
}

/// For each output position of `out`, the position in an operand of `shape` broadcast to it.
fn broadcast_index(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let (src, rank) = (strides(shape), out.len());
    let n: usize = out.iter().product();
    let out_strides = strides(out);
    (0..n)
        .map(|flat| {
            (0..rank)
                .filter(|&i| i + shape.len() >= rank)
                .map(|i| {
                    let j = i + shape.len() - rank;
                    let coord = flat / out_strides[i] % out[i];
                    if shape[j] == 1 { 0 } else { coord * src[j] }
                })
                .sum()
        })
        .collect()
}

/// An axis in `[-rank, rank)` as a position.
fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let p = if a < 0 { a + r } else { a };
    usize::try_from(p).ok().filter(|&p| p < rank).ok_or_else(|| format!("axis {a} is out of range for rank {rank}"))
}

/// The integers of a constant operand (axes, shapes, indices).
fn ints_of(t: Option<&Tensor>, what: &str) -> Result<Vec<i64>, String> {
    Arr::of(t.ok_or_else(|| format!("{what} is missing"))?).map(|a| a.ints())
}

/// Elementwise `f` over broadcast operands, the output of dtype `dtype`.
fn zip_with(args: &[Arr], dtype: DType, f: impl Fn(&[&Arr], &[usize]) -> Data) -> Result<Arr, String> {
    let shapes: Vec<&[usize]> = args.iter().map(|a| a.shape.as_slice()).collect();
    let shape = broadcast(&shapes)?;
    element_count(&shape)?;
    let index: Vec<Vec<usize>> = args.iter().map(|a| broadcast_index(&a.shape, &shape)).collect();
    let refs: Vec<&Arr> = args.iter().collect();
    let n: usize = shape.iter().product();
    // `f` sees each operand and, per output element in turn, the operands' positions.
    let flat: Vec<usize> = (0..n).flat_map(|i| index.iter().map(move |ix| ix[i])).collect();
    Ok(Arr { dtype, shape, data: f(&refs, &flat) })
}

/// Arithmetic on two broadcast operands of one dtype.
fn arithmetic(op: &str, a: &Arr, b: &Arr) -> Result<Arr, String> {
    let both = [a.clone(), b.clone()];
    let int = !a.dtype.is_float() && a.dtype != DType::Bool;
    zip_with(&both, a.dtype, |v, ix| {
        let pairs = ix.chunks_exact(2);
        if int {
            let (x, y) = (v[0].ints(), v[1].ints());
            Data::I(
                pairs
                    .map(|p| {
                        let (x, y) = (x[p[0]], y[p[1]]);
                        match op {
                            "Add" => x.wrapping_add(y),
                            "Sub" => x.wrapping_sub(y),
                            "Mul" => x.wrapping_mul(y),
                            // ONNX integer division truncates; a zero divisor gives 0 here rather than a fault.
                            "Div" => x.checked_div(y).unwrap_or(0),
                            "Mod" => x.checked_rem_euclid(y).map_or(0, |r| if y < 0 && r != 0 { r + y } else { r }),
                            "Max" => x.max(y),
                            "Min" => x.min(y),
                            _ => x.pow(u32::try_from(y).unwrap_or(0)),
                        }
                    })
                    .collect(),
            )
        } else {
            let (x, y) = (v[0].floats(), v[1].floats());
            Data::F(
                pairs
                    .map(|p| {
                        let (x, y) = (x[p[0]], y[p[1]]);
                        match op {
                            "Add" => x + y,
                            "Sub" => x - y,
                            "Mul" => x * y,
                            "Div" => x / y,
                            "Mod" => x % y,
                            "Max" => x.max(y),
                            "Min" => x.min(y),
                            _ => x.powf(y),
                        }
                    })
                    .collect(),
            )
        }
    })
}

/// A comparison of two broadcast operands: bools.
fn compare(op: &str, a: &Arr, b: &Arr) -> Result<Arr, String> {
    let both = [a.clone(), b.clone()];
    let float = a.dtype.is_float() || b.dtype.is_float();
    zip_with(&both, DType::Bool, |v, ix| {
        let cmp = |p: &[usize]| -> std::cmp::Ordering {
            if float {
                v[0].floats()[p[0]].partial_cmp(&v[1].floats()[p[1]]).unwrap_or(std::cmp::Ordering::Less)
            } else {
                v[0].ints()[p[0]].cmp(&v[1].ints()[p[1]])
            }
        };
        Data::B(
            ix.chunks_exact(2)
                .map(|p| match op {
                    "Equal" => cmp(p).is_eq(),
                    "Less" => cmp(p).is_lt(),
                    "LessOrEqual" => cmp(p).is_le(),
                    "Greater" => cmp(p).is_gt(),
                    _ => cmp(p).is_ge(),
                })
                .collect(),
        )
    })
}

/// The ONNX ops this module evaluates on constants.
pub(crate) const FOLDABLE: &[&str] = &[
    "Identity",
    "Transpose",
    "Reshape",
    "Flatten",
    "ConstantOfShape",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Cast",
    "Gather",
    "Shape",
    "Size",
    "Slice",
    "Range",
    "Expand",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Mod",
    "Pow",
    "Max",
    "Min",
    "Neg",
    "Abs",
    "Sqrt",
    "Floor",
    "Ceil",
    "Not",
    "And",
    "Or",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "Where",
];

/// Evaluates `node` on constant operands (`None` for an input left out);
/// `Ok(None)` when the op is not one this module evaluates.
pub(crate) fn evaluate(node: &NodeProto, operands: &[Option<&Tensor>], opset: i64) -> Result<Option<Tensor>, String> {
    let op = node.op_type.as_str();
    if !FOLDABLE.contains(&op) {
        return Ok(None);
    }
    let arr = |i: usize| -> Result<Arr, String> {
        Arr::of(operands.get(i).copied().flatten().ok_or_else(|| format!("{op} needs input {i}"))?)
    };
    let x = if op == "ConstantOfShape" || op == "Range" { None } else { Some(arr(0)?) };
    let out = match op {
        "Identity" => x.unwrap(),
        "Transpose" => {
            let x = x.unwrap();
            let rank = x.shape.len();
            let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
            let perm: Vec<usize> = perm.iter().map(|&p| axis(p, rank)).collect::<Result<_, _>>()?;
            return arr_tensor(&x)?.permuted(&perm).map(Some).map_err(err);
        }
        "Reshape" | "Flatten" => {
            let x = x.unwrap();
            let shape = if op == "Flatten" {
                let a = attr_i(node, "axis", 1);
                let a = if a < 0 { a + x.shape.len() as i64 } else { a };
                let a = usize::try_from(a).ok().filter(|&a| a <= x.shape.len()).ok_or("Flatten axis out of range")?;
                vec![x.shape[..a].iter().product(), x.shape[a..].iter().product()]
            } else {
                let target = match operands.get(1).copied().flatten() {
                    Some(t) => ints_of(Some(t), "Reshape's shape")?,
                    None => attr_ints(node, "shape").ok_or("Reshape needs a shape")?,
                };
                reshape_target(&x.shape, &target, attr_i(node, "allowzero", 0) != 0)?
            };
            return arr_tensor(&x)?.reshaped(shape).map(Some).map_err(err);
        }
        "ConstantOfShape" => {
            let shape: Vec<usize> = ints_of(operands.first().copied().flatten(), "ConstantOfShape's shape")?
                .into_iter()
                .map(|d| usize::try_from(d).map_err(|_| format!("ConstantOfShape size {d} is negative")))
                .collect::<Result<_, _>>()?;
            let n = element_count(&shape)?;
            let value = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                Some(t) => Arr::of(&from_proto(t)?)?,
                None => Arr { dtype: DType::F32, shape: vec![1], data: Data::F(vec![0.0]) },
            };
            if value.len() != 1 {
                return Err("ConstantOfShape's value must hold one element".into());
            }
            value.pick(shape, std::iter::repeat_n(0, n))
        }
        "Unsqueeze" => {
            let x = x.unwrap();
            let axes = if opset >= 13 {
                ints_of(operands.get(1).copied().flatten(), "Unsqueeze's axes")?
            } else {
                attr_ints(node, "axes").ok_or("Unsqueeze needs `axes`")?
            };
            let rank = x.shape.len() + axes.len();
            let mut at: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
            at.sort_unstable();
            let mut shape = x.shape.clone();
            for a in at {
                shape.insert(a, 1);
            }
            Arr { shape, ..x }
        }
        "Squeeze" => {
            let x = x.unwrap();
            let axes = if opset >= 13 {
                operands.get(1).copied().flatten().map(|t| ints_of(Some(t), "axes")).transpose()?
            } else {
                attr_ints(node, "axes")
            };
            let drop: Vec<usize> = match axes {
                Some(axes) => axes.iter().map(|&a| axis(a, x.shape.len())).collect::<Result<_, _>>()?,
                None => (0..x.shape.len()).filter(|&i| x.shape[i] == 1).collect(),
            };
            if drop.iter().any(|&a| x.shape[a] != 1) {
                return Err(format!("Squeeze of axes {drop:?} of shape {:?}: not all are 1", x.shape));
            }
            let shape = x.shape.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, &d)| d).collect();
            Arr { shape, ..x }
        }
        "Concat" => {
            let parts: Vec<Arr> = (0..operands.len()).map(&arr).collect::<Result<_, _>>()?;
            let first = &parts[0];
            let a = axis(attr(node, "axis").map(|a| a.i).ok_or("Concat needs `axis`")?, first.shape.len())?;
            for p in &parts {
                if p.shape.len() != first.shape.len()
                    || p.shape.iter().zip(&first.shape).enumerate().any(|(i, (x, y))| i != a && x != y)
                {
                    return Err(format!("Concat of shapes {:?} and {:?} along axis {a}", first.shape, p.shape));
                }
            }
            let mut shape = first.shape.clone();
            shape[a] = parts.iter().map(|p| p.shape[a]).sum();
            element_count(&shape)?;
            let outer: usize = first.shape[..a].iter().product();
            // Outer block o of the output is block o of each part in turn.
            let parts: Vec<Arr> = parts.iter().map(|p| p.cast(first.dtype)).collect();
            let blocks: Vec<(usize, usize)> = (0..outer).flat_map(|o| (0..parts.len()).map(move |k| (k, o))).collect();
            let block = |k: usize, o: usize| {
                let len = parts[k].len() / outer.max(1);
                o * len..(o + 1) * len
            };
            let data = match &parts[0].data {
                Data::F(_) => {
                    Data::F(blocks.iter().flat_map(|&(k, o)| parts[k].floats()[block(k, o)].to_vec()).collect())
                }
                Data::I(_) => {
                    Data::I(blocks.iter().flat_map(|&(k, o)| parts[k].ints()[block(k, o)].to_vec()).collect())
                }
                Data::B(_) => {
                    Data::B(blocks.iter().flat_map(|&(k, o)| parts[k].bools()[block(k, o)].to_vec()).collect())
                }
            };
            Arr { dtype: parts[0].dtype, shape, data }
        }
        "Cast" => {
            let to = attr_i(node, "to", 1);
            let dtype =
                dtype_of(to as i32).ok_or_else(|| format!("Cast to ONNX type {to}, which has no nnbundle dtype"))?;
            x.unwrap().cast(dtype)
        }
        "Gather" => {
            let x = x.unwrap();
            let indices = arr(1)?;
            let a = axis(attr_i(node, "axis", 0), x.shape.len())?;
            let size = x.shape[a] as i64;
            let idx: Vec<usize> = indices
                .ints()
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + size } else { i };
                    usize::try_from(j)
                        .ok()
                        .filter(|&j| j < x.shape[a])
                        .ok_or_else(|| format!("Gather index {i} is out of range for size {size}"))
                })
                .collect::<Result<_, _>>()?;
            let mut shape = x.shape[..a].to_vec();
            shape.extend(&indices.shape);
            shape.extend(&x.shape[a + 1..]);
            element_count(&shape)?;
            let (outer, inner): (usize, usize) = (x.shape[..a].iter().product(), x.shape[a + 1..].iter().product());
            let len = x.shape[a];
            let positions = (0..outer)
                .flat_map(|o| idx.iter().flat_map(move |&j| (0..inner).map(move |i| (o * len + j) * inner + i)));
            x.pick(shape, positions.collect::<Vec<_>>().into_iter())
        }
        "Shape" => {
            let shape = nnbundle_graph::Shape::fixed(&x.unwrap().shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
            return Ok(super::symbolic::Dims::shape_of(&shape, node).to_const());
        }
        "Size" => Arr { dtype: DType::I64, shape: vec![], data: Data::I(vec![x.unwrap().len() as i64]) },
        "Slice" => slice(node, x.unwrap(), operands, opset)?,
        "Range" => {
            let (start, limit, delta) = (arr(0)?, arr(1)?, arr(2)?);
            let dtype = start.dtype;
            if dtype.is_float() {
                let (s, l, d) = (start.floats()[0], limit.floats()[0], delta.floats()[0]);
                let n = ((l - s) / d).ceil().max(0.0) as usize;
                element_count(&[n])?;
                Arr { dtype, shape: vec![n], data: Data::F((0..n).map(|i| s + i as f64 * d).collect()) }
            } else {
                let (s, l, d) = (start.ints()[0], limit.ints()[0], delta.ints()[0]);
                if d == 0 {
                    return Err("Range with a zero step".into());
                }
                let n = usize::try_from((l - s + d - d.signum()) / d).unwrap_or(0);
                element_count(&[n])?;
                Arr { dtype, shape: vec![n], data: Data::I((0..n as i64).map(|i| s + i * d).collect()) }
            }
        }
        "Expand" => {
            let x = x.unwrap();
            let target: Vec<usize> = ints_of(operands.get(1).copied().flatten(), "Expand's shape")?
                .into_iter()
                .map(|d| usize::try_from(d).map_err(|_| format!("Expand size {d} is negative")))
                .collect::<Result<_, _>>()?;
            let shape = broadcast(&[&x.shape, &target])?;
            element_count(&shape)?;
            let index = broadcast_index(&x.shape, &shape);
            x.pick(shape, index.into_iter())
        }
        "Add" | "Sub" | "Mul" | "Div" | "Mod" | "Pow" | "Max" | "Min" => {
            let (a, b) = (x.unwrap(), arr(1)?);
            let b = if op == "Pow" { b } else { b.cast(a.dtype) };
            arithmetic(op, &a, &b)?
        }
        "Neg" | "Abs" | "Sqrt" | "Floor" | "Ceil" => {
            let x = x.unwrap();
            let data = match &x.data {
                Data::I(v) => Data::I(
                    v.iter()
                        .map(|&i| {
                            if op == "Neg" {
                                -i
                            } else if op == "Abs" {
                                i.abs()
                            } else {
                                i
                            }
                        })
                        .collect(),
                ),
                _ => Data::F(
                    x.floats()
                        .iter()
                        .map(|&f| match op {
                            "Neg" => -f,
                            "Abs" => f.abs(),
                            "Sqrt" => f.sqrt(),
                            "Floor" => f.floor(),
                            _ => f.ceil(),
                        })
                        .collect(),
                ),
            };
            Arr { data, ..x }
        }
        "Not" => {
            let x = x.unwrap();
            Arr { data: Data::B(x.bools().iter().map(|b| !b).collect()), ..x }
        }
        "And" | "Or" => {
            let both = [x.unwrap(), arr(1)?];
            zip_with(&both, DType::Bool, |v, ix| {
                let (a, b) = (v[0].bools(), v[1].bools());
                Data::B(
                    ix.chunks_exact(2)
                        .map(|p| if op == "And" { a[p[0]] && b[p[1]] } else { a[p[0]] || b[p[1]] })
                        .collect(),
                )
            })?
        }
        "Equal" | "Less" | "LessOrEqual" | "Greater" | "GreaterOrEqual" => compare(op, &x.unwrap(), &arr(1)?)?,
        "Where" => {
            let (c, a, b) = (x.unwrap(), arr(1)?, arr(2)?);
            // Both branches in one vector (b as a's dtype): a's elements, then b's.
            let offset = a.len();
            let both = a.followed_by(&b);
            let all = [c, a, b];
            zip_with(&all, both.dtype, |v, ix| {
                let cond = v[0].bools();
                let picks = ix.chunks_exact(3).map(|p| if cond[p[0]] { p[1] } else { offset + p[2] });
                both.pick(Vec::new(), picks).data
            })?
        }
        _ => return Ok(None),
    };
    out.tensor().map(Some)
}

fn arr_tensor(x: &Arr) -> Result<Tensor, String> {
    x.tensor()
}

/// The shape ONNX's Reshape gives `shape` for `target` (0 copies the input's
/// size unless `allow_zero`, one -1 takes what is left).
pub(crate) fn reshape_target(shape: &[usize], target: &[i64], allow_zero: bool) -> Result<Vec<usize>, String> {
    let total: usize = shape.iter().product();
    let mut known: usize = 1;
    let mut dims = Vec::with_capacity(target.len());
    for (i, &d) in target.iter().enumerate() {
        let size = match d {
            0 if !allow_zero => Some(*shape.get(i).ok_or("Reshape copies a dimension the input does not have")?),
            -1 => None,
            d if d >= 0 => Some(usize::try_from(d).map_err(|_| "Reshape size too large")?),
            d => return Err(format!("Reshape size {d} is not allowed")),
        };
        if let Some(s) = size {
            known = known.checked_mul(s).ok_or("Reshape sizes overflow")?;
        }
        dims.push(size);
    }
    if dims.iter().filter(|d| d.is_none()).count() > 1 {
        return Err(format!("Reshape target {target:?} has more than one -1"));
    }
    let fill = total.checked_div(known).unwrap_or(0);
    let dims: Vec<usize> = dims.into_iter().map(|d| d.unwrap_or(fill)).collect();
    if dims.iter().product::<usize>() != total {
        return Err(format!("Reshape of shape {shape:?} to {target:?}: element counts differ"));
    }
    Ok(dims)
}

/// ONNX Slice on a constant: starts, ends, axes and steps from inputs
/// (opset 10+) or attributes (before), clamped as ONNX clamps them.
fn slice(node: &NodeProto, x: Arr, operands: &[Option<&Tensor>], opset: i64) -> Result<Arr, String> {
    let rank = x.shape.len();
    let (starts, ends, axes, steps) = if opset >= 10 {
        let get = |i: usize| operands.get(i).copied().flatten().map(|t| ints_of(Some(t), "Slice operand")).transpose();
        (get(1)?.ok_or("Slice needs starts")?, get(2)?.ok_or("Slice needs ends")?, get(3)?, get(4)?)
    } else {
        (
            attr_ints(node, "starts").ok_or("Slice needs starts")?,
            attr_ints(node, "ends").ok_or("Slice needs ends")?,
            attr_ints(node, "axes"),
            None,
        )
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("Slice's starts, ends, axes and steps differ in length".into());
    }
    // Per axis: the first index, the step and the count.
    let mut ranges: Vec<(i64, i64, usize)> = x.shape.iter().map(|&d| (0, 1, d)).collect();
    for (((&s, &e), &a), &st) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
        let a = axis(a, rank)?;
        if st == 0 {
            return Err("Slice with a zero step".into());
        }
        let (first, step, count) = nnbundle_graph::slice_range(x.shape[a] as u64, s, e, st);
        ranges[a] = (first, step, count as usize);
    }
    let shape: Vec<usize> = ranges.iter().map(|r| r.2).collect();
    let n = element_count(&shape)?;
    let src = strides(&x.shape);
    let out = strides(&shape);
    let positions: Vec<usize> = (0..n)
        .map(|flat| {
            (0..rank)
                .map(|i| {
                    let k = (flat / out[i] % shape[i]) as i64;
                    (ranges[i].0 + k * ranges[i].1) as usize * src[i]
                })
                .sum()
        })
        .collect();
    Ok(x.pick(shape, positions.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AttributeProto, attribute_type};

    fn node(op: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto { op_type: op.into(), attribute: attrs, ..Default::default() }
    }

    fn ints_attr(name: &str, ints: Vec<i64>) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: attribute_type::INTS, ints, ..Default::default() }
    }

    fn run(n: &NodeProto, inputs: &[Option<&Tensor>]) -> Tensor {
        evaluate(n, inputs, 17).unwrap().expect("evaluated")
    }

    #[test]
    fn where_picks_each_element_from_its_branch_with_broadcasting() {
        let cond = Tensor::from_vec(vec![2, 1], vec![true, false]).unwrap();
        let a = Tensor::from_vec(vec![2, 2], vec![1i64, 2, 3, 4]).unwrap();
        let b = Tensor::from_vec(vec![2], vec![10i32, 20]).unwrap();
        let y = run(&node("Where", vec![]), &[Some(&cond), Some(&a), Some(&b)]);
        assert_eq!((y.dtype(), y.shape()), (DType::I64, &[2usize, 2][..]));
        assert_eq!(y.to_vec::<i64>().unwrap(), [1, 2, 10, 20]);
    }

    #[test]
    fn shape_plumbing_folds_as_onnx_defines_it() {
        let x = Tensor::from_vec(vec![2, 3], (0..6i64).collect::<Vec<_>>()).unwrap();
        // Gather of column 2 with a negative index: [2, 5].
        let idx = Tensor::scalar(-1i64);
        let mut gather = node("Gather", vec![]);
        gather.attribute.push(AttributeProto {
            name: "axis".into(),
            r#type: attribute_type::INT,
            i: 1,
            ..Default::default()
        });
        assert_eq!(run(&gather, &[Some(&x), Some(&idx)]).to_vec::<i64>().unwrap(), [2, 5]);
        // Slice from the end backwards by 2 along axis 1: [[2, 0], [5, 3]].
        let (s, e, a, st) = (
            Tensor::from_vec(vec![1], vec![-1i64]).unwrap(),
            Tensor::from_vec(vec![1], vec![i64::MIN]).unwrap(),
            Tensor::from_vec(vec![1], vec![1i64]).unwrap(),
            Tensor::from_vec(vec![1], vec![-2i64]).unwrap(),
        );
        let y = run(&node("Slice", vec![]), &[Some(&x), Some(&s), Some(&e), Some(&a), Some(&st)]);
        assert_eq!((y.shape(), y.to_vec::<i64>().unwrap()), (&[2usize, 2][..], vec![2, 0, 5, 3]));
        // Unsqueeze (axes as an input from opset 13) and Concat along the new axis.
        let axes = Tensor::from_vec(vec![1], vec![0i64]).unwrap();
        let u = run(&node("Unsqueeze", vec![]), &[Some(&x), Some(&axes)]);
        assert_eq!(u.shape(), [1, 2, 3]);
        let mut concat = node("Concat", vec![]);
        concat.attribute.push(AttributeProto {
            name: "axis".into(),
            r#type: attribute_type::INT,
            i: 0,
            ..Default::default()
        });
        let c = run(&concat, &[Some(&u), Some(&u)]);
        assert_eq!(
            (c.shape(), c.to_vec::<i64>().unwrap()[6..].to_vec()),
            (&[2usize, 2, 3][..], vec![0, 1, 2, 3, 4, 5])
        );
        // ConstantOfShape without a value: f32 zeros.
        let shape = Tensor::from_vec(vec![2], vec![2i64, 1]).unwrap();
        let z = run(&node("ConstantOfShape", vec![]), &[Some(&shape)]);
        assert_eq!((z.dtype(), z.to_vec::<f32>().unwrap()), (DType::F32, vec![0.0, 0.0]));
        // Squeeze with attribute axes before opset 13.
        let sq = evaluate(&node("Squeeze", vec![ints_attr("axes", vec![0])]), &[Some(&u)], 11).unwrap().unwrap();
        assert_eq!(sq.shape(), [2, 3]);
    }

    #[test]
    fn bad_constants_are_errors_naming_the_problem() {
        let x = Tensor::from_vec(vec![3], vec![1i64, 2, 3]).unwrap();
        let mut gather = node("Gather", vec![]);
        gather.attribute.push(AttributeProto {
            name: "axis".into(),
            r#type: attribute_type::INT,
            i: 0,
            ..Default::default()
        });
        let idx = Tensor::scalar(3i64);
        assert_eq!(
            evaluate(&gather, &[Some(&x), Some(&idx)], 17).unwrap_err(),
            "Gather index 3 is out of range for size 3"
        );
        let huge = Tensor::from_vec(vec![2], vec![1i64 << 20, 1 << 20]).unwrap();
        let err = evaluate(&node("ConstantOfShape", vec![]), &[Some(&huge)], 17).unwrap_err();
        assert!(err.contains("above 67108864 elements"), "{err}");
    }
}
