//! `diff`: graph, tensor and metadata differences between two bundles, and
//! by how much the values of a changed tensor moved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use nnbundle_container::{Bundle, TensorInfo};
use nnbundle_format::{DType, MetaValue, Tensor, TensorRecord, bf16, f16};
use nnbundle_graph::{AttrValue, Graph, group_digits};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::Outcome;
use crate::output::{BAD, GOOD, HEAD, WARN, json as print_json};

/// What happened to one item.
#[derive(Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Added,
    Removed,
    Changed,
}

/// One difference in the graph.
#[derive(Serialize)]
struct GraphChange {
    kind: Kind,
    /// `node`, `inputs`, `outputs` or `graph`.
    item: &'static str,
    /// The node's name, for node changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    /// What changed in the node: `op`, `inputs`, or an attribute name.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    a: Json,
    b: Json,
}

/// A tensor's record, as the diff shows it.
#[derive(Serialize)]
struct TensorSide {
    dtype: DType,
    shape: Vec<u64>,
    group: String,
    /// SHA-256 of the data, when the record has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// The chunk digest, when the record has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    chunks: Option<nnbundle_format::ChunkDigest>,
    /// The digest as the human report shows it.
    #[serde(skip)]
    short: String,
    /// The stored tensor, when this name is an alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    alias_of: Option<String>,
}

impl TensorSide {
    fn of(info: &TensorInfo<'_>) -> TensorSide {
        TensorSide {
            dtype: info.record.dtype,
            shape: info.record.shape.clone(),
            group: info.record.group.clone(),
            sha256: info.record.sha256.map(|d| d.to_string()),
            chunks: info.record.chunks,
            short: info.record.digest().map(|d| d.short(12)).unwrap_or_default(),
            alias_of: (info.stored_as != info.name).then(|| info.stored_as.to_owned()),
        }
    }
}

/// How far the values of a tensor moved, element by element.
#[derive(Serialize, Default)]
struct ValueChange {
    /// Elements whose values differ (NaN equals NaN).
    differing: u64,
    elements: u64,
    /// Largest |a - b|.
    max_abs_diff: f64,
    /// Largest |a - b| / max(|a|, |b|).
    max_rel_diff: f64,
}

/// One difference in the tensors.
#[derive(Serialize)]
struct TensorChange {
    tensor: String,
    kind: Kind,
    /// For changes: `values`, `dtype-or-shape`, `group` or `alias`.
    #[serde(skip_serializing_if = "Option::is_none")]
    what: Option<&'static str>,
    a: Option<TensorSide>,
    b: Option<TensorSide>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    values: Option<ValueChange>,
}

/// One difference in the metadata.
#[derive(Serialize)]
struct MetaChange {
    key: String,
    kind: Kind,
    a: Option<MetaValue>,
    b: Option<MetaValue>,
}

#[derive(Serialize)]
struct DiffReport {
    equal: bool,
    graph: Vec<GraphChange>,
    tensors: Vec<TensorChange>,
    metadata: Vec<MetaChange>,
}

fn attr_json(v: Option<&AttrValue>) -> Json {
    v.map_or(Json::Null, |v| serde_json::to_value(v).unwrap_or(Json::Null))
}

fn graph_changes(a: Option<&Graph>, b: Option<&Graph>) -> Vec<GraphChange> {
    let change = |kind, item, node: Option<&str>, field: Option<&str>, a, b| GraphChange {
        kind,
        item,
        node: node.map(str::to_owned),
        field: field.map(str::to_owned),
        a,
        b,
    };
    let mut out = Vec::new();
    let (a, b) = match (a, b) {
        (None, None) => return out,
        (Some(_), None) => return vec![change(Kind::Removed, "graph", None, None, json!(true), Json::Null)],
        (None, Some(_)) => return vec![change(Kind::Added, "graph", None, None, Json::Null, json!(true))],
        (Some(a), Some(b)) => (a, b),
    };
    let na: BTreeMap<&str, _> = a.nodes().iter().map(|n| (n.name.as_str(), n)).collect();
    let nb: BTreeMap<&str, _> = b.nodes().iter().map(|n| (n.name.as_str(), n)).collect();
    for (name, node) in &nb {
        let Some(old) = na.get(name) else {
            out.push(change(Kind::Added, "node", Some(name), None, Json::Null, json!(node.op.name())));
            continue;
        };
        if old.op != node.op {
            out.push(change(
                Kind::Changed,
                "node",
                Some(name),
                Some("op"),
                json!(old.op.name()),
                json!(node.op.name()),
            ));
            continue;
        }
        if old.inputs != node.inputs {
            out.push(change(Kind::Changed, "node", Some(name), Some("inputs"), json!(old.inputs), json!(node.inputs)));
        }
        let keys: BTreeSet<&String> = old.attrs.0.keys().chain(node.attrs.0.keys()).collect();
        for k in keys {
            let (x, y) = (old.attrs.0.get(k), node.attrs.0.get(k));
            if x != y {
                out.push(change(Kind::Changed, "node", Some(name), Some(k), attr_json(x), attr_json(y)));
            }
        }
    }
    for (name, node) in na.iter().filter(|(n, _)| !nb.contains_key(*n)) {
        out.push(change(Kind::Removed, "node", Some(name), None, json!(node.op.name()), Json::Null));
    }
    let inputs =
        |g: &Graph| json!(g.inputs().iter().map(|i| format!("{} {} {}", i.name, i.dtype, i.shape)).collect::<Vec<_>>());
    if inputs(a) != inputs(b) {
        out.push(change(Kind::Changed, "inputs", None, None, inputs(a), inputs(b)));
    }
    if a.outputs() != b.outputs() {
        out.push(change(Kind::Changed, "outputs", None, None, json!(a.outputs()), json!(b.outputs())));
    }
    out
}

