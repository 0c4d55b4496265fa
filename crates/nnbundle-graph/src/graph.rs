//! The graph: named inputs, nodes from the vocabulary, named outputs.

use std::collections::BTreeMap;

use nnbundle_format::{DType, FormatError, Sha256Digest, Tensor, TensorRecord, canonical, yaml};
use serde::Serialize;

use crate::attr::{AttrValue, Attrs, NodeAttrs};
use crate::check::{Analysis, analyze_draft};
use crate::document::{Draft, parse_document};
use crate::op::{ParamSpec, Role, Slot};
use crate::ops::OpKind;
use crate::report::Report;
use crate::value::{Dim, Shape};

/// A graph input: name, dtype and shape (sizes or symbols such as `batch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInput {
    /// The value name nodes refer to.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape; symbols stand for sizes chosen at run time.
    pub shape: Shape,
}

/// One node: an op applied to named values.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Unique name; also the name of its output value and the prefix of its
    /// parameters (`hidden` owns `hidden.weight`).
    pub name: String,
    /// The op.
    pub op: OpKind,
    /// Values fed to the op's slots, in order.
    pub inputs: Vec<String>,
    /// Attributes, every default filled in.
    pub attrs: Attrs,
}

/// A parameter a node reads from the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// Full weight name (`hidden.weight`).
    pub name: String,
    /// The node that owns it.
    pub node: String,
    /// The slot it fills (`weight`).
    pub slot: &'static str,
    /// The shape the attributes imply, when they imply one.
    pub shape: Option<Vec<u64>>,
    /// Whether the weight must exist.
    pub required: bool,
}

/// Where one operand of a node comes from: the rule of spec §9.2.
///
/// Slot *k* takes `inputs[k]` when the node gives it; otherwise a parameter
/// slot present under the node's attributes takes the node's own weight
/// `<node>.<slot>`. A variadic op takes every input in its one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand<'a> {
    /// A value named in the node's `inputs`.
    Value(&'a str),
    /// The node's weight `<node>.<slot>`, with what the op requires of it
    /// (a weight that is not `required` may be absent and is then no operand).
    Weight {
        /// Full weight name (`hidden.weight`).
        name: String,
        /// The op's requirements on it under the node's attributes.
        spec: ParamSpec,
    },
}

/// The operands of a node of `op` named `node` with `attrs` and `inputs`, in slot order.
pub(crate) fn bind_operands<'a>(
    node: &str,
    op: OpKind,
    attrs: &Attrs,
    inputs: &'a [String],
) -> Vec<(Slot, Operand<'a>)> {
    let def = op.def();
    let present = def.present_slots(attrs);
    if let [slot] = present[..]
        && slot.role == Role::Variadic
    {
        return inputs.iter().map(|v| (slot, Operand::Value(v))).collect();
    }
    present
        .into_iter()
        .enumerate()
        .filter_map(|(k, slot)| match inputs.get(k) {
            Some(v) => Some((slot, Operand::Value(v.as_str()))),
            None if slot.role == Role::Param => def
                .rule
                .param(slot.name, attrs)
                .map(|spec| (slot, Operand::Weight { name: format!("{node}.{}", slot.name), spec })),
            None => None,
        })
        .collect()
}

impl Node {
    /// The attributes whose value is not what the op's default would give
    /// (required ones always), in the op's order: what a picture or a
    /// summary needs to show.
    pub fn non_default_attrs(&self) -> Vec<(&'static str, &crate::AttrValue)> {
        let specs = self.op.def().attrs;
        specs
            .iter()
            .filter_map(|spec| {
                let value = self.attrs.get(spec.name)?;
                let mut without = self.attrs.clone();
                without.0.remove(spec.name);
                without.fill_defaults(specs);
                (without.get(spec.name) != Some(value)).then_some((spec.name, value))
            })
            .collect()
    }

    /// Every operand the node reads, in slot order, each with where it
    /// comes from (spec §9.2). Inputs beyond the op's slots are not listed.
    pub fn operands(&self) -> Vec<(Slot, Operand<'_>)> {
        bind_operands(&self.name, self.op, &self.attrs, &self.inputs)
    }

    /// The attributes, read through accessors that fail (in debug builds) on
    /// a name the op does not define, so a misspelt name is a test failure
    /// instead of a silent default.
    pub fn checked_attrs(&self) -> NodeAttrs<'_> {
        NodeAttrs::new(self.op, &self.attrs)
    }
}

