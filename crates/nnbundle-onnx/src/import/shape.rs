//! ONNX constants, pass-throughs and shape ops.

use nnbundle_graph::{AttrValue, Dim, OpKind};

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr, attr_f, attr_i, attr_ints, attr_s, symbolic};
use crate::proto::NodeProto;
use crate::tensor::from_proto;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
    Translator { onnx: "Constant", produces: &[], translate: constant },
    Translator {
        onnx: "Identity",
        produces: &[OpKind::Identity],
        translate: |im, n| im.add(n.hint, OpKind::Identity, vec![], vec![n.arg(0)?]).map(Some),
    },
    Translator { onnx: "Dropout", produces: &[OpKind::Dropout], translate: dropout },
    Translator {
        onnx: "Flatten",
        produces: &[OpKind::Flatten],
        translate: |im, n| im.flatten(n.hint, n.arg(0)?, attr_i(n.proto, "axis", 1)).map(Some),
    },
    Translator {
        onnx: "Reshape",
        produces: &[OpKind::Reshape],
        translate: |im, n| im.reshape(n.proto, n.hint, n.arg(0)?, n.operands.get(1).cloned()).map(Some),
    },
    Translator {
        onnx: "Transpose",
        produces: &[OpKind::Permute],
        translate: |im, n| {
            let rank = im.rank(&n.arg(0)?).ok_or("Transpose needs its input's rank")? as i64;
            let perm = attr_ints(n.proto, "perm").unwrap_or_else(|| (0..rank).rev().collect());
            im.add(n.hint, OpKind::Permute, vec![("dims", AttrValue::Ints(perm))], vec![n.arg(0)?]).map(Some)
        },
    },
    Translator { onnx: "Slice", produces: &[OpKind::Slice], translate: slice },
    Translator { onnx: "Pad", produces: &[OpKind::Pad], translate: pad },
    Translator { onnx: "Split", produces: &[OpKind::Slice], translate: split },
    Translator { onnx: "Expand", produces: &[OpKind::Expand], translate: expand },
    Translator {
        onnx: "Tile",
        produces: &[OpKind::Tile],
        translate: |im, n| {
            let repeats = n.constant_ints(im, 1, "repeats")?.ok_or("Tile needs repeats")?;
            im.add(n.hint, OpKind::Tile, vec![("repeats", AttrValue::Ints(repeats))], vec![n.arg(0)?]).map(Some)
        },
    },
    Translator { onnx: "Squeeze", produces: &[], translate: |im, n| squeeze(im, n, false) },
    Translator { onnx: "Unsqueeze", produces: &[], translate: |im, n| squeeze(im, n, true) },
    Translator {
        onnx: "Concat",
        produces: &[OpKind::Concat],
        translate: |im, n| {
            let axis = attr(n.proto, "axis").map(|a| a.i).ok_or("Concat needs `axis`")?;
            im.add(n.hint, OpKind::Concat, vec![("dim", AttrValue::Int(axis))], n.operands.clone()).map(Some)
        },
    },
];

fn constant(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let t = attr(n.proto, "value")
        .and_then(|a| a.t.as_ref())
        .ok_or("Constant without a tensor `value` (sparse and scalar-list forms are not supported)")?;
    let tensor = from_proto(t).map_err(|e| format!("Constant value: {e}"))?;
    im.constant(n, tensor);
    Ok(None)
}

/// Slice with constant starts, ends, axes and steps (inputs from opset 10,
/// attributes before).
fn slice(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let input = |i: usize| n.constant_ints(im, i, "bounds");
    let (starts, ends, axes, steps) = if n.proto.input.len() > 1 {
        (input(1)?.ok_or("Slice needs starts")?, input(2)?.ok_or("Slice needs ends")?, input(3)?, input(4)?)
    } else {
        (
            attr_ints(n.proto, "starts").ok_or("Slice needs starts")?,
            attr_ints(n.proto, "ends").ok_or("Slice needs ends")?,
            attr_ints(n.proto, "axes"),
            None,
        )
    };
    let mut attrs = vec![("starts", AttrValue::Ints(starts)), ("ends", AttrValue::Ints(ends))];
    if let Some(axes) = axes {
        attrs.push(("dims", AttrValue::Ints(axes)));
    }
    if let Some(steps) = steps {
        attrs.push(("steps", AttrValue::Ints(steps)));
    }
    im.add(n.hint, OpKind::Slice, attrs, vec![n.arg(0)?]).map(Some)
}

