//! Execution planning: which nodes run in which order, where each kernel
//! operand comes from, when each value can be freed, and the fusion passes
//! that let a kernel take over its sole reader's work.

use std::collections::HashMap;

use nnbundle_format::Tensor;
use nnbundle_graph::{Graph, OpKind, Operand};

use crate::error::{Result, RuntimeError};
use crate::ops::{BatchNormParams, Kernel, build_kernel, fold_into_conv};

/// Where a kernel operand comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// A value slot (graph input or node output).
    Value(usize),
    /// A weight, by index.
    Weight(usize),
    /// A tensor the plan derived from weights (a folded batch norm), by index.
    Derived(usize),
}

pub(crate) struct Step {
    pub node: usize,
    pub kernel: Box<dyn Kernel>,
    pub args: Vec<Source>,
    pub out: usize,
    /// Value slots whose last reader is this step.
    pub frees: Vec<usize>,
    /// The slot of the step's only operand when this step is its last
    /// reader: the kernel gets the value itself ([`Kernel::run_owned`]).
    pub owned_input: Option<usize>,
}

/// A model's execution plan.
pub(crate) struct Plan {
    /// The steps, in dependency order.
    pub steps: Vec<Step>,
    /// The value slot of each graph input, in order.
    pub inputs: Vec<usize>,
    /// The value slot of each graph output, in order.
    pub outputs: Vec<usize>,
    /// How many value slots a run uses.
    pub slots: usize,
    /// Tensors derived from the weights, read by [`Source::Derived`].
    pub derived: Vec<Tensor>,
}

/// Orders the nodes the outputs need, resolves every operand to a value
/// slot or a weight (by index in `weight_names`, whose tensors are
/// `weights`), builds each kernel and runs the fusion passes.
pub(crate) fn plan(graph: &Graph, weight_names: &[String], weights: &[Tensor]) -> Result<Plan> {
    let mut slot_of: HashMap<&str, usize> = HashMap::new();
    for input in graph.inputs() {
        let id = slot_of.len();
        slot_of.insert(&input.name, id);
    }
    for node in graph.nodes() {
        let id = slot_of.len();
        slot_of.insert(&node.name, id);
    }
    let weight_of: HashMap<&str, usize> = weight_names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    // Only nodes some output depends on run.
    let index: HashMap<&str, usize> = graph.nodes().iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
    let needed = graph.needed(graph.outputs().iter().map(String::as_str));
    let mut steps = Vec::new();
    for node in graph.topological_order() {
        let i = index[node.name.as_str()];
        if !needed[i] {
            continue;
        }
        let mut args = Vec::new();
        for (_, operand) in node.operands() {
            match operand {
                Operand::Value(v) => args.push(Source::Value(slot_of[v])),
                // Optional parameters (num_batches_tracked) are not operands of the kernels.
                Operand::Weight { spec, .. } if !spec.required => {}
                Operand::Weight { name, .. } => {
                    let w = *weight_of
                        .get(name.as_str())
                        .ok_or_else(|| RuntimeError::MissingWeight { node: node.name.clone(), name })?;
                    args.push(Source::Weight(w));
                }
            }
        }
        let kernel =
            build_kernel(node).ok_or_else(|| RuntimeError::NoKernel { node: node.name.clone(), op: node.op.name() })?;
        steps.push(Step {
            node: i,
            kernel,
            args,
            out: slot_of[node.name.as_str()],
            frees: Vec::new(),
            owned_input: None,
        });
    }
    let outputs: Vec<usize> = graph.outputs().iter().map(|o| slot_of[o.as_str()]).collect();
    let mut derived = Vec::new();
    fold_batch_norms(graph, &mut steps, &outputs, (weights, &mut derived));
    fuse_addends(graph, &mut steps, &outputs);
    fuse_relus(graph, &mut steps, &outputs);
    transpose_linear_chains(graph, &mut steps, &outputs);
    // Free each intermediate value after its last reader (outputs are kept).
    let mut last_reader: HashMap<usize, usize> = HashMap::new();
    for (si, step) in steps.iter().enumerate() {
        for a in &step.args {
            if let Source::Value(v) = a {
                last_reader.insert(*v, si);
            }
        }
    }
    for (v, si) in last_reader {
        if outputs.contains(&v) {
            continue;
        }
        let step = &mut steps[si];
        if let [Source::Value(only)] = step.args[..]
            && only == v
        {
            step.owned_input = Some(v);
        } else {
            step.frees.push(v);
        }
    }
    let inputs = graph.inputs().iter().map(|i| slot_of[i.name.as_str()]).collect();
    Ok(Plan { steps, inputs, outputs, slots: slot_of.len(), derived })
}