/// What a bundle holds for one weight: its dtype and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightInfo {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
}

impl From<&Tensor> for WeightInfo {
    fn from(t: &Tensor) -> Self {
        WeightInfo { dtype: t.dtype(), shape: t.shape().iter().map(|&d| d as u64).collect() }
    }
}

impl From<&TensorRecord> for WeightInfo {
    fn from(r: &TensorRecord) -> Self {
        WeightInfo { dtype: r.dtype, shape: r.shape.clone() }
    }
}

impl WeightInfo {
    /// The table of weights by name that graph checks take.
    pub fn table<'a, S: AsRef<str> + 'a>(
        weights: impl IntoIterator<Item = (S, &'a Tensor)>,
    ) -> BTreeMap<String, WeightInfo> {
        weights.into_iter().map(|(n, t)| (n.as_ref().to_owned(), WeightInfo::from(t))).collect()
    }
}

/// Which of `nodes` (name, inputs) the values `outputs` depend on.
pub(crate) fn ancestors<'a>(
    nodes: impl ExactSizeIterator<Item = (&'a str, &'a [String])> + Clone,
    outputs: impl IntoIterator<Item = &'a str>,
) -> Vec<bool> {
    let index: std::collections::HashMap<&str, usize> = nodes.clone().enumerate().map(|(i, (n, _))| (n, i)).collect();
    let inputs: Vec<&[String]> = nodes.map(|(_, inputs)| inputs).collect();
    let mut needed = vec![false; inputs.len()];
    let mut stack: Vec<usize> = outputs.into_iter().filter_map(|o| index.get(o).copied()).collect();
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut needed[i], true) {
            stack.extend(inputs[i].iter().filter_map(|n| index.get(n.as_str()).copied()));
        }
    }
    needed
}

/// A layer graph. Build one by parsing YAML ([`Graph::from_yaml`]) or in
/// code ([`Graph::new`]); either way it has passed every structural check.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    opset: u32,
    inputs: Vec<GraphInput>,
    nodes: Vec<Node>,
    outputs: Vec<String>,
}

impl Graph {
    /// Parses and checks a graph document. Returns every problem found when
    /// there is at least one error (warnings alone do not fail).
    pub fn from_yaml(bytes: &[u8]) -> Result<Graph, Report> {
        let analysis = analyze(bytes, None);
        match analysis.graph {
            Some(g) => Ok(g),
            None => Err(analysis.report),
        }
    }

    /// A graph built in code. Fills attribute defaults and runs every check
    /// (without weights); fails with the full report on any error.
    pub fn new(inputs: Vec<GraphInput>, mut nodes: Vec<Node>, outputs: Vec<String>) -> Result<Graph, Report> {
        for node in &mut nodes {
            node.attrs.fill_defaults(node.op.def().attrs);
        }
        // Writers declare the lowest opset that has every op the graph uses,
        // with the dtypes it uses them on: checked against the latest, then lowered.
        let draft = Draft::from_graph(crate::OPSET, inputs, nodes, outputs);
        let analysis = analyze_draft(draft, Report::default(), None);
        let required = analysis.required_opset;
        analysis.graph.map(|g| Graph { opset: required, ..g }).ok_or(analysis.report)
    }

    pub(crate) fn from_parts(opset: u32, inputs: Vec<GraphInput>, nodes: Vec<Node>, outputs: Vec<String>) -> Graph {
        Graph { opset, inputs, nodes, outputs }
    }

    /// The op-vocabulary version.
    pub fn opset(&self) -> u32 {
        self.opset
    }

    /// The graph inputs, in order.
    pub fn inputs(&self) -> &[GraphInput] {
        &self.inputs
    }

    /// The nodes, in document order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The output value names, in order.
    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// Nodes in an order where every node comes after the nodes it reads.
    pub fn topological_order(&self) -> Vec<&Node> {
        crate::check::topological(&self.nodes).into_iter().map(|i| &self.nodes[i]).collect()
    }

    /// Every parameter the nodes read from the weights, in node order.
    pub fn parameters(&self) -> Vec<Parameter> {
        self.nodes.iter().flat_map(node_parameters).collect()
    }

