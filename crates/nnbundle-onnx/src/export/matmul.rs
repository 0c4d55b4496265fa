//! MatMul as ONNX.

use nnbundle_graph::OpKind;

use super::elementwise::binary;
use super::{ExportRule, ExportSupport::Full};

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] =
    &[ExportRule { op: OpKind::MatMul, support: Full, export: |ex, n| binary(ex, n, "MatMul") }];
