//! MultiheadAttention as ONNX, decomposed into primitives.

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::OpKind;

use super::ExportSupport::Partial;
use super::{Args, ExportRule, Exporter, a_int, a_ints};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[ExportRule {
    op: OpKind::MultiheadAttention,
    support: Partial("`in_proj_weight` must be stored in the bundle, and a per-head mask needs static L and S"),
    export: |ex, n| ex.attention(n),
}];

impl Exporter<'_> {
    /// MultiheadAttention from MatMul, Reshape, Transpose and Softmax.
    fn attention(&mut self, n: &Args<'_>) -> Result<(), String> {
        let (node, ops) = (n.node, &n.ops);
        let dtype = self.dtype(&n.get("query")?);
        let a = node.checked_attrs();
        let out = node.name.clone();
        let (e, heads) = (a.int("embed_dim"), a.int("num_heads"));
        let hd = e / heads;
        let get = |s: &str| ops.get(s).cloned().ok_or_else(|| format!("operand `{s}` is missing"));
        let w_in = self
            .weights
            .get(self.aliases.get(&format!("{out}.in_proj_weight")).map_or(&format!("{out}.in_proj_weight"), |s| s))
            .cloned();
        let w_in = w_in.ok_or("MultiheadAttention export needs in_proj_weight stored in the bundle")?;
        let b_in = if a.bool("bias") { self.weights.get(&format!("{out}.in_proj_bias")).cloned() } else { None };
        let rows = |t: &Tensor, i: usize, per: usize| -> Result<Tensor, String> {
            let row_bytes = t.as_bytes().len() / t.shape()[0];
            let bytes = t.as_bytes()[i * per * row_bytes..(i + 1) * per * row_bytes].to_vec();
            let mut shape = t.shape().to_vec();
            shape[0] = per;
            Tensor::from_bytes(t.dtype(), shape, bytes).map_err(|e| e.to_string())
        };
        let batch_first = a.bool("batch_first");
        let to_nle = |s: &mut Self, v: String, what: &str| -> String {
            if batch_first {
                v
            } else {
                let t = s.temp(&out, what);
                s.emit("Transpose", vec![v], &t, vec![a_ints("perm", vec![1, 0, 2])]);
                t
            }
        };
        let mut projected = Vec::new();
        for (i, (slot, perm)) in [("query", vec![0, 2, 1, 3]), ("key", vec![0, 2, 3, 1]), ("value", vec![0, 2, 1, 3])]
            .into_iter()
            .enumerate()
        {
            let v = get(slot)?;
            let v = to_nle(self, v, slot);
            let w = rows(&w_in, i, e as usize)?;
            let wt = crate::tensor::transpose(&w)?;
            let wname = self.temp(&out, &format!("{slot}_weight_t"));
            let wname = self.constant(&wname, &wt);
            let p = self.temp(&out, &format!("{slot}_projected"));
            self.emit("MatMul", vec![v, wname], &p, vec![]);
            let p = match &b_in {
                Some(b) => {
                    let bn = self.temp(&out, &format!("{slot}_bias"));
                    let bn = self.constant(&bn, &rows(b, i, e as usize)?);
                    let pb = self.temp(&out, &format!("{slot}_biased"));
                    self.emit("Add", vec![p, bn], &pb, vec![]);
                    pb
                }
                None => p,
            };
            let shape = self.shape_constant(&out, vec![0, 0, heads, hd]);
            let split = self.temp(&out, &format!("{slot}_heads"));
            self.emit("Reshape", vec![p, shape], &split, vec![]);
            let t = self.temp(&out, &format!("{slot}_t"));
            self.emit("Transpose", vec![split], &t, vec![a_ints("perm", perm)]);
            projected.push(t);
        }
        let scores = self.temp(&out, "scores");
        self.emit("MatMul", vec![projected[0].clone(), projected[1].clone()], &scores, vec![]);
        let scale = self.scalar(&out, "scale", dtype, 1.0 / (hd as f64).sqrt());
        let scaled = self.temp(&out, "scaled");
        self.emit("Mul", vec![scores, scale], &scaled, vec![]);
        let logits = match ops.get("attn_mask") {
            None => scaled,
            Some(mask) => {
                let mask_dtype = self.dtype(mask);
                let additive = if mask_dtype == DType::Bool {
                    let neg = self.scalar(&out, "neg_inf", dtype, f64::NEG_INFINITY);
                    let zero = self.scalar(&out, "zero", dtype, 0.0);
                    let m = self.temp(&out, "mask");
                    self.emit("Where", vec![mask.clone(), neg, zero], &m, vec![]);
                    m
                } else {
                    mask.clone()
                };
                let additive = if self.rank(mask) == Some(3) {
                    let info = self
                        .values
                        .get(mask)
                        .and_then(|v| v.shape.to_fixed())
                        .ok_or("a per-head attention mask needs static L and S for ONNX")?;
                    let shape = self.shape_constant(&out, vec![-1, heads, info[1] as i64, info[2] as i64]);
                    let r = self.temp(&out, "mask_heads");
                    self.emit("Reshape", vec![additive, shape], &r, vec![]);
                    r
                } else {
                    additive
                };
                let masked = self.temp(&out, "masked");
                self.emit("Add", vec![scaled, additive], &masked, vec![]);
                masked
            }
        };
        let probs = self.temp(&out, "probs");
        self.emit("Softmax", vec![logits], &probs, vec![a_int("axis", -1)]);
        let ctx = self.temp(&out, "context");
        self.emit("MatMul", vec![probs, projected[2].clone()], &ctx, vec![]);
        let ctx_t = self.temp(&out, "context_t");
        self.emit("Transpose", vec![ctx], &ctx_t, vec![a_ints("perm", vec![0, 2, 1, 3])]);
        let shape = self.shape_constant(&out, vec![0, 0, e]);
        let merged = self.temp(&out, "merged");
        self.emit("Reshape", vec![ctx_t, shape], &merged, vec![]);
        let w_out = get("out_proj.weight")?;
        let wt = self.transposed(&out, &w_out);
        let target = if batch_first { out.clone() } else { self.temp(&out, "nle") };
        match ops.get("out_proj.bias") {
            Some(b) => {
                let p = self.temp(&out, "out_projected");
                self.emit("MatMul", vec![merged, wt], &p, vec![]);
                self.emit("Add", vec![p, b.clone()], &target, vec![]);
            }
            None => self.emit("MatMul", vec![merged, wt], &target, vec![]),
        }
        if !batch_first {
            self.emit("Transpose", vec![target], &out, vec![a_ints("perm", vec![1, 0, 2])]);
        }
        Ok(())
    }
}
