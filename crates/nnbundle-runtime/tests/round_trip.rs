//! Save then load then run: outputs are bit-identical, for every spec example.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};
use nnbundle_format::DType;
use nnbundle_graph::{Dim, Graph};
use nnbundle_runtime::{Layer, Model, Sequential, Value};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn example(name: &str) -> Graph {
    let path = format!("{}/../../spec/examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    Graph::from_yaml(&std::fs::read(path).unwrap()).unwrap()
}

/// Random inputs for the graph, symbols set to small sizes.
fn inputs(graph: &Graph, rng: &mut ChaCha8Rng) -> Vec<(String, Value)> {
    graph
        .inputs()
        .iter()
        .map(|i| {
            let shape: Vec<usize> = i
                .shape
                .0
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => *n as usize,
                    _ => 3,
                })
                .collect();
            assert_eq!(i.dtype, DType::F32);
            let a = ArrayD::from_shape_fn(IxDyn(&shape), |_| rng.random_range(-1.0f32..1.0));
            (i.name.clone(), Value::F32(a))
        })
        .collect()
}

/// The graph of `yaml` with `outputs` in place of `OUTPUTS` in its output
/// list: the same model with more or fewer of its values kept as outputs.
fn with_outputs(yaml: &str, outputs: &str) -> Graph {
    Graph::from_yaml(yaml.replace("OUTPUTS", outputs).as_bytes()).unwrap()
}

fn bits(v: &Value) -> Vec<u8> {
    v.to_tensor().as_bytes().to_vec()
}

#[test]
fn every_spec_example_round_trips_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mlp", "lenet", "residual_block", "transformer_encoder_layer"] {
        let model = Model::initialized(example(name), BTreeMap::new(), 11).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = inputs(model.graph(), &mut rng);
        let before = model.run(x.clone()).unwrap();
        let path = dir.path().join(format!("{name}.nnb"));
        model.save(&path).unwrap();
        let clone = Model::load(&path).unwrap();
        let after = clone.run(x).unwrap();
        assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
        for (k, v) in &before {
            assert_eq!(bits(v), bits(&after[k]), "{name}: output {k} differs after save/load");
            assert!(v.to_tensor().to_vec::<f32>().unwrap().iter().all(|x| x.is_finite()), "{name}: {k} not finite");
        }
    }
}

#[test]
fn any_batch_size_the_symbols_allow() {
    let model = Model::initialized(example("mlp"), BTreeMap::new(), 1).unwrap();
    for batch in [1, 2, 7] {
        let y = model.forward(ArrayD::<f32>::zeros(IxDyn(&[batch, 20]))).unwrap();
        assert_eq!(y.shape(), [batch, 10]);
    }
}

#[test]
fn inputs_are_checked_and_errors_name_them() {
    let model = Model::initialized(example("mlp"), BTreeMap::new(), 1).unwrap();
    let err = model.forward(ArrayD::<f32>::zeros(IxDyn(&[2, 21]))).unwrap_err().to_string();
    assert_eq!(err, "input `X`: expected f32 [batch, 20], found f32 [2, 21]");
    let err = model.forward(ArrayD::<f64>::zeros(IxDyn(&[2, 20]))).unwrap_err().to_string();
    assert_eq!(err, "input `X`: expected f32 [batch, 20], found f64 [2, 20]");
    let err = model.forward(ArrayD::<f32>::zeros(IxDyn(&[20]))).unwrap_err().to_string();
    assert_eq!(err, "input `X`: expected f32 [batch, 20], found f32 [20]");
    let err = model.run(Vec::<(String, Value)>::new()).unwrap_err().to_string();
    assert_eq!(err, "missing input `X`: expected f32 of shape [batch, 20]");
    let x = Value::F32(ArrayD::zeros(IxDyn(&[1, 20])));
    let err = model.run([("X", x.clone()), ("Y", x)]).unwrap_err().to_string();
    assert_eq!(err, "unknown input `Y` (the graph's inputs are: X)");
}

