//! Indexing: `Embedding` (rows of a table) and `Gather` (numpy `take`).

use nnbundle_format::DType;

use super::at_least_one;
use crate::attr::{AttrDefault as D, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, ParamDType, ParamDoc, ParamSpec, Role, slot};
use crate::value::{Dim, Shape, ValueInfo, normalize_axis};

fn require_indices(op: &str, v: &ValueInfo) -> Result<(), String> {
    if matches!(v.dtype, DType::I32 | DType::I64) {
        Ok(())
    } else {
        Err(format!("{op} expects i32 or i64 indices, found {}", v.dtype))
    }
}

pub(crate) static EMBEDDING: OpDef = OpDef {
    name: "Embedding",
    summary: "rows of weight [num_embeddings, embedding_dim] picked by integer indices: [...] -> [..., embedding_dim]",
    numerics: "row `i` of the weight for each index `i`; an index outside `[0, num_embeddings)` is a run-time error. `padding_idx` has no effect at inference.",
    attrs: &[
        attr("num_embeddings", T::Int, D::Required, "rows of the table"),
        attr("embedding_dim", T::Int, D::Required, "size of each row"),
        attr("padding_idx", T::Int, D::Absent, "kept for PyTorch compatibility; no effect at inference"),
    ],
    slots: &[slot("input", Role::Data), slot("weight", Role::Param)],
    rule: &EmbeddingRule,
};

struct EmbeddingRule;

impl OpRule for EmbeddingRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        let mut out = at_least_one(a, &["num_embeddings", "embedding_dim"]);
        if let Some(p) = a.opt_int("padding_idx")
            && (p < -a.int("num_embeddings") || p >= a.int("num_embeddings"))
        {
            out.push(("padding_idx", format!("must index a row of {} rows, found {p}", a.int("num_embeddings"))));
        }
        out
    }

    fn param_doc(&self, slot: &str) -> ParamDoc {
        match slot {
            "weight" => ParamDoc::shape("[num_embeddings, embedding_dim]"),
            _ => ParamDoc::default(),
        }
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<ParamSpec> {
        (slot == "weight").then(|| ParamSpec {
            shape: Some(vec![a.int("num_embeddings") as u64, a.int("embedding_dim") as u64]),
            dtype: ParamDType::AnyFloat,
            required: true,
        })
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let idx = ops.input();
        require_indices("Embedding", idx)?;
        // The output has the table's dtype; without weights to look at, f32.
        let dtype = ops.param("weight").map_or(DType::F32, |w| w.dtype);
        let mut shape = idx.shape.clone();
        shape.0.push(Dim::Fixed(a.int("embedding_dim") as u64));
        Ok(Some(ValueInfo::new(dtype, shape)))
    }
}

pub(crate) static GATHER: OpDef = OpDef {
    name: "Gather",
    summary: "numpy take(input, indices, axis): out shape input[:axis] + indices.shape + input[axis+1:]; negative indices count from the end",
    numerics: "numpy `take` along `axis`; an index `i < 0` means `i + size`; an index outside `[-size, size)` is a run-time error.",
    attrs: &[attr("axis", T::Int, D::Int(0), "the axis indexed; negative counts from the end")],
    slots: &[slot("input", Role::Data), slot("indices", Role::Param)],
    rule: &GatherRule,
};

struct GatherRule;

impl OpRule for GatherRule {
    fn param(&self, slot: &str, _: &Attrs) -> Option<ParamSpec> {
        (slot == "indices").then_some(ParamSpec { shape: None, dtype: ParamDType::Index, required: true })
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let x = ops.input();
        let Some(indices) = ops.param("indices") else { return Ok(None) };
        require_indices("Gather", indices)?;
        let r = x.shape.rank();
        let axis = normalize_axis(a.int("axis"), r)
            .ok_or_else(|| format!("Gather axis {} is out of range for input {}", a.int("axis"), x.shape))?;
        let mut dims = x.shape.0[..axis].to_vec();
        dims.extend(indices.shape.0.iter().cloned());
        dims.extend(x.shape.0[axis + 1..].iter().cloned());
        Ok(Some(ValueInfo::new(x.dtype, Shape(dims))))
    }
}
