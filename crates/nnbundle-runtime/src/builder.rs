//! Defining models in code: the analogue of writing an `nn.Module` class.

use std::collections::BTreeMap;

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{AttrValue, Attrs, Dim, Graph, GraphInput, Node, OpKind, Shape};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Result, RuntimeError};
use crate::init::init_parameter;
use crate::model::Model;

/// An op with its attributes, ready to become a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    op: OpKind,
    attrs: Attrs,
}

impl Layer {
    /// A layer of `op` with no attributes set yet.
    pub fn new(op: OpKind) -> Self {
        Layer { op, attrs: Attrs::default() }
    }

    /// Sets an attribute.
    pub fn attr(mut self, name: &str, value: impl Into<AttrValue>) -> Self {
        self.attrs.set(name, value.into());
        self
    }

    /// `nn.Linear(in_features, out_features)`.
    pub fn linear(in_features: i64, out_features: i64) -> Self {
        Layer::new(OpKind::Linear).attr("in_features", in_features).attr("out_features", out_features)
    }

    /// `nn.Conv2d(in_channels, out_channels, kernel_size)`.
    pub fn conv2d(in_channels: i64, out_channels: i64, kernel_size: i64) -> Self {
        Layer::new(OpKind::Conv2d)
            .attr("in_channels", in_channels)
            .attr("out_channels", out_channels)
            .attr("kernel_size", [kernel_size, kernel_size])
    }

    /// `nn.ReLU()`.
    pub fn relu() -> Self {
        Layer::new(OpKind::ReLU)
    }

    /// `nn.Sigmoid()`.
    pub fn sigmoid() -> Self {
        Layer::new(OpKind::Sigmoid)
    }

    /// `nn.Flatten()`.
    pub fn flatten() -> Self {
        Layer::new(OpKind::Flatten)
    }
}

/// Builds a graph node by node and initialises its parameters.
#[derive(Debug, Clone, Default)]
pub struct ModelBuilder {
    inputs: Vec<GraphInput>,
    nodes: Vec<Node>,
    weights: BTreeMap<String, Tensor>,
}

impl ModelBuilder {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a graph input; returns its name for use as a node input.
    pub fn input(&mut self, name: &str, dtype: DType, shape: &[Dim]) -> String {
        self.inputs.push(GraphInput { name: name.to_owned(), dtype, shape: Shape(shape.to_vec()) });
        name.to_owned()
    }

    /// Adds node `name` applying `layer` to `inputs`; returns its output's name.
    pub fn add(&mut self, name: &str, layer: Layer, inputs: &[&str]) -> String {
        self.nodes.push(Node {
            name: name.to_owned(),
            op: layer.op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            attrs: layer.attrs,
        });
        name.to_owned()
    }

    /// Gives a parameter a value instead of its default initialisation.
    pub fn set_weight(&mut self, name: &str, tensor: Tensor) -> &mut Self {
        self.weights.insert(name.to_owned(), tensor);
        self
    }

    /// Checks the graph and initialises every parameter not set, as PyTorch
    /// does by default, from a generator seeded with `seed`.
    pub fn build(self, outputs: &[&str], seed: u64) -> Result<Model> {
        let graph = Graph::new(self.inputs, self.nodes, outputs.iter().map(|s| s.to_string()).collect())
            .map_err(|report| RuntimeError::Graph { report })?;
        Model::initialized(graph, self.weights, seed)
    }
}

impl Model {
    /// A model of `graph` whose parameters are `given` where present and
    /// otherwise initialised as PyTorch does by default, from a generator
    /// seeded with `seed` (parameters in node order, then slot order).
    pub fn initialized(graph: Graph, given: BTreeMap<String, Tensor>, seed: u64) -> Result<Model> {
        let values = graph.check(None).values;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut weights = given;
        for p in graph.parameters() {
            if weights.contains_key(&p.name) {
                continue;
            }
            let node = graph.node(&p.node).expect("parameters belong to nodes");
            let dtype = node.inputs.first().and_then(|i| values.get(i)).map_or(DType::F32, |v| v.dtype);
            if p.required {
                weights.insert(p.name.clone(), init_parameter(node, &p, dtype, &mut rng)?);
            }
        }
        Model::new(graph, weights)
    }
}

/// A chain of layers, each reading the previous one: `nn.Sequential`.
#[derive(Debug, Clone)]
pub struct Sequential {
    builder: ModelBuilder,
    last: String,
}

impl Sequential {
    /// A chain reading the input `name`.
    pub fn new(name: &str, dtype: DType, shape: &[Dim]) -> Self {
        let mut builder = ModelBuilder::new();
        let last = builder.input(name, dtype, shape);
        Sequential { builder, last }
    }

    /// Appends a layer named `name` (`hidden`, so its parameters are `hidden.weight`, ...).
    pub fn add(mut self, name: &str, layer: Layer) -> Self {
        let last = self.last.clone();
        self.last = self.builder.add(name, layer, &[&last]);
        self
    }

    /// Appends a layer named by its position, as `nn.Sequential` names its children.
    pub fn push(self, layer: Layer) -> Self {
        let index = self.builder.nodes.len().to_string();
        self.add(&index, layer)
    }

    /// Builds the model (see [`ModelBuilder::build`]); the output is the last layer.
    pub fn build(self, seed: u64) -> Result<Model> {
        let last = self.last.clone();
        self.builder.build(&[&last], seed)
    }
}
