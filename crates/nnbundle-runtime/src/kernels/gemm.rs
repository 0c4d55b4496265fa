//! Single-precision matrix products over a packed left operand.
//!
//! `C (+)= A · B` where `A` (weights, constant for a model's life) is packed
//! once into panels of [`MR`] rows, `B` is packed per call into panels of
//! [`NR`] columns (or, for unit-stride convolutions, read in place: see
//! [`Windows`]), and a register-blocked `MR x NR` micro-kernel computes each
//! tile. On AVX-512 the micro-kernel is written with intrinsics (24 vector
//! accumulators, see [`avx512`]); elsewhere it is plain Rust compiled per
//! instruction set (AVX2+FMA, NEON, baseline) and chosen at run time, so one
//! binary runs everywhere at the speed of the machine it runs on. Both round
//! the same way (one fused multiply-add per term, in `k` order), so they agree
//! bit for bit where FMA exists.

use multiversion::multiversion;
use multiversion::target::target_cfg_f;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::activation::relu;
use super::scratch::ThreadBuffer;

#[cfg(target_arch = "x86_64")]
mod avx512;

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
/// 50 us of work on one core: waking a second thread costs more than it
/// saves on smaller ones, measured on the textbook MLP).
const PARALLEL_WORK: usize = 1 << 22;
/// Matrix-vector products over at least this many weights split across
/// threads (memory-bound: 4 MiB of f32 is about 200 us of reading).
const PARALLEL_MATVEC: usize = 1 << 20;
/// Packed `B` block size in floats: kept within the per-core L2 cache while
/// every panel of `A` passes over it.
const B_BLOCK_FLOATS: usize = 1 << 18;

/// Left operands of at most this many rows read a row-major right operand
/// in place (see [`gemm`]).
const IN_PLACE_MAX_ROWS: usize = 4 * MR;

/// One micro-tile of the product, row-major.
type Tile = [[f32; NR]; MR];

/// A left operand `A [m, k]` packed in panels of [`MR`] rows (the last one
/// [`THIRD_MR`] or [`HALF_MR`] rows when no more are left): a panel of `h`
/// rows starting at row `r` holds `A[r + i][kk]` at `kk * h + i`; rows past
/// `m` are zero.
#[derive(Debug, Clone)]
pub(crate) struct PackedA {
    m: usize,
    k: usize,
    data: Vec<f32>,
}

impl PackedA {
    /// Packs `a`, any layout.
    pub(crate) fn pack(a: ArrayView2<'_, f32>) -> PackedA {
        let (m, k) = a.dim();
        let last = match m % MR {
            0 => 0,
            left if left <= THIRD_MR => THIRD_MR,
            left if left <= HALF_MR => HALF_MR,
            _ => MR,
        };
        let mut data = vec![0.0; (m / MR * MR + last) * k];
        for (p, panel) in data.chunks_mut((MR * k).max(1)).enumerate() {
            let height = panel.len() / k.max(1);
            for i in 0..height.min(m - p * MR) {
                for (kk, &v) in a.row(p * MR + i).iter().enumerate() {
                    panel[kk * height + i] = v;
                }
            }
        }
        PackedA { m, k, data }
    }

    /// The panels in row order: full ones of [`MR`] rows, then a last one
    /// that may be [`THIRD_MR`] or [`HALF_MR`] rows (its height is its
    /// length over `k`).
    fn panels(&self) -> std::slice::Chunks<'_, f32> {
        self.data.chunks(MR * self.k)
    }

    /// The panel after panel `p` (empty after the last): what to prefetch
    /// while a tile of panel `p` computes.
    fn panel_after(&self, p: usize) -> &[f32] {
        let rest = self.data.get((p + 1) * MR * self.k..).unwrap_or(&[]);
        &rest[..rest.len().min(MR * self.k)]
    }
}

