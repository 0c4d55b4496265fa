//! The AVX2+FMA micro-kernel: an `MR x NR` tile as `6 x 16` sub-tiles, each
//! in twelve 256-bit accumulators (with two rows of `B` and a broadcast of
//! `A`, fifteen of the sixteen registers).
//!
//! The plain-Rust kernel compiled for AVX2 was meant to do this, but rustc
//! 1.95 scalarizes it (`vfmadd213ss`, one float at a time): on a 2-core AMD
//! EPYC the wide MLP at batch 64 ran at 3 GFLOP/s. Written with intrinsics,
//! the same loop order and one fused multiply-add per term keep the sums
//! bit-identical to the portable and AVX-512 kernels.
//!
//! The unsafe code is the vector loads and stores (bounds are checked on the
//! slices they read from) and the call into `target_feature` functions after
//! run-time detection.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps,
};

use super::{Dst, Epilogue, HALF_MR, NR, Start, THIRD_MR};

/// Floats in one vector.
const LANES: usize = 8;
/// Columns of a sub-tile: two vectors.
const SUB_COLS: usize = 2 * LANES;
const _: () = assert!(NR.is_multiple_of(SUB_COLS), "a tile row is whole sub-tiles");

/// Whether this CPU runs [`micro_kernel`] (checked once, then cached by std).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// The tile of a packed panel of `A` (of [`super::MR`], [`HALF_MR`] or [`THIRD_MR`]
/// rows) and `k` rows of `B` (as `b_rows` yields them), its sums starting at
/// `start`, put in `dst` through `epilogue`.
///
/// # Panics
/// If the CPU lacks AVX2 or FMA, `a` is not a panel of `k` terms, or a
/// [`Dst::Rows`] output is too short for the tile.
pub(super) fn micro_kernel<'b>(
    a: &[f32],
    k: usize,
    b_rows: impl Iterator<Item = &'b [f32; NR]> + Clone,
    (start, mut dst): (Start<'_>, Dst<'_>),
    epilogue: Epilogue,
) {
    assert!(available(), "AVX2+FMA micro-kernel on a CPU without it");
    let height = super::micro::checked_height(a, k, start, &dst);
    for c0 in (0..NR).step_by(SUB_COLS) {
        if height == THIRD_MR {
            // SAFETY: AVX2 and FMA are present (asserted above).
            unsafe { sub_tile::<THIRD_MR>(a, height, b_rows.clone(), (0, c0), (start, &mut dst), epilogue) };
        } else {
            for r0 in (0..height).step_by(HALF_MR) {
                // SAFETY: as above.
                unsafe { sub_tile::<HALF_MR>(a, height, b_rows.clone(), (r0, c0), (start, &mut dst), epilogue) };
            }
        }
    }
}

/// The `ROWS x` [`SUB_COLS`] sub-tile at `(r0, c0)` of the tile.
#[target_feature(enable = "avx2,fma")]
fn sub_tile<'b, const ROWS: usize>(
    a: &[f32],
    height: usize,
    b_rows: impl Iterator<Item = &'b [f32; NR]>,
    (r0, c0): (usize, usize),
    (start, dst): (Start<'_>, &mut Dst<'_>),
    epilogue: Epilogue,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    match start {
        Start::RowBias(bias) => {
            for (acc, &b) in acc.iter_mut().zip(&bias[r0..r0 + ROWS]) {
                *acc = [_mm256_set1_ps(b); 2];
            }
        }
        Start::ColumnBias(bias) => acc = [load_pair(&bias[c0..c0 + SUB_COLS]); ROWS],
        Start::Zero => {}
    }
    for (av, bv) in a.chunks_exact(height).zip(b_rows) {
        let av: &[f32; ROWS] = av[r0..r0 + ROWS].try_into().expect("ROWS-tall chunk");
        let [b0, b1] = load_pair(&bv[c0..c0 + SUB_COLS]);
        for (acc, &ai) in acc.iter_mut().zip(av) {
            let ai = _mm256_set1_ps(ai);
            acc[0] = _mm256_fmadd_ps(ai, b0, acc[0]);
            acc[1] = _mm256_fmadd_ps(ai, b1, acc[1]);
        }
    }
    // The cells of sub-tile row `i` in a row-major destination of rows `ld` apart.
    let cells = |i: usize, ld: usize| (r0 + i) * ld + c0..(r0 + i) * ld + c0 + SUB_COLS;
    if let Dst::RowsPlus(_, addend, ld) = dst {
        for (i, acc) in acc.iter_mut().enumerate() {
            let [x0, x1] = load_pair(&addend[cells(i, *ld)]);
            *acc = [_mm256_add_ps(acc[0], x0), _mm256_add_ps(acc[1], x1)];
        }
    }
    if epilogue == Epilogue::Relu {
        // `max(0, x)` returns its second operand when either is NaN (and
        // for -0.0): exactly the `ReLU` select, NaN kept.
        let zero = _mm256_setzero_ps();
        acc.iter_mut().flatten().for_each(|x| *x = _mm256_max_ps(zero, *x));
    }
    for (i, acc) in acc.iter().enumerate() {
        let row: &mut [f32] = match dst {
            Dst::Tile(tile) => &mut tile[r0 + i][c0..c0 + SUB_COLS],
            Dst::Rows(c, ld) | Dst::RowsPlus(c, _, ld) => &mut c[cells(i, *ld)],
        };
        let (left, right) = row.split_at_mut(LANES);
        // SAFETY: each half of the row holds `LANES` floats.
        unsafe {
            _mm256_storeu_ps(left.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(right.as_mut_ptr(), acc[1]);
        }
    }
}

/// The two vectors of `SUB_COLS` floats.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn load_pair(values: &[f32]) -> [__m256; 2] {
    let values: &[f32; SUB_COLS] = values.try_into().expect("SUB_COLS floats");
    // SAFETY: `values` holds `2 * LANES` floats: the two loads read within it.
    unsafe { [_mm256_loadu_ps(values.as_ptr()), _mm256_loadu_ps(values[LANES..].as_ptr())] }
}
