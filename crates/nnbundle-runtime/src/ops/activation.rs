//! Elementwise activations and `Softmax`/`LogSoftmax`.

use ndarray::Axis;
use nnbundle_graph::{NodeAttrs, normalize_axis};

use super::Scratch;
use super::{Float, Kernel, KernelResult, by_chunks, by_planes, first_dtype, view, with_float};
use crate::linalg::relu;
use crate::value::Arg;

#[derive(Clone, Copy)]
enum Fun {
    Relu,
    LeakyRelu(f64),
    GeluErf,
    GeluTanh,
    Silu,
    Sigmoid,
    Tanh,
    Hardtanh(f64, f64),
    Hardsigmoid(f64, f64),
    Hardswish,
    Exp,
    Log,
    Sqrt,
    Erf,
    Neg,
    Abs,
    Reciprocal,
    Floor,
    Elu(f64),
    Selu,
    Softplus(f64, f64),
}

pub(crate) struct Unary(Fun);

impl Unary {
    pub(crate) fn relu() -> Self {
        Unary(Fun::Relu)
    }
    pub(crate) fn leaky_relu(a: NodeAttrs<'_>) -> Self {
        Unary(Fun::LeakyRelu(a.float("negative_slope")))
    }
    pub(crate) fn gelu(a: NodeAttrs<'_>) -> Self {
        Unary(if a.str("approximate") == "tanh" { Fun::GeluTanh } else { Fun::GeluErf })
    }
    pub(crate) fn silu() -> Self {
        Unary(Fun::Silu)
    }
    pub(crate) fn sigmoid() -> Self {
        Unary(Fun::Sigmoid)
    }
    pub(crate) fn tanh() -> Self {
        Unary(Fun::Tanh)
    }
    pub(crate) fn hardtanh(a: NodeAttrs<'_>) -> Self {
        Unary(Fun::Hardtanh(a.float("min_val"), a.float("max_val")))
    }
    pub(crate) fn hardsigmoid(a: NodeAttrs<'_>) -> Self {
        Unary(Fun::Hardsigmoid(a.float("alpha"), a.float("beta")))
    }
    pub(crate) fn hardswish() -> Self {
        Unary(Fun::Hardswish)
    }
    pub(crate) fn elu(a: NodeAttrs<'_>) -> Self {
        Unary(Fun::Elu(a.float("alpha")))
    }
    pub(crate) fn floor() -> Self {
        Unary(Fun::Floor)
    }
    pub(crate) fn selu() -> Self {
        Unary(Fun::Selu)
    }
    pub(crate) fn softplus(a: NodeAttrs<'_>) -> Self {
        Unary(Fun::Softplus(a.float("beta"), a.float("threshold")))
    }
    pub(crate) fn exp() -> Self {
        Unary(Fun::Exp)
    }
    pub(crate) fn log() -> Self {
        Unary(Fun::Log)
    }
    pub(crate) fn sqrt() -> Self {
        Unary(Fun::Sqrt)
    }
    pub(crate) fn erf() -> Self {
        Unary(Fun::Erf)
    }
    pub(crate) fn neg() -> Self {
        Unary(Fun::Neg)
    }
    pub(crate) fn abs() -> Self {
        Unary(Fun::Abs)
    }
    pub(crate) fn reciprocal() -> Self {
        Unary(Fun::Reciprocal)
    }
}