/// A right operand `B [k, n]` that packs itself, one panel of [`NR`]
/// columns at a time: a matrix, or the implicit im2col matrix of a convolution.
pub(crate) trait PanelSource: Sync {
    /// `(k, n)`.
    fn dim(&self) -> (usize, usize);
    /// Writes columns `start..start + cols` (`cols <= NR`) into `panel`:
    /// `B[kk][start + j]` at `kk * NR + j`, zero for `j >= cols`. Every float
    /// of `panel` is written (it holds stale values before).
    fn pack_panel(&self, start: usize, cols: usize, panel: &mut [f32]);
    /// `B` itself when it is row-major and contiguous (`k` rows of `n`), for
    /// the product to read whole panels in place instead of packing them.
    fn rows_in_place(&self) -> Option<&[f32]> {
        None
    }
    /// `B` already packed whole, panel after panel as [`Self::pack_panel`]
    /// writes them (panel `q` at `q * NR * k`), for the product to read as is.
    fn packed(&self) -> Option<&[f32]> {
        None
    }
}

/// A right operand its producer wrote packed: `k` rows, `n` columns, in
/// `n.div_ceil(NR)` panels laid out as [`PanelSource::pack_panel`] writes
/// them (the columns of the last panel past `n` are computed and dropped).
pub(crate) struct Prepacked<'a> {
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) panels: &'a [f32],
}

/// All of `b`'s panels, as [`Prepacked`] reads them: for a right operand
/// used by many products (a layer's transposed weights).
pub(crate) fn pack_panels(b: &impl PanelSource) -> Vec<f32> {
    let (k, n) = b.dim();
    let mut panels = vec![0.0; n.div_ceil(NR) * NR * k];
    for (q, panel) in panels.chunks_exact_mut((NR * k).max(1)).enumerate() {
        b.pack_panel(q * NR, NR.min(n - q * NR), panel);
    }
    panels
}

impl PanelSource for Prepacked<'_> {
    fn dim(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    fn pack_panel(&self, start: usize, cols: usize, panel: &mut [f32]) {
        panel.copy_from_slice(&self.panels[start * self.k..][..NR * self.k]);
        for row in panel.chunks_exact_mut(NR) {
            row[cols..].fill(0.0);
        }
    }

    fn packed(&self) -> Option<&[f32]> {
        Some(self.panels)
    }
}

impl PanelSource for ArrayView2<'_, f32> {
    fn dim(&self) -> (usize, usize) {
        ArrayView2::dim(self)
    }

    fn rows_in_place(&self) -> Option<&[f32]> {
        self.to_slice()
    }

    fn pack_panel(&self, start: usize, cols: usize, panel: &mut [f32]) {
        let k = self.nrows();
        match self.as_slice() {
            // Row-major: each NR-wide piece is one fixed-size copy.
            Some(rows) if cols == NR => {
                let n = self.ncols();
                for (dst, src) in panel.chunks_exact_mut(NR).zip(rows[start..].chunks(n)) {
                    let dst: &mut [f32; NR] = dst.try_into().expect("NR-wide chunk");
                    dst.copy_from_slice(&src[..NR]);
                }
            }
            // Column-major (the transpose of a row-major matrix, such as the
            // activations of a linear layer): each column is contiguous.
            _ if self.t().as_slice().is_some() => {
                let columns = &self.t().to_slice().expect("checked contiguous")[start * k..];
                if cols == NR {
                    let columns: [&[f32]; NR] = std::array::from_fn(|j| &columns[j * k..(j + 1) * k]);
                    #[cfg(target_arch = "x86_64")]
                    if avx512::available() {
                        return avx512::pack_columns(&columns, k, panel);
                    }
                    // NR sequential reads per row of the panel, one sequential write.
                    for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                        for (d, column) in dst.iter_mut().zip(&columns) {
                            *d = column[kk];
                        }
                    }
                } else {
                    panel.fill(0.0);
                    for (j, column) in columns.chunks_exact(k).take(cols).enumerate() {
                        for (kk, &v) in column.iter().enumerate() {
                            panel[kk * NR + j] = v;
                        }
                    }
                }
            }
            _ => {
                for (kk, dst) in panel.chunks_exact_mut(NR).enumerate() {
                    dst[cols..].fill(0.0);
                    dst[..cols].iter_mut().zip(self.row(kk).iter().skip(start)).for_each(|(d, &v)| *d = v);
                }
            }
        }
    }
}

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

/// `values` then zeros, in `store`: the bias of a tile that the output
/// holds only part of.
fn padded<'s>(values: &[f32], store: &'s mut [f32; NR]) -> &'s [f32; NR] {
    store.fill(0.0);
    store[..values.len()].copy_from_slice(values);
    store
}

