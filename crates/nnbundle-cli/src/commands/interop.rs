//! `import` and `export`: ONNX in and out.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use nnbundle_container::Durability;
use nnbundle_onnx::{ImportOptions, Imported};

use crate::output::{GOOD, done, progress, spinner};
use crate::{Failure, Outcome};

/// The import options of `--input-shape`, `--input-value` and `--outputs`.
pub(crate) fn import_options(
    shapes: &[String],
    values: &[String],
    outputs: Vec<String>,
) -> Result<ImportOptions, Failure> {
    let usage = |flag: &str, arg: &str, why: &str| Failure::usage(format!("--{flag} `{arg}`: {why}"));
    let mut options = ImportOptions::default();
    for arg in shapes {
        let (name, dims) = arg.split_once('=').ok_or_else(|| usage("input-shape", arg, "expected NAME=d0,d1,..."))?;
        let dims = dims
            .split(',')
            .filter(|d| !d.trim().is_empty())
            .map(|d| d.trim().parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| usage("input-shape", arg, &format!("every dimension is a size ({e})")))?;
        options.input_shapes.insert(name.to_owned(), dims);
    }
    for arg in values {
        let (name, value) = arg.split_once('=').ok_or_else(|| usage("input-value", arg, "expected NAME=VALUE"))?;
        options.input_values.insert(name.to_owned(), value.to_owned());
    }
    options.outputs = (!outputs.is_empty()).then_some(outputs);
    Ok(options)
}

/// `nnb import`: writes `output`, or with none (`--dry-run`) reports what it would write.
pub(crate) fn import(model: &Path, output: Option<&Path>, options: &ImportOptions) -> Outcome {
    let bar = spinner("importing");
    let imported = nnbundle_onnx::import_file_with(model, options).map_err(|e| match e {
        nnbundle_onnx::ImportError::Io { path, source } => anyhow!(source).context(format!("read `{path}`")),
        other => anyhow!(other).context(format!("`{}`", model.display())),
    })?;
    let Some(output) = output else {
        bar.finish_and_clear();
        anstream::println!(
            "{GOOD}would import{GOOD:#} {} ({} nodes, {} weights, ONNX opset {}, graph opset {}); nothing written",
            model.display(),
            imported.graph.nodes().len(),
            imported.weights.len() + imported.aliases.len(),
            imported.opset,
            imported.graph.opset()
        );
        print_renamed(&imported);
        return Ok(ExitCode::SUCCESS);
    };
    bar.finish_and_clear();
    let writer = imported.to_writer()?;
    let bar = progress("writing", writer.data_bytes(), true);
    let manifest = writer.save_reporting(output, Durability::Synced, &|bytes| bar.inc(bytes))?;
    bar.finish_and_clear();
    done(format_args!(
        "{GOOD}imported{GOOD:#} {} ({} nodes, {} tensors, ONNX opset {})",
        output.display(),
        imported.graph.nodes().len(),
        manifest.tensors.len(),
        imported.opset
    ));
    print_renamed(&imported);
    Ok(ExitCode::SUCCESS)
}

/// The inputs and outputs whose ONNX names are not graph names, as renamed.
fn print_renamed(imported: &Imported) {
    if imported.onnx_names.is_empty() {
        return;
    }
    anstream::println!(
        "renamed {} input and output name(s) that are not graph names (kept in metadata `onnx_names` for export):",
        imported.onnx_names.len()
    );
    for (graph, onnx) in &imported.onnx_names {
        anstream::println!("  `{onnx}` -> `{graph}`");
    }
}

pub(crate) fn export(bundle_path: &Path, output: &Path) -> Outcome {
    let bundle = super::open_bundle(bundle_path)?;
    let model = nnbundle_onnx::export_bundle(&bundle).map_err(|e| match e {
        nnbundle_onnx::BundleExportError::Container(e) => anyhow!(e),
        other => anyhow!("`{}`: {other}", bundle_path.display()),
    })?;
    nnbundle_onnx::save_model(&model, output).with_context(|| format!("cannot write `{}`", output.display()))?;
    anstream::println!(
        "{GOOD}exported{GOOD:#} {} (ONNX opset {}, {} nodes)",
        output.display(),
        nnbundle_onnx::EXPORT_OPSET,
        model.graph.map_or(0, |g| g.node.len())
    );
    Ok(ExitCode::SUCCESS)
}
