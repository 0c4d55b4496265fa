//! `Embedding` and `Gather`.

use ndarray::{ArrayD, Axis, IxDyn};
use nnbundle_format::DType;
use nnbundle_graph::NodeAttrs;

use super::Scratch;
use super::{Float, Kernel, KernelResult, view, with_float};
use crate::value::{Arg, Value};

/// Indices of operand `i` as i64, whatever their integer dtype.
fn indices(args: &[Arg<'_>], i: usize) -> Result<(Vec<i64>, Vec<usize>), String> {
    let arg = args.get(i).ok_or("indices are missing")?;
    let shape = arg.shape().to_vec();
    let values = match arg.dtype() {
        DType::I64 => view::<i64>(args, i)?.iter().copied().collect(),
        DType::I32 => view::<i32>(args, i)?.iter().map(|&v| i64::from(v)).collect(),
        other => return Err(format!("indices must be i32 or i64, found {other}")),
    };
    Ok((values, shape))
}

/// Picks slices of `data` along `axis` for each index (numpy `take`).
fn take<T: Clone + num_traits::Zero>(
    data: ndarray::ArrayViewD<'_, T>,
    axis: usize,
    idx: &[i64],
    idx_shape: &[usize],
    negative: bool,
) -> Result<ArrayD<T>, String> {
    let size = data.shape()[axis] as i64;
    let mut picked = Vec::with_capacity(idx.len());
    for &i in idx {
        let j = if negative && i < 0 { i + size } else { i };
        if j < 0 || j >= size {
            let range = if negative { format!("[-{size}, {size})") } else { format!("[0, {size})") };
            return Err(format!("index {i} is out of range {range}"));
        }
        picked.push(j as usize);
    }
    let selected = data.select(Axis(axis), &picked);
    let mut shape = data.shape()[..axis].to_vec();
    shape.extend_from_slice(idx_shape);
    shape.extend_from_slice(&data.shape()[axis + 1..]);
    Ok(selected.to_shape(IxDyn(&shape)).map_err(|e| e.to_string())?.into_owned())
}

pub(crate) struct Embedding;

impl Kernel for Embedding {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        let (idx, shape) = indices(args, 0)?;
        with_float!(args[1].dtype(), T => take(view::<T>(args, 1)?, 0, &idx, &shape, false).map(T::into_value))
    }
}

pub(crate) struct Gather {
    axis: i64,
}

impl Gather {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Gather { axis: a.int("axis") }
    }
}

fn gather_typed<T: crate::value::Scalar + num_traits::Zero>(
    args: &[Arg<'_>],
    axis: usize,
    idx: &[i64],
    shape: &[usize],
) -> Result<ArrayD<T>, String> {
    take(view::<T>(args, 0)?, axis, idx, shape, true)
}

impl Kernel for Gather {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        let (idx, shape) = indices(args, 1)?;
        let rank = args[0].shape().len();
        let axis = nnbundle_graph::normalize_axis(self.axis, rank).ok_or("axis out of range")?;
        Ok(match args[0].dtype() {
            DType::F32 => Value::F32(gather_typed(args, axis, &idx, &shape)?),
            DType::F64 => Value::F64(gather_typed(args, axis, &idx, &shape)?),
            DType::I32 => Value::I32(gather_typed(args, axis, &idx, &shape)?),
            DType::I64 => Value::I64(gather_typed(args, axis, &idx, &shape)?),
            other => return Err(format!("Gather does not run on {other} data")),
        })
    }
}
