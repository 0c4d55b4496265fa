//! PyTorch's default initialisation of each op's parameters, from a seeded generator.

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{Node, OpKind, Parameter};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::error::{Result, RuntimeError};

/// How one parameter starts.
enum Scheme {
    /// U(-bound, bound).
    UniformInit(f64),
    /// N(0, 1).
    NormalInit,
    /// A constant.
    Constant(f64),
}

use Scheme::{Constant, NormalInit, UniformInit};

fn scheme(node: &Node, p: &Parameter) -> Option<Scheme> {
    let a = node.checked_attrs();
    let fan_in = |shape: &[u64]| shape.iter().skip(1).product::<u64>().max(1) as f64;
    let shape = p.shape.clone().unwrap_or_default();
    Some(match (node.op, p.slot) {
        // kaiming_uniform(a = sqrt 5) for weights and U(±1/sqrt(fan_in)) for biases: both bound 1/sqrt(fan_in).
        (OpKind::Linear, "weight") => UniformInit(1.0 / fan_in(&shape).sqrt()),
        (OpKind::Linear, "bias") => UniformInit(1.0 / (a.int("in_features").max(1) as f64).sqrt()),
        (OpKind::Conv1d | OpKind::Conv2d, "weight") => UniformInit(1.0 / fan_in(&shape).sqrt()),
        (OpKind::Conv1d | OpKind::Conv2d, "bias") => {
            let k: i64 = a.ints("kernel_size").iter().product();
            UniformInit(1.0 / ((a.int("in_channels") / a.int("groups").max(1) * k).max(1) as f64).sqrt())
        }
        // PyTorch's fan-in of a transposed weight [in, out/groups, k...] is out/groups * prod(k), for both.
        (OpKind::ConvTranspose1d | OpKind::ConvTranspose2d, "weight") => UniformInit(1.0 / fan_in(&shape).sqrt()),
        (OpKind::ConvTranspose1d | OpKind::ConvTranspose2d, "bias") => {
            let k: i64 = a.ints("kernel_size").iter().product();
            UniformInit(1.0 / ((a.int("out_channels") / a.int("groups").max(1) * k).max(1) as f64).sqrt())
        }
        (OpKind::BatchNorm1d | OpKind::BatchNorm2d | OpKind::LayerNorm | OpKind::GroupNorm, "weight") => Constant(1.0),
        (OpKind::BatchNorm1d | OpKind::BatchNorm2d | OpKind::LayerNorm | OpKind::GroupNorm, "bias") => Constant(0.0),
        (OpKind::InstanceNorm1d | OpKind::InstanceNorm2d, "weight") => Constant(1.0),
        // nn.PReLU's init: every slope 0.25.
        (OpKind::PReLU, "weight") => Constant(0.25),
        (OpKind::InstanceNorm1d | OpKind::InstanceNorm2d, "bias") => Constant(0.0),
        (OpKind::BatchNorm1d | OpKind::BatchNorm2d, "running_mean" | "num_batches_tracked") => Constant(0.0),
        (OpKind::BatchNorm1d | OpKind::BatchNorm2d, "running_var") => Constant(1.0),
        (OpKind::Embedding, "weight") => NormalInit,
        (OpKind::MultiheadAttention, "in_proj_weight") => {
            // xavier_uniform over [3E, E].
            let e = a.int("embed_dim") as f64;
            UniformInit((6.0 / (e + 3.0 * e)).sqrt())
        }
        (OpKind::MultiheadAttention, "out_proj.weight") => UniformInit(1.0 / (a.int("embed_dim").max(1) as f64).sqrt()),
        (OpKind::MultiheadAttention, "in_proj_bias" | "out_proj.bias") => Constant(0.0),
        // PyTorch's RNNBase.reset_parameters: every weight and bias U(-1/sqrt(H), 1/sqrt(H)).
        (OpKind::LSTM | OpKind::GRU, "weight_ih" | "weight_hh" | "bias_ih" | "bias_hh") => {
            UniformInit(1.0 / (a.int("hidden_size").max(1) as f64).sqrt())
        }
        _ => return None,
    })
}

/// A freshly initialised parameter of dtype `dtype` (f32 or f64; i64 for counters).
pub(crate) fn init_parameter(node: &Node, p: &Parameter, dtype: DType, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let scheme = scheme(node, p).ok_or_else(|| RuntimeError::Init {
        parameter: p.name.clone(),
        reason: "has no default initialisation; give it with set_weight".into(),
    })?;
    let shape: Vec<usize> = p.shape.clone().unwrap_or_default().iter().map(|&d| d as usize).collect();
    let n: usize = shape.iter().product();
    if p.slot == "num_batches_tracked" {
        return Ok(Tensor::scalar(0i64));
    }
    let values: Vec<f64> = match scheme {
        UniformInit(bound) => {
            let dist = Uniform::new_inclusive(-bound, bound).map_err(|e| init_error(p, e))?;
            (0..n).map(|_| dist.sample(rng)).collect()
        }
        NormalInit => {
            let dist = Normal::new(0.0, 1.0).map_err(|e| init_error(p, e))?;
            (0..n).map(|_| dist.sample(rng)).collect()
        }
        Constant(c) => vec![c; n],
    };
    let tensor = match dtype {
        DType::F64 => Tensor::from_vec(shape, values),
        _ => Tensor::from_vec(shape, values.into_iter().map(|v| v as f32).collect::<Vec<f32>>()),
    };
    tensor.map_err(|e| init_error(p, e))
}

fn init_error(p: &Parameter, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Init { parameter: p.name.clone(), reason: reason.to_string() }
}
