//! nnbundle to ONNX (opset 17): every op of the vocabulary as standard ONNX
//! operators (GELU, SiLU and MultiheadAttention decomposed into primitives).

use std::collections::{BTreeMap, BTreeSet};

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{Dim, Graph, Node, OpKind, Role, ValueInfo, conv_padding, pool_windows};

use crate::proto::{
    AttributeProto, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto, attribute_type,
};
use crate::tensor::{onnx_type, to_proto};

/// The ONNX opset exports target.
pub const EXPORT_OPSET: i64 = 17;

fn a_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i, ..Default::default() }
}

fn a_ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INTS, ints, ..Default::default() }
}

fn a_float(name: &str, f: f32) -> AttributeProto {
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

struct Exporter<'a> {
    nodes: Vec<NodeProto>,
    inits: Vec<crate::proto::TensorProto>,
    init_names: BTreeSet<String>,
    values: BTreeMap<String, ValueInfo>,
    weights: &'a BTreeMap<String, Tensor>,
    aliases: &'a BTreeMap<String, String>,
    counter: usize,
}

impl Exporter<'_> {
    fn emit(&mut self, op: &str, inputs: Vec<String>, output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.into()],
            name: output.into(),
            op_type: op.into(),
            attribute,
            ..Default::default()
        });
    }

    fn temp(&mut self, node: &str, what: &str) -> String {
        self.counter += 1;
        format!("{node}/{what}_{}", self.counter)
    }

    /// An initializer; returns its name.
    fn constant(&mut self, name: &str, t: &Tensor) -> String {
        if self.init_names.insert(name.to_owned()) {
            self.inits.push(to_proto(name, t));
        }
        name.to_owned()
    }

    fn scalar(&mut self, node: &str, what: &str, dtype: DType, v: f64) -> String {
        let t = if dtype == DType::F64 { Tensor::scalar(v) } else { Tensor::scalar(v as f32) };
        let name = self.temp(node, what);
        self.constant(&name, &t)
    }

    /// The stored weight behind a parameter name (aliases resolved).
    fn weight(&mut self, name: &str) -> Result<String, String> {
        let stored = self.aliases.get(name).map_or(name, String::as_str);
        let t = self.weights.get(stored).ok_or_else(|| format!("weight `{name}` is missing"))?.clone();
        Ok(self.constant(stored, &t))
    }

    fn dtype(&self, value: &str) -> DType {
        self.values.get(value).map_or(DType::F32, |v| v.dtype)
    }

    fn rank(&self, value: &str) -> Option<usize> {
        self.values.get(value).map(|v| v.shape.rank())
    }

    fn export_node(&mut self, node: &Node) -> Result<(), String> {
        let def = node.op.def();
        let a = &node.attrs;
        // Operands in slot order: values as given, then weights for the remaining parameters.
        // (Concat, the one variadic op, reads `node.inputs` directly.)
        let mut ops: BTreeMap<&'static str, String> = BTreeMap::new();
        let present = def.present_slots(a);
        if !present.iter().any(|s| s.role == Role::Variadic) {
            for (k, slot) in present.iter().enumerate() {
                match (node.inputs.get(k), slot.role) {
                    (Some(v), _) => {
                        ops.insert(slot.name, v.clone());
                    }
                    (None, Role::Param) if def.rule.param(slot.name, a).is_some_and(|p| p.required) => {
                        let w = self.weight(&format!("{}.{}", node.name, slot.name))?;
                        ops.insert(slot.name, w);
                    }
                    _ => {}
                }
            }
        }
        let x = ops.get("input").cloned().unwrap_or_default();
        let out = node.name.clone();
        let dtype = self.dtype(&x);
        let get = |s: &str| ops.get(s).cloned().ok_or_else(|| format!("operand `{s}` is missing"));
        match node.op {
            OpKind::Linear => {
                let w = get("weight")?;
                if self.rank(&x) == Some(2) {
                    let mut inputs = vec![x, w];
                    inputs.extend(ops.get("bias").cloned());
                    self.emit("Gemm", inputs, &out, vec![a_int("transB", 1)]);
                } else {
                    let wt = self.transposed(&out, &w);
                    match ops.get("bias").cloned() {
                        Some(b) => {
                            let y = self.temp(&out, "product");
                            self.emit("MatMul", vec![x, wt], &y, vec![]);
                            self.emit("Add", vec![y, b], &out, vec![]);
                        }
                        None => self.emit("MatMul", vec![x, wt], &out, vec![]),
                    }
                }
            }
            OpKind::Conv1d | OpKind::Conv2d => {
                let n = if node.op == OpKind::Conv1d { 1 } else { 2 };
                let pads = conv_padding(a, n);
                let mut onnx_pads: Vec<i64> = pads.iter().map(|p| p.0).collect();
                onnx_pads.extend(pads.iter().map(|p| p.1));
                let mut inputs = vec![x, get("weight")?];
                inputs.extend(ops.get("bias").cloned());
                let attrs = vec![
                    a_ints("kernel_shape", a.ints("kernel_size").to_vec()),
                    a_ints("strides", a.ints("stride").to_vec()),
                    a_ints("dilations", a.ints("dilation").to_vec()),
                    a_ints("pads", onnx_pads),
                    a_int("group", a.int("groups")),
                ];
                self.emit("Conv", inputs, &out, attrs);
            }
            OpKind::MaxPool1d | OpKind::MaxPool2d | OpKind::AvgPool1d | OpKind::AvgPool2d => {
                let n = if matches!(node.op, OpKind::MaxPool1d | OpKind::AvgPool1d) { 1 } else { 2 };
                let windows = pool_windows(a, n);
                let mut pads: Vec<i64> = windows.iter().map(|w| w.pad_begin).collect();
                pads.extend(windows.iter().map(|w| w.pad_end));
                let mut attrs = vec![
                    a_ints("kernel_shape", a.ints("kernel_size").to_vec()),
                    a_ints("strides", a.ints("stride").to_vec()),
                    a_ints("pads", pads),
                    a_int("ceil_mode", i64::from(a.bool("ceil_mode"))),
                ];
                let max = matches!(node.op, OpKind::MaxPool1d | OpKind::MaxPool2d);
                if max {
                    attrs.push(a_ints("dilations", a.ints("dilation").to_vec()));
                } else {
                    if a.ints("dilation").iter().any(|&d| d != 1) {
                        return Err("a dilated AvgPool needs ONNX opset 19; this exporter writes opset 17".into());
                    }
                    attrs.push(a_int("count_include_pad", i64::from(a.bool("count_include_pad"))));
                }
                self.emit(if max { "MaxPool" } else { "AveragePool" }, vec![x], &out, attrs);
            }
            OpKind::AdaptiveAvgPool2d => {
                let o = a.ints("output_size");
                if o == [1, 1] {
                    self.emit("GlobalAveragePool", vec![x], &out, vec![]);
                } else {
                    let shape = self
                        .values
                        .get(&x)
                        .and_then(|v| v.shape.to_fixed())
                        .ok_or("AdaptiveAvgPool2d to a size other than 1x1 needs a static input for ONNX")?;
                    let (h, w) = (shape[2] as i64, shape[3] as i64);
                    if h % o[0] != 0 || w % o[1] != 0 {
                        return Err("AdaptiveAvgPool2d with uneven windows has no ONNX counterpart".into());
                    }
                    let k = vec![h / o[0], w / o[1]];
                    self.emit(
                        "AveragePool",
                        vec![x],
                        &out,
                        vec![a_ints("kernel_shape", k.clone()), a_ints("strides", k)],
                    );
                }
            }
            OpKind::BatchNorm1d | OpKind::BatchNorm2d => {
                let c = a.int("num_features") as usize;
                let (scale, bias) = if a.bool("affine") {
                    (get("weight")?, get("bias")?)
                } else {
                    let ones = self.ones(&out, dtype, &[c], 1.0);
                    let zeros = self.ones(&out, dtype, &[c], 0.0);
                    (ones, zeros)
                };
                let inputs = vec![x, scale, bias, get("running_mean")?, get("running_var")?];
                self.emit("BatchNormalization", inputs, &out, vec![a_float("epsilon", a.float("eps") as f32)]);
            }
            OpKind::LayerNorm => {
                let ns: Vec<usize> = a.ints("normalized_shape").iter().map(|&d| d as usize).collect();
                let scale = match ops.get("weight") {
                    Some(w) => w.clone(),
                    None => self.ones(&out, dtype, &ns, 1.0),
                };
                let mut inputs = vec![x, scale];
                inputs.extend(ops.get("bias").cloned());
                let attrs = vec![a_int("axis", -(ns.len() as i64)), a_float("epsilon", a.float("eps") as f32)];
                self.emit("LayerNormalization", inputs, &out, attrs);
            }
            OpKind::Embedding => self.emit("Gather", vec![get("weight")?, x], &out, vec![a_int("axis", 0)]),
            OpKind::Gather => self.emit("Gather", vec![x, get("indices")?], &out, vec![a_int("axis", a.int("axis"))]),
            OpKind::Dropout | OpKind::Identity => self.emit("Identity", vec![x], &out, vec![]),
            OpKind::Flatten => {
                let info = self.values.get(&x).cloned().ok_or("Flatten needs its input's shape")?;
                let r = info.shape.rank().max(1);
                let (s, e) = (
                    nnbundle_graph::normalize_axis(a.int("start_dim"), r),
                    nnbundle_graph::normalize_axis(a.int("end_dim"), r),
                );
                let (Some(s), Some(e)) = (s, e) else { return Err("Flatten dims out of range".into()) };
                let mut shape: Vec<i64> = vec![0; s];
                shape.push(-1);
                for d in &info.shape.0[e + 1..] {
                    shape.push(
                        d.fixed().ok_or("Flatten before a symbolic trailing dimension has no ONNX Reshape form")?
                            as i64,
                    );
                }
                let sh = self.shape_constant(&out, shape);
                self.emit("Reshape", vec![x, sh], &out, vec![]);
            }
            OpKind::Reshape => {
                let sh = self.shape_constant(&out, a.ints("shape").to_vec());
                // ONNX reads 0 as "copy" unless allowzero; opset 1 does so only with zero_copies_input.
                let allow_zero = a.ints("shape").contains(&0) && !a.bool("zero_copies_input");
                self.emit("Reshape", vec![x, sh], &out, if allow_zero { vec![a_int("allowzero", 1)] } else { vec![] });
            }
            OpKind::Permute => {
                // ONNX wants non-negative axes.
                let r = self.rank(&x).ok_or("Permute needs its input's rank")?;
                let perm = a
                    .ints("dims")
                    .iter()
                    .map(|&d| nnbundle_graph::normalize_axis(d, r).map(|v| v as i64))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("Permute dims out of range")?;
                self.emit("Transpose", vec![x], &out, vec![a_ints("perm", perm)]);
            }
            OpKind::Concat => {
                let inputs: Vec<String> = node.inputs.clone();
                self.emit("Concat", inputs, &out, vec![a_int("axis", a.int("dim"))]);
            }
            OpKind::Add | OpKind::Sub | OpKind::Mul | OpKind::Div | OpKind::MatMul => {
                let op = match node.op {
                    OpKind::Add => "Add",
                    OpKind::Sub => "Sub",
                    OpKind::Mul => "Mul",
                    OpKind::Div => "Div",
                    _ => "MatMul",
                };
                self.emit(op, vec![x, get("other")?], &out, vec![]);
            }
            OpKind::ReLU => self.emit("Relu", vec![x], &out, vec![]),
            OpKind::Sigmoid => self.emit("Sigmoid", vec![x], &out, vec![]),
            OpKind::Tanh => self.emit("Tanh", vec![x], &out, vec![]),
            OpKind::LeakyReLU => {
                self.emit("LeakyRelu", vec![x], &out, vec![a_float("alpha", a.float("negative_slope") as f32)])
            }
            OpKind::SiLU => {
                let s = self.temp(&out, "sigmoid");
                self.emit("Sigmoid", vec![x.clone()], &s, vec![]);
                self.emit("Mul", vec![x, s], &out, vec![]);
            }
            OpKind::GELU => self.gelu(&out, x, dtype, a.str("approximate") == "tanh"),
            OpKind::Softmax => self.emit("Softmax", vec![x], &out, vec![a_int("axis", a.int("dim"))]),
            OpKind::LogSoftmax => self.emit("LogSoftmax", vec![x], &out, vec![a_int("axis", a.int("dim"))]),
            OpKind::MultiheadAttention => {
                let dtype = self.dtype(&get("query")?);
                self.attention(node, &ops, dtype)?;
            }
            other => return Err(format!("no ONNX export for {other}")),
        }
        Ok(())
    }

    /// The transpose of matrix `w`: a transposed initializer when `w` is one, else a Transpose node.
    fn transposed(&mut self, node: &str, w: &str) -> String {
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

    fn ones(&mut self, node: &str, dtype: DType, shape: &[usize], v: f64) -> String {
        let n: usize = shape.iter().product();
        let t = if dtype == DType::F64 {
            Tensor::from_vec(shape.to_vec(), vec![v; n])
        } else {
            Tensor::from_vec(shape.to_vec(), vec![v as f32; n])
        };
        let name = self.temp(node, if v == 0.0 { "zeros" } else { "ones" });
        self.constant(&name, &t.expect("length matches shape"))
    }

    fn shape_constant(&mut self, node: &str, shape: Vec<i64>) -> String {
        let len = shape.len();
        let name = self.temp(node, "shape");
        self.constant(&name, &Tensor::from_vec(vec![len], shape).expect("length matches"))
    }

    /// GELU from primitives: x/2 * (1 + erf(x / sqrt 2)), or the tanh form.
    fn gelu(&mut self, out: &str, x: String, dtype: DType, tanh: bool) {
        let inner = if tanh {
            let cube = self.temp(out, "cube");
            let three = self.scalar(out, "three", dtype, 3.0);
            self.emit("Pow", vec![x.clone(), three], &cube, vec![]);
            let c = self.scalar(out, "c", dtype, 0.044715);
            let scaled = self.temp(out, "scaled_cube");
            self.emit("Mul", vec![cube, c], &scaled, vec![]);
            let sum = self.temp(out, "sum");
            self.emit("Add", vec![x.clone(), scaled], &sum, vec![]);
            let k = self.scalar(out, "sqrt_2_over_pi", dtype, (2.0 / std::f64::consts::PI).sqrt());
            let arg = self.temp(out, "arg");
            self.emit("Mul", vec![sum, k], &arg, vec![]);
            let t = self.temp(out, "tanh");
            self.emit("Tanh", vec![arg], &t, vec![]);
            t
        } else {
            let k = self.scalar(out, "inv_sqrt2", dtype, std::f64::consts::FRAC_1_SQRT_2);
            let arg = self.temp(out, "arg");
            self.emit("Mul", vec![x.clone(), k], &arg, vec![]);
            let e = self.temp(out, "erf");
            self.emit("Erf", vec![arg], &e, vec![]);
            e
        };
        let one = self.scalar(out, "one", dtype, 1.0);
        let plus = self.temp(out, "one_plus");
        self.emit("Add", vec![inner, one], &plus, vec![]);
        let half = self.scalar(out, "half", dtype, 0.5);
        let hx = self.temp(out, "half_x");
        self.emit("Mul", vec![x, half], &hx, vec![]);
        self.emit("Mul", vec![hx, plus], out, vec![]);
    }

    /// MultiheadAttention from MatMul, Reshape, Transpose and Softmax.
    fn attention(&mut self, node: &Node, ops: &BTreeMap<&'static str, String>, dtype: DType) -> Result<(), String> {
        let a = &node.attrs;
        let out = node.name.clone();
        let (e, heads) = (a.int("embed_dim"), a.int("num_heads"));
        let hd = e / heads;
        let get = |s: &str| ops.get(s).cloned().ok_or_else(|| format!("operand `{s}` is missing"));
        let w_in = self
            .weights
            .get(self.aliases.get(&format!("{out}.in_proj_weight")).map_or(&format!("{out}.in_proj_weight"), |s| s))
            .cloned();
        let w_in = w_in.ok_or("MultiheadAttention export needs in_proj_weight stored in the bundle")?;
        let b_in = if a.bool("bias") { self.weights.get(&format!("{out}.in_proj_bias")).cloned() } else { None };
        let rows = |t: &Tensor, i: usize, per: usize| -> Result<Tensor, String> {
            let row_bytes = t.as_bytes().len() / t.shape()[0];
            let bytes = t.as_bytes()[i * per * row_bytes..(i + 1) * per * row_bytes].to_vec();
            let mut shape = t.shape().to_vec();
            shape[0] = per;
            Tensor::from_bytes(t.dtype(), shape, bytes).map_err(|e| e.to_string())
        };
        let batch_first = a.bool("batch_first");
        let to_nle = |s: &mut Self, v: String, what: &str| -> String {
            if batch_first {
                v
            } else {
                let t = s.temp(&out, what);
                s.emit("Transpose", vec![v], &t, vec![a_ints("perm", vec![1, 0, 2])]);
                t
            }
        };
        let mut projected = Vec::new();
        for (i, (slot, perm)) in [("query", vec![0, 2, 1, 3]), ("key", vec![0, 2, 3, 1]), ("value", vec![0, 2, 1, 3])]
            .into_iter()
            .enumerate()
        {
            let v = get(slot)?;
            let v = to_nle(self, v, slot);
            let w = rows(&w_in, i, e as usize)?;
            let wt = crate::tensor::transpose(&w)?;
            let wname = self.temp(&out, &format!("{slot}_weight_t"));
            let wname = self.constant(&wname, &wt);
            let p = self.temp(&out, &format!("{slot}_projected"));
            self.emit("MatMul", vec![v, wname], &p, vec![]);
            let p = match &b_in {
                Some(b) => {
                    let bn = self.temp(&out, &format!("{slot}_bias"));
                    let bn = self.constant(&bn, &rows(b, i, e as usize)?);
                    let pb = self.temp(&out, &format!("{slot}_biased"));
                    self.emit("Add", vec![p, bn], &pb, vec![]);
                    pb
                }
                None => p,
            };
            let shape = self.shape_constant(&out, vec![0, 0, heads, hd]);
            let split = self.temp(&out, &format!("{slot}_heads"));
            self.emit("Reshape", vec![p, shape], &split, vec![]);
            let t = self.temp(&out, &format!("{slot}_t"));
            self.emit("Transpose", vec![split], &t, vec![a_ints("perm", perm)]);
            projected.push(t);
        }
        let scores = self.temp(&out, "scores");
        self.emit("MatMul", vec![projected[0].clone(), projected[1].clone()], &scores, vec![]);
        let scale = self.scalar(&out, "scale", dtype, 1.0 / (hd as f64).sqrt());
        let scaled = self.temp(&out, "scaled");
        self.emit("Mul", vec![scores, scale], &scaled, vec![]);
        let logits = match ops.get("attn_mask") {
            None => scaled,
            Some(mask) => {
                let mask_dtype = self.dtype(mask);
                let additive = if mask_dtype == DType::Bool {
                    let neg = self.scalar(&out, "neg_inf", dtype, f64::NEG_INFINITY);
                    let zero = self.scalar(&out, "zero", dtype, 0.0);
                    let m = self.temp(&out, "mask");
                    self.emit("Where", vec![mask.clone(), neg, zero], &m, vec![]);
                    m
                } else {
                    mask.clone()
                };
                let additive = if self.rank(mask) == Some(3) {
                    let info = self
                        .values
                        .get(mask)
                        .and_then(|v| v.shape.to_fixed())
                        .ok_or("a per-head attention mask needs static L and S for ONNX")?;
                    let shape = self.shape_constant(&out, vec![-1, heads, info[1] as i64, info[2] as i64]);
                    let r = self.temp(&out, "mask_heads");
                    self.emit("Reshape", vec![additive, shape], &r, vec![]);
                    r
                } else {
                    additive
                };
                let masked = self.temp(&out, "masked");
                self.emit("Add", vec![scaled, additive], &masked, vec![]);
                masked
            }
        };
        let probs = self.temp(&out, "probs");
        self.emit("Softmax", vec![logits], &probs, vec![a_int("axis", -1)]);
        let ctx = self.temp(&out, "context");
        self.emit("MatMul", vec![probs, projected[2].clone()], &ctx, vec![]);
        let ctx_t = self.temp(&out, "context_t");
        self.emit("Transpose", vec![ctx], &ctx_t, vec![a_ints("perm", vec![0, 2, 1, 3])]);
        let shape = self.shape_constant(&out, vec![0, 0, e]);
        let merged = self.temp(&out, "merged");
        self.emit("Reshape", vec![ctx_t, shape], &merged, vec![]);
        let w_out = get("out_proj.weight")?;
        let wt = self.transposed(&out, &w_out);
        let target = if batch_first { out.clone() } else { self.temp(&out, "nle") };
        match ops.get("out_proj.bias") {
            Some(b) => {
                let p = self.temp(&out, "out_projected");
                self.emit("MatMul", vec![merged, wt], &p, vec![]);
                self.emit("Add", vec![p, b.clone()], &target, vec![]);
            }
            None => self.emit("MatMul", vec![merged, wt], &target, vec![]),
        }
        if !batch_first {
            self.emit("Transpose", vec![target], &out, vec![a_ints("perm", vec![1, 0, 2])]);
        }
        Ok(())
    }
}

