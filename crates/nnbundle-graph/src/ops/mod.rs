//! The op vocabulary: every op's definition, one file per family, the list
//! of ops (`vocabulary!` below: the one place that names every op), and the
//! shape helpers the definitions share.
//!
//! # Adding an op
//!
//! Every step but the first two is checked by `tests/registry.rs` (which
//! needs no Python) or by the drift test of `tests/schemas.rs`:
//!
//! 1. its `OpDef` (name, summary, attributes, slots, shape rule) in
//!    `crates/nnbundle-graph/src/ops/<family>.rs`;
//! 2. one line in `vocabulary!` below (the opset's order: append);
//! 3. its kernel in `crates/nnbundle-runtime/src/ops/<family>.rs` and one
//!    arm of `build_kernel` in `crates/nnbundle-runtime/src/ops/mod.rs`
//!    (and, for an op with parameters, its PyTorch initialisation in
//!    `crates/nnbundle-runtime/src/init.rs`);
//! 4. its ONNX export rule in `crates/nnbundle-onnx/src/export/<family>.rs`
//!    (full, or partial with the reason);
//! 5. its ONNX import translator in `crates/nnbundle-onnx/src/import/<family>.rs`,
//!    or an entry in `IMPORT_GAPS` (`import/table.rs`) saying why none;
//! 6. a case in `tests/support/op_cases.rs` and its numpy reference in
//!    `tests/python/ops_reference.py` (the save → load → run cycle then
//!    covers it too);
//! 7. `NNB_UPDATE_SCHEMAS=1 cargo test --test schemas` to regenerate
//!    `spec/OPS.md` and the schemas, and a `### Format` line in `CHANGELOG.md`.

pub(crate) mod activation;
pub(crate) mod attention;
pub mod conv;
pub mod elementwise;
pub(crate) mod index;
pub(crate) mod linear;
pub(crate) mod matmul;
pub(crate) mod norm;
pub mod pool;
pub(crate) mod recurrent;
pub(crate) mod reduce;
pub mod shape;

use nnbundle_format::DType;

use crate::attr::Attrs;
use std::fmt;

use crate::op::OpDef;
use crate::value::{Dim, Shape, ValueInfo};

/// Value `i` of a list attribute, 1 when absent (only checked attributes reach the
/// shape rules, so this never hides a problem; it keeps malformed input from panicking).
pub(crate) fn nth(a: &Attrs, name: &str, i: usize) -> i64 {
    a.ints(name).get(i).copied().unwrap_or(1)
}

