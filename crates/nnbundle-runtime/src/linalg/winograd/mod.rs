//! 3x3 unit-stride convolutions by Winograd's minimal filtering algorithm
//! F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2016).
//!
//! Each 2x2 block of outputs (a *tile*) reads a 4x4 block of the input
//! (zero in the padding, which is never stored: the transforms read the
//! input with bounds). Transformed (`V = Bᵀ d B` per input channel, `U = G g Gᵀ` per
//! channel pair), the tile's outputs are `Y = Aᵀ M A` with `M[ξ] = Σ_c U[ξ] ·
//! V[ξ]` for each of the 16 points `ξ` of the 4x4 transformed tile: 16
//! multiply-adds per channel pair and tile instead of direct summation's 36,
//! done as 16 matrix products `M[ξ] = U[ξ] · V[ξ]` (`[out, in] · [in,
//! tiles]`) on the packed GEMM.
//!
//! Tiles go in blocks of whole tile rows, sized so that a block's `V` and
//! `M` stay in the core's L2 cache; threads take blocks.
//!
//! Rounding: the transforms of the input and output are additions and
//! subtractions in a fixed order, the products chains of fused multiply-adds
//! over the input channels (as every product of the runtime), so results are
//! the same on every machine, but not those of direct summation: they agree
//! with it to a few units in the last place of the sum of magnitudes. NaNs
//! reach the same outputs as in direct summation (an input value enters only
//! the outputs whose windows hold it); an infinite value can give NaN where
//! direct summation gives an infinity (`∞ - ∞` inside the transforms).

use multiversion::multiversion;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::gemm::{self, NR, PackedA, Prepacked};
use super::scratch::ThreadBuffer;

#[cfg(target_arch = "x86_64")]
mod avx512;

/// Points of a transformed tile (4x4).
const POINTS: usize = 16;

/// Tiles transformed together along a tile row (one vector per value).
const CHUNK: usize = 16;

/// Floats of a block's transformed input and products, together: kept
/// within L2 (512 KiB).
const BLOCK_FLOATS: usize = 1 << 17;

/// Input and output channels from which the algorithm pays: the transforms
/// cost per channel what the products cost per channel pair, and short
/// products run below the GEMM's peak. Four 3x3 layers at 32x32 here took
/// 0.44 ms against direct summation's 0.29 ms at 16 channels, 0.64 against
/// 0.56 at 24, and 0.78 against 1.07 at 32.
pub(crate) const MIN_CHANNELS: usize = 32;

/// Floats between the end of one point's matrix and the start of the next
/// (transformed input and products alike): 16 points a multiple of 4 KiB
/// apart would share one set of the L1 cache, and the transforms touch all
/// 16 at once (this skew made them 40% faster).
const SKEW: usize = 16;

/// How far apart the 16 points' matrices of a block of `tiles` tiles are:
/// `(transformed input, products)`.
fn strides(tiles: usize, (channels, outputs): (usize, usize)) -> (usize, usize) {
    (tiles.next_multiple_of(NR) * channels + SKEW, outputs * tiles + SKEW)
}

/// Blocks per thread when threads split a convolution.
const TASKS_PER_THREAD: usize = 4;

/// Multiply-adds (of direct summation) from which threads split the work
/// (16 times that with the workers asleep: see [`crate::pool`]).
const PARALLEL_WORK: usize = 1 << 18;

/// `G`, the weight transform: `U = G g Gᵀ` for a 3x3 kernel `g`.
const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// The transformed weights of `w [o, c, 3, 3]`: for each point `ξ`, `U[ξ]
/// [o, c]` packed for the GEMM (computed in f64, rounded once).
pub(crate) fn transform_weights(w: &[f32], (o, c): (usize, usize)) -> Vec<PackedA> {
    let mut u = vec![vec![0f32; o * c]; POINTS];
    for (pair, g) in w.chunks_exact(9).enumerate() {
        // G g, then (G g) Gᵀ.
        let gg: [[f64; 3]; 4] =
            std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|t| G[i][t] * f64::from(g[t * 3 + j])).sum()));
        for (point, u) in u.iter_mut().enumerate() {
            let (i, j) = (point / 4, point % 4);
            u[pair] = (0..3).map(|t| gg[i][t] * G[j][t]).sum::<f64>() as f32;
        }
    }
    u.iter().map(|u| PackedA::pack(ArrayView2::from_shape((o, c), u).expect("o x c transformed weights"))).collect()
}

