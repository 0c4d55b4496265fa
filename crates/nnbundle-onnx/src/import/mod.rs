//! ONNX to nnbundle: the importer core. Each ONNX op is translated by one
//! row of the table in [`table`], kept in the file of its op family (the
//! same file names as the graph crate's `ops` and the runtime's `ops`).

mod activation;
mod constant;
mod conv;
mod elementwise;
mod fold;
mod index;
mod linear;
mod matmul;
mod norm;
mod pool;
mod recurrent;
mod reduce;
mod shape;
mod symbolic;
pub(crate) mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{
    AttrValue, Attrs, Dim, GraphBuilder, GraphInput, Node, OpKind, Role, Shape, ValueInfo, WeightInfo,
};

use crate::ImportError;
use crate::proto::{AttributeProto, DimensionValue, GraphProto, ModelProto, NodeProto};
use crate::tensor::{dtype_of, from_proto};

/// ONNX default-domain opsets the importer reads.
pub const SUPPORTED_OPSETS: std::ops::RangeInclusive<i64> = 6..=25;

/// An imported model: the graph, its stored weights and aliases (tied initializers).
#[derive(Debug, Clone)]
pub struct Imported {
    /// The graph.
    pub graph: nnbundle_graph::Graph,
    /// Stored weights by parameter name.
    pub weights: BTreeMap<String, Tensor>,
    /// Parameter names that share another parameter's stored tensor.
    pub aliases: BTreeMap<String, String>,
    /// The model's default-domain opset.
    pub opset: i64,
    /// Graph inputs and outputs whose ONNX names are not graph names: graph
    /// name to ONNX name (the mapping of [`graph_name`]), for export to restore.
    pub onnx_names: BTreeMap<String, String>,
}

/// The graph name the importer gives an ONNX value name: every character
/// other than an ASCII letter, digit, `_` or `.` becomes `_`; empty
/// dot-separated parts (leading, trailing or doubled dots) are dropped; a
/// name left empty is `v`. A name already taken gets `_1`, `_2`, ...
/// appended, in the order the importer meets them (graph inputs, then node
/// outputs in node order).
pub fn graph_name(onnx: &str) -> String {
    sanitize(onnx)
}

/// What `import_with` may change about a model as it imports it.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Every dimension of an input, fixed, by ONNX input name (for models
    /// whose shape arithmetic cannot be folded while a dimension is dynamic).
    pub input_shapes: BTreeMap<String, Vec<u64>>,
    /// Scalar inputs pinned to a constant, by ONNX input name, the value as
    /// text parsed as the input's dtype (`16000`, `0.5`, `true`): the input
    /// leaves the graph, and branches on it fold.
    pub input_values: BTreeMap<String, String>,
    /// Only these ONNX outputs (and the nodes they need) are imported;
    /// `None` imports every output.
    pub outputs: Option<Vec<String>>,
}

/// A node operand: a graph value, a constant (with the ONNX name it came
/// from), or a shape vector holding dynamic dimensions.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Value(String),
    Const(Tensor, Option<String>),
    Dims(symbolic::Dims),
}

/// One ONNX node as a translator sees it.
pub(crate) struct OnnxNode<'a> {
    /// The node.
    pub proto: &'a NodeProto,
    /// The name its output gets (its ONNX output name, made valid).
    pub hint: &'a str,
    /// Its inputs, resolved.
    pub operands: Vec<Operand>,
    /// Whether an output after the first is named (and so may be read).
    pub extra_outputs_used: bool,
}

impl OnnxNode<'_> {
    /// Operand `i`, or an error naming it.
    pub fn arg(&self, i: usize) -> Result<Operand, String> {
        self.operands.get(i).cloned().ok_or_else(|| format!("{} needs input {i}", self.proto.op_type))
    }

    /// The constant at input position `i` (`None` when left out); an error
    /// naming `what` when it is computed by the graph.
    pub fn constant(&self, im: &Importer, i: usize, what: &str) -> Result<Option<Tensor>, String> {
        let op = &self.proto.op_type;
        match self.proto.input.get(i).filter(|s| !s.is_empty()).map(|s| im.operand(s)).transpose()? {
            None => Ok(None),
            Some(Operand::Const(t, _)) => Ok(Some(t)),
            Some(Operand::Value(v)) => {
                Err(format!("{op} with {what} computed at run time (`{v}`) needs them constant"))
            }
            Some(Operand::Dims(d)) => Err(im.needs_pinning(&format!("{op}'s {what} {d}"))),
        }
    }

    /// [`Self::constant`] as integers.
    pub fn constant_ints(&self, im: &Importer, i: usize, what: &str) -> Result<Option<Vec<i64>>, String> {
        self.constant(im, i, what)?
            .map(|t| {
                t.to_vec::<i64>()
                    .or_else(|_| t.to_vec::<i32>().map(|v| v.into_iter().map(i64::from).collect()))
                    .map_err(|e| format!("{} {what}: {e}", self.proto.op_type))
            })
            .transpose()
    }
}

