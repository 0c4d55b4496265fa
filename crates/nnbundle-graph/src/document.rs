//! Reading a graph document into a draft, collecting every problem with its YAML path.

use nnbundle_format::DType;
use nnbundle_format::limits::{MAX_NAME_BYTES, MAX_NODE_INPUTS, MAX_NODES};
use serde_json::{Map, Value};

use crate::attr::{Attrs, describe_json};
use crate::graph::{GraphInput, Node};
use crate::op::OPSET;
use crate::ops::OpKind;
use crate::report::{Code, Report};
use crate::value::{Dim, Shape};

/// A node as written, possibly with problems.
#[derive(Debug, Clone)]
pub(crate) struct DraftNode {
    pub name: String,
    /// `None` when the op is not in the vocabulary (already reported).
    pub op: Option<OpKind>,
    pub inputs: Vec<String>,
    pub attrs: Attrs,
    /// YAML path of the node (`nodes[2]`, `sequential[2]`).
    pub path: String,
    /// Whether the `inputs` field was written (false in the sequential shorthand).
    pub explicit_inputs: bool,
    /// False when an attribute could not be parsed (already reported).
    pub attrs_ok: bool,
    /// Attributes given but not parsed (already reported; not "missing").
    pub unparsed_attrs: Vec<String>,
}

/// A graph as written, before the structural checks.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub opset: u32,
    pub inputs: Vec<GraphInput>,
    pub nodes: Vec<DraftNode>,
    pub outputs: Vec<String>,
}

impl Draft {
    pub(crate) fn from_graph(opset: u32, inputs: Vec<GraphInput>, nodes: Vec<Node>, outputs: Vec<String>) -> Draft {
        let nodes = nodes
            .into_iter()
            .enumerate()
            .map(|(i, n)| DraftNode {
                name: n.name,
                op: Some(n.op),
                inputs: n.inputs,
                attrs: n.attrs,
                path: format!("nodes[{i}]"),
                explicit_inputs: true,
                attrs_ok: true,
                unparsed_attrs: Vec::new(),
            })
            .collect();
        Draft { opset, inputs, nodes, outputs }
    }
}

/// True for value names: dot-separated parts of ASCII letters, digits and `_`
/// (`hidden`, `encoder.layers.0.linear1`), at most 512 bytes.
pub fn is_value_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_BYTES
        && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// True for shape symbols: an ASCII letter or `_`, then letters, digits, `_`.
