//! `ReduceMean`, `ReduceSum`, `ReduceMax` over dimensions.

use ndarray::{ArrayD, Axis};
use nnbundle_graph::NodeAttrs;

use super::{Float, Kernel, KernelResult, Scratch, first_dtype, nan_max, view, with_float};
use crate::value::Arg;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum How {
    Mean,
    Sum,
    Max,
}

pub(crate) struct Reduce {
    how: How,
    /// The dimensions reduced as written (negative count from the end); `None`: all.
    dims: Option<Vec<i64>>,
    keepdim: bool,
}

impl Reduce {
    pub(crate) fn new(a: NodeAttrs<'_>, how: How) -> Self {
        let dims = match a.get("dims") {
            Some(nnbundle_graph::AttrValue::Ints(d)) => Some(d.clone()),
            _ => None,
        };
        Reduce { how, dims, keepdim: a.bool("keepdim") }
    }
}

fn reduce<T: Float>(k: &Reduce, args: &[Arg<'_>]) -> KernelResult {
    let x = view::<T>(args, 0)?;
    let rank = x.ndim();
    let mut dims: Vec<usize> = match &k.dims {
        None => (0..rank).collect(),
        Some(d) => d
            .iter()
            .map(|&a| nnbundle_graph::normalize_axis(a, rank).ok_or_else(|| format!("dim {a} is out of range")))
            .collect::<Result<_, _>>()?,
    };
    dims.sort_unstable();
    if k.how == How::Max && dims.iter().any(|&d| x.shape()[d] == 0) {
        return Err("ReduceMax over an empty dimension".into());
    }
    let count: usize = dims.iter().map(|&d| x.shape()[d]).product();
    let mut y: ArrayD<T> = x.to_owned();
    // From the last dimension down, so earlier indices stay valid.
    for &d in dims.iter().rev() {
        y = match k.how {
            How::Mean | How::Sum => y.sum_axis(Axis(d)),
            // A NaN wins, as in PyTorch.
            How::Max => y.fold_axis(Axis(d), T::neg_infinity(), |&m, &v| nan_max(m, v)),
        };
        if k.keepdim {
            y.insert_axis_inplace(Axis(d));
        }
    }
    if k.how == How::Mean {
        let n = T::from_f64(count as f64);
        y.mapv_inplace(|v| v / n);
    }
    Ok(T::into_value(y))
}

impl Kernel for Reduce {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => reduce::<T>(self, args))
    }
}
