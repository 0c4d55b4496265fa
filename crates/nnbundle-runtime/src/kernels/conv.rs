//! `Conv1d`/`Conv2d`: im2col (row copies, skipped for pointwise convolutions)
//! then one matrix product per batch element and group, written in place.
//! A 1-D convolution runs as a 2-D one of height 1.

use ndarray::{ArrayD, ArrayView2, ArrayView4, ArrayViewMut2, Axis, IxDyn};
use nnbundle_graph::{Attrs, Window, conv_windows};

use super::{Float, Kernel, KernelResult, first_dtype, view, with_float};
use crate::value::Arg;

pub(crate) struct Conv {
    /// Windows for height and width (height is a unit window in 1-D).
    windows: [Window; 2],
    groups: usize,
    bias: bool,
    spatial: usize,
}

const UNIT: Window = Window { kernel: 1, stride: 1, pad_begin: 0, pad_end: 0, dilation: 1, ceil_mode: false };

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

impl Conv {
    pub(crate) fn new(a: &Attrs, spatial: usize) -> Self {
        Conv {
            windows: hw(conv_windows(a, spatial)),
            groups: a.int("groups").max(1) as usize,
            bias: a.bool("bias"),
            spatial,
        }
    }
}

/// The output positions `lo..hi` of one axis whose tap `t` reads inside an
/// input of length `n` (the others read padding).
pub(crate) fn inside_range(w: &Window, t: usize, n: usize, out: usize) -> (usize, usize) {
    // Position p reads input index p * stride + offset.
    let offset = t as i64 * w.dilation - w.pad_begin;
    let first = |bound: i64| -> usize {
        // The smallest p with p * stride + offset >= bound.
        let need = bound - offset;
        if need <= 0 { 0 } else { (need as usize).div_ceil(w.stride as usize) }
    };
    let lo = first(0).min(out);
    let hi = first(n as i64).min(out).max(lo);
    (lo, hi)
}

/// im2col for one kernel tap `(i, j)` of one input plane `[h, w]`: row
/// `[oh * ow]` receives the input value each output position reads, or zero.
fn gather_tap<T: Float>(
    plane: &[T],
    (h, w): (usize, usize),
    k: &Conv,
    (i, j): (usize, usize),
    ow: usize,
    row: &mut [T],
) {
    let [wh, ww] = k.windows;
    let (lo, hi) = inside_range(&ww, j, w, ow);
    let offset = j as i64 * ww.dilation - ww.pad_begin;
    for (py, out) in row.chunks_exact_mut(ow).enumerate() {
        let iy = py as i64 * wh.stride + i as i64 * wh.dilation - wh.pad_begin;
        if iy < 0 || iy >= h as i64 {
            out.fill(T::zero());
            continue;
        }
        let src = &plane[iy as usize * w..][..w];
        out[..lo].fill(T::zero());
        out[hi..].fill(T::zero());
        let start = (lo as i64 * ww.stride + offset) as usize;
        if ww.stride == 1 {
            out[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
        } else {
            for (o, &v) in out[lo..hi].iter_mut().zip(src[start..].iter().step_by(ww.stride as usize)) {
                *o = v;
            }
        }
    }
}

fn run<T: Float>(k: &Conv, args: &[Arg<'_>]) -> KernelResult {
    let x = as_4d(view::<T>(args, 0)?, k.spatial)?;
    let w = as_4d(view::<T>(args, 1)?, k.spatial)?;
    let b = if k.bias { Some(view::<T>(args, 2)?) } else { None };
    let (n, c, h, wd) = x.dim();
    let (o, cg, kh, kw) = w.dim();
    let [wh, ww] = k.windows;
    let oh = wh.out_len(h as i64).ok_or("the window does not fit the padded input")? as usize;
    let ow = ww.out_len(wd as i64).ok_or("the window does not fit the padded input")? as usize;
    let g = k.groups;
    let og = o / g;
    if cg * g != c {
        return Err(format!("weight expects {} input channels, input has {c}", cg * g));
    }
    let x = x.as_standard_layout();
    let x = x.as_slice().expect("standard layout");
    let w = w.as_standard_layout();
    let w = w.as_slice().expect("standard layout");
    let bias: Vec<T> = match &b {
        Some(b) => b.iter().copied().collect(),
        None => vec![T::zero(); o],
    };
    let (plane, taps, positions) = (h * wd, cg * kh * kw, oh * ow);
    // A pointwise convolution reads its input as the column matrix itself.
    let pointwise = kh == 1 && kw == 1 && [wh, ww].iter().all(|a| a.stride == 1 && a.pad_begin == 0 && a.pad_end == 0);
    let mut cols = if pointwise { Vec::new() } else { vec![T::zero(); taps * positions] };
    let mut y = vec![T::zero(); n * o * positions];
    for (bi, image) in y.chunks_exact_mut((o * positions).max(1)).enumerate() {
        for (gi, dst) in image.chunks_exact_mut((og * positions).max(1)).enumerate() {
            let input = &x[(bi * c + gi * cg) * plane..][..cg * plane];
            let cols = if pointwise {
                ArrayView2::from_shape((cg, plane), input)
            } else {
                for (row, tap) in cols.chunks_exact_mut(positions).zip(0..taps) {
                    let (ci, i, j) = (tap / (kh * kw), tap / kw % kh, tap % kw);
                    gather_tap(&input[ci * plane..][..plane], (h, wd), k, (i, j), ow, row);
                }
                ArrayView2::from_shape((taps, positions), &cols[..])
            }
            .map_err(|e| e.to_string())?;
            // The bias seeds the output, which the product then accumulates into.
            for (row, &bv) in dst.chunks_exact_mut(positions).zip(&bias[gi * og..]) {
                row.fill(bv);
            }
            let wg =
                ArrayView2::from_shape((og, taps), &w[gi * og * taps..][..og * taps]).map_err(|e| e.to_string())?;
            let mut out = ArrayViewMut2::from_shape((og, positions), dst).map_err(|e| e.to_string())?;
            T::matmul_into(wg, cols, &mut out, true);
        }
    }
    let mut shape = vec![n, o];
    if k.spatial == 2 {
        shape.push(oh);
    }
    shape.push(ow);
    let y = ArrayD::from_shape_vec(IxDyn(&shape), y).map_err(|e| e.to_string())?;
    Ok(T::into_value(y))
}

impl Kernel for Conv {
    fn run(&self, args: &[Arg<'_>]) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args))
    }
}
