//! `run`, `extract`, `render` and `samples add`: commands that use the model.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use nnbundle_container::{Bundle, BundleWriter, npy};
use nnbundle_graph::Graph;
use nnbundle_runtime::{Model, Value};
use serde_json::json;

use super::RenderFormat;
use crate::output::{DIM, GOOD, HEAD, json as print_json, spinner};
use crate::{Failure, Outcome, render, weights};

fn inputs(args: &[String]) -> Result<BTreeMap<String, Value>, Failure> {
    weights::read_npy_args(args)?
        .into_iter()
        .map(|(n, t)| {
            Value::from_tensor(&t).map(|v| (n.clone(), v)).map_err(|e| Failure::Bad(anyhow!("input `{n}`: {e}")))
        })
        .collect()
}

/// The first values of an output, for a glance.
fn preview(v: &Value) -> String {
    let t = v.to_tensor();
    let shown: Vec<String> = match t.dtype() {
        nnbundle_format::DType::F32 => {
            t.to_vec::<f32>().unwrap_or_default().iter().take(6).map(|x| format!("{x:.6}")).collect()
        }
        nnbundle_format::DType::F64 => {
            t.to_vec::<f64>().unwrap_or_default().iter().take(6).map(|x| format!("{x:.6}")).collect()
        }
        nnbundle_format::DType::I64 => {
            t.to_vec::<i64>().unwrap_or_default().iter().take(6).map(i64::to_string).collect()
        }
        _ => Vec::new(),
    };
    let more = if t.len() > shown.len() { ", ..." } else { "" };
    format!("[{}{more}]", shown.join(", "))
}

pub(crate) fn run(path: &Path, args: &[String], out_dir: Option<&Path>, as_json: bool) -> Outcome {
    let model = Model::load(path)?;
    let outputs = model.run(inputs(args)?)?;
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("create `{}`", dir.display()))?;
        for (name, v) in &outputs {
            let file = dir.join(format!("{name}.npy"));
            std::fs::write(&file, npy::to_npy(&v.to_tensor()))
                .with_context(|| format!("write `{}`", file.display()))?;
        }
    }
    if as_json {
        let list: Vec<_> = outputs
            .iter()
            .map(|(n, v)| json!({"name": n, "dtype": v.dtype(), "shape": v.shape(), "preview": preview(v)}))
            .collect();
        print_json(&json!({"outputs": list}))?;
    } else {
        for (name, v) in &outputs {
            anstream::println!("{HEAD}{name}{HEAD:#}: {} {:?} {DIM}{}{DIM:#}", v.dtype(), v.shape(), preview(v));
        }
        if let Some(dir) = out_dir {
            anstream::println!("wrote {} output(s) to {}", outputs.len(), dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn extract(path: &Path, until: &[String], output: &Path) -> Outcome {
    let bundle = Bundle::open(path)?;
    let names: Vec<&str> = until.iter().map(String::as_str).collect();
    let manifest = nnbundle_runtime::extract(&bundle, &names)?.save(output)?;
    anstream::println!(
        "{GOOD}extracted{GOOD:#} {} ({} of {} tensors, outputs: {})",
        output.display(),
        manifest.tensors.len(),
        bundle.manifest().tensors.len(),
        names.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn render(path: &Path, output: Option<&Path>, format: Option<RenderFormat>) -> Outcome {
    let (graph, values) = if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
        let yaml = std::fs::read(path).with_context(|| format!("read `{}`", path.display()))?;
        let graph = Graph::from_yaml(&yaml).map_err(|r| anyhow!("`{}` is not a valid graph:\n{r}", path.display()))?;
        let values = graph.check(None).values;
        (graph, values)
    } else {
        let bundle = Bundle::open(path)?;
        let graph = bundle.graph()?.ok_or_else(|| anyhow!("`{}` has no graph to render", path.display()))?;
        let values = graph.check(Some(&bundle.params_table())).values;
        (graph, values)
    };
    let format = format.unwrap_or(match output.and_then(|o| o.extension()).and_then(|e| e.to_str()) {
        Some("dot" | "gv") => RenderFormat::Dot,
        Some("mmd" | "mermaid") => RenderFormat::Mermaid,
        _ => RenderFormat::Svg,
    });
    let text = match format {
        RenderFormat::Svg => render::svg(&graph, &values),
        RenderFormat::Dot => render::dot(&graph, &values),
        RenderFormat::Mermaid => render::mermaid(&graph, &values),
    };
    match output {
        Some(file) => {
            std::fs::write(file, text).with_context(|| format!("write `{}`", file.display()))?;
            anstream::println!("{GOOD}rendered{GOOD:#} {} nodes to {}", graph.nodes().len(), file.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn add_samples(path: &Path, args: &[String], rtol: f64, atol: f64) -> Outcome {
    let bar = spinner("running the model");
    let bundle = Bundle::open(path)?;
    let model = Model::from_bundle(&bundle)?;
    let mut writer = BundleWriter::from_bundle(&bundle)?;
    model.add_sample(&mut writer, inputs(args)?, rtol, atol)?;
    let manifest = writer.save(path)?;
    bar.finish_and_clear();
    anstream::println!(
        "{GOOD}stored{GOOD:#} sample {} in {} (rtol {rtol}, atol {atol})",
        manifest.samples.len() - 1,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
