//! ONNX normalizations.

use nnbundle_graph::{AttrValue, OpKind};

use super::table::Translator;
use super::{Importer, OnnxNode, Operand, attr_f, attr_i};
use crate::proto::NodeProto;

/// The translators of this family.
pub(crate) const TRANSLATORS: &[Translator] = &[
    Translator {
        onnx: "LRN",
        produces: &[OpKind::LocalResponseNorm],
        translate: |im, n| {
            let size = super::attr(n.proto, "size").map(|a| a.i).ok_or("LRN needs `size`")?;
            let attrs = vec![
                ("size", AttrValue::Int(size)),
                ("alpha", AttrValue::Float(f64::from(attr_f(n.proto, "alpha", 1e-4)))),
                ("beta", AttrValue::Float(f64::from(attr_f(n.proto, "beta", 0.75)))),
                ("k", AttrValue::Float(f64::from(attr_f(n.proto, "bias", 1.0)))),
            ];
            im.add(n.hint, OpKind::LocalResponseNorm, attrs, vec![n.arg(0)?]).map(Some)
        },
    },
    Translator {
        onnx: "BatchNormalization",
        produces: &[OpKind::BatchNorm1d, OpKind::BatchNorm2d],
        translate: |im, n| im.batch_norm(n.proto, n.hint, &n.operands, n.extra_outputs_used).map(Some),
    },
    Translator {
        onnx: "InstanceNormalization",
        produces: &[OpKind::InstanceNorm1d, OpKind::InstanceNorm2d],
        translate: |im, n| im.group_norm(n, None).map(Some),
    },
    Translator {
        onnx: "GroupNormalization",
        produces: &[OpKind::GroupNorm],
        translate: |im, n| {
            let groups =
                super::attr(n.proto, "num_groups").map(|a| a.i).ok_or("GroupNormalization needs `num_groups`")?;
            im.group_norm(n, Some(groups)).map(Some)
        },
    },
    Translator {
        onnx: "LayerNormalization",
        produces: &[OpKind::LayerNorm],
        translate: |im, n| {
            let y = im.layer_norm(n.proto, n.hint, &n.operands)?;
            if n.extra_outputs_used {
                im.layer_norm_statistics(n)?;
            }
            Ok(Some(y))
        },
    },
];

impl Importer {
    /// InstanceNormalization (`groups` None) as an instance norm of the
    /// input's rank, or GroupNormalization as `GroupNorm`; scale and bias
    /// must be constants, per channel, or per group as GroupNormalization
    /// had them before opset 21 (repeated over each group's channels).
    fn group_norm(&mut self, n: &OnnxNode<'_>, groups: Option<i64>) -> Result<String, String> {
        let op = &n.proto.op_type;
        let x = n.arg(0)?;
        let info = self.info(&x).ok_or_else(|| format!("{op} needs its input's shape"))?;
        let c =
            info.shape.0.get(1).and_then(|d| d.fixed()).ok_or_else(|| format!("{op} needs a static channel count"))?;
        let mut params = Vec::new();
        for (i, what) in [(1, "scale"), (2, "bias")] {
            let t = n.constant(self, i, what)?.ok_or_else(|| format!("{op} needs `{what}`"))?;
            let len = t.shape().iter().product::<usize>() as u64;
            let t = match groups {
                Some(g) if len == g as u64 && len != c && c % len == 0 => {
                    crate::tensor::repeat_elements(&t, (c / len) as usize)?
                }
                _ if len == c => t.reshaped(vec![c as usize]).map_err(|e| e.to_string())?,
                _ => return Err(format!("{op} `{what}` has {len} values for {c} channels")),
            };
            params.push(Operand::Const(t, None));
        }
        let eps = f64::from(attr_f(n.proto, "epsilon", 1e-5));
        let (kind, attrs) = match groups {
            Some(g) => (
                OpKind::GroupNorm,
                vec![
                    ("num_groups", AttrValue::Int(g)),
                    ("num_channels", AttrValue::Int(c as i64)),
                    ("eps", AttrValue::Float(eps)),
                    ("affine", AttrValue::Bool(true)),
                ],
            ),
            None => {
                let kind = match info.shape.rank() {
                    3 => OpKind::InstanceNorm1d,
                    4 => OpKind::InstanceNorm2d,
                    r => {
                        return Err(format!(
                            "InstanceNormalization of a rank-{r} input: the vocabulary has 1-D and 2-D"
                        ));
                    }
                };
                let attrs = vec![
                    ("num_features", AttrValue::Int(c as i64)),
                    ("eps", AttrValue::Float(eps)),
                    ("affine", AttrValue::Bool(true)),
                ];
                (kind, attrs)
            }
        };
        let mut operands = vec![x];
        operands.extend(params);
        self.add(n.hint, kind, attrs, operands)
    }