/// An ONNX model (opset 17) computing what `graph` computes with `weights`
/// (aliases name the stored tensor they share).
pub fn export(
    graph: &Graph,
    weights: &BTreeMap<String, Tensor>,
    aliases: &BTreeMap<String, String>,
) -> Result<ModelProto, String> {
    let table: BTreeMap<String, nnbundle_graph::WeightInfo> = weights
        .iter()
        .map(|(n, t)| (n.clone(), t))
        .chain(aliases.iter().filter_map(|(a, t)| weights.get(t).map(|w| (a.clone(), w))))
        .map(|(n, t)| {
            (n, nnbundle_graph::WeightInfo { dtype: t.dtype(), shape: t.shape().iter().map(|&d| d as u64).collect() })
        })
        .collect();
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
        ex.export_node(node).map_err(|e| format!("node `{}` ({}): {e}", node.name, node.op))?;
    }
    // Initializers no node reads (parameters a decomposition replaced) are dropped.
    let read: BTreeSet<&String> = ex.nodes.iter().flat_map(|n| n.input.iter()).collect();
    let inits: Vec<_> = ex.inits.iter().filter(|t| read.contains(&t.name)).cloned().collect();
    let io = |names: Vec<(String, Option<ValueInfo>)>| -> Result<Vec<ValueInfoProto>, String> {
        names
            .into_iter()
            .map(|(n, v)| v.map(|v| value_info(&n, &v)).ok_or_else(|| format!("the shape of `{n}` is unknown")))
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
