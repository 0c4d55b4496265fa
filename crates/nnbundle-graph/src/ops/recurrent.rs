//! Recurrent ops (opset 2): `LSTM` and `GRU`, one layer each, with PyTorch's
//! gate order and weight layout (directions stacked on a leading axis).

use super::{require_float, require_rank};
use crate::attr::{AttrDefault as D, AttrType as T, Attrs, attr};
use crate::op::{OpDef, OpRule, Operands, ParamDoc, ParamSpec, Role, slot};
use crate::value::{Dim, Shape, ValueInfo};

pub(crate) static LSTM: OpDef = OpDef {
    name: "LSTM",
    summary: "one long short-term memory layer over a sequence (nn.LSTM with num_layers=1); the value is the output sequence, h_n or c_n",
    numerics: "with H = `hidden_size` and D directions, per direction and step t: `a = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh`, split into four blocks of H in PyTorch's order i, f, g, o; `c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)`, `h_t = sigmoid(o) * tanh(c_t)`. `W_ih`, `W_hh`, `b_ih`, `b_hh` are row d of `weight_ih` [D, 4H, input_size], `weight_hh` [D, 4H, H], `bias_ih` and `bias_hh` [D, 4H] (zeros without `bias`). `h_0`, `c_0` [D, N, H] are zeros when left out. Direction 0 runs from step 0 to L - 1, direction 1 (`bidirectional`) from L - 1 to 0. `output` is [L, N, D*H] (`[N, L, D*H]` with `batch_first`), step t holding each direction's h_t in direction order; `h_n` and `c_n` are [D, N, H], each direction's state after its last step.",
    attrs: &[
        attr("input_size", T::Int, D::Required, "features of each input step"),
        attr("hidden_size", T::Int, D::Required, "features H of the hidden and cell states"),
        attr("bias", T::Bool, D::Bool(true), "whether the layer has bias_ih and bias_hh"),
        attr("batch_first", T::Bool, D::Bool(false), "input and output are [N, L, *] instead of [L, N, *]"),
        attr("bidirectional", T::Bool, D::Bool(false), "a second direction runs from the last step to the first"),
        attr(
            "returns",
            T::Choice(&["output", "h_n", "c_n"]),
            D::Str("output"),
            "the node's value: the output sequence, or the final hidden or cell state",
        ),
    ],
    slots: &[
        slot("input", Role::Data),
        slot("h_0", Role::OptionalData),
        slot("c_0", Role::OptionalData),
        slot("weight_ih", Role::Param),
        slot("weight_hh", Role::Param),
        slot("bias_ih", Role::Param),
        slot("bias_hh", Role::Param),
    ],
    rule: &RecurrentRule { gates: 4, name: "LSTM" },
};

pub(crate) static GRU: OpDef = OpDef {
    name: "GRU",
    summary: "one gated recurrent unit layer over a sequence (nn.GRU with num_layers=1); the value is the output sequence or h_n",
    numerics: "with H = `hidden_size` and D directions, per direction and step t, with the blocks of H of `x_t W_ihᵀ + b_ih` and `h_{t-1} W_hhᵀ + b_hh` in PyTorch's order r, z, n: `r = sigmoid(x_r + h_r)`, `z = sigmoid(x_z + h_z)`, `n = tanh(x_n + r * h_n)` (with `reset_after` false: `n = tanh(x_n + (r * h_{t-1}) W_hnᵀ + b_hn)`, where `W_hn`, `b_hn` are the n block of `W_hh`, `b_hh`), `h_t = (1 - z) * n + z * h_{t-1}`. `W_ih`, `W_hh`, `b_ih`, `b_hh` are row d of `weight_ih` [D, 3H, input_size], `weight_hh` [D, 3H, H], `bias_ih` and `bias_hh` [D, 3H] (zeros without `bias`). `h_0` [D, N, H] is zeros when left out. Direction 0 runs from step 0 to L - 1, direction 1 (`bidirectional`) from L - 1 to 0. `output` is [L, N, D*H] (`[N, L, D*H]` with `batch_first`), step t holding each direction's h_t in direction order; `h_n` is [D, N, H], each direction's state after its last step.",
    attrs: &[
        attr("input_size", T::Int, D::Required, "features of each input step"),
        attr("hidden_size", T::Int, D::Required, "features H of the hidden state"),
        attr("bias", T::Bool, D::Bool(true), "whether the layer has bias_ih and bias_hh"),
        attr("batch_first", T::Bool, D::Bool(false), "input and output are [N, L, *] instead of [L, N, *]"),
        attr("bidirectional", T::Bool, D::Bool(false), "a second direction runs from the last step to the first"),
        attr(
            "reset_after",
            T::Bool,
            D::Bool(true),
            "the reset gate scales the projected state (PyTorch; ONNX linear_before_reset=1), or, false, the state before its projection (ONNX's default; Keras reset_after=False)",
        ),
        attr(
            "returns",
            T::Choice(&["output", "h_n"]),
            D::Str("output"),
            "the node's value: the output sequence or the final hidden state",
        ),
    ],
    slots: &[
        slot("input", Role::Data),
        slot("h_0", Role::OptionalData),
        slot("weight_ih", Role::Param),
        slot("weight_hh", Role::Param),
        slot("bias_ih", Role::Param),
        slot("bias_hh", Role::Param),
    ],
    rule: &RecurrentRule { gates: 3, name: "GRU" },
};

