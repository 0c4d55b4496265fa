//! Pictures of a graph: Graphviz dot, Mermaid, and SVG laid out here
//! (layers by longest path from the inputs, ordered by the mean position of
//! each node's inputs), so no external program is needed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use nnbundle_graph::{AttrDefault, Graph, ValueInfo};

/// One box of the picture.
struct Item {
    id: String,
    lines: Vec<String>,
    kind: Kind,
    inputs: Vec<String>,
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Input,
    Node,
    Output,
}

/// Graph inputs, nodes (name, op with its required attributes, output shape) and outputs, with their edges.
fn items(graph: &Graph, values: &BTreeMap<String, ValueInfo>) -> Vec<Item> {
    let mut out: Vec<Item> = graph
        .inputs()
        .iter()
        .map(|i| Item {
            id: i.name.clone(),
            lines: vec![i.name.clone(), format!("{} {}", i.dtype, i.shape)],
            kind: Kind::Input,
            inputs: vec![],
        })
        .collect();
    for node in graph.nodes() {
        let def = node.op.def();
        let key: Vec<String> = def
            .attrs
            .iter()
            .filter(|a| a.default == AttrDefault::Required)
            .filter_map(|a| node.attrs.get(a.name).map(|v| format!("{}={v}", a.name)))
            .collect();
        let shape = values.get(&node.name).map_or_else(|| "?".to_owned(), |v| v.shape.to_string());
        out.push(Item {
            id: node.name.clone(),
            lines: vec![node.name.clone(), format!("{}({})", node.op, key.join(", ")), shape],
            kind: Kind::Node,
            inputs: node.inputs.clone(),
        });
    }
    for o in graph.outputs() {
        out.push(Item {
            id: format!("{o} (output)"),
            lines: vec![format!("output {o}")],
            kind: Kind::Output,
            inputs: vec![o.clone()],
        });
    }
    out
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Graphviz dot.
pub(crate) fn dot(graph: &Graph, values: &BTreeMap<String, ValueInfo>) -> String {
    let mut s =
        String::from("digraph model {\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    for item in items(graph, values) {
        let shape = match item.kind {
            Kind::Input | Kind::Output => "ellipse",
            Kind::Node => "box",
        };
        let _ = writeln!(s, "  \"{}\" [shape={shape}, label=\"{}\"];", quote(&item.id), quote(&item.lines.join("\n")));
        for input in &item.inputs {
            let _ = writeln!(s, "  \"{}\" -> \"{}\";", quote(input), quote(&item.id));
        }
    }
    s.push_str("}\n");
    s
}

/// Mermaid flowchart.
pub(crate) fn mermaid(graph: &Graph, values: &BTreeMap<String, ValueInfo>) -> String {
    let items = items(graph, values);
    let ids: HashMap<&str, usize> = items.iter().enumerate().map(|(i, it)| (it.id.as_str(), i)).collect();
    let mut s = String::from("flowchart TD\n");
    for (i, item) in items.iter().enumerate() {
        let label = item.lines.iter().map(|l| l.replace('"', "#quot;")).collect::<Vec<_>>().join("<br/>");
        let (open, close) = if item.kind == Kind::Node { ("[\"", "\"]") } else { ("([\"", "\"])") };
        let _ = writeln!(s, "  n{i}{open}{label}{close}");
    }
    for (i, item) in items.iter().enumerate() {
        for input in &item.inputs {
            if let Some(j) = ids.get(input.as_str()) {
                let _ = writeln!(s, "  n{j} --> n{i}");
            }
        }
    }
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const CHAR_W: f64 = 7.2;
const LINE_H: f64 = 16.0;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 48.0;
const PAD: f64 = 10.0;

/// A standalone SVG document.
pub(crate) fn svg(graph: &Graph, values: &BTreeMap<String, ValueInfo>) -> String {
    let items = items(graph, values);
    let index: HashMap<&str, usize> = items.iter().enumerate().map(|(i, it)| (it.id.as_str(), i)).collect();
    // Layer = longest path from an input; items are listed in dependency order already
    // except nodes, which may be listed in any order: iterate to a fixed point.
    let mut layer = vec![0usize; items.len()];
    for _ in 0..items.len() {
        let mut changed = false;
        for (i, item) in items.iter().enumerate() {
            let l = item.inputs.iter().filter_map(|n| index.get(n.as_str())).map(|&j| layer[j] + 1).max().unwrap_or(0);
            if l > layer[i] {
                layer[i] = l;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let size = |it: &Item| {
        let w = it.lines.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64 * CHAR_W + 2.0 * PAD;
        (w.max(60.0), it.lines.len() as f64 * LINE_H + 2.0 * PAD - 4.0)
    };
    let layers = layer.iter().copied().max().unwrap_or(0) + 1;
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (i, &l) in layer.iter().enumerate() {
        rows[l].push(i);
    }
    // Order each row by the mean x of its inputs in the row above, then center it.
    let mut x_center = vec![0f64; items.len()];
    let mut y_top = vec![0f64; items.len()];
    let mut y = 20.0;
    let mut row_widths = Vec::with_capacity(rows.len());
    for row in &mut rows {
        row.sort_by(|&a, &b| {
            let mean = |i: usize| {
                let xs: Vec<f64> =
                    items[i].inputs.iter().filter_map(|n| index.get(n.as_str())).map(|&j| x_center[j]).collect();
                if xs.is_empty() { i as f64 } else { xs.iter().sum::<f64>() / xs.len() as f64 }
            };
            mean(a).total_cmp(&mean(b))
        });
        let mut x = 0.0;
        let mut height: f64 = 0.0;
        for &i in row.iter() {
            let (w, h) = size(&items[i]);
            x_center[i] = x + w / 2.0;
            y_top[i] = y;
            x += w + GAP_X;
            height = height.max(h);
        }
        row_widths.push(x - GAP_X);
        y += height + GAP_Y;
    }
    let content: f64 = row_widths.iter().copied().fold(0.0, f64::max);
    for (row, w) in rows.iter().zip(&row_widths) {
        for &i in row {
            x_center[i] += 20.0 + (content - w) / 2.0;
        }
    }
    // Edges that skip layers run down lanes to the right of everything.
    let right = |i: usize| x_center[i] + size(&items[i]).0 / 2.0;
    let max_right = (0..items.len()).map(right).fold(0.0, f64::max);
    let mut lanes = 0usize;
    let mut edges = String::new();
    for (i, item) in items.iter().enumerate() {
        for input in &item.inputs {
            let Some(&j) = index.get(input.as_str()) else { continue };
            if layer[i] > layer[j] + 1 {
                lanes += 1;
                let lane = max_right + 14.0 * lanes as f64;
                let (y1, y2) = (y_top[j] + size(&items[j]).1 / 2.0, y_top[i] + size(&items[i]).1 / 2.0);
                let _ = writeln!(
                    edges,
                    "  <path d=\"M {:.1} {y1:.1} H {lane:.1} V {y2:.1} H {:.1}\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>",
                    right(j),
                    right(i)
                );
            } else {
                let (x1, y1) = (x_center[j], y_top[j] + size(&items[j]).1);
                let (x2, y2) = (x_center[i], y_top[i]);
                let my = (y1 + y2) / 2.0;
                let _ = writeln!(
                    edges,
                    "  <path d=\"M {x1:.1} {y1:.1} C {x1:.1} {my:.1}, {x2:.1} {my:.1}, {x2:.1} {y2:.1}\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>"
                );
            }
        }
    }
    let width = max_right + 14.0 * lanes as f64 + 20.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\" viewBox=\"0 0 {:.0} {:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">",
        width, y, width, y
    );
    s.push_str("  <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#555\"/></marker></defs>\n");
    s.push_str("  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    s.push_str(&edges);
    for (i, item) in items.iter().enumerate() {
        let (w, h) = size(item);
        let (x, y) = (x_center[i] - w / 2.0, y_top[i]);
        let (fill, radius) = match item.kind {
            Kind::Input => ("#e8f1fb", h / 2.0),
            Kind::Output => ("#e9f7ec", h / 2.0),
            Kind::Node => ("#fdf6e3", 6.0),
        };
        let _ = writeln!(s, "  <g><title>{}</title>", xml(&item.lines.join(" ")));
        let _ = writeln!(
            s,
            "    <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"{radius:.1}\" fill=\"{fill}\" stroke=\"#333\"/>"
        );
        for (k, line) in item.lines.iter().enumerate() {
            let weight = if k == 0 { " font-weight=\"bold\"" } else { "" };
            let ty = y + PAD + LINE_H * (k as f64 + 0.75);
            let _ = writeln!(
                s,
                "    <text x=\"{:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\"{weight}>{}</text>",
                x_center[i],
                xml(line)
            );
        }
        s.push_str("  </g>\n");
    }
    s.push_str("</svg>\n");
    s
}
