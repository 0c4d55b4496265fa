//! Shape ops: copies, `Flatten`, `Reshape`, `Permute`, `Concat`, `Slice`, `Pad`.

use ndarray::{ArrayD, Axis, IxDyn};
use nnbundle_graph::{NodeAttrs, normalize_axis};

use super::Scratch;
use super::{Kernel, KernelResult};
use crate::value::{Arg, Value};

/// Applies `f` to the operand's typed array, whatever its dtype.
macro_rules! any_dtype {
    ($arg:expr, $a:ident => $body:expr) => {
        match $arg {
            Arg::Value(Value::F32($a)) => Value::F32($body),
            Arg::Value(Value::F64($a)) => Value::F64($body),
            Arg::Value(Value::I32($a)) => Value::I32($body),
            Arg::Value(Value::I64($a)) => Value::I64($body),
            Arg::Value(Value::Bool($a)) => Value::Bool($body),
            Arg::Weight(t) => {
                let v = Value::from_tensor(t).map_err(|e| e.to_string())?;
                match &v {
                    Value::F32($a) => Value::F32($body),
                    Value::F64($a) => Value::F64($body),
                    Value::I32($a) => Value::I32($body),
                    Value::I64($a) => Value::I64($body),
                    Value::Bool($a) => Value::Bool($body),
                }
            }
        }
    };
}

fn reshape<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
    a.as_standard_layout().into_owned().into_shape_with_order(IxDyn(shape)).map_err(|e| e.to_string())
}

/// An owned value with a new shape of as many elements: no copy when it is
/// in standard layout (as kernels produce them).
fn reshape_owned(v: Value, shape: &[usize]) -> KernelResult {
    fn one<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
        if a.is_standard_layout() {
            a.into_shape_with_order(IxDyn(shape)).map_err(|e| e.to_string())
        } else {
            reshape(&a, shape)
        }
    }
    Ok(match v {
        Value::F32(a) => Value::F32(one(a, shape)?),
        Value::F64(a) => Value::F64(one(a, shape)?),
        Value::I32(a) => Value::I32(one(a, shape)?),
        Value::I64(a) => Value::I64(one(a, shape)?),
        Value::Bool(a) => Value::Bool(one(a, shape)?),
    })
}

/// `Dropout` and `Identity`.
pub(crate) struct Passthrough;

impl Kernel for Passthrough {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        Ok(any_dtype!(args[0], a => a.clone()))
    }

    fn run_owned(&self, x: Value, _: &Scratch) -> KernelResult {
        Ok(x)
    }
}

pub(crate) struct Flatten {
    start: i64,
    end: i64,
}

impl Flatten {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Flatten { start: a.int("start_dim"), end: a.int("end_dim") }
    }
}

impl Flatten {
    /// The output shape for an input of shape `dims`.
    fn target(&self, dims: &[usize]) -> Result<Vec<usize>, String> {
        let r = dims.len().max(1);
        let (s, e) = (normalize_axis(self.start, r).ok_or("start_dim")?, normalize_axis(self.end, r).ok_or("end_dim")?);
        Ok(if dims.is_empty() {
            vec![1]
        } else {
            let mut v = dims[..s].to_vec();
            v.push(dims[s..=e].iter().product());
            v.extend_from_slice(&dims[e + 1..]);
            v
        })
    }
}

impl Kernel for Flatten {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        let shape = self.target(args[0].shape())?;
        Ok(any_dtype!(args[0], a => reshape(a, &shape)?))
    }

    fn run_owned(&self, x: Value, _: &Scratch) -> KernelResult {
        let shape = self.target(x.shape())?;
        reshape_owned(x, &shape)
    }
}

pub(crate) struct Reshape {
    shape: Vec<i64>,
    zero_copies_input: bool,
}

impl Reshape {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Reshape { shape: a.ints("shape").to_vec(), zero_copies_input: a.bool("zero_copies_input") }
    }
}