/// The shape rule of a recurrent layer with `gates` blocks of H.
struct RecurrentRule {
    gates: u64,
    name: &'static str,
}

/// Number of directions of a recurrent node.
fn directions(a: &Attrs) -> u64 {
    if a.bool("bidirectional") { 2 } else { 1 }
}

impl OpRule for RecurrentRule {
    fn check_attrs(&self, a: &Attrs) -> Vec<(&'static str, String)> {
        super::all_at_least_one(a, &["input_size", "hidden_size"])
    }

    fn param_doc(&self, slot: &str) -> ParamDoc {
        let lstm = self.gates == 4;
        match (slot, lstm) {
            ("weight_ih", true) => ParamDoc::shape("[directions, 4*hidden_size, input_size]"),
            ("weight_ih", false) => ParamDoc::shape("[directions, 3*hidden_size, input_size]"),
            ("weight_hh", true) => ParamDoc::shape("[directions, 4*hidden_size, hidden_size]"),
            ("weight_hh", false) => ParamDoc::shape("[directions, 3*hidden_size, hidden_size]"),
            ("bias_ih" | "bias_hh", true) => ParamDoc::shape_when("[directions, 4*hidden_size]", &["bias"]),
            ("bias_ih" | "bias_hh", false) => ParamDoc::shape_when("[directions, 3*hidden_size]", &["bias"]),
            _ => ParamDoc::default(),
        }
    }

    fn param(&self, slot: &str, a: &Attrs) -> Option<ParamSpec> {
        let (d, h, i) = (directions(a), a.int("hidden_size") as u64, a.int("input_size") as u64);
        let g = self.gates * h;
        match slot {
            "weight_ih" => Some(ParamSpec::float(vec![d, g, i])),
            "weight_hh" => Some(ParamSpec::float(vec![d, g, h])),
            "bias_ih" | "bias_hh" if a.bool("bias") => Some(ParamSpec::float(vec![d, g])),
            _ => None,
        }
    }

    fn infer(&self, a: &Attrs, ops: &Operands) -> Result<Option<ValueInfo>, String> {
        let op = self.name;
        let layout = if a.bool("batch_first") { "[N, L, input_size]" } else { "[L, N, input_size]" };
        let x = ops.input();
        require_float(op, x)?;
        require_rank(op, x, &[3], layout)?;
        let (d, h, i) = (directions(a), a.int("hidden_size") as u64, a.int("input_size") as u64);
        if !x.shape.0[2].compatible(&Dim::Fixed(i)) {
            return Err(format!("{op} expects input_size {i}, input has {}", x.shape));
        }
        let (seq, batch) = if a.bool("batch_first") { (1, 0) } else { (0, 1) };
        let n = x.shape.0[batch].clone();
        let state = Shape(vec![Dim::Fixed(d), n.clone(), Dim::Fixed(h)]);
        for (k, s) in ops.data.iter().enumerate().skip(1) {
            let name = if k == 1 { "h_0" } else { "c_0" };
            if s.dtype != x.dtype {
                return Err(format!("{op} {name} is {}, input is {}", s.dtype, x.dtype));
            }
            if s.shape.rank() != 3 || s.shape.0.iter().zip(&state.0).any(|(a, b)| !a.compatible(b)) {
                return Err(format!("{op} expects {name} of shape {state}, found {}", s.shape));
            }
        }
        let shape = match a.str("returns") {
            "output" => {
                let mut out = vec![x.shape.0[seq].clone(), n];
                if a.bool("batch_first") {
                    out.swap(0, 1);
                }
                out.push(Dim::Fixed(d * h));
                Shape(out)
            }
            _ => state,
        };
        Ok(Some(ValueInfo::new(x.dtype, shape)))
    }
}
