//! ONNX to nnbundle.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{AttrValue, Attrs, Dim, Graph, GraphInput, Node, OpKind, Operands, Role, Shape, ValueInfo};

use crate::ImportError;
use crate::proto::{AttributeProto, DimensionValue, GraphProto, ModelProto, NodeProto};
use crate::tensor::{dtype_of, from_proto, transpose};

/// ONNX operators the importer maps (the vocabulary's counterparts).
pub const SUPPORTED_OPS: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "LayerNormalization",
    "LeakyRelu",
    "LogSoftmax",
    "MatMul",
    "MaxPool",
    "Mul",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Sub",
    "Tanh",
    "Transpose",
];

/// ONNX default-domain opsets the importer reads.
pub const SUPPORTED_OPSETS: std::ops::RangeInclusive<i64> = 6..=25;

/// An imported model: the graph, its stored weights and aliases (tied initializers).
#[derive(Debug, Clone)]
pub struct Imported {
    /// The graph.
    pub graph: Graph,
    /// Stored weights by parameter name.
    pub weights: BTreeMap<String, Tensor>,
    /// Parameter names that share another parameter's stored tensor.
    pub aliases: BTreeMap<String, String>,
    /// The model's default-domain opset.
    pub opset: i64,
}

impl Imported {
    /// A bundle writer holding the graph, the weights and the aliases.
    pub fn to_writer(&self) -> Result<nnbundle_container::BundleWriter, nnbundle_container::ContainerError> {
        let mut w = nnbundle_container::BundleWriter::new();
        w.set_graph(self.graph.clone());
        for (name, t) in &self.weights {
            w.add_tensor(name.clone(), t.clone())?;
        }
        for (alias, target) in &self.aliases {
            w.add_alias(alias.clone(), target.clone())?;
        }
        w.set_metadata("source_format", "onnx")?;
        w.set_metadata("source_opset", self.opset)?;
        Ok(w)
    }
}

/// A node operand: a graph value, or a constant (with the ONNX name it came from).
#[derive(Debug, Clone)]
enum Operand {
    Value(String),
    Const(Tensor, Option<String>),
}

/// Why one ONNX node cannot be imported.
type NodeResult = Result<(), String>;

struct Importer {
    opset: i64,
    /// ONNX value name to our value name.
    names: HashMap<String, String>,
    used: BTreeSet<String>,
    consts: HashMap<String, Tensor>,
    infos: HashMap<String, ValueInfo>,
    inputs: Vec<GraphInput>,
    nodes: Vec<Node>,
    weights: BTreeMap<String, Tensor>,
    aliases: BTreeMap<String, String>,
    /// ONNX initializer name to the weight that stores it unchanged.
    stored: HashMap<String, String>,
}

/// A value name from an ONNX name: dot-separated parts of `[A-Za-z0-9_]`.
fn sanitize(name: &str) -> String {
    let mapped: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '.' { c } else { '_' }).collect();
    let parts: Vec<&str> = mapped.split('.').filter(|p| !p.is_empty()).collect();
    let joined = parts.join(".");
    if joined.is_empty() { "v".into() } else { joined }
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