/// One convolution: `images` images of `channels` planes in, as many
/// images of `outputs` planes out.
pub(crate) struct Problem<'a, T> {
    /// The input, planes of `plane` after one another.
    pub(crate) input: &'a [T],
    /// The input's `(height, width)`.
    pub(crate) plane: (usize, usize),
    /// Zeros around each plane: `(top, bottom, left, right)`.
    pub(crate) pads: (usize, usize, usize, usize),
    pub(crate) images: usize,
    pub(crate) channels: usize,
    pub(crate) outputs: usize,
    /// Added to each output channel's sums.
    pub(crate) bias: &'a [T],
    /// A residual connection's operand, laid out as the output, added to
    /// each sum after the bias.
    pub(crate) addend: Option<&'a [T]>,
    /// A ReLU on the result.
    pub(crate) relu: bool,
}

impl<T> Problem<'_, T> {
    /// The padded plane's `(height, width)`.
    fn padded(&self) -> (usize, usize) {
        let ((h, w), (top, bottom, left, right)) = (self.plane, self.pads);
        (h + top + bottom, w + left + right)
    }

    /// The output's `(height, width)`.
    fn out(&self) -> (usize, usize) {
        let (ph, pw) = self.padded();
        (ph - 2, pw - 2)
    }

    /// Tiles down and across an output plane.
    fn tiles(&self) -> (usize, usize) {
        let (oh, ow) = self.out();
        (oh.div_ceil(2), ow.div_ceil(2))
    }

    /// Where the chunk of tiles from `tx0` of tile row `ty` reads.
    fn window(&self, (ty, tx0): (usize, usize)) -> Window {
        let ((h, _), (top, _, left, _)) = (self.plane, self.pads);
        let rows = std::array::from_fn(|r| (2 * ty + r).checked_sub(top).filter(|&y| y < h));
        Window { rows, x0: (2 * tx0) as isize - left as isize }
    }

    /// Tile rows per block: as many as keep a block's work in L2, and, on
    /// `threads` threads, few enough for [`TASKS_PER_THREAD`] blocks each
    /// (a thread that wakes late still finds work).
    fn block_rows(&self, threads: usize) -> usize {
        let per_tile = POINTS * (self.channels + self.outputs);
        let (th, tw) = self.tiles();
        let in_cache = BLOCK_FLOATS / per_tile / tw.max(1);
        let shared = if threads > 1 { (self.images * th).div_ceil(TASKS_PER_THREAD * threads) } else { th };
        in_cache.min(shared).clamp(1, th.max(1))
    }
}

