//! Pooling: max and average over sliding windows, and adaptive average.

use ndarray::{Array4, ArrayD, IxDyn, s};
use nnbundle_graph::{Attrs, Window, pool_windows};

use super::conv::{as_4d, hw};
use super::{Float, Kernel, KernelResult, first_dtype, view, with_float};
use crate::value::Arg;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Max,
    Avg,
}

pub(crate) struct Pool {
    windows: [Window; 2],
    kind: Kind,
    count_include_pad: bool,
    spatial: usize,
}

impl Pool {
    pub(crate) fn new(a: &Attrs, spatial: usize, kind: Kind) -> Self {
        Pool { windows: hw(pool_windows(a, spatial)), kind, count_include_pad: a.bool("count_include_pad"), spatial }
    }
}

/// Output shape `[N, C, (oh,) ow]` for a 1-D or 2-D op.
fn out_shape(n: usize, c: usize, oh: usize, ow: usize, spatial: usize) -> Vec<usize> {
    if spatial == 2 { vec![n, c, oh, ow] } else { vec![n, c, ow] }
}

fn run<T: Float>(k: &Pool, args: &[Arg<'_>]) -> KernelResult {
    let x = as_4d(view::<T>(args, 0)?, k.spatial)?;
    let (n, c, h, w) = x.dim();
    let [wh, ww] = k.windows;
    let oh = wh.out_len(h as i64).ok_or("the window does not fit the padded input")? as usize;
    let ow = ww.out_len(w as i64).ok_or("the window does not fit the padded input")? as usize;
    let mut y = Array4::<T>::zeros((n, c, oh, ow));
    for ((bi, ci, py, px), out) in y.indexed_iter_mut() {
        let plane = x.slice(s![bi, ci, .., ..]);
        let y0 = py as i64 * wh.stride - wh.pad_begin;
        let x0 = px as i64 * ww.stride - ww.pad_begin;
        *out = match k.kind {
            Kind::Max => {
                let mut best = T::neg_infinity();
                for i in 0..wh.kernel {
                    let iy = y0 + i * wh.dilation;
                    if iy < 0 || iy >= h as i64 {
                        continue;
                    }
                    for j in 0..ww.kernel {
                        let ix = x0 + j * ww.dilation;
                        if ix >= 0 && ix < w as i64 {
                            let v = plane[[iy as usize, ix as usize]];
                            // NaN propagates, as in PyTorch.
                            if v > best || v.is_nan() {
                                best = v;
                            }
                        }
                    }
                }
                best
            }
            Kind::Avg => {
                // Taps inside the padded input count toward the divisor with
                // count_include_pad (PyTorch's rule: never a ceil-mode overflow);
                // taps inside the input are summed.
                let taps = |w: &Window, start: i64, n: usize| -> (Vec<usize>, i64) {
                    let (mut inside, mut padded) = (Vec::new(), 0);
                    for t in 0..w.kernel {
                        let p = start + t * w.dilation;
                        if p < n as i64 + w.pad_end {
                            padded += 1;
                            if p >= 0 && p < n as i64 {
                                inside.push(p as usize);
                            }
                        }
                    }
                    (inside, padded)
                };
                let (ys, py_count) = taps(&wh, y0, h);
                let (xs, px_count) = taps(&ww, x0, w);
                let mut sum = T::zero();
                for &iy in &ys {
                    for &ix in &xs {
                        sum += plane[[iy, ix]];
                    }
                }
                let count = if k.count_include_pad { py_count * px_count } else { (ys.len() * xs.len()) as i64 };
                sum / T::from_f64(count.max(1) as f64)
            }
        };
    }
    let y: ArrayD<T> =
        y.into_dyn().into_shape_with_order(IxDyn(&out_shape(n, c, oh, ow, k.spatial))).map_err(|e| e.to_string())?;
    Ok(T::into_value(y))
}

impl Kernel for Pool {
    fn run(&self, args: &[Arg<'_>]) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args))
    }
}

pub(crate) struct AdaptiveAvg {
    out: [usize; 2],
}

impl AdaptiveAvg {
    pub(crate) fn new(a: &Attrs) -> Self {
        let o = a.ints("output_size");
        AdaptiveAvg { out: [o.first().copied().unwrap_or(1) as usize, o.get(1).copied().unwrap_or(1) as usize] }
    }
}

fn adaptive<T: Float>(k: &AdaptiveAvg, args: &[Arg<'_>]) -> KernelResult {
    let x = as_4d(view::<T>(args, 0)?, 2)?;
    let (n, c, h, w) = x.dim();
    let [oh, ow] = k.out;
    let range = |i: usize, len: usize, out: usize| (i * len / out, ((i + 1) * len).div_ceil(out));
    let mut y = Array4::<T>::zeros((n, c, oh, ow));
    for ((bi, ci, py, px), out) in y.indexed_iter_mut() {
        let (ya, yb) = range(py, h, oh);
        let (xa, xb) = range(px, w, ow);
        let window = x.slice(s![bi, ci, ya..yb, xa..xb]);
        *out = window.sum() / T::from_f64(((yb - ya) * (xb - xa)).max(1) as f64);
    }
    Ok(T::into_value(y.into_dyn()))
}

impl Kernel for AdaptiveAvg {
    fn run(&self, args: &[Arg<'_>]) -> KernelResult {
        with_float!(first_dtype(args), T => adaptive::<T>(self, args))
    }
}