pub(crate) struct Importer {
    opset: i64,
    /// ONNX value name to our value name.
    names: HashMap<String, String>,
    used: BTreeSet<String>,
    consts: HashMap<String, Tensor>,
    /// Shape vectors with dynamic entries, by ONNX name.
    symbolic: HashMap<String, symbolic::Dims>,
    builder: GraphBuilder,
    weights: BTreeMap<String, Tensor>,
    aliases: BTreeMap<String, String>,
    /// ONNX initializer name to the weight that stores it unchanged.
    stored: HashMap<String, String>,
    /// ONNX value names some node or graph output reads.
    read: HashSet<String>,
    /// ONNX names of the graph inputs with a dimension not fixed.
    dynamic_inputs: Vec<String>,
}

/// A value name from an ONNX name: dot-separated parts of `[A-Za-z0-9_]`.
fn sanitize(name: &str) -> String {
    let mapped: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' }).collect();
    let parts: Vec<&str> = mapped.split('.').filter(|p| !p.is_empty()).collect();
    let joined = parts.join(".");
    if joined.is_empty() { "v".into() } else { joined }
}

pub(crate) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(crate) fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

pub(crate) fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

pub(crate) fn attr_s(node: &NodeProto, name: &str, default: &str) -> String {
    attr(node, name).map_or(default.to_owned(), |a| String::from_utf8_lossy(&a.s).into_owned())
}

pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

impl Importer {
    fn fresh(&mut self, hint: &str) -> String {
        let base = sanitize(hint);
        let mut name = base.clone();
        let mut k = 1;
        while self.used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used.insert(name.clone());
        name
    }

    /// The operand for an ONNX input name.
    fn operand(&self, onnx: &str) -> Result<Operand, String> {
        if let Some(t) = self.consts.get(onnx) {
            return Ok(Operand::Const(t.clone(), Some(onnx.to_owned())));
        }
        if let Some(d) = self.symbolic.get(onnx) {
            return Ok(Operand::Dims(d.clone()));
        }
        self.names
            .get(onnx)
            .map(|n| Operand::Value(n.clone()))
            .ok_or_else(|| format!("input `{onnx}` is not defined before it is used"))
    }

    pub(crate) fn info(&self, op: &Operand) -> Option<ValueInfo> {
        match op {
            Operand::Value(v) => self.builder.value(v).cloned(),
            Operand::Const(t, _) => {
                Some(ValueInfo::new(t.dtype(), Shape::fixed(&t.shape().iter().map(|&d| d as u64).collect::<Vec<_>>())))
            }
            Operand::Dims(d) => {
                let shape = if d.scalar { Shape(vec![]) } else { Shape::fixed(&[d.items.len() as u64]) };
                Some(ValueInfo::new(d.dtype, shape))
            }
        }
    }

    /// Static shape of an operand, when every dimension is known.
    pub(crate) fn static_shape(&self, op: &Operand) -> Option<Vec<i64>> {
        self.info(op)?.shape.to_fixed().map(|v| v.into_iter().map(|d| d as i64).collect())
    }

    pub(crate) fn rank(&self, op: &Operand) -> Option<usize> {
        self.info(op).map(|i| i.shape.rank())
    }

