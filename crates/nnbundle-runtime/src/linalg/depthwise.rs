//! Depthwise convolution (one input and one output channel per group, as in
//! MobileNet and ShuffleNet): each plane is convolved by its own small
//! kernel, directly, with no im2col and no matrix product (as a product it is
//! a one-row matrix per channel, three quarters of each micro-tile wasted).
//!
//! Each output starts at its bias and adds its taps in the kernel's row-major
//! order, one fused multiply-add each where the CPU has FMA: the order and
//! rounding of the matrix-product path, so the results are bit-identical to
//! it for finite weights (taps in the padding are skipped, where the product
//! adds `w * 0`, which differs only for an infinite or NaN weight).

use multiversion::multiversion;
use multiversion::target::target_cfg_f;

use super::{Epilogue, relu};

/// One spatial axis of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Axis {
    /// Input length.
    pub(crate) input: usize,
    /// Output length.
    pub(crate) output: usize,
    /// Kernel taps.
    pub(crate) taps: usize,
    /// Step between windows.
    pub(crate) stride: usize,
    /// Spacing between taps.
    pub(crate) dilation: usize,
    /// Padding before the first input element.
    pub(crate) pad: usize,
}

impl Axis {
    /// The outputs `lo..hi` whose tap `t` falls inside the input, and the
    /// input index of output `lo`'s tap (`None` when no output's does).
    fn inside(&self, t: usize) -> Option<(usize, usize, usize)> {
        let shift = t * self.dilation;
        // Output o reads input o * stride + shift - pad: inside when 0 <= that < input.
        let lo = self.pad.saturating_sub(shift).div_ceil(self.stride);
        let end = self.input + self.pad;
        if end <= shift {
            return None;
        }
        let hi = ((end - shift - 1) / self.stride + 1).min(self.output);
        (lo < hi).then(|| (lo, hi, lo * self.stride + shift - self.pad))
    }
}