/// `y [images, outputs, oh, ow] = conv(input, w) + bias (+ addend)`, then
/// the ReLU, for `u` the weights from [`transform_weights`]. Each thread
/// keeps its work buffer (about [`BLOCK_FLOATS`] floats, more when one tile
/// row needs more) for the next convolution.
///
/// # Panics
/// If the sizes disagree.
pub(crate) fn convolve(p: &Problem<'_, f32>, u: &[PackedA], y: &mut [f32]) {
    let (ph, pw) = p.padded();
    assert!(ph >= 3 && pw >= 3, "a 3x3 window fits the padded input");
    let (oh, ow) = p.out();
    assert_eq!(u.len(), POINTS, "transformed weights per point");
    assert_eq!(p.input.len(), p.images * p.channels * p.plane.0 * p.plane.1, "input");
    assert_eq!(y.len(), p.images * p.outputs * oh * ow, "output");
    assert!(p.bias.len() == p.outputs && p.addend.is_none_or(|r| r.len() == y.len()), "bias and addend");
    let (th, tw) = p.tiles();
    let threads = rayon::current_num_threads();
    let parallel = crate::pool::worth_splitting(p.images * p.outputs * p.channels * 9 * oh * ow, PARALLEL_WORK);
    let rows = p.block_rows(if parallel { threads } else { 1 });
    let per_image = th.div_ceil(rows);
    // Each block's part of every output plane: `2 * rows` output rows.
    let mut blocks: Vec<(usize, Vec<&mut [f32]>)> = Vec::with_capacity(p.images * per_image);
    for (image, planes) in y.chunks_mut((p.outputs * oh * ow).max(1)).enumerate() {
        let first = blocks.len();
        blocks.extend((0..per_image).map(|b| (image * per_image + b, Vec::with_capacity(p.outputs))));
        for plane in planes.chunks_mut((oh * ow).max(1)) {
            for (band, (_, parts)) in plane.chunks_mut(2 * rows * ow).zip(&mut blocks[first..]) {
                parts.push(band);
            }
        }
    }
    let (v_stride, m_stride) = strides(rows * tw, (p.channels, p.outputs));
    let work = |(block, mut out): (usize, Vec<&mut [f32]>)| {
        let mut buffer = ThreadBuffer::take(&BLOCK_BUFFER);
        let (image, first) = (block / per_image, block % per_image * rows);
        let buffer = buffer.first(POINTS * (v_stride + m_stride));
        run_block(p, u, (image, first..(first + rows).min(th)), &mut out, buffer);
    };
    if parallel {
        blocks.into_par_iter().for_each(work);
    } else {
        blocks.into_iter().for_each(work);
    }
}

