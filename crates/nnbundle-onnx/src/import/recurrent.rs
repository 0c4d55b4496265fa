//! ONNX LSTM and GRU as the vocabulary's `LSTM` and `GRU` (PyTorch's gate
//! order and layout): weights reordered at import, one node per output read.

use nnbundle_format::Tensor;
use nnbundle_graph::{AttrValue, Dim, OpKind};

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr, attr_i, attr_s};
use crate::tensor::{GRU_GATES, GateOrder, LSTM_GATES, pick_blocks};

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
    Translator {
        onnx: "LSTM",
        produces: &[OpKind::LSTM, OpKind::Reshape, OpKind::Permute],
        translate: |im, n| recurrent(im, n, OpKind::LSTM),
    },
    Translator {
        onnx: "GRU",
        produces: &[OpKind::GRU, OpKind::Reshape, OpKind::Permute],
        translate: |im, n| recurrent(im, n, OpKind::GRU),
    },
];

/// An initial state operand: a value, or nothing for a constant of zeros.
fn initial_state(n: &OnnxNode<'_>, im: &Importer, i: usize, what: &str) -> Result<Option<Operand>, String> {
    let Some(name) = n.proto.input.get(i).filter(|s| !s.is_empty()) else { return Ok(None) };
    match im.operand(name)? {
        v @ Operand::Value(_) => Ok(Some(v)),
        Operand::Const(t, _) if is_zero(&t) => Ok(None),
        _ => Err(format!("{} with a constant, non-zero {what} is not supported; feed it as an input", n.proto.op_type)),
    }
}

/// A Permute swapping the first two of three dimensions.
fn swap_leading() -> Vec<(&'static str, AttrValue)> {
    vec![("dims", AttrValue::Ints(vec![1, 0, 2]))]
}

fn is_zero(t: &Tensor) -> bool {
    t.as_bytes().iter().all(|&b| b == 0)
}

