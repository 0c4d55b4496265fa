//! `LSTM` and `GRU`: one layer, one or two directions, PyTorch's gate order.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, Ix2, Ix3, s};
use nnbundle_graph::NodeAttrs;

use super::common::{Float, first_dtype, view, with_float};
use super::linear::affine;
use super::{Kernel, KernelResult, Scratch};
use crate::value::Arg;

/// Which recurrent cell, by its gate blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell {
    /// Blocks i, f, g, o; a hidden and a cell state.
    Lstm,
    /// Blocks r, z, n; a hidden state.
    Gru,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    /// Data operands besides the input that carry initial states.
    fn states(self) -> usize {
        match self {
            Cell::Lstm => 2,
            Cell::Gru => 1,
        }
    }
}

/// What the node's value is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Returns {
    Output,
    Hidden,
    CellState,
}

pub(crate) struct Recurrent {
    cell: Cell,
    hidden: usize,
    bias: bool,
    batch_first: bool,
    directions: usize,
    /// GRU: the reset gate scales the projected state (else the state before it).
    reset_after: bool,
    returns: Returns,
}

impl Recurrent {
    pub(crate) fn new(a: NodeAttrs<'_>, cell: Cell) -> Self {
        Recurrent {
            cell,
            hidden: a.int("hidden_size").max(1) as usize,
            bias: a.bool("bias"),
            batch_first: a.bool("batch_first"),
            directions: if a.bool("bidirectional") { 2 } else { 1 },
            reset_after: cell == Cell::Lstm || a.bool("reset_after"),
            returns: match a.str("returns") {
                "h_n" => Returns::Hidden,
                "c_n" => Returns::CellState,
                _ => Returns::Output,
            },
        }
    }
}

fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// One direction's weights.
struct Weights<'a, T> {
    w_ih: ArrayView2<'a, T>,
    w_hh: ArrayView2<'a, T>,
    b_ih: Option<ndarray::ArrayView1<'a, T>>,
    b_hh: Option<ndarray::ArrayView1<'a, T>>,
}

/// Runs one direction over `x` [L, N, I] from `h` (and `c`) [N, H]: writes
/// each step's hidden state into `out` [L, N, H] and leaves the final
/// states in `h` and `c`.
fn direction<T: Float>(
    k: &Recurrent,
    x: ArrayView3<'_, T>,
    w: &Weights<'_, T>,
    reverse: bool,
    (h, c): (&mut Array2<T>, &mut Array2<T>),
    out: &mut Array3<T>,
) -> Result<(), String> {
    let (steps, batch, input) = x.dim();
    let hs = k.hidden;
    // Every step's input projection at once: [L*N, G*H].
    let flat = x.to_shape((steps * batch, input)).map_err(|e| e.to_string())?;
    let xw = affine(flat.view().into_dyn(), w.w_ih, w.b_ih)?.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
    for step in 0..steps {
        let t = if reverse { steps - 1 - step } else { step };
        let mut hw =
            affine(h.view().into_dyn(), w.w_hh, w.b_hh)?.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
        if !k.reset_after {
            // The n block projects r * h instead of h.
            let mut rh = h.clone();
            for ((b, j), v) in rh.indexed_iter_mut() {
                *v *= sigmoid(xw[[t * batch + b, j]] + hw[[b, j]]);
            }
            let w_hn = w.w_hh.slice(s![2 * hs.., ..]);
            let b_hn = w.b_hh.map(|b| b.slice_move(s![2 * hs..]));
            let hn = affine(rh.view().into_dyn(), w_hn, b_hn)?;
            hw.slice_mut(s![.., 2 * hs..]).assign(&hn.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?);
        }
        for b in 0..batch {
            let xg = xw.row(t * batch + b);
            let hg = hw.row(b);
            for j in 0..hs {
                let gate = |g: usize| xg[g * hs + j] + hg[g * hs + j];
                match k.cell {
                    Cell::Lstm => {
                        let (i, f, g, o) = (sigmoid(gate(0)), sigmoid(gate(1)), gate(2).tanh(), sigmoid(gate(3)));
                        let cell = f * c[[b, j]] + i * g;
                        c[[b, j]] = cell;
                        h[[b, j]] = o * cell.tanh();
                    }
                    Cell::Gru => {
                        let (r, z) = (sigmoid(gate(0)), sigmoid(gate(1)));
                        // Without reset_after, r already scaled the state before its projection.
                        let projected = if k.reset_after { r * hg[2 * hs + j] } else { hg[2 * hs + j] };
                        let n = (xg[2 * hs + j] + projected).tanh();
                        h[[b, j]] = (T::one() - z) * n + z * h[[b, j]];
                    }
                }
            }
        }
        out.slice_mut(s![t, .., ..]).assign(h);
    }
    Ok(())
}

