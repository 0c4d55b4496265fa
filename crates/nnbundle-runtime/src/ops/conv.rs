//! `Conv1d`/`Conv2d`: one matrix product per batch element and group between
//! the weights and the input's im2col matrix, its sums starting at the bias.
//! In f32 the im2col matrix is never stored: with unit strides the GEMM reads
//! its rows in place from a zero-padded copy of the input ([`Padded`]);
//! otherwise it packs the matrix panel by panel. 3x3 f32 convolutions with
//! unit strides over enough channels take Winograd's algorithm instead
//! ([`winograd`]). A 1-D convolution runs as a 2-D one of height 1.

use std::borrow::Cow;
use std::sync::OnceLock;

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewMut2, IxDyn};
use nnbundle_graph::{NodeAttrs, Window, conv_transpose_geometry, conv_transpose_length, conv_windows};
use rayon::prelude::*;

use super::elementwise::{Binary, BinaryOp};
use super::{Float, Kernel, KernelResult, Scratch, as_4d, by_planes, first_dtype, hw, prepared, view, with_float};
use crate::linalg::depthwise;
use crate::linalg::gemm::{self, NR, PackedA, PanelSource};
use crate::linalg::winograd::{self, MIN_CHANNELS};
use crate::value::Arg;

pub(crate) struct Conv {
    /// Windows for height and width (height is a unit window in 1-D).
    windows: [Window; 2],
    groups: usize,
    bias: bool,
    spatial: usize,
    /// The f32 weights packed for GEMM on first use (a model's weights only
    /// change through a re-plan, which builds new kernels).
    packed: OnceLock<Vec<PackedA>>,
    /// The f32 weights transformed for [`winograd`] on first use, where it applies.
    winograd: OnceLock<Vec<PackedA>>,
    /// A fused ReLU on the output.
    relu: bool,
    /// A fused `Add` of the last operand to the output (before the ReLU).
    addend: bool,
}

impl Conv {
    pub(crate) fn new(a: NodeAttrs<'_>, spatial: usize) -> Self {
        Conv {
            windows: hw(conv_windows(a.raw(), spatial)),
            groups: a.int("groups").max(1) as usize,
            bias: a.bool("bias"),
            spatial,
            packed: OnceLock::new(),
            winograd: OnceLock::new(),
            relu: false,
            addend: false,
        }
    }
}

/// Of `count` output positions reading input indices `first`, `first +
/// stride`, ..., the range `lo..hi` that reads inside an input of length `n`
/// (the others read padding).
fn inside_span(first: i64, stride: i64, count: usize, n: i64) -> (usize, usize) {
    let len = count as i64;
    let (lo, hi) = if stride == 1 {
        let lo = (-first).clamp(0, len);
        (lo, (n - first).clamp(lo, len))
    } else {
        let lo = if first >= 0 { 0 } else { (-first + stride - 1) / stride }.min(len);
        (lo, if n <= first { 0 } else { (n - first + stride - 1) / stride }.clamp(lo, len))
    };
    (lo as usize, hi as usize)
}

/// The im2col matrix of one image and group, never stored whole: row
/// `(ci, i, j)` (channel, kernel row, kernel column), column `(py, px)`
/// (output position) holds the input value that tap reads, zero in the padding.
pub(crate) struct Im2Col<'a, T> {
    /// `channels` planes of `h x w`.
    input: &'a [T],
    channels: usize,
    plane: (usize, usize),
    kernel: (usize, usize),
    windows: [Window; 2],
    out: (usize, usize),
    /// A 1x1 kernel with unit strides and no padding: the rows are the planes.
    pointwise: bool,
    /// The same input zero-padded, where the product can read it in place.
    pub(crate) padded: Option<Padded<'a, T>>,
}

/// A unit-stride convolution's input (one image and group), zero-padded:
/// planes of `pitch`-wide rows, so that tap `t`'s im2col row, with `pitch`
/// columns per output row instead of the output width, is the contiguous
/// run from `offsets[t]` (the extra columns read past the row, and are
/// dropped). `data` runs on past the last plane as far as those reads go.
pub(crate) struct Padded<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) offsets: &'a [usize],
    pub(crate) pitch: usize,
}