/// Where a micro-kernel's sums start.
#[derive(Clone, Copy)]
enum Start<'a> {
    /// At zero.
    Zero,
    /// At `bias[i]` in tile row `i`.
    RowBias(&'a [f32]),
    /// At `bias[j]` in tile column `j`.
    ColumnBias(&'a [f32; NR]),
}

/// What a product does to each output element once its sum is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// Nothing: the sum is the output.
    None,
    /// A fused ReLU ([`relu`]: the select of the `ReLU` op, so bit-identical).
    Relu,
}

impl Epilogue {
    /// [`Epilogue::Relu`] for a kernel with a fused ReLU, else [`Epilogue::None`].
    pub(crate) fn relu_if(fused: bool) -> Self {
        if fused { Epilogue::Relu } else { Epilogue::None }
    }

    /// The epilogue of one value (the micro-kernels test the epilogue once
    /// per tile instead).
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            Epilogue::None => x,
            Epilogue::Relu => relu(x),
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
    let parallel = a.m * n * k >= PARALLEL_WORK && rayon::current_num_threads() > 1;
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
    if a.m * b.columns() * k >= PARALLEL_WORK && rayon::current_num_threads() > 1 {
        a.data.par_chunks(MR * k).zip(c.par_chunks_mut(MR * positions)).enumerate().for_each(band);
    } else {
        a.panels().zip(c.chunks_mut(MR * positions)).enumerate().for_each(band);
    }
}

/// Where a micro-kernel reads row `kk` (of [`NR`] floats) of its panel of `B`.
#[derive(Clone, Copy)]
enum PanelB<'a> {
    /// A packed panel: at `kk * NR`.
    Packed(&'a [f32]),
    /// In place (see [`Windows`]): at `offsets[kk] + q0` of the source.
    Shifted { src: &'a [f32], offsets: &'a [usize], q0: usize },
    /// In place, a row-major `B` (`src` holds its rows of `ld`): at `kk * ld + q0`.
    Strided { src: &'a [f32], ld: usize, q0: usize },
}

impl PanelB<'_> {
    /// Rows of `B`: the product's inner dimension.
    fn k(&self) -> usize {
        match self {
            PanelB::Packed(b) => b.len() / NR,
            PanelB::Shifted { offsets, .. } => offsets.len(),
            PanelB::Strided { src, ld, .. } => src.len() / ld,
        }
    }
}

/// Where a micro-kernel puts its tile.
enum Dst<'a> {
    /// Into the first rows of `tile`, overwriting them.
    Tile(&'a mut Tile),
    /// Into a row-major output, overwriting it: the whole tile (as many rows
    /// as the panel of `A`, [`NR`] columns) from the slice's start, rows `ld`
    /// apart, with no tile in between.
    Rows(&'a mut [f32], usize),
    /// As [`Dst::Rows`], each sum plus the value at the same place in the
    /// second slice (laid out as the first) before the epilogue: a residual
    /// connection's `Add`, fused.
    RowsPlus(&'a mut [f32], &'a [f32], usize),
}

/// One tile: the product of a packed panel of `A` (of [`MR`], [`HALF_MR`] or
/// [`THIRD_MR`] rows, as its length over `k` says) and one of `B`, its sums
/// starting at `start`, put in `dst` through `epilogue` (the sums are
/// complete: products never split `k`).
///
/// `prefetch` is what the next tiles will read (the next panel of `A`, or
/// nothing): the AVX-512 kernel asks for one of its cache lines per term,
/// so that a weight matrix streamed from memory once per product arrives
/// while this tile computes (the wide MLP at batch 64 ran 10-15% faster).
fn micro_kernel(a: &[f32], b: PanelB<'_>, dst: Dst<'_>, start: Start<'_>, epilogue: Epilogue, prefetch: &[f32]) {
    let k = b.k();
    // One kernel per way of finding B's rows, so each is compiled straight.
    match b {
        PanelB::Packed(b) => {
            let rows = b.chunks_exact(NR).map(|row| row.try_into().expect("NR-wide row"));
            tile_of(a, k, rows, (start, dst), epilogue, prefetch);
        }
        PanelB::Shifted { src, offsets, q0 } => {
            let rows = offsets.iter().map(move |&at| src[at + q0..][..NR].try_into().expect("NR-wide row"));
            tile_of(a, k, rows, (start, dst), epilogue, prefetch);
        }
        PanelB::Strided { src, ld, q0 } => {
            let rows = (0..k).map(move |kk| src[kk * ld + q0..][..NR].try_into().expect("NR-wide row"));
            tile_of(a, k, rows, (start, dst), epilogue, prefetch);
        }
    }
}

/// [`micro_kernel`] over the `k` rows of `B` that `b_rows` yields, on the
/// fastest kernel this CPU runs.
#[inline(always)]
fn tile_of<'b>(
    a: &[f32],
    k: usize,
    b_rows: impl Iterator<Item = &'b [f32; NR]> + Clone,
    (start, dst): (Start<'_>, Dst<'_>),
    epilogue: Epilogue,
    prefetch: &[f32],
) {
    #[cfg(target_arch = "x86_64")]
    if avx512::available() {
        return avx512::micro_kernel(a, k, b_rows, (start, dst), epilogue, prefetch);
    }
    portable_micro_kernel(a, k, b_rows, (start, dst), epilogue);
}

