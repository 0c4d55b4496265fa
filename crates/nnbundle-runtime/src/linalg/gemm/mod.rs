//! Single-precision matrix products over a packed left operand: the API
//! (`gemm`, `gemm_windows`); packing is in `pack`, the micro-kernels in
//! `micro` and `avx512`.
//!
//! `C (+)= A · B` where `A` (weights, constant for a model's life) is packed
//! once into panels of [`MR`] rows, `B` is packed per call into panels of
//! [`NR`] columns (or, for unit-stride convolutions, read in place: see
//! [`Windows`]), and a register-blocked `MR x NR` micro-kernel computes each
//! tile. On AVX-512 and on AVX2+FMA the micro-kernel is written with
//! intrinsics (see [`avx512`], [`avx2`]); elsewhere it is plain Rust compiled
//! per instruction set (NEON, baseline) and chosen at run time, so one binary
//! runs everywhere at the speed of the machine it runs on. All round the same
//! way (one fused multiply-add per term, in `k` order), so they agree bit for
//! bit where FMA exists.

use ndarray::ArrayViewMut2;
use rayon::prelude::*;

use super::scratch::ThreadBuffer;
pub(crate) use super::{Epilogue, relu};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod micro;
mod pack;

use micro::{Dst, PanelB, Start, micro_kernel, padded};
pub(crate) use pack::{PackedA, PanelSource, Prepacked, pack_panels};

/// Rows of a micro-tile.
const MR: usize = 12;
/// Rows of the short panel that ends a left operand whose row count leaves at
/// most this many over (a 6-channel convolution is not padded to 12).
const HALF_MR: usize = MR / 2;
/// Rows of the shorter panel that ends a left operand whose row count leaves
/// at most this many over (64 channels are 5 panels of 12 and one of 4, not 6).
const THIRD_MR: usize = MR / 3;
/// Columns of a micro-tile.
pub(crate) const NR: usize = 32;
/// Products of at least this many multiply-adds split across threads (about
/// 5 µs of work on one core; 16 times that with the workers asleep: see
/// [`crate::pool`]).
const PARALLEL_WORK: usize = 1 << 18;
/// Packed `B` block size in floats: kept within the per-core L2 cache while
/// every panel of `A` passes over it.
const B_BLOCK_FLOATS: usize = 1 << 18;

/// Left operands of at most this many rows read a row-major right operand
/// in place (see [`gemm`]).
const IN_PLACE_MAX_ROWS: usize = 4 * MR;

/// One micro-tile of the product, row-major.
type Tile = [[f32; NR]; MR];

