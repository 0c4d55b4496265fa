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
    ExportRule {
        op: OpKind::Fmod,
        support: Full,
        export: |ex, n| {
            ex.emit("Mod", vec![n.x.clone(), n.get("other")?], &n.out, vec![super::a_int("fmod", 1)]);
            Ok(())
        },
    },
    ExportRule { op: OpKind::Maximum, support: Full, export: |ex, n| binary(ex, n, "Max") },
    ExportRule { op: OpKind::Minimum, support: Full, export: |ex, n| binary(ex, n, "Min") },
    ExportRule { op: OpKind::Equal, support: Full, export: |ex, n| binary(ex, n, "Equal") },
    ExportRule { op: OpKind::Less, support: Full, export: |ex, n| binary(ex, n, "Less") },
    ExportRule { op: OpKind::Greater, support: Full, export: |ex, n| binary(ex, n, "Greater") },
    ExportRule {
        op: OpKind::Where,
        support: Full,
        export: |ex, n| {
            ex.emit("Where", vec![n.get("condition")?, n.get("input")?, n.get("other")?], &n.out, vec![]);
            Ok(())
        },
    },
    ExportRule {
        op: OpKind::Cast,
        support: Full,
        export: |ex, n| {
            let to: nnbundle_format::DType = n.attrs().str("dtype").parse().map_err(|_| "Cast dtype is not a dtype")?;
            let to = crate::tensor::onnx_type(to);
            ex.emit("Cast", vec![n.x.clone()], &n.out, vec![super::a_int("to", i64::from(to))]);
            Ok(())
        },
    },
];

/// `onnx(input, other)`.
pub(crate) fn binary(ex: &mut Exporter<'_>, n: &Args<'_>, onnx: &str) -> Result<(), String> {
    ex.emit(onnx, vec![n.x.clone(), n.get("other")?], &n.out, vec![]);
    Ok(())
}
