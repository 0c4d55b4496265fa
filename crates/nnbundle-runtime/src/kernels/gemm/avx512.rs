//! The AVX-512 micro-kernel: a `12 x 32` tile in 24 vector accumulators.
//!
//! Plain Rust does not get here: the auto-vectorizer keeps a `6 x 16` tile in
//! registers but scalarizes some larger ones (`8 x 32` ran at 3 GFLOP/s), and
//! six 512-bit accumulators cannot hide the fused multiply-add latency on two
//! ports. Measured on one Sapphire Rapids core: 140-150 GFLOP/s against
//! 95-100 for the auto-vectorized `6 x 16` tile.
//!
//! The unsafe code is the vector loads and stores (bounds are checked on the
//! slices they read from) and the call into a `target_feature` function after
//! run-time detection.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::{HALF_MR, MR, NR, Tile};

/// Floats in one vector.
const LANES: usize = 16;
const _: () = assert!(NR == 2 * LANES, "a tile row is two vectors");

/// Whether this CPU runs [`micro_kernel`] (checked once, then cached by std).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// The tile of a packed panel of `A` (of [`MR`] or [`HALF_MR`] rows) and `k`
/// rows of `B` (as `b_rows` yields them), into the first rows of `tile`.
///
/// # Panics
/// If the CPU lacks AVX-512F, or `a` is not a panel of `k` terms.
pub(super) fn micro_kernel<'b>(a: &[f32], k: usize, b_rows: impl Iterator<Item = &'b [f32; NR]>, tile: &mut Tile) {
    assert!(available(), "AVX-512F micro-kernel on a CPU without it");
    // SAFETY: AVX-512F is present (asserted above).
    unsafe {
        if a.len() == MR * k {
            rows::<MR>(a, b_rows, tile);
        } else {
            assert_eq!(a.len(), HALF_MR * k, "panel of A for {k} terms");
            rows::<HALF_MR>(a, b_rows, tile);
        }
    }
}

#[target_feature(enable = "avx512f")]
fn rows<'b, const H: usize>(a: &[f32], b_rows: impl Iterator<Item = &'b [f32; NR]>, tile: &mut Tile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; H];
    for (av, bv) in a.chunks_exact(H).zip(b_rows) {
        // SAFETY: `bv` holds `2 * LANES` floats: the two loads read within it.
        let (b0, b1): (__m512, __m512) =
            unsafe { (_mm512_loadu_ps(bv.as_ptr()), _mm512_loadu_ps(bv[LANES..].as_ptr())) };
        for (acc, &ai) in acc.iter_mut().zip(av) {
            let ai = _mm512_set1_ps(ai);
            acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
        }
    }
    for (row, acc) in tile.iter_mut().zip(&acc) {
        let (left, right) = row.split_at_mut(LANES);
        // SAFETY: each half of a tile row holds `LANES` floats.
        unsafe {
            _mm512_storeu_ps(left.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(right.as_mut_ptr(), acc[1]);
        }
    }
}