fn recurrent(im: &mut Importer, n: &OnnxNode<'_>, op: OpKind) -> Result<Option<String>, String> {
    let p = n.proto;
    let name = &p.op_type;
    let (gates, order): (usize, GateOrder) = if op == OpKind::LSTM { (4, LSTM_GATES) } else { (3, GRU_GATES) };
    let default_activations: &[&str] =
        if op == OpKind::LSTM { &["Sigmoid", "Tanh", "Tanh"] } else { &["Sigmoid", "Tanh"] };
    if let Some(a) = attr(p, "activations").filter(|a| !a.strings.is_empty()) {
        let given: Vec<String> = a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
        if given.chunks(default_activations.len()).any(|c| c != default_activations) {
            return Err(format!(
                "{name} with activations {given:?} is not in the vocabulary (only {default_activations:?})"
            ));
        }
    }
    if attr(p, "clip").is_some() {
        return Err(format!("{name} with `clip` is not in the vocabulary"));
    }
    if attr_i(p, "input_forget", 0) != 0 {
        return Err(format!("{name} with input_forget=1 (coupled gates) is not in the vocabulary"));
    }
    // Layout 1 is batch-first: X [N, L, I], states [N, D, H], Y [N, L, D, H].
    let batch_first = match attr_i(p, "layout", 0) {
        0 => false,
        1 => true,
        other => return Err(format!("{name} layout {other} is not an ONNX layout")),
    };
    let reset_after = attr_i(p, "linear_before_reset", 0) != 0;
    let bidirectional = match attr_s(p, "direction", "forward").as_str() {
        "forward" => false,
        "bidirectional" => true,
        other => return Err(format!("{name} direction `{other}` is not in the vocabulary (forward, bidirectional)")),
    };
    let x = n.arg(0)?;
    let w = n.constant(im, 1, "weights W")?.ok_or_else(|| format!("{name} needs W"))?;
    let r = n.constant(im, 2, "weights R")?.ok_or_else(|| format!("{name} needs R"))?;
    let b = n.constant(im, 3, "bias B")?;
    let [dirs, rows, input_size] = *w.shape() else { return Err(format!("{name} W has shape {:?}", w.shape())) };
    let hidden = rows / gates;
    if rows % gates != 0 || r.shape() != [dirs, rows, hidden] || dirs != 1 + usize::from(bidirectional) {
        return Err(format!("{name} W {:?} and R {:?} do not fit {gates} gates", w.shape(), r.shape()));
    }
    if let Some(lens) = n.constant_ints(im, 4, "sequence_lens")? {
        let steps = im.info(&x).and_then(|i| i.shape.0.first().and_then(Dim::fixed));
        if steps.is_none_or(|s| lens.iter().any(|&l| l as u64 != s)) {
            return Err(format!("{name} with sequence_lens shorter than the sequence is not in the vocabulary"));
        }
    }
    if op == OpKind::LSTM && n.constant(im, 7, "peepholes P")?.is_some_and(|t| !is_zero(&t)) {
        return Err("LSTM with peepholes is not in the vocabulary".into());
    }
    let mut h0 = initial_state(n, im, 5, "initial_h")?;
    let mut c0 = if op == OpKind::LSTM { initial_state(n, im, 6, "initial_c")? } else { None };
    if batch_first {
        // States [N, D, H] to PyTorch's [D, N, H].
        for (state, what) in [(&mut h0, "initial_h"), (&mut c0, "initial_c")] {
            if let Some(s) = state.take() {
                let hint = format!("{}_{what}", n.hint);
                *state = Some(Operand::Value(im.add(&hint, OpKind::Permute, swap_leading(), vec![s])?));
            }
        }
    }
    let mut operands: Vec<Operand> = Vec::new();
    match (h0, c0) {
        (Some(h), c) => {
            operands.push(h);
            operands.extend(c);
        }
        (None, Some(_)) => return Err(format!("{name} with initial_c but no initial_h is not supported")),
        (None, None) => {}
    }
    // Reordered weights, each with a source name of its own, so that the
    // nodes of several outputs share one stored copy.
    let source = |i: usize, part: &str| Some(format!("{}#{part}", p.input[i]));
    let mut weights = vec![
        Operand::Const(pick_blocks(&w, gates, order.from_onnx)?, source(1, "pytorch")),
        Operand::Const(pick_blocks(&r, gates, order.from_onnx)?, source(2, "pytorch")),
    ];
    if let Some(b) = &b {
        let hidden_side: Vec<usize> = order.from_onnx.iter().map(|&k| k + gates).collect();
        weights.push(Operand::Const(pick_blocks(b, 2 * gates, order.from_onnx)?, source(3, "input")));
        weights.push(Operand::Const(pick_blocks(b, 2 * gates, &hidden_side)?, source(3, "hidden")));
    }
    let mut all = vec![x.clone()];
    all.extend(operands);
    all.extend(weights);
    let attrs = |returns: &str| {
        let mut a = vec![
            ("input_size", AttrValue::Int(input_size as i64)),
            ("hidden_size", AttrValue::Int(hidden as i64)),
            ("bias", AttrValue::Bool(b.is_some())),
            ("bidirectional", AttrValue::Bool(bidirectional)),
            ("batch_first", AttrValue::Bool(batch_first)),
            ("returns", AttrValue::Str(returns.into())),
        ];
        if op == OpKind::GRU {
            a.push(("reset_after", AttrValue::Bool(reset_after)));
        }
        a
    };
    let returns = if op == OpKind::LSTM { &["output", "h_n", "c_n"][..] } else { &["output", "h_n"][..] };
    let mut first = None;
    for (k, out) in p.output.iter().enumerate() {
        if out.is_empty() || !im.read.contains(out) {
            continue;
        }
        let Some(returns) = returns.get(k) else { return Err(format!("{name} has no output {k}")) };
        let value = if k == 0 {
            // PyTorch's [L, N, D*H] as ONNX's Y [L, D, N, H].
            let seq = im.add(&format!("{out}_sequence"), op, attrs(returns), all.clone())?;
            let info = im.builder.value(&seq).cloned().ok_or("LSTM output has no inferred shape")?;
            let (l, batch) = (info.shape.0[0].clone(), info.shape.0[1].clone());
            let h = Dim::Fixed(hidden as u64);
            let d = Dim::Fixed(1 + u64::from(bidirectional));
            if batch_first {
                // [N, L, D*H] is already ONNX's [N, L, D, H] in memory.
                im.reshape_to(out, Operand::Value(seq), &info.shape.0, &[l, batch, d, h])?
            } else if bidirectional {
                let split = vec![l.clone(), batch.clone(), Dim::Fixed(2), h.clone()];
                let split = im.reshape_to(&format!("{out}_directions"), Operand::Value(seq), &info.shape.0, &split)?;
                let perm = vec![("dims", AttrValue::Ints(vec![0, 2, 1, 3]))];
                im.add(out, OpKind::Permute, perm, vec![Operand::Value(split)])?
            } else {
                im.reshape_to(out, Operand::Value(seq), &info.shape.0, &[l, Dim::Fixed(1), batch, h])?
            }
        } else if batch_first {
            // PyTorch's [D, N, H] as ONNX's [N, D, H].
            let state = im.add(&format!("{out}_directions_first"), op, attrs(returns), all.clone())?;
            im.add(out, OpKind::Permute, swap_leading(), vec![Operand::Value(state)])?
        } else {
            im.add(out, op, attrs(returns), all.clone())?
        };
        if k == 0 {
            first = Some(value);
        } else {
            im.names.insert(out.clone(), value);
        }
    }
    Ok(first)
}