thread_local! {
    /// Each thread's buffer for a block's transformed input and products
    /// (both written whole before they are read).
    static BLOCK_BUFFER: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Tile rows `tile_rows` of image `image`: input transform, the 16
/// products, output transform into `out` (per output channel, the output
/// rows of these tile rows), in `buffer`.
fn run_block(
    p: &Problem<'_, f32>,
    u: &[PackedA],
    (image, tile_rows): (usize, std::ops::Range<usize>),
    out: &mut [&mut [f32]],
    buffer: &mut [f32],
) {
    let (tw, c) = (p.tiles().1, p.channels);
    let tiles = tile_rows.len() * tw;
    let (v_stride, m_stride) = strides(tiles, (c, p.outputs));
    let (v, m) = buffer.split_at_mut(POINTS * v_stride);
    let m = &mut m[..POINTS * m_stride];
    input_transform(p, (image, tile_rows.clone()), v, v_stride);
    let panels = tiles.next_multiple_of(NR) * c;
    // The last panel's columns past the tiles are computed and dropped; zero
    // them so that no stale NaN slows the product.
    let last = tiles % NR;
    if last != 0 {
        for point in v.chunks_exact_mut(v_stride) {
            for row in point[(tiles / NR) * NR * c..panels].chunks_exact_mut(NR) {
                row[last..].fill(0.0);
            }
        }
    }
    for ((u, v), m) in u.iter().zip(v.chunks_exact(v_stride)).zip(m.chunks_exact_mut(m_stride)) {
        let b = Prepacked { k: c, n: tiles, panels: &v[..panels] };
        let mut m =
            ArrayViewMut2::from_shape((p.outputs, tiles), &mut m[..p.outputs * tiles]).expect("outputs x tiles");
        gemm::gemm(u, &b, &mut m, gemm::Init::Zero, gemm::Epilogue::None);
    }
    output_transform(p, (image, tile_rows), (m, m_stride), out);
}

/// `Y = Aᵀ M A` for each tile of the block, plus bias and addend, through
/// the ReLU, into `out`.
#[multiversion(targets("x86_64+avx2", "aarch64+neon"))]
fn output_transform(
    p: &Problem<'_, f32>,
    (image, tile_rows): (usize, std::ops::Range<usize>),
    (m, m_stride): (&[f32], usize),
    out: &mut [&mut [f32]],
) {
    let ((oh, ow), (_, tw)) = (p.out(), p.tiles());
    let tiles = tile_rows.len() * tw;
    let y0 = 2 * tile_rows.start;
    let epilogue = gemm::Epilogue::relu_if(p.relu);
    #[cfg(target_arch = "x86_64")]
    let fast = avx512::available();
    let mut points = [[0f32; CHUNK]; POINTS];
    for (oc, plane) in out.iter_mut().enumerate() {
        let bias = p.bias[oc];
        let addend = p.addend.map(|r| &r[(image * p.outputs + oc) * oh * ow..][..oh * ow]);
        for (r, ty) in tile_rows.clone().enumerate() {
            for tx0 in (0..tw).step_by(CHUNK) {
                let count = CHUNK.min(tw - tx0);
                let x0 = 2 * tx0;
                #[cfg(target_arch = "x86_64")]
                if fast && count == CHUNK && x0 + 2 * CHUNK <= ow && 2 * ty + 1 < oh {
                    let (upper, lower) = plane[(2 * ty - y0) * ow..].split_at_mut(ow);
                    let addend = |a: usize| addend.map(|r| &r[(2 * ty + a) * ow + x0..]);
                    let rows = [(&mut upper[x0..], addend(0)), (&mut lower[x0..], addend(1))];
                    let at = (m_stride, oc * tiles + r * tw + tx0);
                    avx512::output_chunk(m, at, (bias, p.relu), rows);
                    continue;
                }
                for (point, values) in points.iter_mut().enumerate() {
                    values[..count].copy_from_slice(&m[point * m_stride + oc * tiles + r * tw + tx0..][..count]);
                }
                let rows = output_chunk(&points);
                let width = (2 * count).min(ow - x0);
                for (a, values) in rows.iter().enumerate() {
                    let yy = 2 * ty + a;
                    if yy >= oh {
                        break;
                    }
                    let dst = &mut plane[(yy - y0) * ow + x0..][..width];
                    let values = &values[..width];
                    match addend {
                        Some(addend) => {
                            let addend = &addend[yy * ow + x0..][..width];
                            for ((d, &v), &r) in dst.iter_mut().zip(values).zip(addend) {
                                *d = epilogue.apply(v + bias + r);
                            }
                        }
                        None => dst.iter_mut().zip(values).for_each(|(d, &v)| *d = epilogue.apply(v + bias)),
                    }
                }
            }
        }
    }
}

/// `V[ξ]` for the tiles of tile rows `tile_rows` of image `image`, packed as
/// the GEMM reads it: each point's matrix (`point_len` floats apart) holds panels of [`NR`]
/// tiles, a row per input channel.
#[multiversion(targets("x86_64+avx2", "aarch64+neon"))]
fn input_transform(
    p: &Problem<'_, f32>,
    (image, tile_rows): (usize, std::ops::Range<usize>),
    v: &mut [f32],
    point_len: usize,
) {
    let ((h, w), (_, tw), c) = (p.plane, p.tiles(), p.channels);
    let planes = &p.input[image * c * h * w..][..c * h * w];
    #[cfg(target_arch = "x86_64")]
    let fast = avx512::available();
    let mut values = [[0f32; CHUNK]; POINTS];
    for (r, ty) in tile_rows.enumerate() {
        for tx0 in (0..tw).step_by(CHUNK) {
            let count = CHUNK.min(tw - tx0);
            let first = r * tw + tx0;
            let window = p.window((ty, tx0));
            // Where tile `first + t` of channel `ci` goes in each point's matrix.
            let at = |t: usize, ci: usize| (first + t) / NR * NR * c + ci * NR + (first + t) % NR;
            // A whole chunk in one panel: all channels at once.
            #[cfg(target_arch = "x86_64")]
            if fast && count == CHUNK && first % NR + CHUNK <= NR {
                avx512::input_chunks((planes, (h, w)), window, v, (point_len, at(0, 0)));
                continue;
            }
            for (ci, plane) in planes.chunks_exact((h * w).max(1)).enumerate() {
                input_chunk(plane, w, window, &mut values);
                for t in 0..count {
                    for (point, values) in values.iter().enumerate() {
                        v[point * point_len + at(t, ci)] = values[t];
                    }
                }
            }
        }
    }
}

/// Where a chunk of [`CHUNK`] tiles reads its input: 4 rows of [`SPAN`]
/// values, zero in the padding.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// Each row's index in its plane, `None` in the padding.
    rows: [Option<usize>; 4],
    /// The input column of the first value (negative in the left padding).
    x0: isize,
}

