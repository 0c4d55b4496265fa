//! Pictures of a graph: SVG laid out here (no external program), Graphviz
//! dot and Mermaid. Every box shows what differs from the op's defaults and
//! the parameter shapes; edges carry the shape of the value they hold; boxes
//! are coloured by op family, with a legend. `collapse` folds each repeated
//! block (`encoder.layers.3`) into one box.

mod layout;
mod svg;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use nnbundle_format::DType;
use nnbundle_graph::{AttrValue, Graph, Node, ValueInfo, WeightInfo, group_digits};

pub(crate) use svg::svg;

/// What a box stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Input,
    Node,
    Output,
    /// A collapsed block of nodes.
    Group,
}

/// One box of the picture.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Unique id (the value name for inputs and nodes).
    pub id: String,
    /// The bold first line.
    pub title: String,
    /// The lines below it: op, attributes, parameters.
    pub lines: Vec<String>,
    pub kind: Kind,
    /// Colour key: the op family, or `input`, `output`, `block`.
    pub family: &'static str,
    /// The shape of the value the box produces, shown on its outgoing edges.
    pub value: Option<String>,
}

/// The boxes and the edges between them (by index, deduplicated).
#[derive(Debug, Clone, Default)]
pub(crate) struct Picture {
    pub items: Vec<Item>,
    pub edges: Vec<(usize, usize)>,
}

/// Longest line of attributes before wrapping.
const WRAP: usize = 44;

/// `parts` joined by `, ` into lines of at most about `WRAP` characters.
fn wrap(parts: &[String]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for part in parts {
        match lines.last_mut() {
            Some(line) if line.len() + part.len() + 2 <= WRAP => {
                line.push_str(", ");
                line.push_str(part);
            }
            _ => lines.push(part.clone()),
        }
    }
    lines
}

/// An attribute value; a float that an f32 holds exactly in its shortest f32 form (`0.0001`, not `0.00009999999747378752`).
fn attr_text(v: &AttrValue) -> String {
    match v {
        AttrValue::Float(x) if f64::from(*x as f32) == *x => format!("{}", *x as f32),
        other => other.to_string(),
    }
}

fn value_text(v: &ValueInfo) -> String {
    if v.dtype == DType::F32 { v.shape.to_string() } else { v.to_string() }
}

fn node_item(
    node: &Node,
    values: &BTreeMap<String, ValueInfo>,
    weights: Option<&BTreeMap<String, WeightInfo>>,
) -> Item {
    let attrs: Vec<String> = node.non_default_attrs().iter().map(|(k, v)| format!("{k}={}", attr_text(v))).collect();
    let mut lines = vec![node.op.name().to_owned()];
    lines.extend(wrap(&attrs));
    let params: Vec<String> = node
        .operands()
        .into_iter()
        .filter_map(|(slot, operand)| match operand {
            nnbundle_graph::Operand::Weight { name, .. } => {
                let shape = match weights {
                    Some(w) => w.get(&name).map(|w| format!("{:?}", w.shape))?,
                    None => node.op.def().param(slot.name, &node.attrs)?.shape.map(|s| format!("{s:?}"))?,
                };
                Some(format!("{} {shape}", slot.name))
            }
            _ => None,
        })
        .collect();
    lines.extend(wrap(&params));
    Item {
        id: node.name.clone(),
        title: node.name.clone(),
        lines,
        kind: Kind::Node,
        family: node.op.family(),
        value: values.get(&node.name).map(value_text),
    }
}

/// The block a node belongs to: its name up to the first numbered level
/// that has more levels after it (`encoder.layers.3.attn.q` is in
/// `encoder.layers.3`), if there is one.
pub(crate) fn block_of(name: &str) -> Option<&str> {
    let mut end = 0;
    let parts: Vec<&str> = name.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        end += part.len() + usize::from(i > 0);
        if i > 0 && i + 1 < parts.len() && !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            return Some(&name[..end]);
        }
    }
    None
}

