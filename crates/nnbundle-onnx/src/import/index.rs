//! ONNX indexing: `Gather` of a value, or of a constant table as `Embedding`.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr_i};

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] =
    &[Translator { onnx: "Gather", produces: &[OpKind::Gather, OpKind::Embedding], translate: gather }];

/// Gather of a value, or, from a constant matrix by row with indices
/// computed by the graph, `Embedding` (torch.onnx's export of
/// `nn.Embedding`; a negative index, which Gather wraps, is an error there).
fn gather(im: &mut Importer, n: &OnnxNode<'_>) -> Result<Option<String>, String> {
    let (data, indices) = (n.arg(0)?, n.arg(1)?);
    let axis = attr_i(n.proto, "axis", 0);
    if let (Operand::Const(table, _), Operand::Value(_)) = (&data, &indices) {
        let &[rows, width] = table.shape() else {
            return Err(format!(
                "Gather from a constant of shape {:?}: the vocabulary looks up rows of a matrix (Embedding)",
                table.shape()
            ));
        };
        if axis != 0 && axis != -2 {
            return Err(format!("Gather from a constant matrix along axis {axis}: Embedding looks up rows (axis 0)"));
        }
        let attrs =
            vec![("num_embeddings", AttrValue::Int(rows as i64)), ("embedding_dim", AttrValue::Int(width as i64))];
        return im.add(n.hint, OpKind::Embedding, attrs, vec![indices, data]).map(Some);
    }
    im.add(n.hint, OpKind::Gather, vec![("axis", AttrValue::Int(axis))], vec![data, indices]).map(Some)
}
