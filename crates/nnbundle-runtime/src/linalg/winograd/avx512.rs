//! The transforms of whole chunks of [`CHUNK`] tiles with AVX-512: the
//! even and odd columns of the input rows, and the interleaved columns of
//! the output rows, are two-source permutes, which the auto-vectorizer
//! turned into gathers and scalar inserts (the transforms took half the
//! convolution's time). Same operations in the same order as the portable
//! code, so the same bits.
//!
//! The unsafe code is the vector loads and stores (bounds are checked on the
//! slices they access; a masked load at a row's edge accesses only the lanes
//! inside the row) and the call into a `target_feature` function after
//! run-time detection.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, __m512i, _mm512_add_ps, _mm512_loadu_epi32, _mm512_loadu_ps, _mm512_maskz_loadu_ps, _mm512_max_ps,
    _mm512_permutex2var_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps, _mm512_sub_ps,
};

use super::{CHUNK, NR, POINTS, Window, inside};

const _: () = assert!(CHUNK == 16, "a chunk is one vector of tiles");

/// Whether this CPU runs the transforms here (checked once, then cached by std).
pub(super) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// `V = Bᵀ d B` for the [`CHUNK`] tiles `window` reads of each plane of
/// `planes` (`channels` planes of `h x w` after one another): point `ξ`'s
/// values for channel `c` go to `v[ξ * point_len + to + c * NR..][..CHUNK]`
/// (`NR` the GEMM's panel width).
///
/// # Panics
/// If the CPU lacks AVX-512F, a row of `window` is past `h`, or `v` ends
/// early.
pub(super) fn input_chunks(
    (planes, (h, w)): (&[f32], (usize, usize)),
    window: Window,
    v: &mut [f32],
    (point_len, to): (usize, usize),
) {
    assert!(available(), "AVX-512F transform on a CPU without it");
    assert!(window.rows.iter().flatten().all(|&y| y < h), "rows of the plane");
    let channels = planes.len() / (h * w).max(1);
    if channels == 0 {
        return;
    }
    assert!(v.len() >= (POINTS - 1) * point_len + to + (channels - 1) * NR + CHUNK, "transformed input");
    for (c, plane) in planes.chunks_exact(h * w).enumerate() {
        let rows = window.rows.map(|y| y.map(|y| &plane[y * w..][..w]));
        // SAFETY: AVX-512F is present (asserted above).
        unsafe { input(rows, window.x0, v, (point_len, to + c * NR)) }
    }
}

/// The 16 values of `row` from column `x0` on, zero outside the row (and
/// for a row in the padding).
#[target_feature(enable = "avx512f")]
#[inline]
fn load(row: Option<&[f32]>, x0: isize) -> __m512 {
    let Some(row) = row else { return _mm512_setzero_ps() };
    let (lo, hi) = inside(x0, 16, row.len());
    if hi <= lo {
        return _mm512_setzero_ps();
    }
    let lanes = ((1u32 << hi) - (1u32 << lo)) as u16;
    // SAFETY: the masked load reads only the lanes in `lanes`, which address
    // `row[x0 + lo..x0 + hi]`, inside the row; the others are not accessed
    // (and cannot fault).
    unsafe { _mm512_maskz_loadu_ps(lanes, row.as_ptr().wrapping_offset(x0)) }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn input(rows: [Option<&[f32]>; 4], x0: isize, v: &mut [f32], (point_len, to): (usize, usize)) {
    let (even, odd) = (index(&EVEN), index(&ODD));
    // Each row along x: h[r][j]. (Loops, not closures: a closure does not
    // inherit the target features, and was called, not inlined.)
    let mut h = [[_mm512_setzero_ps(); 4]; 4];
    for (h, row) in h.iter_mut().zip(rows) {
        // Values 0..32 and 2..34 of the chunk's span.
        let (lo, hi, lo2, hi2) = (load(row, x0), load(row, x0 + 16), load(row, x0 + 2), load(row, x0 + 18));
        let (d0, d1) = (_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
        let (d2, d3) = (_mm512_permutex2var_ps(lo2, even, hi2), _mm512_permutex2var_ps(lo2, odd, hi2));
        *h = [_mm512_sub_ps(d0, d2), _mm512_add_ps(d1, d2), _mm512_sub_ps(d2, d1), _mm512_sub_ps(d1, d3)];
    }
    // Then along y: points j, 4 + j, 8 + j, 12 + j from column j of the rows.
    for (j, (upper, lower)) in h[0].iter().zip(&h[3]).enumerate() {
        let (middle_a, middle_b) = (h[1][j], h[2][j]);
        let points = [
            (j, _mm512_sub_ps(*upper, middle_b)),
            (4 + j, _mm512_add_ps(middle_a, middle_b)),
            (8 + j, _mm512_sub_ps(middle_b, middle_a)),
            (12 + j, _mm512_sub_ps(middle_a, *lower)),
        ];
        for (point, value) in points {
            let dst = &mut v[point * point_len + to..][..CHUNK];
            // SAFETY: `dst` holds CHUNK = 16 floats.
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), value) };
        }
    }
}

