//! Import-time folding of the graph: a bias added after a bias-free Linear
//! joins it (constants are evaluated by `constant`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nnbundle_format::{DType, Tensor};
use nnbundle_graph::{AttrValue, Node, OpKind};

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
