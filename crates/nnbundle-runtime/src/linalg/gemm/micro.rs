//! The micro-kernels: one `MR x NR` tile of a product, in plain Rust
//! compiled per instruction set, or with AVX-512 or AVX2+FMA intrinsics.

use multiversion::multiversion;
use multiversion::target::target_cfg_f;

use super::{Epilogue, HALF_MR, MR, NR, THIRD_MR, Tile, relu};
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};

/// `values` then zeros, in `store`: the bias of a tile that the output
/// holds only part of.
pub(super) fn padded<'s>(values: &[f32], store: &'s mut [f32; NR]) -> &'s [f32; NR] {
    store.fill(0.0);
    store[..values.len()].copy_from_slice(values);
    store
}

/// Where a micro-kernel's sums start.
#[derive(Clone, Copy)]
pub(super) enum Start<'a> {
    /// At zero.
    Zero,
    /// At `bias[i]` in tile row `i`.
    RowBias(&'a [f32]),
    /// At `bias[j]` in tile column `j`.
    ColumnBias(&'a [f32; NR]),
}

/// Where a micro-kernel reads row `kk` (of [`NR`] floats) of its panel of `B`.
#[derive(Clone, Copy)]
pub(super) enum PanelB<'a> {
    /// A packed panel: at `kk * NR`.
    Packed(&'a [f32]),
    /// In place (see [`Windows`]): at `offsets[kk] + q0` of the source.
    Shifted { src: &'a [f32], offsets: &'a [usize], q0: usize },
    /// In place, a row-major `B` (`src` holds its rows of `ld`): at `kk * ld + q0`.
    Strided { src: &'a [f32], ld: usize, q0: usize },
}

impl PanelB<'_> {
    /// Rows of `B`: the product's inner dimension.
    pub(super) fn k(&self) -> usize {
        match self {
            PanelB::Packed(b) => b.len() / NR,
            PanelB::Shifted { offsets, .. } => offsets.len(),
            PanelB::Strided { src, ld, .. } => src.len() / ld,
        }
    }
}

/// Where a micro-kernel puts its tile.
pub(super) enum Dst<'a> {
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
pub(super) fn micro_kernel(
    a: &[f32],
    b: PanelB<'_>,
    dst: Dst<'_>,
    start: Start<'_>,
    epilogue: Epilogue,
    prefetch: &[f32],
) {
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

/// The height of a tile's panel of `A` (of [`MR`], [`HALF_MR`] or [`THIRD_MR`]
/// rows over `k` terms), after checking what the intrinsics kernels rely on:
/// the panel, a row bias and a row-major output are large enough.
///
/// # Panics
/// If `a` is not a panel of `k` terms, a row bias is shorter than the panel
/// or a [`Dst::Rows`] output too short for the tile.
pub(super) fn checked_height(a: &[f32], k: usize, start: Start<'_>, dst: &Dst<'_>) -> usize {
    let height = a.len() / k.max(1);
    assert!([MR, HALF_MR, THIRD_MR].contains(&height) && a.len() == height * k, "panel of A for {k} terms");
    match dst {
        Dst::Rows(c, ld) => assert!(c.len() >= (height - 1) * ld + NR, "output rows for a {height}-row tile"),
        Dst::RowsPlus(c, addend, ld) => assert!(
            c.len().min(addend.len()) >= (height - 1) * ld + NR,
            "output and addend rows for a {height}-row tile"
        ),
        Dst::Tile(_) => {}
    }
    if let Start::RowBias(bias) = start {
        assert!(bias.len() >= height, "bias for a {height}-row tile");
    }
    height
}

/// [`micro_kernel`] over the `k` rows of `B` that `b_rows` yields, on the
/// fastest kernel this CPU runs.
#[inline(always)]
pub(super) fn tile_of<'b>(
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
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        return avx2::micro_kernel(a, k, b_rows, (start, dst), epilogue);
    }
    portable_micro_kernel(a, k, b_rows, (start, dst), epilogue);
}

/// [`micro_kernel`] in plain Rust, as `6 x 16` sub-tiles (`4 x 16` for a
/// [`THIRD_MR`]-row panel): twelve 256-bit accumulators fit AVX2's sixteen
/// registers (larger tiles spill, or fall out of the auto-vectorizer).
#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
pub(super) fn portable_micro_kernel<'b>(
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
pub(super) const SUB_COLS: usize = 16;

/// The `ROWS x` [`SUB_COLS`] sub-tile at `(r0, c0)` of a
/// [`portable_micro_kernel`] tile (inlined there, so compiled for its
/// instruction set).
#[inline(always)]
pub(super) fn sub_tile<'b, const ROWS: usize>(
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
