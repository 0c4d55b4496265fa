//! `pack` and `unpack`: to and from a folder, and from the formats people already use.
//!
//! The folder `nnb unpack` writes, and `nnb pack DIR` reads:
//!
//! ```text
//! DIR/graph.yaml           the graph, byte for byte as stored (absent for tensors-only bundles)
//! DIR/weights.safetensors  every stored tensor once (aliases are not copies), for any safetensors reader
//! DIR/manifest.yaml        metadata, groups, aliases, samples, tolerances (digests are re-computed)
//! DIR/signatures/          the signature entries, as stored (only for a signed bundle)
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use nnbundle_container::{Bundle, BundleWriter, ContainerError, Durability};

use super::{invalid_graph, read_graph};
use nnbundle_format::{GRAPH_ENTRY, MANIFEST_ENTRY, Manifest, MetaValue, Tensor};
use nnbundle_graph::Graph;
use nnbundle_runtime::{Model, ValidateOptions, Value};

use crate::output::{GOOD, WARN, done, progress, spinner};
use crate::{Failure, Outcome, weights};

/// The tensors of an unpacked bundle.
const WEIGHTS_FILE: &str = "weights.safetensors";
/// The signature files of an unpacked bundle.
const SIGNATURES_FOLDER: &str = "signatures";

/// What `nnb pack` was asked to do.
pub(crate) struct PackArgs<'a> {
    /// A graph YAML file, or a folder written by `nnb unpack`.
    pub source: &'a Path,
    /// The weights file, with a graph file.
    pub weights: Option<&'a Path>,
    pub output: &'a Path,
    pub meta: &'a [String],
    pub samples: &'a [String],
    pub rtol: f64,
    pub atol: f64,
    /// Removed from the front of every weight name that has it.
    pub strip_prefix: Option<&'a str>,
}

/// Parses `KEY=VALUE` metadata, the value read as YAML.
fn metadata(args: &[String]) -> Result<Vec<(String, MetaValue)>, Failure> {
    args.iter()
        .map(|arg| {
            let (key, value) =
                arg.split_once('=').ok_or_else(|| Failure::usage(format!("--meta `{arg}`: expected KEY=VALUE")))?;
            let parsed = nnbundle_format::yaml::from_str::<MetaValue>("--meta", value)
                .unwrap_or_else(|_| MetaValue::String(value.to_owned()));
            Ok((key.to_owned(), parsed))
        })
        .collect()
}

/// What a bundle is packed from: a writer with the content, the graph, and
/// the parameters by every name the graph may use (aliases included), to run samples.
struct Source {
    writer: BundleWriter,
    graph: Option<Graph>,
    params: BTreeMap<String, Tensor>,
    /// Signature files to store as they are (name to bytes).
    signatures: BTreeMap<String, Vec<u8>>,
}

/// The signature files of an unpacked folder: `DIR/signatures/<name>.sigstore.json`.
fn read_signatures(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, Failure> {
    let folder = dir.join(SIGNATURES_FOLDER);
    let listing = match std::fs::read_dir(&folder) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(anyhow!(e).context(format!("read `{}`", folder.display())).into()),
    };
    let mut signatures = BTreeMap::new();
    for entry in listing {
        let path = entry.with_context(|| format!("read `{}`", folder.display()))?.path();
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = nnbundle_format::signature_name(&format!("{SIGNATURES_FOLDER}/{file_name}"))
            .filter(|n| nnbundle_format::names::check_signature_name(n).is_ok())
            .ok_or_else(|| {
                Failure::Bad(anyhow!(
                    "`{}`: a signature file is named <name>.sigstore.json (name: letters, digits, `_`, `-`, `.`)",
                    path.display()
                ))
            })?
            .to_owned();
        let bytes = std::fs::read(&path).with_context(|| format!("read `{}`", path.display()))?;
        signatures.insert(name, bytes);
    }
    Ok(signatures)
}