    /// Adds a node named after `hint` applying `op` to `operands` (values first,
    /// then constants, which become the node's parameters); the graph builder
    /// checks it and infers its output. Returns the output's name.
    pub(crate) fn add(
        &mut self,
        hint: &str,
        op: OpKind,
        attrs: Vec<(&str, AttrValue)>,
        operands: Vec<Operand>,
    ) -> Result<String, String> {
        let mut a = Attrs::default();
        for (k, v) in attrs {
            a.set(k, v);
        }
        // Which parameter slots exist depends on attributes with defaults (`bias`).
        a.fill_defaults(op.def().attrs);
        let name = self.fresh(hint);
        let slots = op.def().present_slots(&a);
        let mut inputs = Vec::new();
        let mut seen_const = false;
        // Values fill the slots in order; a constant goes to the next parameter
        // slot, past optional data slots left out.
        let mut next = 0;
        for operand in &operands {
            let slot = if slots.len() == 1 && slots[0].role == Role::Variadic {
                slots[0]
            } else {
                if matches!(operand, Operand::Const(..)) {
                    while slots.get(next).is_some_and(|s| s.role == Role::OptionalData) {
                        next += 1;
                    }
                }
                next += 1;
                *slots.get(next - 1).ok_or_else(|| format!("{op} takes at most {} operands here", slots.len()))?
            };
            match operand {
                Operand::Value(v) => {
                    if seen_const {
                        return Err(format!(
                            "{op} would need a constant before a value among its operands, which opset 1 cannot express"
                        ));
                    }
                    inputs.push(v.clone());
                }
                Operand::Dims(d) => {
                    return Err(self.needs_pinning(&format!("{op} operand `{}` = {d}", slot.name)));
                }
                Operand::Const(t, source) => {
                    if slot.role != Role::Param {
                        return Err(format!(
                            "{op} operand `{}` is a constant, but opset 1 takes a value there",
                            slot.name
                        ));
                    }
                    seen_const = true;
                    let weight = format!("{name}.{}", slot.name);
                    self.builder.weight(weight.clone(), WeightInfo::from(t));
                    match source.as_ref().and_then(|s| self.stored.get(s)) {
                        Some(first) if self.weights.get(first).is_some_and(|w| w == t) => {
                            self.aliases.insert(weight, first.clone());
                        }
                        _ => {
                            if let Some(s) = source {
                                self.stored.entry(s.clone()).or_insert_with(|| weight.clone());
                            }
                            self.weights.insert(weight, t.clone());
                        }
                    }
                }
            }
        }
        self.builder.push(Node { name: name.clone(), op, inputs, attrs: a }).map_err(|p| p.message)?;
        Ok(name)
    }

    fn import_node(&mut self, node: &NodeProto, translator: Option<&table::Translator>) -> Result<(), String> {
        let out = node.output.first().cloned().unwrap_or_default();
        // Inputs by position (`None` for one left out).
        let positional: Vec<Option<Operand>> = node
            .input
            .iter()
            .map(|i| if i.is_empty() { Ok(None) } else { self.operand(i).map(Some) })
            .collect::<Result<_, _>>()?;
        if let Some(folded) = self.evaluate(node, &positional)? {
            match folded {
                Operand::Const(t, _) => self.consts.insert(out, t).map(drop),
                Operand::Dims(d) => self.symbolic.insert(out, d).map(drop),
                Operand::Value(_) => None,
            };
            return Ok(());
        }
        let Some(translator) = translator else {
            return Err(self.not_foldable(node, &positional));
        };
        // Nodes are named after their output value, which other nodes refer to.
        let onnx = OnnxNode {
            proto: node,
            hint: &out,
            operands: positional.into_iter().flatten().collect(),
            extra_outputs_used: node.output.iter().skip(1).any(|o| !o.is_empty() && self.read.contains(o)),
        };
        // `None`: a constant, which the translator recorded.
        if let Some(value) = (translator.translate)(self, &onnx)? {
            self.names.insert(out, value);
        }
        Ok(())
    }

