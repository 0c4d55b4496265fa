//! `diff`: graph and tensor differences between two bundles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use nnbundle_container::Bundle;
use nnbundle_graph::Graph;
use serde::Serialize;

use crate::Outcome;
use crate::output::{BAD, GOOD, HEAD, WARN, json};

#[derive(Serialize, Default)]
struct Changes {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[derive(Serialize)]
struct DiffReport {
    equal: bool,
    graph: Changes,
    tensors: Changes,
    metadata: Changes,
}

fn graph_changes(a: Option<&Graph>, b: Option<&Graph>) -> Changes {
    let mut c = Changes::default();
    match (a, b) {
        (None, None) => {}
        (Some(_), None) => c.removed.push("the graph".into()),
        (None, Some(_)) => c.added.push("the graph".into()),
        (Some(a), Some(b)) => {
            let na: BTreeMap<&str, _> = a.nodes().iter().map(|n| (n.name.as_str(), n)).collect();
            let nb: BTreeMap<&str, _> = b.nodes().iter().map(|n| (n.name.as_str(), n)).collect();
            for (name, node) in &nb {
                match na.get(name) {
                    None => c.added.push(format!("node {name}: {}", node.op)),
                    Some(old) if old.op != node.op => {
                        c.changed.push(format!("node {name}: op {} -> {}", old.op, node.op))
                    }
                    Some(old) => {
                        if old.inputs != node.inputs {
                            c.changed.push(format!("node {name}: inputs {:?} -> {:?}", old.inputs, node.inputs));
                        }
                        let keys: BTreeSet<&String> = old.attrs.0.keys().chain(node.attrs.0.keys()).collect();
                        for k in keys {
                            let (x, y) = (old.attrs.0.get(k), node.attrs.0.get(k));
                            if x != y {
                                let show = |v: Option<&nnbundle_graph::AttrValue>| {
                                    v.map_or("(absent)".to_owned(), |v| v.to_string())
                                };
                                c.changed.push(format!("node {name}: {k} {} -> {}", show(x), show(y)));
                            }
                        }
                    }
                }
            }
            c.removed.extend(
                na.iter().filter(|(n, _)| !nb.contains_key(*n)).map(|(n, node)| format!("node {n}: {}", node.op)),
            );
            let io = |g: &Graph| {
                (
                    g.inputs().iter().map(|i| format!("{} {} {}", i.name, i.dtype, i.shape)).collect::<Vec<_>>(),
                    g.outputs().to_vec(),
                )
            };
            let ((ia, oa), (ib, ob)) = (io(a), io(b));
            if ia != ib {
                c.changed.push(format!("inputs {ia:?} -> {ib:?}"));
            }
            if oa != ob {
                c.changed.push(format!("outputs {oa:?} -> {ob:?}"));
            }
        }
    }
    c
}

fn tensor_changes(a: &Bundle, b: &Bundle) -> Changes {
    let mut c = Changes::default();
    let ta: BTreeMap<&str, _> = a.tensor_infos().into_iter().map(|i| (i.name, i)).collect();
    let tb: BTreeMap<&str, _> = b.tensor_infos().into_iter().map(|i| (i.name, i)).collect();
    for (name, y) in &tb {
        let describe = |i: &nnbundle_container::TensorInfo<'_>| format!("{} {:?}", i.record.dtype, i.record.shape);
        match ta.get(name) {
            None => c.added.push(format!("{name}: {}", describe(y))),
            Some(x) if x.record.dtype != y.record.dtype || x.record.shape != y.record.shape => {
                c.changed.push(format!("{name}: reshaped {} -> {}", describe(x), describe(y)));
            }
            Some(x) if x.record.sha256 != y.record.sha256 => {
                c.changed.push(format!(
                    "{name}: values changed (sha256 {} -> {})",
                    x.record.sha256.short(12),
                    y.record.sha256.short(12)
                ));
            }
            Some(x) if x.record.group != y.record.group => {
                c.changed.push(format!("{name}: group {} -> {}", x.record.group, y.record.group));
            }
            Some(_) => {}
        }
    }
    c.removed.extend(ta.keys().filter(|n| !tb.contains_key(*n)).map(|n| n.to_string()));
    c
}

fn metadata_changes(a: &Bundle, b: &Bundle) -> Changes {
    let (ma, mb) = (&a.manifest().metadata, &b.manifest().metadata);
    let mut c = Changes::default();
    for (k, v) in mb {
        match ma.get(k) {
            None => c.added.push(format!("{k}: {v}")),
            Some(old) if old != v => c.changed.push(format!("{k}: {old} -> {v}")),
            Some(_) => {}
        }
    }
    c.removed.extend(ma.keys().filter(|k| !mb.contains_key(*k)).cloned());
    c
}

pub(crate) fn diff(a_path: &Path, b_path: &Path, as_json: bool) -> Outcome {
    let (a, b) = (Bundle::open(a_path)?, Bundle::open(b_path)?);
    let (ga, gb) = (a.graph()?, b.graph()?);
    let graph = graph_changes(ga.as_ref(), gb.as_ref());
    let tensors = tensor_changes(&a, &b);
    let metadata = metadata_changes(&a, &b);
    let equal = graph.is_empty() && tensors.is_empty() && metadata.is_empty();
    let report = DiffReport { equal, graph, tensors, metadata };
    if as_json {
        json(&report)?;
    } else {
        for (title, c) in [("graph", &report.graph), ("tensors", &report.tensors), ("metadata", &report.metadata)] {
            if c.is_empty() {
                continue;
            }
            anstream::println!("{HEAD}{title}{HEAD:#}");
            for x in &c.added {
                anstream::println!("  {GOOD}+{GOOD:#} {x}");
            }
            for x in &c.removed {
                anstream::println!("  {BAD}-{BAD:#} {x}");
            }
            for x in &c.changed {
                anstream::println!("  {WARN}~{WARN:#} {x}");
            }
        }
        if equal {
            anstream::println!("{GOOD}equal{GOOD:#}: same graph, tensors and metadata");
        } else {
            let n = [&report.graph, &report.tensors, &report.metadata]
                .iter()
                .map(|c| c.added.len() + c.removed.len() + c.changed.len())
                .sum::<usize>();
            anstream::println!("{BAD}different{BAD:#}: {n} difference(s)");
        }
    }
    Ok(ExitCode::from(if equal { 0 } else { 1 }))
}
