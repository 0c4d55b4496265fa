//! Matrix-vector products: batch-1 dense layers, bound by reading the weights.

use multiversion::multiversion;
use multiversion::target::target_cfg_f;
use rayon::prelude::*;

/// Matrix-vector products over at least this many weights split across
/// threads (memory-bound: 512 KiB of f32 is about 25 µs of reading; 16
/// times that with the workers asleep: see [`crate::pool`]).
const PARALLEL_MATVEC: usize = 1 << 17;

/// `y[i] += W[i] · x` for a row-major `w [y.len(), x.len()]`: one pass over
/// `W` in stored order, 16 lanes per row (batch-1 inference is bound by
/// reading the weights, which the baseline SSE2 build reads at half speed).
pub(crate) fn matvec(w: &[f32], x: &[f32], y: &mut [f32]) {
    /// Rows of `W` per task when threads split a large product.
    const ROWS_PER_TASK: usize = 64;
    if crate::pool::worth_splitting(w.len(), PARALLEL_MATVEC) && !x.is_empty() {
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

    #[test]
    fn matvec_matches_a_naive_product() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        crate::pool::awake_in(&pool, check_matvec);
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
}
