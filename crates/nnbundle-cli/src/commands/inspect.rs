//! `inspect`: what a bundle holds, from its manifest and graph alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use nnbundle_graph::{group_digits, human_bytes};
use serde_json::json;

use crate::Outcome;
use crate::output::{BAD, DIM, GOOD, HEAD, json as print_json};

/// What one group's stored tensors add up to.
#[derive(Default, serde::Serialize)]
struct GroupTotals {
    tensors: u64,
    elements: u64,
    bytes: u64,
}

pub(crate) fn inspect(path: &Path, as_json: bool) -> Outcome {
    let bundle = super::open_bundle(path)?;
    let manifest = bundle.manifest();
    let graph = bundle.graph()?;
    let infos = bundle.tensor_infos();
    let summary = graph.as_ref().map(|g| g.summary_with_aliases(Some(&bundle.params_table()), &manifest.aliases));
    let mut groups: BTreeMap<&str, GroupTotals> = BTreeMap::new();
    for record in manifest.tensors.values() {
        let g = groups.entry(record.group.as_str()).or_default();
        g.tensors += 1;
        g.elements += record.shape.iter().product::<u64>();
        g.bytes += record.byte_size().unwrap_or(0);
    }
    let total_bytes: u64 = groups.values().map(|g| g.bytes).sum();
    let total_elements: u64 = groups.values().map(|g| g.elements).sum();
    let signatures = nnbundle_signing::summarize(bundle.archive());
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
                    "chunks": i.record.chunks,
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
            "signatures": signatures,
            "shards": manifest.shards,
            "summary": summary,
            "tensors": tensors,
            "totals": {"tensors": manifest.tensors.len(), "aliases": manifest.aliases.len(), "elements": total_elements, "bytes": total_bytes, "groups": groups},
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    anstream::println!("{HEAD}{}{HEAD:#}", path.display());
    anstream::println!("  format {}   bundle digest {}", manifest.format_version, bundle.digest());
    match &manifest.graph {
        Some(g) => anstream::println!("  opset {}   architecture digest {}", g.opset, g.architecture_digest),
        None => anstream::println!("  no graph: tensors only"),
    }
    if !manifest.shards.is_empty() {
        let bytes: u64 = manifest.shards.iter().map(|s| s.size).sum();
        anstream::println!(
            "  index of {} shards ({}), each checked: {} .. {}",
            manifest.shards.len(),
            human_bytes(bytes),
            manifest.shards[0].file,
            manifest.shards[manifest.shards.len() - 1].file
        );
    }
    if !manifest.metadata.is_empty() {
        anstream::println!("\n{HEAD}metadata{HEAD:#}");
        for (k, v) in &manifest.metadata {
            anstream::println!("  {k}: {v}");
        }
    }
    if let Some(summary) = &summary {
        anstream::println!("\n{HEAD}model{HEAD:#}");
        for line in summary.lines() {
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
        let digest = if i.stored_as == i.name {
            i.record.digest().map(|d| d.short(12)).unwrap_or_default()
        } else {
            format!("= {}", i.stored_as)
        };
        anstream::println!(
            "  {:<width$}  {:<8}  {:<5}  {:<16}  {:>10}  {digest}",
            i.name,
            i.record.group,
            i.record.dtype.to_string(),
            format!("{:?}", i.record.shape),
            human_bytes(i.nbytes()),
        );
    }
    let samples = match manifest.samples.len() {
        0 => String::new(),
        1 => ", 1 sample".to_owned(),
        n => format!(", {n} samples"),
    };
    anstream::println!(
        "\n  {} stored tensors ({}), {} aliases{samples}",
        manifest.tensors.len(),
        human_bytes(total_bytes),
        manifest.aliases.len(),
    );
    // Per group, so the `params` line agrees with the summary's parameter total.
    for (name, g) in &groups {
        anstream::println!(
            "    {name:<8}  {:>5} tensors  {:>15} elements  {:>10}",
            g.tensors,
            group_digits(g.elements),
            human_bytes(g.bytes)
        );
    }
    if !signatures.is_empty() {
        anstream::println!(
            "\n{HEAD}signatures{HEAD:#} {DIM}(well-formed or not; `nnb verify --key` checks them){DIM:#}"
        );
        for s in &signatures {
            let style = if s.problem.is_some() { BAD } else { GOOD };
            let word = if s.problem.is_some() { "malformed" } else { "well-formed" };
            anstream::println!("  {style}{word}{style:#}  {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