/// Row `d` (one direction) of a weight stacked by direction.
fn direction_row<'a, T, D: ndarray::Dimension>(
    w: ndarray::ArrayViewD<'a, T>,
    d: usize,
) -> Result<ndarray::ArrayView<'a, T, D>, String> {
    if d >= w.shape().first().copied().unwrap_or(0) {
        return Err(format!("a weight of shape {:?} has no direction {d}", w.shape()));
    }
    w.index_axis_move(Axis(0), d).into_dimensionality::<D>().map_err(|e| e.to_string())
}

fn run<T: Float>(k: &Recurrent, args: &[Arg<'_>]) -> KernelResult {
    let params = if k.bias { 4 } else { 2 };
    let data =
        args.len().checked_sub(params).filter(|&d| (1..=1 + k.cell.states()).contains(&d)).ok_or_else(|| {
            format!("expects the input, up to {} initial states and {params} weights", k.cell.states())
        })?;
    let x = view::<T>(args, 0)?.into_dimensionality::<Ix3>().map_err(|e| e.to_string())?;
    // Work in [L, N, I].
    let x = if k.batch_first { x.permuted_axes([1, 0, 2]) } else { x };
    let (steps, batch, _) = x.dim();
    let (hs, dirs) = (k.hidden, k.directions);
    let state = |i: usize| -> Result<Array3<T>, String> {
        if i < data {
            let v = view::<T>(args, i)?.into_dimensionality::<Ix3>().map_err(|e| e.to_string())?;
            if v.dim() != (dirs, batch, hs) {
                return Err(format!("initial state {:?} is not [{dirs}, {batch}, {hs}]", v.shape()));
            }
            Ok(v.to_owned())
        } else {
            Ok(Array3::zeros((dirs, batch, hs)))
        }
    };
    let (mut h_n, mut c_n) =
        (state(1)?, if k.cell == Cell::Lstm { state(2)? } else { Array3::zeros((dirs, batch, hs)) });
    let param = |i: usize| view::<T>(args, data + i);
    let (w_ih, w_hh) = (param(0)?, param(1)?);
    let g = k.cell.gates() * hs;
    let mut output = Array3::<T>::zeros((steps, batch, dirs * hs));
    for d in 0..dirs {
        let bias = |i: usize| if k.bias { param(i).and_then(|b| direction_row(b, d)).map(Some) } else { Ok(None) };
        let weights = Weights {
            w_ih: direction_row(w_ih.clone(), d)?,
            w_hh: direction_row(w_hh.clone(), d)?,
            b_ih: bias(2)?,
            b_hh: bias(3)?,
        };
        if weights.w_hh.dim() != (g, hs) {
            return Err(format!("weight_hh row {d} is {:?}, expected [{g}, {hs}]", weights.w_hh.shape()));
        }
        let mut h = h_n.index_axis(Axis(0), d).to_owned();
        let mut c = c_n.index_axis(Axis(0), d).to_owned();
        let mut out = Array3::<T>::zeros((steps, batch, hs));
        direction(k, x, &weights, d == 1, (&mut h, &mut c), &mut out)?;
        output.slice_mut(s![.., .., d * hs..(d + 1) * hs]).assign(&out);
        h_n.index_axis_mut(Axis(0), d).assign(&h);
        c_n.index_axis_mut(Axis(0), d).assign(&c);
    }
    let value = match k.returns {
        Returns::Output if k.batch_first => output.permuted_axes([1, 0, 2]).as_standard_layout().into_owned(),
        Returns::Output => output,
        Returns::Hidden => h_n,
        Returns::CellState => c_n,
    };
    Ok(T::into_value(value.into_dyn()))
}

impl Kernel for Recurrent {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args))
    }
}