/// How many operands of the steps read each value slot.
fn count_readers(steps: &[Step]) -> HashMap<usize, usize> {
    let mut readers: HashMap<usize, usize> = HashMap::new();
    for arg in steps.iter().flat_map(|s| &s.args) {
        if let Source::Value(v) = arg {
            *readers.entry(*v).or_default() += 1;
        }
    }
    readers
}

/// The step that computes each value slot.
fn producers(steps: &[Step]) -> HashMap<usize, usize> {
    steps.iter().enumerate().map(|(i, s)| (s.out, i)).collect()
}

/// Removes the steps marked `true` (those a fusion pass merged into others).
fn remove_marked(steps: &mut Vec<Step>, marked: Vec<bool>) {
    let mut marked = marked.into_iter();
    steps.retain(|_| !marked.next().expect("one mark per step"));
}

/// Folds each inference-mode batch norm into the convolution that computes
/// its input, when nothing else reads the convolution's output, it is not a
/// model output, and every parameter of both is a weight: the convolution
/// then runs with weights and bias derived once, here ([`fold_into_conv`]),
/// and the normalization pass is gone. A ReLU or residual `Add` after the
/// batch norm then fuses into the convolution too. Unlike the other passes
/// this changes the rounding: the results differ from the two steps' by a
/// few units in the last place of the sums (spec/FORMAT.md §9.10 allows it).
fn fold_batch_norms(
    graph: &Graph,
    steps: &mut Vec<Step>,
    outputs: &[usize],
    (weights, derived): (&[Tensor], &mut Vec<Tensor>),
) {
    let readers = count_readers(steps);
    let producer = producers(steps);
    let mut folded = vec![false; steps.len()];
    let weight = |s: &Source| match s {
        Source::Weight(w) => Some(&weights[*w]),
        _ => None,
    };
    for i in 0..steps.len() {
        let node = &graph.nodes()[steps[i].node];
        if !matches!(node.op, OpKind::BatchNorm1d | OpKind::BatchNorm2d) {
            continue;
        }
        let Some((&Source::Value(v), params)) = steps[i].args.split_first() else { continue };
        let Some(params) = params.iter().map(weight).collect::<Option<Vec<_>>>() else { continue };
        let Some(&p) = producer.get(&v) else { continue };
        let conv = &steps[p];
        if readers[&v] != 1
            || outputs.contains(&v)
            || !matches!(graph.nodes()[conv.node].op, OpKind::Conv1d | OpKind::Conv2d)
        {
            continue;
        }
        let (conv_weight, conv_bias) = match conv.args[..] {
            [_, Source::Weight(w)] => (&weights[w], None),
            [_, Source::Weight(w), Source::Weight(b)] => (&weights[w], Some(&weights[b])),
            _ => continue,
        };
        let attrs = node.checked_attrs();
        let bn = match params[..] {
            [weight, bias, mean, var] if attrs.bool("affine") => {
                BatchNormParams { weight: Some(weight), bias: Some(bias), mean, var, eps: attrs.float("eps") }
            }
            [mean, var] if !attrs.bool("affine") => {
                BatchNormParams { weight: None, bias: None, mean, var, eps: attrs.float("eps") }
            }
            _ => continue,
        };
        let Some((w, b)) = fold_into_conv(conv_weight, conv_bias, &bn) else { continue };
        if conv_bias.is_none() && !steps[p].kernel.take_bias() {
            continue;
        }
        steps[p].args.truncate(1);
        steps[p].args.extend([Source::Derived(derived.len()), Source::Derived(derived.len() + 1)]);
        derived.extend([w, b]);
        steps[p].out = steps[i].out;
        folded[i] = true;
    }
    remove_marked(steps, folded);
}

