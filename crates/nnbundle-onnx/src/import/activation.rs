//! ONNX activations and softmaxes.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr_f, attr_i, attr_s};
use crate::proto::NodeProto;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
    Translator { onnx: "Relu", produces: &[OpKind::ReLU], translate: |im, n| unary(im, n, OpKind::ReLU, vec![]) },
    Translator {
        onnx: "Sigmoid",
        produces: &[OpKind::Sigmoid],
        translate: |im, n| unary(im, n, OpKind::Sigmoid, vec![]),
    },
    Translator { onnx: "Tanh", produces: &[OpKind::Tanh], translate: |im, n| unary(im, n, OpKind::Tanh, vec![]) },
    Translator { onnx: "Clip", produces: &[OpKind::Hardtanh], translate: clip },
    Translator {
        onnx: "HardSigmoid",
        produces: &[OpKind::Hardsigmoid],
        translate: |im, n| {
            let (alpha, beta) = (attr_f(n.proto, "alpha", 0.2), attr_f(n.proto, "beta", 0.5));
            let attrs =
                vec![("alpha", AttrValue::Float(f64::from(alpha))), ("beta", AttrValue::Float(f64::from(beta)))];
            unary(im, n, OpKind::Hardsigmoid, attrs)
        },
    },
    Translator {
        onnx: "HardSwish",
        produces: &[OpKind::Hardswish],
        translate: |im, n| unary(im, n, OpKind::Hardswish, vec![]),
    },
    Translator { onnx: "Exp", produces: &[OpKind::Exp], translate: |im, n| unary(im, n, OpKind::Exp, vec![]) },
    Translator { onnx: "Log", produces: &[OpKind::Log], translate: |im, n| unary(im, n, OpKind::Log, vec![]) },
    Translator { onnx: "Sqrt", produces: &[OpKind::Sqrt], translate: |im, n| unary(im, n, OpKind::Sqrt, vec![]) },
    Translator { onnx: "Erf", produces: &[OpKind::Erf], translate: |im, n| unary(im, n, OpKind::Erf, vec![]) },
    Translator { onnx: "Floor", produces: &[OpKind::Floor], translate: |im, n| unary(im, n, OpKind::Floor, vec![]) },
    Translator { onnx: "Neg", produces: &[OpKind::Neg], translate: |im, n| unary(im, n, OpKind::Neg, vec![]) },
    Translator { onnx: "Abs", produces: &[OpKind::Abs], translate: |im, n| unary(im, n, OpKind::Abs, vec![]) },
    Translator {
        onnx: "Reciprocal",
        produces: &[OpKind::Reciprocal],
        translate: |im, n| unary(im, n, OpKind::Reciprocal, vec![]),
    },
    Translator {
        onnx: "LeakyRelu",
        produces: &[OpKind::LeakyReLU],
        translate: |im, n| {
            let slope = f64::from(attr_f(n.proto, "alpha", 0.01));
            unary(im, n, OpKind::LeakyReLU, vec![("negative_slope", AttrValue::Float(slope))])
        },
    },
    Translator {
        onnx: "Elu",
        produces: &[OpKind::ELU],
        translate: |im, n| {
            let alpha = f64::from(attr_f(n.proto, "alpha", 1.0));
            unary(im, n, OpKind::ELU, vec![("alpha", AttrValue::Float(alpha))])
        },
    },
    Translator {
        onnx: "Selu",
        produces: &[OpKind::SELU],
        translate: |im, n| {
            // PyTorch's constants, as ONNX's defaults give them in f32.
            let (alpha, gamma) = (attr_f(n.proto, "alpha", 1.673_263_2), attr_f(n.proto, "gamma", 1.050_701));
            if (alpha - 1.673_263_2).abs() > 1e-6 || (gamma - 1.050_701).abs() > 1e-6 {
                return Err(format!(
                    "Selu with alpha {alpha} and gamma {gamma}: the vocabulary's SELU has PyTorch's constants"
                ));
            }
            unary(im, n, OpKind::SELU, vec![])
        },
    },
    Translator {
        onnx: "Softplus",
        produces: &[OpKind::Softplus],
        translate: |im, n| unary(im, n, OpKind::Softplus, vec![]),
    },
    Translator { onnx: "PRelu", produces: &[OpKind::PReLU], translate: prelu },
    Translator {
        onnx: "Gelu",
        produces: &[OpKind::GELU],
        translate: |im, n| {
            let approx = attr_s(n.proto, "approximate", "none");
            unary(im, n, OpKind::GELU, vec![("approximate", AttrValue::Str(approx))])
        },
    },
    Translator {
        onnx: "Softmax",
        produces: &[OpKind::Softmax],
        translate: |im, n| im.softmax(n.proto, n.hint, n.arg(0)?).map(Some),
    },
    Translator {
        onnx: "LogSoftmax",
        produces: &[OpKind::LogSoftmax],
        translate: |im, n| im.softmax(n.proto, n.hint, n.arg(0)?).map(Some),
    },
];