/// Pad: pads and the constant from attributes (before opset 11) or constant
/// inputs, for every dimension or those of `axes` (opset 18); ONNX's `edge`
/// is `replicate`, its `wrap` (opset 19) `circular`.
fn pad(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let x = n.arg(0)?;
    let rank = im.rank(&x).ok_or("Pad needs its input's rank")?;
    let (pads, value) = if im.opset < 11 {
        (attr_ints(n.proto, "pads").ok_or("Pad needs `pads`")?, f64::from(attr_f(n.proto, "value", 0.0)))
    } else {
        let pads = n.constant_ints(im, 1, "pads")?.ok_or("Pad needs pads")?;
        let value = match n.constant(im, 2, "constant_value")? {
            None => 0.0,
            Some(t) => t
                .to_vec::<f32>()
                .map(|v| v.into_iter().map(f64::from).collect())
                .or_else(|_| t.to_vec::<f64>())
                .or_else(|_| t.to_vec::<i64>().map(|v| v.into_iter().map(|i| i as f64).collect()))
                .or_else(|_| t.to_vec::<i32>().map(|v| v.into_iter().map(f64::from).collect()))
                .ok()
                .and_then(|v| v.first().copied())
                .ok_or("Pad's constant_value must be a number")?,
        };
        (pads, value)
    };
    let axes: Vec<usize> = match n.constant_ints(im, 3, "axes")? {
        None => (0..rank).collect(),
        Some(axes) => axes
            .iter()
            .map(|&a| {
                nnbundle_graph::normalize_axis(a, rank).ok_or(format!("axis {a} is out of range for rank {rank}"))
            })
            .collect::<Result<_, _>>()?,
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!("Pad has {} pads for {} axes", pads.len(), axes.len()));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err(format!("Pad with negative pads {pads:?} (cropping) is not in the vocabulary; use Slice"));
    }
    let mut padding = vec![0; 2 * rank];
    for (k, &a) in axes.iter().enumerate() {
        padding[a] = pads[k];
        padding[rank + a] = pads[axes.len() + k];
    }
    let mode = match attr_s(n.proto, "mode", "constant").as_str() {
        "constant" => "constant",
        "reflect" => "reflect",
        "edge" => "replicate",
        "wrap" => "circular",
        other => return Err(format!("Pad mode `{other}` is not in the vocabulary (constant, reflect, edge, wrap)")),
    };
    let attrs = vec![
        ("padding", AttrValue::Ints(padding)),
        ("mode", AttrValue::Str(mode.into())),
        ("value", AttrValue::Float(value)),
    ];
    im.add(n.hint, OpKind::Pad, attrs, vec![x]).map(Some)
}

/// Split as one `Slice` per output read: sizes from the `split` input
/// (opset 13) or attribute, else equal parts (`num_outputs` from opset 18,
/// the output count before; the last part smaller when uneven).
fn split(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let x = n.arg(0)?;
    let info = im.info(&x).ok_or("Split needs its input's shape")?;
    let rank = info.shape.rank();
    let a = attr_i(n.proto, "axis", 0);
    let axis =
        nnbundle_graph::normalize_axis(a, rank).ok_or(format!("Split axis {a} is out of range for rank {rank}"))?;
    let sizes = match n.constant_ints(im, 1, "split")? {
        Some(s) => s,
        None => match attr_ints(n.proto, "split") {
            Some(s) => s,
            None => {
                let len = info.shape.0[axis]
                    .fixed()
                    .ok_or_else(|| im.needs_pinning(&format!("an equal Split of dimension {axis} of {}", info.shape)))?
                    as i64;
                let parts = attr_i(n.proto, "num_outputs", n.proto.output.len() as i64).max(1);
                let size = (len + parts - 1) / parts;
                (0..parts).map(|k| size.min(len - k * size).max(0)).collect()
            }
        },
    };
    if sizes.len() != n.proto.output.len() || sizes.iter().any(|&s| s < 0) {
        return Err(format!("Split sizes {sizes:?} do not match its {} outputs", n.proto.output.len()));
    }
    let mut first = None;
    let mut start = 0i64;
    for (k, (out, &size)) in n.proto.output.iter().zip(&sizes).enumerate() {
        let end = start + size;
        if !out.is_empty() && im.read.contains(out) {
            let attrs = vec![
                ("starts", AttrValue::Ints(vec![start])),
                ("ends", AttrValue::Ints(vec![end])),
                ("dims", AttrValue::Ints(vec![axis as i64])),
            ];
            let value = im.add(out, OpKind::Slice, attrs, vec![x.clone()])?;
            if k == 0 {
                first = Some(value);
            } else {
                im.names.insert(out.clone(), value);
            }
        }
        start = end;
    }
    Ok(first)
}

