//! `BatchNorm1d/2d` (running statistics), `LayerNorm` and `LocalResponseNorm`.

use ndarray::ArrayD;
use nnbundle_format::{DType, Tensor};
use nnbundle_graph::NodeAttrs;

use super::Scratch;
use super::{Float, Kernel, KernelResult, by_chunks, first_dtype, view, with_float};
use crate::linalg::relu;
use crate::value::Arg;

pub(crate) struct BatchNorm {
    eps: f64,
    affine: bool,
    /// A fused ReLU on the output.
    relu: bool,
}

impl BatchNorm {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        BatchNorm { eps: a.float("eps"), affine: a.bool("affine"), relu: false }
    }
}

fn batch_norm<T: Float>(k: &BatchNorm, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
    let x = view::<T>(args, 0)?;
    // Operands: input, [weight, bias,] running_mean, running_var.
    let (weight, bias, mean, var) = if k.affine {
        (Some(view::<T>(args, 1)?), Some(view::<T>(args, 2)?), view::<T>(args, 3)?, view::<T>(args, 4)?)
    } else {
        (None, None, view::<T>(args, 1)?, view::<T>(args, 2)?)
    };
    let channels = x.shape().get(1).copied().unwrap_or(1);
    let lengths = [weight.as_ref().map(|w| w.len()), bias.as_ref().map(|b| b.len()), Some(mean.len()), Some(var.len())];
    if let Some(bad) = lengths.into_iter().flatten().find(|&n| n != channels) {
        return Err(format!("a parameter has {bad} values for {channels} channels"));
    }
    let eps = T::from_f64(k.eps);
    // Per channel: (v - mean) * inv * weight + bias, inv = 1 / sqrt(var + eps).
    let coefficients: Vec<[T; 4]> = (0..channels)
        .map(|c| {
            let inv = T::one() / (var[[c]] + eps).sqrt();
            let (w, b) = (weight.as_ref().map_or(T::one(), |w| w[[c]]), bias.as_ref().map_or(T::zero(), |b| b[[c]]));
            [mean[[c]], inv, w, b]
        })
        .collect();
    let plane: usize = x.shape().iter().skip(2).product();
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let mut y = T::buffer_in(scratch, xs.len());
    by_chunks(&mut y, |start, y| {
        // Runs of one channel's plane within this chunk.
        let mut at = 0;
        while at < y.len() {
            let position = start + at;
            let run = (plane - position % plane.max(1)).min(y.len() - at);
            let [m, inv, w, b] = coefficients[position / plane.max(1) % channels.max(1)];
            let pairs = y[at..at + run].iter_mut().zip(&xs[position..position + run]);
            if k.relu {
                pairs.for_each(|(y, &v)| *y = relu((v - m) * inv * w + b));
            } else {
                pairs.for_each(|(y, &v)| *y = (v - m) * inv * w + b);
            }
            at += run.max(1);
        }
    });
    Ok(T::into_value(ArrayD::from_shape_vec(x.raw_dim(), y).map_err(|e| e.to_string())?))
}

impl Kernel for BatchNorm {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => batch_norm::<T>(self, args, scratch))
    }

    fn fuse_relu(&mut self) -> bool {
        self.relu = true;
        true
    }
}

pub(crate) struct LayerNorm {
    eps: f64,
    dims: usize,
    weight: bool,
    bias: bool,
}

impl LayerNorm {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        let affine = a.bool("elementwise_affine");
        LayerNorm {
            eps: a.float("eps"),
            dims: a.ints("normalized_shape").len(),
            weight: affine,
            bias: affine && a.bool("bias"),
        }
    }
}

