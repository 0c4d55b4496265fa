//! Kernels: the runtime's implementation of each op, built once per node at
//! load time (attributes parsed, windows computed), run many times.

mod activation;
mod attention;
mod conv;
mod elementwise;
mod gemm;
mod index;
mod linear;
mod matmul;
mod norm;
mod pool;
mod scratch;
mod shape;
mod winograd;

use std::borrow::{Borrow, Cow};
use std::sync::OnceLock;

use ndarray::{ArrayD, ArrayView2, ArrayViewMut2, LinalgScalar};
use nnbundle_format::DType;
use nnbundle_graph::{Node, OpKind};

pub(crate) use scratch::Scratch;

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
    /// Whether [`Float::conv_product`] reads a unit-stride convolution's
    /// input in place from a zero-padded copy ([`conv::Padded`]).
    const READS_IN_PLACE: bool;
    /// One group's convolution weights `[og, taps]`, prepared once per run
    /// for [`Float::conv_product`] (packed for the GEMM in f32).
    type ConvWeights<'a>: Sync + Clone
    where
        Self: 'a;
    /// Prepares each group's weights; with `cache` (a model's own weights,
    /// which change only through a re-plan), once for the kernel's life.
    fn conv_weights<'a>(
        groups: Vec<ArrayView2<'a, Self>>,
        cache: Option<&'a OnceLock<Vec<gemm::PackedA>>>,
    ) -> Cow<'a, [Self::ConvWeights<'a>]>;
    /// `out = bias + w · cols (+ addend)` (`bias[i]` along row `i`, the
    /// addend laid out as `out`) for one group's prepared weights and one
    /// image's im2col matrix, with this type's fastest product, then a ReLU
    /// if `relu`.
    fn conv_product(
        w: &Self::ConvWeights<'_>,
        cols: &conv::Im2Col<'_, Self>,
        out: &mut ArrayViewMut2<'_, Self>,
        bias_addend_relu: (&[Self], Option<&[Self]>, bool),
    );
    /// `y = conv(p) + bias (+ addend)`, ReLU'd if asked, for a 3x3 kernel
    /// `w [outputs, channels, 3, 3]` with unit strides and dilations, by
    /// Winograd's algorithm where this type has it (f32): returns whether it
    /// did. With `cache` (a model's own weights), the weights are transformed
    /// once for the kernel's life.
    fn conv_winograd(
        _p: &winograd::Problem<'_, Self>,
        _w: &[Self],
        _cache: Option<&OnceLock<Vec<gemm::PackedA>>>,
        _y: &mut [Self],
    ) -> bool {
        false
    }
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
    const READS_IN_PLACE: bool = true;
    type ConvWeights<'a> = gemm::PackedA;
    fn conv_weights<'a>(
        groups: Vec<ArrayView2<'a, f32>>,
        cache: Option<&'a OnceLock<Vec<gemm::PackedA>>>,
    ) -> Cow<'a, [gemm::PackedA]> {
        prepared(cache, || groups.iter().map(|w| gemm::PackedA::pack(w.view())).collect())
    }
    fn conv_product(
        w: &gemm::PackedA,
        cols: &conv::Im2Col<'_, f32>,
        out: &mut ArrayViewMut2<'_, f32>,
        (bias, addend, relu): (&[f32], Option<&[f32]>, bool),
    ) {
        // The sums start at the bias, and the addend and the ReLU apply to
        // each tile as it is stored: no pass over the output before or after.
        let epilogue = gemm::Epilogue::relu_if(relu);
        match (&cols.padded, out.as_slice_mut()) {
            (Some(padded), Some(out)) => {
                let (rows, width) = cols.out_dim();
                let b = gemm::Windows { src: padded.data, offsets: padded.offsets, rows, pitch: padded.pitch, width };
                gemm::gemm_windows(w, &b, out, bias, (addend, epilogue));
            }
            _ => match addend {
                None => gemm::gemm(w, cols, out, gemm::Init::RowBias(bias), epilogue),
                Some(addend) => {
                    gemm::gemm(w, cols, out, gemm::Init::RowBias(bias), gemm::Epilogue::None);
                    out.iter_mut().zip(addend).for_each(|(d, &r)| *d = epilogue.apply(*d + r));
                }
            },
        }
    }
    fn conv_winograd(
        p: &winograd::Problem<'_, f32>,
        w: &[f32],
        cache: Option<&OnceLock<Vec<gemm::PackedA>>>,
        y: &mut [f32],
    ) -> bool {
        let u = prepared::<[_]>(cache, || winograd::transform_weights(w, (p.outputs, p.channels)));
        winograd::convolve(p, &u, y);
        true
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
    const READS_IN_PLACE: bool = false;
    type ConvWeights<'a> = ArrayView2<'a, f64>;
    fn conv_weights<'a>(
        groups: Vec<ArrayView2<'a, f64>>,
        _: Option<&'a OnceLock<Vec<gemm::PackedA>>>,
    ) -> Cow<'a, [ArrayView2<'a, f64>]> {
        Cow::Owned(groups)
    }
    fn conv_product(
        w: &ArrayView2<'_, f64>,
        cols: &conv::Im2Col<'_, f64>,
        out: &mut ArrayViewMut2<'_, f64>,
        (bias, addend, relu): (&[f64], Option<&[f64]>, bool),
    ) {
        for (mut row, &b) in out.rows_mut().into_iter().zip(bias) {
            row.fill(b);
        }
        ndarray::linalg::general_mat_mul(1.0, w, &cols.materialize(), 1.0, out);
        if let Some(addend) = addend {
            out.iter_mut().zip(addend).for_each(|(d, &r)| *d += r);
        }
        if relu {
            out.mapv_inplace(activation::relu);
        }
    }
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

