//! `inspect`: what a bundle holds, from its manifest and graph alone.

use std::path::Path;
use std::process::ExitCode;

use nnbundle_container::Bundle;
use nnbundle_graph::{group_digits, human_bytes};
use serde_json::json;

use crate::Outcome;
use crate::output::{DIM, HEAD, json as print_json};

pub(crate) fn inspect(path: &Path, as_json: bool) -> Outcome {
    let bundle = Bundle::open(path)?;
    let manifest = bundle.manifest();
    let graph = bundle.graph()?;
    let infos = bundle.tensor_infos();
    let total_bytes: u64 = manifest.tensors.values().map(|r| r.byte_size().unwrap_or(0)).sum();
    let total_elements: u64 = manifest.tensors.values().map(|r| r.shape.iter().product::<u64>()).sum();
    if as_json {
        let tensors: Vec<_> = infos
            .iter()
            .map(|i| {
                json!({
                    "name": i.name,
                    "stored_as": i.stored_as,
                    "group": i.record.group,
                    "dtype": i.record.dtype,
                    "shape": i.record.shape,
                    "bytes": i.nbytes(),
                    "sha256": i.record.sha256,
                })
            })
            .collect();
        print_json(&json!({
            "file": path.display().to_string(),
            "format_version": manifest.format_version,
            "bundle_digest": bundle.digest(),
            "graph": manifest.graph,
            "metadata": manifest.metadata,
            "samples": manifest.samples.len(),
            "summary": graph.as_ref().map(|g| g.summary(Some(&bundle.params_table()))),
            "tensors": tensors,
            "totals": {"tensors": manifest.tensors.len(), "aliases": manifest.aliases.len(), "elements": total_elements, "bytes": total_bytes},
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    anstream::println!("{HEAD}{}{HEAD:#}", path.display());
    anstream::println!("  format {}   bundle digest {}", manifest.format_version, bundle.digest());
    match &manifest.graph {
        Some(g) => anstream::println!("  opset {}   architecture digest {}", g.opset, g.architecture_digest),
        None => anstream::println!("  no graph: tensors only"),
    }
    if !manifest.metadata.is_empty() {
        anstream::println!("\n{HEAD}metadata{HEAD:#}");
        for (k, v) in &manifest.metadata {
            anstream::println!("  {k}: {v}");
        }
    }
    if let Some(g) = &graph {
        anstream::println!("\n{HEAD}model{HEAD:#}");
        for line in g.summary(Some(&bundle.params_table())).lines() {
            anstream::println!("  {line}");
        }
    }
    anstream::println!("\n{HEAD}tensors{HEAD:#}");
    let width = infos.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
    anstream::println!(
        "  {DIM}{:<width$}  {:<8}  {:<5}  {:<16}  {:>10}  sha256{DIM:#}",
        "name",
        "group",
        "dtype",
        "shape",
        "bytes"
    );
    for i in &infos {
        let digest = if i.stored_as == i.name { i.record.sha256.short(12) } else { format!("= {}", i.stored_as) };
        anstream::println!(
            "  {:<width$}  {:<8}  {:<5}  {:<16}  {:>10}  {digest}",
            i.name,
            i.record.group,
            i.record.dtype.to_string(),
            format!("{:?}", i.record.shape),
            human_bytes(i.nbytes()),
        );
    }
    anstream::println!(
        "\n  {} stored tensors, {} aliases, {} elements, {}{}",
        manifest.tensors.len(),
        manifest.aliases.len(),
        group_digits(total_elements),
        human_bytes(total_bytes),
        if manifest.samples.is_empty() { String::new() } else { format!(", {} sample(s)", manifest.samples.len()) }
    );
    Ok(ExitCode::SUCCESS)
}