/// Problems for integer attributes below 1.
pub(crate) fn at_least_one(a: &Attrs, names: &[&'static str]) -> Vec<(&'static str, String)> {
    names.iter().filter(|n| a.int(n) < 1).map(|&n| (n, format!("must be at least 1, found {}", a.int(n)))).collect()
}

/// Problems for integer-list attributes with a value below 1.
pub(crate) fn all_at_least_one(a: &Attrs, names: &[&'static str]) -> Vec<(&'static str, String)> {
    names
        .iter()
        .filter(|n| a.ints(n).iter().any(|&v| v < 1))
        .map(|&n| (n, format!("every value must be at least 1, found {:?}", a.ints(n))))
        .collect()
}

/// Fails unless the value is f32 or f64.
pub(crate) fn require_float(op: &str, v: &ValueInfo) -> Result<(), String> {
    if matches!(v.dtype, DType::F32 | DType::F64) {
        Ok(())
    } else {
        Err(format!("{op} computes in f32 or f64, input is {}", v.dtype))
    }
}

/// Fails unless the value has one of `ranks`.
pub(crate) fn require_rank(op: &str, v: &ValueInfo, ranks: &[usize], layout: &str) -> Result<(), String> {
    if ranks.contains(&v.shape.rank()) {
        Ok(())
    } else {
        Err(format!("{op} expects input {layout}, input has {}", v.shape))
    }
}

/// Fails unless `dim` can equal `want`.
pub(crate) fn require_dim(op: &str, what: &str, dim: &Dim, want: u64, shape: &Shape) -> Result<(), String> {
    if dim.compatible(&Dim::Fixed(want)) {
        Ok(())
    } else {
        Err(format!("{op} expects {what} {want}, input has {shape}"))
    }
}

/// numpy broadcasting of two shapes.
pub(crate) fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, String> {
    let rank = a.rank().max(b.rank());
    let pad = |s: &Shape, i: usize| -> Dim {
        let offset = rank - s.rank();
        if i < offset { Dim::Fixed(1) } else { s.0[i - offset].clone() }
    };
    (0..rank)
        .map(|i| match (pad(a, i), pad(b, i)) {
            (Dim::Fixed(1), d) | (d, Dim::Fixed(1)) => Ok(d),
            (x, y) if x.same_as(&y) => Ok(x),
            (Dim::Fixed(x), Dim::Fixed(y)) => {
                Err(format!("shapes {a} and {b} do not broadcast (dimension {i}: {x} vs {y})"))
            }
            (Dim::Fixed(_), d) | (d, Dim::Fixed(_)) => Ok(d),
            _ => Ok(Dim::Unknown),
        })
        .collect::<Result<_, _>>()
        .map(Shape)
}

/// One spatial dimension of a sliding window (convolution or pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel size.
    pub kernel: i64,
    /// Step between windows.
    pub stride: i64,
    /// Padding before the first element.
    pub pad_begin: i64,
    /// Padding after the last element.
    pub pad_end: i64,
    /// Spacing between kernel taps.
    pub dilation: i64,
    /// Round the output length up instead of down.
    pub ceil_mode: bool,
}

impl Window {
    /// Extent of one window, dilation included.
    pub fn span(&self) -> i64 {
        self.dilation * (self.kernel - 1) + 1
    }

    /// Output length for input length `n` (PyTorch's rule):
    /// `floor_or_ceil((n + pads - span) / stride) + 1`, where with `ceil_mode`
    /// a last window that would start in the right padding is dropped.
    /// `None` when the window does not fit in the padded input.
    pub fn out_len(&self, n: i64) -> Option<i64> {
        let room = n + self.pad_begin + self.pad_end - self.span();
        if room < 0 || self.stride < 1 {
            return None;
        }
        let mut out = if self.ceil_mode { (room + self.stride - 1) / self.stride + 1 } else { room / self.stride + 1 };
        if self.ceil_mode && (out - 1) * self.stride >= n + self.pad_begin {
            out -= 1;
        }
        Some(out)
    }

    /// The output dim for input dim `n`, or an error naming the op.
    pub(crate) fn out_dim(&self, op: &str, n: &Dim) -> Result<Dim, String> {
        let Dim::Fixed(n) = n else { return Ok(Dim::Unknown) };
        let len = i64::try_from(*n).map_err(|_| format!("{op}: input dimension {n} is too large"))?;
        self.out_len(len).map(|o| Dim::Fixed(o as u64)).ok_or_else(|| {
            format!(
                "{op}: window of {} (kernel {}, dilation {}) is larger than the padded input {}",
                self.span(),
                self.kernel,
                self.dilation,
                len + self.pad_begin + self.pad_end
            )
        })
    }
}

macro_rules! vocabulary {
    ($(opset $since:literal { $($kind:ident => $module:ident :: $def:ident),* $(,)? })*) => {
        /// Every op of the vocabulary.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum OpKind { $($(
            #[doc = concat!("The `", stringify!($kind), "` op (since opset ", stringify!($since), ").")]
            $kind,
        )*)* }

        impl OpKind {
            /// Every op, in the spec's order (opset 1's first).
            pub const ALL: &'static [OpKind] = &[$($(OpKind::$kind),*),*];

            /// The op's definition.
            pub fn def(self) -> &'static OpDef {
                match self { $($(OpKind::$kind => &$module::$def,)*)* }
            }

            /// The op's family, the file its definition lives in (`conv`,
            /// `norm`, `activation`, ...): for grouping and colouring.
            pub fn family(self) -> &'static str {
                match self { $($(OpKind::$kind => stringify!($module),)*)* }
            }

            /// The first opset whose vocabulary has the op: a graph that uses
            /// it declares that opset or a later one.
            pub fn since(self) -> u32 {
                match self { $($(OpKind::$kind)|* => $since,)* }
            }
        }
    };
}