/// Hands each `Add` of a convolution's output and another value (a residual
/// connection) to the convolution, when nothing else reads its output, it
/// is not a model output, and the other value is computed before the
/// convolution runs: the convolution adds it to each sum as it stores it
/// (and then the ReLU that usually follows, see [`fuse_relus`]), and the
/// sum is never stored apart. Outputs are bit-identical: each element is
/// the same sum plus the same value.
fn fuse_addends(graph: &Graph, steps: &mut Vec<Step>, outputs: &[usize]) {
    let readers = count_readers(steps);
    let producer = producers(steps);
    let mut fused = vec![false; steps.len()];
    for i in 0..steps.len() {
        let [Source::Value(u), Source::Value(v)] = steps[i].args[..] else { continue };
        if graph.nodes()[steps[i].node].op != OpKind::Add || u == v {
            continue;
        }
        for (mine, other) in [(u, v), (v, u)] {
            let Some(&p) = producer.get(&mine) else { continue };
            let is_conv = matches!(graph.nodes()[steps[p].node].op, OpKind::Conv1d | OpKind::Conv2d);
            let ready = producer.get(&other).is_none_or(|&q| q < p);
            if is_conv && ready && readers[&mine] == 1 && !outputs.contains(&mine) && steps[p].kernel.fuse_addend() {
                steps[p].args.push(Source::Value(other));
                steps[p].out = steps[i].out;
                fused[i] = true;
                break;
            }
        }
    }
    remove_marked(steps, fused);
}

/// Hands each ReLU to the step that computes its operand, when nothing else
/// reads that value and it is not an output, and the step's kernel takes it
/// (Linear, Conv, elementwise arithmetic): the ReLU then runs on the
/// output while it is in cache, and the intermediate is never stored. The
/// results are bit-identical (the same select, on the same values).
fn fuse_relus(graph: &Graph, steps: &mut Vec<Step>, outputs: &[usize]) {
    let readers = count_readers(steps);
    let mut producer = producers(steps);
    let mut fused = vec![false; steps.len()];
    for i in 0..steps.len() {
        let [Source::Value(v)] = steps[i].args[..] else { continue };
        if graph.nodes()[steps[i].node].op != OpKind::ReLU || readers[&v] != 1 || outputs.contains(&v) {
            continue;
        }
        if let Some(&p) = producer.get(&v)
            && steps[p].kernel.fuse_relu()
        {
            steps[p].out = steps[i].out;
            producer.insert(steps[i].out, p);
            fused[i] = true;
        }
    }
    remove_marked(steps, fused);
}