/// Expand (numpy broadcasting both ways) as the vocabulary's one-way Expand:
/// a target size of 1, or one equal to the input's (symbols included), keeps
/// the input's size (-1); an input size of 1 takes the target's.
fn expand(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let x = n.arg(0)?;
    let from = im.info(&x).ok_or("Expand needs its input's shape")?.shape.0;
    let target: Vec<symbolic::Sym> = match n.arg(1)? {
        Operand::Const(t, _) => {
            let dims = symbolic::Dims::of_const(&t).ok_or("Expand's shape must be a vector of integers")?;
            dims.items
        }
        Operand::Dims(d) => d.items,
        Operand::Value(v) => return Err(format!("Expand to a shape computed at run time (`{v}`) needs it constant")),
    };
    let rank = from.len().max(target.len());
    let (lead_t, lead_x) = (rank - target.len(), rank - from.len());
    let mut sizes = Vec::with_capacity(rank);
    for i in 0..rank {
        let t = i.checked_sub(lead_t).map(|k| &target[k]);
        let d = i.checked_sub(lead_x).map(|k| &from[k]);
        sizes.push(match (d, t) {
            (Some(_), None | Some(symbolic::Sym::Known(1))) => -1,
            (Some(d), Some(symbolic::Sym::Symbol(s))) if *d == nnbundle_graph::Dim::Symbol(s.clone()) => -1,
            (Some(d), Some(symbolic::Sym::Known(k))) if d.fixed() == Some(*k as u64) => -1,
            (_, Some(symbolic::Sym::Known(k))) if *k >= 0 => *k,
            (_, Some(t)) => {
                return Err(im.needs_pinning(&format!(
                    "Expand of {} to the size {t} at dimension {i}",
                    nnbundle_graph::Shape(from.clone())
                )));
            }
            (None, None) => unreachable!("rank covers the target"),
        });
    }
    im.add(n.hint, OpKind::Expand, vec![("sizes", AttrValue::Ints(sizes))], vec![x]).map(Some)
}

/// Squeeze and Unsqueeze of a value as a Reshape to the shape they give
/// (axes from the attribute before opset 13, a constant input from it).
fn squeeze(im: &mut Importer, n: &OnnxNode<'_>, unsqueeze: bool) -> Result<Option<String>, String> {
    let x = n.arg(0)?;
    let info = im.info(&x).ok_or_else(|| format!("{} needs its input's shape", n.proto.op_type))?;
    let axes = match n.constant_ints(im, 1, "axes")? {
        Some(axes) => Some(axes),
        None => attr_ints(n.proto, "axes"),
    };
    let mut dims = info.shape.0.clone();
    // The unit dimensions inserted (positions in the output) or dropped (in the input).
    let moved: Vec<usize>;
    if unsqueeze {
        let axes = axes.ok_or("Unsqueeze needs axes")?;
        let rank = dims.len() + axes.len();
        let mut at: Vec<usize> = axes
            .iter()
            .map(|&a| {
                nnbundle_graph::normalize_axis(a, rank).ok_or(format!("axis {a} is out of range for rank {rank}"))
            })
            .collect::<Result<_, _>>()?;
        at.sort_unstable();
        for &a in &at {
            dims.insert(a, Dim::Fixed(1));
        }
        moved = at;
    } else {
        let rank = dims.len();
        let drop: Vec<usize> = match axes {
            Some(axes) => axes
                .iter()
                .map(|&a| {
                    nnbundle_graph::normalize_axis(a, rank).ok_or(format!("axis {a} is out of range for rank {rank}"))
                })
                .collect::<Result<_, _>>()?,
            None if dims.iter().all(|d| d.fixed().is_some()) => {
                (0..rank).filter(|&i| dims[i].fixed() == Some(1)).collect()
            }
            None => return Err("Squeeze without axes of a value with dynamic dimensions is ambiguous".into()),
        };
        if let Some(&a) = drop.iter().find(|&&a| !dims[a].compatible(&Dim::Fixed(1))) {
            return Err(format!("Squeeze of axis {a} of shape {}: its size is not 1", info.shape));
        }
        dims = dims.into_iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, d)| d).collect();
        let mut drop = drop;
        drop.sort_unstable();
        drop.dedup();
        moved = drop;
    }
    match im.reshape_to(n.hint, x.clone(), &info.shape.0, &dims) {
        Ok(y) => Ok(Some(y)),
        // Dynamic sizes that shift position: move the unit dimensions without a Reshape.
        Err(_) if unsqueeze => unsqueeze_moving(im, n.hint, x, info.shape.rank(), &moved).map(Some),
        Err(_) => squeeze_moving(im, n.hint, x, info.shape.rank(), &moved).map(Some),
    }
}

