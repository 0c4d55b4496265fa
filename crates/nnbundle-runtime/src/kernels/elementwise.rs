//! `Add`, `Sub`, `Mul`, `Div` with numpy broadcasting.

use super::Scratch;
use super::{Float, Kernel, KernelResult, first_dtype, view, with_float};
use crate::value::Arg;

#[derive(Clone, Copy)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

pub(crate) struct Binary(pub(crate) BinaryOp);

fn run<T: Float>(op: BinaryOp, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
    let (a, b) = (view::<T>(args, 0)?, view::<T>(args, 1)?);
    if a.shape() == b.shape() {
        let f = |x: T, y: T| match op {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
            BinaryOp::Div => x / y,
        };
        let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
        let (xs, ys) = (a.as_slice().expect("standard layout"), b.as_slice().expect("standard layout"));
        let mut out = T::zeros_in(scratch, a.len());
        out.iter_mut().zip(xs.iter().zip(ys)).for_each(|(o, (&x, &y))| *o = f(x, y));
        let y = ndarray::ArrayD::from_shape_vec(a.raw_dim(), out).map_err(|e| e.to_string())?;
        return Ok(T::into_value(y));
    }
    let y = match op {
        BinaryOp::Add => &a + &b,
        BinaryOp::Sub => &a - &b,
        BinaryOp::Mul => &a * &b,
        BinaryOp::Div => &a / &b,
    };
    Ok(T::into_value(y))
}

impl Kernel for Binary {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self.0, args, scratch))
    }
}
