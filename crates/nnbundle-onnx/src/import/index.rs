//! ONNX indexing.

use nnbundle_graph::{AttrValue, OpKind};

use super::attr_i;
use super::table::Translator;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[Translator {
    onnx: "Gather",
    produces: &[OpKind::Gather],
    translate: |im, n| {
        let attrs = vec![("axis", AttrValue::Int(attr_i(n.proto, "axis", 0)))];
        im.add(n.hint, OpKind::Gather, attrs, vec![n.arg(0)?, n.arg(1)?]).map(Some)
    },
}];