/// Squeeze of the unit dimensions `drop` (sorted) as Flattens that each
/// merge one into a neighbour (a Flatten keeps the symbol of a product whose
/// other factors are 1).
fn squeeze_moving(im: &mut Importer, hint: &str, x: Operand, rank: usize, drop: &[usize]) -> Result<String, String> {
    let (mut value, mut rank) = (x, rank);
    for (k, &a) in drop.iter().rev().enumerate() {
        let (start, end) =
            if a + 1 < rank { (a, a + 1) } else { (a.checked_sub(1).ok_or("Squeeze of a rank-1 value")?, a) };
        let name = if k + 1 == drop.len() { hint.to_owned() } else { format!("{hint}_merge{k}") };
        let attrs = vec![("start_dim", AttrValue::Int(start as i64)), ("end_dim", AttrValue::Int(end as i64))];
        value = Operand::Value(im.add(&name, OpKind::Flatten, attrs, vec![value])?);
        rank -= 1;
    }
    match value {
        Operand::Value(v) if !drop.is_empty() => Ok(v),
        _ => Err("Squeeze of no dimension".into()),
    }
}

/// Unsqueeze at the output positions `at` (sorted) as Expands that each add
/// a leading unit dimension, each moved to its place by a Permute.
fn unsqueeze_moving(im: &mut Importer, hint: &str, x: Operand, rank: usize, at: &[usize]) -> Result<String, String> {
    let (mut value, mut rank) = (x, rank);
    for (k, &a) in at.iter().enumerate() {
        let last = k + 1 == at.len();
        let lead = if last && a == 0 { hint.to_owned() } else { format!("{hint}_unit{k}") };
        let sizes: Vec<i64> = std::iter::once(1).chain(std::iter::repeat_n(-1, rank)).collect();
        value = Operand::Value(im.add(&lead, OpKind::Expand, vec![("sizes", AttrValue::Ints(sizes))], vec![value])?);
        rank += 1;
        if a > 0 {
            let perm: Vec<i64> = (1..=a as i64).chain(std::iter::once(0)).chain(a as i64 + 1..rank as i64).collect();
            let name = if last { hint.to_owned() } else { format!("{hint}_placed{k}") };
            value =
                Operand::Value(im.add(&name, OpKind::Permute, vec![("dims", AttrValue::Ints(perm))], vec![value])?);
        }
    }
    match value {
        Operand::Value(v) if !at.is_empty() => Ok(v),
        _ => Err("Unsqueeze of no dimension".into()),
    }
}

fn dropout(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let training = n.operands.get(2).and_then(|o| match o {
        Operand::Const(t, _) => t.to_vec::<bool>().ok().map(|v| v.iter().any(|&b| b)),
        _ => Some(true),
    });
    if attr_i(n.proto, "is_test", 1) == 0 || training == Some(true) {
        return Err(
            "training-mode dropout (random masks) is outside opset 1; export the model in inference mode".into()
        );
    }
    if n.extra_outputs_used {
        return Err("Dropout's mask output is used, which opset 1 does not produce".into());
    }
    let p = match n.operands.get(1) {
        Some(Operand::Const(t, _)) => t.to_vec::<f32>().ok().and_then(|v| v.first().copied()).unwrap_or(0.5),
        _ => attr_f(n.proto, "ratio", 0.5),
    };
    im.add(n.hint, OpKind::Dropout, vec![("p", AttrValue::Float(f64::from(p)))], vec![n.arg(0)?]).map(Some)
}

impl Importer {
    /// A Reshape of `x` (of dims `from`) to dims `to`: sizes where fixed, a
    /// copy (0) where a symbol stays at its position, -1 for at most one
    /// other; anything else needs the input's dimensions fixed.
    pub(crate) fn reshape_to(&mut self, hint: &str, x: Operand, from: &[Dim], to: &[Dim]) -> Result<String, String> {
        let mut copies = false;
        let mut inferred = false;
        let mut target = Vec::with_capacity(to.len());
        for (i, d) in to.iter().enumerate() {
            target.push(match d {
                Dim::Fixed(n) => i64::try_from(*n).map_err(|_| "size too large")?,
                d if from.get(i).is_some_and(|f| f.same_as(d)) => {
                    copies = true;
                    0
                }
                _ if !inferred => {
                    inferred = true;
                    -1
                }
                _ => {
                    let to = nnbundle_graph::Shape(to.to_vec());
                    return Err(
                        self.needs_pinning(&format!("the target shape {to}, with more than one size that moves,"))
                    );
                }
            });
        }
        let attrs = vec![("shape", AttrValue::Ints(target)), ("zero_copies_input", AttrValue::Bool(copies))];
        self.add(hint, OpKind::Reshape, attrs, vec![x])
    }

