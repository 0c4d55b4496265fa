//! The structural checks, shape inference and the weight check, over a draft graph.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use nnbundle_format::DType;

use crate::attr::Attrs;
use crate::document::{Draft, DraftNode};
use crate::graph::{Graph, Node, Operand, WeightInfo, ancestors, bind_operands};
use crate::op::{Operands, ParamDType, ParamSpec, Role, Slot};
use crate::ops::OpKind;
use crate::report::{Code, Report};
use crate::value::{Dim, Shape, ValueInfo};

/// The outcome of checking a graph: the graph when it has no error, every
/// problem found, and the dtype and shape inferred for each value.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// The checked graph, present when the report has no error.
    pub graph: Option<Graph>,
    /// Every problem, errors and warnings.
    pub report: Report,
    /// Inferred facts for each value (graph inputs and node outputs) that inference could settle.
    pub values: BTreeMap<String, ValueInfo>,
    /// The lowest opset that has every op the graph uses with the dtypes it uses them on.
    pub required_opset: u32,
}

/// Kahn's algorithm over `(name, inputs)` pairs: the order of the nodes that
/// are not on or behind a cycle, and the indices of those that are.
fn toposort<'a>(nodes: impl Iterator<Item = (&'a str, &'a [String])> + Clone) -> (Vec<usize>, Vec<usize>) {
    let index: HashMap<&str, usize> = nodes.clone().enumerate().map(|(i, (n, _))| (n, i)).collect();
    let count = index.len().max(nodes.clone().count());
    let mut pending = vec![0usize; count];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, (_, inputs)) in nodes.clone().enumerate() {
        for input in inputs {
            if let Some(&j) = index.get(input.as_str()) {
                pending[i] += 1;
                readers[j].push(i);
            }
        }
    }
    let mut queue: VecDeque<usize> = (0..count).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(count);
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &r in &readers[i] {
            pending[r] -= 1;
            if pending[r] == 0 {
                queue.push_back(r);
            }
        }
    }
    let stuck = (0..count).filter(|&i| pending[i] > 0).collect();
    (order, stuck)
}

/// Node indices in dependency order (graphs that passed the checks have no cycle).
pub(crate) fn topological(nodes: &[Node]) -> Vec<usize> {
    toposort(nodes.iter().map(|n| (n.name.as_str(), n.inputs.as_slice()))).0
}

/// Checks a node's attributes (names, types, required ones, values) and fills
/// defaults; returns false when the node cannot be used further.
pub(crate) fn check_node_attrs(report: &mut Report, node: &mut DraftNode, op: OpKind) -> bool {
    let def = op.def();
    let before = report.problems.len();
    let name = node.name.clone();
    let mut err = |code, path: String, msg: String| report.error(code, path, Some(&name), msg);
    // Values set in code are normalized exactly as YAML values are.
    let path = node.path.clone();
    for (key, value) in node.attrs.0.iter_mut() {
        let Some(spec) = def.attr(key) else {
            err(Code::UnknownAttribute, format!("{path}.attrs.{key}"), format!("{op} has no attribute `{key}`"));
            continue;
        };
        match serde_json::to_value(&*value).map_err(|e| e.to_string()).and_then(|v| spec.ty.parse(&v)) {
            Ok(normalized) => *value = normalized,
            Err(_) => err(
                Code::InvalidAttribute,
                format!("{path}.attrs.{key}"),
                format!("{op} attribute `{key}`: expected {}, found {value}", spec.ty.describe()),
            ),
        }
    }
    for missing in
        node.attrs.fill_defaults(def.attrs).into_iter().filter(|m| !node.unparsed_attrs.iter().any(|u| u == m))
    {
        let ty = def.attr(missing).map(|a| a.ty.describe()).unwrap_or_default();
        err(Code::MissingAttribute, format!("{}.attrs", node.path), format!("{op} needs attribute `{missing}` ({ty})"));
    }
    if node.attrs_ok && report.problems.len() == before {
        for (attr, msg) in def.rule.check_attrs(&node.attrs) {
            report.error(
                Code::InvalidAttribute,
                format!("{}.attrs.{attr}", node.path),
                Some(&node.name),
                format!("{op} attribute `{attr}`: {msg}"),
            );
        }
    }
    node.attrs_ok && report.problems.len() == before
}

struct Checker<'a> {
    draft: &'a Draft,
    report: Report,
    /// Nodes whose attributes, wiring and references are all good.
    usable: Vec<bool>,
    /// Nodes whose name repeats an earlier one: references to that name are ambiguous.
    duplicates: BTreeSet<usize>,
}