/// The content of a folder written by `nnb unpack`.
fn from_folder(dir: &Path) -> Result<Source, Failure> {
    let manifest_path = dir.join(MANIFEST_ENTRY);
    if !manifest_path.exists() && dir.join(GRAPH_ENTRY).exists() {
        // A folder from an older `nnb unpack`, or assembled by hand.
        return Err(Failure::usage(format!(
            "`{}` has no {MANIFEST_ENTRY}: pack its graph and weights as files, \
             `nnb pack {} {} -o OUT.nnb`",
            dir.display(),
            dir.join(GRAPH_ENTRY).display(),
            dir.join(WEIGHTS_FILE).display()
        )));
    }
    let text = std::fs::read(&manifest_path).with_context(|| format!("read `{}`", manifest_path.display()))?;
    let manifest =
        Manifest::parse(&text).map_err(|e| anyhow!("`{}` is not a valid manifest: {e}", manifest_path.display()))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let mut stored = weights::read(&weights_path)?;
    let mut writer = BundleWriter::new();
    let mut params = BTreeMap::new();
    for (name, record) in &manifest.tensors {
        let tensor = stored.remove(name).ok_or_else(|| {
            anyhow!("`{}` has no tensor `{name}`, which `{}` lists", weights_path.display(), manifest_path.display())
        })?;
        if record.group == nnbundle_format::names::PARAMS_GROUP {
            params.insert(name.clone(), tensor.clone());
        }
        writer.add_tensor_to_group(&record.group, name.clone(), tensor)?;
    }
    if let Some(extra) = stored.keys().next() {
        return Err(Failure::Bad(anyhow!(
            "`{}` holds `{extra}`, which `{}` does not list: list it under `tensors` there \
             (any sha256: pack hashes again), or under `aliases` if it is a copy of a tied weight",
            weights_path.display(),
            manifest_path.display()
        )));
    }
    for (alias, target) in &manifest.aliases {
        writer.add_alias(alias.clone(), target.clone())?;
        if let Some(t) = params.get(target) {
            params.insert(alias.clone(), t.clone());
        }
    }
    for (key, value) in &manifest.metadata {
        writer.set_metadata(key.clone(), value.clone())?;
    }
    writer.set_samples(manifest.samples.clone());
    writer.keep_layout_of(&manifest);
    let graph_path = dir.join(GRAPH_ENTRY);
    let graph = match std::fs::read(&graph_path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| anyhow!("`{}` is not UTF-8", graph_path.display()))?;
            writer.set_graph_yaml(text).map_err(|e| match e {
                ContainerError::Graph { report } => invalid_graph(&graph_path, report),
                other => other.into(),
            })?;
            writer.graph().cloned()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && manifest.graph.is_none() => None,
        Err(e) => return Err(anyhow!(e).context(format!("read `{}`", graph_path.display())).into()),
    };
    Ok(Source { writer, graph, params, signatures: read_signatures(dir)? })
}

/// A writer with a graph file and a weights file.
fn from_files(graph_path: &Path, weights_path: &Path, strip_prefix: Option<&str>) -> Result<Source, Failure> {
    let graph = read_graph(graph_path)?;
    let mut tensors = weights::read(weights_path)?;
    if let Some(prefix) = strip_prefix {
        tensors = tensors.into_iter().map(|(n, t)| (n.strip_prefix(prefix).unwrap_or(&n).to_owned(), t)).collect();
    } else if let Some(prefix) = common_extra_prefix(&graph, &tensors) {
        let hint = format!(
            "hint: every weight name has the prefix `{prefix}` the graph's names lack: add `--strip-prefix {prefix}`"
        );
        let problems = Graph::check(&graph, Some(&nnbundle_graph::WeightInfo::table(&tensors))).report;
        return Err(Failure::Bad(anyhow!("the weights do not fit `{}`:\n{problems}\n{hint}", graph_path.display())));
    }
    let mut writer = BundleWriter::new();
    writer.set_graph(graph.clone());
    for (name, tensor) in &tensors {
        writer.add_tensor(name.clone(), tensor.clone())?;
    }
    Ok(Source { writer, graph: Some(graph), params: tensors, signatures: BTreeMap::new() })
}

/// The dotted prefix (`model.`) that every weight name has and that, removed,
/// turns every missing graph parameter into one the weights have.
fn common_extra_prefix(graph: &Graph, tensors: &BTreeMap<String, Tensor>) -> Option<String> {
    let missing: Vec<String> = graph
        .parameters()
        .into_iter()
        .filter(|p| p.required && !tensors.contains_key(&p.name))
        .map(|p| p.name)
        .collect();
    let first = tensors.keys().next()?;
    let prefix = &first[..first.find('.')? + 1];
    let all_prefixed = tensors.keys().all(|n| n.starts_with(prefix));
    let found = |n: &String| tensors.contains_key(&format!("{prefix}{n}"));
    (!missing.is_empty() && all_prefixed && missing.iter().all(found)).then(|| prefix.to_owned())
}

