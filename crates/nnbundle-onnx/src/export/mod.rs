//! nnbundle to ONNX (opset 17): every op of the vocabulary as standard ONNX
//! operators (GELU, SiLU and MultiheadAttention decomposed into primitives).
//! Each op is exported by one row of a table kept in the file of its op
//! family (the same file names as the graph crate's `ops`).

mod activation;
mod attention;
mod conv;
mod decompose;
mod elementwise;
mod index;
mod linear;
mod matmul;
mod norm;
mod pool;
mod recurrent;
mod reduce;
mod shape;

use std::collections::{BTreeMap, BTreeSet};

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{Dim, Graph, Node, NodeAttrs, OpKind, Operand, ValueInfo, WeightInfo};

use crate::proto::{
    AttributeProto, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto, attribute_type,
};
use crate::tensor::{onnx_type, to_proto};

/// The ONNX opset exports target.
pub const EXPORT_OPSET: i64 = 17;

/// How completely an op exports to ONNX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportSupport {
    /// Every node of the op exports.
    Full,
    /// Nodes of the op export except in the case described.
    Partial(&'static str),
}

/// Exports one node whose operands are bound.
type Export = fn(&mut Exporter<'_>, &Args<'_>) -> Result<(), String>;

/// One row of the export table.
pub(crate) struct ExportRule {
    /// The op.
    pub op: OpKind,
    /// What of it exports.
    pub support: ExportSupport,
    /// The translation.
    pub export: Export,
}

/// Every family's table.
const FAMILIES: &[&[ExportRule]] = &[
    activation::RULES,
    attention::RULES,
    conv::RULES,
    elementwise::RULES,
    index::RULES,
    linear::RULES,
    matmul::RULES,
    norm::RULES,
    pool::RULES,
    recurrent::RULES,
    reduce::RULES,
    shape::RULES,
];

fn rule(op: OpKind) -> Option<&'static ExportRule> {
    FAMILIES.iter().flat_map(|f| f.iter()).find(|r| r.op == op)
}

/// How completely `op` exports to ONNX; `None` when it does not export at all.
pub fn export_support(op: OpKind) -> Option<ExportSupport> {
    rule(op).map(|r| r.support)
}

/// Why a graph cannot be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A node that cannot be written as ONNX.
    #[error("node `{node}` ({op}): {reason}")]
    Node {
        /// The node.
        node: String,
        /// Its op.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// A graph input or output whose shape is unknown.
    #[error("the shape of `{value}` is unknown")]
    UnknownShape {
        /// The value.
        value: String,
    },
    /// An ONNX name to restore that another value of the model already has.
    #[error("cannot name `{value}` `{onnx}` again: the exported model already has a value of that name")]
    NameTaken {
        /// The graph value.
        value: String,
        /// The ONNX name asked for.
        onnx: String,
    },
}

/// What `export_with` may change about the model it writes.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// ONNX names for graph inputs and outputs, by graph name (the import's
    /// `onnx_names`, kept in a bundle's metadata under `onnx_names`).
    pub onnx_names: BTreeMap<String, String>,
}

/// A node with its operands bound: values by slot, weights as initializers.
pub(crate) struct Args<'a> {
    /// The node.
    pub node: &'a Node,
    /// Operand names by slot (values as given, weights as their initializers).
    pub ops: BTreeMap<&'static str, String>,
    /// The `input` operand (empty for ops without one).
    pub x: String,
    /// The output's name.
    pub out: String,
    /// The dtype of `x`.
    pub dtype: DType,
}

impl Args<'_> {
    /// Operand `slot`, or an error naming it.
    pub fn get(&self, slot: &str) -> Result<String, String> {
        self.ops.get(slot).cloned().ok_or_else(|| format!("operand `{slot}` is missing"))
    }

    /// Operand `slot`, when present.
    pub fn opt(&self, slot: &str) -> Option<String> {
        self.ops.get(slot).cloned()
    }

    /// The node's attributes, read by checked name.
    pub fn attrs(&self) -> NodeAttrs<'_> {
        self.node.checked_attrs()
    }
}

pub(crate) fn a_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i, ..Default::default() }
}

pub(crate) fn a_ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INTS, ints, ..Default::default() }
}

pub(crate) fn a_str(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::STRING, s: s.as_bytes().to_vec(), ..Default::default() }
}

pub(crate) fn a_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::FLOAT, f, ..Default::default() }
}