/// The zero-padded copy of a whole batch, with each tap's offset into an
/// image's group of padded planes.
struct PaddedInput<T> {
    data: Vec<T>,
    offsets: Vec<usize>,
    /// Padded `(height, width)`.
    plane: (usize, usize),
}

impl<T> PaddedInput<T> {
    /// The planes from channel `channel` (counted over the whole batch) on.
    fn at_channel(&self, channel: usize) -> Padded<'_, T> {
        let (ph, pw) = self.plane;
        Padded { data: &self.data[channel * ph * pw..], offsets: &self.offsets, pitch: pw }
    }
}

/// The paddings of height and width windows, `(top, bottom, left, right)`;
/// `None` when one is negative (a crop).
fn paddings([wh, ww]: [Window; 2]) -> Option<(usize, usize, usize, usize)> {
    let pads = [wh.pad_begin, wh.pad_end, ww.pad_begin, ww.pad_end].map(usize::try_from);
    let [Ok(top), Ok(bottom), Ok(left), Ok(right)] = pads else { return None };
    Some((top, bottom, left, right))
}

/// The zero-padded copy of `x [n, c, h, w]` a unit-stride convolution reads
/// in place (taps over groups of `cg` channels); `None` when the strides are
/// not 1 or a padding is negative.
fn pad_input<T: Float>(
    x: &[T],
    (n, c, h, w): (usize, usize, usize, usize),
    (cg, kh, kw): (usize, usize, usize),
    [wh, ww]: [Window; 2],
    scratch: &Scratch,
) -> Option<PaddedInput<T>> {
    let (top, bottom, left, right) = paddings([wh, ww])?;
    let (Ok(dy), Ok(dx)) = (usize::try_from(wh.dilation), usize::try_from(ww.dilation)) else { return None };
    if wh.stride != 1 || ww.stride != 1 {
        return None;
    }
    let (ph, pw) = (h + top + bottom, w + left + right);
    // Reads run past the last plane by up to one row's extra taps and one panel.
    let mut padded = T::buffer_in(scratch, n * c * ph * pw + (kw - 1) * dx + NR);
    let (planes, slack) = padded.split_at_mut(n * c * ph * pw);
    slack.fill(T::zero());
    if h * w == 0 {
        planes.fill(T::zero()); // no input planes to walk: all padding
    }
    by_planes((x, h * w), (planes, ph * pw), |plane, dst| {
        // Every float is written: the padding with zeros, the rest from `x`.
        let (above, rest) = dst.split_at_mut(top * pw);
        let (inside, below) = rest.split_at_mut(h * pw);
        above.fill(T::zero());
        below.fill(T::zero());
        for (row, dst) in plane.chunks_exact(w.max(1)).zip(inside.chunks_exact_mut(pw)) {
            dst[..left].fill(T::zero());
            dst[left..left + w].copy_from_slice(row);
            dst[left + w..].fill(T::zero());
        }
    });
    let offsets = (0..cg * kh * kw).map(|t| t / (kh * kw) * ph * pw + t / kw % kh * dy * pw + t % kw * dx).collect();
    Some(PaddedInput { data: padded, offsets, plane: (ph, pw) })
}

