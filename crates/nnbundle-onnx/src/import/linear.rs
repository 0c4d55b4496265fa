//! ONNX Gemm: Linear for the common case, else its steps.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, Operand, attr, attr_f, attr_i};
use nnbundle_format::Tensor;

use super::fold::scale;
use crate::proto::NodeProto;
use crate::tensor::transpose;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[Translator {
    onnx: "Gemm",
    produces: &[OpKind::Linear],
    translate: |im, n| im.gemm(n.proto, n.hint, &n.operands).map(Some),
}];

impl Importer {
    pub(crate) fn gemm(&mut self, node: &NodeProto, hint: &str, ops: &[Operand]) -> Result<String, String> {
        let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
        let (ta, tb) = (attr_i(node, "transA", 0) != 0, attr_i(node, "transB", 0) != 0);
        let a = ops.first().cloned().ok_or("Gemm needs A")?;
        let b = ops.get(1).cloned().ok_or("Gemm needs B")?;
        let c = ops.get(2).cloned();
        if attr(node, "broadcast").is_some_and(|x| x.i == 0) && c.is_some() {
            return Err("Gemm with broadcast=0 (opset < 7) is not supported".into());
        }
        // The common case: a constant weight, no transposed A, alpha 1: Linear.
        if let (Operand::Value(_), Operand::Const(w, _), false, 1.0) = (&a, &b, ta, alpha)
            && w.shape().len() == 2
        {
            let weight = if tb { w.clone() } else { transpose(w)? };
            let (n, k) = (weight.shape()[0], weight.shape()[1]);
            let bias = match &c {
                Some(Operand::Const(t, _)) if t.len() == n && t.shape().iter().filter(|&&d| d != 1).count() <= 1 => {
                    Some(scale(
                        &Tensor::from_bytes(t.dtype(), vec![n], t.as_bytes().to_vec()).map_err(|e| e.to_string())?,
                        beta,
                    )?)
                }
                _ => None,
            };
            let mut operands = vec![a, Operand::Const(weight, None)];
            let folded = bias.is_some();
            if let Some(b) = bias {
                operands.push(Operand::Const(b, None));
            }
            let attrs = vec![
                ("in_features", AttrValue::Int(k as i64)),
                ("out_features", AttrValue::Int(n as i64)),
                ("bias", AttrValue::Bool(folded)),
            ];
            let linear_hint = if c.is_some() && !folded { format!("{hint}_product") } else { hint.to_owned() };
            let y = self.add(&linear_hint, OpKind::Linear, attrs, operands)?;
            return match (c, folded) {
                (Some(c), false) => self.scaled_add(hint, Operand::Value(y), c, beta),
                _ => Ok(y),
            };
        }
        // The general case, step by step: transposes, product, alpha, beta * C.
        let a = if ta {
            Operand::Value(self.add(
                &format!("{hint}_a_t"),
                OpKind::Permute,
                vec![("dims", AttrValue::Ints(vec![1, 0]))],
                vec![a],
            )?)
        } else {
            a
        };
        let b = match b {
            Operand::Const(w, src) if tb => Operand::Const(transpose(&w)?, src.map(|s| format!("{s}^T"))),
            b if tb => Operand::Value(self.add(
                &format!("{hint}_b_t"),
                OpKind::Permute,
                vec![("dims", AttrValue::Ints(vec![1, 0]))],
                vec![b],
            )?),
            b => b,
        };
        let last = c.is_none() && alpha == 1.0;
        let product_hint = if last { hint.to_owned() } else { format!("{hint}_product") };
        let product = self.add(&product_hint, OpKind::MatMul, vec![], vec![a, b])?;
        let mut y = Operand::Value(product.clone());
        if alpha != 1.0 {
            let s = self.scalar(&y, f64::from(alpha));
            let scaled_hint = if c.is_none() { hint.to_owned() } else { format!("{hint}_scaled") };
            let name = self.add(&scaled_hint, OpKind::Mul, vec![], vec![y.clone(), s])?;
            y = Operand::Value(name);
        }
        match c {
            Some(c) => self.scaled_add(hint, y, c, beta),
            None => match y {
                Operand::Value(v) => Ok(v),
                _ => Ok(product),
            },
        }
    }

    /// `y + beta * c`.
    pub(crate) fn scaled_add(&mut self, hint: &str, y: Operand, c: Operand, beta: f32) -> Result<String, String> {
        let c = match c {
            Operand::Const(t, _) if beta != 1.0 => Operand::Const(scale(&t, beta)?, None),
            c if beta != 1.0 => {
                let s = self.scalar(&c, f64::from(beta));
                Operand::Value(self.add(&format!("{hint}_c_scaled"), OpKind::Mul, vec![], vec![c, s])?)
            }
            c => c,
        };
        self.add(hint, OpKind::Add, vec![], vec![y, c])
    }
}