/// [`micro_kernel`] in plain Rust, as `6 x 16` sub-tiles (`4 x 16` for a
/// [`THIRD_MR`]-row panel): twelve 256-bit accumulators fit AVX2's sixteen
/// registers (larger tiles spill, or fall out of the auto-vectorizer).
#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn portable_micro_kernel<'b>(
    a: &[f32],
    k: usize,
    b_rows: impl Iterator<Item = &'b [f32; NR]> + Clone,
    (start, mut dst): (Start<'_>, Dst<'_>),
    epilogue: Epilogue,
) {
    // Fused multiply-add where the instruction set has it (a software fma
    // would be far slower than a multiply and an add).
    let fused = target_cfg_f!(any(target_feature = "fma", target_arch = "aarch64"));
    let height = a.len() / k.max(1);
    for c0 in (0..NR).step_by(SUB_COLS) {
        if height == THIRD_MR {
            sub_tile::<THIRD_MR>(a, height, b_rows.clone(), (0, c0), (start, &mut dst), (epilogue, fused));
        } else {
            for r0 in (0..height).step_by(HALF_MR) {
                sub_tile::<HALF_MR>(a, height, b_rows.clone(), (r0, c0), (start, &mut dst), (epilogue, fused));
            }
        }
    }
}

/// Columns of a sub-tile of [`portable_micro_kernel`].
const SUB_COLS: usize = 16;

/// The `ROWS x` [`SUB_COLS`] sub-tile at `(r0, c0)` of a
/// [`portable_micro_kernel`] tile (inlined there, so compiled for its
/// instruction set).
#[inline(always)]
fn sub_tile<'b, const ROWS: usize>(
    a: &[f32],
    height: usize,
    b_rows: impl Iterator<Item = &'b [f32; NR]>,
    (r0, c0): (usize, usize),
    (start, dst): (Start<'_>, &mut Dst<'_>),
    (epilogue, fused): (Epilogue, bool),
) {
    // The cell of row i, column j of the sub-tile in the destination.
    let at = |i: usize, ld: usize| (r0 + i) * ld + c0;
    let mut acc = [[0f32; SUB_COLS]; ROWS];
    match start {
        Start::RowBias(bias) => acc.iter_mut().zip(&bias[r0..r0 + ROWS]).for_each(|(acc, &b)| acc.fill(b)),
        Start::ColumnBias(bias) => acc.iter_mut().for_each(|acc| acc.copy_from_slice(&bias[c0..c0 + SUB_COLS])),
        Start::Zero => {}
    }
    for (av, bv) in a.chunks_exact(height).zip(b_rows) {
        let av: &[f32; ROWS] = av[r0..r0 + ROWS].try_into().expect("ROWS-tall chunk");
        let bv: &[f32; SUB_COLS] = bv[c0..c0 + SUB_COLS].try_into().expect("SUB_COLS-wide chunk");
        for (row, &ai) in acc.iter_mut().zip(av) {
            for (c, &bj) in row.iter_mut().zip(bv) {
                *c = if fused { ai.mul_add(bj, *c) } else { ai * bj + *c };
            }
        }
    }
    if let Dst::RowsPlus(_, addend, ld) = dst {
        for (i, acc) in acc.iter_mut().enumerate() {
            acc.iter_mut().zip(&addend[at(i, *ld)..][..SUB_COLS]).for_each(|(x, &r)| *x += r);
        }
    }
    if epilogue == Epilogue::Relu {
        acc.iter_mut().flatten().for_each(|x| *x = relu(*x));
    }
    for (i, acc) in acc.iter().enumerate() {
        match dst {
            Dst::Tile(tile) => tile[r0 + i][c0..c0 + SUB_COLS].copy_from_slice(acc),
            Dst::Rows(c, ld) | Dst::RowsPlus(c, _, ld) => c[at(i, *ld)..][..SUB_COLS].copy_from_slice(acc),
        }
    }
}

