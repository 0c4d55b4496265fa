//! `Linear`: `y = x Wᵀ + b`.

use std::sync::OnceLock;

use ndarray::{Array2, ArrayD, Ix1, Ix2, IxDyn};
use nnbundle_format::DType;
use nnbundle_graph::NodeAttrs;

use super::Scratch;
use super::activation::relu_in_place;
use super::{Float, Kernel, KernelResult, first_dtype, prepared, view, with_float};
use crate::linalg::Epilogue;
use crate::linalg::gemm::{Init, PackedA, Prepacked, gemm, pack_panels};
use crate::linalg::matvec::matvec;
use crate::linalg::relu;
use crate::value::{Arg, Value};

pub(crate) struct Linear {
    bias: bool,
    /// The f32 weight packed for GEMM on the first batch that needs it (a
    /// model's weights only change through a re-plan, which builds new kernels).
    packed: OnceLock<PackedA>,
    /// The f32 weight's transpose `Wᵀ [in, out]` in panels for GEMM, for
    /// layers of few inputs (see [`MIN_PACKED_INPUTS`]), on first use.
    panels: OnceLock<Vec<f32>>,
    /// A fused ReLU on the output.
    relu: bool,
    /// Whether a 2-D f32 output may be column-major (its reader takes it).
    transposed_out: bool,
}

impl Linear {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Linear {
            bias: a.bool("bias"),
            packed: OnceLock::new(),
            panels: OnceLock::new(),
            relu: false,
            transposed_out: false,
        }
    }
}

/// Up to this many rows, `affine` uses matrix-vector products.
const SMALL_BATCH: usize = 4;

/// Below this many input features, `y = x · Wᵀ` with `Wᵀ` packed once
/// beats both a dot product per output (whose sum across vector lanes costs
/// more than its few terms: 70% of the textbook MLP at batch 2) and packing
/// `W` as the left operand (tiles of short sums scattered into `y`).
const MIN_PACKED_INPUTS: usize = 64;

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
    let mut y = affine(x, w, b)?;
    if k.relu {
        y.mapv_inplace(relu);
    }
    Ok(T::into_value(y))
}

/// f32: below [`MIN_PACKED_INPUTS`] inputs, `y = x · Wᵀ` with `Wᵀ` packed
/// once (unless a larger batch may take a column-major output). Otherwise
/// matrix-vector products up to [`SMALL_BATCH`] rows; above it, when the
/// output may be column-major, `yᵀ = W · xᵀ` into a row-major `yᵀ`, else
/// into a row-major `y`. The products take `x` in any layout and start
/// their sums at the bias.
fn run_f32(k: &Linear, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
    let x = view::<f32>(args, 0)?;
    let w = view::<f32>(args, 1)?.into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
    let in_f = *x.shape().last().ok_or("input is a scalar")?;
    let rows = x.len() / in_f.max(1);
    let own_weight = matches!(args.get(1), Some(Arg::Weight(_)));
    let transposed = k.transposed_out && x.ndim() == 2 && rows > SMALL_BATCH;
    let few_inputs = in_f < MIN_PACKED_INPUTS && !transposed;
    if in_f != w.ncols() || (rows <= SMALL_BATCH && !few_inputs && !w.is_standard_layout()) {
        return run::<f32>(k, args);
    }
    let bias = if k.bias {
        Some(view::<f32>(args, 2)?.into_dimensionality::<Ix1>().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let bias = bias.as_ref().map(|b| b.as_standard_layout());
    let bias = bias.as_ref().map(|b| b.as_slice().expect("standard layout"));
    let out = w.nrows();
    if let Some(b) = bias
        && b.len() != out
    {
        return Err(format!("bias has {} values for {out} outputs", b.len()));
    }
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 1") = out;
    let reshape = |y: Array2<f32>| y.into_shape_with_order(IxDyn(&shape)).map_err(|e| e.to_string());
    // An output buffer of `rows x out` floats, in either orientation.
    let output = |dim: (usize, usize)| Array2::from_shape_vec(dim, scratch.any(rows * out)).map_err(|e| e.to_string());
    // The products start their sums at the bias and apply the ReLU to each
    // tile as they store it: no pass over the output before or after.
    let epilogue = Epilogue::relu_if(k.relu);
    if rows <= SMALL_BATCH && !few_inputs {
        let x2 = x.as_standard_layout();
        let x2 = x2.view().into_shape_with_order((rows, in_f)).map_err(|e| e.to_string())?;
        let mut y = output((rows, out))?;
        let ws = w.as_slice().expect("checked standard layout");
        for (mut y, x) in y.rows_mut().into_iter().zip(x2.rows()) {
            let y = y.as_slice_mut().expect("standard layout");
            match bias {
                Some(b) => y.copy_from_slice(b),
                None => y.fill(0.0),
            }
            matvec(ws, x.as_slice().expect("standard layout"), y);
        }
        if k.relu {
            relu_in_place(y.as_slice_mut().expect("built in standard layout"));
        }
        return Ok(Value::F32(reshape(y)?));
    }
    // A 2-D input is used as it is laid out: a column-major one (the
    // transposed output of the Linear before) is a row-major `xᵀ`, which the
    // product reads in place or packs by row copies.
    let standard;
    let x2 = match x.view().into_dimensionality::<Ix2>() {
        Ok(x2) => x2,
        Err(_) => {
            standard = x.as_standard_layout();
            standard.view().into_shape_with_order((rows, in_f)).map_err(|e| e.to_string())?
        }
    };
    if few_inputs {
        // Tiles are short sums, so their output should go to contiguous
        // rows: `y = x · Wᵀ`, `x` packed per call (`rows x in` floats).
        let panels = prepared::<[f32]>(own_weight.then_some(&k.panels), || pack_panels(&w.t()));
        let mut y = output((rows, out))?;
        let init = bias.map_or(Init::Zero, Init::ColumnBias);
        let w_t = Prepacked { k: in_f, n: out, panels: &panels };
        gemm(&PackedA::pack(x2), &w_t, &mut y.view_mut(), init, epilogue);
        return Ok(Value::F32(reshape(y)?));
    }
    let packed = prepared::<PackedA>(own_weight.then_some(&k.packed), || PackedA::pack(w.view()));
    let init = bias.map_or(Init::Zero, Init::RowBias);
    if transposed {
        // Row-major `yᵀ`: whole tiles go straight into its rows.
        let mut y_t = output((out, rows))?;
        gemm(&packed, &x2.t(), &mut y_t.view_mut(), init, epilogue);
        return Ok(Value::F32(y_t.reversed_axes().into_dyn()));
    }
    let mut y = output((rows, out))?;
    gemm(&packed, &x2.t(), &mut y.view_mut().reversed_axes(), init, epilogue);
    Ok(Value::F32(reshape(y)?))
}

impl Kernel for Linear {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        match first_dtype(args) {
            DType::F32 => run_f32(self, args, scratch),
            other => with_float!(other, T => run::<T>(self, args)),
        }
    }

    fn fuse_relu(&mut self) -> bool {
        self.relu = true;
        true
    }

    fn allow_transposed_output(&mut self) -> bool {
        self.transposed_out = true;
        true
    }
}
