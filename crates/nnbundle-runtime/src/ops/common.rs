//! What every op kernel uses: the `Kernel` trait, the float types they
//! compute with, typed operand views and the loops that split work across
//! threads.

use std::borrow::{Borrow, Cow};
use std::sync::OnceLock;

use ndarray::{ArrayD, ArrayView4, Axis, LinalgScalar};
use nnbundle_format::DType;
use nnbundle_graph::Window;

use crate::linalg::scratch::Scratch;
use crate::value::{Arg, Scalar, Value};

/// What a kernel returns: its output, or a message the runtime prefixes with the node.
pub(crate) type KernelResult = Result<Value, String>;

/// One op's implementation for one node.
pub(crate) trait Kernel: Send + Sync {
    /// Computes the output from the operands, in slot order, taking large
    /// f32 outputs from `scratch`.
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult;

    /// Takes over a ReLU applied to this kernel's output (which nothing else
    /// reads): the kernel then applies it itself, while the output is still
    /// in cache. Returns whether it did; most kernels do not.
    fn fuse_relu(&mut self) -> bool {
        false
    }

    /// Takes over an `Add` of another value to this kernel's output (which
    /// nothing else reads): the kernel then receives that value as its last
    /// operand and adds it to each complete sum. Returns whether it did.
    fn fuse_addend(&mut self) -> bool {
        false
    }

    /// Computes the output from its only operand, a value no later step
    /// reads, which the kernel may reuse (a reshape keeps its buffer). The
    /// default runs [`Kernel::run`] on it, then hands its buffer to `scratch`.
    fn run_owned(&self, x: Value, scratch: &Scratch) -> KernelResult {
        let y = self.run(&[Arg::Value(&x)], scratch);
        scratch.recycle(x);
        y
    }

    /// Takes a bias operand after the weights, which the node does not
    /// have (a batch norm folded into it brings one). Returns whether it did.
    fn take_bias(&mut self) -> bool {
        false
    }

    /// Lets this kernel return a 2-D output column-major (the transpose of a
    /// row-major array), for a sole reader that takes either layout at no
    /// cost. Returns whether it may; most kernels do not.
    fn allow_transposed_output(&mut self) -> bool {
        false
    }
}

/// `make()`, made once and kept in `cache` when there is one (weights a
/// model owns, which change only through a re-plan), else made for this run
/// only (weights computed by the graph).
pub(crate) fn prepared<'a, B: ToOwned + ?Sized>(
    cache: Option<&'a OnceLock<B::Owned>>,
    make: impl FnOnce() -> B::Owned,
) -> Cow<'a, B> {
    match cache {
        Some(cache) => Cow::Borrowed(cache.get_or_init(make).borrow()),
        None => Cow::Owned(make()),
    }
}

/// Float element types the kernels compute with.
pub(crate) trait Float:
    num_traits::Float
    + num_traits::NumAssign
    + ndarray::ScalarOperand
    + LinalgScalar
    + Scalar
    + std::iter::Sum
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    fn from_f64(x: f64) -> Self;
    fn erf(self) -> Self;
    /// `self.exp()`, the same bits, without `exp`'s slow path for arguments
    /// whose exponential underflows (every masked attention score does; the
    /// slow path took 5% of a BERT encoder). See [`exp_without_underflow`].
    fn exp_or_zero(self) -> Self;
    /// Writes the logistic sigmoid of `x` (times `x` with `times_x`: SiLU)
    /// into `y` with a vectorized kernel, where this type has one; returns
    /// whether it did.
    fn sigmoid_into(x: &[Self], y: &mut [Self], times_x: bool) -> bool;
    fn into_value(a: ArrayD<Self>) -> Value;
    /// A buffer of `len` zeros, recycled from `scratch` where this type is pooled.
    fn zeros_in(scratch: &Scratch, len: usize) -> Vec<Self>;
    /// A buffer of `len` elements holding unspecified values (recycled from
    /// `scratch` where this type is pooled), for an output written whole.
    fn buffer_in(scratch: &Scratch, len: usize) -> Vec<Self>;
    /// Gives a buffer no longer needed back to `scratch` where this type is pooled.
    fn recycle_in(scratch: &Scratch, buffer: Vec<Self>);
}

