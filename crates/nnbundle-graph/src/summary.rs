//! A readable summary of a graph, in the spirit of PyTorch's module repr.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::graph::WeightInfo;
use crate::graph::{Graph, node_parameters};

/// `1234567` as `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units (`31.0 KiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

impl Graph {
    /// One line per node (`(hidden): Linear(in_features=20, out_features=256, bias=true)`)
    /// with its output shape and parameter count, then totals. Parameter sizes
    /// come from `weights` when given, else from what the attributes imply.
    pub fn summary(&self, weights: Option<&BTreeMap<String, WeightInfo>>) -> String {
        self.summary_with_aliases(weights, &BTreeMap::new())
    }

    /// [`Graph::summary`] for weights some of which are aliases (`alias -> stored
    /// name`): a tensor stored once counts once in the total, as PyTorch's
    /// `parameters()` counts tied weights.
    pub fn summary_with_aliases(
        &self,
        weights: Option<&BTreeMap<String, WeightInfo>>,
        aliases: &BTreeMap<String, String>,
    ) -> String {
        let values = self.check(weights).values;
        let mut out = String::new();
        let _ = writeln!(out, "Graph(opset {})", self.opset());
        for input in self.inputs() {
            let _ = writeln!(out, "  input {}: {} {}", input.name, input.dtype, input.shape);
        }
        let (mut total_count, mut total_bytes) = (0u64, 0u64);
        // A weight two nodes share counts once in the total.
        let mut counted = std::collections::BTreeSet::new();
        for node in self.nodes() {
            let def = node.op.def();
            let attrs: Vec<String> =
                def.attrs.iter().filter_map(|a| node.attrs.get(a.name).map(|v| format!("{}={v}", a.name))).collect();
            let mut count = 0u64;
            for p in node_parameters(node) {
                // With weights, only those stored count (an absent optional
                // `num_batches_tracked` is none); without, the attributes say.
                let elem = values.get(&node.inputs[0]).map_or(4, |v| v.dtype.size() as u64);
                let sized = match weights {
                    Some(w) => w.get(&p.name).map(|w| (w.shape.clone(), w.dtype.size() as u64)),
                    None => p.shape.map(|s| (s, elem)),
                };
                if let Some((shape, size)) = sized {
                    let n: u64 = shape.iter().product();
                    count += n;
                    if counted.insert(aliases.get(&p.name).unwrap_or(&p.name).clone()) {
                        total_count += n;
                        total_bytes += n * size;
                    }
                }
            }
            let shape = values.get(&node.name).map_or_else(|| "?".to_owned(), |v| v.shape.to_string());
            let inputs = if node.inputs.len() == 1 { String::new() } else { format!(" <- {}", node.inputs.join(", ")) };
            let params = if count > 0 { format!(", {} params", group_digits(count)) } else { String::new() };
            let _ = writeln!(out, "  ({}): {}({}){inputs}  -> {shape}{params}", node.name, node.op, attrs.join(", "));
        }
        for output in self.outputs() {
            let info = values.get(output).map_or_else(|| "?".to_owned(), |v| v.to_string());
            let _ = writeln!(out, "  output {output}: {info}");
        }
        let _ = writeln!(out, "parameters: {} ({})", group_digits(total_count), human_bytes(total_bytes));
        out
    }
}
