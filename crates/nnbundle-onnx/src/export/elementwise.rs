//! Elementwise arithmetic as ONNX.

use nnbundle_graph::OpKind;

use super::{Args, ExportRule, ExportSupport::Full, Exporter};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::Add, support: Full, export: |ex, n| binary(ex, n, "Add") },
    ExportRule { op: OpKind::Sub, support: Full, export: |ex, n| binary(ex, n, "Sub") },
    ExportRule { op: OpKind::Mul, support: Full, export: |ex, n| binary(ex, n, "Mul") },
    ExportRule { op: OpKind::Div, support: Full, export: |ex, n| binary(ex, n, "Div") },
    ExportRule { op: OpKind::Pow, support: Full, export: |ex, n| binary(ex, n, "Pow") },
];

/// `onnx(input, other)`.
pub(crate) fn binary(ex: &mut Exporter<'_>, n: &Args<'_>, onnx: &str) -> Result<(), String> {
    ex.emit(onnx, vec![n.x.clone(), n.get("other")?], &n.out, vec![]);
    Ok(())
}