#[test]
fn symbols_bind_across_inputs() {
    let yaml = br#"
opset: 1
inputs:
  - {name: a, dtype: f32, shape: [batch, 3]}
  - {name: b, dtype: f32, shape: [batch, 3]}
nodes: [{name: s, op: Add, inputs: [a, b]}]
outputs: [s]
"#;
    let model = Model::initialized(Graph::from_yaml(yaml).unwrap(), BTreeMap::new(), 0).unwrap();
    let v = |n: usize| Value::F32(ArrayD::zeros(IxDyn(&[n, 3])));
    let err = model.run([("a", v(2)), ("b", v(4))]).unwrap_err().to_string();
    assert_eq!(err, "input `b`: expected f32 [batch, 3] with batch = 2 (set by input `a`), found f32 [4, 3]");
    assert!(model.run([("a", v(4)), ("b", v(4))]).is_ok());
}

#[test]
fn run_time_errors_name_the_node() {
    let yaml = br#"
opset: 1
inputs: [{name: ids, dtype: i64, shape: [n]}]
sequential: [{name: embed, op: Embedding, attrs: {num_embeddings: 5, embedding_dim: 2}}]
"#;
    let model = Model::initialized(Graph::from_yaml(yaml).unwrap(), BTreeMap::new(), 0).unwrap();
    let ids = Value::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1, 5]).unwrap());
    let err = model.run([("ids", ids)]).unwrap_err().to_string();
    assert_eq!(err, "node `embed` (Embedding): index 5 is out of range [0, 5)");
}

/// Shapes only known at run time that do not broadcast are an error naming
/// the node and both shapes, not a panic.
#[test]
fn arithmetic_on_shapes_that_do_not_broadcast_is_an_error() {
    let yaml = br#"
opset: 1
inputs: [{name: a, dtype: f32, shape: [n]}, {name: b, dtype: f32, shape: [m]}]
nodes: [{name: sum, op: Add, inputs: [a, b]}]
outputs: [sum]
"#;
    let model = Model::initialized(Graph::from_yaml(yaml).unwrap(), BTreeMap::new(), 0).unwrap();
    let value = |n: usize| Value::F32(ArrayD::zeros(IxDyn(&[n])));
    let err = model.run([("a", value(2)), ("b", value(3))]).unwrap_err().to_string();
    assert_eq!(err, "node `sum` (Add): shapes [2] and [3] do not broadcast");
    let ok = model.run([("a", value(2)), ("b", value(1))]).unwrap();
    assert_eq!(ok["sum"].shape(), [2]);
}

#[test]
fn seeded_initialisation_is_reproducible_and_follows_pytorch_bounds() {
    let a = Model::initialized(example("mlp"), BTreeMap::new(), 9).unwrap().state_dict();
    let b = Model::initialized(example("mlp"), BTreeMap::new(), 9).unwrap().state_dict();
    let c = Model::initialized(example("mlp"), BTreeMap::new(), 10).unwrap().state_dict();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // nn.Linear(20, 256): weight and bias in U(-1/sqrt(20), 1/sqrt(20)).
    let bound = 1.0 / 20f32.sqrt();
    let w = a["hidden.weight"].to_vec::<f32>().unwrap();
    assert!(w.iter().all(|v| v.abs() <= bound));
    assert!(w.iter().any(|v| v.abs() > 0.9 * bound), "values spread over the range");
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    assert!(mean.abs() < 0.02, "mean {mean}");
}

