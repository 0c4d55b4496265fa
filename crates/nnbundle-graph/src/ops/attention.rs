//! `MultiheadAttention` (PyTorch's `nn.MultiheadAttention`, inference, returns the attention output only).

use nnbundle_format::DType;

use super::{require_float, require_rank};
use crate::attr::{AttrDefault as D, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, ParamDoc, ParamSpec, Role, slot};
use crate::value::{Dim, ValueInfo};

pub(crate) static MULTIHEADATTENTION: OpDef = OpDef {
    name: "MultiheadAttention",
    summary: "softmax(q k^T / sqrt(head_dim) + mask) v per head, projections in_proj/out_proj; inputs query, key, value [, attn_mask]",
    numerics: "with E = `embed_dim`, H = `num_heads`, h = E/H: `q = query W_qᵀ + b_q`, `k = key W_kᵀ + b_k`, `v = value W_vᵀ + b_v` where `W_q, W_k, W_v` are rows `[0, E)`, `[E, 2E)`, `[2E, 3E)` of `in_proj_weight` (and likewise `in_proj_bias`); each is split into H heads of width h; per head, `A = softmax(q kᵀ / sqrt(h) + M) v`; heads are concatenated and `out = A out_proj.weightᵀ + out_proj.bias`. The mask M is 0 without `attn_mask`; a float mask is added; a bool mask is `-inf` where true. A `[L, S]` mask applies to every batch element and head, a `[N*H, L, S]` mask to batch element `b`, head `j` at index `b*H + j`. Layout `[L, N, E]`, or `[N, L, E]` with `batch_first`. Only the attention output is returned.",
    attrs: &[
        attr("embed_dim", T::Int, D::Required, "model width E"),
        attr("num_heads", T::Int, D::Required, "heads; divides embed_dim"),
        attr("bias", T::Bool, D::Bool(true), "whether the projections have biases"),
        attr("batch_first", T::Bool, D::Bool(false), "inputs are [N, L, E] instead of [L, N, E]"),
        attr("dropout", T::Float, D::Float(0.0), "attention dropout during training; no effect at inference"),
    ],
    slots: &[
        slot("query", Role::Data),
        slot("key", Role::Data),
        slot("value", Role::Data),
        slot("attn_mask", Role::OptionalData),
        slot("in_proj_weight", Role::Param),
        slot("in_proj_bias", Role::Param),
        slot("out_proj.weight", Role::Param),
        slot("out_proj.bias", Role::Param),
    ],
    rule: &MhaRule,
};

struct MhaRule;

impl OpRule for MhaRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let (e, h) = (a.int("embed_dim"), a.int("num_heads"));
        let mut out = Vec::new();
        if e < 1 {
            out.push(("embed_dim", format!("must be at least 1, found {e}")));
        }
        if h < 1 || (e >= 1 && e % h != 0) {
            out.push(("num_heads", format!("must be at least 1 and divide embed_dim {e}, found {h}")));
        }
        let p = a.float("dropout");
        if !(0.0..1.0).contains(&p) {
            out.push(("dropout", format!("must be in [0, 1), found {p}")));
        }
        out
    }

    fn param_doc(&self, slot: &str) -> ParamDoc {
        match slot {
            "in_proj_weight" => ParamDoc::shape("[3*embed_dim, embed_dim]"),
            "in_proj_bias" => ParamDoc::shape_when("[3*embed_dim]", &["bias"]),
            "out_proj.weight" => ParamDoc::shape("[embed_dim, embed_dim]"),
            "out_proj.bias" => ParamDoc::shape_when("[embed_dim]", &["bias"]),
            _ => ParamDoc::default(),
        }
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<ParamSpec> {
        let e = a.int("embed_dim") as u64;
        match slot {
            "in_proj_weight" => Some(ParamSpec::float(vec![3 * e, e])),
            "in_proj_bias" if a.bool("bias") => Some(ParamSpec::float(vec![3 * e])),
            "out_proj.weight" => Some(ParamSpec::float(vec![e, e])),
            "out_proj.bias" if a.bool("bias") => Some(ParamSpec::float(vec![e])),
            _ => None,
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let e = a.int("embed_dim") as u64;
        let layout = if a.bool("batch_first") { "[N, L, E]" } else { "[L, N, E]" };
        let (seq, batch) = if a.bool("batch_first") { (1, 0) } else { (0, 1) };
        let [q, k, v] = [&ops.data[0], &ops.data[1], &ops.data[2]];
        for (name, x) in [("query", q), ("key", k), ("value", v)] {
            require_float("MultiheadAttention", x)?;
            require_rank("MultiheadAttention", x, &[3], layout)?;
            if x.dtype != q.dtype {
                return Err(format!("MultiheadAttention {name} is {}, query is {}", x.dtype, q.dtype));
            }
            if !x.shape.0[2].compatible(&Dim::Fixed(e)) {
                return Err(format!("MultiheadAttention expects {name} embedding {e}, {name} has {}", x.shape));
            }
            if !x.shape.0[batch].compatible(&q.shape.0[batch]) {
                return Err(format!("MultiheadAttention {name} batch differs from query: {} vs {}", x.shape, q.shape));
            }
        }
        if !k.shape.0[seq].compatible(&v.shape.0[seq]) {
            return Err(format!("MultiheadAttention key and value lengths differ: {} vs {}", k.shape, v.shape));
        }
        if let Some(mask) = ops.data.get(3) {
            if !(mask.dtype == DType::Bool || mask.dtype == q.dtype) {
                return Err(format!("MultiheadAttention attn_mask must be bool or {}, found {}", q.dtype, mask.dtype));
            }
            let r = mask.shape.rank();
            let fits = (r == 2 || r == 3)
                && mask.shape.0[r - 2].compatible(&q.shape.0[seq])
                && mask.shape.0[r - 1].compatible(&k.shape.0[seq]);
            if !fits {
                return Err(format!(
                    "MultiheadAttention attn_mask must be [L, S] or [N*num_heads, L, S], found {}",
                    mask.shape
                ));
            }
        }
        Ok(Some(q.clone()))
    }
}
