//! Pooling: max and average over sliding windows, and adaptive average.

use multiversion::multiversion;
use ndarray::{Array4, ArrayD, IxDyn, s};
use nnbundle_graph::{NodeAttrs, Window, pool_windows};

use super::Scratch;

use super::{Float, Kernel, KernelResult, as_4d, by_planes, first_dtype, hw, nan_max, view, with_float};
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
    pub(crate) fn new(a: NodeAttrs<'_>, spatial: usize, kind: Kind) -> Self {
        let count_include_pad = kind == Kind::Avg && a.bool("count_include_pad");
        Pool { windows: hw(pool_windows(a.raw(), spatial)), kind, count_include_pad, spatial }
    }
}

/// Output shape `[N, C, (oh,) ow]` for a 1-D or 2-D op.
fn out_shape(n: usize, c: usize, oh: usize, ow: usize, spatial: usize) -> Vec<usize> {
    if spatial == 2 { vec![n, c, oh, ow] } else { vec![n, c, ow] }
}

/// The taps of one window along one axis: the input indices it reads inside
/// the input, `first`, `first + step`, ... (`count` of them), and how many of
/// its taps lie inside the padded input (PyTorch's divisor with
/// `count_include_pad`: never a ceil-mode overflow).
#[derive(Clone, Copy)]
struct Taps {
    first: usize,
    count: usize,
    padded: i64,
}

/// The taps of every output position of one axis.
fn axis_taps(w: &Window, n: usize, out: usize) -> Vec<Taps> {
    (0..out)
        .map(|p| {
            let start = p as i64 * w.stride - w.pad_begin;
            let mut taps = Taps { first: 0, count: 0, padded: 0 };
            for t in 0..w.kernel {
                let i = start + t * w.dilation;
                if i < n as i64 + w.pad_end {
                    taps.padded += 1;
                    if i >= 0 && i < n as i64 {
                        if taps.count == 0 {
                            taps.first = i as usize;
                        }
                        taps.count += 1;
                    }
                }
            }
            taps
        })
        .collect()
}

/// The output columns `lo..hi` whose windows are whole and evenly spaced
/// (`stride` apart): the interior, away from the padding.
struct Interior {
    lo: usize,
    hi: usize,
    stride: usize,
    taps: usize,
}

impl Interior {
    /// The interior of an axis's windows; empty when they are not evenly spaced.
    fn of(cols: &[Taps]) -> Interior {
        Interior::even(cols).unwrap_or(Interior { lo: 0, hi: 0, stride: 1, taps: 0 })
    }

    fn even(cols: &[Taps]) -> Option<Interior> {
        let taps = cols.iter().map(|c| c.count).max()?;
        let lo = cols.iter().position(|c| c.count == taps)?;
        let hi = cols.iter().rposition(|c| c.count == taps)? + 1;
        let stride = if hi - lo >= 2 { cols[lo + 1].first - cols[lo].first } else { 1 };
        let even = (lo..hi).all(|x| cols[x].count == taps && cols[x].first == cols[lo].first + (x - lo) * stride);
        (even && stride >= 1).then_some(Interior { lo, hi, stride, taps })
    }
}

/// Folds `f` over every window of one `[h, w]` plane into `out` (`[oh, ow]`),
/// then `finish(acc, rows, cols)` gives the output. Each window folds its
/// taps row by row, left to right; the interior columns of an output row
/// fold one tap across all of them at a time (vectorized, compiled per
/// instruction set), in that order. With `merge` (`f` is then a max,
/// indifferent to grouping), strided windows first fold each row's taps at
/// every input position (unit stride, vectorized), then merge every
/// `stride`-th of those into the windows.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2", "aarch64+neon"))]
fn pool_plane<T: Float, A: Copy>(
    plane: &[T],
    w: usize,
    (rows, cols, interior): (&[Taps], &[Taps], &Interior),
    (dy, dx): (usize, usize),
    init: A,
    (f, merge): (impl Fn(A, T) -> A, Option<impl Fn(A, A) -> A>),
    finish: impl Fn(A, &Taps, &Taps) -> T,
    out: &mut [T],
) {
    let fold = |acc: A, row: &[T], rx: &Taps| {
        if dx == 1 {
            row[rx.first..rx.first + rx.count].iter().fold(acc, |a, &v| f(a, v))
        } else {
            row[rx.first..].iter().step_by(dx).take(rx.count).fold(acc, |a, &v| f(a, v))
        }
    };
    let mut acc = vec![init; cols.len()];
    let mut folded = vec![init; if merge.is_some() && interior.stride > 1 { w } else { 0 }];
    for (ry, out) in rows.iter().zip(out.chunks_exact_mut(cols.len().max(1))) {
        acc.fill(init);
        for r in 0..ry.count {
            let row = &plane[(ry.first + r * dy) * w..][..w];
            for x in (0..interior.lo).chain(interior.hi..cols.len()) {
                acc[x] = fold(acc[x], row, &cols[x]);
            }
            let base = cols.get(interior.lo).map_or(0, |c| c.first);
            let inner = &mut acc[interior.lo..interior.hi];
            for t in 0..interior.taps {
                let from = base + t * dx;
                if interior.stride == 1 {
                    let column = &row[from..][..inner.len()];
                    inner.iter_mut().zip(column).for_each(|(a, &v)| *a = f(*a, v));
                } else if merge.is_none() {
                    let column = row[from..].iter().step_by(interior.stride);
                    inner.iter_mut().zip(column).for_each(|(a, &v)| *a = f(*a, v));
                }
            }
            if let Some(merge) = merge.as_ref().filter(|_| interior.stride > 1 && !inner.is_empty()) {
                let span = (inner.len() - 1) * interior.stride + 1;
                let folded = &mut folded[..span];
                folded.fill(init);
                for t in 0..interior.taps {
                    let column = &row[base + t * dx..][..span];
                    folded.iter_mut().zip(column).for_each(|(a, &v)| *a = f(*a, v));
                }
                let windows = folded.iter().step_by(interior.stride);
                inner.iter_mut().zip(windows).for_each(|(a, &v)| *a = merge(*a, v));
            }
        }
        for ((o, &a), rx) in out.iter_mut().zip(&acc).zip(cols) {
            *o = finish(a, ry, rx);
        }
    }
}