impl Reshape {
    /// The output shape for an input of shape `input`.
    fn target(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let total: usize = input.iter().product();
        // Sizes, with copied dims resolved and the -1 still open.
        let sizes: Vec<Option<usize>> = self
            .shape
            .iter()
            .enumerate()
            .map(|(i, &d)| match d {
                -1 => Ok(None),
                0 if self.zero_copies_input => {
                    input.get(i).copied().map(Some).ok_or(format!("cannot copy dimension {i} of {input:?}"))
                }
                d => Ok(Some(d as usize)),
            })
            .collect::<Result<_, String>>()?;
        let known: usize = sizes.iter().flatten().product();
        let shape: Vec<usize> =
            sizes.iter().map(|d| d.unwrap_or_else(|| total.checked_div(known).unwrap_or(0))).collect();
        if shape.iter().product::<usize>() != total {
            return Err(format!("cannot reshape {input:?} ({total} elements) to {:?}", self.shape));
        }
        Ok(shape)
    }
}

impl Kernel for Reshape {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        let shape = self.target(args[0].shape())?;
        Ok(any_dtype!(args[0], a => reshape(a, &shape)?))
    }

    fn run_owned(&self, x: Value, _: &Scratch) -> KernelResult {
        let shape = self.target(x.shape())?;
        reshape_owned(x, &shape)
    }
}

pub(crate) struct Permute {
    dims: Vec<i64>,
}

impl Permute {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Permute { dims: a.ints("dims").to_vec() }
    }
}

impl Kernel for Permute {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        let r = args[0].shape().len();
        let axes: Vec<usize> =
            self.dims.iter().map(|&d| normalize_axis(d, r).ok_or("dims out of range")).collect::<Result<_, _>>()?;
        let mut seen = vec![false; r];
        if axes.len() != r || axes.iter().any(|&a| std::mem::replace(&mut seen[a], true)) {
            return Err(format!("dims {:?} are not a permutation of {r} dimensions", self.dims));
        }
        Ok(any_dtype!(args[0], a => permuted(a, &axes)?))
    }
}

/// `a` with its axes permuted (output axis i is input axis `axes[i]`), in
/// standard layout.
fn permuted<T: Copy>(a: &ArrayD<T>, axes: &[usize]) -> Result<ArrayD<T>, String> {
    let shape: Vec<usize> = axes.iter().map(|&d| a.shape()[d]).collect();
    let data = match a.as_slice() {
        Some(x) => permute_copy(x, a.shape(), axes),
        None => return Ok(a.view().permuted_axes(IxDyn(axes)).as_standard_layout().into_owned()),
    };
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| e.to_string())
}

/// The elements of a standard-layout array `x` of `shape` in the order of
/// its permutation by `axes`: trailing output axes that stay contiguous in
/// the input (a channel shuffle's planes, attention heads' rows) are copied
/// as blocks, the rest one strided row at a time.
fn permute_copy<T: Copy>(x: &[T], shape: &[usize], axes: &[usize]) -> Vec<T> {
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let mut input_strides = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        input_strides[d] = input_strides[d + 1] * shape[d + 1];
    }
    let sizes: Vec<usize> = axes.iter().map(|&d| shape[d]).collect();
    let strides: Vec<usize> = axes.iter().map(|&d| input_strides[d]).collect();
    // Trailing output axes read contiguously: one block of `block` elements.
    let (mut block, mut k) = (1, sizes.len());
    while k > 0 && strides[k - 1] == block {
        block *= sizes[k - 1];
        k -= 1;
    }
    // The innermost remaining axis, read with its stride, one row per step.
    let (row, step) = if block == 1 && k > 0 {
        k -= 1;
        (sizes[k], strides[k])
    } else {
        (1, 0)
    };
    let mut index = vec![0; k];
    let mut at = 0;
    loop {
        if block > 1 {
            out.extend_from_slice(&x[at..at + block]);
        } else {
            out.extend((0..row).map(|i| x[at + i * step]));
        }
        // The next index over the outer axes, last fastest.
        let mut d = k;
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            index[d] += 1;
            at += strides[d];
            if index[d] < sizes[d] {
                break;
            }
            at -= strides[d] * sizes[d];
            index[d] = 0;
        }
    }
}

pub(crate) struct Concat {
    dim: i64,
}

impl Concat {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Concat { dim: a.int("dim") }
    }
}

