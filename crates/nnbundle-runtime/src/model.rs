//! A runnable model: a checked graph, its weights, and an execution plan.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use nnbundle_container::{Bundle, BundleWriter};
use nnbundle_format::names::PARAMS_GROUP;
use nnbundle_format::{MetaValue, Tensor};
use nnbundle_graph::{Dim, Graph, OpKind, Operand, WeightInfo};

use crate::error::{Result, RuntimeError};
use crate::kernels::{Kernel, Scratch, build_kernel};
use crate::value::{Arg, Value};

/// Where a kernel operand comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// A value slot (graph input or node output).
    Value(usize),
    /// A weight, by index.
    Weight(usize),
}

struct Step {
    node: usize,
    kernel: Box<dyn Kernel>,
    args: Vec<Source>,
    out: usize,
    /// Value slots whose last reader is this step.
    frees: Vec<usize>,
}

/// A model rebuilt from a bundle (or built in code), ready to run.
///
/// Weights stay where they were loaded: a model opened from a file reads
/// them from the memory-mapped bundle, without copying.
pub struct Model {
    graph: Graph,
    weight_names: Vec<String>,
    weights: Vec<Tensor>,
    steps: Vec<Step>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    slots: usize,
    metadata: BTreeMap<String, MetaValue>,
    /// Buffers of freed intermediates, reused by later steps and runs.
    scratch: Scratch,
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

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("nodes", &self.graph.nodes().len()).field("weights", &self.weights.len()).finish()
    }
}