fn layer_norm<T: Float>(k: &LayerNorm, args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let inner: usize = x.shape()[x.ndim() - k.dims..].iter().product();
    let weight = if k.weight {
        Some(view::<T>(args, 1)?.as_standard_layout().iter().copied().collect::<Vec<T>>())
    } else {
        None
    };
    let bias =
        if k.bias { Some(view::<T>(args, 2)?.as_standard_layout().iter().copied().collect::<Vec<T>>()) } else { None };
    let mut y: ArrayD<T> = x.as_standard_layout().into_owned();
    let eps = T::from_f64(k.eps);
    let n = T::from_f64(inner as f64);
    let flat = y.as_slice_mut().ok_or("layout")?;
    for row in flat.chunks_mut(inner.max(1)) {
        let mean = row.iter().copied().sum::<T>() / n;
        let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / n;
        let inv = T::one() / (var + eps).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            let w = weight.as_ref().map_or(T::one(), |w| w[i]);
            let b = bias.as_ref().map_or(T::zero(), |b| b[i]);
            *v = (*v - mean) * inv * w + b;
        }
    }
    Ok(T::into_value(y))
}

impl Kernel for LayerNorm {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => layer_norm::<T>(self, args))
    }
}

pub(crate) struct LocalResponseNorm {
    size: usize,
    alpha: f64,
    beta: f64,
    k: f64,
}

impl LocalResponseNorm {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        let size = usize::try_from(a.int("size")).unwrap_or(1).max(1);
        LocalResponseNorm { size, alpha: a.float("alpha"), beta: a.float("beta"), k: a.float("k") }
    }
}

fn local_response_norm<T: Float>(k: &LocalResponseNorm, args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let x = x.as_standard_layout();
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let plane: usize = x.shape()[2..].iter().product();
    let xs = x.as_slice().expect("standard layout");
    let (before, after) = ((k.size - 1) / 2, k.size / 2);
    let (scale, bias, beta) = (T::from_f64(k.alpha / k.size as f64), T::from_f64(k.k), T::from_f64(k.beta));
    let mut y = vec![T::zero(); xs.len()];
    for image in 0..n {
        let base = image * c * plane;
        for ch in 0..c {
            let (lo, hi) = (ch.saturating_sub(before), (ch + after).min(c - 1));
            for p in 0..plane {
                let sum = (lo..=hi).map(|j| xs[base + j * plane + p]).fold(T::zero(), |s, v| s + v * v);
                let at = base + ch * plane + p;
                y[at] = xs[at] / (bias + scale * sum).powf(beta);
            }
        }
    }
    Ok(T::into_value(ArrayD::from_shape_vec(x.raw_dim(), y).map_err(|e| e.to_string())?))
}

impl Kernel for LocalResponseNorm {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => local_response_norm::<T>(self, args))
    }
}

/// `GroupNorm` and the instance norms (one group per channel).
pub(crate) struct GroupNorm {
    /// Groups, or `None` for one per channel.
    groups: Option<usize>,
    eps: f64,
    affine: bool,
}

impl GroupNorm {
    pub(crate) fn new(a: NodeAttrs<'_>, per_channel: bool) -> Self {
        let groups = (!per_channel).then(|| a.int("num_groups").max(1) as usize);
        GroupNorm { groups, eps: a.float("eps"), affine: a.bool("affine") }
    }
}

fn group_norm<T: Float>(k: &GroupNorm, args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let shape = x.shape().to_vec();
    let (n, c) = (shape[0], *shape.get(1).ok_or("expects [N, C, ...]")?);
    let groups = k.groups.unwrap_or(c).max(1);
    if c % groups != 0 {
        return Err(format!("{c} channels do not split into {groups} groups"));
    }
    let positions: usize = shape[2..].iter().product();
    let affine = |i: usize| -> Result<Option<Vec<T>>, String> {
        if !k.affine {
            return Ok(None);
        }
        let v: Vec<T> = view::<T>(args, i)?.iter().copied().collect();
        if v.len() != c {
            return Err(format!("operand {i} has {} values for {c} channels", v.len()));
        }
        Ok(Some(v))
    };
    let (weight, bias) = (affine(1)?, affine(2)?);
    let mut y: ArrayD<T> = x.as_standard_layout().into_owned();
    let flat = y.as_slice_mut().ok_or("layout")?;
    let per_group = c / groups * positions;
    let count = T::from_f64(per_group as f64);
    let eps = T::from_f64(k.eps);
    // Consecutive channels of one sample are one contiguous block.
    for (b, block) in flat.chunks_mut(per_group.max(1)).enumerate().take(n * groups) {
        let mean = block.iter().copied().sum::<T>() / count;
        let var = block.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / count;
        let inv = T::one() / (var + eps).sqrt();
        let first_channel = (b % groups) * (c / groups);
        for (i, v) in block.iter_mut().enumerate() {
            let ch = first_channel + i / positions.max(1);
            let w = weight.as_ref().map_or(T::one(), |w| w[ch]);
            let s = bias.as_ref().map_or(T::zero(), |s| s[ch]);
            *v = (*v - mean) * inv * w + s;
        }
    }
    Ok(T::into_value(y))
}