impl<T: Float> Im2Col<'_, T> {
    /// The output's `(height, width)`.
    pub(crate) fn out_dim(&self) -> (usize, usize) {
        self.out
    }

    /// `(rows, columns)`.
    pub(crate) fn dim(&self) -> (usize, usize) {
        (self.channels * self.kernel.0 * self.kernel.1, self.out.0 * self.out.1)
    }

    fn plane(&self, ci: usize) -> &[T] {
        let (h, w) = self.plane;
        &self.input[ci * h * w..][..h * w]
    }

    /// The matrix, stored (for products that take a plain matrix).
    pub(crate) fn materialize(&self) -> Array2<T> {
        let (rows, positions) = self.dim();
        let mut cols = Array2::<T>::zeros((rows, positions));
        let (kh, kw) = self.kernel;
        for (tap, row) in cols.outer_iter_mut().enumerate() {
            let (ci, i, j) = (tap / (kh * kw), tap / kw % kh, tap % kw);
            self.gather_row(ci, (i, j), row.into_slice().expect("standard layout"));
        }
        cols
    }

    /// Row `(ci, i, j)` of the matrix, by row copies.
    fn gather_row(&self, ci: usize, (i, j): (usize, usize), row: &mut [T]) {
        let plane = self.plane(ci);
        if self.pointwise {
            row.copy_from_slice(plane);
            return;
        }
        let ((h, w), ow, [wh, ww]) = (self.plane, self.out.1, self.windows);
        let offset = j as i64 * ww.dilation - ww.pad_begin;
        let (lo, hi) = inside_span(offset, ww.stride, ow, w as i64);
        for (py, out) in row.chunks_exact_mut(ow.max(1)).enumerate() {
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
}

impl PanelSource for Im2Col<'_, f32> {
    fn dim(&self) -> (usize, usize) {
        Im2Col::dim(self)
    }

    fn pack_panel(&self, start: usize, cols: usize, panel: &mut [f32]) {
        let ((h, w), (kh, kw), ow, [wh, ww]) = (self.plane, self.kernel, self.out.1, self.windows);
        let mut rows = panel.chunks_exact_mut(NR);
        if self.pointwise {
            for (ci, dst) in (0..self.channels).zip(rows) {
                dst[..cols].copy_from_slice(&self.plane(ci)[start..start + cols]);
                dst[cols..].fill(0.0);
            }
            return;
        }
        // The panel's columns as runs along output rows: (first column, end, py, px of the first).
        let mut runs = [(0usize, 0usize, 0i64, 0i64); NR];
        let mut count = 0;
        let mut q = 0;
        while q < cols {
            let (py, px) = ((start + q) / ow, (start + q) % ow);
            let len = (ow - px).min(cols - q);
            runs[count] = (q, q + len, py as i64, px as i64);
            count += 1;
            q += len;
        }
        let runs = &runs[..count];
        let (h, w, sx) = (h as i64, w as i64, ww.stride);
        // A full panel along one output row with unit stride: per tap, NR
        // consecutive inputs (or a copy between zeros at the borders).
        let one_row = count == 1 && cols == NR && sx == 1;
        for ci in 0..self.channels {
            let plane = self.plane(ci);
            for i in 0..kh {
                let dy = i as i64 * wh.dilation - wh.pad_begin;
                for j in 0..kw {
                    let dst = rows.next().expect("one panel row per tap");
                    let dx = j as i64 * ww.dilation - ww.pad_begin;
                    if one_row {
                        let (iy, ix0) = (runs[0].2 * wh.stride + dy, runs[0].3 + dx);
                        if iy < 0 || iy >= h {
                            dst.fill(0.0);
                        } else if ix0 >= 0 && ix0 + NR as i64 <= w {
                            let src = &plane[(iy * w + ix0) as usize..][..NR];
                            let dst: &mut [f32; NR] = dst.try_into().expect("NR-wide row");
                            dst.copy_from_slice(src);
                        } else {
                            let (lo, hi) = inside_span(ix0, 1, NR, w);
                            dst.fill(0.0);
                            let from = (iy * w + ix0 + lo as i64) as usize;
                            dst[lo..hi].copy_from_slice(&plane[from..from + (hi - lo)]);
                        }
                        continue;
                    }
                    if cols < NR || runs.len() > 1 {
                        dst.fill(0.0);
                    }
                    for &(q0, q1, py, px) in runs {
                        let iy = py * wh.stride + dy;
                        if iy < 0 || iy >= h {
                            dst[q0..q1].fill(0.0);
                            continue;
                        }
                        let row = &plane[(iy * w) as usize..][..w as usize];
                        // Column q reads input x = ix0 + (q - q0) * sx; keep those inside [0, w).
                        let ix0 = px * sx + dx;
                        let (lo, hi) = inside_span(ix0, sx, q1 - q0, w);
                        let first = (ix0 + lo as i64 * sx) as usize;
                        if count == 1 && cols == NR {
                            dst[..q0 + lo].fill(0.0);
                            dst[q0 + hi..].fill(0.0);
                        }
                        if sx == 1 {
                            dst[q0 + lo..q0 + hi].copy_from_slice(&row[first..first + (hi - lo)]);
                        } else {
                            for (d, &v) in
                                dst[q0 + lo..q0 + hi].iter_mut().zip(row[first..].iter().step_by(sx as usize))
                            {
                                *d = v;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn run<T: ConvFloat>(k: &Conv, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
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
        Some(b) if b.len() == o => b.iter().copied().collect(),
        Some(b) => return Err(format!("bias has {} values for {o} output channels", b.len())),
        None => vec![T::zero(); o],
    };
    let (plane, taps, positions) = (h * wd, cg * kh * kw, oh * ow);
    let pointwise = kh == 1 && kw == 1 && [wh, ww].iter().all(|a| a.stride == 1 && a.pad_begin == 0 && a.pad_end == 0);
    let own_weights = matches!(args.get(1), Some(Arg::Weight(_)));
    let mut shape = vec![n, o];
    if k.spatial == 2 {
        shape.push(oh);
    }
    shape.push(ow);
    // A fused residual `Add`: its other operand, when it has the output's
    // shape (otherwise the add runs after the convolution, broadcasting).
    let addend = if k.addend { Some(view::<T>(args, args.len() - 1)?) } else { None };
    let addend = addend.filter(|r| r.shape() == shape.as_slice());
    let addend = addend.as_ref().map(|r| r.as_standard_layout());
    let addend = addend.as_ref().map(|r| r.as_slice().expect("standard layout"));
    let add_after = k.addend && addend.is_none();
    let relu = k.relu && !add_after;
    let mut y = T::buffer_in(scratch, n * o * positions);
    // 3x3, unit strides and dilations, enough channels: Winograd's algorithm
    // (which reads the input with bounds: no padded copy).
    let unit = |w: Window| w.stride == 1 && w.dilation == 1;
    let winograd_fits = (k.spatial, g, kh, kw) == (2, 1, 3, 3) && unit(wh) && unit(ww) && c.min(o) >= MIN_CHANNELS;
    if let Some(pads) = paddings(k.windows)
        && winograd_fits
        && positions > 0
    {
        let problem = winograd::Problem {
            input: x,
            plane: (h, wd),
            pads,
            images: n,
            channels: c,
            outputs: o,
            bias: &bias,
            addend,
            relu,
        };
        if T::conv_winograd(&problem, w, own_weights.then_some(&k.winograd), &mut y) {
            return finish(k, (y, &shape), (add_after, args), scratch);
        }
    }
    if let Some(axes) = depthwise_axes(k, (g, cg, og), (h, wd), (kh, kw), (oh, ow))
        && positions > 0
    {
        let problem = Depthwise { x, w, bias: &bias, addend, relu, channels: c, axes };
        if T::conv_depthwise(&problem, &mut y) {
            return finish(k, (y, &shape), (add_after, args), scratch);
        }
    }
    let padded = if T::READS_IN_PLACE { pad_input(x, (n, c, h, wd), (cg, kh, kw), k.windows, scratch) } else { None };
    // Each group's weights are prepared (packed) once per run, not once per
    // image; a model's own weights once for the kernel's life.
    let groups = (0..g)
        .map(|gi| ArrayView2::from_shape((og, taps), &w[gi * og * taps..][..og * taps]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let weights = T::conv_weights(groups, own_weights.then_some(&k.packed));
    let convolve = |(bi, image): (usize, &mut [T])| -> Result<(), String> {
        for (gi, dst) in image.chunks_exact_mut((og * positions).max(1)).enumerate() {
            let cols = Im2Col {
                input: &x[(bi * c + gi * cg) * plane..][..cg * plane],
                channels: cg,
                plane: (h, wd),
                kernel: (kh, kw),
                windows: k.windows,
                out: (oh, ow),
                pointwise,
                padded: padded.as_ref().map(|p| p.at_channel(bi * c + gi * cg)),
            };
            let mut out = ArrayViewMut2::from_shape((og, positions), &mut *dst).map_err(|e| e.to_string())?;
            let addend = addend.map(|r| &r[(bi * o + gi * og) * positions..][..og * positions]);
            T::conv_product(&weights[gi], &cols, &mut out, (&bias[gi * og..][..og], addend, relu));
        }
        Ok(())
    };
    // Images are independent: threads take whole images.
    let image_len = (o * positions).max(1);
    if n > 1 && rayon::current_num_threads() > 1 {
        y.par_chunks_exact_mut(image_len).enumerate().try_for_each(convolve)?;
    } else {
        y.chunks_exact_mut(image_len).enumerate().try_for_each(convolve)?;
    }
    if let Some(padded) = padded {
        T::recycle_in(scratch, padded.data);
    }
    finish(k, (y, &shape), (add_after, args), scratch)
}

/// The axes of a depthwise convolution (one input and one output channel per
/// group, non-negative geometry), or `None` for any other.
fn depthwise_axes(
    k: &Conv,
    (groups, cg, og): (usize, usize, usize),
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    (oh, ow): (usize, usize),
) -> Option<(depthwise::Axis, depthwise::Axis)> {
    if cg != 1 || og != 1 || groups < 2 {
        return None;
    }
    let axis = |window: Window, input, taps, output| {
        let at_least = |v: i64, min: i64| usize::try_from(v).ok().filter(|&v| v as i64 >= min);
        Some(depthwise::Axis {
            input,
            output,
            taps,
            stride: at_least(window.stride, 1)?,
            dilation: at_least(window.dilation, 1)?,
            pad: at_least(window.pad_begin, 0)?,
        })
    };
    let [wh, ww] = k.windows;
    Some((axis(wh, h, kh, oh)?, axis(ww, w, kw, ow)?))
}

/// The output `y` of `shape` as a value; then the `Add` that could not be
/// fused (its operand broadcasts).
fn finish<T: Float>(
    k: &Conv,
    (y, shape): (Vec<T>, &[usize]),
    (add_after, args): (bool, &[Arg<'_>]),
    scratch: &Scratch,
) -> KernelResult {
    let y = T::into_value(ArrayD::from_shape_vec(IxDyn(shape), y).map_err(|e| e.to_string())?);
    if add_after {
        let add = Binary::with_relu(BinaryOp::Add, k.relu);
        return add.run(&[Arg::Value(&y), args[args.len() - 1]], scratch);
    }
    Ok(y)
}

impl Kernel for Conv {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args, scratch))
    }

    fn fuse_relu(&mut self) -> bool {
        self.relu = true;
        true
    }

    fn fuse_addend(&mut self) -> bool {
        self.addend = true;
        true
    }

    fn take_bias(&mut self) -> bool {
        self.bias = true;
        true
    }
}

/// Conv's f32/f64 specialisation: how each float type prepares weights and
/// computes the per-group product (the GEMM and Winograd in f32, ndarray's
/// product in f64).
pub(crate) trait ConvFloat: Float {
    /// Whether [`ConvFloat::conv_product`] reads a unit-stride convolution's
    /// input in place from a zero-padded copy ([`Padded`]).
    const READS_IN_PLACE: bool;
    /// One group's convolution weights `[og, taps]`, prepared once per run
    /// for [`ConvFloat::conv_product`] (packed for the GEMM in f32).
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
        cols: &Im2Col<'_, Self>,
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
    /// `y = conv(x) + bias (+ addend)`, ReLU'd if asked, for a depthwise
    /// convolution (one input and one output channel per group), by the
    /// direct kernel where this type has it (f32): returns whether it did.
    fn conv_depthwise(_p: &Depthwise<'_, Self>, _y: &mut [Self]) -> bool {
        false
    }
}

/// A depthwise convolution: every plane convolved by its channel's kernel.
pub(crate) struct Depthwise<'a, T> {
    /// The input planes, `images x channels` of them.
    x: &'a [T],
    /// One kernel per channel.
    w: &'a [T],
    /// One bias per channel.
    bias: &'a [T],
    /// A fused residual of the output's shape.
    addend: Option<&'a [T]>,
    relu: bool,
    channels: usize,
    /// Height and width.
    axes: (depthwise::Axis, depthwise::Axis),
}

impl ConvFloat for f32 {
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
        cols: &Im2Col<'_, f32>,
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
    fn conv_depthwise(p: &Depthwise<'_, f32>, y: &mut [f32]) -> bool {
        let (rows, cols) = p.axes;
        let (plane, out_plane, taps) = (rows.input * cols.input, rows.output * cols.output, rows.taps * cols.taps);
        let epilogue = gemm::Epilogue::relu_if(p.relu);
        let one = |(i, out): (usize, &mut [f32])| {
            let channel = i % p.channels;
            let addend = p.addend.map(|r| &r[i * out_plane..][..out_plane]);
            let x = &p.x[i * plane..][..plane];
            depthwise::plane(x, &p.w[channel * taps..][..taps], (p.bias[channel], addend, epilogue), p.axes, out);
        };
        if crate::pool::worth_splitting(y.len() * taps, PARALLEL_TAPS) {
            y.par_chunks_exact_mut(out_plane).enumerate().for_each(one);
        } else {
            y.chunks_exact_mut(out_plane).enumerate().for_each(one);
        }
        true
    }
}

/// Depthwise multiply-adds from which planes are spread over threads: as
/// for the matrix products, a few µs of work on one core (16 times that with
/// the workers asleep: see [`crate::pool`]).
const PARALLEL_TAPS: usize = 1 << 18;

impl ConvFloat for f64 {
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
        cols: &Im2Col<'_, f64>,
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
            out.mapv_inplace(crate::linalg::relu);
        }
    }
}

/// `ConvTranspose1d/2d`, by scattering each input element through the
/// kernel into the output (the 1-D case runs as 2-D with height 1).
pub(crate) struct ConvTranspose {
    /// Per spatial dimension (height first in 2-D): kernel, stride, pad_begin, pad_end, dilation, output_padding.
    geometry: Vec<[i64; 6]>,
    groups: usize,
    out_channels: usize,
    bias: bool,
}

impl ConvTranspose {
    pub(crate) fn new(a: NodeAttrs<'_>, spatial: usize) -> Self {
        ConvTranspose {
            geometry: conv_transpose_geometry(a.raw(), spatial),
            groups: usize::try_from(a.int("groups")).unwrap_or(1).max(1),
            out_channels: usize::try_from(a.int("out_channels")).unwrap_or(0),
            bias: a.bool("bias"),
        }
    }
}

fn conv_transpose<T: Float>(k: &ConvTranspose, args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let w = view::<T>(args, 1)?;
    let spatial = k.geometry.len();
    let x = as_4d(x, spatial)?;
    let w = as_4d(w, spatial)?;
    // As 2-D: a 1-D transposed convolution is one with unit height.
    let unit = [1, 1, 0, 0, 1, 0];
    let [gh, gw] = if spatial == 1 { [unit, k.geometry[0]] } else { [k.geometry[0], k.geometry[1]] };
    let (n, c, h, wd) = x.dim();
    let (_, og, kh, kw) = w.dim();
    let (oh, ow) = (conv_transpose_length(h as i64, gh), conv_transpose_length(wd as i64, gw));
    if oh < 1 || ow < 1 {
        return Err(format!("the padding leaves no output for input [{h}, {wd}]"));
    }
    let (oh, ow) = (oh as usize, ow as usize);
    if k.out_channels != og * k.groups || c % k.groups != 0 {
        return Err(format!(
            "weight of shape {:?} does not fit {} output channels in {} groups",
            w.shape(),
            k.out_channels,
            k.groups
        ));
    }
    let cg = c / k.groups;
    let bias = if k.bias { Some(view::<T>(args, 2)?) } else { None };
    let mut y = vec![T::zero(); n * k.out_channels * oh * ow];
    for b in 0..n {
        for ci in 0..c {
            let g = ci / cg;
            for o in 0..og {
                let oc = g * og + o;
                let plane = &mut y[(b * k.out_channels + oc) * oh * ow..][..oh * ow];
                for i in 0..h {
                    for j in 0..wd {
                        let v = x[[b, ci, i, j]];
                        for ti in 0..kh {
                            let yi = i as i64 * gh[1] - gh[2] + ti as i64 * gh[4];
                            if yi < 0 || yi >= oh as i64 {
                                continue;
                            }
                            for tj in 0..kw {
                                let yj = j as i64 * gw[1] - gw[2] + tj as i64 * gw[4];
                                if yj >= 0 && yj < ow as i64 {
                                    plane[yi as usize * ow + yj as usize] += v * w[[ci, o, ti, tj]];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(bias) = bias {
        for (p, plane) in y.chunks_exact_mut(oh * ow).enumerate() {
            let bv = bias[[p % k.out_channels]];
            plane.iter_mut().for_each(|v| *v += bv);
        }
    }
    let mut shape = vec![n, k.out_channels];
    if spatial == 2 {
        shape.push(oh);
    }
    shape.push(ow);
    Ok(T::into_value(ArrayD::from_shape_vec(IxDyn(&shape), y).map_err(|e| e.to_string())?))
}

impl Kernel for ConvTranspose {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => conv_transpose::<T>(self, args))
    }
}