/// `x.exp()` where every call of `exp` takes an argument of at least
/// `plain` (above which `exp` has no special case), except for `x` between
/// `zero` and `plain` (rare: subnormal results); below `zero` the result
/// rounds to 0. The argument is clamped before the call because the
/// compiler may run `exp` on both sides of a branch and select.
fn exp_without_underflow<T: num_traits::Float>(x: T, plain: T, zero: T) -> T {
    // NaN stays NaN (the comparison is false).
    let clamped = if x < plain { plain } else { x };
    let e = clamped.exp();
    if x >= plain || x.is_nan() {
        e
    } else if x < zero {
        T::zero()
    } else {
        // `black_box` keeps this call behind its branch.
        std::hint::black_box(x).exp()
    }
}

impl Float for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    fn exp_or_zero(self) -> Self {
        // e^-104 is below half the smallest subnormal f32; from -87 on, no
        // special case.
        exp_without_underflow(self, -87.0, -104.0)
    }
    fn sigmoid_into(x: &[f32], y: &mut [f32], times_x: bool) -> bool {
        crate::linalg::sigmoid::sigmoid(x, y, times_x);
        true
    }
    fn into_value(a: ArrayD<Self>) -> Value {
        Value::F32(a)
    }
    fn zeros_in(scratch: &Scratch, len: usize) -> Vec<f32> {
        scratch.zeros(len)
    }
    fn buffer_in(scratch: &Scratch, len: usize) -> Vec<f32> {
        scratch.any(len)
    }
    fn recycle_in(scratch: &Scratch, buffer: Vec<f32>) {
        scratch.keep(buffer);
    }
}

impl Float for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn exp_or_zero(self) -> Self {
        // e^-746 is below half the smallest subnormal f64; from -700 on, no
        // special case.
        exp_without_underflow(self, -700.0, -746.0)
    }
    fn sigmoid_into(_: &[f64], _: &mut [f64], _: bool) -> bool {
        false
    }
    fn into_value(a: ArrayD<Self>) -> Value {
        Value::F64(a)
    }
    fn zeros_in(_: &Scratch, len: usize) -> Vec<f64> {
        vec![0.0; len]
    }
    fn buffer_in(_: &Scratch, len: usize) -> Vec<f64> {
        vec![0.0; len]
    }
    fn recycle_in(_: &Scratch, _: Vec<f64>) {}
}

/// Calls `$body` with `T` bound to the float type of `$dtype`.
macro_rules! with_float {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            nnbundle_format::DType::F32 => {
                type $T = f32;
                $body
            }
            nnbundle_format::DType::F64 => {
                type $T = f64;
                $body
            }
            other => Err(format!("computes in f32 or f64, input is {other}")),
        }
    };
}
pub(crate) use with_float;

/// A typed view of operand `i`, or an error naming it.
pub(crate) fn view<'a, T: Scalar>(args: &[Arg<'a>], i: usize) -> Result<ndarray::ArrayViewD<'a, T>, String> {
    let arg = args.get(i).ok_or_else(|| format!("operand {i} is missing"))?;
    arg.view::<T>().ok_or_else(|| format!("operand {i} is {}, expected {}", arg.dtype(), T::DTYPE))
}

/// Elements per task when an elementwise op splits across threads (ops on
/// fewer than twice this run on one, 16 times that with the workers asleep:
/// see [`crate::pool`]): 32 Ki floats, about 10 µs of a memory-bound pass.
const ELEMENTS_PER_TASK: usize = 1 << 15;