    /// The output of `node` computed at import (a constant, or a shape
    /// vector with dynamic entries), when every input is a constant or
    /// such a vector, or for `Shape` and `Size`, any value.
    fn evaluate(&self, node: &NodeProto, inputs: &[Option<Operand>]) -> Result<Option<Operand>, String> {
        let op = node.op_type.as_str();
        let folded = |d: symbolic::Dims| match d.to_const() {
            Some(t) => Operand::Const(t, None),
            None => Operand::Dims(d),
        };
        if let ("Shape" | "Size", [Some(x @ Operand::Value(_))]) = (op, inputs)
            && let Some(info) = self.info(x)
        {
            let d = if op == "Size" {
                symbolic::Dims::size_of(&info.shape)
            } else {
                symbolic::Dims::shape_of(&info.shape, node)
            };
            return Ok(Some(folded(d)));
        }
        if inputs.iter().any(|i| matches!(i, Some(Operand::Value(_)))) || inputs.is_empty() {
            return Ok(None);
        }
        // A shape vector among the operands: the symbolic evaluator, constants as vectors.
        if inputs.iter().any(|i| matches!(i, Some(Operand::Dims(_)))) {
            let vectors: Vec<Option<symbolic::Dims>> = inputs
                .iter()
                .map(|i| match i {
                    Some(Operand::Dims(d)) => Some(d.clone()),
                    Some(Operand::Const(t, _)) => symbolic::Dims::of_const(t),
                    _ => None,
                })
                .collect();
            return Ok(symbolic::evaluate(node, &vectors, self.opset)?.map(folded));
        }
        let consts: Vec<Option<&Tensor>> = inputs
            .iter()
            .map(|i| match i {
                Some(Operand::Const(t, _)) => Some(t),
                _ => None,
            })
            .collect();
        Ok(constant::evaluate(node, &consts, self.opset)?.map(|t| Operand::Const(t, None)))
    }

    /// Why a node the importer only evaluates could not be: for `Shape` of
    /// a dynamic value, which inputs to pin with `--input-shape`.
    fn not_foldable(&self, node: &NodeProto, inputs: &[Option<Operand>]) -> String {
        let op = &node.op_type;
        if let Some((name, d)) = node.input.iter().zip(inputs).find_map(|(n, o)| match o {
            Some(Operand::Dims(d)) => Some((n, d)),
            _ => None,
        }) {
            return self.needs_pinning(&format!("{op} of `{name}` = {d}"));
        }
        format!(
            "{op} is imported only when its inputs are constants (it is evaluated at import); here one is computed from the graph's inputs"
        )
    }

    /// Why `what`, which depends on dynamic dimensions, does not import:
    /// names `--input-shape` and the inputs with dynamic dimensions.
    pub(crate) fn needs_pinning(&self, what: &str) -> String {
        format!(
            "{what} depends on dynamic dimensions in a way the graph cannot express: \
             fix the dynamic dimensions of the inputs {} with `--input-shape NAME=d0,d1,...`",
            self.dynamic_inputs.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        )
    }

    /// Records the constant output of `node`.
    pub(crate) fn constant(&mut self, node: &OnnxNode<'_>, t: Tensor) {
        self.consts.insert(node.hint.to_owned(), t);
    }

    /// A scalar constant of the dtype of `like`.
    pub(crate) fn scalar(&self, like: &Operand, v: f64) -> Operand {
        let t = match self.info(like).map(|i| i.dtype) {
            Some(DType::F64) => Tensor::scalar(v),
            Some(DType::I64) => Tensor::scalar(v as i64),
            Some(DType::I32) => Tensor::scalar(v as i32),
            _ => Tensor::scalar(v as f32),
        };
        Operand::Const(t, None)
    }

    /// Windows of Conv/pools: pads (2n list) from `pads` or `auto_pad`.
    pub(crate) fn pads(
        &self,
        node: &NodeProto,
        x: &Operand,
        kernel: &[i64],
        strides: &[i64],
        dilations: &[i64],
    ) -> Result<Vec<i64>, String> {
        let n = kernel.len();
        if strides.len() != n || dilations.len() != n {
            return Err(format!(
                "kernel_shape {kernel:?}, strides {strides:?} and dilations {dilations:?} must have one value per spatial dimension"
            ));
        }
        if kernel.iter().chain(strides).chain(dilations).any(|&v| !(1..=1 << 20).contains(&v)) {
            return Err(format!(
                "kernel_shape {kernel:?}, strides {strides:?} and dilations {dilations:?} must be between 1 and 2^20"
            ));
        }
        match attr_s(node, "auto_pad", "NOTSET").as_str() {
            "NOTSET" => Ok(attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * n])),
            "VALID" => Ok(vec![0; 2 * n]),
            mode @ ("SAME_UPPER" | "SAME_LOWER") => {
                let shape = self
                    .static_shape(x)
                    .ok_or("auto_pad SAME_* needs the input's spatial size, which is not static here")?;
                if shape.len() != n + 2 {
                    return Err(format!("input of shape {shape:?} does not have {n} spatial dimensions"));
                }
                let mut begins = Vec::new();
                let mut ends = Vec::new();
                for i in 0..n {
                    let size = shape[2 + i];
                    let out = size.saturating_add(strides[i] - 1) / strides[i];
                    let total = (out - 1)
                        .saturating_mul(strides[i])
                        .saturating_add((kernel[i] - 1) * dilations[i] + 1)
                        .saturating_sub(size)
                        .max(0);
                    let small = total / 2;
                    let (b, e) = if mode == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                    begins.push(b);
                    ends.push(e);
                }
                begins.extend(ends);
                Ok(begins)
            }
            other => Err(format!("auto_pad `{other}` is not an ONNX mode")),
        }
    }
}

