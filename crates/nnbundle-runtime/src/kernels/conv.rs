//! `Conv1d`/`Conv2d`: im2col then one matrix product per batch element and group.
//! A 1-D convolution runs as a 2-D one of height 1.

use ndarray::{Array2, Array4, ArrayD, ArrayView4, Axis, IxDyn, s};
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
    let mut y = Array4::<T>::zeros((n, o, oh, ow));
    let mut cols = Array2::<T>::zeros((cg * kh * kw, oh * ow));
    for bi in 0..n {
        for gi in 0..g {
            // im2col: row (ci, i, j) holds the input tap for every output position.
            for ci in 0..cg {
                let plane = x.slice(s![bi, gi * cg + ci, .., ..]);
                for i in 0..kh {
                    for j in 0..kw {
                        let mut row = cols.row_mut((ci * kh + i) * kw + j);
                        for (p, out) in row.iter_mut().enumerate() {
                            let (py, px) = (p / ow, p % ow);
                            let iy = (py as i64) * wh.stride - wh.pad_begin + (i as i64) * wh.dilation;
                            let ix = (px as i64) * ww.stride - ww.pad_begin + (j as i64) * ww.dilation;
                            *out = if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                plane[[iy as usize, ix as usize]]
                            } else {
                                T::zero()
                            };
                        }
                    }
                }
            }
            let wg = w.slice(s![gi * og..(gi + 1) * og, .., .., ..]);
            let wg = wg.as_standard_layout();
            let wg = wg.view().into_shape_with_order((og, cg * kh * kw)).map_err(|e| e.to_string())?;
            let out = wg.dot(&cols);
            let mut dst = y.slice_mut(s![bi, gi * og..(gi + 1) * og, .., ..]);
            for (oc, row) in out.outer_iter().enumerate() {
                let bias = b.as_ref().map_or(T::zero(), |b| b[[gi * og + oc]]);
                let mut plane = dst.index_axis_mut(Axis(0), oc);
                for (d, &v) in plane.iter_mut().zip(row.iter()) {
                    *d = v + bias;
                }
            }
        }
    }
    let mut shape = vec![n, o];
    if k.spatial == 2 {
        shape.push(oh);
    }
    shape.push(ow);
    let y: ArrayD<T> = y.into_dyn().into_shape_with_order(IxDyn(&shape)).map_err(|e| e.to_string())?;
    Ok(T::into_value(y))
}

impl Kernel for Conv {
    fn run(&self, args: &[Arg<'_>]) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args))
    }
}