/// Calls `f(start, chunk)` over chunks of `out` (`start` is the chunk's
/// first index), on rayon's threads when `out` is large.
pub(crate) fn by_chunks<U: Send>(out: &mut [U], f: impl Fn(usize, &mut [U]) + Sync) {
    if crate::pool::worth_splitting(out.len(), 2 * ELEMENTS_PER_TASK) {
        use rayon::prelude::*;
        out.par_chunks_mut(ELEMENTS_PER_TASK).enumerate().for_each(|(i, chunk)| f(i * ELEMENTS_PER_TASK, chunk));
    } else {
        f(0, out);
    }
}

/// Calls `f(input, output)` for each plane of `x` (`plane` long) and the
/// matching plane of `y` (`out_plane` long), on rayon's threads when `y` is
/// large.
pub(crate) fn by_planes<T: Sync, U: Send>(
    (x, plane): (&[T], usize),
    (y, out_plane): (&mut [U], usize),
    f: impl Fn(&[T], &mut [U]) + Sync,
) {
    let (plane, out_plane) = (plane.max(1), out_plane.max(1));
    if crate::pool::worth_splitting(y.len(), 2 * ELEMENTS_PER_TASK) {
        use rayon::prelude::*;
        x.par_chunks_exact(plane).zip(y.par_chunks_exact_mut(out_plane)).for_each(|(x, y)| f(x, y));
    } else {
        x.chunks_exact(plane).zip(y.chunks_exact_mut(out_plane)).for_each(|(x, y)| f(x, y));
    }
}

/// numpy broadcasting of two shapes; `what` names them in the error.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize], what: &str) -> Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let x = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
            let y = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
            match (x, y) {
                (x, y) if x == y => Ok(x),
                (1, y) => Ok(y),
                (x, 1) => Ok(x),
                _ => Err(format!("{what} {a:?} and {b:?} do not broadcast")),
            }
        })
        .collect()
}

/// The dtype of the first operand.
pub(crate) fn first_dtype(args: &[Arg<'_>]) -> DType {
    args.first().map_or(DType::F32, Arg::dtype)
}

/// Adds a unit height to 1-D shapes: `[N, C, L]` becomes `[N, C, 1, L]`.
pub(crate) fn as_4d<'a, T>(x: ndarray::ArrayViewD<'a, T>, spatial: usize) -> Result<ArrayView4<'a, T>, String> {
    let x = if spatial == 1 { x.insert_axis(Axis(2)) } else { x };
    x.into_dimensionality().map_err(|e| e.to_string())
}

/// Windows for height and width of a 1-D or 2-D op.
pub(crate) fn hw(windows: Vec<Window>) -> [Window; 2] {
    match windows.as_slice() {
        [w] => [UNIT, *w],
        [h, w] => [*h, *w],
        _ => [UNIT, UNIT],
    }
}

pub(crate) const UNIT: Window =
    Window { kernel: 1, stride: 1, pad_begin: 0, pad_end: 0, dilation: 1, ceil_mode: false };

/// The larger of two values, NaN if either is (PyTorch's max pooling and amax).
pub(crate) fn nan_max<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || a > b { a } else { b }
}

/// How two C-order operands of numpy-broadcast shapes line up with their
/// output: the output is a sequence of runs of `inner.0` elements; in a run, each
/// operand advances by its inner stride (1, or 0 for a repeated value), and
/// between runs by the strides of the outer dimensions. Dimensions are
/// merged where both operands continue contiguously or both repeat, so a
/// per-channel scale of `[N, C, H, W]` is `N * C` runs of `H * W` over one
/// value of the scale each.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Broadcast {
    /// Outer dimensions, outermost first: size and each operand's stride.
    outer: Vec<(usize, usize, usize)>,
    /// The run: length and each operand's stride (0 or 1).
    inner: (usize, usize, usize),
}