impl Checker<'_> {
    fn err(&mut self, code: Code, path: impl Into<String>, node: &str, msg: impl Into<String>) {
        self.report.error(code, path, Some(node), msg);
    }

    fn names(&mut self) {
        let mut seen: HashMap<&str, String> = HashMap::new();
        for (i, input) in self.draft.inputs.iter().enumerate() {
            if let Some(first) = seen.insert(&input.name, format!("inputs[{i}]")) {
                self.report.error(
                    Code::DuplicateName,
                    format!("inputs[{i}].name"),
                    None,
                    format!("`{}` is already defined at {first}", input.name),
                );
            }
        }
        for (i, node) in self.draft.nodes.iter().enumerate() {
            if let Some(first) = seen.insert(&node.name, node.path.clone()) {
                self.usable[i] = false;
                self.duplicates.insert(i);
                self.err(
                    Code::DuplicateName,
                    format!("{}.name", node.path),
                    &node.name,
                    format!("`{}` is already defined at {first}", node.name),
                );
            }
        }
    }

    fn wiring(&mut self, i: usize, node: &DraftNode, op: OpKind, defined: &BTreeSet<&str>) {
        for (j, input) in node.inputs.iter().enumerate() {
            if !defined.contains(input.as_str()) {
                self.usable[i] = false;
                let path = if node.explicit_inputs { format!("{}.inputs[{j}]", node.path) } else { node.path.clone() };
                let hint = crate::did_you_mean(input, defined.iter().copied()).map(|s| format!("; {s}"));
                self.err(
                    Code::UnknownReference,
                    path,
                    &node.name,
                    format!("input `{input}` is not a graph input or a node{}", hint.unwrap_or_default()),
                );
            }
        }
        if !self.usable[i] {
            return;
        }
        if let Some(message) = arity_problem(op, &node.attrs, node.inputs.len()) {
            self.usable[i] = false;
            self.err(Code::InputCount, format!("{}.inputs", node.path), &node.name, message);
        }
    }

    fn cycles(&mut self, stuck: &[usize]) {
        let nodes = &self.draft.nodes;
        let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name.as_str(), i)).collect();
        let stuck_set: BTreeSet<usize> = stuck.iter().copied().collect();
        let mut reported = BTreeSet::new();
        for &start in stuck {
            self.usable[start] = false;
            if reported.contains(&start) {
                continue;
            }
            // Walk back through stuck inputs until a node repeats: that closes a cycle.
            let mut path = vec![start];
            let mut cur = start;
            let cycle = loop {
                let next = nodes[cur]
                    .inputs
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .find(|j| stuck_set.contains(j));
                let Some(next) = next else { break None };
                if let Some(pos) = path.iter().position(|&p| p == next) {
                    break Some(path[pos..].to_vec());
                }
                path.push(next);
                cur = next;
            };
            // A loop through a repeated name is the duplicate (already reported), not a cycle.
            let cycle = cycle.filter(|c| !c.iter().any(|i| reported.contains(i) || self.duplicates.contains(i)));
            if let Some(mut cycle) = cycle {
                reported.extend(cycle.iter().copied());
                cycle.reverse();
                let first = cycle[0];
                let mut names: Vec<&str> = cycle.iter().map(|&i| nodes[i].name.as_str()).collect();
                names.push(&nodes[first].name);
                let (path, name) = (nodes[first].path.clone(), nodes[first].name.clone());
                self.err(Code::Cycle, path, &name, format!("the graph has a cycle: {}", names.join(" -> ")));
            }
        }
    }

    fn reachability(&mut self) {
        let nodes = &self.draft.nodes;
        let needed = ancestors(
            nodes.iter().map(|n| (n.name.as_str(), n.inputs.as_slice())),
            self.draft.outputs.iter().map(String::as_str),
        );
        for (node, _) in nodes.iter().zip(needed).filter(|(_, needed)| !needed) {
            self.report.warning(
                Code::Unreachable,
                node.path.clone(),
                Some(&node.name),
                "no graph output depends on this node",
            );
        }
    }
}

/// Why a node of `op` cannot take `n` inputs, if it cannot.
pub(crate) fn arity_problem(op: OpKind, attrs: &Attrs, n: usize) -> Option<String> {
    let slots = op.def().present_slots(attrs);
    let variadic = slots.iter().any(|s| s.role == Role::Variadic);
    let min = if variadic { 1 } else { slots.iter().filter(|s| s.role == Role::Data).count() };
    let max = if variadic { usize::MAX } else { slots.len() };
    if (min..=max).contains(&n) {
        return None;
    }
    let names: Vec<&str> = slots.iter().map(|s| s.name).collect();
    let range = match (variadic, min == max) {
        (true, _) => "at least 1 input".to_owned(),
        (false, true) => format!("{min} inputs ({})", names.join(", ")),
        (false, false) => {
            format!("{min} to {max} inputs ({}; parameters not given come from the weights)", names.join(", "))
        }
    };
    Some(format!("{op} takes {range}, found {n}"))
}