/// Lets a Linear step whose output only the next Linear reads (as its input,
/// and not a model output) write that output column-major: the first then
/// stores whole tiles of `yᵀ = W · xᵀ` straight into its rows, and the
/// second takes its input's transpose as a row-major operand (read in place
/// or packed by row copies, instead of register transposes). Sums run in the
/// same order either way, so outputs are bit-identical.
fn transpose_linear_chains(graph: &Graph, steps: &mut [Step], outputs: &[usize]) {
    let readers = count_readers(steps);
    let is_linear = |step: &Step| graph.nodes()[step.node].op == OpKind::Linear;
    for i in 0..steps.len() {
        let out = steps[i].out;
        if !is_linear(&steps[i]) || outputs.contains(&out) || readers.get(&out) != Some(&1) {
            continue;
        }
        let reads_out = |a: &Source| matches!(a, Source::Value(v) if *v == out);
        let reader = steps.iter().find(|s| s.args.iter().any(reads_out));
        if reader.is_some_and(|r| is_linear(r) && r.args.first().is_some_and(reads_out)) {
            steps[i].kernel.allow_transposed_output();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ndarray::{ArrayD, IxDyn};
    use nnbundle_format::Tensor;
    use nnbundle_graph::Graph;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use crate::{Model, Value};

    const GRAPH: &str = "opset: 1
inputs:
  - {name: x, dtype: f32, shape: [2, 3, 7, 6]}
nodes:
  - name: conv
    op: Conv2d
    inputs: [x]
    attrs: {in_channels: 3, out_channels: 4, kernel_size: 3, padding: 1, stride: 2, bias: BIAS}
  - {name: bn, op: BatchNorm2d, inputs: [conv], attrs: {num_features: 4, eps: 0.001, affine: AFFINE}}
  - {name: relu, op: ReLU, inputs: [bn]}
outputs: OUTPUTS
";

    fn random(shape: &[usize], range: std::ops::Range<f32>, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
        ArrayD::from_shape_fn(IxDyn(shape), |_| rng.random_range(range.clone()))
    }

    /// A convolution, batch norm and ReLU fold into one step whose results
    /// stay within a few units in the last place of the terms' magnitude
    /// from the unfolded chain computed in f64.
    #[test]
    fn batch_norms_fold_into_convolutions_within_rounding_of_f64() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (bias, affine) in [(true, true), (false, true), (true, false), (false, false)] {
            let yaml = GRAPH.replace("BIAS", &bias.to_string()).replace("AFFINE", &affine.to_string());
            let mut weights = BTreeMap::new();
            let mut put = |name: &str, a: &ArrayD<f32>| weights.insert(name.to_string(), Tensor::from_array(a.clone()));
            let w = random(&[4, 3, 3, 3], -1.0..1.0, &mut rng);
            let b = if bias { random(&[4], -1.0..1.0, &mut rng) } else { ArrayD::zeros(IxDyn(&[4])) };
            let (gamma, beta) = if affine {
                (random(&[4], 0.5..2.0, &mut rng), random(&[4], -1.0..1.0, &mut rng))
            } else {
                (ArrayD::ones(IxDyn(&[4])), ArrayD::zeros(IxDyn(&[4])))
            };
            let (mean, var) = (random(&[4], -0.5..0.5, &mut rng), random(&[4], 0.1..3.0, &mut rng));
            put("conv.weight", &w);
            if bias {
                put("conv.bias", &b);
            }
            if affine {
                put("bn.weight", &gamma);
                put("bn.bias", &beta);
            }
            put("bn.running_mean", &mean);
            put("bn.running_var", &var);
            let model =
                Model::new(Graph::from_yaml(yaml.replace("OUTPUTS", "[relu]").as_bytes()).unwrap(), weights.clone())
                    .unwrap();
            assert_eq!(model.step_count(), 1, "bias {bias}, affine {affine}: one step");
            let x = random(&[2, 3, 7, 6], -1.0..1.0, &mut rng);
            let got = model.forward(Value::F32(x.clone())).unwrap();
            let Value::F32(got) = got else { panic!("f32 output") };
            assert_eq!(got.shape(), &[2, 4, 4, 3]);
            for ((n, o, oy, ox), &g) in got.view().into_dimensionality::<ndarray::Ix4>().unwrap().indexed_iter() {
                let (mut sum, mut size) = (f64::from(b[[o]]), f64::from(b[[o]]).abs());
                for (c, ky, kx) in taps(3, 3, 3) {
                    let (iy, ix) = ((oy * 2 + ky) as i64 - 1, (ox * 2 + kx) as i64 - 1);
                    if (0..7).contains(&iy) && (0..6).contains(&ix) {
                        let term = f64::from(w[[o, c, ky, kx]]) * f64::from(x[[n, c, iy as usize, ix as usize]]);
                        sum += term;
                        size += term.abs();
                    }
                }
                let scale = f64::from(gamma[[o]]) / (f64::from(var[[o]]) + 0.001).sqrt();
                let want = ((sum - f64::from(mean[[o]])) * scale + f64::from(beta[[o]])).max(0.0);
                let magnitude = (size + f64::from(mean[[o]]).abs()) * scale.abs() + f64::from(beta[[o]]).abs();
                let bound = 8.0 * f64::from(f32::EPSILON) * magnitude;
                assert!((f64::from(g) - want).abs() <= bound, "at {:?}: {g} vs {want} (±{bound})", (n, o, oy, ox));
            }
            // Saved and reloaded, the same bits (the reload folds the same way).
            let bytes = model.to_writer().unwrap().to_bytes().unwrap();
            let again = Model::from_bundle(&nnbundle_container::Bundle::from_bytes(bytes).unwrap()).unwrap();
            assert_eq!(
                again.forward(Value::F32(x)).unwrap().to_tensor().as_bytes(),
                Value::F32(got).to_tensor().as_bytes()
            );
        }
    }

    /// A convolution output that is also a model output keeps its batch norm.
    #[test]
    fn batch_norms_of_kept_values_are_not_folded() {
        let yaml = GRAPH.replace("BIAS", "true").replace("AFFINE", "true").replace("OUTPUTS", "[relu, conv]");
        let model = Model::initialized(Graph::from_yaml(yaml.as_bytes()).unwrap(), BTreeMap::new(), 3).unwrap();
        // The convolution, then the batch norm with the ReLU fused.
        assert_eq!(model.step_count(), 2);
    }

    /// Every (channel, row, column) of a window.
    fn taps(a: usize, b: usize, c: usize) -> impl Iterator<Item = (usize, usize, usize)> {
        (0..a).flat_map(move |i| (0..b).flat_map(move |j| (0..c).map(move |k| (i, j, k))))
    }
}