/// `x` clamped to `[lo, hi]` by selects, so a NaN stays NaN.
fn clamp<T: Float>(x: T, lo: T, hi: T) -> T {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// ReLU over `xs` in place (split across threads when large, as the `ReLU`
/// op is): what kernels that fuse a ReLU apply to their output, with the
/// same select as the op, so results are bit-identical.
pub(crate) fn relu_in_place<T: Float>(xs: &mut [T]) {
    by_chunks(xs, |_, xs| xs.iter_mut().for_each(|x| *x = relu(*x)));
}

#[inline(always)]
fn apply<T: Float>(f: Fun, x: T) -> T {
    let half = T::from_f64(0.5);
    match f {
        Fun::Relu => relu(x),
        Fun::LeakyRelu(slope) => {
            if x >= T::zero() {
                x
            } else {
                x * T::from_f64(slope)
            }
        }
        Fun::GeluErf => x * half * (T::one() + (x * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf()),
        Fun::GeluTanh => {
            let inner = T::from_f64((2.0 / std::f64::consts::PI).sqrt()) * (x + T::from_f64(0.044715) * x * x * x);
            x * half * (T::one() + inner.tanh())
        }
        Fun::Silu => x * sigmoid(x),
        Fun::Sigmoid => sigmoid(x),
        Fun::Tanh => x.tanh(),
        Fun::Hardtanh(lo, hi) => clamp(x, T::from_f64(lo), T::from_f64(hi)),
        Fun::Hardsigmoid(alpha, beta) => clamp(T::from_f64(alpha) * x + T::from_f64(beta), T::zero(), T::one()),
        Fun::Hardswish => {
            let six = T::from_f64(6.0);
            x * clamp(x + T::from_f64(3.0), T::zero(), six) / six
        }
        Fun::Exp => x.exp(),
        Fun::Log => x.ln(),
        Fun::Sqrt => x.sqrt(),
        Fun::Erf => x.erf(),
        Fun::Neg => -x,
        Fun::Abs => x.abs(),
        Fun::Reciprocal => T::one() / x,
        Fun::Floor => x.floor(),
        Fun::Elu(alpha) => {
            if x > T::zero() {
                x
            } else {
                T::from_f64(alpha) * x.exp_m1()
            }
        }
        Fun::Selu => {
            let scale = T::from_f64(SELU_SCALE);
            if x > T::zero() { scale * x } else { scale * T::from_f64(SELU_ALPHA) * x.exp_m1() }
        }
        Fun::Softplus(beta, threshold) => {
            let bx = T::from_f64(beta) * x;
            if bx > T::from_f64(threshold) { x } else { bx.exp().ln_1p() / T::from_f64(beta) }
        }
    }
}

/// SELU's constants, as PyTorch defines them.
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

/// `PReLU`: `x`, or `weight[c] * x` below zero, `c` the index along dimension 1
/// when there is one slope per channel.
pub(crate) struct PRelu;

fn prelu<T: Float>(args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let w: Vec<T> = view::<T>(args, 1)?.iter().copied().collect();
    let mut y = x.as_standard_layout().into_owned();
    // Elements per channel: everything after dimension 1 (one slope: all of them).
    let inner: usize = if w.len() > 1 { y.shape().get(2..).map_or(1, |s| s.iter().product()) } else { y.len().max(1) };
    if w.len() > 1 && y.shape().get(1) != Some(&w.len()) {
        return Err(format!("{} slopes for an input of shape {:?}", w.len(), y.shape()));
    }
    let slopes = w.len().max(1);
    let flat = y.as_slice_mut().ok_or("layout")?;
    for (k, chunk) in flat.chunks_mut(inner.max(1)).enumerate() {
        let slope = *w.get(k % slopes).ok_or("PReLU has no slope")?;
        chunk.iter_mut().for_each(|v| {
            if *v < T::zero() {
                *v *= slope;
            }
        });
    }
    Ok(T::into_value(y))
}

impl Kernel for PRelu {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => prelu::<T>(args))
    }
}