impl Kernel for GroupNorm {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => group_norm::<T>(self, args))
    }
}

/// The statistics and affine parameters of an inference-mode batch norm.
pub(crate) struct BatchNormParams<'a> {
    pub weight: Option<&'a Tensor>,
    pub bias: Option<&'a Tensor>,
    pub mean: &'a Tensor,
    pub var: &'a Tensor,
    pub eps: f64,
}

/// The weight and bias of a convolution (output channels first) that
/// computes the convolution followed by `bn`: each output channel's weights
/// times `s = weight / sqrt(var + eps)`, and bias `(bias - mean) * s +
/// bn.bias`. Computed in f64 and rounded once to the weights' dtype, so the
/// folded model differs from the two steps by the rounding of the sums
/// (see the test against f64). `None` when the dtypes or lengths disagree.
pub(crate) fn fold_into_conv(
    weight: &Tensor,
    bias: Option<&Tensor>,
    bn: &BatchNormParams<'_>,
) -> Option<(Tensor, Tensor)> {
    match weight.dtype() {
        DType::F32 => fold::<f32>(weight, bias, bn),
        DType::F64 => fold::<f64>(weight, bias, bn),
        _ => None,
    }
}

fn fold<T: Float>(weight: &Tensor, bias: Option<&Tensor>, bn: &BatchNormParams<'_>) -> Option<(Tensor, Tensor)> {
    let channels = *weight.shape().first()?;
    let per_channel = |t: Option<&Tensor>, absent: f64| -> Option<Vec<f64>> {
        match t {
            None => Some(vec![absent; channels]),
            Some(t) => {
                let v: Vec<f64> = t.values::<T>().ok()?.iter().map(|x| x.to_f64().unwrap_or(f64::NAN)).collect();
                (v.len() == channels).then_some(v)
            }
        }
    };
    let (gamma, beta) = (per_channel(bn.weight, 1.0)?, per_channel(bn.bias, 0.0)?);
    let (mean, var, b) = (per_channel(Some(bn.mean), 0.0)?, per_channel(Some(bn.var), 0.0)?, per_channel(bias, 0.0)?);
    let scale: Vec<f64> = (0..channels).map(|c| gamma[c] / (var[c] + bn.eps).sqrt()).collect();
    let w = weight.values::<T>().ok()?;
    let taps = w.len() / channels.max(1);
    let w: Vec<T> =
        w.iter().enumerate().map(|(i, x)| T::from_f64(x.to_f64().unwrap_or(f64::NAN) * scale[i / taps])).collect();
    let b: Vec<T> = (0..channels).map(|c| T::from_f64((b[c] - mean[c]) * scale[c] + beta[c])).collect();
    Some((Tensor::from_vec(weight.shape().to_vec(), w).ok()?, Tensor::from_vec(vec![channels], b).ok()?))
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use super::{BatchNorm, Kernel, Scratch};
    use crate::value::{Arg, Value};

    /// Statistics of another length than the input's channels are an error
    /// naming both counts, not a read past their end.
    #[test]
    fn statistics_of_the_wrong_length_are_an_error() {
        let k = BatchNorm { eps: 1e-5, affine: false, relu: false };
        let x = Value::F32(ArrayD::zeros(IxDyn(&[2, 3])));
        let stats = Value::F32(ArrayD::ones(IxDyn(&[2])));
        let err = k.run(&[Arg::Value(&x), Arg::Value(&stats), Arg::Value(&stats)], &Scratch::default()).unwrap_err();
        assert_eq!(err, "a parameter has 2 values for 3 channels");
    }
}