/// Imports a decoded ONNX model.
pub fn import_model(model: &ModelProto) -> Result<Imported, ImportError> {
    import_model_with(model, &ImportOptions::default())
}

/// Imports a decoded ONNX model with `options`.
pub fn import_model_with(model: &ModelProto, options: &ImportOptions) -> Result<Imported, ImportError> {
    let graph = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or(ImportError::Opset { version: None })?;
    if !SUPPORTED_OPSETS.contains(&opset) {
        return Err(ImportError::Opset { version: Some(opset) });
    }
    import_graph(graph, opset, options)
}

fn import_graph(graph: &GraphProto, opset: i64, options: &ImportOptions) -> Result<Imported, ImportError> {
    let mut im = Importer {
        opset,
        names: HashMap::new(),
        used: BTreeSet::new(),
        consts: HashMap::new(),
        symbolic: HashMap::new(),
        builder: GraphBuilder::new(),
        weights: BTreeMap::new(),
        aliases: BTreeMap::new(),
        stored: HashMap::new(),
        read: read_values(graph),
        dynamic_inputs: Vec::new(),
    };
    for t in &graph.initializer {
        let tensor = from_proto(t).map_err(|reason| ImportError::Tensor { name: t.name.clone(), reason })?;
        im.consts.insert(t.name.clone(), tensor);
    }
    let input_names: Vec<&str> =
        graph.input.iter().map(|i| i.name.as_str()).filter(|n| !im.consts.contains_key(*n)).collect();
    for name in options.input_shapes.keys().chain(options.input_values.keys()) {
        if !input_names.contains(&name.as_str()) {
            return Err(ImportError::Input {
                name: name.clone(),
                reason: format!("is not a graph input (the inputs are: {})", input_names.join(", ")),
            });
        }
    }
    let mut unknown = 0;
    for input in &graph.input {
        if im.consts.contains_key(&input.name) {
            continue; // An initializer listed as an input (IR < 4): a constant.
        }
        let tensor_type = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .ok_or_else(|| ImportError::Input { name: input.name.clone(), reason: "is not a tensor".into() })?;
        let dtype = dtype_of(tensor_type.elem_type).ok_or_else(|| ImportError::Input {
            name: input.name.clone(),
            reason: format!("has ONNX element type {}", tensor_type.elem_type),
        })?;
        let dims_unknown = tensor_type.shape.is_none();
        let dims = tensor_type.shape.as_ref().map(|s| s.dim.clone()).unwrap_or_default();
        let shape = Shape(
            dims.iter()
                .map(|d| match &d.value {
                    Some(DimensionValue::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as u64),
                    Some(DimensionValue::DimParam(p)) if nnbundle_graph::is_symbol(&sanitize(p).replace('.', "_")) => {
                        Dim::Symbol(sanitize(p).replace('.', "_"))
                    }
                    _ => {
                        unknown += 1;
                        Dim::Symbol(format!("dim{unknown}"))
                    }
                })
                .collect(),
        );
        let bad = |reason: String| ImportError::Input { name: input.name.clone(), reason };
        if let Some(text) = options.input_values.get(&input.name) {
            if shape.rank() != 0 && shape.0.iter().any(|d| d.fixed() != Some(1)) {
                return Err(bad(format!("has shape {shape}: only a scalar input can be pinned to a value")));
            }
            let value = scalar_of(dtype, text).map_err(|e| bad(format!("value `{text}`: {e}")))?;
            let value = value.reshaped(vec![1; shape.rank()]).map_err(|e| bad(e.to_string()))?;
            im.consts.insert(input.name.clone(), value);
            continue;
        }
        let shape = match options.input_shapes.get(&input.name) {
            None => shape,
            Some(dims) => {
                if shape.rank() != dims.len() && !dims_unknown {
                    return Err(bad(format!(
                        "has rank {} ({shape}); --input-shape gives {} dimensions",
                        shape.rank(),
                        dims.len()
                    )));
                }
                if let Some((k, (d, &n))) =
                    shape.0.iter().zip(dims).enumerate().find(|(_, (d, n))| d.fixed().is_some_and(|f| f != **n))
                {
                    return Err(bad(format!("dimension {k} is fixed at {d} by the model, --input-shape gives {n}")));
                }
                Shape::fixed(dims)
            }
        };
        if shape.to_fixed().is_none() {
            im.dynamic_inputs.push(input.name.clone());
        }
        let name = im.fresh(&input.name);
        im.names.insert(input.name.clone(), name.clone());
        im.builder
            .input(GraphInput { name, dtype, shape })
            .map_err(|p| ImportError::Input { name: input.name.clone(), reason: p.message })?;
    }
    let wanted: Vec<&str> = match &options.outputs {
        None => graph.output.iter().map(|o| o.name.as_str()).collect(),
        Some(names) => {
            let all: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
            if let Some(missing) = names.iter().find(|n| !all.contains(&n.as_str())) {
                return Err(ImportError::Input {
                    name: missing.clone(),
                    reason: format!("is not a graph output (the outputs are: {})", all.join(", ")),
                });
            }
            names.iter().map(String::as_str).collect()
        }
    };
    let needed = needed_nodes(graph, &wanted);
    let mut report = Report::default();
    let nodes: Vec<(usize, &NodeProto)> = graph.node.iter().enumerate().filter(|(i, _)| needed[*i]).collect();
    im.import_nodes(&nodes, "", &mut report);
    let Report { failures, reasons, .. } = report;
    if !failures.is_empty() {
        return Err(ImportError::Unsupported { ops: failures, reasons });
    }
    let mut outputs = Vec::new();
    for o in graph.output.iter().filter(|o| wanted.contains(&o.name.as_str())) {
        if im.consts.contains_key(&o.name) {
            return Err(ImportError::Input {
                name: o.name.clone(),
                reason: "is a graph output that is a constant; opset 1 outputs are computed values".into(),
            });
        }
        let mut name = im.names.get(&o.name).cloned().ok_or_else(|| ImportError::Input {
            name: o.name.clone(),
            reason: "is a graph output no node computes".into(),
        })?;
        // An output computed under another name (an If's taken branch, an output listed
        // twice) gets its own by the naming rule, through an Identity.
        if name != sanitize(&o.name) || outputs.contains(&name) {
            let input = Operand::Value(name);
            name = im
                .add(&o.name, OpKind::Identity, vec![], vec![input])
                .map_err(|reason| ImportError::Input { name: o.name.clone(), reason })?;
            im.names.insert(o.name.clone(), name.clone());
        }
        outputs.push(name);
    }
    let output_set: BTreeSet<String> = outputs.iter().cloned().collect();
    let (inputs, mut nodes) = std::mem::take(&mut im.builder).into_parts();
    fold::fold_bias(&mut nodes, &mut im.weights, &im.aliases, &output_set);
    // The interface names that changed, for export to restore.
    let onnx_inputs = graph.input.iter().map(|i| &i.name).filter(|n| im.names.contains_key(*n));
    let onnx_outputs = graph.output.iter().map(|o| &o.name).filter(|n| wanted.contains(&n.as_str()));
    let onnx_names: BTreeMap<String, String> = onnx_inputs
        .chain(onnx_outputs)
        .filter_map(|onnx| im.names.get(onnx).filter(|g| *g != onnx).map(|g| (g.clone(), onnx.clone())))
        .collect();
    let graph = nnbundle_graph::Graph::new(inputs, nodes, outputs).map_err(ImportError::Graph)?;
    Ok(Imported { graph, weights: im.weights, aliases: im.aliases, opset, onnx_names })
}