fn attr_s(node: &NodeProto, name: &str, default: &str) -> String {
    attr(node, name).map_or(default.to_owned(), |a| String::from_utf8_lossy(&a.s).into_owned())
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
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
        self.names
            .get(onnx)
            .map(|n| Operand::Value(n.clone()))
            .ok_or_else(|| format!("input `{onnx}` is not defined before it is used"))
    }

    fn info(&self, op: &Operand) -> Option<ValueInfo> {
        match op {
            Operand::Value(v) => self.infos.get(v).cloned(),
            Operand::Const(t, _) => {
                Some(ValueInfo::new(t.dtype(), Shape::fixed(&t.shape().iter().map(|&d| d as u64).collect::<Vec<_>>())))
            }
        }
    }

    /// Static shape of an operand, when every dimension is known.
    fn static_shape(&self, op: &Operand) -> Option<Vec<i64>> {
        self.info(op)?.shape.to_fixed().map(|v| v.into_iter().map(|d| d as i64).collect())
    }

    fn rank(&self, op: &Operand) -> Option<usize> {
        self.info(op).map(|i| i.shape.rank())
    }

    /// Adds a node named after `hint` applying `op` to `operands` (values first,
    /// then constants, which fill parameter slots); returns the output's name.
    fn add(
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
        nnbundle_graph::prepare_attrs(op, &mut a)?;
        let name = self.fresh(hint);
        let slots = op.def().present_slots(&a);
        let mut inputs = Vec::new();
        let mut data_infos = Vec::new();
        let mut params: BTreeMap<&'static str, Option<ValueInfo>> = BTreeMap::new();
        let mut seen_const = false;
        let mut complete = true;
        for (k, operand) in operands.iter().enumerate() {
            let slot = if slots.len() == 1 && slots[0].role == Role::Variadic {
                slots[0]
            } else {
                *slots.get(k).ok_or_else(|| format!("{op} takes at most {} operands here", slots.len()))?
            };
            match operand {
                Operand::Value(v) => {
                    if seen_const {
                        return Err(format!(
                            "{op} would need a constant before a value among its operands, which opset 1 cannot express"
                        ));
                    }
                    inputs.push(v.clone());
                    let info = self.infos.get(v).cloned();
                    if slot.role == Role::Param {
                        params.insert(slot.name, info);
                    } else if let Some(i) = info {
                        data_infos.push(i);
                    } else {
                        complete = false;
                    }
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
                    match source.as_ref().and_then(|s| self.stored.get(s)) {
                        Some(first) if self.weights.get(first).is_some_and(|w| w == t) => {
                            self.aliases.insert(weight.clone(), first.clone());
                        }
                        _ => {
                            if let Some(s) = source {
                                self.stored.entry(s.clone()).or_insert_with(|| weight.clone());
                            }
                            self.weights.insert(weight.clone(), t.clone());
                        }
                    }
                    params.insert(slot.name, self.info(operand));
                }
            }
        }
        let operands_facts = Operands { data: data_infos, params };
        // The shape rules expect every data operand: only ask when all are known.
        if complete
            && operands_facts.data.len() >= slots.iter().filter(|s| s.role == Role::Data).count().max(1)
            && let Ok(Some(info)) = op.def().rule.infer(&a, &operands_facts)
        {
            self.infos.insert(name.clone(), info);
        }
        self.nodes.push(Node { name: name.clone(), op, inputs, attrs: a });
        Ok(name)
    }

    /// A scalar constant of the dtype of `like`.
    fn scalar(&self, like: &Operand, v: f64) -> Operand {
        let t = match self.info(like).map(|i| i.dtype) {
            Some(DType::F64) => Tensor::scalar(v),
            _ => Tensor::scalar(v as f32),
        };
        Operand::Const(t, None)
    }

    /// Windows of Conv/pools: pads (2n list) from `pads` or `auto_pad`.
    fn pads(
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

    fn import_node(&mut self, node: &NodeProto) -> NodeResult {
        let out = node.output.first().cloned().unwrap_or_default();
        // Nodes are named after their output value, which other nodes refer to.
        let hint = out.clone();
        let operands: Vec<Operand> =
            node.input.iter().filter(|i| !i.is_empty()).map(|i| self.operand(i)).collect::<Result<_, _>>()?;
        let op = node.op_type.as_str();
        let arg = |i: usize| operands.get(i).cloned().ok_or_else(|| format!("{op} needs input {i}"));
        let extra_outputs_used = node.output.iter().skip(1).any(|o| !o.is_empty());
        // Shape ops on constants are folded into new constants.
        if let [Operand::Const(t, _), rest @ ..] = operands.as_slice()
            && rest.iter().all(|o| matches!(o, Operand::Const(..)))
            && let Some(folded) = fold(node, t, rest)?
        {
            self.consts.insert(out, folded);
            return Ok(());
        }
        let result = match op {
            "Constant" => {
                let t = attr(node, "value")
                    .and_then(|a| a.t.as_ref())
                    .ok_or("Constant without a tensor `value` (sparse and scalar-list forms are not supported)")?;
                let tensor = from_proto(t).map_err(|e| format!("Constant value: {e}"))?;
                self.consts.insert(out.clone(), tensor);
                return Ok(());
            }
            "Identity" => self.add(&hint, OpKind::Identity, vec![], vec![arg(0)?])?,
            "Dropout" => {
                let training = operands.get(2).and_then(|o| match o {
                    Operand::Const(t, _) => t.to_vec::<bool>().ok().map(|v| v.iter().any(|&b| b)),
                    _ => Some(true),
                });
                if attr_i(node, "is_test", 1) == 0 || training == Some(true) {
                    return Err(
                        "training-mode dropout (random masks) is outside opset 1; export the model in inference mode"
                            .into(),
                    );
                }
                if extra_outputs_used {
                    return Err("Dropout's mask output is used, which opset 1 does not produce".into());
                }
                let p = match operands.get(1) {
                    Some(Operand::Const(t, _)) => {
                        t.to_vec::<f32>().ok().and_then(|v| v.first().copied()).unwrap_or(0.5)
                    }
                    _ => attr_f(node, "ratio", 0.5),
                };
                self.add(&hint, OpKind::Dropout, vec![("p", AttrValue::Float(f64::from(p)))], vec![arg(0)?])?
            }
            "Relu" => self.add(&hint, OpKind::ReLU, vec![], vec![arg(0)?])?,
            "Sigmoid" => self.add(&hint, OpKind::Sigmoid, vec![], vec![arg(0)?])?,
            "Tanh" => self.add(&hint, OpKind::Tanh, vec![], vec![arg(0)?])?,
            "LeakyRelu" => self.add(
                &hint,
                OpKind::LeakyReLU,
                vec![("negative_slope", AttrValue::Float(f64::from(attr_f(node, "alpha", 0.01))))],
                vec![arg(0)?],
            )?,
            "Gelu" => {
                let approx = attr_s(node, "approximate", "none");
                self.add(&hint, OpKind::GELU, vec![("approximate", AttrValue::Str(approx))], vec![arg(0)?])?
            }
            "Softmax" | "LogSoftmax" => self.softmax(node, &hint, arg(0)?)?,
            "Add" | "Sub" | "Mul" | "Div" => self.binary(node, &hint, arg(0)?, arg(1)?)?,
            "MatMul" => self.matmul(&hint, arg(0)?, arg(1)?)?,
            "Gemm" => self.gemm(node, &hint, &operands)?,
            "Conv" => self.conv(node, &hint, &operands)?,
            "MaxPool" | "AveragePool" => {
                if extra_outputs_used {
                    return Err("MaxPool's indices output is used, which opset 1 does not produce".into());
                }
                self.pool(node, &hint, arg(0)?)?
            }
            "GlobalAveragePool" => {
                if self.rank(&arg(0)?) != Some(4) {
                    return Err("GlobalAveragePool is supported on 4-D inputs [N, C, H, W]".into());
                }
                self.add(
                    &hint,
                    OpKind::AdaptiveAvgPool2d,
                    vec![("output_size", AttrValue::Ints(vec![1, 1]))],
                    vec![arg(0)?],
                )?
            }
            "BatchNormalization" => self.batch_norm(node, &hint, &operands, extra_outputs_used)?,
            "LayerNormalization" => {
                if extra_outputs_used {
                    return Err("LayerNormalization's mean and inverse-deviation outputs are used, which opset 1 does not produce".into());
                }
                self.layer_norm(node, &hint, &operands)?
            }
            "Gather" => self.add(
                &hint,
                OpKind::Gather,
                vec![("axis", AttrValue::Int(attr_i(node, "axis", 0)))],
                vec![arg(0)?, arg(1)?],
            )?,
            "Flatten" => self.flatten(&hint, arg(0)?, attr_i(node, "axis", 1))?,
            "Reshape" => self.reshape(node, &hint, arg(0)?, operands.get(1).cloned())?,
            "Transpose" => {
                let rank = self.rank(&arg(0)?).ok_or("Transpose needs its input's rank")? as i64;
                let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..rank).rev().collect());
                self.add(&hint, OpKind::Permute, vec![("dims", AttrValue::Ints(perm))], vec![arg(0)?])?
            }
            "Concat" => {
                let axis = attr(node, "axis").map(|a| a.i).ok_or("Concat needs `axis`")?;
                self.add(&hint, OpKind::Concat, vec![("dim", AttrValue::Int(axis))], operands.clone())?
            }
            other => return Err(format!("unsupported op {other}")),
        };
        self.names.insert(out, result);
        Ok(())
    }

    fn softmax(&mut self, node: &NodeProto, hint: &str, x: Operand) -> Result<String, String> {
        let kind = if node.op_type == "Softmax" { OpKind::Softmax } else { OpKind::LogSoftmax };
        let rank = self.rank(&x).ok_or("Softmax needs its input's rank")? as i64;
        if self.opset >= 13 {
            return self.add(hint, kind, vec![("dim", AttrValue::Int(attr_i(node, "axis", -1)))], vec![x]);
        }
        // Before opset 13 the input is flattened to 2-D at `axis` and normalized over the second part.
        let axis = attr_i(node, "axis", 1);
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return Err(format!("axis {axis} is out of range for rank {rank}"));
        }
        if axis == rank - 1 {
            return self.add(hint, kind, vec![("dim", AttrValue::Int(-1))], vec![x]);
        }
        let shape =
            self.static_shape(&x).ok_or("Softmax before opset 13 over several axes needs a static input shape")?;
        let inner: i64 = shape[axis as usize..].iter().product();
        let flat = self.add(
            &format!("{hint}_2d"),
            OpKind::Reshape,
            vec![("shape", AttrValue::Ints(vec![-1, inner]))],
            vec![x],
        )?;
        let soft = self.add(
            &format!("{hint}_normalized"),
            kind,
            vec![("dim", AttrValue::Int(1))],
            vec![Operand::Value(flat)],
        )?;
        self.add(hint, OpKind::Reshape, vec![("shape", AttrValue::Ints(shape))], vec![Operand::Value(soft)])
    }

    fn binary(&mut self, node: &NodeProto, hint: &str, a: Operand, b: Operand) -> Result<String, String> {
        if attr(node, "axis").is_some() {
            return Err(format!(
                "{} with the legacy `axis` broadcast attribute is not supported (re-export at opset 7 or newer)",
                node.op_type
            ));
        }
        let kind = match node.op_type.as_str() {
            "Add" => OpKind::Add,
            "Sub" => OpKind::Sub,
            "Mul" => OpKind::Mul,
            _ => OpKind::Div,
        };
        match (&a, &b) {
            (Operand::Const(..), Operand::Value(_)) => match kind {
                OpKind::Add | OpKind::Mul => self.add(hint, kind, vec![], vec![b, a]),
                OpKind::Sub => {
                    // c - x = (x * -1) + c
                    let minus = self.scalar(&b, -1.0);
                    let neg = self.add(&format!("{hint}_negated"), OpKind::Mul, vec![], vec![b, minus])?;
                    self.add(hint, OpKind::Add, vec![], vec![Operand::Value(neg), a])
                }
                _ => Err("Div of a constant by a value is not expressible in opset 1".into()),
            },
            (Operand::Const(..), Operand::Const(..)) => {
                Err("constant arithmetic is not folded; simplify the model (onnxsim) first".into())
            }
            _ => self.add(hint, kind, vec![], vec![a, b]),
        }
    }

    fn matmul(&mut self, hint: &str, a: Operand, b: Operand) -> Result<String, String> {
        if let (Operand::Value(_), Operand::Const(w, src)) = (&a, &b)
            && w.shape().len() == 2
            && self.rank(&a).is_some_and(|r| r >= 1)
        {
            // x @ W with a constant [in, out] matrix is Linear with weight Wᵀ; a
            // following Add of a constant bias is folded in by `fold_bias`.
            let _ = src;
            let (k, n) = (w.shape()[0] as i64, w.shape()[1] as i64);
            let wt = transpose(w)?;
            return self.add(
                hint,
                OpKind::Linear,
                vec![
                    ("in_features", AttrValue::Int(k)),
                    ("out_features", AttrValue::Int(n)),
                    ("bias", AttrValue::Bool(false)),
                ],
                vec![a, Operand::Const(wt, None)],
            );
        }
        match (&a, &b) {
            (Operand::Const(..), _) => Err("MatMul with a constant left operand is not expressible in opset 1".into()),
            _ => self.add(hint, OpKind::MatMul, vec![], vec![a, b]),
        }
    }

    fn gemm(&mut self, node: &NodeProto, hint: &str, ops: &[Operand]) -> Result<String, String> {
        let (alpha, beta) = (attr_f(node, "alpha", 1.0), attr_f(node, "beta", 1.0));
        let (ta, tb) = (attr_i(node, "transA", 0) != 0, attr_i(node, "transB", 0) != 0);
        let a = ops.first().cloned().ok_or("Gemm needs A")?;
        let b = ops.get(1).cloned().ok_or("Gemm needs B")?;
        let c = ops.get(2).cloned();
        if attr(node, "broadcast").is_some_and(|x| x.i == 0) && c.is_some() {
            return Err("Gemm with broadcast=0 (opset < 7) is not supported".into());
        }
        // The common case: a constant weight, no transposed A, alpha 1: Linear.
        if let (Operand::Value(_), Operand::Const(w, _), false, 1.0) = (&a, &b, ta, alpha)
            && w.shape().len() == 2
        {
            let weight = if tb { w.clone() } else { transpose(w)? };
            let (n, k) = (weight.shape()[0], weight.shape()[1]);
            let bias = match &c {
                Some(Operand::Const(t, _)) if t.len() == n && t.shape().iter().filter(|&&d| d != 1).count() <= 1 => {
                    Some(scale(
                        &Tensor::from_bytes(t.dtype(), vec![n], t.as_bytes().to_vec()).map_err(|e| e.to_string())?,
                        beta,
                    )?)
                }
                _ => None,
            };
            let mut operands = vec![a, Operand::Const(weight, None)];
            let folded = bias.is_some();
            if let Some(b) = bias {
                operands.push(Operand::Const(b, None));
            }
            let attrs = vec![
                ("in_features", AttrValue::Int(k as i64)),
                ("out_features", AttrValue::Int(n as i64)),
                ("bias", AttrValue::Bool(folded)),
            ];
            let linear_hint = if c.is_some() && !folded { format!("{hint}_product") } else { hint.to_owned() };
            let y = self.add(&linear_hint, OpKind::Linear, attrs, operands)?;
            return match (c, folded) {
                (Some(c), false) => self.scaled_add(hint, Operand::Value(y), c, beta),
                _ => Ok(y),
            };
        }
        // The general case, step by step: transposes, product, alpha, beta * C.
        let a = if ta {
            Operand::Value(self.add(
                &format!("{hint}_a_t"),
                OpKind::Permute,
                vec![("dims", AttrValue::Ints(vec![1, 0]))],
                vec![a],
            )?)
        } else {
            a
        };
        let b = match b {
            Operand::Const(w, src) if tb => Operand::Const(transpose(&w)?, src.map(|s| format!("{s}^T"))),
            b if tb => Operand::Value(self.add(
                &format!("{hint}_b_t"),
                OpKind::Permute,
                vec![("dims", AttrValue::Ints(vec![1, 0]))],
                vec![b],
            )?),
            b => b,
        };
        let last = c.is_none() && alpha == 1.0;
        let product_hint = if last { hint.to_owned() } else { format!("{hint}_product") };
        let product = self.add(&product_hint, OpKind::MatMul, vec![], vec![a, b])?;
        let mut y = Operand::Value(product.clone());
        if alpha != 1.0 {
            let s = self.scalar(&y, f64::from(alpha));
            let scaled_hint = if c.is_none() { hint.to_owned() } else { format!("{hint}_scaled") };
            let name = self.add(&scaled_hint, OpKind::Mul, vec![], vec![y.clone(), s])?;
            y = Operand::Value(name);
        }
        match c {
            Some(c) => self.scaled_add(hint, y, c, beta),
            None => match y {
                Operand::Value(v) => Ok(v),
                Operand::Const(..) => Ok(product),
            },
        }
    }

    /// `y + beta * c`.
    fn scaled_add(&mut self, hint: &str, y: Operand, c: Operand, beta: f32) -> Result<String, String> {
        let c = match c {
            Operand::Const(t, _) if beta != 1.0 => Operand::Const(scale(&t, beta)?, None),
            c if beta != 1.0 => {
                let s = self.scalar(&c, f64::from(beta));
                Operand::Value(self.add(&format!("{hint}_c_scaled"), OpKind::Mul, vec![], vec![c, s])?)
            }
            c => c,
        };
        self.add(hint, OpKind::Add, vec![], vec![y, c])
    }

    fn conv(&mut self, node: &NodeProto, hint: &str, ops: &[Operand]) -> Result<String, String> {
        let x = ops.first().cloned().ok_or("Conv needs X")?;
        let w = ops.get(1).cloned().ok_or("Conv needs W")?;
        let wshape = self.static_shape(&w).ok_or("Conv needs the weight's shape")?;
        let spatial = wshape
            .len()
            .checked_sub(2)
            .filter(|s| *s == 1 || *s == 2)
            .ok_or("only 1-D and 2-D convolutions are in opset 1")?;
        let kernel = attr_ints(node, "kernel_shape").unwrap_or_else(|| wshape[2..].to_vec());
        let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
        let dilations = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
        let group = attr_i(node, "group", 1);
        let pads = self.pads(node, &x, &kernel, &strides, &dilations)?;
        let kind = if spatial == 1 { OpKind::Conv1d } else { OpKind::Conv2d };
        let attrs = vec![
            (
                "in_channels",
                AttrValue::Int(
                    wshape[1].checked_mul(group).filter(|_| group >= 1).ok_or("group must be at least 1 and small")?,
                ),
            ),
            ("out_channels", AttrValue::Int(wshape[0])),
            ("kernel_size", AttrValue::Ints(kernel)),
            ("stride", AttrValue::Ints(strides)),
            ("padding", AttrValue::Ints(pads)),
            ("dilation", AttrValue::Ints(dilations)),
            ("groups", AttrValue::Int(group)),
            ("bias", AttrValue::Bool(ops.len() > 2)),
        ];
        self.add(hint, kind, attrs, ops.to_vec())
    }

    fn pool(&mut self, node: &NodeProto, hint: &str, x: Operand) -> Result<String, String> {
        let kernel = attr_ints(node, "kernel_shape").ok_or("pooling needs kernel_shape")?;
        let spatial = kernel.len();
        if spatial != 1 && spatial != 2 {
            return Err("only 1-D and 2-D pooling is in opset 1".into());
        }
        if attr_i(node, "storage_order", 0) != 0 {
            return Err("storage_order 1 is not supported".into());
        }
        let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
        let dilations = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
        let pads = self.pads(node, &x, &kernel, &strides, &dilations)?;
        let max = node.op_type == "MaxPool";
        let kind = match (max, spatial) {
            (true, 1) => OpKind::MaxPool1d,
            (true, _) => OpKind::MaxPool2d,
            (false, 1) => OpKind::AvgPool1d,
            (false, _) => OpKind::AvgPool2d,
        };
        let mut attrs = vec![
            ("kernel_size", AttrValue::Ints(kernel)),
            ("stride", AttrValue::Ints(strides)),
            ("padding", AttrValue::Ints(pads)),
            ("dilation", AttrValue::Ints(dilations)),
            ("ceil_mode", AttrValue::Bool(attr_i(node, "ceil_mode", 0) != 0)),
        ];
        if !max {
            // ONNX counts only real elements unless told otherwise; PyTorch's default is the opposite.
            attrs.push(("count_include_pad", AttrValue::Bool(attr_i(node, "count_include_pad", 0) != 0)));
        }
        self.add(hint, kind, attrs, vec![x])
    }

    fn batch_norm(&mut self, node: &NodeProto, hint: &str, ops: &[Operand], extra: bool) -> Result<String, String> {
        if extra || attr_i(node, "training_mode", 0) != 0 || attr_i(node, "is_test", 1) == 0 {
            return Err("training-mode BatchNormalization (batch statistics, updated means) is outside opset 1".into());
        }
        if attr_i(node, "spatial", 1) == 0 {
            return Err("BatchNormalization with spatial=0 is not supported".into());
        }
        let x = ops.first().cloned().ok_or("BatchNormalization needs X")?;
        let kind = match self.rank(&x) {
            Some(2 | 3) => OpKind::BatchNorm1d,
            Some(4) => OpKind::BatchNorm2d,
            _ => return Err("BatchNormalization is supported on [N, C], [N, C, L] and [N, C, H, W] inputs".into()),
        };
        let c = self
            .static_shape(ops.get(1).ok_or("BatchNormalization needs a scale")?)
            .and_then(|s| s.first().copied())
            .ok_or("BatchNormalization needs the scale's shape")?;
        let attrs = vec![
            ("num_features", AttrValue::Int(c)),
            ("eps", AttrValue::Float(f64::from(attr_f(node, "epsilon", 1e-5)))),
        ];
        self.add(hint, kind, attrs, ops.to_vec())
    }

    fn layer_norm(&mut self, node: &NodeProto, hint: &str, ops: &[Operand]) -> Result<String, String> {
        let x = ops.first().cloned().ok_or("LayerNormalization needs X")?;
        let scale_shape =
            ops.get(1).and_then(|s| self.static_shape(s)).ok_or("LayerNormalization needs the scale's shape")?;
        let rank = self.rank(&x).ok_or("LayerNormalization needs its input's rank")? as i64;
        let axis = attr_i(node, "axis", -1);
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return Err(format!("axis {axis} is out of range for rank {rank}"));
        }
        let normalized = (rank - axis) as usize;
        if scale_shape.len() != normalized {
            return Err(format!(
                "LayerNormalization scale of shape {scale_shape:?} does not cover the {normalized} trailing dimensions (broadcast scales are not supported)"
            ));
        }
        let attrs = vec![
            ("normalized_shape", AttrValue::Ints(scale_shape)),
            ("eps", AttrValue::Float(f64::from(attr_f(node, "epsilon", 1e-5)))),
            ("bias", AttrValue::Bool(ops.len() > 2)),
        ];
        self.add(hint, OpKind::LayerNorm, attrs, ops.to_vec())
    }

    fn flatten(&mut self, hint: &str, x: Operand, axis: i64) -> Result<String, String> {
        let rank = self.rank(&x).ok_or("Flatten needs its input's rank")? as i64;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..=rank).contains(&axis) {
            return Err(format!("axis {axis} is out of range for rank {rank}"));
        }
        let reshape = |s: &mut Self, shape: Vec<i64>| {
            s.add(hint, OpKind::Reshape, vec![("shape", AttrValue::Ints(shape))], vec![x.clone()])
        };
        if axis == 0 {
            return reshape(self, vec![1, -1]);
        }
        if axis == rank {
            return reshape(self, vec![-1, 1]);
        }
        if axis == 1 {
            return self.add(
                hint,
                OpKind::Flatten,
                vec![("start_dim", AttrValue::Int(1)), ("end_dim", AttrValue::Int(-1))],
                vec![x],
            );
        }
        let tail = self.add(
            &format!("{hint}_tail"),
            OpKind::Flatten,
            vec![("start_dim", AttrValue::Int(axis)), ("end_dim", AttrValue::Int(-1))],
            vec![x],
        )?;
        self.add(
            hint,
            OpKind::Flatten,
            vec![("start_dim", AttrValue::Int(0)), ("end_dim", AttrValue::Int(axis - 1))],
            vec![Operand::Value(tail)],
        )
    }

    fn reshape(&mut self, node: &NodeProto, hint: &str, x: Operand, shape: Option<Operand>) -> Result<String, String> {
        let target: Vec<i64> = match (shape, attr_ints(node, "shape")) {
            (Some(Operand::Const(t, _)), _) => t.to_vec::<i64>().map_err(|e| format!("Reshape shape: {e}"))?,
            (None, Some(s)) => s,
            _ => {
                return Err(
                    "Reshape needs a constant target shape (a shape computed at run time is outside opset 1)".into()
                );
            }
        };
        let allow_zero = attr_i(node, "allowzero", 0) != 0;
        let input = self.info(&x).map(|i| i.shape);
        // [0, .., 0, -1, tail...] keeping leading dims and a matching static tail is a Flatten,
        // whatever the leading dims are (a symbolic batch, typically).
        let lead = target.iter().take_while(|&&d| d == 0).count();
        if !allow_zero
            && lead > 0
            && target.get(lead) == Some(&-1)
            && let Some(shape) = &input
        {
            let tail = &target[lead + 1..];
            let r = shape.rank();
            let fits = r > lead + tail.len()
                && tail.iter().all(|&d| d > 0)
                && shape.0[r - tail.len()..].iter().zip(tail).all(|(dim, &t)| dim.fixed() == Some(t as u64));
            if fits {
                let end = (r - tail.len() - 1) as i64;
                return self.add(
                    hint,
                    OpKind::Flatten,
                    vec![("start_dim", AttrValue::Int(lead as i64)), ("end_dim", AttrValue::Int(end))],
                    vec![x],
                );
            }
        }
        // ONNX's 0 copies the input's size: substitute static sizes; keep the copy when a size is symbolic.
        let copied = |i: usize| input.as_ref().and_then(|s| s.0.get(i)).and_then(Dim::fixed);
        let needs_copy = !allow_zero && target.iter().enumerate().any(|(i, &d)| d == 0 && copied(i).is_none());
        let resolved: Vec<i64> = target
            .iter()
            .enumerate()
            .map(|(i, &d)| if d == 0 && !allow_zero && !needs_copy { copied(i).map_or(0, |n| n as i64) } else { d })
            .collect();
        let attrs = vec![("shape", AttrValue::Ints(resolved)), ("zero_copies_input", AttrValue::Bool(needs_copy))];
        self.add(hint, OpKind::Reshape, attrs, vec![x])
    }

    /// Folds `Linear(bias=false)` followed by `Add` of a constant bias into one Linear node.
    fn fold_bias(&mut self, graph_outputs: &BTreeSet<String>) {
        let mut readers: HashMap<String, usize> = HashMap::new();
        for n in &self.nodes {
            for i in &n.inputs {
                *readers.entry(i.clone()).or_default() += 1;
            }
        }
        let mut i = 0;
        while i + 1 < self.nodes.len() {
            let (lin, add) = (&self.nodes[i], &self.nodes[i + 1]);
            let fits = lin.op == OpKind::Linear
                && !lin.attrs.bool("bias")
                && lin.inputs.len() == 1
                && add.op == OpKind::Add
                && add.inputs == [lin.name.clone()]
                && readers.get(&lin.name) == Some(&1)
                && !graph_outputs.contains(&lin.name);
            let bias = format!("{}.other", add.name);
            let out = lin.attrs.int("out_features") as usize;
            let ok_bias = fits
                && self.weights.get(&bias).is_some_and(|b| b.len() == out && b.shape().last() == Some(&out))
                && !self.aliases.contains_key(&bias);
            let weight = format!("{}.weight", lin.name);
            if ok_bias && self.weights.contains_key(&weight) && !self.aliases.contains_key(&weight) {
                let add_name = add.name.clone();
                let Some(b) = self.weights.remove(&bias) else { break };
                let Ok(b) = Tensor::from_bytes(b.dtype(), vec![out], b.as_bytes().to_vec()) else { break };
                let Some(w) = self.weights.remove(&weight) else { break };
                self.weights.insert(format!("{add_name}.weight"), w);
                self.weights.insert(format!("{add_name}.bias"), b);
                let mut node = self.nodes.remove(i);
                node.name = add_name;
                node.attrs.set("bias", AttrValue::Bool(true));
                self.nodes[i] = node;
            }
            i += 1;
        }
    }
}

