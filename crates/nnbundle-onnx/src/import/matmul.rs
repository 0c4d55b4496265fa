//! ONNX MatMul: Linear when the right operand is a constant matrix.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, Operand};
use crate::tensor::transpose;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[Translator {
    onnx: "MatMul",
    produces: &[OpKind::MatMul, OpKind::Linear],
    translate: |im, n| im.matmul(n.hint, n.arg(0)?, n.arg(1)?).map(Some),
}];

impl Importer {
    pub(crate) fn matmul(&mut self, hint: &str, a: Operand, b: Operand) -> Result<String, String> {
        if let (Operand::Value(_), Operand::Const(w, src)) = (&a, &b)
            && w.shape().len() == 2
            && self.rank(&a).is_some_and(|r| r >= 1)
        {
            // x @ W with a constant [in, out] matrix is Linear with weight Wᵀ; a
            // following Add of a constant bias is folded in by `fold_bias`.
            let _ = src;
            let (k, n) = (w.shape()[0] as i64, w.shape()[1] as i64);
            let wt = transpose(w)?;
            return self.add(
                hint,
                OpKind::Linear,
                vec![
                    ("in_features", AttrValue::Int(k)),
                    ("out_features", AttrValue::Int(n)),
                    ("bias", AttrValue::Bool(false)),
                ],
                vec![a, Operand::Const(wt, None)],
            );
        }
        match (&a, &b) {
            (Operand::Const(..), _) => Err("MatMul with a constant left operand is not expressible in opset 1".into()),
            _ => self.add(hint, OpKind::MatMul, vec![], vec![a, b]),
        }
    }
}