/// What did not import: node labels by op type, reasons, and the values
/// that failed (whose readers are not blamed again).
#[derive(Default)]
struct Report {
    failures: BTreeMap<String, Vec<String>>,
    reasons: Vec<String>,
    failed: BTreeSet<String>,
}

impl Report {
    fn fail(&mut self, op: String, node: &NodeProto, label: String, reason: Option<String>) {
        self.failed.extend(node.output.iter().cloned());
        if let Some(reason) = reason {
            self.reasons.push(format!("{label} ({op}): {reason}"));
        }
        self.failures.entry(op).or_default().push(label);
    }
}

impl Importer {
    /// Imports `nodes` (with their index in their graph) in order, recording
    /// what fails in `report`; `scope` prefixes the labels of nodes inside
    /// an `If` branch.
    fn import_nodes(&mut self, nodes: &[(usize, &NodeProto)], scope: &str, report: &mut Report) {
        for &(i, node) in nodes {
            let label = format!("{scope}{}", node_label(node, i));
            let known_domain = node.domain.is_empty() || node.domain == "ai.onnx";
            let translator = table::translator(&node.op_type).filter(|_| known_domain);
            let branches = known_domain && node.op_type == "If";
            let foldable = known_domain && constant::FOLDABLE.contains(&node.op_type.as_str());
            if translator.is_none() && !foldable && !branches {
                let op = if known_domain { node.op_type.clone() } else { format!("{}:{}", node.domain, node.op_type) };
                report.fail(op, node, label, None);
                continue;
            }
            // Nodes downstream of a failure are not blamed for it.
            if node.input.iter().any(|v| report.failed.contains(v)) {
                report.failed.extend(node.output.iter().cloned());
                continue;
            }
            if branches {
                match self.taken_branch(node) {
                    Ok(branch) => {
                        let inner: Vec<(usize, &NodeProto)> = branch.node.iter().enumerate().collect();
                        for t in &branch.initializer {
                            match from_proto(t) {
                                Ok(tensor) => drop(self.consts.insert(t.name.clone(), tensor)),
                                Err(e) => report.fail(
                                    "If".into(),
                                    node,
                                    label.clone(),
                                    Some(format!("tensor `{}`: {e}", t.name)),
                                ),
                            }
                        }
                        self.import_nodes(&inner, &format!("{label} > "), report);
                        if branch.output.iter().any(|o| report.failed.contains(&o.name)) {
                            report.failed.extend(node.output.iter().cloned());
                        } else if let Err(reason) = self.bind_branch_outputs(node, branch) {
                            report.fail("If".into(), node, label, Some(reason));
                        }
                    }
                    Err(reason) => {
                        report.fail("If".into(), node, label.clone(), Some(reason));
                        // What the branches would need too, so one report lists everything.
                        self.report_unsupported_bodies(node, &label, report);
                    }
                }
                continue;
            }
            if let Err(reason) = self.import_node(node, translator) {
                report.fail(node.op_type.clone(), node, label, Some(reason));
            }
        }
    }

