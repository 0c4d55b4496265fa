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
    __m512, _MM_HINT_T1, _mm_prefetch, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_max_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_storeu_ps, _mm512_unpackhi_ps,
    _mm512_unpacklo_ps,
};

use super::{Dst, Epilogue, HALF_MR, MR, NR, Start, THIRD_MR};

/// Floats in one vector.
const LANES: usize = 16;
const _: () = assert!(NR == 2 * LANES, "a tile row is two vectors");

/// Whether this CPU runs [`micro_kernel`] (checked once, then cached by std).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// The tile of a packed panel of `A` (of [`MR`], [`HALF_MR`] or [`THIRD_MR`]
/// rows) and `k` rows of `B` (as `b_rows` yields them), its sums starting at
/// `start`, put in `dst` through `epilogue`. The first terms each prefetch
/// one cache line of `prefetch` into L2, in order, until it is all asked for.
///
/// # Panics
/// If the CPU lacks AVX-512F, `a` is not a panel of `k` terms, or a
/// [`Dst::Rows`] output is too short for the tile.
pub(super) fn micro_kernel<'b>(
    a: &[f32],
    k: usize,
    b_rows: impl Iterator<Item = &'b [f32; NR]>,
    (start, dst): (Start<'_>, Dst<'_>),
    epilogue: Epilogue,
    prefetch: &[f32],
) {
    assert!(available(), "AVX-512F micro-kernel on a CPU without it");
    let height = super::micro::checked_height(a, k, start, &dst);
    // SAFETY: AVX-512F is present (asserted above).
    unsafe {
        match height {
            MR => rows::<MR>(a, b_rows, (start, dst), epilogue, prefetch),
            HALF_MR => rows::<HALF_MR>(a, b_rows, (start, dst), epilogue, prefetch),
            _ => rows::<THIRD_MR>(a, b_rows, (start, dst), epilogue, prefetch),
        }
    }
}

#[target_feature(enable = "avx512f")]
fn rows<'b, const H: usize>(
    a: &[f32],
    b_rows: impl Iterator<Item = &'b [f32; NR]>,
    (start, mut dst): (Start<'_>, Dst<'_>),
    epilogue: Epilogue,
    prefetch: &[f32],
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; H];
    match start {
        Start::RowBias(bias) => {
            for (acc, &b) in acc.iter_mut().zip(&bias[..H]) {
                *acc = [_mm512_set1_ps(b); 2];
            }
        }
        Start::ColumnBias(bias) => {
            // SAFETY: `bias` holds `2 * LANES` floats.
            let row = unsafe { [_mm512_loadu_ps(bias.as_ptr()), _mm512_loadu_ps(bias[LANES..].as_ptr())] };
            acc = [row; H];
        }
        Start::Zero => {}
    }
    let mut pairs = a.chunks_exact(H).zip(b_rows);
    // Two loops: a test per term in one kept the tile out of registers
    // (the wide MLP took twice as long).
    for line in prefetch.chunks(LANES) {
        let Some((av, bv)) = pairs.next() else { break };
        _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast());
        step(&mut acc, av, bv);
    }
    for (av, bv) in pairs {
        step(&mut acc, av, bv);
    }
    if let Dst::RowsPlus(_, addend, ld) = dst {
        for (i, acc) in acc.iter_mut().enumerate() {
            let row = &addend[i * ld..][..NR];
            // SAFETY: `row` holds `2 * LANES` floats.
            let (r0, r1) = unsafe { (_mm512_loadu_ps(row.as_ptr()), _mm512_loadu_ps(row[LANES..].as_ptr())) };
            *acc = [_mm512_add_ps(acc[0], r0), _mm512_add_ps(acc[1], r1)];
        }
    }
    if epilogue == Epilogue::Relu {
        // `max(0, x)` returns its second operand when either is NaN (and
        // for -0.0): exactly the `ReLU` select, NaN kept.
        let zero = _mm512_setzero_ps();
        acc.iter_mut().flatten().for_each(|x| *x = _mm512_max_ps(zero, *x));
    }
    for (i, acc) in acc.iter().enumerate() {
        let row: &mut [f32] = match dst {
            Dst::Tile(ref mut tile) => &mut tile[i],
            Dst::Rows(ref mut c, ld) | Dst::RowsPlus(ref mut c, _, ld) => &mut c[i * ld..][..NR],
        };
        let (left, right) = row.split_at_mut(LANES);
        // SAFETY: each half of the row holds `LANES` floats.
        unsafe {
            _mm512_storeu_ps(left.as_mut_ptr(), acc[0]);
            _mm512_storeu_ps(right.as_mut_ptr(), acc[1]);
        }
    }
}

