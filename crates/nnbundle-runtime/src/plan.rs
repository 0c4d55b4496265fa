//! Execution planning: which nodes run in which order, where each kernel
//! operand comes from, when each value can be freed, and the fusion passes
//! that let a kernel take over its sole reader's work.

use std::collections::HashMap;

use nnbundle_graph::{Graph, OpKind, Operand};

use crate::error::{Result, RuntimeError};
use crate::ops::{Kernel, build_kernel};

/// Where a kernel operand comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// A value slot (graph input or node output).
    Value(usize),
    /// A weight, by index.
    Weight(usize),
}

pub(crate) struct Step {
    pub node: usize,
    pub kernel: Box<dyn Kernel>,
    pub args: Vec<Source>,
    pub out: usize,
    /// Value slots whose last reader is this step.
    pub frees: Vec<usize>,
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
}

/// Orders the nodes the outputs need, resolves every operand to a value
/// slot or a weight (by index in `weight_names`), builds each kernel and runs
/// the fusion passes.
pub(crate) fn plan(graph: &Graph, weight_names: &[String]) -> Result<Plan> {
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
        steps.push(Step { node: i, kernel, args, out: slot_of[node.name.as_str()], frees: Vec::new() });
    }
    let outputs: Vec<usize> = graph.outputs().iter().map(|o| slot_of[o.as_str()]).collect();
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
        if !outputs.contains(&v) {
            steps[si].frees.push(v);
        }
    }
    let inputs = graph.inputs().iter().map(|i| slot_of[i.name.as_str()]).collect();
    Ok(Plan { steps, inputs, outputs, slots: slot_of.len() })
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