impl Picture {
    /// The picture of `graph`: inputs, nodes and outputs, with `values`' shapes
    /// on edges and the parameter shapes of `weights` (else those the attributes imply).
    pub(crate) fn new(
        graph: &Graph,
        values: &BTreeMap<String, ValueInfo>,
        weights: Option<&BTreeMap<String, WeightInfo>>,
    ) -> Picture {
        let mut items: Vec<Item> = graph
            .inputs()
            .iter()
            .map(|i| Item {
                id: i.name.clone(),
                title: i.name.clone(),
                lines: vec![format!("{} {}", i.dtype, i.shape)],
                kind: Kind::Input,
                family: "input",
                value: Some(value_text(&ValueInfo { dtype: i.dtype, shape: i.shape.clone() })),
            })
            .collect();
        items.extend(graph.nodes().iter().map(|n| node_item(n, values, weights)));
        let index: HashMap<&str, usize> = items.iter().enumerate().map(|(i, it)| (it.id.as_str(), i)).collect();
        let mut edges = Vec::new();
        for (k, node) in graph.nodes().iter().enumerate() {
            let to = graph.inputs().len() + k;
            edges.extend(node.inputs.iter().filter_map(|i| index.get(i.as_str())).map(|&from| (from, to)));
        }
        let outputs: Vec<(usize, &String)> =
            graph.outputs().iter().filter_map(|o| index.get(o.as_str()).map(|&i| (i, o))).collect();
        for (from, name) in outputs {
            edges.push((from, items.len()));
            items.push(Item {
                id: format!("{name} (output)"),
                title: format!("output {name}"),
                lines: Vec::new(),
                kind: Kind::Output,
                family: "output",
                value: None,
            });
        }
        edges.dedup();
        Picture { items, edges }
    }

    /// The picture with every block of two or more nodes (see [`block_of`])
    /// folded into one box that counts its ops and parameters.
    pub(crate) fn collapsed(self, graph: &Graph, weights: Option<&BTreeMap<String, WeightInfo>>) -> Picture {
        let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, item) in self.items.iter().enumerate() {
            if let (Kind::Node, Some(block)) = (item.kind, block_of(&item.id)) {
                members.entry(block).or_default().push(i);
            }
        }
        members.retain(|_, m| m.len() > 1);
        if members.is_empty() {
            return self;
        }
        let nodes: HashMap<&str, &Node> = graph.nodes().iter().map(|n| (n.name.as_str(), n)).collect();
        // Each old box maps to a new one: a block's members to the block's box, at its first member's place.
        let mut target = vec![usize::MAX; self.items.len()];
        let mut items = Vec::new();
        let mut block_box: HashMap<&str, usize> = HashMap::new();
        for (i, item) in self.items.iter().enumerate() {
            let block = block_of(&item.id).filter(|b| item.kind == Kind::Node && members.contains_key(b));
            target[i] = match block {
                Some(b) => *block_box.entry(b).or_insert_with(|| {
                    items.push(block_item(b, &members[b], &self.items, &nodes, weights, &self.edges));
                    items.len() - 1
                }),
                None => {
                    items.push(item.clone());
                    items.len() - 1
                }
            };
        }
        let mut edges: Vec<(usize, usize)> =
            self.edges.iter().map(|&(a, b)| (target[a], target[b])).filter(|(a, b)| a != b).collect();
        edges.sort_unstable();
        edges.dedup();
        Picture { items, edges }
    }
}

/// The box of a folded block.
fn block_item(
    block: &str,
    members: &[usize],
    items: &[Item],
    nodes: &HashMap<&str, &Node>,
    weights: Option<&BTreeMap<String, WeightInfo>>,
    edges: &[(usize, usize)],
) -> Item {
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    let mut params = 0u64;
    for &i in members {
        let Some(node) = nodes.get(items[i].id.as_str()) else { continue };
        *ops.entry(node.op.name()).or_default() += 1;
        for p in node.operands() {
            if let (_, nnbundle_graph::Operand::Weight { name, .. }) = p
                && let Some(w) = weights.and_then(|w| w.get(&name))
            {
                params += w.shape.iter().product::<u64>();
            }
        }
    }
    let counts: Vec<String> =
        ops.iter().map(|(op, n)| if *n == 1 { (*op).to_owned() } else { format!("{op} ×{n}") }).collect();
    let mut lines = vec![format!("block of {} nodes", members.len())];
    lines.extend(wrap(&counts));
    if params > 0 {
        lines.push(format!("{} params", group_digits(params)));
    }
    // The value the block hands on: that of its one member read from outside.
    let inside = |i: &usize| members.contains(i);
    let mut leaving: Vec<usize> = edges.iter().filter(|(a, b)| inside(a) && !inside(b)).map(|(a, _)| *a).collect();
    leaving.dedup();
    let value = if leaving.len() == 1 { items[leaving[0]].value.clone() } else { None };
    Item { id: block.to_owned(), title: block.to_owned(), lines, kind: Kind::Group, family: "block", value }
}

/// Fill colour of each family, in legend order.
pub(crate) const COLOURS: &[(&str, &str)] = &[
    ("input", "#e3eefa"),
    ("output", "#e4f4e6"),
    ("conv", "#c9daf8"),
    ("linear", "#d9d2e9"),
    ("matmul", "#e6e0f3"),
    ("attention", "#f4cccc"),
    ("recurrent", "#ead1dc"),
    ("norm", "#d9ead3"),
    ("activation", "#fce5cd"),
    ("pool", "#d0e0e3"),
    ("elementwise", "#fff2cc"),
    ("reduce", "#eadfcf"),
    ("index", "#d5eee9"),
    ("shape", "#eeeeee"),
    ("block", "#f6f6f6"),
];

