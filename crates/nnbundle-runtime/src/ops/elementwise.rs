//! `Add`, `Sub`, `Mul`, `Div`, `Pow` with numpy broadcasting; `Cast`; the
//! comparisons `Equal`, `Less`, `Greater`; `Where`.

use std::borrow::Cow;

use ndarray::{ArrayD, ArrayViewMut, Dimension, IxDyn, Zip};
use nnbundle_format::DType;
use nnbundle_graph::NodeAttrs;

use super::Scratch;
use super::activation::relu_in_place;
use super::{Broadcast, Float, Kernel, KernelResult, broadcast_shapes, by_chunks, first_dtype, view, with_float};
use crate::value::{Arg, Value};

#[derive(Clone, Copy)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Fmod,
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
        BinaryOp::Max => apply(args, scratch, relu, |x: T, y: T| {
            if x.is_nan() || y.is_nan() {
                T::nan()
            } else if x > y {
                x
            } else {
                y
            }
        }),
        BinaryOp::Fmod => apply(args, scratch, relu, |x: T, y: T| x % y),
        BinaryOp::Min => apply(args, scratch, relu, |x: T, y: T| {
            if x.is_nan() || y.is_nan() {
                T::nan()
            } else if x < y {
                x
            } else {
                y
            }
        }),
    }
}

/// `f` elementwise over the two broadcast operands, then the fused ReLU if any.
fn apply<T: Float>(args: &[Arg<'_>], scratch: &Scratch, relu: bool, f: impl Fn(T, T) -> T + Sync) -> KernelResult {
    let (a, b) = (view::<T>(args, 0)?, view::<T>(args, 1)?);
    let shape = IxDyn(&broadcast_shapes(a.shape(), b.shape(), "shapes")?);
    let mut out = T::buffer_in(scratch, shape.size());
    match (a.as_slice(), b.as_slice()) {
        // Equal shapes in C order, the common case: straight slices.
        (Some(xs), Some(ys)) if a.shape() == b.shape() => by_chunks(&mut out, |start, out| {
            out.iter_mut().zip(xs[start..].iter().zip(&ys[start..])).for_each(|(o, (&x, &y))| *o = f(x, y));
            if relu {
                relu_in_place(out);
            }
        }),
        // Broadcast C-order operands (a bias, a per-channel scale): runs over slices and repeated values.
        (Some(xs), Some(ys)) => {
            Broadcast::new(shape.slice(), a.shape(), b.shape()).apply(&mut out, (xs, ys), &f);
            if relu {
                relu_in_place(&mut out);
            }
        }
        _ => {
            let (a, b) = (
                a.broadcast(shape.clone()).expect("shapes broadcast"),
                b.broadcast(shape.clone()).expect("shapes broadcast"),
            );
            let view = ArrayViewMut::from_shape(shape.clone(), &mut out).map_err(|e| e.to_string())?;
            Zip::from(view).and(&a).and(&b).for_each(|o, &x, &y| *o = f(x, y));
            if relu {
                relu_in_place(&mut out);
            }
        }
    }
    Ok(T::into_value(ArrayD::from_shape_vec(shape, out).map_err(|e| e.to_string())?))
}

/// `Add`, `Sub`, `Mul` on integers: two's complement, wrapping on overflow.
fn integer<T>(op: BinaryOp, args: &[Arg<'_>]) -> Result<ArrayD<T>, String>
where
    T: crate::value::Scalar + num_traits::WrappingAdd + num_traits::WrappingSub + num_traits::WrappingMul,
{
    let (a, b) = (view::<T>(args, 0)?, view::<T>(args, 1)?);
    let shape = IxDyn(&broadcast_shapes(a.shape(), b.shape(), "shapes")?);
    let (a, b) = (a.broadcast(shape.clone()).expect("shapes broadcast"), b.broadcast(shape).expect("shapes broadcast"));
    let zip = Zip::from(&a).and(&b);
    Ok(match op {
        BinaryOp::Add => zip.map_collect(|x, y| x.wrapping_add(y)),
        BinaryOp::Sub => zip.map_collect(|x, y| x.wrapping_sub(y)),
        BinaryOp::Mul => zip.map_collect(|x, y| x.wrapping_mul(y)),
        _ => return Err("computes on f32 or f64 only".into()),
    })
}

impl Kernel for Binary {
    fn run(&self, args: &[Arg<'_>], scratch: &Scratch) -> KernelResult {
        match first_dtype(args) {
            DType::I32 => integer::<i32>(self.op, args).map(Value::I32),
            DType::I64 => integer::<i64>(self.op, args).map(Value::I64),
            dtype => with_float!(dtype, T => run::<T>(self, args, scratch)),
        }
    }

    fn fuse_relu(&mut self) -> bool {
        self.relu = true;
        true
    }
}

/// An element `Cast` converts from, with each conversion its numerics state.
trait CastFrom: Copy {
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
    fn to_i32(self) -> i32;
    fn to_i64(self) -> i64;
    fn to_bool(self) -> bool;
}

/// Floats: Rust's `as` rounds to nearest even, truncates toward zero and
/// saturates into integers, NaN giving 0.
macro_rules! cast_float {
    ($t:ty) => {
        impl CastFrom for $t {
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_i32(self) -> i32 {
                self as i32
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn to_bool(self) -> bool {
                self != 0.0
            }
        }
    };
}
cast_float!(f32);
cast_float!(f64);

/// Integers: to float rounds to nearest; to a narrower integer saturates.
macro_rules! cast_int {
    ($t:ty) => {
        impl CastFrom for $t {
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_i32(self) -> i32 {
                i64::from(self).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
            }
            fn to_i64(self) -> i64 {
                i64::from(self)
            }
            fn to_bool(self) -> bool {
                self != 0
            }
        }
    };
}
cast_int!(i32);
cast_int!(i64);

impl CastFrom for bool {
    fn to_f32(self) -> f32 {
        f32::from(u8::from(self))
    }
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self))
    }
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
    fn to_bool(self) -> bool {
        self
    }
}

pub(crate) struct Cast {
    to: DType,
}

impl Cast {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Cast { to: a.str("dtype").parse().unwrap_or(DType::F32) }
    }

    fn convert<T: CastFrom>(&self, a: &ArrayD<T>) -> KernelResult {
        Ok(match self.to {
            DType::F32 => Value::F32(a.mapv(T::to_f32)),
            DType::F64 => Value::F64(a.mapv(T::to_f64)),
            DType::I32 => Value::I32(a.mapv(T::to_i32)),
            DType::I64 => Value::I64(a.mapv(T::to_i64)),
            DType::Bool => Value::Bool(a.mapv(T::to_bool)),
            other => return Err(format!("Cast to {other} is not computed")),
        })
    }
}

/// Operand `i` as a value, whatever its dtype (a weight converted).
fn operand<'a>(args: &'a [Arg<'_>], i: usize) -> Result<Cow<'a, Value>, String> {
    match args.get(i).ok_or_else(|| format!("operand {i} is missing"))? {
        Arg::Value(v) => Ok(Cow::Borrowed(*v)),
        Arg::Weight(t) => Value::from_tensor(t).map(Cow::Owned).map_err(|e| e.to_string()),
    }
}

impl Kernel for Cast {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        match operand(args, 0)?.as_ref() {
            Value::F32(a) => self.convert(a),
            Value::F64(a) => self.convert(a),
            Value::I32(a) => self.convert(a),
            Value::I64(a) => self.convert(a),
            Value::Bool(a) => self.convert(a),
        }
    }
}

/// Which comparison.
#[derive(Clone, Copy)]
pub(crate) enum Compare {
    Equal,
    Less,
    Greater,
}

/// `Equal`, `Less`, `Greater`: bools from two broadcast operands of one dtype.
pub(crate) struct Comparison(pub(crate) Compare);

fn compare<T: PartialOrd>(how: Compare, a: &ArrayD<T>, b: &ArrayD<T>) -> KernelResult {
    let shape = IxDyn(&broadcast_shapes(a.shape(), b.shape(), "shapes")?);
    let (a, b) = (a.broadcast(shape.clone()).expect("shapes broadcast"), b.broadcast(shape).expect("shapes broadcast"));
    let zip = Zip::from(&a).and(&b);
    Ok(Value::Bool(match how {
        Compare::Equal => zip.map_collect(|x, y| x == y),
        Compare::Less => zip.map_collect(|x, y| x < y),
        Compare::Greater => zip.map_collect(|x, y| x > y),
    }))
}

impl Kernel for Comparison {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        match (operand(args, 0)?.as_ref(), operand(args, 1)?.as_ref()) {
            (Value::F32(a), Value::F32(b)) => compare(self.0, a, b),
            (Value::F64(a), Value::F64(b)) => compare(self.0, a, b),
            (Value::I32(a), Value::I32(b)) => compare(self.0, a, b),
            (Value::I64(a), Value::I64(b)) => compare(self.0, a, b),
            (Value::Bool(a), Value::Bool(b)) => compare(self.0, a, b),
            (a, b) => Err(format!("operands of dtypes {} and {} are not compared", a.dtype(), b.dtype())),
        }
    }
}