/// `y[i] += W[i] · x` for a row-major `w [y.len(), x.len()]`: one pass over
/// `W` in stored order, 16 lanes per row (batch-1 inference is bound by
/// reading the weights, which the baseline SSE2 build reads at half speed).
pub(crate) fn matvec(w: &[f32], x: &[f32], y: &mut [f32]) {
    /// Rows of `W` per task when threads split a large product.
    const ROWS_PER_TASK: usize = 64;
    if w.len() >= PARALLEL_MATVEC && rayon::current_num_threads() > 1 && !x.is_empty() {
        y.par_chunks_mut(ROWS_PER_TASK)
            .zip(w.par_chunks(ROWS_PER_TASK * x.len()))
            .for_each(|(y, w)| matvec_rows(w, x, y));
    } else {
        matvec_rows(w, x, y);
    }
}

/// Rows of `W` a matrix-vector step reads together: four independent streams
/// keep the memory system busy (21 GB/s here on a 64 MiB matrix, against 9.5
/// one row at a time).
const MATVEC_ROWS: usize = 4;

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn matvec_rows(w: &[f32], x: &[f32], y: &mut [f32]) {
    const LANES: usize = 16;
    let fused = target_cfg_f!(any(target_feature = "fma", target_arch = "aarch64"));
    let k = x.len();
    if k == 0 {
        return;
    }
    let whole = k / LANES * LANES;
    let (x_lanes, x_tail) = x.split_at(whole);
    let tail = |row: &[f32]| -> f32 { row[whole..].iter().zip(x_tail).map(|(a, b)| a * b).sum() };
    let mut groups = y.chunks_exact_mut(MATVEC_ROWS);
    let mut rows = w.chunks_exact(MATVEC_ROWS * k);
    for (out, block) in (&mut groups).zip(&mut rows) {
        let mut acc = [[0f32; LANES]; MATVEC_ROWS];
        for c in (0..whole).step_by(LANES) {
            let xb: &[f32; LANES] = x_lanes[c..c + LANES].try_into().expect("LANES-wide chunk");
            for (r, acc) in acc.iter_mut().enumerate() {
                let wb: &[f32; LANES] = block[r * k + c..r * k + c + LANES].try_into().expect("LANES-wide chunk");
                for i in 0..LANES {
                    acc[i] = if fused { wb[i].mul_add(xb[i], acc[i]) } else { wb[i] * xb[i] + acc[i] };
                }
            }
        }
        for (r, (out, acc)) in out.iter_mut().zip(&acc).enumerate() {
            *out += acc.iter().sum::<f32>() + tail(&block[r * k..][..k]);
        }
    }
    for (out, row) in groups.into_remainder().iter_mut().zip(rows.remainder().chunks_exact(k)) {
        let mut acc = [0f32; LANES];
        for (a, b) in row[..whole].chunks_exact(LANES).zip(x_lanes.chunks_exact(LANES)) {
            for ((s, &a), &b) in acc.iter_mut().zip(a).zip(b) {
                *s += a * b;
            }
        }
        *out += acc.iter().sum::<f32>() + tail(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn matvec_matches_a_naive_product() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(check_matvec);
    }

    fn check_matvec() {
        const { assert!(300 * 3500 >= PARALLEL_MATVEC, "the last shape splits across threads") };
        for (n, k) in [(1, 1), (3, 15), (5, 16), (7, 33), (2, 300), (4, 0), (300, 3500)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 13 % 17) as f32 - 8.0) / 4.0).collect();
            let x: Vec<f32> = (0..k).map(|i| ((i * 7 % 11) as f32 - 5.0) / 2.0).collect();
            // The product adds to what y holds.
            let mut y: Vec<f32> = (0..n).map(|i| i as f32).collect();
            matvec(&w, &x, &mut y);
            for (i, &v) in y.iter().enumerate() {
                let e: f64 = i as f64 + (0..k).map(|t| f64::from(w[i * k + t]) * f64::from(x[t])).sum::<f64>();
                assert!((f64::from(v) - e).abs() <= 1e-4 * (1.0 + e.abs()), "{n}x{k} row {i}");
            }
        }
    }

    /// The AVX-512 and the portable micro-kernels round the same way (one
    /// fused multiply-add per term), so their tiles agree bit for bit.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn micro_kernels_agree_bit_for_bit() {
        if !crate::kernels::avx512_test_runs(avx512::available() && std::is_x86_feature_detected!("fma")) {
            return;
        }
        let k = 37;
        let b: Vec<f32> = (0..NR * k).map(|i| ((i * 29 % 31) as f32 - 15.0) / 7.0).collect();
        for height in [MR, HALF_MR, THIRD_MR] {
            let a: Vec<f32> = (0..height * k).map(|i| ((i * 11 % 13) as f32 - 6.0) / 3.0).collect();
            let (mut fast, mut portable) = ([[f32::NAN; NR]; MR], [[f32::NAN; NR]; MR]);
            let rows = || b.chunks_exact(NR).map(|row| <&[f32; NR]>::try_from(row).unwrap());
            avx512::micro_kernel(&a, k, rows(), (Start::Zero, Dst::Tile(&mut fast)), Epilogue::None, &[]);
            portable_micro_kernel(&a, k, rows(), (Start::Zero, Dst::Tile(&mut portable)), Epilogue::None);
            assert_eq!(fast[..height], portable[..height], "{height} rows");
            // Prefetching (for some of the terms, or all of them) changes nothing.
            for lines in [1, k / 2, k, 2 * k] {
                let mut prefetched = [[f32::NAN; NR]; MR];
                let prefetch = vec![0f32; lines * 16];
                let dst = Dst::Tile(&mut prefetched);
                avx512::micro_kernel(&a, k, rows(), (Start::Zero, dst), Epilogue::None, &prefetch);
                assert_eq!(prefetched[..height], fast[..height], "{height} rows, {lines} lines prefetched");
            }
            // And both equal the plain sum of fused terms.
            for (i, row) in fast[..height].iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    let e = (0..k).fold(0f32, |acc, t| a[t * height + i].mul_add(b[t * NR + j], acc));
                    assert_eq!(v.to_bits(), e.to_bits(), "{height} rows, at {i},{j}");
                }
            }
            // Straight into output rows (`ld` apart, the cells between left
            // alone), the sums starting at a bias per row or per column.
            let ld = NR + 3;
            let c: Vec<f32> = (0..height * ld).map(|i| (i % 7) as f32 - 3.0).collect();
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
                for epilogue in [Epilogue::None, Epilogue::Relu] {
                    let (mut fast, mut portable) = (c.clone(), c.clone());
                    avx512::micro_kernel(&a, k, rows(), (start, Dst::Rows(&mut fast, ld)), epilogue, &[]);
                    portable_micro_kernel(&a, k, rows(), (start, Dst::Rows(&mut portable, ld)), epilogue);
                    let mut negative = false;
                    for (at, (&f, &p)) in fast.iter().zip(&portable).enumerate() {
                        let (i, j) = (at / ld, at % ld);
                        let e = if j < NR {
                            let sum = (0..k).fold(bias(i, j), |acc, t| a[t * height + i].mul_add(b[t * NR + j], acc));
                            negative |= sum < 0.0;
                            if epilogue == Epilogue::Relu { relu(sum) } else { sum }
                        } else {
                            c[at]
                        };
                        let what = format!("{height} rows, {name}, {epilogue:?}, at {i},{j}");
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
        if !crate::kernels::avx512_test_runs(avx512::available()) {
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
        pool.install(|| {
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
        pool.install(check_shapes);
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