    /// The branch an `If` takes: its condition must be a constant (fold it
    /// by pinning an input with `--input-value`).
    fn taken_branch<'n>(&self, node: &'n NodeProto) -> Result<&'n GraphProto, String> {
        let cond = node.input.first().ok_or("If needs a condition")?;
        let value = match self.operand(cond)? {
            Operand::Const(t, _) => {
                let Ok(v) = t.to_vec::<bool>() else { return Err(format!("If condition `{cond}` is not a bool")) };
                match v.as_slice() {
                    [b] => *b,
                    _ => return Err(format!("If condition `{cond}` has {} elements, not one", v.len())),
                }
            }
            _ => {
                return Err(format!(
                    "If condition `{cond}` is computed at run time; the vocabulary has no control flow: \
                     pin the inputs it depends on with `--input-value NAME=VALUE` so that it folds"
                ));
            }
        };
        let branch = if value { "then_branch" } else { "else_branch" };
        attr(node, branch).and_then(|a| a.g.as_deref()).ok_or_else(|| format!("If has no `{branch}`"))
    }

    /// The `If` node's outputs are the taken branch's outputs.
    fn bind_branch_outputs(&mut self, node: &NodeProto, branch: &GraphProto) -> Result<(), String> {
        if branch.output.len() != node.output.len() {
            return Err(format!("the branch has {} outputs, If has {}", branch.output.len(), node.output.len()));
        }
        for (out, inner) in node.output.iter().zip(&branch.output) {
            if out.is_empty() {
                continue;
            }
            match self.operand(&inner.name)? {
                Operand::Const(t, _) => drop(self.consts.insert(out.clone(), t)),
                Operand::Dims(d) => drop(self.symbolic.insert(out.clone(), d)),
                Operand::Value(v) => drop(self.names.insert(out.clone(), v)),
            }
        }
        Ok(())
    }

    /// Records every op in the bodies of `node` that has no translator.
    fn report_unsupported_bodies(&self, node: &NodeProto, label: &str, report: &mut Report) {
        let mut stack: Vec<&GraphProto> =
            node.attribute.iter().flat_map(|a| a.g.as_deref().into_iter().chain(a.graphs.iter())).collect();
        while let Some(g) = stack.pop() {
            for (i, n) in g.node.iter().enumerate() {
                stack.extend(n.attribute.iter().flat_map(|a| a.g.as_deref().into_iter().chain(a.graphs.iter())));
                let known = table::translator(&n.op_type).is_some()
                    || constant::FOLDABLE.contains(&n.op_type.as_str())
                    || n.op_type == "If";
                if !known {
                    let op =
                        if n.domain.is_empty() { n.op_type.clone() } else { format!("{}:{}", n.domain, n.op_type) };
                    report.failures.entry(op).or_default().push(format!("{label} > {}", node_label(n, i)));
                }
            }
        }
    }
}