// The list of ops, by the opset that added them. An opset only ever adds
// ops (or attributes with defaults that keep the old meaning): a graph of
// opset N reads the same under every later opset.
vocabulary! {
    opset 1 {
    Linear => linear::LINEAR,
    Conv1d => conv::CONV1D,
    Conv2d => conv::CONV2D,
    MaxPool1d => pool::MAXPOOL1D,
    MaxPool2d => pool::MAXPOOL2D,
    AvgPool1d => pool::AVGPOOL1D,
    AvgPool2d => pool::AVGPOOL2D,
    AdaptiveAvgPool2d => pool::ADAPTIVEAVGPOOL2D,
    BatchNorm1d => norm::BATCHNORM1D,
    BatchNorm2d => norm::BATCHNORM2D,
    LayerNorm => norm::LAYERNORM,
    Embedding => index::EMBEDDING,
    Gather => index::GATHER,
    Dropout => shape::DROPOUT,
    Flatten => shape::FLATTEN,
    Reshape => shape::RESHAPE,
    Permute => shape::PERMUTE,
    Concat => shape::CONCAT,
    Add => elementwise::ADD,
    Sub => elementwise::SUB,
    Mul => elementwise::MUL,
    Div => elementwise::DIV,
    MatMul => matmul::MATMUL,
    ReLU => activation::RELU,
    LeakyReLU => activation::LEAKYRELU,
    GELU => activation::GELU,
    SiLU => activation::SILU,
    Sigmoid => activation::SIGMOID,
    Tanh => activation::TANH,
    Softmax => activation::SOFTMAX,
    LogSoftmax => activation::LOGSOFTMAX,
    Identity => shape::IDENTITY,
    MultiheadAttention => attention::MULTIHEADATTENTION,
    }
    opset 2 {
    Hardtanh => activation::HARDTANH,
    Hardsigmoid => activation::HARDSIGMOID,
    Hardswish => activation::HARDSWISH,
    Exp => activation::EXP,
    Log => activation::LOG,
    Sqrt => activation::SQRT,
    Erf => activation::ERF,
    Neg => activation::NEG,
    Abs => activation::ABS,
    Reciprocal => activation::RECIPROCAL,
    Pow => elementwise::POW,
    LocalResponseNorm => norm::LOCALRESPONSENORM,
    ReduceMean => reduce::REDUCEMEAN,
    ReduceSum => reduce::REDUCESUM,
    ReduceMax => reduce::REDUCEMAX,
    Slice => shape::SLICE,
    Upsample => pool::UPSAMPLE,
    ConvTranspose1d => conv::CONVTRANSPOSE1D,
    ConvTranspose2d => conv::CONVTRANSPOSE2D,
    Pad => shape::PAD,
    LSTM => recurrent::LSTM,
    GRU => recurrent::GRU,
    Cast => elementwise::CAST,
    Where => elementwise::WHERE,
    Equal => elementwise::EQUAL,
    Less => elementwise::LESS,
    Greater => elementwise::GREATER,
    GroupNorm => norm::GROUPNORM,
    InstanceNorm1d => norm::INSTANCENORM1D,
    InstanceNorm2d => norm::INSTANCENORM2D,
    ELU => activation::ELU,
    SELU => activation::SELU,
    Softplus => activation::SOFTPLUS,
    PReLU => activation::PRELU,
    Maximum => elementwise::MAXIMUM,
    Minimum => elementwise::MINIMUM,
    Tile => shape::TILE,
    Expand => shape::EXPAND,
    Floor => activation::FLOOR,
    Fmod => elementwise::FMOD,
    }
}

impl OpKind {
    /// The op's name in graphs (`Linear`).
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The op named `name` (case-sensitive).
    pub fn from_name(name: &str) -> Option<OpKind> {
        OpKind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