pub(crate) fn pack(args: &PackArgs<'_>) -> Outcome {
    let Source { mut writer, graph, params, signatures } = if args.source.is_dir() {
        if let Some(w) = args.weights {
            return Err(Failure::usage(format!(
                "`{}` is a folder written by `nnb unpack`, which holds its weights: drop `{}`",
                args.source.display(),
                w.display()
            )));
        }
        if args.strip_prefix.is_some() {
            return Err(Failure::usage("--strip-prefix applies to a weights file, not to an unpacked folder"));
        }
        from_folder(args.source)?
    } else {
        let weights = args.weights.ok_or_else(|| {
            Failure::usage(format!(
                "`{}` is a graph file: give the weights file after it, or pack a folder written by `nnb unpack`",
                args.source.display()
            ))
        })?;
        from_files(args.source, weights, args.strip_prefix)?
    };
    for (key, value) in metadata(args.meta)? {
        writer.set_metadata(key, value)?;
    }
    if !args.samples.is_empty() {
        let graph = graph.ok_or_else(|| Failure::usage("--sample needs a graph: this bundle holds tensors only"))?;
        let inputs: BTreeMap<String, Value> = weights::read_npy_args(args.samples)?
            .iter()
            .map(|(n, t)| Ok((n.clone(), Value::from_tensor(t)?)))
            .collect::<Result<_, Failure>>()?;
        let bar = spinner("running the model on the samples");
        let model = Model::new(graph, params).map_err(|e| anyhow!("the weights do not fit the graph: {e}"))?;
        model.add_sample(&mut writer, inputs, args.rtol, args.atol)?;
        bar.finish_and_clear();
    }
    let bar = progress("writing", writer.data_bytes(), true);
    let manifest = writer.save_reporting(args.output, Durability::Synced, &|bytes| bar.inc(bytes))?;
    if !signatures.is_empty() {
        // Stored as they are: `nnb verify` tells whether they still cover the (maybe edited) content.
        nnbundle_container::Archive::open(args.output)?.save_with_signatures(
            args.output,
            &signatures,
            Durability::Synced,
        )?;
    }
    bar.finish_and_clear();
    done(format_args!(
        "{GOOD}packed{GOOD:#} {} ({} tensors, bundle digest {}{})",
        args.output.display(),
        manifest.tensors.len(),
        manifest.bundle_digest()?.short(16),
        match signatures.len() {
            0 => String::new(),
            n => format!(", {n} signature(s) carried over as they are: `nnb verify` checks them"),
        }
    ));
    // What `validate` would warn about (unreachable nodes, ...), without re-hashing.
    let report = nnbundle_runtime::validate(
        args.output,
        ValidateOptions { verify_hashes: false, run_samples: false, key: None },
    );
    for p in report.problems.iter().filter(|p| p.severity == nnbundle_graph::Severity::Warning) {
        let node = p.node.as_ref().map(|n| format!(" (node `{n}`)")).unwrap_or_default();
        anstream::eprintln!("{WARN}warning{WARN:#}[{}] {}{node}: {}", p.code, p.location, p.message);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn unpack(bundle_path: &Path, output: &Path) -> Outcome {
    let bar = spinner("verifying and unpacking");
    let bundle = Bundle::open(bundle_path)?;
    bundle.verify_all()?;
    std::fs::create_dir_all(output).with_context(|| format!("create `{}`", output.display()))?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let file = output.join(name);
        std::fs::write(&file, bytes).with_context(|| format!("write `{}`", file.display()))
    };
    let m = bundle.manifest();
    let tensors: BTreeMap<String, Tensor> = m
        .tensors
        .keys()
        .map(|name| Ok((name.clone(), bundle.tensor_unverified(name)?)))
        .collect::<Result<_, Failure>>()?;
    // Other tools see the metadata too, as safetensors' string metadata.
    let metadata = m.metadata.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
    weights::write_safetensors(&output.join(WEIGHTS_FILE), &tensors, metadata)?;
    write(MANIFEST_ENTRY, m.to_yaml()?.as_bytes())?;
    if let Some(graph) = bundle.graph_yaml() {
        write(GRAPH_ENTRY, graph)?;
    }
    let signatures = bundle.signatures()?;
    if !signatures.is_empty() {
        let folder = output.join(SIGNATURES_FOLDER);
        std::fs::create_dir_all(&folder).with_context(|| format!("create `{}`", folder.display()))?;
        for (name, bytes) in &signatures {
            write(&format!("{SIGNATURES_FOLDER}/{name}{}", nnbundle_format::SIGNATURE_ENTRY_SUFFIX), bytes)?;
        }
    }
    bar.finish_and_clear();
    done(format_args!(
        "{GOOD}unpacked{GOOD:#} {} into {}: {}{WEIGHTS_FILE} ({} tensors), {MANIFEST_ENTRY} ({} aliases, {} samples, {} metadata keys)",
        bundle_path.display(),
        output.display(),
        if bundle.graph_yaml().is_some() { "graph.yaml, " } else { "" },
        m.tensors.len(),
        m.aliases.len(),
        m.samples.len(),
        m.metadata.len(),
    ));
    Ok(ExitCode::SUCCESS)
}