fn value_info(name: &str, v: &ValueInfo) -> ValueInfoProto {
    let dim = v
        .shape
        .0
        .iter()
        .map(|d| crate::proto::Dimension {
            value: match d {
                Dim::Fixed(n) => Some(DimensionValue::DimValue(*n as i64)),
                Dim::Symbol(s) => Some(DimensionValue::DimParam(s.clone())),
                Dim::Unknown => None,
            },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor { elem_type: onnx_type(v.dtype), shape: Some(TensorShapeProto { dim }) }),
        }),
        doc_string: String::new(),
    }
}

pub(crate) struct Exporter<'a> {
    nodes: Vec<NodeProto>,
    inits: Vec<crate::proto::TensorProto>,
    init_names: BTreeSet<String>,
    values: BTreeMap<String, ValueInfo>,
    weights: &'a BTreeMap<String, Tensor>,
    aliases: &'a BTreeMap<String, String>,
    counter: usize,
}

impl Exporter<'_> {
    pub(crate) fn emit(&mut self, op: &str, inputs: Vec<String>, output: &str, attribute: Vec<AttributeProto>) {
        self.emit_outputs(op, inputs, vec![output.into()], attribute);
    }

    /// A node with several output positions (`""` for one not produced),
    /// named after the last one.
    pub(crate) fn emit_outputs(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) {
        let name = outputs.iter().rev().find(|o| !o.is_empty()).cloned().unwrap_or_default();
        self.nodes.push(NodeProto {
            input: inputs,
            output: outputs,
            name,
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
    }

    pub(crate) fn temp(&mut self, node: &str, what: &str) -> String {
        self.counter += 1;
        format!("{node}/{what}_{}", self.counter)
    }

    /// An initializer; returns its name.
    pub(crate) fn constant(&mut self, name: &str, t: &Tensor) -> String {
        if self.init_names.insert(name.to_owned()) {
            self.inits.push(to_proto(name, t));
        }
        name.to_owned()
    }

    pub(crate) fn scalar(&mut self, node: &str, what: &str, dtype: DType, v: f64) -> String {
        let t = if dtype == DType::F64 { Tensor::scalar(v) } else { Tensor::scalar(v as f32) };
        let name = self.temp(node, what);
        self.constant(&name, &t)
    }

    /// The stored weight behind a parameter name (aliases resolved).
    pub(crate) fn weight(&mut self, name: &str) -> Result<String, String> {
        let stored = self.aliases.get(name).map_or(name, String::as_str);
        let t = self.weights.get(stored).ok_or_else(|| format!("weight `{name}` is missing"))?.clone();
        Ok(self.constant(stored, &t))
    }

    pub(crate) fn dtype(&self, value: &str) -> DType {
        self.values.get(value).map_or(DType::F32, |v| v.dtype)
    }

    pub(crate) fn rank(&self, value: &str) -> Option<usize> {
        self.values.get(value).map(|v| v.shape.rank())
    }

    fn export_node(&mut self, node: &Node) -> Result<(), String> {
        let rule = rule(node.op).ok_or_else(|| format!("no ONNX export for {}", node.op))?;
        // Operands in slot order: values as given, then weights for the remaining parameters.
        let mut ops: BTreeMap<&'static str, String> = BTreeMap::new();
        for (slot, operand) in node.operands() {
            match operand {
                Operand::Value(v) => {
                    ops.insert(slot.name, v.to_owned());
                }
                Operand::Weight { name, spec } if spec.required => {
                    ops.insert(slot.name, self.weight(&name)?);
                }
                Operand::Weight { .. } => {}
            }
        }
        let x = ops.get("input").cloned().unwrap_or_default();
        let dtype = self.dtype(&x);
        let args = Args { node, ops, x, out: node.name.clone(), dtype };
        (rule.export)(self, &args)
    }

    /// The transpose of matrix `w`: a transposed initializer when `w` is one, else a Transpose node.
    pub(crate) fn transposed(&mut self, node: &str, w: &str) -> String {
        if let Some(t) = self.inits.iter().find(|t| t.name == w).and_then(|p| crate::tensor::from_proto(p).ok())
            && let Ok(tt) = crate::tensor::transpose(&t)
        {
            let name = format!("{w}.T");
            return self.constant(&name, &tt);
        }
        let wt = self.temp(node, "weight_t");
        self.emit("Transpose", vec![w.to_owned()], &wt, vec![a_ints("perm", vec![1, 0])]);
        wt
    }

    pub(crate) fn ones(&mut self, node: &str, dtype: DType, shape: &[usize], v: f64) -> String {
        let n: usize = shape.iter().product();
        let t = if dtype == DType::F64 {
            Tensor::from_vec(shape.to_vec(), vec![v; n])
        } else {
            Tensor::from_vec(shape.to_vec(), vec![v as f32; n])
        };
        let name = self.temp(node, if v == 0.0 { "zeros" } else { "ones" });
        self.constant(&name, &t.expect("length matches shape"))
    }

    pub(crate) fn shape_constant(&mut self, node: &str, shape: Vec<i64>) -> String {
        let len = shape.len();
        let name = self.temp(node, "shape");
        self.constant(&name, &Tensor::from_vec(vec![len], shape).expect("length matches"))
    }
}

/// An ONNX model (opset 17) computing what `graph` computes with `weights`
/// (aliases name the stored tensor they share).
pub fn export(
    graph: &Graph,
    weights: &BTreeMap<String, Tensor>,
    aliases: &BTreeMap<String, String>,
) -> Result<ModelProto, ExportError> {
    export_with(graph, weights, aliases, &ExportOptions::default())
}

/// [`export`] with `options`: graph inputs and outputs take back their ONNX names.
pub fn export_with(
    graph: &Graph,
    weights: &BTreeMap<String, Tensor>,
    aliases: &BTreeMap<String, String>,
    options: &ExportOptions,
) -> Result<ModelProto, ExportError> {
    let mut model = export_graph(graph, weights, aliases)?;
    if let Some(g) = model.graph.as_mut() {
        rename_values(g, &options.onnx_names)?;
    }
    Ok(model)
}

/// Renames values of `graph` (`from` -> `to`) wherever they appear.
fn rename_values(graph: &mut GraphProto, names: &BTreeMap<String, String>) -> Result<(), ExportError> {
    let mut used: BTreeSet<String> = graph.node.iter().flat_map(|n| n.input.iter().chain(&n.output)).cloned().collect();
    used.extend(graph.initializer.iter().map(|t| t.name.clone()));
    used.extend(graph.input.iter().chain(&graph.output).map(|v| v.name.clone()));
    let pairs: Vec<(&String, &String)> = names.iter().filter(|(from, to)| from != to && used.contains(*from)).collect();
    for (from, to) in pairs {
        if used.contains(to) {
            return Err(ExportError::NameTaken { value: from.clone(), onnx: to.clone() });
        }
        used.insert(to.clone());
        let rename = |s: &mut String| {
            if s == from {
                s.clone_from(to);
            }
        };
        for n in &mut graph.node {
            n.input.iter_mut().chain(n.output.iter_mut()).for_each(rename);
        }
        graph.input.iter_mut().chain(graph.output.iter_mut()).for_each(|v| rename(&mut v.name));
    }
    Ok(())
}

fn export_graph(
    graph: &Graph,
    weights: &BTreeMap<String, Tensor>,
    aliases: &BTreeMap<String, String>,
) -> Result<ModelProto, ExportError> {
    let table =
        WeightInfo::table(weights.iter().chain(aliases.iter().filter_map(|(a, t)| weights.get(t).map(|w| (a, w)))));
    let values = graph.check(Some(&table)).values;
    let mut ex = Exporter {
        nodes: Vec::new(),
        inits: Vec::new(),
        init_names: BTreeSet::new(),
        values,
        weights,
        aliases,
        counter: 0,
    };
    for node in graph.topological_order() {
        ex.export_node(node).map_err(|reason| ExportError::Node {
            node: node.name.clone(),
            op: node.op.name(),
            reason,
        })?;
    }
    // Initializers no node reads (parameters a decomposition replaced) are dropped.
    let read: BTreeSet<&String> = ex.nodes.iter().flat_map(|n| n.input.iter()).collect();
    let inits: Vec<_> = ex.inits.iter().filter(|t| read.contains(&t.name)).cloned().collect();
    let io = |names: Vec<(String, Option<ValueInfo>)>| -> Result<Vec<ValueInfoProto>, ExportError> {
        names
            .into_iter()
            .map(|(n, v)| v.map(|v| value_info(&n, &v)).ok_or(ExportError::UnknownShape { value: n }))
            .collect()
    };
    let inputs =
        io(graph.inputs().iter().map(|i| (i.name.clone(), Some(ValueInfo::new(i.dtype, i.shape.clone())))).collect())?;
    let outputs = io(graph.outputs().iter().map(|o| (o.clone(), ex.values.get(o).cloned())).collect())?;
    Ok(ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: EXPORT_OPSET }],
        producer_name: "nnbundle".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: ex.nodes,
            name: "nnbundle".into(),
            initializer: inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    })
}