impl Model {
    /// Opens a bundle, verifies every hash (in parallel) and rebuilds its model.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Model::from_bundle(&Bundle::open(path)?)
    }

    /// Rebuilds the model of an open bundle. Hashes are checked as the bundle's
    /// open options say (by default, every weight before it is used).
    pub fn from_bundle(bundle: &Bundle) -> Result<Model> {
        let graph = bundle.graph()?.ok_or(RuntimeError::NoGraph)?;
        bundle.verify_all()?;
        let mut weights = BTreeMap::new();
        for p in graph.parameters() {
            if bundle.tensor_info(&p.name).is_some() {
                weights.insert(p.name.clone(), bundle.tensor_unverified(&p.name)?);
            }
        }
        let mut model = Model::new(graph, weights)?;
        model.metadata = bundle.manifest().metadata.clone();
        Ok(model)
    }

    /// A model from a graph and its weights by name. Checks the weights
    /// against the graph and plans the execution.
    pub fn new(graph: Graph, weights: BTreeMap<String, Tensor>) -> Result<Model> {
        let report = graph.check(Some(&WeightInfo::table(&weights))).report;
        if report.has_errors() {
            return Err(RuntimeError::Graph { report });
        }
        let (weight_names, weights): (Vec<String>, Vec<Tensor>) = weights.into_iter().unzip();
        let mut model = Model {
            graph,
            weight_names,
            weights,
            steps: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            slots: 0,
            metadata: BTreeMap::new(),
            scratch: Scratch::default(),
        };
        model.plan()?;
        Ok(model)
    }

    /// Orders the nodes the outputs need and resolves every operand to a slot or a weight.
    pub(crate) fn plan(&mut self) -> Result<()> {
        let graph = &self.graph;
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        for input in graph.inputs() {
            let id = slot_of.len();
            slot_of.insert(&input.name, id);
        }
        for node in graph.nodes() {
            let id = slot_of.len();
            slot_of.insert(&node.name, id);
        }
        let weight_of: HashMap<&str, usize> =
            self.weight_names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
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
            let kernel = build_kernel(node)
                .ok_or_else(|| RuntimeError::NoKernel { node: node.name.clone(), op: node.op.name() })?;
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
        self.inputs = graph.inputs().iter().map(|i| slot_of[i.name.as_str()]).collect();
        self.outputs = outputs;
        self.slots = slot_of.len();
        self.steps = steps;
        Ok(())
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The bundle metadata the model was loaded with (empty when built in code).
    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    /// Checks named inputs against the graph's declarations, binding symbols.
    fn bind_inputs(&self, inputs: Vec<(String, Value)>) -> Result<Vec<Option<Value>>> {
        let declared = self.graph.inputs();
        let mut values: Vec<Option<Value>> = vec![None; self.slots];
        let mut given: BTreeMap<String, Value> = BTreeMap::new();
        for (name, v) in inputs {
            if !declared.iter().any(|d| d.name == name) {
                let expected = declared.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ");
                return Err(RuntimeError::UnknownInput { name, expected });
            }
            given.insert(name, v);
        }
        let mut symbols: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for (decl, &slot) in declared.iter().zip(&self.inputs) {
            let v = given.remove(&decl.name).ok_or_else(|| RuntimeError::MissingInput {
                name: decl.name.clone(),
                dtype: decl.dtype,
                shape: decl.shape.to_string(),
            })?;
            let bad = |why: String| RuntimeError::BadInput {
                name: decl.name.clone(),
                expected: format!("{} {}{why}", decl.dtype, decl.shape),
                found: format!("{} {:?}", v.dtype(), v.shape()),
            };
            if v.dtype() != decl.dtype || v.shape().len() != decl.shape.rank() {
                return Err(bad(String::new()));
            }
            for (dim, &size) in decl.shape.0.iter().zip(v.shape()) {
                match dim {
                    Dim::Fixed(n) if *n as usize != size => return Err(bad(String::new())),
                    Dim::Symbol(s) => match symbols.get(s) {
                        Some((bound, from)) if *bound != size => {
                            return Err(bad(format!(" with {s} = {bound} (set by input `{from}`)")));
                        }
                        Some(_) => {}
                        None => {
                            symbols.insert(s.clone(), (size, decl.name.clone()));
                        }
                    },
                    _ => {}
                }
            }
            values[slot] = Some(v);
        }
        Ok(values)
    }

    /// Runs the model on named inputs; returns every output by name.
    pub fn run<S: Into<String>>(
        &self,
        inputs: impl IntoIterator<Item = (S, Value)>,
    ) -> Result<BTreeMap<String, Value>> {
        let mut values = self.bind_inputs(inputs.into_iter().map(|(n, v)| (n.into(), v)).collect())?;
        for step in &self.steps {
            let args: Vec<Arg<'_>> = step
                .args
                .iter()
                .map(|s| match *s {
                    Source::Value(v) => Arg::Value(values[v].as_ref().expect("planned in dependency order")),
                    Source::Weight(w) => Arg::Weight(&self.weights[w]),
                })
                .collect();
            let node = &self.graph.nodes()[step.node];
            let out = step.kernel.run(&args, &self.scratch).map_err(|message| RuntimeError::Node {
                node: node.name.clone(),
                op: node.op.name(),
                message,
            })?;
            drop(args);
            values[step.out] = Some(out);
            for &f in &step.frees {
                if let Some(v) = values[f].take() {
                    self.scratch.recycle(v);
                }
            }
        }
        Ok(self
            .graph
            .outputs()
            .iter()
            .zip(&self.outputs)
            .map(|(name, &slot)| (name.clone(), values[slot].take().expect("outputs are computed, each listed once")))
            .collect())
    }

    /// Runs a model with one input and one output: `y = net(x)`.
    pub fn forward(&self, x: impl Into<Value>) -> Result<Value> {
        let arity = |what, found| RuntimeError::Arity { call: "forward", what, expected: 1, found };
        let [input] = self.graph.inputs() else {
            return Err(arity("input", self.graph.inputs().len()));
        };
        let mut out = self.run([(input.name.clone(), x.into())])?;
        match self.graph.outputs() {
            [only] => Ok(out.remove(only).expect("computed")),
            many => Err(arity("output", many.len())),
        }
    }

    /// The parameters by name (tied weights appear under each name).
    pub fn state_dict(&self) -> BTreeMap<String, Tensor> {
        self.weight_names.iter().cloned().zip(self.weights.iter().cloned()).collect()
    }

    /// Sets a metadata value saved with the model.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<MetaValue>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// A bundle writer holding the graph, the weights and the metadata.
    pub fn to_writer(&self) -> Result<BundleWriter> {
        let mut w = BundleWriter::new();
        w.set_graph(self.graph.clone());
        for (name, t) in self.weight_names.iter().zip(&self.weights) {
            w.add_tensor_to_group(PARAMS_GROUP, name.clone(), t.clone())?;
        }
        for (k, v) in &self.metadata {
            w.set_metadata(k.clone(), v.clone())?;
        }
        Ok(w)
    }

    /// Saves the model as a bundle, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.to_writer()?.save(path)?;
        Ok(())
    }

    /// A readable summary: each layer with its attributes, then parameter counts and bytes.
    pub fn summary(&self) -> String {
        self.graph.summary(Some(&WeightInfo::table(self.weight_names.iter().zip(&self.weights))))
    }

    pub(crate) fn weights_mut(&mut self) -> impl Iterator<Item = (&String, &mut Tensor)> {
        self.weight_names.iter().zip(self.weights.iter_mut())
    }
}

impl Model {
    /// Runs the model on `inputs` and stores them with the outputs as a
    /// sample in `writer`, to be re-run by validation within `rtol`/`atol`.
    pub fn add_sample(
        &self,
        writer: &mut BundleWriter,
        inputs: BTreeMap<String, Value>,
        rtol: f64,
        atol: f64,
    ) -> Result<()> {
        let outputs = self.run(inputs.clone())?;
        let to_tensors = |m: BTreeMap<String, Value>| m.into_iter().map(|(k, v)| (k, v.to_tensor())).collect();
        writer.add_sample(to_tensors(inputs), to_tensors(outputs), rtol, atol)?;
        Ok(())
    }
}
