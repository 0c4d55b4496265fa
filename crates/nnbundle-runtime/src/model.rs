//! A runnable model: a checked graph, its weights, and an execution plan.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nnbundle_container::{Bundle, BundleWriter};
use nnbundle_format::names::PARAMS_GROUP;
use nnbundle_format::{MetaValue, Tensor};
use nnbundle_graph::{Dim, Graph, WeightInfo};

use crate::error::{Result, RuntimeError};
use crate::ops::Scratch;
use crate::plan::{Source, Step};
use crate::value::{Arg, Value};

/// A model rebuilt from a bundle (or built in code), ready to run.
///
/// Weights stay where they were loaded: a model opened from a file reads
/// them from the memory-mapped bundle, without copying.
pub struct Model {
    graph: Graph,
    weight_names: Vec<String>,
    weights: Vec<Tensor>,
    /// Tensors the plan derived from the weights (folded batch norms).
    derived: Vec<Tensor>,
    steps: Vec<Step>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    slots: usize,
    metadata: BTreeMap<String, MetaValue>,
    /// Buffers of freed intermediates, reused by later steps and runs.
    scratch: Scratch,
    /// How long the last run took, in nanoseconds (0 before the first).
    last_run_ns: AtomicU64,
}

/// Runs at least this long keep the thread pool's workers awake
/// ([`crate::pool`]): that costs about 12 µs per run (handing the run to the
/// pool and back), under 2.5% from here on, and lets layers from a few µs
/// of work split across threads.
const AWAKE_FROM_NS: u64 = 500_000;

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
        // Each weight read once and checked before use; only the graph's
        // parameters are read (a remote bundle's samples stay where they are).
        let parameters = graph.parameters();
        let names: Vec<&str> =
            parameters.iter().map(|p| p.name.as_str()).filter(|n| bundle.tensor_info(n).is_some()).collect();
        let weights = bundle.prefetch(&names)?;
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
            derived: Vec::new(),
            steps: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            slots: 0,
            metadata: BTreeMap::new(),
            scratch: Scratch::default(),
            last_run_ns: AtomicU64::new(0),
        };
        model.plan()?;
        Ok(model)
    }

    /// Plans the execution again (after the weights changed: kernels keep
    /// weights they prepared on first use, and new ones forget them).
    pub(crate) fn plan(&mut self) -> Result<()> {
        let plan = crate::plan::plan(&self.graph, &self.weight_names, &self.weights)?;
        (self.steps, self.inputs, self.outputs, self.slots) = (plan.steps, plan.inputs, plan.outputs, plan.slots);
        self.derived = plan.derived;
        Ok(())
    }

    /// How many kernel steps a run takes (after the fusion passes).
    #[cfg(test)]
    pub(crate) fn step_count(&self) -> usize {
        self.steps.len()
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
        let values = self.bind_inputs(inputs.into_iter().map(|(n, v)| (n.into(), v)).collect())?;
        let start = Instant::now();
        let out = if self.last_run_ns.load(Ordering::Relaxed) >= AWAKE_FROM_NS {
            crate::pool::with_awake_workers(|| self.execute(values))
        } else {
            self.execute(values)
        };
        let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_run_ns.store(took, Ordering::Relaxed);
        out
    }

    /// Runs every step on bound inputs.
    fn execute(&self, mut values: Vec<Option<Value>>) -> Result<BTreeMap<String, Value>> {
        for step in &self.steps {
            let out = if let Some(v) = step.owned_input {
                let x = values[v].take().expect("planned in dependency order");
                step.kernel.run_owned(x, &self.scratch)
            } else {
                let args: Vec<Arg<'_>> = step
                    .args
                    .iter()
                    .map(|s| match *s {
                        Source::Value(v) => Arg::Value(values[v].as_ref().expect("planned in dependency order")),
                        Source::Weight(w) => Arg::Weight(&self.weights[w]),
                        Source::Derived(d) => Arg::Weight(&self.derived[d]),
                    })
                    .collect();
                step.kernel.run(&args, &self.scratch)
            };
            let node = &self.graph.nodes()[step.node];
            let out =
                out.map_err(|message| RuntimeError::Node { node: node.name.clone(), op: node.op.name(), message })?;
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