fn concat<T: Copy + crate::value::Scalar>(args: &[Arg<'_>], axis: usize) -> Result<ArrayD<T>, String> {
    let views: Vec<_> = (0..args.len()).map(|i| super::view::<T>(args, i)).collect::<Result<_, _>>()?;
    let first = views.first().ok_or("no operands")?;
    let same_elsewhere = |v: &ndarray::ArrayViewD<'_, T>| {
        v.ndim() == first.ndim()
            && v.shape().iter().zip(first.shape()).enumerate().all(|(d, (a, b))| d == axis || a == b)
    };
    if !views.iter().all(|v| v.is_standard_layout() && same_elsewhere(v)) {
        return ndarray::concatenate(Axis(axis), &views).map_err(|e| e.to_string());
    }
    // Standard layout: for each index before `axis`, each operand adds one
    // contiguous block (its slab from `axis` on), in operand order.
    let outer: usize = first.shape()[..axis].iter().product();
    let blocks: Vec<&[T]> = views.iter().map(|v| v.as_slice().expect("standard layout")).collect();
    let widths: Vec<usize> = blocks.iter().map(|b| b.len().checked_div(outer).unwrap_or(0)).collect();
    let mut data = Vec::with_capacity(blocks.iter().map(|b| b.len()).sum());
    for o in 0..outer {
        for (block, &width) in blocks.iter().zip(&widths) {
            data.extend_from_slice(&block[o * width..][..width]);
        }
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = views.iter().map(|v| v.shape()[axis]).sum();
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| e.to_string())
}

impl Kernel for Concat {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        let r = args[0].shape().len();
        let axis = normalize_axis(self.dim, r).ok_or("dim out of range")?;
        Ok(match args[0].dtype() {
            nnbundle_format::DType::F32 => Value::F32(concat(args, axis)?),
            nnbundle_format::DType::F64 => Value::F64(concat(args, axis)?),
            nnbundle_format::DType::I32 => Value::I32(concat(args, axis)?),
            nnbundle_format::DType::I64 => Value::I64(concat(args, axis)?),
            nnbundle_format::DType::Bool => Value::Bool(concat(args, axis)?),
            other => return Err(format!("Concat does not run on {other}")),
        })
    }
}

pub(crate) struct Slice {
    starts: Vec<i64>,
    ends: Vec<i64>,
    dims: Vec<i64>,
    steps: Vec<i64>,
}

impl Slice {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        let (dims, steps) = nnbundle_graph::slice_dims_steps(a.raw());
        Slice { starts: a.ints("starts").to_vec(), ends: a.ints("ends").to_vec(), dims, steps }
    }

    /// ndarray's slice of each dimension of an input of `shape`.
    fn ranges(&self, shape: &[usize]) -> Result<Vec<ndarray::Slice>, String> {
        let mut out: Vec<ndarray::Slice> = shape.iter().map(|_| ndarray::Slice::from(..)).collect();
        for (k, &d) in self.dims.iter().enumerate() {
            let axis = normalize_axis(d, shape.len()).ok_or("dims out of range")?;
            let (first, step, count) =
                nnbundle_graph::slice_range(shape[axis] as u64, self.starts[k], self.ends[k], self.steps[k]);
            let count = count as isize;
            let (first, step) = (first as isize, step as isize);
            // ndarray takes `lo..hi` and, for a negative step, walks it from the end.
            let last = first + (count - 1) * step;
            out[axis] = match count {
                0 => ndarray::Slice::new(0, Some(0), 1),
                _ if step > 0 => ndarray::Slice::new(first, Some(last + 1), step),
                _ => ndarray::Slice::new(last, Some(first + 1), step),
            };
        }
        Ok(out)
    }
}

impl Kernel for Slice {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        let ranges = self.ranges(args[0].shape())?;
        Ok(any_dtype!(args[0], a => a.slice_each_axis(|ax| ranges[ax.axis.index()]).as_standard_layout().into_owned()))
    }
}

/// What `Pad` adds outside the input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PadMode {
    Constant,
    Reflect,
    Replicate,
    Circular,
}

pub(crate) struct Pad {
    padding: Vec<usize>,
    mode: PadMode,
    value: f64,
}

