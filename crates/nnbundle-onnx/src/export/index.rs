//! Indexing as ONNX.

use nnbundle_graph::OpKind;

use super::{ExportRule, ExportSupport::Full, a_int};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule {
        op: OpKind::Embedding,
        support: Full,
        export: |ex, n| {
            ex.emit("Gather", vec![n.get("weight")?, n.x.clone()], &n.out, vec![a_int("axis", 0)]);
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::Gather,
        support: Full,
        export: |ex, n| {
            ex.emit("Gather", vec![n.x.clone(), n.get("indices")?], &n.out, vec![a_int("axis", n.attrs().int("axis"))]);
            Ok(())
        },
    },
];