pub fn is_symbol(s: &str) -> bool {
    let mut b = s.bytes();
    s.len() <= MAX_NAME_BYTES
        && b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

const NAME_RULE: &str = "dot-separated parts of ASCII letters, digits and `_`";

struct Parser {
    report: Report,
}

impl Parser {
    fn err(&mut self, code: Code, path: &str, node: Option<&str>, message: impl Into<String>) {
        self.report.error(code, path, node, message);
    }

    /// Reports fields of `map` outside `allowed`.
    fn known_fields(&mut self, map: &Map<String, Value>, allowed: &[&str], path: &str, what: &str) {
        for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            self.err(
                Code::UnknownField,
                &at,
                None,
                format!("unknown field `{key}` in {what} (expected one of: {})", allowed.join(", ")),
            );
        }
    }

    fn list<'v>(&mut self, v: Option<&'v Value>, path: &str, required: bool) -> Option<&'v Vec<Value>> {
        match v {
            None if required => {
                self.err(Code::MissingField, path, None, format!("missing field `{}`", last_key(path)));
                None
            }
            None => None,
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                self.err(Code::InvalidField, path, None, format!("expected a list, found {}", describe_json(other)));
                None
            }
        }
    }

    fn name(&mut self, v: Option<&Value>, path: &str, node: Option<&str>) -> Option<String> {
        match v {
            None => {
                self.err(Code::MissingField, path, node, format!("missing field `{}`", last_key(path)));
                None
            }
            Some(Value::String(s)) if is_value_name(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                self.err(Code::InvalidField, path, node, format!("invalid name {s:?}: expected {NAME_RULE}"));
                None
            }
            Some(other) => {
                self.err(Code::InvalidField, path, node, format!("expected a name, found {}", describe_json(other)));
                None
            }
        }
    }

    fn input(&mut self, v: &Value, path: &str) -> Option<GraphInput> {
        let Some(map) = v.as_object() else {
            self.err(
                Code::InvalidField,
                path,
                None,
                format!("expected a map with name, dtype and shape, found {}", describe_json(v)),
            );
            return None;
        };
        self.known_fields(map, &["name", "dtype", "shape"], path, "a graph input");
        let name = self.name(map.get("name"), &format!("{path}.name"), None);
        let dtype = match map.get("dtype") {
            None => {
                self.err(Code::MissingField, &format!("{path}.dtype"), None, "missing field `dtype`");
                None
            }
            Some(d) => match d.as_str().map(str::parse::<DType>) {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    self.err(Code::InvalidField, &format!("{path}.dtype"), None, e);
                    None
                }
                None => {
                    self.err(
                        Code::InvalidField,
                        &format!("{path}.dtype"),
                        None,
                        format!("expected a dtype name, found {}", describe_json(d)),
                    );
                    None
                }
            },
        };
        let shape_path = format!("{path}.shape");
        let shape = self.list(map.get("shape"), &shape_path, true).and_then(|dims| {
            if dims.len() > nnbundle_format::limits::MAX_RANK {
                self.err(
                    Code::Limit,
                    &shape_path,
                    None,
                    format!("rank {} is above the limit of {}", dims.len(), nnbundle_format::limits::MAX_RANK),
                );
                return None;
            }
            let mut out = Vec::new();
            for (i, d) in dims.iter().enumerate() {
                match d {
                    Value::Number(n) if n.as_u64().is_some() => out.push(Dim::Fixed(n.as_u64().expect("checked"))),
                    Value::String(s) if is_symbol(s) => out.push(Dim::Symbol(s.clone())),
                    other => {
                        self.err(
                            Code::InvalidField,
                            &format!("{shape_path}[{i}]"),
                            None,
                            format!(
                                "expected a size (integer >= 0) or a symbol like `batch`, found {}",
                                describe_json(other)
                            ),
                        );
                        return None;
                    }
                }
            }
            Some(Shape(out))
        });
        Some(GraphInput { name: name?, dtype: dtype?, shape: shape? })
    }

    fn node(&mut self, v: &Value, index: usize, sequential: bool) -> Option<DraftNode> {
        let section = if sequential { "sequential" } else { "nodes" };
        let path = format!("{section}[{index}]");
        let Some(map) = v.as_object() else {
            self.err(
                Code::InvalidField,
                &path,
                None,
                format!("expected a map with name, op, inputs and attrs, found {}", describe_json(v)),
            );
            return None;
        };
        let allowed: &[&str] = if sequential { &["name", "op", "attrs"] } else { &["name", "op", "inputs", "attrs"] };
        if sequential && map.contains_key("inputs") {
            self.err(
                Code::UnknownField,
                &format!("{path}.inputs"),
                None,
                "a sequential node reads the previous node's output; write the graph with `nodes` for other wiring",
            );
        } else {
            self.known_fields(map, allowed, &path, "a node");
        }
        let name = match (sequential, map.get("name")) {
            (true, None) => Some(index.to_string()),
            (_, v) => self.name(v, &format!("{path}.name"), None),
        };
        let node_name = name.clone().unwrap_or_else(|| path.clone());
        let op = match map.get("op") {
            None => {
                self.err(Code::MissingField, &format!("{path}.op"), Some(&node_name), "missing field `op`");
                None
            }
            Some(Value::String(s)) => match OpKind::from_name(s) {
                Some(k) => Some(k),
                None => {
                    let hint = OpKind::ALL
                        .iter()
                        .find(|k| k.name().eq_ignore_ascii_case(s))
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    self.err(
                        Code::UnknownOp,
                        &format!("{path}.op"),
                        Some(&node_name),
                        format!("unknown op `{s}`: not in the opset {OPSET} vocabulary{hint}"),
                    );
                    None
                }
            },
            Some(other) => {
                self.err(
                    Code::InvalidField,
                    &format!("{path}.op"),
                    Some(&node_name),
                    format!("expected an op name, found {}", describe_json(other)),
                );
                None
            }
        };
        let inputs = if sequential {
            Vec::new()
        } else {
            let ipath = format!("{path}.inputs");
            let items = self.list(map.get("inputs"), &ipath, true).cloned().unwrap_or_default();
            if items.len() > MAX_NODE_INPUTS {
                self.err(
                    Code::Limit,
                    &ipath,
                    Some(&node_name),
                    format!("{} inputs, above the limit of {MAX_NODE_INPUTS}", items.len()),
                );
            }
            items
                .iter()
                .take(MAX_NODE_INPUTS)
                .enumerate()
                .filter_map(|(j, v)| self.name(Some(v), &format!("{ipath}[{j}]"), Some(&node_name)))
                .collect()
        };
        let mut attrs = Attrs::default();
        let mut attrs_ok = true;
        let mut unparsed_attrs = Vec::new();
        match (map.get("attrs"), op) {
            (None, _) => {}
            (Some(Value::Object(given)), Some(op)) => {
                let def = op.def();
                for (key, value) in given {
                    let apath = format!("{path}.attrs.{key}");
                    match def.attr(key) {
                        None => {
                            attrs_ok = false;
                            let known: Vec<&str> = def.attrs.iter().map(|a| a.name).collect();
                            let expected = if known.is_empty() {
                                "it has none".to_owned()
                            } else {
                                format!("it has: {}", known.join(", "))
                            };
                            self.err(
                                Code::UnknownAttribute,
                                &apath,
                                Some(&node_name),
                                format!("{op} has no attribute `{key}` ({expected})"),
                            );
                        }
                        Some(spec) => match spec.ty.parse(value) {
                            Ok(v) => {
                                attrs.0.insert(key.clone(), v);
                            }
                            Err(e) => {
                                attrs_ok = false;
                                unparsed_attrs.push(key.clone());
                                self.err(
                                    Code::InvalidAttribute,
                                    &apath,
                                    Some(&node_name),
                                    format!("{op} attribute `{key}`: {e}"),
                                );
                            }
                        },
                    }
                }
            }
            (Some(Value::Object(_)), None) => attrs_ok = false,
            (Some(other), _) => {
                attrs_ok = false;
                self.err(
                    Code::InvalidField,
                    &format!("{path}.attrs"),
                    Some(&node_name),
                    format!("expected a map of attributes, found {}", describe_json(other)),
                );
            }
        }
        Some(DraftNode { name: name?, op, inputs, attrs, path, explicit_inputs: !sequential, attrs_ok, unparsed_attrs })
    }
}