/// The fill colour of a family.
pub(crate) fn colour(family: &str) -> &'static str {
    COLOURS.iter().find(|(f, _)| *f == family).map_or("#ffffff", |(_, c)| c)
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz dot.
pub(crate) fn dot(picture: &Picture) -> String {
    let mut s = String::from(
        "digraph model {\n  rankdir=TB;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n  \
         edge [fontname=\"Helvetica\", fontsize=10, fontcolor=\"#555555\"];\n",
    );
    for item in &picture.items {
        let shape = match item.kind {
            Kind::Input | Kind::Output => "ellipse",
            Kind::Node | Kind::Group => "box",
        };
        let label = std::iter::once(&item.title).chain(&item.lines).map(|l| quote(l)).collect::<Vec<_>>().join("\\n");
        let _ = writeln!(
            s,
            "  \"{}\" [shape={shape}, fillcolor=\"{}\", label=\"{label}\"];",
            quote(&item.id),
            colour(item.family)
        );
    }
    for &(a, b) in &picture.edges {
        let label = picture.items[a].value.as_deref().map(|v| format!(" [label=\"{}\"]", quote(v))).unwrap_or_default();
        let _ = writeln!(s, "  \"{}\" -> \"{}\"{label};", quote(&picture.items[a].id), quote(&picture.items[b].id));
    }
    s.push_str("}\n");
    s
}