    /// For each node, in document order, whether any of `outputs` (value
    /// names) depends on it.
    pub fn needed<'a>(&'a self, outputs: impl IntoIterator<Item = &'a str>) -> Vec<bool> {
        ancestors(self.nodes.iter().map(|n| (n.name.as_str(), n.inputs.as_slice())), outputs)
    }

    /// Checks the graph against weights (dtype and shape of every `params`
    /// tensor by name) and infers every value's dtype and shape.
    pub fn check(&self, weights: Option<&BTreeMap<String, WeightInfo>>) -> Analysis {
        let draft = Draft::from_graph(self.opset, self.inputs.clone(), self.nodes.clone(), self.outputs.clone());
        analyze_draft(draft, Report::default(), weights)
    }

    /// The canonical long-form YAML: every node with its inputs and every attribute explicit.
    pub fn to_yaml(&self) -> Result<String, FormatError> {
        yaml::to_string(&self.canonical(false))
    }

    /// The semantic architecture digest: SHA-256 of the canonical JSON of the
    /// expanded graph (defaults filled, nodes sorted by name), independent of
    /// YAML formatting, key order, node order and the sequential shorthand.
    pub fn architecture_digest(&self) -> Sha256Digest {
        canonical::canonical_digest(&self.canonical(true)).expect("a graph always has a canonical form")
    }

    fn canonical(&self, sort_nodes: bool) -> CanonicalGraph<'_> {
        let mut nodes: Vec<CanonicalNode<'_>> = self
            .nodes
            .iter()
            .map(|n| CanonicalNode { name: &n.name, op: n.op.name(), inputs: &n.inputs, attrs: &n.attrs.0 })
            .collect();
        if sort_nodes {
            nodes.sort_by(|a, b| a.name.cmp(b.name));
        }
        CanonicalGraph {
            opset: self.opset,
            inputs: self
                .inputs
                .iter()
                .map(|i| CanonicalInput { name: &i.name, dtype: i.dtype, shape: &i.shape.0 })
                .collect(),
            nodes,
            outputs: &self.outputs,
        }
    }
}

/// The parameters of one node: present parameter slots not fed by its inputs.
pub(crate) fn node_parameters(node: &Node) -> Vec<Parameter> {
    node.operands()
        .into_iter()
        .filter_map(|(slot, operand)| match operand {
            Operand::Weight { name, spec } => Some(Parameter {
                name,
                node: node.name.clone(),
                slot: slot.name,
                shape: spec.shape,
                required: spec.required,
            }),
            Operand::Value(_) => None,
        })
        .collect()
}

#[derive(Serialize)]
struct CanonicalGraph<'a> {
    opset: u32,
    inputs: Vec<CanonicalInput<'a>>,
    nodes: Vec<CanonicalNode<'a>>,
    outputs: &'a [String],
}

#[derive(Serialize)]
struct CanonicalInput<'a> {
    name: &'a str,
    dtype: DType,
    shape: &'a [Dim],
}

#[derive(Serialize)]
struct CanonicalNode<'a> {
    name: &'a str,
    op: &'static str,
    inputs: &'a [String],
    attrs: &'a BTreeMap<String, AttrValue>,
}

/// Parses a graph document and checks it, optionally against weights,
/// collecting every problem. The graph is returned when there is no error.
pub fn analyze(bytes: &[u8], weights: Option<&BTreeMap<String, WeightInfo>>) -> Analysis {
    match parse_document(bytes) {
        Ok((draft, report)) => analyze_draft(draft, report, weights),
        Err(report) => Analysis { graph: None, report, values: BTreeMap::new(), required_opset: 1 },
    }
}

impl Graph {
    /// The part of the graph that computes `outputs` (node names): their
    /// ancestors, the graph inputs those read, and `outputs` as the outputs.
    pub fn subgraph(&self, outputs: &[&str]) -> Result<Graph, Report> {
        let mut report = Report::default();
        for (k, o) in outputs.iter().enumerate() {
            if self.node(o).is_none() {
                report.error(
                    crate::report::Code::UnknownReference,
                    format!("outputs[{k}]"),
                    None,
                    format!("no node named `{o}`"),
                );
            }
        }
        if report.has_errors() {
            return Err(report);
        }
        let keep = self.needed(outputs.iter().copied());
        let nodes: Vec<Node> = self.nodes.iter().zip(&keep).filter(|(_, k)| **k).map(|(n, _)| n.clone()).collect();
        let used: std::collections::BTreeSet<&str> =
            nodes.iter().flat_map(|n| n.inputs.iter().map(String::as_str)).collect();
        let inputs = self.inputs.iter().filter(|i| used.contains(i.name.as_str())).cloned().collect();
        Graph::new(inputs, nodes, outputs.iter().map(|s| s.to_string()).collect())
    }
}