/// One plane: `out[oy][ox] = bias + Σ w[ky][kx] · x[oy·s + ky·d - p][ox·s + kx·d - p]`,
/// plus `addend` (a fused residual of the output's shape), through `epilogue`.
///
/// `x` holds `rows.input x cols.input` values, `w` `rows.taps x cols.taps`,
/// `out` (and `addend`) `rows.output x cols.output`.
#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn plane(
    x: &[f32],
    w: &[f32],
    (bias, addend, epilogue): (f32, Option<&[f32]>, Epilogue),
    (rows, cols): (Axis, Axis),
    out: &mut [f32],
) {
    let fused = target_cfg_f!(any(target_feature = "fma", target_arch = "aarch64"));
    let (x, w) = (&x[..rows.input * cols.input], &w[..rows.taps * cols.taps]);
    let out = &mut out[..rows.output * cols.output];
    out.fill(bias);
    for ky in 0..rows.taps {
        let Some((oy_lo, oy_hi, iy_lo)) = rows.inside(ky) else { continue };
        for (oy, iy) in (oy_lo..oy_hi).zip((iy_lo..).step_by(rows.stride)) {
            let line = &mut out[oy * cols.output..][..cols.output];
            let input = &x[iy * cols.input..][..cols.input];
            for kx in 0..cols.taps {
                let Some((lo, hi, ix)) = cols.inside(kx) else { continue };
                let tap = w[ky * cols.taps + kx];
                let line = &mut line[lo..hi];
                let add = |o: &mut f32, v: f32| *o = if fused { tap.mul_add(v, *o) } else { tap * v + *o };
                if cols.stride == 1 {
                    line.iter_mut().zip(&input[ix..]).for_each(|(o, &v)| add(o, v));
                } else {
                    line.iter_mut().zip(input[ix..].iter().step_by(cols.stride)).for_each(|(o, &v)| add(o, v));
                }
            }
        }
    }
    if let Some(addend) = addend {
        out.iter_mut().zip(addend).for_each(|(o, &r)| *o += r);
    }
    if epilogue == Epilogue::Relu {
        out.iter_mut().for_each(|o| *o = relu(*o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition in f64, padding read as zeros.
    fn reference(x: &[f32], w: &[f32], bias: f32, (rows, cols): (Axis, Axis)) -> Vec<f64> {
        let mut out = vec![f64::from(bias); rows.output * cols.output];
        for oy in 0..rows.output {
            for ox in 0..cols.output {
                for ky in 0..rows.taps {
                    for kx in 0..cols.taps {
                        let iy = (oy * rows.stride + ky * rows.dilation) as isize - rows.pad as isize;
                        let ix = (ox * cols.stride + kx * cols.dilation) as isize - cols.pad as isize;
                        if (0..rows.input as isize).contains(&iy) && (0..cols.input as isize).contains(&ix) {
                            let v = f64::from(x[iy as usize * cols.input + ix as usize]);
                            out[oy * cols.output + ox] += f64::from(w[ky * cols.taps + kx]) * v;
                        }
                    }
                }
            }
        }
        out
    }

    /// The sum the matrix-product path computes: from the bias, one fused
    /// multiply-add per tap in row-major order, padding read as zeros.
    fn fused_sum(x: &[f32], w: &[f32], bias: f32, (rows, cols): (Axis, Axis), (oy, ox): (usize, usize)) -> f32 {
        let mut acc = bias;
        for ky in 0..rows.taps {
            for kx in 0..cols.taps {
                let iy = (oy * rows.stride + ky * rows.dilation) as isize - rows.pad as isize;
                let ix = (ox * cols.stride + kx * cols.dilation) as isize - cols.pad as isize;
                let inside = (0..rows.input as isize).contains(&iy) && (0..cols.input as isize).contains(&ix);
                let v = if inside { x[iy as usize * cols.input + ix as usize] } else { 0.0 };
                acc = w[ky * cols.taps + kx].mul_add(v, acc);
            }
        }
        acc
    }

    fn axis(input: usize, taps: usize, stride: usize, dilation: usize, pad: usize, pad_end: usize) -> Axis {
        let span = dilation * (taps - 1) + 1;
        let output = (input + pad + pad_end - span) / stride + 1;
        Axis { input, output, taps, stride, dilation, pad }
    }

    fn fma_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        return cfg!(target_arch = "aarch64");
    }

    #[test]
    fn matches_the_definition_over_odd_shapes_strides_and_paddings() {
        let mut checked = 0;
        for (h, w) in [(1, 1), (5, 7), (8, 8), (13, 6)] {
            for (k, stride, dilation, pad, pad_end) in [
                (3, 1, 1, 1, 1),
                (3, 2, 1, 1, 1),
                (5, 1, 1, 2, 2),
                (5, 2, 1, 2, 1),
                (3, 1, 2, 2, 2),
                (1, 1, 1, 0, 0),
                (3, 3, 1, 0, 2),
                (7, 2, 1, 3, 3),
            ] {
                let span = dilation * (k - 1) + 1;
                if h + pad + pad_end < span || w + pad + pad_end < span {
                    continue;
                }
                let (rows, cols) =
                    (axis(h, k, stride, dilation, pad, pad_end), axis(w, k, stride, dilation, pad, pad_end));
                let x: Vec<f32> = (0..h * w).map(|i| ((i * 37 % 23) as f32 - 11.0) / 5.0).collect();
                let kernel: Vec<f32> = (0..k * k).map(|i| ((i * 13 % 9) as f32 - 4.0) / 3.0).collect();
                let want = reference(&x, &kernel, 0.25, (rows, cols));
                for (epilogue, residual) in [(Epilogue::None, false), (Epilogue::Relu, true)] {
                    let addend: Vec<f32> = (0..want.len()).map(|i| (i % 3) as f32 - 1.0).collect();
                    let mut out = vec![f32::NAN; want.len()];
                    plane(&x, &kernel, (0.25, residual.then_some(&addend[..]), epilogue), (rows, cols), &mut out);
                    for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                        let mut want = want + if residual { f64::from(addend[i]) } else { 0.0 };
                        if epilogue == Epilogue::Relu {
                            want = want.max(0.0);
                        }
                        let what = format!(
                            "{h}x{w}, kernel {k}, stride {stride}, dilation {dilation}, pads {pad}/{pad_end}, at {i}"
                        );
                        assert!((f64::from(got) - want).abs() <= 1e-5 * (1.0 + want.abs()), "{what}: {got} vs {want}");
                        // Where the CPU fuses, the bits are the matrix-product path's.
                        if fma_available() {
                            let exact = fused_sum(&x, &kernel, 0.25, (rows, cols), (i / cols.output, i % cols.output))
                                + if residual { addend[i] } else { 0.0 };
                            let exact = if epilogue == Epilogue::Relu { relu(exact) } else { exact };
                            assert_eq!(got.to_bits(), exact.to_bits(), "{what}");
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "only {checked} cases ran");
    }
}
