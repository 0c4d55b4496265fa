//! `MatMul`: numpy `matmul`.

use ndarray::{Array3, ArrayD, Axis, IxDyn};

use super::Scratch;
use super::{Float, Kernel, KernelResult, broadcast_shapes, first_dtype, view, with_float};
use crate::value::Arg;

pub(crate) struct MatMul;

fn run<T: Float>(args: &[Arg<'_>]) -> KernelResult {
    let (a, b) = (view::<T>(args, 0)?, view::<T>(args, 1)?);
    let (a_vec, b_vec) = (a.ndim() == 1, b.ndim() == 1);
    let a = if a_vec { a.insert_axis(Axis(0)) } else { a };
    let b = if b_vec { b.insert_axis(Axis(1)) } else { b };
    let (ra, rb) = (a.ndim(), b.ndim());
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        return Err(format!("inner dimensions differ: {k} vs {k2}"));
    }
    let batch = broadcast_shapes(&a.shape()[..ra - 2], &b.shape()[..rb - 2], "batch dimensions")?;
    let count: usize = batch.iter().product();
    let full = |rest: [usize; 2]| -> Vec<usize> { batch.iter().copied().chain(rest).collect() };
    let a3 = a.broadcast(IxDyn(&full([m, k]))).ok_or("left operand does not broadcast")?;
    let b3 = b.broadcast(IxDyn(&full([k, n]))).ok_or("right operand does not broadcast")?;
    let a3 = a3.to_shape((count, m, k)).map_err(|e| e.to_string())?;
    let b3 = b3.to_shape((count, k, n)).map_err(|e| e.to_string())?;
    let mut y = Array3::<T>::zeros((count, m, n));
    for ((mut out, x), w) in y.outer_iter_mut().zip(a3.outer_iter()).zip(b3.outer_iter()) {
        out.assign(&x.dot(&w));
    }
    let mut shape = batch.clone();
    if !a_vec {
        shape.push(m);
    }
    if !b_vec {
        shape.push(n);
    }
    let y: ArrayD<T> = y.into_shape_with_order(IxDyn(&shape)).map_err(|e| e.to_string())?;
    Ok(T::into_value(y))
}

impl Kernel for MatMul {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(args))
    }
}