/// Max pooling propagates NaN as PyTorch does: a window holding a NaN gives
/// NaN, the others their maximum (hand-computed).
#[test]
fn max_pool_propagates_nan() {
    let model = Sequential::new("x", DType::F32, &[1u64.into(), 1u64.into(), 2u64.into(), 4u64.into()])
        .add("pool", Layer::new(nnbundle_graph::OpKind::MaxPool2d).attr("kernel_size", 2i64))
        .build(0)
        .unwrap();
    let x = ndarray::arr2(&[[1.0f32, f32::NAN, -3.0, 5.0], [2.0, 0.5, -4.0, -1.0]]).into_shape_with_order((1, 1, 2, 4));
    let x = x.unwrap().into_dyn();
    let Value::F32(y) = model.forward(x.clone()).unwrap() else { panic!("f32 output") };
    let y: Vec<f32> = y.iter().copied().collect();
    assert!(y[0].is_nan(), "{y:?}");
    assert_eq!(y[1], 5.0);
    // The general path (3x3 windows, stride 1, padding 1): every window
    // reaching column 1 is NaN; the last column's windows hold 5 at most.
    let model = Sequential::new("x", DType::F32, &[1u64.into(), 1u64.into(), 2u64.into(), 4u64.into()])
        .add(
            "pool",
            Layer::new(nnbundle_graph::OpKind::MaxPool2d)
                .attr("kernel_size", 3i64)
                .attr("stride", 1i64)
                .attr("padding", 1i64),
        )
        .build(0)
        .unwrap();
    let Value::F32(y) = model.forward(x).unwrap() else { panic!("f32 output") };
    for row in y.rows() {
        let row: Vec<f32> = row.to_vec();
        assert!(row[..3].iter().all(|v| v.is_nan()) && row[3] == 5.0, "{row:?}");
    }
}

/// A ReLU whose operand nothing else reads runs inside the kernel that
/// computes the operand (Conv, Add, Linear here), and the residual Add runs
/// inside the second Conv: the outputs are bit-identical to the same graph
/// with every pre-ReLU value and the Conv output also outputs (which keeps
/// them apart), NaN included. With 4 channels the second convolution sums
/// directly, with 32 by Winograd's algorithm.
#[test]
fn fused_relus_give_the_same_bits() {
    let yaml = r#"
opset: 1
inputs: [{name: x, dtype: f32, shape: [n, 2, 6, 6]}]
nodes:
  - {name: c1, op: Conv2d, inputs: [x], attrs: {in_channels: 2, out_channels: CH, kernel_size: 3, padding: 1}}
  - {name: r1, op: ReLU, inputs: [c1]}
  - {name: c2, op: Conv2d, inputs: [r1], attrs: {in_channels: CH, out_channels: CH, kernel_size: 3, padding: 1}}
  - {name: s, op: Add, inputs: [c2, r1]}
  - {name: r2, op: ReLU, inputs: [s]}
  - {name: f, op: Flatten, inputs: [r2]}
  - {name: l, op: Linear, inputs: [f], attrs: {in_features: FEATURES, out_features: 70}}
  - {name: r3, op: ReLU, inputs: [l]}
outputs: [OUTPUTS]
"#;
    for channels in [4, 32] {
        let yaml = yaml.replace("CH", &channels.to_string()).replace("FEATURES", &(channels * 36).to_string());
        fused_relus_give_the_same_bits_with(&yaml);
    }
}

fn fused_relus_give_the_same_bits_with(yaml: &str) {
    let graph = |outputs: &str| with_outputs(yaml, outputs);
    let fused = Model::initialized(graph("r3"), BTreeMap::new(), 7).unwrap();
    let apart = Model::new(graph("r3, c1, c2, s, l"), fused.state_dict()).unwrap();
    for batch in [1, 5] {
        let mut x = ArrayD::from_shape_fn(IxDyn(&[batch, 2, 6, 6]), |i| {
            ((i[0] * 7 + i[1] * 5 + i[2] * 3 + i[3]) % 9) as f32 - 4.0
        });
        x[[0, 1, 2, 3]] = f32::NAN;
        let run = |m: &Model| m.run([("x", Value::F32(x.clone()))]).unwrap().remove("r3").unwrap();
        let (y, y_apart) = (run(&fused), run(&apart));
        assert_eq!(bits(&y), bits(&y_apart), "batch {batch}");
        let Value::F32(a) = y else { panic!("f32 output") };
        // The NaN reaches image 0's outputs; the other images have clamped ones.
        assert!(a.iter().any(|v| v.is_nan()) && (batch == 1 || a.iter().any(|&v| v == 0.0)), "batch {batch}");
    }
}