/// The output matrix, by memory layout.
enum Out<'a, 'b> {
    /// Row-major, rows `ld` apart.
    Rows(&'a mut [f32], usize),
    /// Column-major (a transposed row-major matrix), columns `ld` apart.
    Cols(&'a mut [f32], usize),
    /// Column-major, as one slice per column (a band of rows of a larger matrix).
    Columns(Vec<&'a mut [f32]>),
    /// Any other strides.
    Strided(&'a mut ArrayViewMut2<'b, f32>),
}

impl Out<'_, '_> {
    /// Puts the first `rows x cols` of `init` plus the product of `panel_a`
    /// and `panel_b` at `(i0, j0)`, through `epilogue`: straight into the
    /// output's rows when the output is row-major and the tile whole,
    /// otherwise through `tile`. The lines of `prefetch` are fetched into L2
    /// meanwhile (see [`micro_kernel`]).
    fn put_product(
        &mut self,
        (panel_a, prefetch): (&[f32], &[f32]),
        panel_b: PanelB<'_>,
        tile: &mut Tile,
        ((i0, j0), (rows, cols)): ((usize, usize), (usize, usize)),
        (init, epilogue): (Init<'_>, Epilogue),
    ) {
        let whole = cols == NR && rows == panel_a.len() / panel_b.k().max(1);
        match self {
            Out::Rows(c, ld) if whole => {
                let dst = Dst::Rows(&mut c[i0 * *ld + j0..], *ld);
                micro_kernel(panel_a, panel_b, dst, init.start(i0, j0), epilogue, prefetch);
            }
            _ => {
                // A partial tile starts at the same bias as a whole one, so
                // every output is the same chain of fused multiply-adds.
                let mut store = [0.0; NR];
                let start = init.partial_start((i0, j0), (rows, cols), &mut store);
                micro_kernel(panel_a, panel_b, Dst::Tile(tile), start, epilogue, prefetch);
                self.put(tile, (i0, j0), (rows, cols));
            }
        }
    }

    /// Puts the first `rows x cols` of `tile` at `(i0, j0)`.
    fn put(&mut self, tile: &Tile, (i0, j0): (usize, usize), (rows, cols): (usize, usize)) {
        let tile = tile.iter().take(rows).enumerate().map(|(i, row)| (i0 + i, &row[..cols]));
        match self {
            Out::Rows(c, ld) => {
                for (i, values) in tile {
                    c[i * *ld + j0..][..cols].copy_from_slice(values);
                }
            }
            Out::Cols(c, ld) => {
                for (i, values) in tile {
                    for (j, &v) in values.iter().enumerate() {
                        c[(j0 + j) * *ld + i] = v;
                    }
                }
            }
            Out::Columns(columns) => {
                for (i, values) in tile {
                    for (column, &v) in columns[j0..].iter_mut().zip(values) {
                        column[i] = v;
                    }
                }
            }
            Out::Strided(c) => {
                for (i, values) in tile {
                    for (j, &v) in values.iter().enumerate() {
                        c[[i, j0 + j]] = v;
                    }
                }
            }
        }
    }
}

/// Where the sums of a product start.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init<'a> {
    /// At zero.
    Zero,
    /// At `bias[i]` in row `i` of the output.
    RowBias(&'a [f32]),
    /// At `bias[j]` in column `j` of the output.
    ColumnBias(&'a [f32]),
}

impl<'a> Init<'a> {
    /// The start of element `(i, j)`.
    fn at(self, i: usize, j: usize) -> f32 {
        match self {
            Init::Zero => 0.0,
            Init::RowBias(bias) => bias[i],
            Init::ColumnBias(bias) => bias[j],
        }
    }

    /// The same start for the part of the output from row `i0`, column `j0`.
    fn from(self, i0: usize, j0: usize) -> Init<'a> {
        match self {
            Init::RowBias(bias) => Init::RowBias(&bias[i0..]),
            Init::ColumnBias(bias) => Init::ColumnBias(&bias[j0..]),
            Init::Zero => Init::Zero,
        }
    }

    /// The micro-kernel's start for a partial tile of `rows x cols` at
    /// `(i0, j0)`: the bias the output has there, zeros past it (in `store`).
    fn partial_start<'s>(
        self,
        (i0, j0): (usize, usize),
        (rows, cols): (usize, usize),
        store: &'s mut [f32; NR],
    ) -> Start<'s> {
        match self {
            Init::Zero => Start::Zero,
            Init::RowBias(bias) => Start::RowBias(padded(&bias[i0..i0 + rows], store)),
            Init::ColumnBias(bias) => Start::ColumnBias(padded(&bias[j0..j0 + cols], store)),
        }
    }

    /// The micro-kernel's start for the whole tile at `(i0, j0)`.
    fn start(self, i0: usize, j0: usize) -> Start<'a> {
        match self.from(i0, j0) {
            Init::Zero => Start::Zero,
            Init::RowBias(bias) => Start::RowBias(bias),
            Init::ColumnBias(bias) => Start::ColumnBias(bias[..NR].try_into().expect("NR columns of bias")),
        }
    }
}

/// `C = init + A · B` for `c [m, n]` (any strides, contents ignored), where
/// `init` is zero or a bias along its rows or columns. Each element then
/// goes through `epilogue`, while its tile is in cache.
///
/// # Panics
/// If the shapes disagree, or a bias is shorter than its side of `c`.
pub(crate) fn gemm(
    a: &PackedA,
    b: &impl PanelSource,
    c: &mut ArrayViewMut2<'_, f32>,
    init: Init<'_>,
    epilogue: Epilogue,
) {
    let (k, n) = b.dim();
    assert_eq!(k, a.k, "inner dimensions of the product");
    assert_eq!(c.dim(), (a.m, n), "output shape of the product");
    match init {
        Init::RowBias(bias) => assert!(bias.len() >= a.m, "bias for {} rows", a.m),
        Init::ColumnBias(bias) => assert!(bias.len() >= n, "bias for {n} columns"),
        Init::Zero => {}
    }
    if k == 0 {
        // No terms: the output is its start.
        c.indexed_iter_mut().for_each(|((i, j), d)| *d = epilogue.apply(init.at(i, j)));
        return;
    }
    if a.m == 0 || n == 0 {
        return;
    }
    let parallel = crate::pool::worth_splitting(a.m * n * k, PARALLEL_WORK);
    let mut out = if c.is_standard_layout() {
        Out::Rows(c.as_slice_mut().expect("standard layout"), n)
    } else if c.t().is_standard_layout() {
        Out::Cols(c.view_mut().reversed_axes().into_slice().expect("standard layout"), a.m)
    } else {
        Out::Strided(c)
    };
    let block = (B_BLOCK_FLOATS / k / NR * NR).max(NR);
    // A row-major B is read in place when few panels of A pass over it:
    // packing then costs more than it saves (the textbook MLP's 256 -> 10
    // layer: 20% of a run), while with many panels (the wide MLP) packed
    // panels read faster.
    let in_place = b.rows_in_place().filter(|_| a.m <= IN_PLACE_MAX_ROWS);
    let prepacked = b.packed();
    if let Some(panels) = prepacked {
        assert!(panels.len() >= n.div_ceil(NR) * NR * k, "prepacked operand: {} floats", panels.len());
    }
    let mut buffer = ThreadBuffer::take(&PACK_BUFFER);
    for j0 in (0..n).step_by(block) {
        let width = block.min(n - j0);
        let panels = width.div_ceil(NR);
        // Read in place, only a last partial panel is packed; prepacked, none.
        let first_packed = match (prepacked, in_place) {
            (Some(_), _) => panels,
            (None, Some(_)) => width / NR,
            (None, None) => 0,
        };
        let packed_b = buffer.first((panels - first_packed) * NR * k);
        let pack = |(i, panel): (usize, &mut [f32])| {
            let q = first_packed + i;
            b.pack_panel(j0 + q * NR, NR.min(width - q * NR), panel);
        };
        if parallel {
            packed_b.par_chunks_exact_mut(NR * k).enumerate().for_each(pack);
        } else {
            packed_b.chunks_exact_mut(NR * k).enumerate().for_each(pack);
        }
        let packed_b = &*packed_b;
        let panel_b = |q: usize| match (prepacked, in_place) {
            (Some(panels), _) => PanelB::Packed(&panels[(j0 + q * NR) * k..][..NR * k]),
            (None, Some(src)) if q < first_packed => PanelB::Strided { src, ld: n, q0: j0 + q * NR },
            _ => PanelB::Packed(&packed_b[(q - first_packed) * NR * k..][..NR * k]),
        };
        let panels_b = || (0..panels).map(|q| (q, panel_b(q)));
        let mut tile = [[0.0; NR]; MR];
        match &mut out {
            // Threads split the output: bands of MR rows (one panel of A each)
            // in row-major C, or NR columns (one panel of B each) in column-major C.
            Out::Rows(c, ld) if parallel => {
                let ld = *ld;
                a.data.par_chunks(MR * k).zip(c.par_chunks_mut(MR * ld)).enumerate().for_each(
                    |(p, (panel_a, band))| {
                        let mut band = Out::Rows(band, ld);
                        let mut tile = [[0.0; NR]; MR];
                        for (q, panel_b) in panels_b() {
                            let size = (MR.min(a.m - p * MR), NR.min(width - q * NR));
                            let at = (0, j0 + q * NR);
                            let init = init.from(p * MR, 0);
                            // A thread mostly takes the next panel next (rayon
                            // splits the range in halves): fetch it meanwhile.
                            let next = if q == 0 { a.panel_after(p) } else { &[] };
                            band.put_product((panel_a, next), panel_b, &mut tile, (at, size), (init, epilogue));
                        }
                    },
                );
            }
            // Column-major C with panels of A to share out: threads take bands
            // of rows, so that each reads its own part of A once (taking
            // columns, every thread streamed all of A: the wide MLP's 64 MiB
            // layer twice over at 2 threads).
            Out::Cols(c, ld) if parallel && a.m.div_ceil(MR) >= 2 * rayon::current_num_threads() => {
                let ld = *ld;
                let band_rows = a.m.div_ceil(MR).div_ceil(4 * rayon::current_num_threads()) * MR;
                let mut bands: Vec<Vec<&mut [f32]>> =
                    (0..a.m.div_ceil(band_rows)).map(|_| Vec::with_capacity(width)).collect();
                for column in c[j0 * ld..(j0 + width) * ld].chunks_mut(ld) {
                    bands.iter_mut().zip(column.chunks_mut(band_rows)).for_each(|(band, rows)| band.push(rows));
                }
                let a_bands: Vec<&[f32]> = a.data.chunks(band_rows * k).collect();
                bands.into_par_iter().zip(a_bands).enumerate().for_each(|(b, (columns, a_band))| {
                    let mut band = Out::Columns(columns);
                    let mut tile = [[0.0; NR]; MR];
                    for (p, panel_a) in a_band.chunks(MR * k).enumerate() {
                        let rows = MR.min(a.m - b * band_rows - p * MR);
                        for (q, panel_b) in panels_b() {
                            let size = (rows, NR.min(width - q * NR));
                            let (at, init) = ((p * MR, q * NR), init.from(b * band_rows, j0));
                            let next = if q == 0 { a.panel_after(b * band_rows / MR + p) } else { &[] };
                            band.put_product((panel_a, next), panel_b, &mut tile, (at, size), (init, epilogue));
                        }
                    }
                });
            }
            // Too few panels of A: threads take columns (panels of B).
            Out::Cols(c, ld) if parallel => {
                let ld = *ld;
                let columns = &mut c[j0 * ld..(j0 + width) * ld];
                columns.par_chunks_mut(NR * ld).enumerate().for_each(|(q, strip)| {
                    let mut strip = Out::Cols(strip, ld);
                    let mut tile = [[0.0; NR]; MR];
                    let panel_b = panel_b(q);
                    for (p, panel_a) in a.panels().enumerate() {
                        let size = (MR.min(a.m - p * MR), NR.min(width - q * NR));
                        let (at, init) = ((p * MR, 0), init.from(0, j0 + q * NR));
                        let next = a.panel_after(p);
                        strip.put_product((panel_a, next), panel_b, &mut tile, (at, size), (init, epilogue));
                    }
                });
            }
            out => {
                for (p, panel_a) in a.panels().enumerate() {
                    for (q, panel_b) in panels_b() {
                        let size = (MR.min(a.m - p * MR), NR.min(width - q * NR));
                        let at = (p * MR, j0 + q * NR);
                        let next = if q == 0 { a.panel_after(p) } else { &[] };
                        out.put_product((panel_a, next), panel_b, &mut tile, (at, size), (init, epilogue));
                    }
                }
            }
        }
    }
}

thread_local! {
    /// Each thread's buffer for packed panels of `B`: packing writes every
    /// float that is read, so it is never zeroed again (a fresh buffer
    /// zero-filled per product was 10% of the textbook MLP at batch 256).
    static PACK_BUFFER: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A right operand read in place, not packed: row `kk` of `B` is the run of
/// `src` from `offsets[kk]`. A stride-1 convolution over a zero-padded input
/// is one: each row of its im2col matrix is a run of the padded input if the
/// columns span whole padded rows. So `B`'s columns come in `rows` rows of
/// `pitch`, of which the first `width` are output positions; the others are
/// computed and dropped.
pub(crate) struct Windows<'a> {
    pub(crate) src: &'a [f32],
    pub(crate) offsets: &'a [usize],
    pub(crate) rows: usize,
    pub(crate) pitch: usize,
    pub(crate) width: usize,
}

impl Windows<'_> {
    /// Columns of `B`, dropped ones included.
    fn columns(&self) -> usize {
        self.rows * self.pitch
    }