impl Pad {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        let mode = match a.str("mode") {
            "reflect" => PadMode::Reflect,
            "replicate" => PadMode::Replicate,
            "circular" => PadMode::Circular,
            _ => PadMode::Constant,
        };
        let padding = a.ints("padding").iter().map(|&p| usize::try_from(p).unwrap_or(0)).collect();
        Pad { padding, mode, value: a.float("value") }
    }

    /// For each output index along a dimension of length `n`, the input index it reads (`None`: the constant).
    fn axis_map(&self, n: usize, before: usize, after: usize) -> Result<Vec<Option<usize>>, String> {
        if before + after > 0 && n == 0 && self.mode != PadMode::Constant {
            return Err("Pad: an empty dimension has no edge to reflect or replicate".into());
        }
        if self.mode == PadMode::Reflect && (before >= n || after >= n) && before + after > 0 {
            return Err(format!("Pad: reflecting {before} and {after} elements needs them below the size {n}"));
        }
        let last = n as i64 - 1;
        Ok((0..before + n + after)
            .map(|o| {
                let i = o as i64 - before as i64;
                match self.mode {
                    _ if (0..=last).contains(&i) => Some(i as usize),
                    PadMode::Constant => None,
                    PadMode::Replicate => Some(i.clamp(0, last) as usize),
                    PadMode::Circular => Some(i.rem_euclid(last + 1) as usize),
                    PadMode::Reflect => Some(if i < 0 { -i } else { 2 * last - i } as usize),
                }
            })
            .collect())
    }

    fn pad<T: Clone>(&self, a: &ArrayD<T>, fill: T) -> Result<ArrayD<T>, String> {
        let rank = a.ndim();
        if self.padding.len() != 2 * rank {
            return Err(format!("Pad: `padding` has {} values for an input of rank {rank}", self.padding.len()));
        }
        let maps: Vec<Vec<Option<usize>>> = (0..rank)
            .map(|d| self.axis_map(a.shape()[d], self.padding[d], self.padding[rank + d]))
            .collect::<Result<_, _>>()?;
        gather_by_axes(a, &maps, fill)
    }
}

/// The array whose element at `[i0, i1, ...]` is `a[maps[0][i0], maps[1][i1], ...]`,
/// or `fill` where a map gives `None` (`Pad`'s constant) — one output row at a time.
fn gather_by_axes<T: Clone>(a: &ArrayD<T>, maps: &[Vec<Option<usize>>], fill: T) -> Result<ArrayD<T>, String> {
    let a = a.as_standard_layout();
    let (shape, rank) = (a.shape(), a.ndim());
    let out_shape: Vec<usize> = maps.iter().map(Vec::len).collect();
    let total: usize = out_shape.iter().product();
    let Some((row, lead)) = maps.split_last().filter(|_| total > 0) else {
        return ArrayD::from_shape_vec(IxDyn(&out_shape), vec![fill; total]).map_err(|e| e.to_string());
    };
    let src = a.as_slice().ok_or("input not contiguous")?;
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let mut out = Vec::with_capacity(total);
    let mut index = vec![0usize; lead.len()];
    for _ in 0..total / row.len() {
        let base = index.iter().enumerate().try_fold(0, |acc, (d, &i)| maps[d][i].map(|j| acc + j * strides[d]));
        match base {
            None => out.extend(std::iter::repeat_n(fill.clone(), row.len())),
            Some(b) => out.extend(row.iter().map(|m| m.map_or_else(|| fill.clone(), |j| src[b + j].clone()))),
        }
        for d in (0..lead.len()).rev() {
            index[d] += 1;
            if index[d] < out_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())
}

/// `Tile`: index `j` of each output dimension reads `j mod n`.
pub(crate) struct Tile {
    repeats: Vec<usize>,
}

impl Tile {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Tile { repeats: a.ints("repeats").iter().map(|&r| usize::try_from(r).unwrap_or(0)).collect() }
    }

    fn tile<T: Clone>(&self, a: &ArrayD<T>) -> Result<ArrayD<T>, String> {
        if self.repeats.len() != a.ndim() {
            return Err(format!("Tile: {} repeats for an input of rank {}", self.repeats.len(), a.ndim()));
        }
        let maps: Vec<Vec<Option<usize>>> =
            a.shape().iter().zip(&self.repeats).map(|(&n, &r)| (0..n * r).map(|j| Some(j % n)).collect()).collect();
        match a.first() {
            Some(first) => gather_by_axes(a, &maps, first.clone()),
            None => Ok(ArrayD::from_shape_vec(IxDyn(&maps.iter().map(Vec::len).collect::<Vec<_>>()), vec![])
                .map_err(|e| e.to_string())?),
        }
    }
}

