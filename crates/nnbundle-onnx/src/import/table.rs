//! The import table: which translator handles each ONNX op type. The list
//! of supported ONNX ops is derived from it, never kept twice.

use nnbundle_graph::OpKind;

use super::{
    Importer, OnnxNode, activation, conv, elementwise, index, linear, matmul, norm, pool, recurrent, reduce, shape,
};

/// Translates one ONNX node: adds the nodes it maps to and returns the name
/// of the value standing for its output, or `None` for a constant recorded
/// with [`Importer::constant`].
pub(crate) type Translate = fn(&mut Importer, &OnnxNode<'_>) -> Result<Option<String>, String>;

/// One row of the import table.
pub(crate) struct Translator {
    /// The ONNX op type (default domain).
    pub onnx: &'static str,
    /// The vocabulary ops it maps to when the node fits them directly.
    pub produces: &'static [OpKind],
    /// The translation.
    pub translate: Translate,
}

/// Every family's table.
const FAMILIES: &[&[Translator]] = &[
    activation::TRANSLATORS,
    conv::TRANSLATORS,
    elementwise::TRANSLATORS,
    index::TRANSLATORS,
    linear::TRANSLATORS,
    matmul::TRANSLATORS,
    norm::TRANSLATORS,
    pool::TRANSLATORS,
    recurrent::TRANSLATORS,
    reduce::TRANSLATORS,
    shape::TRANSLATORS,
];

/// Every translator.
pub(crate) fn translators() -> impl Iterator<Item = &'static Translator> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// The translator of ONNX op type `onnx`.
pub(crate) fn translator(onnx: &str) -> Option<&'static Translator> {
    translators().find(|t| t.onnx == onnx)
}

/// Vocabulary ops no ONNX op imports to, each with why.
pub const IMPORT_GAPS: &[(OpKind, &str)] = &[
    (OpKind::SiLU, "ONNX has no SiLU op: exporters write x * Sigmoid(x), which imports as those two ops"),
    (OpKind::MultiheadAttention, "exporters write attention as MatMul/Softmax chains, which import op by op"),
];