    /// Where each panel of [`NR`] columns starts: along all the columns, or
    /// row by row when that takes fewer panels (rows `NR` wide then skip the
    /// dropped columns: 32 panels instead of 34 for 32x32 outputs).
    fn panel_starts(&self) -> impl Iterator<Item = usize> + Clone + use<> {
        let per_row = self.width.div_ceil(NR);
        let by_rows = self.rows * per_row < self.columns().div_ceil(NR);
        let (count, pitch) = if by_rows { (self.rows * per_row, self.pitch) } else { (self.columns().div_ceil(NR), 0) };
        (0..count).map(move |i| if by_rows { i / per_row * pitch + i % per_row * NR } else { i * NR })
    }

    /// Puts the first `rows` rows of `tile`, columns `q0..q0 + NR` of `B`,
    /// at their output positions in `band` (rows `positions` apart); with an
    /// addend (laid out as `band`), each value plus it through the epilogue.
    fn scatter(
        &self,
        tile: &Tile,
        rows: usize,
        q0: usize,
        (band, positions): (&mut [f32], usize),
        addend: Option<(&[f32], Epilogue)>,
    ) {
        let end = (q0 + NR).min(self.columns());
        let mut q = q0;
        while q < end {
            let (y, x) = (q / self.pitch, q % self.pitch);
            let run = (self.pitch - x).min(end - q);
            let kept = run.min(self.width.saturating_sub(x));
            let (at, j) = (y * self.width + x, q - q0);
            if kept == 0 {
                // Only dropped columns (past the last output of a row): nothing to put,
                // and `at` may point past the band's last position.
                q += run;
                continue;
            }
            for (i, (out, tile_row)) in band.chunks_mut(positions).zip(&tile[..rows]).enumerate() {
                let (out, values) = (&mut out[at..at + kept], &tile_row[j..j + kept]);
                match addend {
                    Some((r, epilogue)) => {
                        let r = &r[i * positions + at..][..kept];
                        out.iter_mut().zip(values.iter().zip(r)).for_each(|(d, (&v, &r))| *d = epilogue.apply(v + r));
                    }
                    None => out.copy_from_slice(values),
                }
            }
            q += run;
        }
    }
}