/// One term of a tile: `acc[i] += av[i] * bv` for each row `i`.
#[target_feature(enable = "avx512f")]
#[inline]
fn step<const H: usize>(acc: &mut [[__m512; 2]; H], av: &[f32], bv: &[f32; NR]) {
    // SAFETY: `bv` holds `2 * LANES` floats: the two loads read within it.
    let (b0, b1): (__m512, __m512) = unsafe { (_mm512_loadu_ps(bv.as_ptr()), _mm512_loadu_ps(bv[LANES..].as_ptr())) };
    for (acc, &ai) in acc.iter_mut().zip(av) {
        let ai = _mm512_set1_ps(ai);
        acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
        acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
    }
}

/// Writes `columns[j][kk]` at `panel[kk * NR + j]` for `kk < k`: the packed
/// panel of `NR` contiguous columns (a column-major operand), as 16x16
/// register transposes where a scalar loop reads one float at a time.
///
/// # Panics
/// If the CPU lacks AVX-512F, or a column is shorter than `k` or `panel`
/// than `k * NR`.
pub(super) fn pack_columns(columns: &[&[f32]; NR], k: usize, panel: &mut [f32]) {
    assert!(available(), "AVX-512F packing on a CPU without it");
    assert!(columns.iter().all(|c| c.len() >= k) && panel.len() >= k * NR, "panel of {k} rows");
    // SAFETY: AVX-512F is present (asserted above).
    unsafe { transpose_columns(columns, k, panel) }
}

#[target_feature(enable = "avx512f")]
fn transpose_columns(columns: &[&[f32]; NR], k: usize, panel: &mut [f32]) {
    let whole = k / LANES * LANES;
    for kk0 in (0..whole).step_by(LANES) {
        for half in 0..NR / LANES {
            let group = &columns[half * LANES..][..LANES];
            // SAFETY: every column holds at least `k > kk0 + LANES - 1` floats (asserted by the caller).
            let rows: [__m512; LANES] = std::array::from_fn(|r| unsafe { _mm512_loadu_ps(group[r][kk0..].as_ptr()) });
            for (t, row) in transpose16(rows).into_iter().enumerate() {
                let at = (kk0 + t) * NR + half * LANES;
                let dst = &mut panel[at..at + LANES];
                // SAFETY: `dst` holds `LANES` floats.
                unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), row) };
            }
        }
    }
    for kk in whole..k {
        for (d, column) in panel[kk * NR..(kk + 1) * NR].iter_mut().zip(columns) {
            *d = column[kk];
        }
    }
}

/// The transpose of a 16x16 matrix held as 16 rows.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; LANES]) -> [__m512; LANES] {
    // Interleave pairs of rows, then pairs of pairs, within 128-bit lanes...
    let t: [__m512; LANES] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 { _mm512_unpacklo_ps(a, b) } else { _mm512_unpackhi_ps(a, b) }
    });
    let u: [__m512; LANES] = std::array::from_fn(|i| {
        let (a, b) = (t[i / 4 * 4 + i % 4 / 2], t[i / 4 * 4 + i % 4 / 2 + 2]);
        if i % 2 == 0 { _mm512_shuffle_ps::<0x44>(a, b) } else { _mm512_shuffle_ps::<0xEE>(a, b) }
    });
    // ...then move 128-bit lanes: across groups of four rows, then of eight.
    let v: [__m512; LANES] = std::array::from_fn(|i| {
        let (a, b) = (u[i / 8 * 8 + i % 4], u[i / 8 * 8 + i % 4 + 4]);
        if i % 8 < 4 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xDD>(a, b) }
    });
    std::array::from_fn(|i| {
        let (a, b) = (v[i % 8], v[i % 8 + 8]);
        if i < 8 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xDD>(a, b) }
    })
}
