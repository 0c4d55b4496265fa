//! `Linear`: `y = x Wᵀ + b`.

use ndarray::{ArrayD, Ix1, Ix2, IxDyn};
use nnbundle_graph::Attrs;

use super::{Float, Kernel, KernelResult, first_dtype, view, with_float};
use crate::value::Arg;

pub(crate) struct Linear {
    bias: bool,
}

impl Linear {
    pub(crate) fn new(a: &Attrs) -> Self {
        Linear { bias: a.bool("bias") }
    }
}

/// Up to this many rows, `affine` uses matrix-vector products.
const SMALL_BATCH: usize = 4;

/// `x [.., in] · wᵀ (+ b)` for a weight `w [out, in]`.
pub(crate) fn affine<T: Float>(
    x: ndarray::ArrayViewD<'_, T>,
    w: ndarray::ArrayView2<'_, T>,
    b: Option<ndarray::ArrayView1<'_, T>>,
) -> Result<ArrayD<T>, String> {
    let in_f = *x.shape().last().ok_or("input is a scalar")?;
    let rows = x.len() / in_f.max(1);
    let x2 = x.as_standard_layout();
    let x2 = x2.view().into_shape_with_order((rows, in_f)).map_err(|e| e.to_string())?;
    // Few rows: one matrix-vector product per row reads W once, in its stored
    // row-major order, instead of GEMM repacking all of W on every call.
    let mut y = if rows <= SMALL_BATCH && w.is_standard_layout() {
        let mut y = ndarray::Array2::<T>::zeros((rows, w.nrows()));
        for (mut out, x) in y.outer_iter_mut().zip(x2.outer_iter()) {
            ndarray::linalg::general_mat_vec_mul(T::one(), &w, &x, T::zero(), &mut out);
        }
        y
    } else {
        x2.dot(&w.t())
    };
    if let Some(b) = b {
        y += &b;
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = w.nrows();
    y.into_shape_with_order(IxDyn(&shape)).map_err(|e| e.to_string())
}

fn run<T: Float>(k: &Linear, args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let w = view::<T>(args, 1)?.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
    let b =
        if k.bias { Some(view::<T>(args, 2)?.into_dimensionality::<Ix1>().map_err(|e| e.to_string())?) } else { None };
    affine(x, w, b).map(T::into_value)
}

impl Kernel for Linear {
    fn run(&self, args: &[Arg<'_>]) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args))
    }
}