    pub(crate) fn batch_norm(
        &mut self,
        node: &NodeProto,
        hint: &str,
        ops: &[Operand],
        extra: bool,
    ) -> Result<String, String> {
        if extra || attr_i(node, "training_mode", 0) != 0 || attr_i(node, "is_test", 1) == 0 {
            return Err("training-mode BatchNormalization (batch statistics, updated means) is outside opset 1".into());
        }
        if attr_i(node, "spatial", 1) == 0 {
            return Err("BatchNormalization with spatial=0 is not supported".into());
        }
        let x = ops.first().cloned().ok_or("BatchNormalization needs X")?;
        let c = self
            .static_shape(ops.get(1).ok_or("BatchNormalization needs a scale")?)
            .and_then(|s| s.first().copied())
            .ok_or("BatchNormalization needs the scale's shape")?;
        let attrs = vec![
            ("num_features", AttrValue::Int(c)),
            ("eps", AttrValue::Float(f64::from(attr_f(node, "epsilon", 1e-5)))),
        ];
        let kind = match self.rank(&x) {
            Some(2 | 3) => OpKind::BatchNorm1d,
            Some(4) => OpKind::BatchNorm2d,
            Some(r) if r > 4 => {
                // [N, C, D, H, W, ...] as BatchNorm1d of [N, C, D*H*W*...], reshaped back.
                let dims = self.info(&x).ok_or("BatchNormalization needs its input's shape")?.shape.0;
                let flat = vec![dims[0].clone(), dims[1].clone(), nnbundle_graph::Dim::Unknown];
                let folded = self.reshape_to(&format!("{hint}_flat"), x, &dims, &flat)?;
                let mut operands = vec![Operand::Value(folded)];
                operands.extend(ops[1..].iter().cloned());
                let normalized = self.add(&format!("{hint}_normalized"), OpKind::BatchNorm1d, attrs, operands)?;
                let from = self.info(&Operand::Value(normalized.clone())).ok_or("BatchNormalization lost its shape")?;
                return self.reshape_to(hint, Operand::Value(normalized), &from.shape.0, &dims);
            }
            _ => return Err("BatchNormalization needs an input of rank 2 or more".into()),
        };
        self.add(hint, kind, attrs, ops.to_vec())
    }

    pub(crate) fn layer_norm(&mut self, node: &NodeProto, hint: &str, ops: &[Operand]) -> Result<String, String> {
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

    /// LayerNormalization's optional Mean and InvStdDev outputs, when read:
    /// `ReduceMean` over the normalized dimensions (kept), and
    /// `1 / sqrt(ReduceMean((x - mean)²) + epsilon)`, as ONNX defines them.
    pub(crate) fn layer_norm_statistics(&mut self, n: &OnnxNode<'_>) -> Result<(), String> {
        let x = n.arg(0)?;
        let rank = self.rank(&x).ok_or("LayerNormalization needs its input's rank")? as i64;
        let axis = attr_i(n.proto, "axis", -1);
        let axis = if axis < 0 { axis + rank } else { axis };
        let reduce = vec![("dims", AttrValue::Ints((axis..rank).collect())), ("keepdim", AttrValue::Bool(true))];
        let hint = n.hint;
        let mean = self.add(&format!("{hint}_mean"), OpKind::ReduceMean, reduce.clone(), vec![x.clone()])?;
        let centered =
            self.add(&format!("{hint}_centered"), OpKind::Sub, vec![], vec![x, Operand::Value(mean.clone())])?;
        let squared = self.add(
            &format!("{hint}_squared"),
            OpKind::Mul,
            vec![],
            vec![Operand::Value(centered.clone()), Operand::Value(centered)],
        )?;
        let var = self.add(&format!("{hint}_variance"), OpKind::ReduceMean, reduce, vec![Operand::Value(squared)])?;
        let eps = self.scalar(&Operand::Value(var.clone()), f64::from(attr_f(n.proto, "epsilon", 1e-5)));
        let shifted = self.add(&format!("{hint}_variance_eps"), OpKind::Add, vec![], vec![Operand::Value(var), eps])?;
        let std = self.add(&format!("{hint}_std"), OpKind::Sqrt, vec![], vec![Operand::Value(shifted)])?;
        let inv = self.add(&format!("{hint}_inv_std"), OpKind::Reciprocal, vec![], vec![Operand::Value(std)])?;
        for (k, value) in [(1, mean), (2, inv)] {
            if let Some(name) = n.proto.output.get(k).filter(|o| !o.is_empty()) {
                self.names.insert(name.clone(), value);
            }
        }
        Ok(())
    }
}