impl Kernel for Tile {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        Ok(any_dtype!(args[0], a => self.tile(a)?))
    }
}

/// `Pad`'s `value` as an element of each dtype (a cast).
trait Fill {
    fn fill(v: f64) -> Self;
}

impl Fill for f32 {
    fn fill(v: f64) -> Self {
        v as f32
    }
}

impl Fill for f64 {
    fn fill(v: f64) -> Self {
        v
    }
}

impl Fill for i32 {
    fn fill(v: f64) -> Self {
        v as i32
    }
}

impl Fill for i64 {
    fn fill(v: f64) -> Self {
        v as i64
    }
}

impl Fill for bool {
    fn fill(v: f64) -> Self {
        v != 0.0
    }
}

impl Kernel for Pad {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        Ok(any_dtype!(args[0], a => self.pad(a, Fill::fill(self.value))?))
    }
}

/// `Expand`: the input broadcast to its sizes (-1 keeping the input's).
pub(crate) struct Expand {
    sizes: Vec<i64>,
}

impl Expand {
    pub(crate) fn new(a: NodeAttrs<'_>) -> Self {
        Expand { sizes: a.ints("sizes").to_vec() }
    }

    fn shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let lead = self.sizes.len().checked_sub(input.len()).ok_or("Expand: fewer sizes than input dimensions")?;
        self.sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| match (i.checked_sub(lead).map(|k| input[k]), s) {
                (Some(d), -1) => Ok(d),
                (_, s) => usize::try_from(s).map_err(|_| format!("Expand: size {s} at dimension {i}")),
            })
            .collect()
    }

    fn expand<T: Clone>(&self, a: &ArrayD<T>) -> Result<ArrayD<T>, String> {
        let shape = self.shape(a.shape())?;
        let view = a
            .broadcast(IxDyn(&shape))
            .ok_or_else(|| format!("Expand: {:?} does not broadcast to {shape:?}", a.shape()))?;
        Ok(view.as_standard_layout().into_owned())
    }
}

impl Kernel for Expand {
    fn run(&self, args: &[Arg<'_>], _: &Scratch) -> KernelResult {
        Ok(any_dtype!(args[0], a => self.expand(a)?))
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use super::{Kernel, Permute, Scratch, permuted};
    use crate::value::{Arg, Value};

    /// Dims that repeat an axis are an error naming them, not a panic.
    #[test]
    fn dims_that_are_not_a_permutation_are_an_error() {
        let x = Value::F32(ArrayD::zeros(IxDyn(&[2, 3])));
        let err = Permute { dims: vec![0, 0] }.run(&[Arg::Value(&x)], &Scratch::default()).unwrap_err();
        assert_eq!(err, "dims [0, 0] are not a permutation of 2 dimensions");
    }

    /// Every permutation of rank 1 to 4 shapes (with unit and empty axes)
    /// gives ndarray's elements in ndarray's order.
    #[test]
    fn permutations_match_ndarray() {
        fn all(rank: usize) -> Vec<Vec<usize>> {
            if rank == 0 {
                return vec![vec![]];
            }
            let mut out = Vec::new();
            for p in all(rank - 1) {
                for at in 0..=p.len() {
                    let mut q = p.clone();
                    q.insert(at, rank - 1);
                    out.push(q);
                }
            }
            out
        }
        for shape in [vec![5], vec![3, 4], vec![2, 3, 4], vec![2, 1, 3, 5], vec![2, 3, 2, 4], vec![3, 0, 2]] {
            let n: usize = shape.iter().product();
            let a = ArrayD::from_shape_vec(IxDyn(&shape), (0..n as i64).collect()).unwrap();
            for axes in all(shape.len()) {
                let want = a.view().permuted_axes(IxDyn(&axes)).as_standard_layout().into_owned();
                assert_eq!(permuted(&a, &axes).unwrap(), want, "{shape:?} by {axes:?}");
            }
        }
    }
}
