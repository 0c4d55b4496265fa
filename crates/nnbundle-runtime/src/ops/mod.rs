//! The op kernels, one file per op family (the graph crate's `ops` names),
//! and the registry that builds each node's kernel: the only file that
//! names every op. What the kernels share is in `common`; the linear
//! algebra under them is in `crate::linalg`.

mod activation;
mod attention;
mod common;
mod conv;
mod elementwise;
mod index;
mod linear;
mod matmul;
mod norm;
mod pool;
mod recurrent;
mod reduce;
mod shape;

use nnbundle_graph::{Node, OpKind};

pub(crate) use crate::linalg::scratch::Scratch;
pub(crate) use common::*;
pub(crate) use norm::{BatchNormParams, fold_into_conv};

/// Whether the runtime implements `op`.
pub fn supports(op: OpKind) -> bool {
    build_kernel(&Node { name: String::new(), op, inputs: Vec::new(), attrs: Default::default() }).is_some()
}

/// The kernel for a checked node; `None` for an op this runtime does not implement.
pub(crate) fn build_kernel(node: &Node) -> Option<Box<dyn Kernel>> {
    let a = node.checked_attrs();
    Some(match node.op {
        OpKind::Linear => Box::new(linear::Linear::new(a)),
        OpKind::Conv1d => Box::new(conv::Conv::new(a, 1)),
        OpKind::Conv2d => Box::new(conv::Conv::new(a, 2)),
        OpKind::MaxPool1d => Box::new(pool::Pool::new(a, 1, pool::Kind::Max)),
        OpKind::MaxPool2d => Box::new(pool::Pool::new(a, 2, pool::Kind::Max)),
        OpKind::AvgPool1d => Box::new(pool::Pool::new(a, 1, pool::Kind::Avg)),
        OpKind::AvgPool2d => Box::new(pool::Pool::new(a, 2, pool::Kind::Avg)),
        OpKind::AdaptiveAvgPool2d => Box::new(pool::AdaptiveAvg::new(a)),
        OpKind::BatchNorm1d | OpKind::BatchNorm2d => Box::new(norm::BatchNorm::new(a)),
        OpKind::LayerNorm => Box::new(norm::LayerNorm::new(a)),
        OpKind::GroupNorm => Box::new(norm::GroupNorm::new(a, false)),
        OpKind::InstanceNorm1d | OpKind::InstanceNorm2d => Box::new(norm::GroupNorm::new(a, true)),
        OpKind::Embedding => Box::new(index::Embedding),
        OpKind::Gather => Box::new(index::Gather::new(a)),
        OpKind::Dropout | OpKind::Identity => Box::new(shape::Passthrough),
        OpKind::Flatten => Box::new(shape::Flatten::new(a)),
        OpKind::Reshape => Box::new(shape::Reshape::new(a)),
        OpKind::Permute => Box::new(shape::Permute::new(a)),
        OpKind::Concat => Box::new(shape::Concat::new(a)),
        OpKind::Add => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Add)),
        OpKind::Sub => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Sub)),
        OpKind::Mul => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Mul)),
        OpKind::Div => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Div)),
        OpKind::MatMul => Box::new(matmul::MatMul),
        OpKind::ReLU => Box::new(activation::Unary::relu()),
        OpKind::LeakyReLU => Box::new(activation::Unary::leaky_relu(a)),
        OpKind::GELU => Box::new(activation::Unary::gelu(a)),
        OpKind::SiLU => Box::new(activation::Unary::silu()),
        OpKind::Sigmoid => Box::new(activation::Unary::sigmoid()),
        OpKind::Tanh => Box::new(activation::Unary::tanh()),
        OpKind::Softmax => Box::new(activation::Softmax::new(a, false)),
        OpKind::LogSoftmax => Box::new(activation::Softmax::new(a, true)),
        OpKind::MultiheadAttention => Box::new(attention::MultiheadAttention::new(a)),
        OpKind::Hardtanh => Box::new(activation::Unary::hardtanh(a)),
        OpKind::Hardsigmoid => Box::new(activation::Unary::hardsigmoid(a)),
        OpKind::Hardswish => Box::new(activation::Unary::hardswish()),
        OpKind::Exp => Box::new(activation::Unary::exp()),
        OpKind::Log => Box::new(activation::Unary::log()),
        OpKind::Sqrt => Box::new(activation::Unary::sqrt()),
        OpKind::Erf => Box::new(activation::Unary::erf()),
        OpKind::Neg => Box::new(activation::Unary::neg()),
        OpKind::Abs => Box::new(activation::Unary::abs()),
        OpKind::Reciprocal => Box::new(activation::Unary::reciprocal()),
        OpKind::Pow => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Pow)),
        OpKind::LocalResponseNorm => Box::new(norm::LocalResponseNorm::new(a)),
        OpKind::ReduceMean => Box::new(reduce::Reduce::new(a, reduce::How::Mean)),
        OpKind::ReduceSum => Box::new(reduce::Reduce::new(a, reduce::How::Sum)),
        OpKind::ReduceMax => Box::new(reduce::Reduce::new(a, reduce::How::Max)),
        OpKind::Slice => Box::new(shape::Slice::new(a)),
        OpKind::Pad => Box::new(shape::Pad::new(a)),
        OpKind::Cast => Box::new(elementwise::Cast::new(a)),
        OpKind::ELU => Box::new(activation::Unary::elu(a)),
        OpKind::SELU => Box::new(activation::Unary::selu()),
        OpKind::Softplus => Box::new(activation::Unary::softplus(a)),
        OpKind::PReLU => Box::new(activation::PRelu),
        OpKind::Maximum => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Max)),
        OpKind::Minimum => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Min)),
        OpKind::Tile => Box::new(shape::Tile::new(a)),
        OpKind::Floor => Box::new(activation::Unary::floor()),
        OpKind::Fmod => Box::new(elementwise::Binary::new(elementwise::BinaryOp::Fmod)),
        OpKind::Expand => Box::new(shape::Expand::new(a)),
        OpKind::Where => Box::new(elementwise::Where),
        OpKind::Equal => Box::new(elementwise::Comparison(elementwise::Compare::Equal)),
        OpKind::Less => Box::new(elementwise::Comparison(elementwise::Compare::Less)),
        OpKind::Greater => Box::new(elementwise::Comparison(elementwise::Compare::Greater)),
        OpKind::LSTM => Box::new(recurrent::Recurrent::new(a, recurrent::Cell::Lstm)),
        OpKind::GRU => Box::new(recurrent::Recurrent::new(a, recurrent::Cell::Gru)),
        OpKind::Upsample => Box::new(pool::Upsample::new(a)),
        OpKind::ConvTranspose1d => Box::new(conv::ConvTranspose::new(a, 1)),
        OpKind::ConvTranspose2d => Box::new(conv::ConvTranspose::new(a, 2)),
        _ => return None,
    })
}
