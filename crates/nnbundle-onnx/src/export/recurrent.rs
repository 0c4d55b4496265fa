//! `LSTM` and `GRU` as ONNX's LSTM and GRU: gate blocks reordered, the
//! output sequence reshaped from ONNX's [L, D, N, H].

use nnbundle_graph::OpKind;

use super::ExportSupport::Partial;
use super::{Args, ExportRule, Exporter, a_int, a_ints, a_str};
use crate::tensor::{GRU_GATES, LSTM_GATES, join_columns, pick_blocks};

const STORED: &str = "the weights must be stored parameters: ONNX's gate order differs, and weights computed by the graph are not reordered";

/// The export rules of this family.
pub(crate) const RULES: &[ExportRule] = &[
    ExportRule { op: OpKind::LSTM, support: Partial(STORED), export: recurrent },
    ExportRule { op: OpKind::GRU, support: Partial(STORED), export: recurrent },
];

fn recurrent(ex: &mut Exporter<'_>, n: &Args<'_>) -> Result<(), String> {
    let a = n.attrs();
    let lstm = n.node.op == OpKind::LSTM;
    let (gates, order, onnx) = if lstm { (4, LSTM_GATES, "LSTM") } else { (3, GRU_GATES, "GRU") };
    // A stored weight with its gate blocks in ONNX's order.
    let reordered = |ex: &Exporter<'_>, slot: &str| {
        let name = n.get(slot)?;
        let t = ex.weights.get(&name).ok_or_else(|| format!("`{slot}` is computed by the graph; {STORED}"))?;
        pick_blocks(t, gates, order.to_onnx)
    };
    let w = reordered(ex, "weight_ih")?;
    let r = reordered(ex, "weight_hh")?;
    let out = &n.out;
    let mut inputs = vec![String::new(), ex.constant(&format!("{out}/W"), &w), ex.constant(&format!("{out}/R"), &r)];
    inputs.push(if a.bool("bias") {
        let b = join_columns(&reordered(ex, "bias_ih")?, &reordered(ex, "bias_hh")?)?;
        ex.constant(&format!("{out}/B"), &b)
    } else {
        String::new()
    });
    inputs.push(String::new()); // sequence_lens
    inputs.push(n.ops.get("h_0").cloned().unwrap_or_default());
    if lstm {
        inputs.push(n.ops.get("c_0").cloned().unwrap_or_default());
    }
    // ONNX's layout 0 is [L, N, I]: a batch-first input is transposed in and out.
    let batch_first = a.bool("batch_first");
    inputs[0] = if batch_first {
        let t = ex.temp(out, "time_major");
        ex.emit("Transpose", vec![n.x.clone()], &t, vec![a_ints("perm", vec![1, 0, 2])]);
        t
    } else {
        n.x.clone()
    };
    while inputs.last().is_some_and(String::is_empty) {
        inputs.pop();
    }
    let hidden = a.int("hidden_size");
    let dirs: i64 = if a.bool("bidirectional") { 2 } else { 1 };
    let mut attrs =
        vec![a_int("hidden_size", hidden), a_str("direction", if dirs == 2 { "bidirectional" } else { "forward" })];
    if !lstm {
        attrs.push(a_int("linear_before_reset", i64::from(a.bool("reset_after"))));
    }
    let returns = a.str("returns");
    let slot = match returns {
        "h_n" => 1,
        "c_n" => 2,
        _ => 0,
    };
    let result = if slot == 0 { ex.temp(out, "y") } else { out.clone() };
    let mut outputs = vec![String::new(); slot + 1];
    outputs[slot] = result.clone();
    ex.emit_outputs(onnx, inputs, outputs, attrs);
    if slot == 0 {
        // Y [L, D, N, H] -> [L, N, D, H] -> [L, N, D*H] (-> [N, L, D*H]).
        let (per_step, merged) = (ex.temp(out, "per_step"), ex.temp(out, "merged"));
        ex.emit("Transpose", vec![result], &per_step, vec![a_ints("perm", vec![0, 2, 1, 3])]);
        let shape = ex.shape_constant(out, vec![0, 0, dirs * hidden]);
        let last = if batch_first { merged.clone() } else { out.clone() };
        ex.emit("Reshape", vec![per_step, shape], &last, vec![]);
        if batch_first {
            ex.emit("Transpose", vec![merged], out, vec![a_ints("perm", vec![1, 0, 2])]);
        }
    }
    Ok(())
}