/// A tensor's values as f64 (booleans as 0 and 1).
fn as_f64(t: &Tensor) -> Option<Vec<f64>> {
    fn conv<T: nnbundle_format::Element + Copy>(t: &Tensor, f: impl Fn(T) -> f64) -> Option<Vec<f64>> {
        Some(t.to_vec::<T>().ok()?.into_iter().map(f).collect())
    }
    match t.dtype() {
        DType::F32 => conv(t, |x: f32| f64::from(x)),
        DType::F64 => conv(t, |x: f64| x),
        DType::F16 => conv(t, |x: f16| x.to_f64()),
        DType::BF16 => conv(t, |x: bf16| x.to_f64()),
        DType::I8 => conv(t, |x: i8| f64::from(x)),
        DType::I16 => conv(t, |x: i16| f64::from(x)),
        DType::I32 => conv(t, |x: i32| f64::from(x)),
        DType::I64 => conv(t, |x: i64| x as f64),
        DType::U8 => conv(t, |x: u8| f64::from(x)),
        DType::Bool => conv(t, |x: bool| f64::from(u8::from(x))),
    }
}

/// How the values moved from `a` to `b` (same dtype and shape).
fn value_change(a: &Tensor, b: &Tensor) -> Option<ValueChange> {
    let (x, y) = (as_f64(a)?, as_f64(b)?);
    let mut c = ValueChange { elements: x.len() as u64, ..ValueChange::default() };
    for (&p, &q) in x.iter().zip(&y) {
        if p == q || (p.is_nan() && q.is_nan()) {
            continue;
        }
        c.differing += 1;
        let abs = (p - q).abs();
        c.max_abs_diff = c.max_abs_diff.max(abs);
        c.max_rel_diff = c.max_rel_diff.max(abs / p.abs().max(q.abs()));
    }
    Some(c)
}

fn tensor_changes(a: &Bundle, b: &Bundle) -> anyhow::Result<Vec<TensorChange>> {
    let ta: BTreeMap<&str, _> = a.tensor_infos().into_iter().map(|i| (i.name, i)).collect();
    let tb: BTreeMap<&str, _> = b.tensor_infos().into_iter().map(|i| (i.name, i)).collect();
    let mut out = Vec::new();
    let names: BTreeSet<&str> = ta.keys().chain(tb.keys()).copied().collect();
    for name in names {
        let (x, y) = (ta.get(name), tb.get(name));
        let change = |kind, what| TensorChange {
            tensor: name.to_owned(),
            kind,
            what,
            a: x.map(TensorSide::of),
            b: y.map(TensorSide::of),
            values: None,
        };
        let (x, y) = match (x, y) {
            (None, Some(_)) => {
                out.push(change(Kind::Added, None));
                continue;
            }
            (Some(_), None) => {
                out.push(change(Kind::Removed, None));
                continue;
            }
            (Some(x), Some(y)) => (x, y),
            (None, None) => continue,
        };
        if x.record.dtype != y.record.dtype || x.record.shape != y.record.shape {
            out.push(change(Kind::Changed, Some("dtype-or-shape")));
        } else if !same_data(a, b, name, x.record, y.record)? {
            let mut c = change(Kind::Changed, Some("values"));
            c.values = value_change(&a.tensor(name)?, &b.tensor(name)?);
            out.push(c);
        } else if x.record.group != y.record.group {
            out.push(change(Kind::Changed, Some("group")));
        } else if (x.stored_as == x.name) != (y.stored_as == y.name) {
            out.push(change(Kind::Changed, Some("alias")));
        }
    }
    Ok(out)
}

/// Whether two tensors hold the same bytes: by their digests when they share
/// a kind, else (a SHA-256 against a chunk digest) by reading both.
fn same_data(a: &Bundle, b: &Bundle, name: &str, x: &TensorRecord, y: &TensorRecord) -> anyhow::Result<bool> {
    match x.same_data(y) {
        Some(same) => Ok(same),
        None => Ok(a.tensor(name)?.as_bytes() == b.tensor(name)?.as_bytes()),
    }
}