fn unary<T: Float>(f: Fun, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let x = x.as_standard_layout();
    let mut y = T::buffer_in(scratch, x.len());
    let xs = x.as_slice().expect("standard layout");
    by_chunks(&mut y, |start, y| {
        let x = &xs[start..start + y.len()];
        if matches!(f, Fun::Sigmoid | Fun::Silu) && T::sigmoid_into(x, y, matches!(f, Fun::Silu)) {
            return;
        }
        let pairs = y.iter_mut().zip(x);
        // The common functions get a loop each, with `apply` inlined for one
        // known variant: a per-element call and dispatch took 18% of a
        // MobileNetV3 (HardSwish, HardSigmoid), and left ReLU a branch that
        // random data mispredicts where the select vectorizes.
        macro_rules! loop_per_variant {
            ($($variant:pat),*) => {
                match f {
                    Fun::Relu => pairs.for_each(|(y, &x)| *y = relu(x)),
                    $(f @ $variant => pairs.for_each(|(y, &x)| *y = apply(f, x)),)*
                    f => pairs.for_each(|(y, &x)| *y = apply(f, x)),
                }
            };
        }
        loop_per_variant!(
            Fun::Hardswish,
            Fun::Hardsigmoid(..),
            Fun::Hardtanh(..),
            Fun::Sigmoid,
            Fun::Silu,
            Fun::GeluErf,
            Fun::GeluTanh,
            Fun::Tanh,
            Fun::LeakyRelu(_)
        )
    });
    Ok(T::into_value(ndarray::ArrayD::from_shape_vec(x.raw_dim(), y).map_err(|e| e.to_string())?))
}

impl Kernel for Unary {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => unary::<T>(self.0, args, scratch))
    }
}

pub(crate) struct Softmax {
    dim: i64,
    log: bool,
}

impl Softmax {
    pub(crate) fn new(a: NodeAttrs<'_>, log: bool) -> Self {
        Softmax { dim: a.int("dim"), log }
    }
}

/// Softmax (or log-softmax) of every lane of `y` along `axis`, in place.
pub(crate) fn softmax_lanes<T: Float>(y: &mut ndarray::ArrayD<T>, axis: usize, log: bool) {
    let (mut x, mut out) = (Vec::new(), Vec::new());
    for mut lane in y.lanes_mut(Axis(axis)) {
        x.clear();
        x.extend(lane.iter().copied());
        out.resize(x.len(), T::zero());
        softmax_lane(&x, &mut out, log);
        lane.iter_mut().zip(&out).for_each(|(y, &v)| *y = v);
    }
}

/// Softmax (or log-softmax) of one lane `x` into `y`.
fn softmax_lane<T: Float>(x: &[T], y: &mut [T], log: bool) {
    let max = x.iter().copied().fold(T::neg_infinity(), |m, v| if v > m { v } else { m });
    if log {
        let sum: T = x.iter().map(|&v| (v - max).exp_or_zero()).sum();
        let lse = sum.ln();
        y.iter_mut().zip(x).for_each(|(y, &v)| *y = v - max - lse);
    } else {
        y.iter_mut().zip(x).for_each(|(y, &v)| *y = (v - max).exp_or_zero());
        let sum: T = y.iter().copied().sum();
        y.iter_mut().for_each(|v| *v /= sum);
    }
}

fn softmax<T: Float>(k: &Softmax, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
    let x = view::<T>(args, 0)?;
    if x.ndim() == 0 {
        let mut y = x.to_owned().insert_axis(Axis(0));
        softmax_lanes(&mut y, 0, k.log);
        return Ok(T::into_value(y.remove_axis(Axis(0))));
    }
    let axis = normalize_axis(k.dim, x.ndim()).ok_or("dim out of range")?;
    if axis + 1 == x.ndim() {
        // Lanes along the last dimension (attention scores): contiguous,
        // split across threads.
        let lane = x.shape()[axis];
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let mut y = T::buffer_in(scratch, xs.len());
        by_planes((xs, lane), (&mut y, lane), |x, y| softmax_lane(x, y, k.log));
        return Ok(T::into_value(ndarray::ArrayD::from_shape_vec(x.raw_dim(), y).map_err(|e| e.to_string())?));
    }
    let mut y = x.to_owned();
    softmax_lanes(&mut y, axis, k.log);
    Ok(T::into_value(y))
}

impl Kernel for Softmax {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => softmax::<T>(self, args, scratch))
    }
}