/// Input values one chunk reads per row.
const SPAN: usize = 2 * CHUNK + 2;

/// Of `len` values from input column `x0`, those inside a row of `width`:
/// `lo..hi`.
fn inside(x0: isize, len: usize, width: usize) -> (usize, usize) {
    let lo = (-x0).clamp(0, len as isize);
    let hi = (width as isize - x0).clamp(lo, len as isize);
    (lo as usize, hi as usize)
}

/// `V = Bᵀ d B` for the [`CHUNK`] tiles `window` reads of one plane of
/// `width` columns, into `v[ξ][t]`.
#[inline(always)]
fn input_chunk(plane: &[f32], width: usize, window: Window, v: &mut [[f32; CHUNK]; POINTS]) {
    // Each of the tile's 4 input rows transformed along x: h[r][j][t].
    let mut h = [[[0f32; CHUNK]; 4]; 4];
    for (h, y) in h.iter_mut().zip(window.rows) {
        let mut row = [0f32; SPAN];
        let (lo, hi) = inside(window.x0, SPAN, width);
        if let Some(y) = y.filter(|_| hi > lo) {
            let from = (y * width) as isize + window.x0 + lo as isize;
            row[lo..hi].copy_from_slice(&plane[from as usize..][..hi - lo]);
        }
        let (mut even, mut odd) = ([0f32; CHUNK + 1], [0f32; CHUNK + 1]);
        for ((e, o), pair) in even.iter_mut().zip(&mut odd).zip(row.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
        for t in 0..CHUNK {
            let [d0, d1, d2, d3] = [even[t], odd[t], even[t + 1], odd[t + 1]];
            h[0][t] = d0 - d2;
            h[1][t] = d1 + d2;
            h[2][t] = d2 - d1;
            h[3][t] = d1 - d3;
        }
    }
    for j in 0..4 {
        for t in 0..CHUNK {
            v[j][t] = h[0][j][t] - h[2][j][t];
            v[4 + j][t] = h[1][j][t] + h[2][j][t];
            v[8 + j][t] = h[2][j][t] - h[1][j][t];
            v[12 + j][t] = h[1][j][t] - h[3][j][t];
        }
    }
}

/// `Y = Aᵀ M A` for [`CHUNK`] tiles (`m[ξ][t]`): the two output rows of the
/// tiles, each as `2 * CHUNK` values along x.
#[inline(always)]
fn output_chunk(m: &[[f32; CHUNK]; POINTS]) -> [[f32; 2 * CHUNK]; 2] {
    // Along x first: s[i][b][t] for row i of M.
    let mut s = [[[0f32; CHUNK]; 2]; 4];
    for (i, s) in s.iter_mut().enumerate() {
        let [m0, m1, m2, m3] = [&m[4 * i], &m[4 * i + 1], &m[4 * i + 2], &m[4 * i + 3]];
        for t in 0..CHUNK {
            s[0][t] = m0[t] + m1[t] + m2[t];
            s[1][t] = m1[t] - m2[t] - m3[t];
        }
    }
    // Then along y: row a, column b of each tile.
    let mut y = [[[0f32; CHUNK]; 2]; 2];
    for b in 0..2 {
        for t in 0..CHUNK {
            y[0][b][t] = s[0][b][t] + s[1][b][t] + s[2][b][t];
            y[1][b][t] = s[1][b][t] - s[2][b][t] - s[3][b][t];
        }
    }
    // Each output row: the tiles' two columns in turn.
    let mut rows = [[0f32; 2 * CHUNK]; 2];
    for (row, [left, right]) in rows.iter_mut().zip(&y) {
        for ((pair, &l), &r) in row.chunks_exact_mut(2).zip(left).zip(right) {
            pair[0] = l;
            pair[1] = r;
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic value in [-1, 1) from an index and a seed.
    fn value(i: usize, seed: usize) -> f32 {
        (((i * 7919 + seed * 104_729) % 2003) as f32 - 1001.5) / 1001.5
    }

    struct Case {
        images: usize,
        channels: usize,
        outputs: usize,
        /// Input `(height, width)`.
        plane: (usize, usize),
        /// `(top, bottom, left, right)`.
        pads: (usize, usize, usize, usize),
    }

    impl Case {
        fn padded_plane(&self) -> (usize, usize) {
            let (t, b, l, r) = self.pads;
            (self.plane.0 + t + b, self.plane.1 + l + r)
        }

        fn out(&self) -> (usize, usize) {
            let (ph, pw) = self.padded_plane();
            (ph - 2, pw - 2)
        }

        /// The input, zero-padded (for the reference).
        fn pad(&self, x: &[f32]) -> Vec<f32> {
            let ((h, w), (ph, pw), (top, _, left, _)) = (self.plane, self.padded_plane(), self.pads);
            let mut padded = vec![0f32; self.images * self.channels * ph * pw];
            for (plane, dst) in x.chunks_exact(h * w).zip(padded.chunks_exact_mut(ph * pw)) {
                for (row, dst) in plane.chunks_exact(w).zip(dst[top * pw..].chunks_exact_mut(pw)) {
                    dst[left..left + w].copy_from_slice(row);
                }
            }
            padded
        }

        /// Direct summation in f64: each output's value and the sum of the
        /// magnitudes of its terms (bias and addend included).
        fn reference(&self, padded: &[f32], w: &[f32], bias: &[f32], addend: Option<&[f32]>) -> Vec<(f64, f64)> {
            let ((ph, pw), (oh, ow), c) = (self.padded_plane(), self.out(), self.channels);
            let mut out = Vec::with_capacity(self.images * self.outputs * oh * ow);
            for n in 0..self.images {
                for o in 0..self.outputs {
                    for (y, x) in (0..oh).flat_map(|y| (0..ow).map(move |x| (y, x))) {
                        let (mut sum, mut size) = (f64::from(bias[o]), f64::from(bias[o].abs()));
                        for (ci, i, j) in (0..c).flat_map(|ci| (0..9).map(move |t| (ci, t / 3, t % 3))) {
                            let term = f64::from(w[(o * c + ci) * 9 + i * 3 + j])
                                * f64::from(padded[((n * c + ci) * ph + y + i) * pw + x + j]);
                            sum += term;
                            size += term.abs();
                        }
                        if let Some(r) = addend {
                            let r = f64::from(r[((n * self.outputs + o) * oh + y) * ow + x]);
                            sum += r;
                            size += r.abs();
                        }
                        out.push((sum, size));
                    }
                }
            }
            out
        }

        /// The runtime's result for input `x`.
        fn run(&self, input: &[f32], w: &[f32], (bias, addend, relu): (&[f32], Option<&[f32]>, bool)) -> Vec<f32> {
            let (oh, ow) = self.out();
            let problem = Problem {
                input,
                plane: self.plane,
                pads: self.pads,
                images: self.images,
                channels: self.channels,
                outputs: self.outputs,
                bias,
                addend,
                relu,
            };
            let mut y = vec![f32::NAN; self.images * self.outputs * oh * ow];
            let u = transform_weights(w, (self.outputs, self.channels));
            convolve(&problem, &u, &mut y);
            y
        }
    }

    fn cases() -> Vec<Case> {
        let case = |images, channels, outputs, plane, pads| Case { images, channels, outputs, plane, pads };
        vec![
            // The residual blocks' shape: whole chunks, whole panels.
            case(2, 16, 16, (32, 32), (1, 1, 1, 1)),
            // Odd output sizes (a last tile half outside), tile rows of 19
            // that cross panels, a last chunk of 3 tiles.
            case(1, 17, 20, (9, 37), (1, 1, 1, 1)),
            // No padding, asymmetric padding, a single output row and column.
            case(3, 16, 18, (7, 12), (0, 0, 0, 0)),
            case(1, 20, 16, (6, 40), (2, 0, 0, 1)),
            case(1, 16, 16, (1, 1), (1, 1, 1, 1)),
            // Wide rows: several chunks per tile row; blocks of one tile row.
            case(1, 24, 30, (4, 150), (1, 1, 1, 1)),
        ]
    }

    /// The result agrees with direct summation in f64, with and without a
    /// fused addend and ReLU, on one thread and on three (which split the
    /// blocks, and give the same bits).
    #[test]
    fn matches_direct_summation() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for (k, case) in cases().into_iter().enumerate() {
            let (h, w) = case.plane;
            let x: Vec<f32> = (0..case.images * case.channels * h * w).map(|i| value(i, k)).collect();
            let weights: Vec<f32> = (0..case.outputs * case.channels * 9).map(|i| value(i, k + 100)).collect();
            let bias: Vec<f32> = (0..case.outputs).map(|i| value(i, k + 200)).collect();
            let (oh, ow) = case.out();
            let addend: Vec<f32> = (0..case.images * case.outputs * oh * ow).map(|i| value(i, k + 300)).collect();
            let padded = case.pad(&x);
            for (addend, relu) in [(None, false), (Some(&addend[..]), true), (Some(&addend[..]), false)] {
                let what = format!("case {k}, addend {}, relu {relu}", addend.is_some());
                let y = case.run(&x, &weights, (&bias, addend, relu));
                let reference = case.reference(&padded, &weights, &bias, addend);
                for (at, (&got, &(sum, size))) in y.iter().zip(&reference).enumerate() {
                    let want = if relu { sum.max(0.0) } else { sum };
                    // A few units in the last place of the terms' magnitude.
                    let bound = 8.0 * f64::from(f32::EPSILON) * size;
                    assert!((f64::from(got) - want).abs() <= bound, "{what}, at {at}: {got} vs {want} (±{bound})");
                }
                let threaded = crate::pool::awake_in(&pool, || case.run(&x, &weights, (&bias, addend, relu)));
                let bits = |y: &[f32]| y.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&threaded), bits(&y), "{what}: three threads");
            }
        }
    }

    /// A NaN in the input reaches exactly the outputs whose windows hold it,
    /// as in direct summation: the transforms mix the values of a tile, but
    /// each input value enters only the outputs that read it.
    #[test]
    fn nans_reach_the_outputs_that_read_them() {
        let case = Case { images: 1, channels: 16, outputs: 16, plane: (12, 36), pads: (1, 1, 1, 1) };
        let (h, w) = case.plane;
        let weights: Vec<f32> = (0..16 * 16 * 9).map(|i| value(i, 1)).collect();
        let bias = vec![0.5; 16];
        for (y, x) in [(0, 0), (5, 6), (5, 7), (6, 6), (11, 35), (3, 16), (3, 17)] {
            let mut input: Vec<f32> = (0..16 * h * w).map(|i| value(i, 2)).collect();
            input[3 * h * w + y * w + x] = f32::NAN;
            let out = case.run(&input, &weights, (&bias, None, false));
            let (oh, ow) = case.out();
            for (at, v) in out.iter().enumerate() {
                let (oy, ox) = (at / ow % oh, at % ow);
                // Output (oy, ox) reads input rows oy - 1 ..= oy + 1 (padding 1).
                let reads = (oy + 1).abs_diff(y + 1) <= 1 && (ox + 1).abs_diff(x + 1) <= 1;
                assert_eq!(v.is_nan(), reads, "NaN at ({y}, {x}): output {at} ({oy}, {ox}) is {v}");
            }
        }
    }

    /// The AVX-512 transforms give the bits of the portable ones.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_transforms_agree_bit_for_bit() {
        if !crate::linalg::avx512_test_runs(avx512::available()) {
            return;
        }
        // Input: windows of 4 rows of a 5 x 37 plane (34 values each, some
        // in the padding), into a point stride of 40.
        let (h, w) = (5, SPAN + 3);
        let mut plane: Vec<f32> = (0..h * w).map(|i| value(i, 3) * 1e3).collect();
        plane[w + 7] = f32::NAN;
        plane[2 * w + 20] = -0.0;
        let windows = [
            Window { rows: [Some(1), Some(2), Some(3), Some(4)], x0: 1 },
            Window { rows: [None, Some(0), Some(1), Some(2)], x0: -1 },
            Window { rows: [Some(3), Some(4), None, None], x0: 3 },
            Window { rows: [Some(0), None, Some(2), Some(1)], x0: -20 },
            Window { rows: [Some(2), Some(2), Some(2), Some(2)], x0: 30 },
            Window { rows: [Some(4), Some(3), Some(2), Some(1)], x0: 40 },
        ];
        for window in windows {
            let stride = 40;
            let mut fast = vec![f32::NAN; POINTS * stride];
            avx512::input_chunks((&plane, (h, w)), window, &mut fast, (stride, 3));
            let mut values = [[0f32; CHUNK]; POINTS];
            input_chunk(&plane, w, window, &mut values);
            for (point, values) in values.iter().enumerate() {
                let got = &fast[point * stride + 3..][..CHUNK];
                let same = got.iter().zip(values).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{window:?}, point {point}: {got:?} vs {values:?}");
            }
        }
        // Output: 16 points of 16 tiles, stride 20, two rows with addends.
        let mut m: Vec<f32> = (0..POINTS * 20).map(|i| value(i, 4) * 10.0).collect();
        m[5 * 20 + 2 + 3] = f32::NAN; // tile 3: NaN through the ReLU too
        let addend: Vec<f32> = (0..4 * CHUNK).map(|i| value(i, 5)).collect();
        for relu in [false, true] {
            let (mut upper, mut lower) = (vec![f32::NAN; 2 * CHUNK], vec![f32::NAN; 2 * CHUNK]);
            let rows = [(&mut upper[..], Some(&addend[..2 * CHUNK])), (&mut lower[..], Some(&addend[2 * CHUNK..]))];
            avx512::output_chunk(&m, (20, 2), (0.25, relu), rows);
            let mut points = [[0f32; CHUNK]; POINTS];
            for (point, values) in points.iter_mut().enumerate() {
                values.copy_from_slice(&m[point * 20 + 2..][..CHUNK]);
            }
            let want = output_chunk(&points);
            for (a, got) in [upper, lower].iter().enumerate() {
                for (x, &g) in got.iter().enumerate() {
                    let e = gemm::Epilogue::relu_if(relu).apply(want[a][x] + 0.25 + addend[a * 2 * CHUNK + x]);
                    assert_eq!(g.to_bits(), e.to_bits(), "relu {relu}, row {a}, column {x}");
                }
                assert!(got[6..8].iter().all(|v| v.is_nan()), "tile 3's outputs are NaN");
            }
        }
    }
}