/// The 2x2, stride-2 max pool of one plane (rows `w` long) into `out` (rows
/// `ow` long), compiled per instruction set: the pairs are split by vector
/// shuffles, four lanes at a time in the baseline build.
#[multiversion(targets("x86_64+avx512f+avx512vl", "x86_64+avx2", "aarch64+neon"))]
fn halve<T: Float>(plane: &[T], w: usize, out: &mut [T], ow: usize) {
    for (py, out) in out.chunks_exact_mut(ow.max(1)).enumerate() {
        let (r0, r1) = (&plane[2 * py * w..][..2 * ow], &plane[(2 * py + 1) * w..][..2 * ow]);
        for ((o, a), b) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
            *o = nan_max(nan_max(a[0], a[1]), nan_max(b[0], b[1]));
        }
    }
}

fn run<T: Float>(k: &Pool, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
    let x = as_4d(view::<T>(args, 0)?, k.spatial)?;
    let (n, c, h, w) = x.dim();
    let [wh, ww] = k.windows;
    let oh = wh.out_len(h as i64).ok_or("the window does not fit the padded input")? as usize;
    let ow = ww.out_len(w as i64).ok_or("the window does not fit the padded input")? as usize;
    let taps = (axis_taps(&wh, h, oh), axis_taps(&ww, w, ow));
    // Found once per layer: every plane has the same windows.
    let interior = Interior::of(&taps.1);
    let taps = (taps.0.as_slice(), taps.1.as_slice(), &interior);
    let steps = (wh.dilation as usize, ww.dilation as usize);
    let x = x.as_standard_layout();
    let x = x.as_slice().expect("standard layout");
    // The common 2x2, stride-2 max pool over whole rows: four loads per output
    // in straight, vectorizable code.
    let halving = k.kind == Kind::Max
        && [wh, ww].iter().all(|a| a.kernel == 2 && a.stride == 2 && a.dilation == 1 && a.pad_begin == 0)
        && oh * 2 <= h
        && ow * 2 <= w;
    // That path writes every output; the general one starts from zeros.
    let len = n * c * oh * ow;
    let mut y = if halving { T::buffer_in(scratch, len) } else { T::zeros_in(scratch, len) };
    by_planes((x, h * w), (&mut y, oh * ow), |plane, out| {
        if halving {
            return halve(plane, w, out, ow);
        }
        match k.kind {
            // NaN propagates, as in PyTorch.
            Kind::Max => {
                // A select that vectorizes: the larger, or NaN once one was
                // seen (given out as the canonical NaN).
                let max = |best: T, v: T| if best > v || best.is_nan() { best } else { v };
                let finish = |best: T, _: &Taps, _: &Taps| if best.is_nan() { T::nan() } else { best };
                pool_plane(plane, w, taps, steps, T::neg_infinity(), (max, Some(max)), finish, out);
            }
            Kind::Avg => {
                let mean = |sum: T, ry: &Taps, rx: &Taps| {
                    let count = if k.count_include_pad { ry.padded * rx.padded } else { (ry.count * rx.count) as i64 };
                    sum / T::from_f64(count.max(1) as f64)
                };
                pool_plane(plane, w, taps, steps, T::zero(), (|s, v| s + v, None::<fn(T, T) -> T>), mean, out);
            }
        }
    });
    let y = ArrayD::from_shape_vec(IxDyn(&out_shape(n, c, oh, ow, k.spatial)), y).map_err(|e| e.to_string())?;
    Ok(T::into_value(y))
}