/// For each node of `graph`, whether one of `outputs` depends on it
/// (through the values its inputs and its subgraphs read).
fn needed_nodes(graph: &GraphProto, outputs: &[&str]) -> Vec<bool> {
    let producer: HashMap<&str, usize> =
        graph.node.iter().enumerate().flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i))).collect();
    let mut needed = vec![false; graph.node.len()];
    let mut stack: Vec<usize> = outputs.iter().filter_map(|o| producer.get(o).copied()).collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        let node = &graph.node[i];
        let mut reads: Vec<&str> = node.input.iter().map(String::as_str).collect();
        let mut subgraphs: Vec<&GraphProto> =
            node.attribute.iter().flat_map(|a| a.g.as_deref().into_iter().chain(a.graphs.iter())).collect();
        while let Some(g) = subgraphs.pop() {
            for n in &g.node {
                reads.extend(n.input.iter().map(String::as_str));
                subgraphs.extend(n.attribute.iter().flat_map(|a| a.g.as_deref().into_iter().chain(a.graphs.iter())));
            }
        }
        stack.extend(reads.iter().filter_map(|r| producer.get(r).copied()));
    }
    needed
}

/// A scalar of `dtype` from its text.
fn scalar_of(dtype: DType, text: &str) -> Result<Tensor, String> {
    let t = text.trim();
    let float = || t.parse::<f64>().map_err(|e| e.to_string());
    let int = || t.parse::<i64>().map_err(|e| e.to_string());
    Ok(match dtype {
        DType::F32 => Tensor::scalar(float()? as f32),
        DType::F64 => Tensor::scalar(float()?),
        DType::I64 => Tensor::scalar(int()?),
        DType::I32 => Tensor::scalar(i32::try_from(int()?).map_err(|e| e.to_string())?),
        DType::Bool => Tensor::scalar(t.parse::<bool>().map_err(|e| e.to_string())?),
        other => return Err(format!("pinning a {other} input is not supported")),
    })
}

/// Every value name a node of `graph` (or of a subgraph in its attributes)
/// reads, and the graph's outputs.
fn read_values(graph: &GraphProto) -> HashSet<String> {
    let mut read: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut stack = vec![graph];
    while let Some(g) = stack.pop() {
        for node in &g.node {
            read.extend(node.input.iter().filter(|i| !i.is_empty()).cloned());
            for a in &node.attribute {
                stack.extend(a.g.as_deref());
                stack.extend(a.graphs.iter());
            }
        }
        read.extend(g.output.iter().map(|o| o.name.clone()));
    }
    read
}

fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() { format!("node {index}") } else { format!("`{}`", node.name) }
}
