//! Building a graph one node at a time, with each node checked and its
//! output inferred as it is added: what importers need.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::check::{Inference, arity_problem, check_node_attrs};
use crate::document::{DraftNode, is_value_name};
use crate::graph::{Graph, GraphInput, Node, WeightInfo};
use crate::report::{Code, Problem, Report, Severity};
use crate::value::ValueInfo;

/// A graph under construction. Each [`GraphBuilder::push`] checks the node
/// exactly as a whole-graph check would (attributes normalized and their
/// defaults filled, inputs defined, operand count, parameter dtypes and
/// shapes against the weights declared so far) and infers its output.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    inputs: Vec<GraphInput>,
    nodes: Vec<Node>,
    defined: HashSet<String>,
    values: HashMap<String, ValueInfo>,
    weights: BTreeMap<String, WeightInfo>,
}

fn problem(code: Code, path: String, node: Option<&str>, message: String) -> Problem {
    Problem { severity: Severity::Error, code, path, node: node.map(str::to_owned), message }
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        GraphBuilder::default()
    }

    /// Declares a graph input.
    pub fn input(&mut self, input: GraphInput) -> Result<(), Problem> {
        let path = format!("inputs[{}]", self.inputs.len());
        if !is_value_name(&input.name) {
            return Err(problem(Code::InvalidField, path, None, format!("`{}` is not a value name", input.name)));
        }
        if !self.defined.insert(input.name.clone()) {
            return Err(problem(Code::DuplicateName, path, None, format!("`{}` is already defined", input.name)));
        }
        self.values.insert(input.name.clone(), ValueInfo::new(input.dtype, input.shape.clone()));
        self.inputs.push(input);
        Ok(())
    }

    /// Declares the dtype and shape of weight `name`, which nodes pushed
    /// later read as a parameter (`<node>.<slot>`).
    pub fn weight(&mut self, name: impl Into<String>, info: WeightInfo) {
        self.weights.insert(name.into(), info);
    }

    /// Adds a node after checking it; returns its output's dtype and shape
    /// (`None` when an operand's facts are unknown), or the first problem.
    /// A node that fails is not added.
    pub fn push(&mut self, node: Node) -> Result<Option<ValueInfo>, Problem> {
        let op = node.op;
        let path = format!("nodes[{}]", self.nodes.len());
        let mut draft = DraftNode {
            name: node.name,
            op: Some(op),
            inputs: node.inputs,
            attrs: node.attrs,
            path: path.clone(),
            explicit_inputs: true,
            attrs_ok: true,
            unparsed_attrs: Vec::new(),
        };
        let name = draft.name.clone();
        let fail = |code, path: String, message: String| Err(problem(code, path, Some(&name), message));
        if !is_value_name(&name) {
            return fail(Code::InvalidField, format!("{path}.name"), format!("`{name}` is not a value name"));
        }
        if self.defined.contains(&name) {
            return fail(Code::DuplicateName, format!("{path}.name"), format!("`{name}` is already defined"));
        }
        let mut report = Report::default();
        if !check_node_attrs(&mut report, &mut draft, op) {
            return Err(first_error(report));
        }
        if let Some((j, input)) = draft.inputs.iter().enumerate().find(|(_, i)| !self.defined.contains(*i)) {
            return fail(
                Code::UnknownReference,
                format!("{path}.inputs[{j}]"),
                format!("input `{input}` is not a graph input or a node"),
            );
        }
        if let Some(message) = arity_problem(op, &draft.attrs, draft.inputs.len()) {
            return fail(Code::InputCount, format!("{path}.inputs"), message);
        }
        let mut inference = Inference {
            values: std::mem::take(&mut self.values),
            weights: Some(&self.weights),
            used_weights: Default::default(),
            // A builder takes every opset; `Graph::new` declares the lowest one needed.
            opset: crate::OPSET,
            required: 1,
        };
        let out = inference.infer(&mut report, &draft, op, true);
        self.values = inference.values;
        if report.has_errors() {
            self.values.remove(&name);
            return Err(first_error(report));
        }
        self.defined.insert(name.clone());
        self.nodes.push(Node { name, op, inputs: draft.inputs, attrs: draft.attrs });
        Ok(out)
    }

    /// What is known of value `name` (a graph input or a node's output).
    pub fn value(&self, name: &str) -> Option<&ValueInfo> {
        self.values.get(name)
    }

    /// Whether `name` is a graph input or a node already added.
    pub fn contains(&self, name: &str) -> bool {
        self.defined.contains(name)
    }

    /// The nodes added so far.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The inputs and nodes, for a caller that rewrites them before [`Graph::new`].
    pub fn into_parts(self) -> (Vec<GraphInput>, Vec<Node>) {
        (self.inputs, self.nodes)
    }

    /// The graph with `outputs`, after the whole-graph check.
    pub fn finish(self, outputs: Vec<String>) -> Result<Graph, Report> {
        Graph::new(self.inputs, self.nodes, outputs)
    }
}

fn first_error(report: Report) -> Problem {
    report.problems.into_iter().find(|p| p.severity == Severity::Error).expect("called only with an error")
}
