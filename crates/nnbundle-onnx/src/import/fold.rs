//! Import-time folding: shape ops on constants become constants, and a
//! bias added after a bias-free Linear joins it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{AttrValue, Node, OpKind};

use super::{Operand, attr_ints};
use crate::proto::NodeProto;

/// A shape op on constants, computed at import: `Ok(None)` for ops not folded.
pub(crate) fn fold(node: &NodeProto, t: &Tensor, rest: &[Operand]) -> Result<Option<Tensor>, String> {
    let shape = |v: Vec<usize>| t.reshaped(v).map_err(|e| e.to_string());
    Ok(Some(match node.op_type.as_str() {
        "Identity" => t.clone(),
        "Transpose" => {
            let rank = t.shape().len();
            let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..rank as i64).rev().collect());
            let perm =
                perm.iter().map(|&p| usize::try_from(p).map_err(|_| format!("perm {perm:?} has a negative axis")));
            t.permuted(&perm.collect::<Result<Vec<_>, _>>()?).map_err(|e| e.to_string())?
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

pub(crate) fn scale(t: &Tensor, by: f32) -> Result<Tensor, String> {
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

/// Folds `Linear(bias=false)` followed by `Add` of a constant bias into one Linear node.
pub(crate) fn fold_bias(
    nodes: &mut Vec<Node>,
    weights: &mut BTreeMap<String, Tensor>,
    aliases: &BTreeMap<String, String>,
    graph_outputs: &BTreeSet<String>,
) {
    let mut readers: HashMap<String, usize> = HashMap::new();
    for n in nodes.iter() {
        for i in &n.inputs {
            *readers.entry(i.clone()).or_default() += 1;
        }
    }
    let mut i = 0;
    while i + 1 < nodes.len() {
        let (lin, add) = (&nodes[i], &nodes[i + 1]);
        let fits = lin.op == OpKind::Linear
            && !lin.checked_attrs().bool("bias")
            && lin.inputs.len() == 1
            && add.op == OpKind::Add
            && add.inputs == [lin.name.clone()]
            && readers.get(&lin.name) == Some(&1)
            && !graph_outputs.contains(&lin.name);
        if !fits {
            i += 1;
            continue;
        }
        let bias = format!("{}.other", add.name);
        let out = lin.checked_attrs().int("out_features") as usize;
        let ok_bias = weights.get(&bias).is_some_and(|b| b.len() == out && b.shape().last() == Some(&out))
            && !aliases.contains_key(&bias);
        let weight = format!("{}.weight", lin.name);
        if ok_bias && weights.contains_key(&weight) && !aliases.contains_key(&weight) {
            let add_name = add.name.clone();
            let Some(b) = weights.remove(&bias) else { break };
            let Ok(b) = b.reshaped(vec![out]) else { break };
            let Some(w) = weights.remove(&weight) else { break };
            weights.insert(format!("{add_name}.weight"), w);
            weights.insert(format!("{add_name}.bias"), b);
            let mut node = nodes.remove(i);
            node.name = add_name;
            node.attrs.set("bias", AttrValue::Bool(true));
            nodes[i] = node;
        }
        i += 1;
    }
}