impl Kernel for Pool {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args, scratch))
    }
}

pub(crate) struct AdaptiveAvg {
    out: [usize; 2],
}

impl AdaptiveAvg {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
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
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => adaptive::<T>(self, args))
    }
}

/// How `Upsample` maps an output index to an input coordinate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Coordinates {
    Asymmetric,
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
}

/// How `Upsample`'s `nearest` rounds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rounding {
    Floor,
    Ceil,
    PreferFloor,
    PreferCeil,
}

pub(crate) struct Upsample {
    size: Vec<usize>,
    linear: bool,
    coordinates: Coordinates,
    rounding: Rounding,
}

impl Upsample {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        let coordinates = match a.str("coordinate_mode") {
            "half_pixel" => Coordinates::HalfPixel,
            "pytorch_half_pixel" => Coordinates::PytorchHalfPixel,
            "align_corners" => Coordinates::AlignCorners,
            _ => Coordinates::Asymmetric,
        };
        let rounding = match a.str("nearest_mode") {
            "ceil" => Rounding::Ceil,
            "round_prefer_floor" => Rounding::PreferFloor,
            "round_prefer_ceil" => Rounding::PreferCeil,
            _ => Rounding::Floor,
        };
        let size = a.ints("size").iter().map(|&s| usize::try_from(s).unwrap_or(0)).collect();
        Upsample { size, linear: a.str("mode") == "linear", coordinates, rounding }
    }

    /// The input coordinate of output index `x` for input length `n`, output length `m`.
    fn coordinate(&self, x: usize, n: usize, m: usize) -> f64 {
        let (x, n_f, m_f) = (x as f64, n as f64, m as f64);
        match self.coordinates {
            Coordinates::Asymmetric => x * n_f / m_f,
            Coordinates::HalfPixel => (x + 0.5) * n_f / m_f - 0.5,
            Coordinates::PytorchHalfPixel if m > 1 => (x + 0.5) * n_f / m_f - 0.5,
            Coordinates::AlignCorners if m > 1 => x * (n_f - 1.0) / (m_f - 1.0),
            _ => 0.0,
        }
    }

    /// Per output index of one dimension: the two inputs mixed and the weight of the second.
    fn taps(&self, n: usize, m: usize) -> Vec<(usize, usize, f64)> {
        let last = n.saturating_sub(1) as f64;
        (0..m)
            .map(|x| {
                let c = self.coordinate(x, n, m);
                if self.linear {
                    let c = c.clamp(0.0, last);
                    let i0 = c.floor();
                    ((i0 as usize), ((i0 + 1.0).min(last)) as usize, c - i0)
                } else {
                    let r = match self.rounding {
                        Rounding::Floor => c.floor(),
                        Rounding::Ceil => c.ceil(),
                        Rounding::PreferFloor if c.fract() == 0.5 => c.floor(),
                        Rounding::PreferCeil if c.fract() == 0.5 => c.ceil(),
                        _ => c.round(),
                    };
                    let i = r.clamp(0.0, last) as usize;
                    (i, i, 0.0)
                }
            })
            .collect()
    }
}

fn upsample<T: Float>(k: &Upsample, args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let x = x.as_standard_layout();
    let shape = x.shape().to_vec();
    if shape.len() != k.size.len() + 2 {
        return Err(format!("Upsample expects input of rank {}, found {:?}", k.size.len() + 2, shape));
    }
    if shape[2..].contains(&0) {
        return Err(format!("Upsample of an empty spatial dimension: {shape:?}"));
    }
    // One spatial dimension at a time: [outer, n, inner] -> [outer, m, inner].
    let mut data: Vec<T> = x.iter().copied().collect();
    let mut dims = shape.clone();
    for (d, &m) in k.size.iter().enumerate() {
        let axis = d + 2;
        let n = dims[axis];
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        let taps = k.taps(n, m);
        let mut out = Vec::with_capacity(outer * m * inner);
        for o in 0..outer {
            let block = &data[o * n * inner..(o + 1) * n * inner];
            for &(i0, i1, t) in &taps {
                let (a, b) = (&block[i0 * inner..(i0 + 1) * inner], &block[i1 * inner..(i1 + 1) * inner]);
                if t == 0.0 {
                    out.extend_from_slice(a);
                } else {
                    let t = T::from_f64(t);
                    out.extend(a.iter().zip(b).map(|(&a, &b)| (T::one() - t) * a + t * b));
                }
            }
        }
        data = out;
        dims[axis] = m;
    }
    Ok(T::into_value(ndarray::ArrayD::from_shape_vec(dims, data).map_err(|e| e.to_string())?))
}

impl Kernel for Upsample {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => upsample::<T>(self, args))
    }
}
