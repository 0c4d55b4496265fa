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
    fn into_value(a: ArrayD<Self>) -> Value;
    /// A buffer of `len` zeros, recycled from `scratch` where this type is pooled.
    fn zeros_in(scratch: &Scratch, len: usize) -> Vec<Self>;
    /// A buffer of `len` elements holding unspecified values (recycled from
    /// `scratch` where this type is pooled), for an output written whole.
    fn buffer_in(scratch: &Scratch, len: usize) -> Vec<Self>;
    /// Gives a buffer no longer needed back to `scratch` where this type is pooled.
    fn recycle_in(scratch: &Scratch, buffer: Vec<Self>);
}

impl Float for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn erf(self) -> Self {
        libm::erff(self)
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

/// Elements per task when an elementwise op splits across threads.
const ELEMENTS_PER_TASK: usize = 1 << 16;

/// Calls `f(start, chunk)` over chunks of `out` (`start` is the chunk's
/// first index), on rayon's threads when `out` is large.
pub(crate) fn by_chunks<U: Send>(out: &mut [U], f: impl Fn(usize, &mut [U]) + Sync) {
    if out.len() >= 2 * ELEMENTS_PER_TASK && rayon::current_num_threads() > 1 {
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
    if y.len() >= 2 * ELEMENTS_PER_TASK && rayon::current_num_threads() > 1 {
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