/// `Where`: elements of `input` where the condition holds, else of `other`.
pub(crate) struct Where;

fn choose<T: Clone>(c: &ArrayD<bool>, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>, String> {
    let shape = broadcast_shapes(c.shape(), &broadcast_shapes(a.shape(), b.shape(), "shapes")?, "shapes")?;
    let shape = IxDyn(&shape);
    let (c, a, b) = (
        c.broadcast(shape.clone()).expect("shapes broadcast"),
        a.broadcast(shape.clone()).expect("shapes broadcast"),
        b.broadcast(shape).expect("shapes broadcast"),
    );
    Ok(Zip::from(&c).and(&a).and(&b).map_collect(|&c, x, y| if c { x.clone() } else { y.clone() }))
}

impl Kernel for Where {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        let cond = operand(args, 0)?;
        let Value::Bool(c) = cond.as_ref() else { return Err(format!("the condition is {}, not bool", cond.dtype())) };
        match (operand(args, 1)?.as_ref(), operand(args, 2)?.as_ref()) {
            (Value::F32(a), Value::F32(b)) => choose(c, a, b).map(Value::F32),
            (Value::F64(a), Value::F64(b)) => choose(c, a, b).map(Value::F64),
            (Value::I32(a), Value::I32(b)) => choose(c, a, b).map(Value::I32),
            (Value::I64(a), Value::I64(b)) => choose(c, a, b).map(Value::I64),
            (Value::Bool(a), Value::Bool(b)) => choose(c, a, b).map(Value::Bool),
            (a, b) => Err(format!("branches of dtypes {} and {} differ", a.dtype(), b.dtype())),
        }
    }
}