fn last_key(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Parses a graph document. `Err` when the YAML itself is unusable; else the
/// draft with every problem of the document's form.
pub(crate) fn parse_document(bytes: &[u8]) -> Result<(Draft, Report), Report> {
    let mut p = Parser { report: Report::default() };
    if bytes.len() as u64 > nnbundle_format::limits::MAX_GRAPH_BYTES {
        p.err(
            Code::Limit,
            "",
            None,
            format!(
                "the graph document has {} bytes, above the limit of {}",
                bytes.len(),
                nnbundle_format::limits::MAX_GRAPH_BYTES
            ),
        );
        return Err(p.report);
    }
    let root: Value = match nnbundle_format::yaml::from_slice("graph.yaml", bytes) {
        Ok(v) => v,
        Err(e) => {
            p.err(Code::Yaml, "", None, e.to_string());
            return Err(p.report);
        }
    };
    let Some(top) = root.as_object() else {
        p.err(Code::InvalidField, "", None, format!("a graph document is a map, found {}", describe_json(&root)));
        return Err(p.report);
    };
    p.known_fields(top, &["opset", "inputs", "nodes", "sequential", "outputs"], "", "the graph document");

    let opset = match top.get("opset") {
        None => {
            p.err(
                Code::MissingField,
                "opset",
                None,
                format!("missing field `opset` (this library reads opsets 1 to {OPSET})"),
            );
            OPSET
        }
        Some(v) => match v.as_u64() {
            Some(n) if (1..=u64::from(OPSET)).contains(&n) => n as u32,
            Some(n) => {
                let advice = if n > u64::from(OPSET) { "upgrade nnbundle" } else { "opsets start at 1" };
                p.err(
                    Code::UnsupportedOpset,
                    "opset",
                    None,
                    format!("the graph uses opset {n}, this library reads opsets 1 to {OPSET}: {advice}"),
                );
                OPSET
            }
            None => {
                p.err(Code::InvalidField, "opset", None, format!("expected an integer, found {}", describe_json(v)));
                OPSET
            }
        },
    };

    let inputs: Vec<GraphInput> = p
        .list(top.get("inputs"), "inputs", true)
        .map(|items| items.iter().enumerate().filter_map(|(i, v)| p.input(v, &format!("inputs[{i}]"))).collect())
        .unwrap_or_default();

    let (section, sequential) = match (top.get("nodes"), top.get("sequential")) {
        (Some(_), Some(_)) => {
            p.err(Code::InvalidField, "sequential", None, "a graph has either `nodes` or `sequential`, not both");
            ("nodes", false)
        }
        (None, Some(_)) => ("sequential", true),
        _ => ("nodes", false),
    };
    let raw_nodes = p.list(top.get(section), section, true).cloned().unwrap_or_default();
    if raw_nodes.len() > MAX_NODES {
        p.err(Code::Limit, section, None, format!("{} nodes, above the limit of {MAX_NODES}", raw_nodes.len()));
        return Err(p.report);
    }
    let mut nodes: Vec<DraftNode> =
        raw_nodes.iter().enumerate().filter_map(|(i, v)| p.node(v, i, sequential)).collect();

    if sequential {
        // Expand the shorthand: each node reads the previous one; the first reads the only input.
        match inputs.as_slice() {
            [only] => {
                let mut previous = only.name.clone();
                for node in &mut nodes {
                    node.inputs = vec![previous.clone()];
                    previous = node.name.clone();
                }
            }
            _ if inputs.is_empty() => {}
            _ => p.err(
                Code::InvalidField,
                "inputs",
                None,
                format!("the sequential shorthand takes exactly one input, found {}", inputs.len()),
            ),
        }
    }

    let outputs: Vec<String> = match (top.get("outputs"), sequential) {
        (None, true) => nodes.last().map(|n| vec![n.name.clone()]).unwrap_or_default(),
        (v, _) => p
            .list(v, "outputs", true)
            .map(|items| {
                items.iter().enumerate().filter_map(|(i, v)| p.name(Some(v), &format!("outputs[{i}]"), None)).collect()
            })
            .unwrap_or_default(),
    };
    for node in &nodes {
        if let Some(op) = node.op.filter(|op| op.since() > opset) {
            p.err(
                Code::UnknownOp,
                &format!("{}.op", node.path),
                Some(&node.name),
                format!("`{op}` is in the vocabulary from opset {}; this graph declares opset {opset}", op.since()),
            );
        }
    }
    Ok((Draft { opset, inputs, nodes, outputs }, p.report))
}