/// A Conv's output added to a value of another shape (broadcast) keeps the
/// Add's broadcasting when the Add is fused into the Conv: the same bits as
/// the Add run apart.
#[test]
fn fused_adds_broadcast_like_the_add() {
    let yaml = r#"
opset: 1
inputs: [{name: x, dtype: f32, shape: [n, 2, 6, 6]}, {name: s, dtype: f32, shape: [1, 4, 1, 1]}]
nodes:
  - {name: c, op: Conv2d, inputs: [x], attrs: {in_channels: 2, out_channels: 4, kernel_size: 3, padding: 1}}
  - {name: a, op: Add, inputs: [c, s]}
  - {name: r, op: ReLU, inputs: [a]}
outputs: [OUTPUTS]
"#;
    let graph = |outputs: &str| with_outputs(yaml, outputs);
    let fused = Model::initialized(graph("r"), BTreeMap::new(), 5).unwrap();
    let apart = Model::new(graph("r, c"), fused.state_dict()).unwrap();
    let x = ArrayD::from_shape_fn(IxDyn(&[3, 2, 6, 6]), |i| ((i[0] + i[1] * 5 + i[2] * 3 + i[3]) % 7) as f32 - 3.0);
    let s = ArrayD::from_shape_fn(IxDyn(&[1, 4, 1, 1]), |i| i[1] as f32 - 1.5);
    let run = |m: &Model| {
        let inputs = [("x", Value::F32(x.clone())), ("s", Value::F32(s.clone()))];
        m.run(inputs).unwrap().remove("r").unwrap()
    };
    assert_eq!(bits(&run(&fused)), bits(&run(&apart)));
}

/// Linear layers that feed the next Linear hand it their output
/// column-major (the planner allows it when nothing else reads the value):
/// the outputs are bit-identical to the same graph with every intermediate
/// also an output (which keeps them row-major), and agree with an f64
/// product. The chain covers inputs of fewer and of more than 64 features,
/// a fused ReLU, and the matrix-vector path of small batches.
#[test]
fn linear_chains_give_the_same_bits() {
    let yaml = r#"
opset: 1
inputs: [{name: x, dtype: f32, shape: [n, 20]}]
nodes:
  - {name: l1, op: Linear, inputs: [x], attrs: {in_features: 20, out_features: 70}}
  - {name: r1, op: ReLU, inputs: [l1]}
  - {name: l2, op: Linear, inputs: [r1], attrs: {in_features: 70, out_features: 33}}
  - {name: l3, op: Linear, inputs: [l2], attrs: {in_features: 33, out_features: 5}}
outputs: [OUTPUTS]
"#;
    let graph = |outputs: &str| with_outputs(yaml, outputs);
    let chained = Model::initialized(graph("l3"), BTreeMap::new(), 11).unwrap();
    let apart = Model::new(graph("l3, r1, l2"), chained.state_dict()).unwrap();
    let state = chained.state_dict();
    let param = |name: &str| state[name].to_array::<f32>().unwrap().mapv(f64::from);
    for batch in [3, 13, 40] {
        let x = ArrayD::from_shape_fn(IxDyn(&[batch, 20]), |i| ((i[0] * 7 + i[1] * 3) % 11) as f32 / 4.0 - 1.2);
        let run = |m: &Model| m.run([("x", Value::F32(x.clone()))]).unwrap().remove("l3").unwrap();
        let (y, y_apart) = (run(&chained), run(&apart));
        assert_eq!(bits(&y), bits(&y_apart), "batch {batch}");
        let Value::F32(a) = y else { panic!("f32 output") };
        assert!(a.is_standard_layout(), "a model output is row-major");
        // The f64 reference: x W1ᵀ + b1, ReLU, then the two other layers.
        let mut h = x.mapv(f64::from).into_dimensionality::<ndarray::Ix2>().unwrap();
        for (layer, relu) in [("l1", true), ("l2", false), ("l3", false)] {
            let w = param(&format!("{layer}.weight")).into_dimensionality::<ndarray::Ix2>().unwrap();
            h = h.dot(&w.t()) + param(&format!("{layer}.bias")).into_dimensionality::<ndarray::Ix1>().unwrap();
            if relu {
                h.mapv_inplace(|v| v.max(0.0));
            }
        }
        for (&got, &want) in a.iter().zip(h.iter()) {
            assert!((f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()), "batch {batch}: {got} vs {want}");
        }
    }
}