/// Whether the runtime implements `op`.
pub fn supports(op: OpKind) -> bool {
    build_kernel(&Node { name: String::new(), op, inputs: Vec::new(), attrs: Default::default() }).is_some()
}

/// The kernel for a checked node; `None` for an op this runtime does not implement.
pub(crate) fn build_kernel(node: &Node) -> Option<Box<dyn Kernel>> {
    let a = &node.attrs;
    Some(match node.op {
        OpKind::Linear => Box::new(linear::Linear::new(a)),
        OpKind::Conv1d => Box::new(conv::Conv::new(a, 1)),
        OpKind::Conv2d => Box::new(conv::Conv::new(a, 2)),
        OpKind::MaxPool1d => Box::new(pool::Pool::new(a, 1, pool::Kind::Max)),
        OpKind::MaxPool2d => Box::new(pool::Pool::new(a, 2, pool::Kind::Max)),
        OpKind::AvgPool1d => Box::new(pool::Pool::new(a, 1, pool::Kind::Avg)),
        OpKind::AvgPool2d => Box::new(pool::Pool::new(a, 2, pool::Kind::Avg)),
        OpKind::AdaptiveAvgPool2d => Box::new(pool::AdaptiveAvg::new(a)),
        OpKind::BatchNorm1d | OpKind::BatchNorm2d => Box::new(norm::BatchNorm::new(a)),
        OpKind::LayerNorm => Box::new(norm::LayerNorm::new(a)),
        OpKind::Embedding => Box::new(index::Embedding),
        OpKind::Gather => Box::new(index::Gather::new(a)),
        OpKind::Dropout | OpKind::Identity => Box::new(shape::Passthrough),
        OpKind::Flatten => Box::new(shape::Flatten::new(a)),
        OpKind::Reshape => Box::new(shape::Reshape::new(a)),
        OpKind::Permute => Box::new(shape::Permute::new(a)),
        OpKind::Concat => Box::new(shape::Concat::new(a)),
        OpKind::Add => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Add)),
        OpKind::Sub => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Sub)),
        OpKind::Mul => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Mul)),
        OpKind::Div => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Div)),
        OpKind::MatMul => Box::new(matmul::MatMul),
        OpKind::ReLU => Box::new(activation::Unary::relu()),
        OpKind::LeakyReLU => Box::new(activation::Unary::leaky_relu(a)),
        OpKind::GELU => Box::new(activation::Unary::gelu(a)),
        OpKind::SiLU => Box::new(activation::Unary::silu()),
        OpKind::Sigmoid => Box::new(activation::Unary::sigmoid()),
        OpKind::Tanh => Box::new(activation::Unary::tanh()),
        OpKind::Softmax => Box::new(activation::Softmax::new(a, false)),
        OpKind::LogSoftmax => Box::new(activation::Softmax::new(a, true)),
        OpKind::MultiheadAttention => Box::new(attention::MultiheadAttention::new(a)),
        _ => return None,
    })
}

/// Whether a test of an AVX-512 path can run here. When the path reports
/// itself unavailable, the test is skipped with a note, except under
/// `CI=true` on a CPU whose `/proc/cpuinfo` lists `avx512f`: there the
/// detection is wrong, and the test fails instead of passing unchecked.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn avx512_test_runs(available: bool) -> bool {
    if available {
        return true;
    }
    let cpu_has_it = std::fs::read_to_string("/proc/cpuinfo")
        .is_ok_and(|info| info.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "avx512f")));
    assert!(
        !(cpu_has_it && std::env::var("CI").as_deref() == Ok("true")),
        "the CPU lists avx512f but the AVX-512 path reports itself unavailable: the bit-for-bit test did not run"
    );
    eprintln!("skipped: this CPU lacks AVX-512F");
    false
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
