//! `Add`, `Sub`, `Mul`, `Div` with numpy broadcasting.

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

fn run<T: Float>(op: BinaryOp, args: &[Arg<'_>]) -> KernelResult {
    let (a, b) = (view::<T>(args, 0)?, view::<T>(args, 1)?);
    let y = match op {
        BinaryOp::Add => &a + &b,
        BinaryOp::Sub => &a - &b,
        BinaryOp::Mul => &a * &b,
        BinaryOp::Div => &a / &b,
    };
    Ok(T::into_value(y))
}

impl Kernel for Binary {
    fn run(&self, args: &[Arg<'_>]) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self.0, args))
    }
}