/// Shape inference over nodes in dependency order: the facts known about
/// each value, and the weights the nodes read.
pub(crate) struct Inference<'a> {
    /// Facts about values inferred so far (graph inputs first).
    pub values: HashMap<String, ValueInfo>,
    /// The weights to check parameters against, when there are weights.
    pub weights: Option<&'a BTreeMap<String, WeightInfo>>,
    /// Weights some node reads.
    pub used_weights: BTreeSet<String>,
    /// The opset the graph declares; operands that need a later one are errors.
    pub opset: u32,
    /// The lowest opset that has every op and operand dtype seen so far.
    pub required: u32,
}

impl Inference<'_> {
    /// Facts about a parameter operand, checking a stored weight against the op's requirements.
    fn param_operand(
        &mut self,
        report: &mut Report,
        node: &DraftNode,
        op: OpKind,
        (slot, spec, operand): (Slot, ParamSpec, &Operand<'_>),
        input_dtype: Option<DType>,
    ) -> Option<ValueInfo> {
        let (info, what, path) = match operand {
            Operand::Value(value) => (
                self.values.get(*value).cloned(),
                format!("input `{value}` for {op} `{}`", slot.name),
                format!("{}.inputs", node.path),
            ),
            Operand::Weight { name, .. } => {
                self.used_weights.insert(name.clone());
                let Some(weights) = self.weights else {
                    // Without weights, what the attributes imply is all there is to know.
                    let dtype = match spec.dtype {
                        ParamDType::Float | ParamDType::SameAsInput => input_dtype?,
                        ParamDType::AnyFloat => DType::F32,
                        ParamDType::Index | ParamDType::I64 => DType::I64,
                        ParamDType::Any => return None,
                    };
                    return spec.shape.map(|s| ValueInfo::new(dtype, Shape::fixed(&s)));
                };
                match weights.get(name) {
                    None if spec.required => {
                        let shape = spec.shape.as_ref().map(|s| format!(" of shape {s:?}")).unwrap_or_default();
                        let hint = crate::did_you_mean(name, weights.keys().map(String::as_str))
                            .map(|s| format!("; {s}"))
                            .unwrap_or_default();
                        report.error(
                            Code::MissingParameter,
                            node.path.clone(),
                            Some(&node.name),
                            format!("{op} needs weight `{name}`{shape}, which the bundle does not have{hint}"),
                        );
                        return None;
                    }
                    None => return None,
                    Some(w) => (
                        Some(ValueInfo::new(w.dtype, Shape::fixed(&w.shape))),
                        format!("weight `{name}`"),
                        node.path.clone(),
                    ),
                }
            }
        };
        let info = info?;
        if !spec.dtype.accepts(info.dtype, input_dtype) {
            report.error(
                Code::ParameterDType,
                path.clone(),
                Some(&node.name),
                format!("{what} is {}, {op} needs {}", info.dtype, spec.dtype.describe(input_dtype)),
            );
        }
        if let Some(want) = &spec.shape
            && !(info.shape.rank() == want.len()
                && info.shape.0.iter().zip(want).all(|(d, &w)| d.compatible(&Dim::Fixed(w))))
        {
            report.error(
                Code::ParameterShape,
                path,
                Some(&node.name),
                format!("{what} has shape {}, the attributes imply {:?}", info.shape, want),
            );
        }
        Some(info)
    }

    /// Binds a node's operands, checks its parameters and infers its output,
    /// recording it under the node's name. Problems go to `report`; shape
    /// rules run only for a `usable` node whose data operands are all known.
    pub(crate) fn infer(
        &mut self,
        report: &mut Report,
        node: &DraftNode,
        op: OpKind,
        usable: bool,
    ) -> Option<ValueInfo> {
        self.required = self.required.max(op.since());
        let input_dtype = node.inputs.first().and_then(|n| self.values.get(n)).map(|v| v.dtype);
        let mut operands = Operands::default();
        let mut complete = true;
        for (slot, operand) in bind_operands(&node.name, op, &node.attrs, &node.inputs) {
            match (slot.role, &operand) {
                (Role::Param, _) => {
                    let spec = match &operand {
                        Operand::Weight { spec, .. } => Some(spec.clone()),
                        Operand::Value(_) => op.def().rule.param(slot.name, &node.attrs),
                    };
                    let info =
                        spec.and_then(|spec| self.param_operand(report, node, op, (slot, spec, &operand), input_dtype));
                    operands.params.insert(slot.name, info);
                }
                (_, Operand::Value(v)) => match self.values.get(*v) {
                    Some(info) => operands.data.push(info.clone()),
                    None => complete = false,
                },
                (_, Operand::Weight { .. }) => {}
            }
        }
        if !complete || !usable {
            return None;
        }
        if let Some((since, what)) = op.def().rule.operands_since(&operands) {
            self.required = self.required.max(since);
            if since > self.opset {
                report.error(
                    Code::UnknownOp,
                    node.path.clone(),
                    Some(&node.name),
                    format!(
                        "`{op}` on {what} is in the vocabulary from opset {since}; this graph declares opset {}",
                        self.opset
                    ),
                );
                return None;
            }
        }
        match op.def().rule.infer(&node.attrs, &operands) {
            Ok(Some(v)) => {
                self.values.insert(node.name.clone(), v.clone());
                Some(v)
            }
            Ok(None) => None,
            Err(msg) => {
                report.error(Code::Shape, node.path.clone(), Some(&node.name), msg);
                None
            }
        }
    }
}