/// A shape op on constants, computed at import: `Ok(None)` for ops not folded.
fn fold(node: &NodeProto, t: &Tensor, rest: &[Operand]) -> Result<Option<Tensor>, String> {
    let shape = |v: Vec<usize>| Tensor::from_bytes(t.dtype(), v, t.as_bytes().to_vec()).map_err(|e| e.to_string());
    Ok(Some(match node.op_type.as_str() {
        "Identity" => t.clone(),
        "Transpose" => {
            let rank = t.shape().len();
            let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
            permute(t, &perm.iter().map(|&p| p as usize).collect::<Vec<_>>())?
        }
        "Reshape" => {
            let Some(Operand::Const(target, _)) = rest.first() else { return Ok(None) };
            let target = target.to_vec::<i64>().map_err(|e| e.to_string())?;
            let copy = |i: usize| t.shape().get(i).copied().ok_or("Reshape copies a dimension the input does not have");
            let mut known: usize = 1;
            let mut dims = Vec::with_capacity(target.len());
            for (i, &d) in target.iter().enumerate() {
                let size = match d {
                    0 => Some(copy(i)?),
                    -1 => None,
                    d if d > 0 => Some(usize::try_from(d).map_err(|_| "Reshape size too large")?),
                    d => return Err(format!("Reshape size {d} is not allowed")),
                };
                if let Some(s) = size {
                    known = known.checked_mul(s).ok_or("Reshape sizes overflow")?;
                }
                dims.push(size);
            }
            let fill = t.len().checked_div(known).unwrap_or(0);
            shape(dims.into_iter().map(|d| d.unwrap_or(fill)).collect())?
        }
        _ => return Ok(None),
    }))
}

