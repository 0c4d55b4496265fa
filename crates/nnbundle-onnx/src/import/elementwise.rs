//! ONNX elementwise arithmetic.

use nnbundle_graph::OpKind;

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr};
use crate::proto::NodeProto;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
    Translator { onnx: "Add", produces: &[OpKind::Add], translate: binary },
    Translator { onnx: "Sub", produces: &[OpKind::Sub], translate: binary },
    Translator { onnx: "Mul", produces: &[OpKind::Mul], translate: binary },
    Translator { onnx: "Div", produces: &[OpKind::Div], translate: binary },
    Translator { onnx: "Pow", produces: &[OpKind::Pow], translate: binary },
    Translator { onnx: "Sum", produces: &[], translate: |im, n| chain(im, n, OpKind::Add) },
    Translator { onnx: "Cast", produces: &[OpKind::Cast], translate: cast },
    Translator { onnx: "Equal", produces: &[OpKind::Equal], translate: comparison },
    Translator { onnx: "Less", produces: &[OpKind::Less, OpKind::Greater], translate: comparison },
    Translator { onnx: "Greater", produces: &[OpKind::Greater, OpKind::Less], translate: comparison },
    Translator { onnx: "Where", produces: &[OpKind::Where], translate: choose },
    Translator {
        onnx: "Mod",
        produces: &[OpKind::Fmod],
        translate: |im, n| {
            if super::attr_i(n.proto, "fmod", 0) == 0 {
                return Err("Mod with fmod=0 (the divisor's sign) is integer arithmetic, outside the vocabulary; \
                            a float Mod has fmod=1 (torch.fmod)"
                    .into());
            }
            let (a, b) = (n.arg(0)?, n.arg(1)?);
            if matches!(a, Operand::Const(..)) {
                return Err("Mod of a constant by a computed value is not expressible (constants come last)".into());
            }
            im.add(n.hint, OpKind::Fmod, vec![], vec![a, b]).map(Some)
        },
    },
    Translator { onnx: "Max", produces: &[OpKind::Maximum], translate: |im, n| chain(im, n, OpKind::Maximum) },
    Translator { onnx: "Min", produces: &[OpKind::Minimum], translate: |im, n| chain(im, n, OpKind::Minimum) },
];

/// A comparison; with the constant first, the mirrored comparison.
fn comparison(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let (a, b) = (n.arg(0)?, n.arg(1)?);
    let (op, mirrored) = match n.proto.op_type.as_str() {
        "Equal" => (OpKind::Equal, OpKind::Equal),
        "Less" => (OpKind::Less, OpKind::Greater),
        _ => (OpKind::Greater, OpKind::Less),
    };
    let (op, operands) = if matches!(a, Operand::Const(..)) { (mirrored, vec![b, a]) } else { (op, vec![a, b]) };
    im.add(n.hint, op, vec![], operands).map(Some)
}

/// Where; a constant first branch with a computed second swaps them under
/// the negated condition (`c == false`), since constants come last.
fn choose(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let (c, a, b) = (n.arg(0)?, n.arg(1)?, n.arg(2)?);
    if matches!(a, Operand::Const(..)) && matches!(b, Operand::Value(_)) {
        let falsity = Operand::Const(nnbundle_format::Tensor::scalar(false), None);
        let negated = im.add(&format!("{}_negated", n.hint), OpKind::Equal, vec![], vec![c, falsity])?;
        return im.add(n.hint, OpKind::Where, vec![], vec![Operand::Value(negated), b, a]).map(Some);
    }
    im.add(n.hint, OpKind::Where, vec![], vec![c, a, b]).map(Some)
}

/// Cast of a value (a constant folds before): `Identity` to its own dtype.
fn cast(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let x = n.arg(0)?;
    let to = super::attr_i(n.proto, "to", 0);
    let dtype =
        crate::tensor::dtype_of(to as i32).ok_or_else(|| format!("Cast to ONNX type {to}, which has no dtype"))?;
    if im.info(&x).is_some_and(|i| i.dtype == dtype) {
        return im.add(n.hint, OpKind::Identity, vec![], vec![x]).map(Some);
    }
    let name = dtype.to_string();
    if !nnbundle_graph::CAST_DTYPES.contains(&name.as_str()) {
        return Err(format!("Cast to {name}: the vocabulary casts to {}", nnbundle_graph::CAST_DTYPES.join(", ")));
    }
    im.add(n.hint, OpKind::Cast, vec![("dtype", nnbundle_graph::AttrValue::Str(name))], vec![x]).map(Some)
}

fn binary(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    im.binary(n.proto, n.hint, n.arg(0)?, n.arg(1)?).map(Some)
}

