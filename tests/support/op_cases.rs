//! The op cases shared by `tests/ops_numpy.rs` (numpy and onnxruntime
//! references) and `tests/registry.rs` (every op covered, save → load → run).
#![allow(dead_code)] // Each test binary uses its own part.

use nnbundle::graph::{AttrValue, OpKind};
use nnbundle::{DType, Layer, Model, ModelBuilder, Tensor, Value};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy)]
pub enum Gen {
    Float,
    /// Floats in [-8, 8): past the bends of the hard activations.
    Wide,
    Positive,
    /// Mostly false, never true in a whole last-axis row.
    Mask,
    Index(i64, i64),
}

pub struct Case {
    pub name: &'static str,
    pub op: OpKind,
    pub attrs: Vec<(&'static str, AttrValue)>,
    pub data: Vec<(Vec<usize>, Gen)>,
    /// Parameters whose shape the attributes do not imply.
    pub params: Vec<(&'static str, Vec<usize>, Gen)>,
    pub dtype: DType,
    /// An absolute tolerance wider than the default, for long sums.
    pub atol: Option<f64>,
}

fn case(name: &'static str, op: OpKind, attrs: Vec<(&'static str, AttrValue)>, shapes: &[&[usize]]) -> Case {
    Case {
        name,
        op,
        attrs,
        data: shapes.iter().map(|s| (s.to_vec(), Gen::Float)).collect(),
        params: Vec::new(),
        dtype: DType::F32,
        atol: None,
    }
}

impl Case {
    fn f64(mut self) -> Self {
        self.dtype = DType::F64;
        self
    }
    fn param(mut self, slot: &'static str, shape: &[usize], kind: Gen) -> Self {
        self.params.push((slot, shape.to_vec(), kind));
        self
    }
    fn atol(mut self, atol: f64) -> Self {
        self.atol = Some(atol);
        self
    }
    fn data_gen(mut self, i: usize, kind: Gen) -> Self {
        self.data[i].1 = kind;
        self
    }
}

macro_rules! attrs {
    ($($k:literal : $v:expr),* $(,)?) => { vec![$(($k, AttrValue::from($v))),*] };
}

pub fn cases() -> Vec<Case> {
    use OpKind::*;
    vec![
        case("linear", Linear, attrs! {"in_features": 5, "out_features": 4}, &[&[3, 5]]),
        case("linear_3d_no_bias", Linear, attrs! {"in_features": 5, "out_features": 4, "bias": false}, &[&[2, 3, 5]]),
        case("linear_f64", Linear, attrs! {"in_features": 6, "out_features": 3}, &[&[2, 6]]).f64(),
        // Shapes that take the runtime's matrix-vector and packed-GEMM paths.
        case("linear_matvec", Linear, attrs! {"in_features": 70, "out_features": 5}, &[&[3, 70]]),
        case("linear_packed", Linear, attrs! {"in_features": 70, "out_features": 13}, &[&[2, 5, 70]]),
        case(
            "conv2d_long_rows",
            Conv2d,
            attrs! {"in_channels": 3, "out_channels": 7, "kernel_size": 3, "padding": 1},
            &[&[2, 3, 5, 37]],
        ),
        case(
            "conv1d_long",
            Conv1d,
            attrs! {"in_channels": 2, "out_channels": 3, "kernel_size": 5, "padding": 2},
            &[&[1, 2, 40]],
        ),
        case(
            "conv2d_pointwise",
            Conv2d,
            attrs! {"in_channels": 5, "out_channels": 4, "kernel_size": 1},
            &[&[2, 5, 6, 7]],
        ),
        case("conv1d", Conv1d, attrs! {"in_channels": 3, "out_channels": 4, "kernel_size": 3}, &[&[2, 3, 10]]),
        case(
            "conv1d_stride_pad_dilation",
            Conv1d,
            attrs! {"in_channels": 3, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2},
            &[&[2, 3, 11]],
        ),
        case(
            "conv1d_groups",
            Conv1d,
            attrs! {"in_channels": 4, "out_channels": 6, "kernel_size": 2, "groups": 2},
            &[&[1, 4, 7]],
        ),
        case(
            "conv1d_same_even_kernel",
            Conv1d,
            attrs! {"in_channels": 2, "out_channels": 2, "kernel_size": 4, "padding": "same"},
            &[&[1, 2, 9]],
        ),
        case(
            "conv1d_valid",
            Conv1d,
            attrs! {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "padding": "valid", "bias": false},
            &[&[2, 2, 6]],
        ),
        case(
            "conv2d",
            Conv2d,
            attrs! {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1},
            &[&[2, 3, 8, 8]],
        ),
        // A 5x5 window over 3 rows of 50: the last panel of the product runs into the
        // padding columns of the last row, past the output's end (a panic once).
        case(
            "conv2d_last_panel_in_padding",
            Conv2d,
            attrs! {"in_channels": 2, "out_channels": 3, "kernel_size": 5, "padding": 2},
            &[&[1, 2, 3, 50]],
        ),
        case(
            "conv2d_stride_pad_dilation",
            Conv2d,
            attrs! {"in_channels": 2, "out_channels": 3, "kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 2], "dilation": [2, 1]},
            &[&[1, 2, 9, 7]],
        ),
        case(
            "conv2d_groups",
            Conv2d,
            attrs! {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2},
            &[&[1, 4, 6, 5]],
        ),
        case(
            "conv2d_depthwise",
            Conv2d,
            attrs! {"in_channels": 3, "out_channels": 3, "kernel_size": 3, "groups": 3, "padding": 1},
            &[&[2, 3, 5, 5]],
        ),
        case(
            "conv2d_depthwise_strided_dilated",
            Conv2d,
            attrs! {"in_channels": 4, "out_channels": 4, "kernel_size": [3, 5], "groups": 4, "stride": [2, 3], "padding": [2, 1], "dilation": [2, 1]},
            &[&[2, 4, 9, 11]],
        ),
        case(
            "conv2d_same_even_kernel",
            Conv2d,
            attrs! {"in_channels": 2, "out_channels": 2, "kernel_size": 4, "padding": "same", "dilation": 2},
            &[&[1, 2, 9, 8]],
        ),
        case(
            "conv2d_f64_no_bias",
            Conv2d,
            attrs! {"in_channels": 2, "out_channels": 2, "kernel_size": 2, "bias": false},
            &[&[1, 2, 4, 4]],
        )
        .f64(),
        case("maxpool1d", MaxPool1d, attrs! {"kernel_size": 3, "stride": 2, "padding": 1}, &[&[2, 3, 10]]),
        case(
            "maxpool1d_ceil_dilation",
            MaxPool1d,
            attrs! {"kernel_size": 2, "stride": 2, "dilation": 2, "ceil_mode": true},
            &[&[1, 2, 10]],
        ),
        case("maxpool2d", MaxPool2d, attrs! {"kernel_size": 2}, &[&[2, 3, 8, 8]]),
        case(
            "maxpool2d_pad_ceil",
            MaxPool2d,
            attrs! {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true},
            &[&[1, 2, 8, 7]],
        ),
        case(
            "maxpool2d_dilation",
            MaxPool2d,
            attrs! {"kernel_size": [2, 3], "stride": [1, 2], "dilation": [2, 1]},
            &[&[1, 1, 7, 9]],
        ),
        case("avgpool1d_include_pad", AvgPool1d, attrs! {"kernel_size": 3, "stride": 2, "padding": 1}, &[&[2, 2, 9]]),
        case(
            "avgpool1d_exclude_pad_ceil",
            AvgPool1d,
            attrs! {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": false, "ceil_mode": true},
            &[&[1, 2, 10]],
        ),
        case("avgpool2d", AvgPool2d, attrs! {"kernel_size": 2}, &[&[2, 3, 6, 6]]),
        case(
            "avgpool2d_ceil_include_pad",
            AvgPool2d,
            attrs! {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true},
            &[&[1, 2, 6, 7]],
        ),
        case(
            "avgpool2d_ceil_exclude_pad",
            AvgPool2d,
            attrs! {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": true, "count_include_pad": false},
            &[&[1, 2, 6, 7]],
        ),
        case(
            "avgpool2d_ceil_no_pad",
            AvgPool2d,
            attrs! {"kernel_size": 2, "stride": 2, "ceil_mode": true},
            &[&[1, 1, 5, 5]],
        ),
        case(
            "maxpool2d_asymmetric_pads",
            MaxPool2d,
            attrs! {"kernel_size": 3, "stride": 2, "padding": vec![0i64, 1, 2, 0]},
            &[&[1, 2, 7, 6]],
        ),
        case(
            "avgpool2d_asymmetric_pads_exclude",
            AvgPool2d,
            attrs! {"kernel_size": 2, "stride": 1, "padding": vec![1i64, 0, 0, 1], "count_include_pad": false},
            &[&[1, 1, 5, 5]],
        ),
        case(
            "avgpool2d_dilation_ceil",
            AvgPool2d,
            attrs! {"kernel_size": 2, "dilation": 2, "stride": 1, "ceil_mode": true},
            &[&[1, 1, 5, 5]],
        ),
        case("avgpool2d_wide_pads_include", AvgPool2d, attrs! {"kernel_size": 3, "padding": 2}, &[&[1, 2, 6, 6]]),
        // 3x3, unit strides, 32+ channels: the runtime's Winograd path, with
        // tile rows that cross the GEMM's panels and odd output sizes. Each
        // output sums about 300 terms of magnitude up to 4: one unit in the
        // last place of their total is 3e-5, so the default atol (1e-5)
        // would test the summation order, not the result.
        case(
            "conv2d_winograd",
            Conv2d,
            attrs! {"in_channels": 32, "out_channels": 33, "kernel_size": 3, "padding": 1},
            &[&[2, 32, 9, 37]],
        )
        .atol(1e-4),
        case(
            "conv2d_winograd_asymmetric_pads",
            Conv2d,
            attrs! {"in_channels": 34, "out_channels": 32, "kernel_size": 3, "padding": vec![2i64, 0, 0, 1]},
            &[&[1, 34, 7, 40]],
        )
        .atol(1e-4),
        case(
            "conv2d_asymmetric_pads",
            Conv2d,
            attrs! {"in_channels": 1, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": vec![1i64, 0, 0, 1]},
            &[&[1, 1, 7, 6]],
        ),
        case("adaptiveavgpool2d", AdaptiveAvgPool2d, attrs! {"output_size": [3, 2]}, &[&[1, 2, 7, 5]]),
        case("adaptiveavgpool2d_global", AdaptiveAvgPool2d, attrs! {"output_size": 1}, &[&[2, 3, 4, 4]]),
        case("batchnorm1d_2d", BatchNorm1d, attrs! {"num_features": 3}, &[&[4, 3]]),
        case("batchnorm1d_3d_no_affine", BatchNorm1d, attrs! {"num_features": 3, "affine": false}, &[&[2, 3, 5]]),
        case("batchnorm2d", BatchNorm2d, attrs! {"num_features": 3, "eps": 0.001}, &[&[2, 3, 4, 4]]),
        case("layernorm", LayerNorm, attrs! {"normalized_shape": [4]}, &[&[2, 3, 4]]),
        case("layernorm_2_dims", LayerNorm, attrs! {"normalized_shape": [3, 4], "eps": 0.01}, &[&[2, 3, 4]]),
        case(
            "layernorm_no_affine",
            LayerNorm,
            attrs! {"normalized_shape": [5], "elementwise_affine": false},
            &[&[3, 5]],
        ),
        case("layernorm_no_bias_f64", LayerNorm, attrs! {"normalized_shape": [5], "bias": false}, &[&[3, 5]]).f64(),
        case("embedding", Embedding, attrs! {"num_embeddings": 10, "embedding_dim": 4}, &[&[2, 3]])
            .data_gen(0, Gen::Index(0, 10)),
        case("gather_axis0", Gather, attrs! {"axis": 0}, &[&[4, 5]]).param("indices", &[3], Gen::Index(-4, 4)),
        case("gather_last_axis_2d_indices", Gather, attrs! {"axis": -1}, &[&[2, 3, 5]]).param(
            "indices",
            &[2, 2],
            Gen::Index(-5, 5),
        ),
        case("gather_indices_as_input", Gather, attrs! {"axis": 1}, &[&[3, 4], &[5]]).data_gen(1, Gen::Index(0, 4)),
        case("dropout", Dropout, attrs! {"p": 0.3}, &[&[3, 4]]),
        case("identity", Identity, attrs! {}, &[&[2, 2]]),
        case("flatten", Flatten, attrs! {}, &[&[2, 3, 4, 5]]),
        case("flatten_start0_end_minus2", Flatten, attrs! {"start_dim": 0, "end_dim": -2}, &[&[2, 3, 4]]),
        case("flatten_negative", Flatten, attrs! {"start_dim": -2, "end_dim": -1}, &[&[2, 3, 4]]),
        case("reshape_infer", Reshape, attrs! {"shape": vec![4i64, -1]}, &[&[2, 3, 4]]),
        case("reshape", Reshape, attrs! {"shape": vec![6i64, 2, 2]}, &[&[2, 3, 4]]),
        case(
            "reshape_zero_copies",
            Reshape,
            attrs! {"shape": vec![0i64, 0, 2, -1], "zero_copies_input": true},
            &[&[2, 3, 4]],
        ),
        case("permute", Permute, attrs! {"dims": vec![2i64, 0, 1]}, &[&[2, 3, 4]]),
        case("permute_negative", Permute, attrs! {"dims": vec![-1i64, 0, 1]}, &[&[2, 3, 4]]),
        case("concat_dim1", Concat, attrs! {"dim": 1}, &[&[2, 3], &[2, 5]]),
        case("concat_negative_3_inputs", Concat, attrs! {"dim": -1}, &[&[2, 2, 1], &[2, 2, 3], &[2, 2, 2]]),
        case("add", Add, attrs! {}, &[&[3, 4], &[3, 4]]),
        case("add_broadcast", Add, attrs! {}, &[&[2, 3, 4], &[4]]),
        case("add_broadcast_both", Add, attrs! {}, &[&[2, 1, 4], &[3, 1]]),
        case("add_weight", Add, attrs! {}, &[&[2, 3, 4]]).param("other", &[3, 4], Gen::Float),
        case("sub_broadcast", Sub, attrs! {}, &[&[4, 1], &[1, 5]]),
        case("mul_broadcast", Mul, attrs! {}, &[&[2, 3, 4], &[3, 1]]),
        case("div", Div, attrs! {}, &[&[3, 4], &[3, 4]]).data_gen(1, Gen::Positive),
        case("div_weight_f64", Div, attrs! {}, &[&[2, 3]]).param("other", &[3], Gen::Positive).f64(),
        case("matmul", MatMul, attrs! {}, &[&[3, 4], &[4, 5]]),
        case("matmul_batched", MatMul, attrs! {}, &[&[2, 3, 4], &[4, 5]]),
        case("matmul_vector_left", MatMul, attrs! {}, &[&[4], &[4, 5]]),
        case("matmul_vector_right", MatMul, attrs! {}, &[&[3, 4], &[4]]),
        case("matmul_broadcast_batch", MatMul, attrs! {}, &[&[2, 1, 3, 4], &[5, 4, 2]]),
        case("matmul_weight", MatMul, attrs! {}, &[&[2, 3]]).param("other", &[3, 4], Gen::Float),
        case("relu", ReLU, attrs! {}, &[&[3, 4]]),
        case("leakyrelu", LeakyReLU, attrs! {"negative_slope": 0.2}, &[&[3, 4]]),
        case("gelu_exact", GELU, attrs! {}, &[&[3, 4]]),
        case("gelu_tanh", GELU, attrs! {"approximate": "tanh"}, &[&[3, 4]]),
        case("gelu_exact_f64", GELU, attrs! {}, &[&[3, 4]]).f64(),
        case("silu", SiLU, attrs! {}, &[&[3, 4]]),
        case("sigmoid", Sigmoid, attrs! {}, &[&[3, 4]]),
        case("tanh", Tanh, attrs! {}, &[&[3, 4]]),
        case("local_response_norm", LocalResponseNorm, attrs! {"size": 3}, &[&[2, 5, 3, 4]]),
        case(
            "local_response_norm_even_window",
            LocalResponseNorm,
            attrs! {"size": 4, "alpha": 0.01, "beta": 0.5, "k": 2.0},
            &[&[1, 6, 5]],
        ),
        case("local_response_norm_f64", LocalResponseNorm, attrs! {"size": 5}, &[&[1, 3, 2, 2]]).f64(),
        case("reduce_mean_last_keepdim", ReduceMean, attrs! {"dims": [-1], "keepdim": true}, &[&[2, 3, 4]]),
        case("reduce_mean_two_dims", ReduceMean, attrs! {"dims": [0, 2]}, &[&[2, 3, 4]]),
        case("reduce_mean_all_f64", ReduceMean, attrs! {}, &[&[3, 4]]).f64(),
        case("reduce_sum_spatial", ReduceSum, attrs! {"dims": [2, 3], "keepdim": true}, &[&[1, 3, 4, 5]]),
        case("reduce_sum_all", ReduceSum, attrs! {}, &[&[2, 5]]),
        case("reduce_max_dim1", ReduceMax, attrs! {"dims": [1]}, &[&[2, 6, 3]]),
        case(
            "slice_two_dims",
            Slice,
            attrs! {"starts": [1, 0], "ends": [3, 5], "dims": [0, 2], "steps": [1, 2]},
            &[&[4, 3, 6]],
        ),
        case(
            "slice_negative_bounds_and_step",
            Slice,
            attrs! {"starts": [-1], "ends": [-1000], "dims": [-1], "steps": [-2]},
            &[&[2, 7]],
        ),
        case("slice_clamped_end", Slice, attrs! {"starts": [2], "ends": [i64::MAX]}, &[&[5, 3]]),
        case("slice_empty", Slice, attrs! {"starts": [3], "ends": [1], "dims": [1]}, &[&[2, 4]]),
        case("pad_constant_4d", Pad, attrs! {"padding": [0, 0, 1, 2, 0, 0, 3, 0], "value": 1.5}, &[&[1, 2, 3, 4]]),
        case("pad_reflect_1d", Pad, attrs! {"padding": [0, 0, 3, 0, 0, 2], "mode": "reflect"}, &[&[2, 1, 5]]),
        case("pad_replicate_2d_f64", Pad, attrs! {"padding": [0, 0, 2, 1, 0, 0, 1, 3], "mode": "replicate"}, &[&[1, 2, 3, 2]])
            .f64(),
        case("pad_circular_3d", Pad, attrs! {"padding": [0, 1, 2, 0, 2, 1], "mode": "circular"}, &[&[2, 3, 4]]),
        case("upsample_nearest_2x", Upsample, attrs! {"size": [6, 8]}, &[&[1, 2, 3, 4]]),
        case(
            "upsample_nearest_half_pixel_round",
            Upsample,
            attrs! {"size": [5, 7], "coordinate_mode": "half_pixel", "nearest_mode": "round_prefer_floor"},
            &[&[2, 1, 3, 4]],
        ),
        case(
            "upsample_linear_half_pixel",
            Upsample,
            attrs! {"size": [7, 5], "mode": "linear", "coordinate_mode": "half_pixel"},
            &[&[1, 2, 3, 4]],
        ),
        case(
            "upsample_linear_align_corners",
            Upsample,
            attrs! {"size": [5, 9], "mode": "linear", "coordinate_mode": "align_corners"},
            &[&[1, 1, 3, 4]],
        ),
        case(
            "upsample_linear_pytorch_1d",
            Upsample,
            attrs! {"size": [9], "mode": "linear", "coordinate_mode": "pytorch_half_pixel"},
            &[&[1, 2, 4]],
        ),
        case(
            "upsample_linear_pytorch_1d_f64",
            Upsample,
            attrs! {"size": [9], "mode": "linear", "coordinate_mode": "pytorch_half_pixel"},
            &[&[1, 2, 4]],
        )
        .f64(),
        case(
            "conv_transpose2d_stride2",
            ConvTranspose2d,
            attrs! {"in_channels": 3, "out_channels": 4, "kernel_size": 2, "stride": 2},
            &[&[1, 3, 3, 4]],
        ),
        case(
            "conv_transpose2d_pad_outpad_groups",
            ConvTranspose2d,
            attrs! {"in_channels": 4, "out_channels": 6, "kernel_size": [3, 2], "stride": [2, 3], "padding": [1, 0, 0, 1], "output_padding": [1, 0], "groups": 2},
            &[&[2, 4, 3, 3]],
        ),
        case(
            "conv_transpose2d_dilation_no_bias",
            ConvTranspose2d,
            attrs! {"in_channels": 2, "out_channels": 2, "kernel_size": 3, "dilation": 2, "bias": false},
            &[&[1, 2, 4, 3]],
        ),
        case(
            "conv_transpose1d",
            ConvTranspose1d,
            attrs! {"in_channels": 3, "out_channels": 2, "kernel_size": 4, "stride": 3, "padding": 1},
            &[&[2, 3, 5]],
        ),
        case(
            "conv_transpose1d_f64",
            ConvTranspose1d,
            attrs! {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "output_padding": 1},
            &[&[1, 2, 4]],
        )
        .f64(),
        // Opset 2: elementwise functions.
        case("hardtanh", Hardtanh, attrs! {"min_val": -0.5, "max_val": 0.7}, &[&[3, 4]]),
        case("hardtanh_relu6", Hardtanh, attrs! {"min_val": 0.0, "max_val": 6.0}, &[&[4, 5]]).data_gen(0, Gen::Wide),
        case("hardsigmoid", Hardsigmoid, attrs! {}, &[&[4, 5]]).data_gen(0, Gen::Wide),
        case("hardsigmoid_onnx_default", Hardsigmoid, attrs! {"alpha": 0.2, "beta": 0.5}, &[&[4, 5]])
            .data_gen(0, Gen::Wide),
        case("hardswish", Hardswish, attrs! {}, &[&[4, 5]]).data_gen(0, Gen::Wide),
        case("hardswish_f64", Hardswish, attrs! {}, &[&[4, 5]]).data_gen(0, Gen::Wide).f64(),
        case("exp", Exp, attrs! {}, &[&[3, 4]]),
        case("log", Log, attrs! {}, &[&[3, 4]]).data_gen(0, Gen::Positive),
        case("sqrt", Sqrt, attrs! {}, &[&[3, 4]]).data_gen(0, Gen::Positive),
        case("sqrt_f64", Sqrt, attrs! {}, &[&[3, 4]]).data_gen(0, Gen::Positive).f64(),
        case("erf", Erf, attrs! {}, &[&[3, 4]]),
        case("neg", Neg, attrs! {}, &[&[3, 4]]),
        case("abs", Abs, attrs! {}, &[&[3, 4]]),
        case("reciprocal", Reciprocal, attrs! {}, &[&[3, 4]]).data_gen(0, Gen::Positive),
        case("pow_weight_exponent", Pow, attrs! {}, &[&[3, 4]]).data_gen(0, Gen::Positive).param(
            "other",
            &[4],
            Gen::Float,
        ),
        case("pow_value_exponent", Pow, attrs! {}, &[&[2, 3, 4], &[3, 1]]).data_gen(0, Gen::Positive),
        case("softmax_dim1", Softmax, attrs! {"dim": 1}, &[&[3, 4, 5]]),
        case("softmax_negative", Softmax, attrs! {"dim": -1}, &[&[3, 4, 5]]),
        case("softmax_dim0", Softmax, attrs! {"dim": 0}, &[&[3, 4]]),
        case("logsoftmax", LogSoftmax, attrs! {"dim": -1}, &[&[3, 5]]),
        case("logsoftmax_dim0_f64", LogSoftmax, attrs! {"dim": 0}, &[&[4, 3]]).f64(),
        case(
            "mha_self",
            MultiheadAttention,
            attrs! {"embed_dim": 8, "num_heads": 2},
            &[&[4, 2, 8], &[4, 2, 8], &[4, 2, 8]],
        ),
        case(
            "mha_batch_first_cross",
            MultiheadAttention,
            attrs! {"embed_dim": 6, "num_heads": 3, "batch_first": true},
            &[&[2, 3, 6], &[2, 5, 6], &[2, 5, 6]],
        ),
        case(
            "mha_float_mask",
            MultiheadAttention,
            attrs! {"embed_dim": 4, "num_heads": 1},
            &[&[3, 2, 4], &[5, 2, 4], &[5, 2, 4], &[3, 5]],
        ),
        case(
            "mha_bool_mask_per_head",
            MultiheadAttention,
            attrs! {"embed_dim": 4, "num_heads": 2, "batch_first": true},
            &[&[2, 3, 4], &[2, 3, 4], &[2, 3, 4], &[4, 3, 3]],
        )
        .data_gen(3, Gen::Mask),
        case(
            "mha_no_bias_f64",
            MultiheadAttention,
            attrs! {"embed_dim": 4, "num_heads": 2, "bias": false},
            &[&[3, 1, 4], &[3, 1, 4], &[3, 1, 4]],
        )
        .f64(),
        case("cast_f32_to_i64", Cast, attrs! {"dtype": "i64"}, &[&[3, 4]]).data_gen(0, Gen::Wide),
        case("cast_i64_to_f32", Cast, attrs! {"dtype": "f32"}, &[&[5]]).data_gen(0, Gen::Index(-1000, 1000)),
        case("cast_bool_to_f64", Cast, attrs! {"dtype": "f64"}, &[&[2, 3]]).data_gen(0, Gen::Mask),
        case("cast_f64_to_f32_and_bool", Cast, attrs! {"dtype": "bool"}, &[&[4, 2]]).f64(),
        case("cast_i64_to_i32", Cast, attrs! {"dtype": "i32"}, &[&[6]]).data_gen(0, Gen::Index(-50, 50)),
        case("where_values", Where, attrs! {}, &[&[3, 4], &[3, 4], &[4]]).data_gen(0, Gen::Mask),
        case("where_weight_other_broadcast", Where, attrs! {}, &[&[2, 1, 3], &[4, 1]])
            .data_gen(0, Gen::Mask)
            .param("other", &[3], Gen::Float),
        case("where_i64", Where, attrs! {}, &[&[5], &[5], &[5]])
            .data_gen(0, Gen::Mask)
            .data_gen(1, Gen::Index(-9, 9))
            .data_gen(2, Gen::Index(-9, 9)),
        case("equal_i64_broadcast", Equal, attrs! {}, &[&[4, 3], &[3]])
            .data_gen(0, Gen::Index(0, 3))
            .data_gen(1, Gen::Index(0, 3)),
        case("equal_f32_weight", Equal, attrs! {}, &[&[6]]).param("other", &[6], Gen::Float),
        case("less_f32", Less, attrs! {}, &[&[3, 4], &[3, 4]]),
        case("less_i64_weight", Less, attrs! {}, &[&[2, 5]]).data_gen(0, Gen::Index(-3, 3)).param("other", &[1], Gen::Index(-1, 1)),
        case("greater_f64_broadcast", Greater, attrs! {}, &[&[2, 3, 1], &[4]]).f64(),
        case("group_norm", GroupNorm, attrs! {"num_groups": 2, "num_channels": 6}, &[&[2, 6, 3, 4]]),
        case("group_norm_1d_no_affine_f64", GroupNorm, attrs! {"num_groups": 3, "num_channels": 3, "affine": false}, &[&[2, 3, 5]])
            .f64(),
        case("group_norm_2d_input", GroupNorm, attrs! {"num_groups": 1, "num_channels": 4, "eps": 1e-3}, &[&[3, 4]]),
        case("instance_norm1d", InstanceNorm1d, attrs! {"num_features": 3}, &[&[2, 3, 7]]),
        case("instance_norm2d_affine", InstanceNorm2d, attrs! {"num_features": 4, "affine": true}, &[&[1, 4, 3, 5]]),
        case("elu", ELU, attrs! {"alpha": 0.7}, &[&[3, 5]]).data_gen(0, Gen::Wide),
        case("selu_f64", SELU, attrs! {}, &[&[4, 3]]).f64().data_gen(0, Gen::Wide),
        case("softplus", Softplus, attrs! {}, &[&[2, 6]]).data_gen(0, Gen::Wide),
        case("softplus_beta", Softplus, attrs! {"beta": 2.0}, &[&[3, 4]]).data_gen(0, Gen::Wide),
        case("softplus_threshold", Softplus, attrs! {"threshold": 1.0}, &[&[3, 4]]).data_gen(0, Gen::Wide),
        case("prelu_one_slope", PReLU, attrs! {}, &[&[2, 3, 4]]),
        case("prelu_per_channel", PReLU, attrs! {"num_parameters": 3}, &[&[2, 3, 2, 2]]),
        case("prelu_per_channel_2d_f64", PReLU, attrs! {"num_parameters": 4}, &[&[3, 4]]).f64(),
        case("maximum_broadcast", Maximum, attrs! {}, &[&[3, 4], &[4]]),
        case("minimum_weight", Minimum, attrs! {}, &[&[2, 3]]).param("other", &[2, 3], Gen::Float),
        case("expand", Expand, attrs! {"sizes": [2, 3, -1, 4]}, &[&[3, 2, 1]]),
        case("expand_keep_all_bool", Expand, attrs! {"sizes": [-1, 5]}, &[&[2, 1]]).data_gen(0, Gen::Mask),
        case("add_i64_broadcast", Add, attrs! {}, &[&[3, 4], &[4]])
            .data_gen(0, Gen::Index(-100, 100))
            .data_gen(1, Gen::Index(-100, 100)),
        case("sub_i64_weight", Sub, attrs! {}, &[&[5]]).data_gen(0, Gen::Index(-9, 9)).param("other", &[5], Gen::Index(-9, 9)),
        case("mul_i64_wraps", Mul, attrs! {}, &[&[4], &[4]])
            .data_gen(0, Gen::Index(i64::MAX - 3, i64::MAX))
            .data_gen(1, Gen::Index(2, 5)),
        case("floor", Floor, attrs! {}, &[&[3, 4]]).data_gen(0, Gen::Wide),
        case("fmod_broadcast", Fmod, attrs! {}, &[&[3, 4], &[4]]).data_gen(0, Gen::Wide).data_gen(1, Gen::Positive),
        case("fmod_weight_f64", Fmod, attrs! {}, &[&[5]]).f64().data_gen(0, Gen::Wide).param("other", &[1], Gen::Positive),
        case("tile", Tile, attrs! {"repeats": [2, 1, 3]}, &[&[2, 3, 2]]),
        case("tile_i64", Tile, attrs! {"repeats": [3, 2]}, &[&[2, 2]]).data_gen(0, Gen::Index(0, 9)),
        case("lstm", LSTM, attrs! {"input_size": 3, "hidden_size": 4}, &[&[5, 2, 3]]),
        case(
            "lstm_bidirectional_states",
            LSTM,
            attrs! {"input_size": 3, "hidden_size": 4, "bidirectional": true},
            &[&[4, 2, 3], &[2, 2, 4], &[2, 2, 4]],
        ),
        case(
            "lstm_h_n_with_h_0",
            LSTM,
            attrs! {"input_size": 2, "hidden_size": 3, "returns": "h_n"},
            &[&[3, 2, 2], &[1, 2, 3]],
        ),
        case(
            "lstm_c_n_batch_first_no_bias_f64",
            LSTM,
            attrs! {"input_size": 3, "hidden_size": 2, "batch_first": true, "bias": false, "bidirectional": true, "returns": "c_n"},
            &[&[2, 5, 3]],
        )
        .f64(),
        case("gru", GRU, attrs! {"input_size": 3, "hidden_size": 4}, &[&[5, 2, 3]]),
        case(
            "gru_bidirectional_h_n",
            GRU,
            attrs! {"input_size": 3, "hidden_size": 4, "bidirectional": true, "returns": "h_n"},
            &[&[4, 2, 3], &[2, 2, 4]],
        ),
        case(
            "gru_reset_before_states",
            GRU,
            attrs! {"input_size": 3, "hidden_size": 2, "reset_after": false, "bidirectional": true},
            &[&[4, 2, 3], &[2, 2, 2]],
        ),
        case(
            "gru_batch_first_f64",
            GRU,
            attrs! {"input_size": 2, "hidden_size": 3, "batch_first": true},
            &[&[2, 4, 2]],
        )
        .f64(),
    ]
}

pub fn random(shape: &[usize], kind: Gen, dtype: DType, rng: &mut ChaCha8Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let floats =
        |rng: &mut ChaCha8Rng, lo: f64, hi: f64| -> Vec<f64> { (0..n).map(|_| rng.random_range(lo..hi)).collect() };
    let float = |v: Vec<f64>| match dtype {
        DType::F64 => Tensor::from_vec(shape.to_vec(), v).unwrap(),
        _ => Tensor::from_vec(shape.to_vec(), v.into_iter().map(|x| x as f32).collect::<Vec<f32>>()).unwrap(),
    };
    match kind {
        Gen::Float => float(floats(rng, -2.0, 2.0)),
        Gen::Wide => float(floats(rng, -8.0, 8.0)),
        Gen::Positive => float(floats(rng, 0.5, 2.0)),
        Gen::Index(lo, hi) => {
            Tensor::from_vec(shape.to_vec(), (0..n).map(|_| rng.random_range(lo..hi)).collect::<Vec<i64>>()).unwrap()
        }
        Gen::Mask => {
            let last = *shape.last().unwrap();
            let v: Vec<bool> = (0..n).map(|i| i % last != 0 && rng.random_bool(0.4)).collect();
            Tensor::from_vec(shape.to_vec(), v).unwrap()
        }
    }
}

/// A case built into a one-node model with random operands and parameters.
pub struct Built {
    /// The model (its node is named `node`).
    pub model: Model,
    /// The data operands by input name (`in0`, `in1`, ...).
    pub inputs: Vec<(String, Value)>,
    /// The same operands as tensors, in order.
    pub operands: Vec<Tensor>,
}

/// Builds `case`, drawing operands and parameters from `rng`.
pub fn build(case: &Case, rng: &mut ChaCha8Rng) -> Built {
    let mut b = ModelBuilder::new();
    let mut inputs = Vec::new();
    let mut operands = Vec::new();
    let mut names = Vec::new();
    for (i, (shape, kind)) in case.data.iter().enumerate() {
        let t = random(shape, *kind, case.dtype, rng);
        let name = format!("in{i}");
        let dims: Vec<_> = shape.iter().map(|&d| (d as u64).into()).collect();
        b.input(&name, t.dtype(), &dims);
        names.push(name.clone());
        inputs.push((name, Value::from_tensor(&t).unwrap()));
        operands.push(t);
    }
    let mut layer = Layer::new(case.op);
    for (k, v) in &case.attrs {
        layer = layer.attr(k, v.clone());
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    b.add("node", layer, &refs);
    for (slot, shape, kind) in &case.params {
        b.set_weight(&format!("node.{slot}"), random(shape, *kind, case.dtype, rng));
    }
    // Parameters the attributes imply get random values too (not the default init).
    let probe = b.clone().build(&["node"], 0).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    for p in probe.graph().parameters() {
        if p.required && !case.params.iter().any(|(s, ..)| *s == p.slot) {
            let shape: Vec<usize> = p.shape.clone().unwrap().iter().map(|&d| d as usize).collect();
            let kind = if p.slot == "running_var" { Gen::Positive } else { Gen::Float };
            b.set_weight(&p.name, random(&shape, kind, case.dtype, rng));
        }
    }
    Built { model: b.build(&["node"], 0).unwrap(), inputs, operands }
}

/// The generator every test draws its cases' values from.
pub fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(2024)
}