/// `C = bias + A · B (+ addend)` for `B` read in place, `c` row-major `[m,
/// rows * width]`, `bias[i]` the start of row `i` and `addend` (a residual
/// connection, laid out as `c`) added to each complete sum; each element
/// then goes through `epilogue`.
///
/// # Panics
/// If `src` ends before the last panel of any row of `B` (panels read up to
/// `NR - 1` floats past the last output position).
pub(crate) fn gemm_windows(
    a: &PackedA,
    b: &Windows<'_>,
    c: &mut [f32],
    bias: &[f32],
    (addend, epilogue): (Option<&[f32]>, Epilogue),
) {
    let k = b.offsets.len();
    let positions = b.rows * b.width;
    assert_eq!(k, a.k, "inner dimensions of the product");
    assert_eq!(c.len(), a.m * positions, "output shape of the product");
    assert!(bias.len() >= a.m, "bias for {} rows", a.m);
    assert!(addend.is_none_or(|r| r.len() == c.len()), "addend laid out as the output");
    if a.m == 0 || positions == 0 {
        return;
    }
    if k == 0 {
        for (i, (row, &start)) in c.chunks_exact_mut(positions).zip(bias).enumerate() {
            match addend {
                Some(r) => row.iter_mut().zip(&r[i * positions..]).for_each(|(d, &r)| *d = epilogue.apply(start + r)),
                None => row.fill(epilogue.apply(start)),
            }
        }
        return;
    }
    let starts = b.panel_starts();
    let last = starts.clone().last().unwrap_or(0);
    let reach = b.offsets.iter().max().map_or(0, |&offset| offset + last + NR);
    assert!(reach <= b.src.len(), "in-place operand: {reach} floats read, {} present", b.src.len());
    // One band of output rows per panel of A; threads take bands.
    let band = |(p, (panel_a, band)): (usize, (&[f32], &mut [f32]))| {
        let rows = MR.min(a.m - p * MR);
        let bias = &bias[p * MR..];
        let addend = addend.map(|r| &r[p * MR * positions..]);
        let mut tile = [[0.0; NR]; MR];
        let whole = rows == panel_a.len() / k;
        for q0 in starts.clone() {
            let panel_b = PanelB::Shifted { src: b.src, offsets: b.offsets, q0 };
            let (y, x) = (q0 / b.pitch, q0 % b.pitch);
            let at = y * b.width + x;
            // The panel's columns are one run of an output row; or they run
            // past its end into dropped columns, and what they leave in the
            // next output row is overwritten by later panels of this band
            // (panels go in order, and none is left after the last row).
            let one_run = x + NR <= b.width || (x + NR <= b.pitch && y + 1 < b.rows && at + NR <= positions);
            if whole && one_run {
                let dst = match addend {
                    Some(r) => Dst::RowsPlus(&mut band[at..], &r[at..], positions),
                    None => Dst::Rows(&mut band[at..], positions),
                };
                micro_kernel(panel_a, panel_b, dst, Start::RowBias(bias), epilogue, &[]);
            } else {
                // Partial bands start at the bias too (see `Out::put_product`).
                let mut store = [0.0; NR];
                let start = Start::RowBias(padded(&bias[..rows], &mut store));
                // With an addend, the epilogue follows it, in the scatter.
                let in_kernel = if addend.is_some() { Epilogue::None } else { epilogue };
                micro_kernel(panel_a, panel_b, Dst::Tile(&mut tile), start, in_kernel, &[]);
                b.scatter(&tile, rows, q0, (band, positions), addend.map(|r| (r, epilogue)));
            }
        }
    };
    if crate::pool::worth_splitting(a.m * b.columns() * k, PARALLEL_WORK) {
        a.data.par_chunks(MR * k).zip(c.par_chunks_mut(MR * positions)).enumerate().for_each(band);
    } else {
        a.panels().zip(c.chunks_mut(MR * positions)).enumerate().for_each(band);
    }
}