/// Clip: bounds from attributes (before opset 11) or constant inputs; a
/// missing bound is the largest finite f64 (infinite once rounded to f32).
fn clip(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    // Optional inputs keep their positions: `["x", "", "max"]` has no min.
    let bound = |i: usize, attr: &str, default: f64| -> Result<f64, String> {
        match n.constant(im, i, "bounds")? {
            Some(t) => {
                let v =
                    t.to_vec::<f64>().or_else(|_| t.to_vec::<f32>().map(|v| v.into_iter().map(f64::from).collect()));
                v.ok().and_then(|v| v.first().copied()).ok_or_else(|| format!("Clip bound {i} is not a float scalar"))
            }
            None => Ok(super::attr(n.proto, attr).map_or(default, |a| f64::from(a.f))),
        }
    };
    let (lo, hi) = (bound(1, "min", -f64::MAX)?, bound(2, "max", f64::MAX)?);
    // ONNX's Clip is min(max(x, lo), hi): with lo above hi every element is hi.
    let lo = lo.min(hi);
    if lo == 0.0 && hi == f64::MAX {
        return unary(im, n, OpKind::ReLU, vec![]);
    }
    unary(im, n, OpKind::Hardtanh, vec![("min_val", AttrValue::Float(lo)), ("max_val", AttrValue::Float(hi))])
}

/// PRelu with a constant slope: one, or one per channel (dimension 1) in a
/// shape that broadcasts along it (`[C]` for `[N, C]`, `[C, 1, 1]` for `[N, C, H, W]`).
fn prelu(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let x = n.arg(0)?;
    let slope = n.constant(im, 1, "slope")?.ok_or("PRelu needs a slope")?;
    let rank = im.rank(&x).ok_or("PRelu needs its input's rank")?;
    let count: usize = slope.shape().iter().product();
    let per_channel = count > 1;
    // Before opset 7 a slope of C values applies along dimension 1 whatever the rank.
    let legacy_per_channel = im.opset < 7 && slope.shape().len() == 1;
    if per_channel && !legacy_per_channel {
        // Right-aligned against the input, the slope's only non-1 dimension must be dimension 1.
        let dims = slope.shape();
        let offset = rank.checked_sub(dims.len()).ok_or("PRelu's slope has more dimensions than its input")?;
        let along: Vec<usize> = dims.iter().enumerate().filter(|(_, d)| **d != 1).map(|(i, _)| i + offset).collect();
        if along != [1] {
            return Err(format!(
                "PRelu slope of shape {dims:?}: the vocabulary's PReLU has one slope or one per channel (dimension 1)"
            ));
        }
    }
    let weight = slope.reshaped(vec![count]).map_err(|e| e.to_string())?;
    let attrs = vec![("num_parameters", AttrValue::Int(count as i64))];
    im.add(n.hint, OpKind::PReLU, attrs, vec![x, Operand::Const(weight, None)]).map(Some)
}

/// A one-operand op with fixed attributes.
fn unary(
    im: &mut Importer,
    n: &OnnxNode<'_>,
    op: OpKind,
    attrs: Vec<(&str, AttrValue)>,
) -> Result<Option<String>, String> {
    im.add(n.hint, op, attrs, vec![n.arg(0)?]).map(Some)
}

impl Importer {
    pub(crate) fn softmax(&mut self, node: &NodeProto, hint: &str, x: Operand) -> Result<String, String> {
        let kind = if node.op_type == "Softmax" { OpKind::Softmax } else { OpKind::LogSoftmax };
        let rank = self.rank(&x).ok_or("Softmax needs its input's rank")? as i64;
        if self.opset >= 13 {
            return self.add(hint, kind, vec![("dim", AttrValue::Int(attr_i(node, "axis", -1)))], vec![x]);
        }
        // Before opset 13 the input is flattened to 2-D at `axis` and normalized over the second part.
        let axis = attr_i(node, "axis", 1);
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return Err(format!("axis {axis} is out of range for rank {rank}"));
        }
        if axis == rank - 1 {
            return self.add(hint, kind, vec![("dim", AttrValue::Int(-1))], vec![x]);
        }
        let shape =
            self.static_shape(&x).ok_or("Softmax before opset 13 over several axes needs a static input shape")?;
        let inner: i64 = shape[axis as usize..].iter().product();
        let flat = self.add(
            &format!("{hint}_2d"),
            OpKind::Reshape,
            vec![("shape", AttrValue::Ints(vec![-1, inner]))],
            vec![x],
        )?;
        let soft = self.add(
            &format!("{hint}_normalized"),
            kind,
            vec![("dim", AttrValue::Int(1))],
            vec![Operand::Value(flat)],
        )?;
        self.add(hint, OpKind::Reshape, vec![("shape", AttrValue::Ints(shape))], vec![Operand::Value(soft)])
    }
}
