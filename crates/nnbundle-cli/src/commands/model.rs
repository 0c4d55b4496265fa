//! `run`, `extract`, `render` and `samples add`: commands that use the model.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use nnbundle_container::{Bundle, BundleWriter, npy};
use nnbundle_runtime::{Model, Value};
use serde_json::json;

use super::RenderFormat;
use crate::output::{DIM, GOOD, HEAD, WARN, done, json as print_json, progress, spinner};
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

/// What `nnb run` was asked to do.
pub(crate) struct RunArgs<'a> {
    pub bundle: &'a Path,
    pub inputs: &'a [String],
    pub out_dir: Option<&'a Path>,
    pub json: bool,
    /// Timed runs after the first (warm-up) one.
    pub repeat: Option<u32>,
    /// Threads for the run (default: one per core).
    pub threads: Option<usize>,
}

/// Warm latency over repeated runs.
#[derive(serde::Serialize)]
struct Timing {
    runs: u32,
    threads: usize,
    min_ms: f64,
    median_ms: f64,
    p90_ms: f64,
    mean_ms: f64,
    runs_per_s: f64,
}

impl Timing {
    fn of(mut ms: Vec<f64>, threads: usize) -> Timing {
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        // Nearest rank: the smallest value with at least p% of the runs at or below it.
        let rank = |p: f64| ms[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        let mean = ms.iter().sum::<f64>() / n as f64;
        Timing {
            runs: n as u32,
            threads,
            min_ms: ms[0],
            median_ms: rank(0.5),
            p90_ms: rank(0.9),
            mean_ms: mean,
            runs_per_s: 1000.0 / mean,
        }
    }
}

pub(crate) fn run(args: &RunArgs<'_>) -> Outcome {
    match args.threads {
        Some(n) => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| Failure::Io(anyhow!("cannot start {n} threads: {e}")))?;
            pool.install(|| run_here(args))
        }
        None => run_here(args),
    }
}

fn run_here(args: &RunArgs<'_>) -> Outcome {
    let model = Model::from_bundle(&super::open_bundle(args.bundle)?)?;
    let inputs = inputs(args.inputs)?;
    let outputs = model.run(inputs.clone())?;
    let timing = match args.repeat {
        Some(n) => {
            let bar = progress("timing", u64::from(n), false);
            let mut ms = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let given = inputs.clone();
                let start = std::time::Instant::now();
                model.run(given)?;
                ms.push(start.elapsed().as_secs_f64() * 1e3);
                bar.inc(1);
            }
            bar.finish_and_clear();
            Some(Timing::of(ms, rayon::current_num_threads()))
        }
        None => None,
    };
    if let Some(dir) = args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("create `{}`", dir.display()))?;
        for (name, v) in &outputs {
            let file = dir.join(format!("{name}.npy"));
            std::fs::write(&file, npy::to_npy(&v.to_tensor()))
                .with_context(|| format!("write `{}`", file.display()))?;
        }
    }
    if args.json {
        let list: Vec<_> = outputs
            .iter()
            .map(|(n, v)| json!({"name": n, "dtype": v.dtype(), "shape": v.shape(), "preview": preview(v)}))
            .collect();
        let mut body = json!({"outputs": list});
        if let Some(t) = &timing {
            body["timing"] = serde_json::to_value(t)?;
        }
        print_json(&body)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (name, v) in &outputs {
        anstream::println!("{HEAD}{name}{HEAD:#}: {} {:?} {DIM}{}{DIM:#}", v.dtype(), v.shape(), preview(v));
    }
    if let Some(dir) = args.out_dir {
        done(format_args!("wrote {} output(s) to {}", outputs.len(), dir.display()));
    }
    if let Some(t) = &timing {
        anstream::println!(
            "{HEAD}latency{HEAD:#} over {} warm run(s) on {} thread(s): min {:.3} ms, median {:.3} ms, \
             p90 {:.3} ms; {:.1} runs/s",
            t.runs,
            t.threads,
            t.min_ms,
            t.median_ms,
            t.p90_ms,
            t.runs_per_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn extract(path: &Path, until: &[String], output: &Path) -> Outcome {
    let bundle = super::open_bundle(path)?;
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

pub(crate) fn render(path: &Path, output: Option<&Path>, format: Option<RenderFormat>, collapse: bool) -> Outcome {
    let (graph, values, weights) = if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
        let graph = super::read_graph(path)?;
        let values = graph.check(None).values;
        (graph, values, None)
    } else {
        let bundle = super::open_bundle(path)?;
        let graph = bundle.graph()?.ok_or_else(|| anyhow!("`{}` has no graph to render", path.display()))?;
        let weights = bundle.params_table();
        let values = graph.check(Some(&weights)).values;
        (graph, values, Some(weights))
    };
    let mut picture = render::Picture::new(&graph, &values, weights.as_ref());
    if collapse {
        picture = picture.collapsed(&graph, weights.as_ref());
    }
    let format = format.unwrap_or(match output.and_then(|o| o.extension()).and_then(|e| e.to_str()) {
        Some("dot" | "gv") => RenderFormat::Dot,
        Some("mmd" | "mermaid") => RenderFormat::Mermaid,
        _ => RenderFormat::Svg,
    });
    let text = match format {
        RenderFormat::Svg => render::svg(&picture),
        RenderFormat::Dot => render::dot(&picture),
        RenderFormat::Mermaid => render::mermaid(&picture),
    };
    match output {
        Some(file) => {
            std::fs::write(file, text).with_context(|| format!("write `{}`", file.display()))?;
            done(format_args!(
                "{GOOD}rendered{GOOD:#} {} nodes as {} boxes to {}",
                graph.nodes().len(),
                picture.items.len(),
                file.display()
            ));
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
    let signatures = bundle.archive().signature_entries().count();
    let manifest = writer.save(path)?;
    bar.finish_and_clear();
    anstream::println!(
        "{GOOD}stored{GOOD:#} sample {} in {} (rtol {rtol}, atol {atol})",
        manifest.samples.len() - 1,
        path.display()
    );
    if signatures > 0 {
        // The manifest changed, so no signature would cover the bundle any more.
        anstream::eprintln!(
            "{WARN}note{WARN:#}: dropped the bundle's {signatures} signature(s), which covered the old manifest; sign it again with `nnb sign`"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::Timing;

    #[test]
    fn percentiles_are_nearest_rank() {
        let t = Timing::of(vec![5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0], 2);
        assert_eq!((t.min_ms, t.median_ms, t.p90_ms, t.mean_ms), (1.0, 5.0, 9.0, 5.5));
        assert_eq!((t.runs, t.threads), (10, 2));
        assert!((t.runs_per_s - 1000.0 / 5.5).abs() < 1e-9);
        let one = Timing::of(vec![3.0], 1);
        assert_eq!((one.min_ms, one.median_ms, one.p90_ms), (3.0, 3.0, 3.0));
    }
}