impl Broadcast {
    /// The layout of operands of shapes `a` and `b` against `out` (their broadcast shape).
    pub(crate) fn new(out: &[usize], a: &[usize], b: &[usize]) -> Broadcast {
        // C-order strides of an operand aligned to the output's last dimensions, 0 where it repeats.
        let strides = |shape: &[usize]| {
            let mut strides = vec![0; out.len()];
            let mut stride = 1;
            for (i, &n) in shape.iter().enumerate().rev() {
                let at = out.len() - shape.len() + i;
                strides[at] = if n == 1 { 0 } else { stride };
                stride *= n;
            }
            strides
        };
        let (sa, sb) = (strides(a), strides(b));
        let mut dims: Vec<(usize, usize, usize)> = Vec::new();
        for i in (0..out.len()).rev().filter(|&i| out[i] != 1) {
            match dims.last_mut() {
                Some((n, a, b)) if sa[i] == *a * *n && sb[i] == *b * *n => *n *= out[i],
                _ => dims.push((out[i], sa[i], sb[i])),
            }
        }
        dims.reverse();
        // All sizes 1 (a single element): one run of one.
        let inner = dims.pop().unwrap_or((1, 0, 0));
        Broadcast { outer: dims, inner }
    }

    /// Fills `out` with `f(a, b)`, on rayon's threads when `out` is large.
    pub(crate) fn apply<T: Copy + Send + Sync, U: Send>(
        &self,
        out: &mut [U],
        (a, b): (&[T], &[T]),
        f: impl Fn(T, T) -> U + Sync,
    ) {
        let run = self.inner.0;
        if run == 0 || out.is_empty() {
            return;
        }
        let fill = |row: usize, out: &mut [U]| {
            let (mut oa, mut ob, mut rest) = (0, 0, row);
            for &(n, sa, sb) in self.outer.iter().rev() {
                let i = rest % n;
                rest /= n;
                oa += i * sa;
                ob += i * sb;
            }
            match (self.inner.1, self.inner.2) {
                (1, 1) => {
                    out.iter_mut().zip(&a[oa..oa + run]).zip(&b[ob..ob + run]).for_each(|((o, &x), &y)| *o = f(x, y))
                }
                (1, _) => out.iter_mut().zip(&a[oa..oa + run]).for_each(|(o, &x)| *o = f(x, b[ob])),
                (_, 1) => out.iter_mut().zip(&b[ob..ob + run]).for_each(|(o, &y)| *o = f(a[oa], y)),
                _ => out.iter_mut().for_each(|o| *o = f(a[oa], b[ob])),
            }
        };
        if crate::pool::worth_splitting(out.len(), 2 * ELEMENTS_PER_TASK) {
            use rayon::prelude::*;
            // Whole runs per task, about ELEMENTS_PER_TASK elements each.
            let per_task = ELEMENTS_PER_TASK.div_ceil(run) * run;
            out.par_chunks_mut(per_task).enumerate().for_each(|(t, chunk)| {
                let first = t * per_task / run;
                chunk.chunks_mut(run).enumerate().for_each(|(r, out)| fill(first + r, out));
            });
        } else {
            out.chunks_mut(run).enumerate().for_each(|(r, out)| fill(r, out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Float;

    /// `exp_or_zero` gives `exp`'s bits everywhere, underflow band included.
    #[test]
    fn exp_or_zero_is_exp() {
        let mut f32s = vec![f32::NAN, f32::NEG_INFINITY, f32::INFINITY, f32::MIN, -1e30, 0.0, -0.0, 88.7, 89.0];
        // Steps of 1/64 over the special-case bands, and around zero.
        f32s.extend((-110 * 64..-80 * 64).chain(-640..640).map(|i| i as f32 / 64.0));
        for x in f32s {
            assert_eq!(x.exp_or_zero().to_bits(), x.exp().to_bits(), "f32 {x}");
        }
        let mut f64s = vec![f64::NAN, f64::NEG_INFINITY, f64::MIN, -1e300, 0.0, 709.0, 710.0];
        f64s.extend((-760 * 16..-690 * 16).map(|i| i as f64 / 16.0));
        for x in f64s {
            assert_eq!(x.exp_or_zero().to_bits(), x.exp().to_bits(), "f64 {x}");
        }
    }
}
