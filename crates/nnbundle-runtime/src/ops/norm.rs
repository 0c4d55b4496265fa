//! `BatchNorm1d/2d` (running statistics), `LayerNorm` and `LocalResponseNorm`.

use ndarray::{ArrayD, Axis};
use nnbundle_graph::NodeAttrs;

use super::Scratch;
use super::{Float, Kernel, KernelResult, first_dtype, view, with_float};
use crate::value::Arg;

pub(crate) struct BatchNorm {
    eps: f64,
    affine: bool,
}

impl BatchNorm {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        BatchNorm { eps: a.float("eps"), affine: a.bool("affine") }
    }
}

fn batch_norm<T: Float>(k: &BatchNorm, args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    // Operands: input, [weight, bias,] running_mean, running_var.
    let (weight, bias, mean, var) = if k.affine {
        (Some(view::<T>(args, 1)?), Some(view::<T>(args, 2)?), view::<T>(args, 3)?, view::<T>(args, 4)?)
    } else {
        (None, None, view::<T>(args, 1)?, view::<T>(args, 2)?)
    };
    let eps = T::from_f64(k.eps);
    let mut y = x.to_owned();
    for (ch, mut lane) in y.axis_iter_mut(Axis(1)).enumerate() {
        let inv = T::one() / (var[[ch]] + eps).sqrt();
        let (w, b) = (weight.as_ref().map_or(T::one(), |w| w[[ch]]), bias.as_ref().map_or(T::zero(), |b| b[[ch]]));
        let m = mean[[ch]];
        lane.mapv_inplace(|v| (v - m) * inv * w + b);
    }
    Ok(T::into_value(y))
}

impl Kernel for BatchNorm {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => batch_norm::<T>(self, args))
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