#[cfg(test)]
mod tests {
    use super::micro::portable_micro_kernel;
    use super::*;
    use ndarray::Array2;

    /// Rows of `B` as a micro-kernel's tests pass them.
    #[cfg(target_arch = "x86_64")]
    type Rows<'b> = std::iter::Map<std::slice::ChunksExact<'b, f32>, fn(&[f32]) -> &[f32; NR]>;

    /// The rows of a packed panel of `B`.
    #[cfg(target_arch = "x86_64")]
    fn rows_of(b: &[f32]) -> Rows<'_> {
        b.chunks_exact(NR).map(|row| row.try_into().expect("NR-wide row"))
    }

    /// The AVX-512 and the portable micro-kernels round the same way (one
    /// fused multiply-add per term), so their tiles agree bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_and_portable_micro_kernels_agree_bit_for_bit() {
        if !crate::linalg::avx512_test_runs(avx512::available() && std::is_x86_feature_detected!("fma")) {
            return;
        }
        agree_with_portable(|a, k, rows, out, epilogue| avx512::micro_kernel(a, k, rows, out, epilogue, &[]));
        // Prefetching (for some of the terms, or all of them) changes nothing.
        let k = 37;
        let b: Vec<f32> = (0..NR * k).map(|i| ((i * 29 % 31) as f32 - 15.0) / 7.0).collect();
        for height in [MR, HALF_MR, THIRD_MR] {
            let a: Vec<f32> = (0..height * k).map(|i| ((i * 11 % 13) as f32 - 6.0) / 3.0).collect();
            let mut plain = [[f32::NAN; NR]; MR];
            avx512::micro_kernel(&a, k, rows_of(&b), (Start::Zero, Dst::Tile(&mut plain)), Epilogue::None, &[]);
            for lines in [1, k / 2, k, 2 * k] {
                let mut prefetched = [[f32::NAN; NR]; MR];
                let prefetch = vec![0f32; lines * 16];
                let dst = Dst::Tile(&mut prefetched);
                avx512::micro_kernel(&a, k, rows_of(&b), (Start::Zero, dst), Epilogue::None, &prefetch);
                assert_eq!(prefetched[..height], plain[..height], "{height} rows, {lines} lines prefetched");
            }
        }
    }

    /// The AVX2+FMA micro-kernel agrees with the portable one bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_and_portable_micro_kernels_agree_bit_for_bit() {
        if !avx2::available() {
            eprintln!("skipped: this CPU lacks AVX2 or FMA");
            return;
        }
        agree_with_portable(|a, k, rows, out, epilogue| avx2::micro_kernel(a, k, rows, out, epilogue));
    }

    /// Output rows `ld` apart, with the residual `addend` added when `residual`.
    #[cfg(target_arch = "x86_64")]
    fn output<'a>(out: &'a mut [f32], addend: &'a [f32], ld: usize, residual: bool) -> Dst<'a> {
        if residual { Dst::RowsPlus(out, addend, ld) } else { Dst::Rows(out, ld) }
    }

    /// `fast` gives, for every panel height, start and epilogue, the tiles
    /// the portable kernel gives and the plain sum of fused terms.
    #[cfg(target_arch = "x86_64")]
    fn agree_with_portable(fast: impl Fn(&[f32], usize, Rows<'_>, (Start<'_>, Dst<'_>), Epilogue)) {
        let k = 37;
        let b: Vec<f32> = (0..NR * k).map(|i| ((i * 29 % 31) as f32 - 15.0) / 7.0).collect();
        for height in [MR, HALF_MR, THIRD_MR] {
            let a: Vec<f32> = (0..height * k).map(|i| ((i * 11 % 13) as f32 - 6.0) / 3.0).collect();
            let (mut tile, mut portable) = ([[f32::NAN; NR]; MR], [[f32::NAN; NR]; MR]);
            fast(&a, k, rows_of(&b), (Start::Zero, Dst::Tile(&mut tile)), Epilogue::None);
            portable_micro_kernel(&a, k, rows_of(&b), (Start::Zero, Dst::Tile(&mut portable)), Epilogue::None);
            assert_eq!(tile[..height], portable[..height], "{height} rows");
            // And both equal the plain sum of fused terms.
            for (i, row) in tile[..height].iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    let e = (0..k).fold(0f32, |acc, t| a[t * height + i].mul_add(b[t * NR + j], acc));
                    assert_eq!(v.to_bits(), e.to_bits(), "{height} rows, at {i},{j}");
                }
            }
            // Straight into output rows (`ld` apart, the cells between left
            // alone), the sums starting at a bias per row or per column, with
            // and without a residual added.
            let ld = NR + 3;
            let c: Vec<f32> = (0..height * ld).map(|i| (i % 7) as f32 - 3.0).collect();
            let addend: Vec<f32> = (0..height * ld).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
            let row_bias: Vec<f32> = (0..height).map(|i| i as f32 * 0.75 - 4.0).collect();
            let mut column_bias = [0f32; NR];
            column_bias.iter_mut().enumerate().for_each(|(j, b)| *b = (j % 5) as f32 * 1.5 - 3.0);
            column_bias[1] = f32::NAN;
            let starts = [
                (Start::RowBias(&row_bias), "row bias"),
                (Start::ColumnBias(&column_bias), "column bias"),
                (Start::Zero, "zero"),
            ];
            for (start, name) in starts {
                let bias = |i: usize, j: usize| match start {
                    Start::RowBias(b) => b[i],
                    Start::ColumnBias(b) => b[j],
                    Start::Zero => 0.0,
                };
                for (epilogue, residual) in
                    [Epilogue::None, Epilogue::Relu].into_iter().flat_map(|e| [(e, false), (e, true)])
                {
                    let (mut fast_out, mut portable) = (c.clone(), c.clone());
                    fast(&a, k, rows_of(&b), (start, output(&mut fast_out, &addend, ld, residual)), epilogue);
                    portable_micro_kernel(
                        &a,
                        k,
                        rows_of(&b),
                        (start, output(&mut portable, &addend, ld, residual)),
                        epilogue,
                    );
                    let mut negative = false;
                    for (at, (&f, &p)) in fast_out.iter().zip(&portable).enumerate() {
                        let (i, j) = (at / ld, at % ld);
                        let e = if j < NR {
                            let mut sum =
                                (0..k).fold(bias(i, j), |acc, t| a[t * height + i].mul_add(b[t * NR + j], acc));
                            if residual {
                                sum += addend[at];
                            }
                            negative |= sum < 0.0;
                            if epilogue == Epilogue::Relu { relu(sum) } else { sum }
                        } else {
                            c[at]
                        };
                        let what = format!("{height} rows, {name}, {epilogue:?}, residual {residual}, at {i},{j}");
                        assert_eq!((f.to_bits(), p.to_bits()), (e.to_bits(), e.to_bits()), "{what}");
                    }
                    assert!(negative, "the test needs negative sums");
                }
            }
        }
    }

    /// The AVX-512 packing of contiguous columns (16x16 register transposes)
    /// places every value where the scalar loop does.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn column_packing_transposes_exactly() {
        if !crate::linalg::avx512_test_runs(avx512::available()) {
            return;
        }
        for k in [0, 1, 15, 16, 17, 40] {
            let data: Vec<f32> = (0..NR * k).map(|i| i as f32).collect();
            let columns: [&[f32]; NR] = std::array::from_fn(|j| &data[j * k..(j + 1) * k]);
            let mut panel = vec![f32::NAN; NR * k];
            avx512::pack_columns(&columns, k, &mut panel);
            for (at, &v) in panel.iter().enumerate() {
                assert_eq!(v, columns[at % NR][at / NR], "k = {k}, row {} column {}", at / NR, at % NR);
            }
        }
    }

    /// An in-place operand gives the product of the im2col matrix it stands
    /// for: a 1-D convolution of `len` positions with `taps` taps over one
    /// channel, whose rows are `pitch` apart in the padded source.
    #[test]
    fn windows_match_a_naive_convolution() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        crate::pool::awake_in(&pool, || {
            // (output rows, output width, extra columns per row, taps, output
            // channels); rows of 28 or 20 in 32 columns: panels that run into
            // the next output row, overwritten later (whole panels of 12, 6 and 4).
            let shapes = [
                (1, 1, 0, 1, 1),
                (3, 10, 4, 5, 16),
                (2, 33, 2, 3, 7),
                (40, 32, 2, 13, 64),
                (5, 28, 4, 3, 12),
                (4, 20, 12, 2, 6),
                (3, 28, 4, 5, 18),
                (3, 28, 4, 5, 16),
            ];
            for (rows, width, extra, taps, m) in shapes {
                let pitch = width + extra;
                const { assert!(64 * 40 * 34 * 49 >= PARALLEL_WORK, "the last shape splits across threads") };
                let src: Vec<f32> = (0..rows * pitch + taps + NR).map(|i| ((i * 7 % 19) as f32 - 9.0) / 4.0).collect();
                let offsets: Vec<usize> = (0..taps).collect();
                let w = Array2::from_shape_fn((m, taps), |(i, t)| ((i * 5 + t * 3) % 11) as f32 - 5.0);
                let bias: Vec<f32> = (0..m).map(|i| (i % 3) as f32 - 1.0).collect();
                let mut c = vec![f32::NAN; m * rows * width];
                let b = Windows { src: &src, offsets: &offsets, rows, pitch, width };
                let mut fused = c.clone();
                let a = PackedA::pack(w.view());
                gemm_windows(&a, &b, &mut c, &bias, (None, Epilogue::None));
                gemm_windows(&a, &b, &mut fused, &bias, (None, Epilogue::Relu));
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                let relu_bits: Vec<u32> = c.iter().map(|&v| relu(v).to_bits()).collect();
                assert_eq!(bits(&fused), relu_bits, "ReLU epilogue");
                // A fused residual add, with and without the ReLU after it:
                // the bits of adding to the unfused output.
                let addend: Vec<f32> = (0..c.len()).map(|i| ((i * 3 % 7) as f32 - 3.0) / 2.0).collect();
                for epilogue in [Epilogue::None, Epilogue::Relu] {
                    let mut plus = vec![f32::NAN; c.len()];
                    gemm_windows(&a, &b, &mut plus, &bias, (Some(&addend), epilogue));
                    let want: Vec<f32> = c.iter().zip(&addend).map(|(&v, &r)| epilogue.apply(v + r)).collect();
                    assert_eq!(bits(&plus), bits(&want), "{rows}x{width}+{extra}, addend, {epilogue:?}");
                }
                for (at, &v) in c.iter().enumerate() {
                    let (i, y, x) = (at / (rows * width), at / width % rows, at % width);
                    let e: f64 = f64::from(bias[i])
                        + (0..taps).map(|t| f64::from(w[[i, t]]) * f64::from(src[y * pitch + x + t])).sum::<f64>();
                    assert!(
                        (f64::from(v) - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{rows}x{width}+{extra} at {i},{y},{x}"
                    );
                }
            }
        });
    }

    /// Products of every small shape around the tile sizes, against a plain
    /// triple loop in f64, with strided and transposed operands.
    #[test]
    fn matches_a_naive_product() {
        // Three threads, so the largest shape (above PARALLEL_WORK) splits.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        crate::pool::awake_in(&pool, check_shapes);
    }

    fn check_shapes() {
        let value = |i: usize, j: usize, s: usize| (((i * 31 + j * 17 + s) % 23) as f32 - 11.0) / 8.0;
        // Row counts around the panel heights (a last panel of 4, 6 or 12
        // rows), column counts around the panel width.
        let shapes = [
            (1, 1, 1),
            (5, 3, 15),
            (16, 7, 40),
            (64, 9, 33),
            (6, 16, 32),
            (7, 17, 33),
            (12, 9, 31),
            (13, 40, 1),
            (18, 5, 64),
            (19, 8, 65),
            (2, 300, 70),
            (0, 4, 4),
            (3, 0, 5),
            (70, 300, 200),
            (12, 600, 600),
        ];
        // Above PARALLEL_WORK: threads take bands of rows of column-major C
        // (6 panels of A), or columns (1 panel).
        const { assert!(70 * 300 * 200 >= PARALLEL_WORK && 12 * 600 * 600 >= PARALLEL_WORK) };
        for (m, k, n) in shapes {
            let a = Array2::from_shape_fn((m, k), |(i, j)| value(i, j, 1));
            let b_t = Array2::from_shape_fn((n, k), |(i, j)| value(i, j, 2));
            let b = b_t.t();
            let row_bias: Vec<f32> = (0..m).map(|i| value(i, 0, 3)).collect();
            let column_bias: Vec<f32> = (0..n).map(|j| value(0, j, 4)).collect();
            let dot = |i: usize, j: usize| (0..k).map(|t| f64::from(a[[i, t]]) * f64::from(b[[t, j]])).sum::<f64>();
            let inits = [
                (Init::Zero, "zero"),
                (Init::RowBias(&row_bias), "row bias"),
                (Init::ColumnBias(&column_bias), "column bias"),
            ];
            for (init, name) in inits {
                let what = format!("{m}x{k}x{n}, {name}");
                // Row-major output (NaN where nothing is written), against
                // f64; this thread's packing buffer holds NaNs before, so a
                // float that packing leaves unwritten shows too.
                ThreadBuffer::take(&PACK_BUFFER).first(1 << 18).fill(f32::NAN);
                let mut c = Array2::from_elem((m, n), f32::NAN);
                gemm(&PackedA::pack(a.view()), &b, &mut c.view_mut(), init, Epilogue::None);
                for ((i, j), &v) in c.indexed_iter() {
                    let e = dot(i, j) + f64::from(init.at(i, j));
                    assert!((f64::from(v) - e).abs() <= 1e-4 * (1.0 + e.abs()), "{what} at {i},{j}");
                }
                // A row-major B, read in place but for a last partial panel,
                // gives the same bits as B packed.
                let b_rows = b.as_standard_layout();
                let mut in_place = Array2::from_elem((m, n), f32::NAN);
                gemm(&PackedA::pack(a.view()), &b_rows.view(), &mut in_place.view_mut(), init, Epilogue::None);
                assert_eq!(in_place.mapv(f32::to_bits), c.mapv(f32::to_bits), "{what}, B in place");
                // So does B packed beforehand by its producer (garbage in
                // the columns past n: they are computed and dropped).
                let mut panels = pack_panels(&b);
                for (q, panel) in panels.chunks_exact_mut((NR * k).max(1)).enumerate() {
                    panel.chunks_exact_mut(NR).for_each(|row| row[NR.min(n - q * NR)..].fill(f32::NAN));
                }
                let prepacked = Prepacked { k, n, panels: &panels };
                let mut from_panels = Array2::from_elem((m, n), f32::NAN);
                gemm(&PackedA::pack(a.view()), &prepacked, &mut from_panels.view_mut(), init, Epilogue::None);
                assert_eq!(from_panels.mapv(f32::to_bits), c.mapv(f32::to_bits), "{what}, B prepacked");
                // Column-major and strided outputs give the same bits, and the
                // ReLU epilogue the ReLU of them, in every layout.
                let relu_c = c.mapv(relu);
                for epilogue in [Epilogue::None, Epilogue::Relu] {
                    let want = if epilogue == Epilogue::Relu { &relu_c } else { &c };
                    let mut rows = Array2::from_elem((m, n), f32::NAN);
                    gemm(&PackedA::pack(a.view()), &b, &mut rows.view_mut(), init, epilogue);
                    let mut col_major = Array2::from_elem((n, m), f32::NAN);
                    gemm(&PackedA::pack(a.view()), &b, &mut col_major.view_mut().reversed_axes(), init, epilogue);
                    let mut wide = Array2::from_elem((m, 2 * n), f32::NAN);
                    gemm(&PackedA::pack(a.view()), &b, &mut wide.slice_mut(ndarray::s![.., ..;2]), init, epilogue);
                    for (layout, got) in [
                        ("row-major", rows.view()),
                        ("column-major", col_major.t()),
                        ("strided", wide.slice(ndarray::s![.., ..;2])),
                    ] {
                        let same = got.iter().zip(want).all(|(g, e)| g.to_bits() == e.to_bits());
                        assert!(same, "{what}, {layout}, {epilogue:?}");
                    }
                }
            }
        }
    }
}