/// n-ary Sum, Max or Min as a chain of two-operand `op` nodes, values first
/// (each commutes; a constant can only be the second operand of a node);
/// one operand is an `Identity`.
fn chain(im: &mut Importer, n: &OnnxNode<'_>, op: OpKind) -> Result<Option<String>, String> {
    let onnx = &n.proto.op_type;
    let mut operands = n.operands.clone();
    operands.sort_by_key(|o| matches!(o, Operand::Const(..)));
    let mut rest = operands.into_iter();
    let first = rest.next().ok_or_else(|| format!("{onnx} needs at least one input"))?;
    if matches!(first, Operand::Const(..)) {
        return Err(format!("{onnx} of constants only is not folded"));
    }
    let count = n.operands.len();
    if count == 1 {
        return im.add(n.hint, OpKind::Identity, vec![], vec![first]).map(Some);
    }
    let (mut acc, mut name) = (first, String::new());
    for (k, next) in rest.enumerate() {
        let hint = if k + 2 == count { n.hint.to_owned() } else { format!("{}_partial{}", n.hint, k + 1) };
        name = im.add(&hint, op, vec![], vec![acc, next])?;
        acc = Operand::Value(name.clone());
    }
    Ok(Some(name))
}

impl Importer {
    pub(crate) fn binary(&mut self, node: &NodeProto, hint: &str, a: Operand, b: Operand) -> Result<String, String> {
        // Before opset 7, `broadcast` with `axis` aligns B's dimensions at A's `axis`: B gets
        // trailing 1s so that numpy's right-aligned broadcasting does the same.
        let b = match attr(node, "axis").filter(|_| super::attr_i(node, "broadcast", 0) != 0) {
            None => b,
            Some(axis) => {
                let (ra, shape_b) = (
                    self.rank(&a).ok_or("a legacy broadcast needs A's rank")?,
                    self.info(&b).ok_or("a legacy broadcast needs B's shape")?.shape.0,
                );
                let axis = if axis.i < 0 { axis.i + ra as i64 } else { axis.i };
                let trailing = (ra as i64 - axis - shape_b.len() as i64).max(0) as usize;
                let mut to = shape_b.clone();
                to.extend(std::iter::repeat_n(nnbundle_graph::Dim::Fixed(1), trailing));
                match b {
                    Operand::Const(t, _) => {
                        let dims: Vec<usize> =
                            t.shape().iter().copied().chain(std::iter::repeat_n(1, trailing)).collect();
                        Operand::Const(t.reshaped(dims).map_err(|e| e.to_string())?, None)
                    }
                    other => Operand::Value(self.reshape_to(&format!("{hint}_aligned"), other, &shape_b, &to)?),
                }
            }
        };
        let kind = match node.op_type.as_str() {
            "Add" => OpKind::Add,
            "Sub" => OpKind::Sub,
            "Mul" => OpKind::Mul,
            "Pow" => OpKind::Pow,
            _ => OpKind::Div,
        };
        match (&a, &b) {
            (Operand::Const(..), Operand::Value(_)) => match kind {
                OpKind::Add | OpKind::Mul => self.add(hint, kind, vec![], vec![b, a]),
                OpKind::Sub => {
                    // c - x = (x * -1) + c
                    let minus = self.scalar(&b, -1.0);
                    let neg = self.add(&format!("{hint}_negated"), OpKind::Mul, vec![], vec![b, minus])?;
                    self.add(hint, OpKind::Add, vec![], vec![Operand::Value(neg), a])
                }
                OpKind::Div => {
                    // c / x = (1 / x) * c: exact for c = 1, else rounded twice.
                    let inverse = if matches!(&a, Operand::Const(t, _) if is_one(t)) {
                        hint.to_owned()
                    } else {
                        format!("{hint}_reciprocal")
                    };
                    let r = self.add(&inverse, OpKind::Reciprocal, vec![], vec![b])?;
                    if inverse == hint {
                        return Ok(r);
                    }
                    self.add(hint, OpKind::Mul, vec![], vec![Operand::Value(r), a])
                }
                _ => Err(format!("{kind} of a constant by a value is not expressible in the vocabulary")),
            },
            (Operand::Const(..), Operand::Const(..)) => {
                Err("constant arithmetic is not folded; simplify the model (onnxsim) first".into())
            }
            _ => self.add(hint, kind, vec![], vec![a, b]),
        }
    }
}

/// Whether every element of `t` is 1.
fn is_one(t: &nnbundle_format::Tensor) -> bool {
    match t.dtype() {
        nnbundle_format::DType::F32 => t.to_vec::<f32>().is_ok_and(|v| v.iter().all(|&x| x == 1.0)),
        nnbundle_format::DType::F64 => t.to_vec::<f64>().is_ok_and(|v| v.iter().all(|&x| x == 1.0)),
        _ => false,
    }
}