fn metadata_changes(a: &Bundle, b: &Bundle) -> Vec<MetaChange> {
    let (ma, mb) = (&a.manifest().metadata, &b.manifest().metadata);
    let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (ma.get(k), mb.get(k));
            let kind = match (x, y) {
                (None, Some(_)) => Kind::Added,
                (Some(_), None) => Kind::Removed,
                (Some(x), Some(y)) if x != y => Kind::Changed,
                _ => return None,
            };
            Some(MetaChange { key: k.clone(), kind, a: x.cloned(), b: y.cloned() })
        })
        .collect()
}

/// A JSON value as a short text: strings bare, the rest as JSON.
fn show(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "(absent)".to_owned(),
        other => other.to_string(),
    }
}

/// A difference in 4 significant digits or so: `0.5`, `0.0123`, `1.234e-7`.
fn short(x: f64) -> String {
    if x == 0.0 || (1e-3..1e5).contains(&x.abs()) {
        let fixed = format!("{x:.4}");
        fixed.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{x:.3e}")
    }
}

fn describe(side: Option<&TensorSide>) -> String {
    side.map_or_else(String::new, |s| format!("{} {:?}", s.dtype, s.shape))
}

fn print_human(report: &DiffReport) {
    let mark = |kind| match kind {
        Kind::Added => format!("{GOOD}+{GOOD:#}"),
        Kind::Removed => format!("{BAD}-{BAD:#}"),
        Kind::Changed => format!("{WARN}~{WARN:#}"),
    };
    if !report.graph.is_empty() {
        anstream::println!("{HEAD}graph{HEAD:#}");
        for c in &report.graph {
            let line = match (c.item, &c.node, &c.field) {
                ("node", Some(node), None) => {
                    format!("node {node}: {}", show(if c.kind == Kind::Added { &c.b } else { &c.a }))
                }
                ("node", Some(node), Some(field)) => format!("node {node}: {field} {} -> {}", show(&c.a), show(&c.b)),
                ("graph", ..) => "the graph".to_owned(),
                (item, ..) => format!("{item} {} -> {}", c.a, c.b),
            };
            anstream::println!("  {} {line}", mark(c.kind));
        }
    }
    if !report.tensors.is_empty() {
        anstream::println!("{HEAD}tensors{HEAD:#}");
        for c in &report.tensors {
            let (a, b) = (c.a.as_ref(), c.b.as_ref());
            let detail = match (c.kind, c.what) {
                (Kind::Added, _) => describe(b),
                (Kind::Removed, _) => describe(a),
                (_, Some("dtype-or-shape")) => format!("reshaped {} -> {}", describe(a), describe(b)),
                (_, Some("values")) => {
                    let digests = format!("digest {} -> {}", a.map_or("", |s| &s.short), b.map_or("", |s| &s.short));
                    match &c.values {
                        Some(v) => format!(
                            "values changed: {} of {} elements, max abs diff {}, max rel diff {} ({digests})",
                            group_digits(v.differing),
                            group_digits(v.elements),
                            short(v.max_abs_diff),
                            short(v.max_rel_diff)
                        ),
                        None => format!("values changed ({digests})"),
                    }
                }
                (_, Some("group")) => {
                    format!("group {} -> {}", a.map_or("", |s| &s.group), b.map_or("", |s| &s.group))
                }
                _ => {
                    let how = |s: Option<&TensorSide>| match s.and_then(|s| s.alias_of.clone()) {
                        Some(t) => format!("alias of {t}"),
                        None => "stored".to_owned(),
                    };
                    format!("{} -> {}", how(a), how(b))
                }
            };
            anstream::println!("  {} {}: {detail}", mark(c.kind), c.tensor);
        }
    }
    if !report.metadata.is_empty() {
        anstream::println!("{HEAD}metadata{HEAD:#}");
        for c in &report.metadata {
            let text = |v: &Option<MetaValue>| v.as_ref().map_or_else(String::new, ToString::to_string);
            let line = match c.kind {
                Kind::Added => format!("{}: {}", c.key, text(&c.b)),
                Kind::Removed => format!("{}: {}", c.key, text(&c.a)),
                Kind::Changed => format!("{}: {} -> {}", c.key, text(&c.a), text(&c.b)),
            };
            anstream::println!("  {} {line}", mark(c.kind));
        }
    }
    if report.equal {
        anstream::println!("{GOOD}equal{GOOD:#}: same graph, tensors and metadata");
    } else {
        let n = report.graph.len() + report.tensors.len() + report.metadata.len();
        anstream::println!("{BAD}different{BAD:#}: {n} difference(s)");
    }
}

pub(crate) fn diff(a_path: &Path, b_path: &Path, as_json: bool) -> Outcome {
    let (a, b) = (super::open_bundle(a_path)?, super::open_bundle(b_path)?);
    let (ga, gb) = (a.graph()?, b.graph()?);
    let graph = graph_changes(ga.as_ref(), gb.as_ref());
    let tensors = tensor_changes(&a, &b)?;
    let metadata = metadata_changes(&a, &b);
    let equal = graph.is_empty() && tensors.is_empty() && metadata.is_empty();
    let report = DiffReport { equal, graph, tensors, metadata };
    if as_json {
        print_json(&report)?;
    } else {
        print_human(&report);
    }
    Ok(ExitCode::from(if equal { 0 } else { 1 }))
}