/// A Linear bias given as a value whose length is only known at run time
/// must match the outputs: an error naming the node, not a silent cut.
#[test]
fn linear_bias_of_the_wrong_length_is_an_error() {
    let yaml = br#"
opset: 1
inputs:
  - {name: x, dtype: f32, shape: [8, 3]}
  - {name: w, dtype: f32, shape: [4, 3]}
  - {name: b, dtype: f32, shape: [n]}
nodes: [{name: fc, op: Linear, inputs: [x, w, b], attrs: {in_features: 3, out_features: 4}}]
outputs: [fc]
"#;
    let model = Model::initialized(Graph::from_yaml(yaml).unwrap(), BTreeMap::new(), 0).unwrap();
    let value = |shape: &[usize]| Value::F32(ArrayD::zeros(IxDyn(shape)));
    let err = model.run([("x", value(&[8, 3])), ("w", value(&[4, 3])), ("b", value(&[5]))]).unwrap_err().to_string();
    assert_eq!(err, "node `fc` (Linear): bias has 5 values for 4 outputs");
    assert!(model.run([("x", value(&[8, 3])), ("w", value(&[4, 3])), ("b", value(&[4]))]).is_ok());
}

#[test]
fn conv_bias_of_the_wrong_length_is_an_error() {
    let yaml = br#"
opset: 1
inputs:
  - {name: x, dtype: f32, shape: [1, 2, 5, 5]}
  - {name: w, dtype: f32, shape: [3, 2, 3, 3]}
  - {name: b, dtype: f32, shape: [n]}
nodes:
  - {name: conv, op: Conv2d, inputs: [x, w, b], attrs: {in_channels: 2, out_channels: 3, kernel_size: [3, 3], padding: [1, 1]}}
outputs: [conv]
"#;
    let model = Model::initialized(Graph::from_yaml(yaml).unwrap(), BTreeMap::new(), 0).unwrap();
    let value = |shape: &[usize]| Value::F32(ArrayD::from_elem(IxDyn(shape), 0.5));
    let inputs = |bias: usize| [("x", value(&[1, 2, 5, 5])), ("w", value(&[3, 2, 3, 3])), ("b", value(&[bias]))];
    for wrong in [2, 4] {
        let err = model.run(inputs(wrong)).unwrap_err().to_string();
        assert_eq!(err, format!("node `conv` (Conv2d): bias has {wrong} values for 3 output channels"));
    }
    // The right length: each output is the bias plus the window's sum
    // (0.25 per tap and channel: 18 taps inside, 8 or 12 on the edges).
    let y = model.run(inputs(3)).unwrap();
    let y = y.values().next().unwrap().to_tensor().to_vec::<f32>().unwrap();
    assert_eq!(y[12], 0.5 + 18.0 * 0.25, "centre");
    assert_eq!(y[0], 0.5 + 8.0 * 0.25, "corner");
}