/// Mermaid flowchart, with a class per family.
pub(crate) fn mermaid(picture: &Picture) -> String {
    let mut s = String::from("flowchart TD\n");
    for (i, item) in picture.items.iter().enumerate() {
        let lines = std::iter::once(format!("<b>{}</b>", item.title)).chain(item.lines.iter().cloned());
        let label = lines.map(|l| l.replace('"', "#quot;")).collect::<Vec<_>>().join("<br/>");
        let (open, close) = match item.kind {
            Kind::Node | Kind::Group => ("[\"", "\"]"),
            Kind::Input | Kind::Output => ("([\"", "\"])"),
        };
        let _ = writeln!(s, "  n{i}{open}{label}{close}:::{}", item.family);
    }
    for &(a, b) in &picture.edges {
        match &picture.items[a].value {
            Some(v) => {
                let _ = writeln!(s, "  n{a} -- \"{}\" --> n{b}", v.replace('"', "#quot;"));
            }
            None => {
                let _ = writeln!(s, "  n{a} --> n{b}");
            }
        }
    }
    for (family, fill) in COLOURS {
        if picture.items.iter().any(|i| i.family == *family) {
            let _ = writeln!(s, "  classDef {family} fill:{fill},stroke:#333");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_numbered_levels_with_more_below() {
        assert_eq!(block_of("encoder.layers.3.attn.q"), Some("encoder.layers.3"));
        assert_eq!(block_of("features.0.weight_conv"), Some("features.0"));
        assert_eq!(block_of("layers.12.x"), Some("layers.12"));
        assert_eq!(block_of("encoder.layers.3"), None, "the numbered level is the last");
        assert_eq!(block_of("0.conv"), None, "the first level is not a block number");
        assert_eq!(block_of("hidden"), None);
        assert_eq!(block_of("a.3b.c"), None);
    }

    /// A picture of `n` plain boxes, of varied widths, joined by `edges`.
    fn boxes(n: usize, edges: Vec<(usize, usize)>) -> Picture {
        let items = (0..n)
            .map(|i| Item {
                id: format!("n{i}"),
                title: format!("n{i}"),
                lines: vec!["x".repeat(3 + (i * 7) % 23)],
                kind: Kind::Node,
                family: "conv",
                value: Some("[1, 64, 56, 56]".into()),
            })
            .collect();
        Picture { items, edges }
    }

    /// DenseNet-style blocks (every layer reads every earlier one) between
    /// Inception-style fans (four branches of different lengths, joined).
    fn many_branches() -> Picture {
        let mut edges = Vec::new();
        let mut next = 1;
        let mut last = 0;
        for _ in 0..3 {
            let block: Vec<usize> = (next..next + 6).collect();
            next += 6;
            for (k, &v) in block.iter().enumerate() {
                edges.push((last, v));
                edges.extend(block[..k].iter().map(|&u| (u, v)));
            }
            last = *block.last().unwrap();
            let join = next;
            next += 1;
            for len in 1..=4 {
                let mut prev = last;
                for _ in 0..len {
                    edges.push((prev, next));
                    prev = next;
                    next += 1;
                }
                edges.push((prev, join));
            }
            last = join;
        }
        boxes(next, edges)
    }

    /// Points along a route: its vertical runs and its curves, finely sampled.
    fn samples(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        for i in 1..points.len() {
            let ((x0, y0), (x1, y1)) = (points[i - 1], points[i]);
            for k in 0..=40 {
                let t = f64::from(k) / 40.0;
                out.push(if i % 2 == 1 {
                    (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
                } else {
                    // The cubic with control points (x0, ym) and (x1, ym).
                    let ym = (y0 + y1) / 2.0;
                    let (a, b, c, d) =
                        ((1.0 - t).powi(3), 3.0 * (1.0 - t).powi(2) * t, 3.0 * (1.0 - t) * t * t, t.powi(3));
                    (a * x0 + b * x0 + c * x1 + d * x1, a * y0 + b * ym + c * ym + d * y1)
                });
            }
        }
        out
    }

    #[test]
    fn no_edge_passes_through_a_box() {
        let picture = many_branches();
        let sizes = svg::sizes(&picture);
        let placed = layout::layout(&sizes, &picture.edges);
        assert_eq!(placed.routes.len(), picture.edges.len());
        let inside = |(px, py): (f64, f64), i: usize| {
            let (w, h) = sizes[i];
            let (left, top) = (placed.x[i] - w / 2.0, placed.y[i]);
            px > left + 0.5 && px < left + w - 0.5 && py > top + 0.5 && py < top + h - 0.5
        };
        let mut checked = 0;
        for route in &placed.routes {
            let (from, to) = picture.edges[route.edge];
            let (first, last) = (route.points[0], *route.points.last().unwrap());
            assert!((first.0 - placed.x[from]).abs() < 1e-9 && (first.1 - placed.y[from] - sizes[from].1).abs() < 1e-9);
            assert!((last.0 - placed.x[to]).abs() < 1e-9 && (last.1 - placed.y[to]).abs() < 1e-9);
            for p in samples(&route.points) {
                for i in 0..picture.items.len() {
                    assert!(!inside(p, i), "edge {from} -> {to} passes through box {i} at {p:?}");
                }
                checked += 1;
            }
        }
        assert!(checked > 10_000, "{checked} points checked");
        // Boxes of a row never overlap.
        for i in 0..picture.items.len() {
            for j in i + 1..picture.items.len() {
                if placed.y[i] == placed.y[j] {
                    let room = (sizes[i].0 + sizes[j].0) / 2.0;
                    assert!((placed.x[i] - placed.x[j]).abs() >= room, "boxes {i} and {j} overlap");
                }
            }
        }
    }

    #[test]
    fn blocks_fold_into_one_box_each() {
        let yaml = "opset: 1\ninputs: [{name: x, dtype: f32, shape: [batch, 8]}]\nsequential:\n\
                    - {name: layers.0.fc, op: Linear, attrs: {in_features: 8, out_features: 8}}\n\
                    - {name: layers.0.act, op: ReLU}\n\
                    - {name: layers.1.fc, op: Linear, attrs: {in_features: 8, out_features: 8}}\n\
                    - {name: layers.1.act, op: ReLU}\n\
                    - {name: head, op: Linear, attrs: {in_features: 8, out_features: 2, bias: false}}\n";
        let graph = Graph::from_yaml(yaml.as_bytes()).unwrap();
        let values = graph.check(None).values;
        let full = Picture::new(&graph, &values, None);
        assert_eq!(full.items.len(), 7, "input, 5 nodes, output");
        let head = &full.items[5];
        assert_eq!(head.lines, ["Linear", "in_features=8, out_features=2, bias=false", "weight [2, 8]"]);
        assert_eq!(full.items[1].lines, ["Linear", "in_features=8, out_features=8", "weight [8, 8], bias [8]"]);
        let folded = full.collapsed(&graph, None);
        let titles: Vec<&str> = folded.items.iter().map(|i| i.title.as_str()).collect();
        assert_eq!(titles, ["x", "layers.0", "layers.1", "head", "output head"]);
        assert_eq!(folded.items[1].lines, ["block of 2 nodes", "Linear, ReLU"]);
        assert_eq!(folded.items[1].value.as_deref(), Some("[batch, 8]"));
        assert_eq!(folded.edges, [(0, 1), (1, 2), (2, 3), (3, 4)]);
    }

    #[test]
    fn wrapping_keeps_whole_parts() {
        let parts: Vec<String> =
            ["kernel_size=[3, 3]", "stride=[2, 2]", "padding=[1, 1]", "groups=32"].map(str::to_owned).to_vec();
        assert_eq!(wrap(&parts), ["kernel_size=[3, 3], stride=[2, 2]", "padding=[1, 1], groups=32"]);
    }
}
