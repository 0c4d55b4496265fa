//! `Add`, `Sub`, `Mul`, `Div`, `Pow` with numpy broadcasting.

use ndarray::{ArrayD, ArrayViewMut, Dimension, IxDyn, Zip};

use super::Scratch;
use super::activation::relu_in_place;
use super::{Float, Kernel, KernelResult, broadcast_shapes, by_chunks, first_dtype, view, with_float};
use crate::value::Arg;

#[derive(Clone, Copy)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

pub(crate) struct Binary {
    op: BinaryOp,
    /// A fused ReLU on the output.
    relu: bool,
}

impl Binary {
    pub(crate) fn new(op: BinaryOp) -> Self {
        Binary { op, relu: false }
    }

    /// The op followed by a ReLU if `relu`.
    pub(crate) fn with_relu(op: BinaryOp, relu: bool) -> Self {
        Binary { op, relu }
    }
}

fn run<T: Float>(&Binary { op, relu }: &Binary, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
    // One loop per op: a `match` inside the loop kept it from vectorizing
    // (an equal-shape Add of 64K floats took 80 us).
    match op {
        BinaryOp::Add => apply(args, scratch, relu, |x: T, y: T| x + y),
        BinaryOp::Sub => apply(args, scratch, relu, |x: T, y: T| x - y),
        BinaryOp::Mul => apply(args, scratch, relu, |x: T, y: T| x * y),
        BinaryOp::Div => apply(args, scratch, relu, |x: T, y: T| x / y),
        BinaryOp::Pow => apply(args, scratch, relu, |x: T, y: T| x.powf(y)),
    }
}

/// `f` elementwise over the two broadcast operands, then the fused ReLU if any.
fn apply<T: Float>(args: &[Arg<'_>], scratch: &Scratch, relu: bool, f: impl Fn(T, T) -> T + Sync) -> KernelResult {
    let (a, b) = (view::<T>(args, 0)?, view::<T>(args, 1)?);
    let shape = IxDyn(&broadcast_shapes(a.shape(), b.shape(), "shapes")?);
    let (a, b) =
        (a.broadcast(shape.clone()).expect("shapes broadcast"), b.broadcast(shape.clone()).expect("shapes broadcast"));
    let mut out = T::buffer_in(scratch, shape.size());
    match (a.as_slice(), b.as_slice()) {
        // Equal shapes in C order, the common case: straight slices.
        (Some(xs), Some(ys)) => by_chunks(&mut out, |start, out| {
            out.iter_mut().zip(xs[start..].iter().zip(&ys[start..])).for_each(|(o, (&x, &y))| *o = f(x, y));
            if relu {
                relu_in_place(out);
            }
        }),
        _ => {
            let view = ArrayViewMut::from_shape(shape.clone(), &mut out).map_err(|e| e.to_string())?;
            Zip::from(view).and(&a).and(&b).for_each(|o, &x, &y| *o = f(x, y));
            if relu {
                relu_in_place(&mut out);
            }
        }
    }
    Ok(T::into_value(ArrayD::from_shape_vec(shape, out).map_err(|e| e.to_string())?))
}

impl Kernel for Binary {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        with_float!(first_dtype(args), T => run::<T>(self, args, scratch))
    }

    fn fuse_relu(&mut self) -> bool {
        self.relu = true;
        true
    }
}