/// Runs every check on a draft; see [`Analysis`].
pub(crate) fn analyze_draft(
    mut draft: Draft,
    mut report: Report,
    weights: Option<&BTreeMap<String, WeightInfo>>,
) -> Analysis {
    let mut usable = Vec::with_capacity(draft.nodes.len());
    for node in &mut draft.nodes {
        usable.push(match node.op {
            Some(op) => check_node_attrs(&mut report, node, op),
            None => false,
        });
    }
    let mut checker = Checker { draft: &draft, report, usable, duplicates: BTreeSet::new() };
    checker.names();
    let defined: BTreeSet<&str> =
        draft.inputs.iter().map(|i| i.name.as_str()).chain(draft.nodes.iter().map(|n| n.name.as_str())).collect();
    for (i, node) in draft.nodes.iter().enumerate() {
        if let Some(op) = node.op {
            checker.wiring(i, node, op, &defined);
        } else {
            checker.usable[i] = false;
        }
    }
    if draft.outputs.is_empty() {
        checker.report.error(Code::MissingField, "outputs", None, "a graph needs at least one output");
    }
    let mut seen_outputs = BTreeSet::new();
    for (k, out) in draft.outputs.iter().enumerate() {
        if !defined.contains(out.as_str()) {
            checker.report.error(
                Code::UnknownReference,
                format!("outputs[{k}]"),
                None,
                format!(
                    "output `{out}` is not a graph input or a node{}",
                    crate::did_you_mean(out, defined.iter().copied()).map(|s| format!("; {s}")).unwrap_or_default()
                ),
            );
        } else if !seen_outputs.insert(out) {
            checker.report.error(
                Code::DuplicateName,
                format!("outputs[{k}]"),
                None,
                format!("output `{out}` is listed twice"),
            );
        }
    }
    let (order, stuck) = toposort(draft.nodes.iter().map(|n| (n.name.as_str(), n.inputs.as_slice())));
    checker.cycles(&stuck);
    checker.reachability();

    let mut inference =
        Inference { values: HashMap::new(), weights, used_weights: BTreeSet::new(), opset: draft.opset, required: 1 };
    for input in &draft.inputs {
        inference.values.insert(input.name.clone(), ValueInfo::new(input.dtype, input.shape.clone()));
    }
    for &i in &order {
        let node = &draft.nodes[i];
        if let Some(op) = node.op {
            inference.infer(&mut checker.report, node, op, checker.usable[i]);
        }
    }
    if let Some(weights) = weights {
        // Nodes that inference skipped (on a cycle, after an error) still own their parameters.
        for (i, node) in draft.nodes.iter().enumerate() {
            if let (Some(op), true) = (node.op, checker.usable[i] || node.attrs_ok) {
                for (_, operand) in bind_operands(&node.name, op, &node.attrs, &node.inputs) {
                    if let Operand::Weight { name, .. } = operand {
                        inference.used_weights.insert(name);
                    }
                }
            }
        }
        for name in weights.keys().filter(|w| !inference.used_weights.contains(*w)) {
            checker.report.error(
                Code::UnusedWeight,
                nnbundle_format::names::keyed("tensors", name),
                None,
                format!("weight `{name}` is in the `params` group but no node uses it"),
            );
        }
    }
    let (report, values, required_opset) = (checker.report, inference.values, inference.required);
    let graph = if report.has_errors() {
        None
    } else {
        // With no error every op is known; `None` here would only mean a missed report.
        let nodes: Option<Vec<Node>> = draft
            .nodes
            .into_iter()
            .map(|d| d.op.map(|op| Node { name: d.name, op, inputs: d.inputs, attrs: d.attrs }))
            .collect();
        nodes.map(|nodes| Graph::from_parts(draft.opset, draft.inputs, nodes, draft.outputs))
    };
    Analysis { graph, report, values: values.into_iter().collect(), required_opset }
}
