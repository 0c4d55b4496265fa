//! `pack` and `unpack`: to and from the formats people already use.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use nnbundle_container::{Bundle, BundleWriter};
use nnbundle_format::MetaValue;
use nnbundle_graph::Graph;
use nnbundle_runtime::{Model, Value};

use crate::output::{GOOD, spinner};
use crate::{Failure, Outcome, weights};

/// Parses `KEY=VALUE` metadata, the value read as YAML.
fn metadata(args: &[String]) -> anyhow::Result<Vec<(String, MetaValue)>> {
    args.iter()
        .map(|arg| {
            let (key, value) = arg.split_once('=').with_context(|| format!("--meta `{arg}`: expected KEY=VALUE"))?;
            let parsed = nnbundle_format::yaml::from_str::<MetaValue>("--meta", value)
                .unwrap_or_else(|_| MetaValue::String(value.to_owned()));
            Ok((key.to_owned(), parsed))
        })
        .collect()
}

pub(crate) fn pack(
    graph_path: &Path,
    weights_path: &Path,
    output: &Path,
    meta: &[String],
    samples: &[String],
    rtol: f64,
    atol: f64,
) -> Outcome {
    let yaml = std::fs::read(graph_path).with_context(|| format!("read `{}`", graph_path.display()))?;
    let graph = Graph::from_yaml(&yaml)
        .map_err(|report| anyhow!("`{}` is not a valid graph:\n{report}", graph_path.display()))?;
    let tensors = weights::read(weights_path)?;
    let bar = spinner("hashing and writing");
    let mut writer = BundleWriter::new();
    writer.set_graph(graph.clone());
    for (name, tensor) in &tensors {
        writer.add_tensor(name.clone(), tensor.clone())?;
    }
    for (key, value) in metadata(meta)? {
        writer.set_metadata(key, value)?;
    }
    if !samples.is_empty() {
        let inputs: BTreeMap<String, Value> = weights::read_npy_args(samples)?
            .iter()
            .map(|(n, t)| Ok((n.clone(), Value::from_tensor(t)?)))
            .collect::<anyhow::Result<_>>()?;
        let model = Model::new(graph, tensors).map_err(|e| anyhow!("the weights do not fit the graph: {e}"))?;
        model.add_sample(&mut writer, inputs, rtol, atol)?;
    }
    let manifest = writer.save(output).with_context(|| format!("cannot write `{}`", output.display()))?;
    bar.finish_and_clear();
    anstream::println!(
        "{GOOD}packed{GOOD:#} {} ({} tensors, bundle digest {})",
        output.display(),
        manifest.tensors.len(),
        manifest.bundle_digest()?.short(16)
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn unpack(bundle_path: &Path, output: &Path) -> Outcome {
    let bundle = Bundle::open(bundle_path)?;
    std::fs::create_dir_all(output)
        .map_err(|e| Failure::Io(anyhow!(e).context(format!("create `{}`", output.display()))))?;
    let tensors = bundle.load_all()?;
    let mut metadata = HashMap::new();
    for (k, v) in &bundle.manifest().metadata {
        metadata.insert(k.clone(), v.to_string());
    }
    weights::write_safetensors(&output.join("weights.safetensors"), &tensors, metadata)?;
    let mut written = vec!["weights.safetensors"];
    if let Some(graph) = bundle.graph()? {
        std::fs::write(output.join("graph.yaml"), graph.to_yaml()?)
            .with_context(|| format!("write into `{}`", output.display()))?;
        written.push("graph.yaml");
    }
    anstream::println!(
        "{GOOD}unpacked{GOOD:#} {} tensors into {}: {}",
        tensors.len(),
        output.display(),
        written.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