/// One output row of [`CHUNK`] tiles: where it goes (`2 * CHUNK` floats)
/// and the residual operand to add there, if any.
pub(super) type OutRow<'a> = (&'a mut [f32], Option<&'a [f32]>);

/// `Y = Aᵀ M A` for [`CHUNK`] tiles whose point `ξ` is at `m[ξ * stride +
/// at..][..CHUNK]`, plus `bias` and the rows' addends, through the ReLU if
/// `relu`, into the two output rows.
///
/// # Panics
/// If the CPU lacks AVX-512F, `m` ends early, or a row or addend is short.
pub(super) fn output_chunk(m: &[f32], (stride, at): (usize, usize), (bias, relu): (f32, bool), rows: [OutRow<'_>; 2]) {
    assert!(available(), "AVX-512F transform on a CPU without it");
    assert!(m.len() >= (POINTS - 1) * stride + at + CHUNK, "products");
    assert!(rows.iter().all(|(d, r)| d.len() >= 2 * CHUNK && r.is_none_or(|r| r.len() >= 2 * CHUNK)), "output rows");
    // SAFETY: AVX-512F is present (asserted above).
    unsafe { output(m, (stride, at), (bias, relu), rows) }
}

#[target_feature(enable = "avx512f")]
fn output(m: &[f32], (stride, at): (usize, usize), (bias, relu): (f32, bool), rows: [OutRow<'_>; 2]) {
    let mut points = [_mm512_setzero_ps(); POINTS];
    for (point, value) in points.iter_mut().enumerate() {
        // SAFETY: each point's run holds CHUNK = 16 floats (asserted by the caller).
        *value = unsafe { _mm512_loadu_ps(m[point * stride + at..].as_ptr()) };
    }
    // Along x: s[i][b] for row i of M, column b of the tiles.
    let mut s = [[_mm512_setzero_ps(); 2]; 4];
    for (s, m) in s.iter_mut().zip(points.chunks_exact(4)) {
        *s = [_mm512_add_ps(_mm512_add_ps(m[0], m[1]), m[2]), _mm512_sub_ps(_mm512_sub_ps(m[1], m[2]), m[3])];
    }
    // Then along y: y[a][b] for output row a.
    let mut y = [[_mm512_setzero_ps(); 2]; 2];
    for b in 0..2 {
        y[0][b] = _mm512_add_ps(_mm512_add_ps(s[0][b], s[1][b]), s[2][b]);
        y[1][b] = _mm512_sub_ps(_mm512_sub_ps(s[1][b], s[2][b]), s[3][b]);
    }
    // The two columns of the tiles in turn: left[0], right[0], left[1], ...
    let (first, second) = (index(&INTERLEAVE_LOW), index(&INTERLEAVE_HIGH));
    let (bias, zero) = (_mm512_set1_ps(bias), _mm512_setzero_ps());
    for ((dst, addend), [left, right]) in rows.into_iter().zip(y) {
        let halves = [_mm512_permutex2var_ps(left, first, right), _mm512_permutex2var_ps(left, second, right)];
        for (half, value) in halves.into_iter().enumerate() {
            let mut value = _mm512_add_ps(value, bias);
            if let Some(addend) = addend {
                // SAFETY: `addend` holds 2 * CHUNK floats (asserted by the caller).
                value = _mm512_add_ps(value, unsafe { _mm512_loadu_ps(addend[half * CHUNK..].as_ptr()) });
            }
            if relu {
                // `max(0, x)` returns its second operand when either is NaN
                // (and for -0.0): exactly the `ReLU` select.
                value = _mm512_max_ps(zero, value);
            }
            let dst = &mut dst[half * CHUNK..][..CHUNK];
            // SAFETY: `dst` holds CHUNK = 16 floats.
            unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), value) };
        }
    }
}

/// Permute indices (15 and below pick from the first operand, 16 and above
/// from the second): the even lanes of two vectors, the odd ones, and the
/// two halves of two vectors interleaved.
const EVEN: [i32; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
const ODD: [i32; 16] = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31];
const INTERLEAVE_LOW: [i32; 16] = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
const INTERLEAVE_HIGH: [i32; 16] = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];

#[target_feature(enable = "avx512f")]
#[inline]
fn index(lanes: &[i32; 16]) -> __m512i {
    // SAFETY: `lanes` holds 16 integers.
    unsafe { _mm512_loadu_epi32(lanes.as_ptr()) }
}