    pub(crate) fn flatten(&mut self, hint: &str, x: Operand, axis: i64) -> Result<String, String> {
        let rank = self.rank(&x).ok_or("Flatten needs its input's rank")? as i64;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..=rank).contains(&axis) {
            return Err(format!("axis {axis} is out of range for rank {rank}"));
        }
        let reshape = |s: &mut Self, shape: Vec<i64>| {
            s.add(hint, OpKind::Reshape, vec![("shape", AttrValue::Ints(shape))], vec![x.clone()])
        };
        if axis == 0 {
            return reshape(self, vec![1, -1]);
        }
        if axis == rank {
            return reshape(self, vec![-1, 1]);
        }
        if axis == 1 {
            return self.add(
                hint,
                OpKind::Flatten,
                vec![("start_dim", AttrValue::Int(1)), ("end_dim", AttrValue::Int(-1))],
                vec![x],
            );
        }
        let tail = self.add(
            &format!("{hint}_tail"),
            OpKind::Flatten,
            vec![("start_dim", AttrValue::Int(axis)), ("end_dim", AttrValue::Int(-1))],
            vec![x],
        )?;
        self.add(
            hint,
            OpKind::Flatten,
            vec![("start_dim", AttrValue::Int(0)), ("end_dim", AttrValue::Int(axis - 1))],
            vec![Operand::Value(tail)],
        )
    }

    pub(crate) fn reshape(
        &mut self,
        node: &NodeProto,
        hint: &str,
        x: Operand,
        shape: Option<Operand>,
    ) -> Result<String, String> {
        let allow_zero = attr_i(node, "allowzero", 0) != 0;
        let target: Vec<i64> = match (shape, attr_ints(node, "shape")) {
            (Some(Operand::Const(t, _)), _) => t.to_vec::<i64>().map_err(|e| format!("Reshape shape: {e}"))?,
            (Some(Operand::Dims(d)), _) => {
                // A target built from dynamic dimensions: keep the symbols that stay in place.
                let from = self.info(&x).ok_or("Reshape needs its input's shape")?.shape.0;
                let mut to = d.target();
                for (i, t) in to.iter_mut().enumerate() {
                    if d.items[i] == symbolic::Sym::Known(0) && !allow_zero {
                        *t = from.get(i).cloned().ok_or("Reshape copies a dimension the input does not have")?;
                    }
                }
                return self.reshape_to(hint, x, &from, &to);
            }
            (None, Some(s)) => s,
            _ => {
                return Err(
                    "Reshape needs a constant target shape (a shape computed at run time is outside opset 1)".into()
                );
            }
        };
        let input = self.info(&x).map(|i| i.shape);
        // [0, .., 0, -1, tail...] keeping leading dims and a matching static tail is a Flatten,
        // whatever the leading dims are (a symbolic batch, typically).
        let lead = target.iter().take_while(|&&d| d == 0).count();
        if !allow_zero
            && lead > 0
            && target.get(lead) == Some(&-1)
            && let Some(shape) = &input
        {
            let tail = &target[lead + 1..];
            let r = shape.rank();
            let fits = r > lead + tail.len()
                && tail.iter().all(|&d| d > 0)
                && shape.0[r - tail.len()..].iter().zip(tail).all(|(dim, &t)| dim.fixed() == Some(t as u64));
            if fits {
                let end = (r - tail.len() - 1) as i64;
                return self.add(
                    hint,
                    OpKind::Flatten,
                    vec![("start_dim", AttrValue::Int(lead as i64)), ("end_dim", AttrValue::Int(end))],
                    vec![x],
                );
            }
        }
        // ONNX's 0 copies the input's size: substitute static sizes; keep the copy when a size is symbolic.
        let copied = |i: usize| input.as_ref().and_then(|s| s.0.get(i)).and_then(Dim::fixed);
        let needs_copy = !allow_zero && target.iter().enumerate().any(|(i, &d)| d == 0 && copied(i).is_none());
        let resolved: Vec<i64> = target
            .iter()
            .enumerate()
            .map(|(i, &d)| if d == 0 && !allow_zero && !needs_copy { copied(i).map_or(0, |n| n as i64) } else { d })
            .collect();
        let attrs = vec![("shape", AttrValue::Ints(resolved)), ("zero_copies_input", AttrValue::Bool(needs_copy))];
        self.add(hint, OpKind::Reshape, attrs, vec![x])
    }
}