/// A tensor with its axes reordered (`perm[i]` is the source axis of axis `i`).
fn permute(t: &Tensor, perm: &[usize]) -> Result<Tensor, String> {
    let src_shape = t.shape();
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    if sorted != (0..src_shape.len()).collect::<Vec<_>>() {
        return Err(format!("perm {perm:?} is not a permutation of the axes of shape {src_shape:?}"));
    }
    let size = t.dtype().size();
    let dst_shape: Vec<usize> = perm.iter().map(|&p| src_shape[p]).collect();
    let mut src_strides = vec![1usize; src_shape.len()];
    for i in (0..src_shape.len().saturating_sub(1)).rev() {
        src_strides[i] = src_strides[i + 1] * src_shape[i + 1];
    }
    let src = t.as_bytes();
    let mut out = Vec::with_capacity(src.len());
    let mut index = vec![0usize; dst_shape.len()];
    for _ in 0..t.len() {
        let offset: usize = index.iter().zip(perm).map(|(&i, &p)| i * src_strides[p]).sum();
        out.extend_from_slice(&src[offset * size..(offset + 1) * size]);
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < dst_shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Tensor::from_bytes(t.dtype(), dst_shape, out).map_err(|e| e.to_string())
}

fn scale(t: &Tensor, by: f32) -> Result<Tensor, String> {
    if by == 1.0 {
        return Ok(t.clone());
    }
    match t.dtype() {
        DType::F32 => Tensor::from_vec(
            t.shape().to_vec(),
            t.to_vec::<f32>().map_err(|e| e.to_string())?.into_iter().map(|v| v * by).collect::<Vec<_>>(),
        ),
        DType::F64 => Tensor::from_vec(
            t.shape().to_vec(),
            t.to_vec::<f64>().map_err(|e| e.to_string())?.into_iter().map(|v| v * f64::from(by)).collect::<Vec<_>>(),
        ),
        other => return Err(format!("cannot scale a {other} tensor")),
    }
    .map_err(|e| e.to_string())
}

/// Imports a decoded ONNX model.
pub fn import_model(model: &ModelProto) -> Result<Imported, ImportError> {
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
    import_graph(graph, opset)
}

fn import_graph(graph: &GraphProto, opset: i64) -> Result<Imported, ImportError> {
    let mut im = Importer {
        opset,
        names: HashMap::new(),
        used: BTreeSet::new(),
        consts: HashMap::new(),
        infos: HashMap::new(),
        inputs: Vec::new(),
        nodes: Vec::new(),
        weights: BTreeMap::new(),
        aliases: BTreeMap::new(),
        stored: HashMap::new(),
    };
    for t in &graph.initializer {
        let tensor = from_proto(t).map_err(|reason| ImportError::Tensor { name: t.name.clone(), reason })?;
        im.consts.insert(t.name.clone(), tensor);
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
        let name = im.fresh(&input.name);
        im.names.insert(input.name.clone(), name.clone());
        im.infos.insert(name.clone(), ValueInfo::new(dtype, shape.clone()));
        im.inputs.push(GraphInput { name, dtype, shape });
    }
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut reasons: Vec<String> = Vec::new();
    let mut failed: BTreeSet<&str> = BTreeSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        let known_domain = node.domain.is_empty() || node.domain == "ai.onnx";
        if !known_domain || !SUPPORTED_OPS.contains(&node.op_type.as_str()) {
            let op = if known_domain { node.op_type.clone() } else { format!("{}:{}", node.domain, node.op_type) };
            failures.entry(op).or_default().push(node_label(node, i));
            failed.extend(node.output.iter().map(String::as_str));
            continue;
        }
        // Nodes downstream of a failure are not blamed for it.
        if node.input.iter().any(|v| failed.contains(v.as_str())) {
            failed.extend(node.output.iter().map(String::as_str));
            continue;
        }
        if let Err(reason) = im.import_node(node) {
            failed.extend(node.output.iter().map(String::as_str));
            failures.entry(node.op_type.clone()).or_default().push(node_label(node, i));
            reasons.push(format!("{} ({}): {reason}", node_label(node, i), node.op_type));
        }
    }
    if !failures.is_empty() {
        return Err(ImportError::Unsupported { ops: failures, reasons });
    }
    let mut outputs = Vec::new();
    for o in &graph.output {
        if im.consts.contains_key(&o.name) {
            return Err(ImportError::Input {
                name: o.name.clone(),
                reason: "is a graph output that is a constant; opset 1 outputs are computed values".into(),
            });
        }
        let name = im.names.get(&o.name).cloned().ok_or_else(|| ImportError::Input {
            name: o.name.clone(),
            reason: "is a graph output no node computes".into(),
        })?;
        outputs.push(name);
    }
    let output_set: BTreeSet<String> = outputs.iter().cloned().collect();
    im.fold_bias(&output_set);
    let graph = Graph::new(im.inputs, im.nodes, outputs).map_err(ImportError::Graph)?;
    Ok(Imported { graph, weights: im.weights, aliases: im.aliases, opset })
}

fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() { format!("node {index}") } else { format!("`{}`", node.name) }
}
