//! Validating a bundle end to end, collecting every problem: what `nnb validate` reports.

use std::collections::BTreeMap;
use std::path::Path;

use nnbundle_container::{Bundle, ContainerError, OpenOptions, Verify};
use nnbundle_graph::{Code, Severity};
use nnbundle_signing::VerifyingKey;
use schemars::JsonSchema;
use serde::Serialize;

use crate::model::Model;
use crate::value::Value;

/// What to check beyond the structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateOptions {
    /// Hash every tensor (the default); `false` skips the SHA-256 checks.
    pub verify_hashes: bool,
    /// Re-run the stored samples and compare outputs (the default).
    pub run_samples: bool,
    /// Also require a signature by this key that covers the bundle (spec 10).
    pub key: Option<VerifyingKey>,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions { verify_hashes: true, run_samples: true, key: None }
    }
}

/// Outcome of one group of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check of the group passed.
    Passed,
    /// At least one error.
    Failed,
    /// Not run (asked not to, nothing to check, or an earlier failure prevents it).
    Skipped,
}

/// One group of checks and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Check {
    /// `container`, `signatures`, `graph`, `weights`, `hashes` or `samples`.
    pub name: &'static str,
    /// Its outcome.
    pub status: Status,
    /// A short account (`4 tensors`, `skipped: --no-hash`).
    pub detail: String,
}

/// The stable kebab-case code of a finding: a graph problem's, or the
/// container's and validator's own (`hash-mismatch`, `sample-mismatch`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FindingCode {
    /// A graph problem's code.
    Graph(Code),
    /// A container or validation code.
    Bundle(&'static str),
}

impl FindingCode {
    /// The code as written in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::Graph(code) => code.as_str(),
            FindingCode::Bundle(code) => code,
        }
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for FindingCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Finding {
    /// `error` or `warning`.
    pub severity: Severity,
    /// Stable kebab-case code (`hash-mismatch`, `parameter-shape`, ...).
    pub code: FindingCode,
    /// Where: an entry (`manifest.yaml`), a tensor (`tensors.hidden.weight`), a YAML path (`nodes[3].attrs.kernel_size`).
    pub location: String,
    /// The node concerned, for graph problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What is wrong, and what was expected.
    pub message: String,
}

/// The result of validating one bundle. Its JSON form is published as `spec/schema/report.schema.json`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ValidationReport {
    /// The file checked.
    pub file: String,
    /// True when there is no error.
    pub valid: bool,
    /// The bundle's format version, when the manifest could be read.
    pub format_version: Option<String>,
    /// The bundle digest, when the manifest could be read.
    pub bundle_digest: Option<String>,
    /// The graph's architecture digest, when there is a graph.
    pub architecture_digest: Option<String>,
    /// Each group of checks, in order.
    pub checks: Vec<Check>,
    /// Every problem, in the order found.
    pub problems: Vec<Finding>,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
}

impl ValidationReport {
    /// True when a problem is an I/O failure rather than a fault of the bundle.
    pub fn is_io_failure(&self) -> bool {
        self.problems.iter().any(|p| p.code == "io")
    }
}

/// A graph problem as a report finding.
fn graph_finding(p: &nnbundle_graph::Problem) -> Finding {
    Finding {
        severity: p.severity,
        code: FindingCode::Graph(p.code),
        location: p.path.clone(),
        node: p.node.clone(),
        message: p.message.clone(),
    }
}

fn container_finding(e: &ContainerError) -> Vec<Finding> {
    match e {
        ContainerError::Verification(all) => all.iter().flat_map(container_finding).collect(),
        ContainerError::Graph { report } => report.problems.iter().map(graph_finding).collect(),
        other => vec![Finding {
            severity: Severity::Error,
            code: FindingCode::Bundle(other.code()),
            location: other.location().unwrap_or_default(),
            node: None,
            message: other.to_string(),
        }],
    }
}

fn check(name: &'static str, findings: &[Finding], passed: String) -> Check {
    let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
    if errors == 0 {
        Check { name, status: Status::Passed, detail: passed }
    } else {
        Check { name, status: Status::Failed, detail: format!("{errors} error(s)") }
    }
}

fn skipped(name: &'static str, why: &str) -> Check {
    Check { name, status: Status::Skipped, detail: why.to_owned() }
}

/// Graph problem codes that concern the weights rather than the graph itself.
fn is_weight_code(code: Code) -> bool {
    matches!(code, Code::MissingParameter | Code::UnusedWeight | Code::ParameterShape | Code::ParameterDType)
}

/// Validates the bundle at `path`: container, limits, manifest, graph,
/// weights against the graph, hashes and samples; every problem is listed.
pub fn validate(path: &Path, options: ValidateOptions) -> ValidationReport {
    validate_reporting(path, options, &|_, _| ())
}

/// [`validate`], calling `progress(bytes, total)` as tensors are hashed:
/// `bytes` just checked, of `total` to check (from several threads).
pub fn validate_reporting(
    path: &Path,
    options: ValidateOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> ValidationReport {
    let opened = Bundle::open_with(path, OpenOptions { verify: Verify::OnAccess, ..Default::default() });
    validate_opened(&path.display().to_string(), opened, options, progress)
}

/// [`validate_reporting`] of a bundle already opened (or that failed to
/// open) from `file`, a path or a URL: what validating a remote bundle
/// uses.
pub fn validate_opened(
    file: &str,
    opened: Result<Bundle, nnbundle_container::ContainerError>,
    options: ValidateOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> ValidationReport {
    let mut report = ValidationReport {
        file: file.to_owned(),
        valid: false,
        format_version: None,
        bundle_digest: None,
        architecture_digest: None,
        checks: Vec::new(),
        problems: Vec::new(),
        errors: 0,
        warnings: 0,
    };
    let bundle = match opened {
        Ok(b) => b,
        Err(e) => {
            report.problems = container_finding(&e);
            for p in &mut report.problems {
                if p.location.is_empty() {
                    p.location.clone_from(&report.file);
                }
            }
            report.checks.push(check("container", &report.problems, String::new()));
            for name in ["signatures", "graph", "weights", "hashes", "samples"] {
                report.checks.push(skipped(name, "the container could not be read"));
            }
            return finish(report);
        }
    };
    let manifest = bundle.manifest();
    report.format_version = Some(manifest.format_version.to_string());
    report.bundle_digest = Some(bundle.digest().to_hex());
    report.checks.push(Check {
        name: "container",
        status: Status::Passed,
        detail: format!("{} tensors, {} aliases", manifest.tensors.len(), manifest.aliases.len()),
    });

    let (signatures, findings) = check_signatures(&bundle, options.key.as_ref());
    report.checks.push(signatures);
    report.problems.extend(findings);

    // Graph and weights.
    let mut graph_ok = false;
    match bundle.analyze_graph() {
        None => {
            report.checks.push(skipped("graph", "the bundle holds tensors only"));
            report.checks.push(skipped("weights", "no graph to check the weights against"));
        }
        Some(analysis) => {
            let (weights, graph): (Vec<_>, Vec<_>) =
                analysis.report.problems.iter().partition(|p| is_weight_code(p.code));
            let to_findings =
                |ps: Vec<&nnbundle_graph::Problem>| -> Vec<Finding> { ps.into_iter().map(graph_finding).collect() };
            let mut graph_findings = to_findings(graph);
            let weight_findings = to_findings(weights);
            if let Some(g) = &analysis.graph {
                report.architecture_digest = Some(g.architecture_digest().to_hex());
                if let Err(e) = bundle.graph() {
                    graph_findings.extend(container_finding(&e));
                }
            }
            let nodes = analysis.graph.as_ref().map_or(0, |g| g.nodes().len());
            report.checks.push(check("graph", &graph_findings, format!("{nodes} nodes, shapes inferred")));
            report.checks.push(check(
                "weights",
                &weight_findings,
                "every parameter present with the implied dtype and shape".into(),
            ));
            graph_ok = !analysis.report.has_errors() && graph_findings.iter().all(|f| f.severity != Severity::Error);
            report.problems.extend(graph_findings);
            report.problems.extend(weight_findings);
        }
    }

    // Hashes.
    let mut hashes_ok = true;
    if options.verify_hashes {
        let total = manifest.tensors.values().map(|r| r.byte_size().unwrap_or(0)).sum::<u64>();
        let findings = bundle
            .verify_every_digest_reporting(&|bytes| progress(bytes, total))
            .err()
            .map(|e| container_finding(&e))
            .unwrap_or_default();
        hashes_ok = findings.is_empty();
        let whole = manifest.tensors.values().filter(|r| r.sha256.is_some()).count();
        let chunked = manifest.tensors.values().filter(|r| r.chunks.is_some()).count();
        let verified = match chunked {
            0 => format!("{whole} SHA-256 digests verified"),
            n => format!("{whole} SHA-256 digests and {n} chunk digests verified"),
        };
        report.checks.push(check("hashes", &findings, verified));
        report.problems.extend(findings);
    } else {
        report.checks.push(skipped("hashes", "not requested (--no-hash)"));
    }

    // Samples.
    if manifest.samples.is_empty() {
        report.checks.push(skipped("samples", "the bundle stores no samples"));
    } else if !options.run_samples {
        report.checks.push(skipped("samples", "not requested"));
    } else if !(graph_ok && hashes_ok) {
        report.checks.push(skipped("samples", "the graph, weights or hashes failed"));
    } else {
        let findings = run_samples(&bundle);
        report.checks.push(check("samples", &findings, format!("{} sample(s) reproduced", manifest.samples.len())));
        report.problems.extend(findings);
    }
    finish(report)
}

/// Checks each signature's form (spec 10.3) and, given a key, that one
/// signed by it covers the bundle (10.4).
fn check_signatures(bundle: &Bundle, key: Option<&VerifyingKey>) -> (Check, Vec<Finding>) {
    let error = |location: String, code: &'static str, message: String| Finding {
        severity: Severity::Error,
        code: FindingCode::Bundle(code),
        location,
        node: None,
        message,
    };
    let summaries = nnbundle_signing::summarize(bundle.archive());
    let mut findings: Vec<Finding> = summaries
        .iter()
        .filter_map(|s| {
            let problem = s.problem.clone()?;
            Some(error(nnbundle_format::signature_entry_name(&s.name), "bad-signature", problem))
        })
        .collect();
    let described: Vec<String> = summaries.iter().filter(|s| s.problem.is_none()).map(|s| s.to_string()).collect();
    let mut detail = match (summaries.len(), described.is_empty()) {
        (0, _) => "the bundle is not signed".to_owned(),
        (_, true) => String::new(),
        (_, false) => format!("well-formed: {}", described.join(", ")),
    };
    if let Some(key) = key {
        match nnbundle_signing::verify_bundle(bundle.archive(), key) {
            Ok(verified) => {
                detail = format!(
                    "`{}` verified with the key, covering all {} entries; {detail}",
                    verified.name, verified.entries
                )
            }
            Err(failure) => findings.push(error("signatures".into(), "signature", failure.to_string())),
        }
    } else if summaries.is_empty() {
        return (skipped("signatures", &detail), findings);
    }
    (check("signatures", &findings, detail), findings)
}

fn finish(mut report: ValidationReport) -> ValidationReport {
    report.errors = report.problems.iter().filter(|p| p.severity == Severity::Error).count();
    report.warnings = report.problems.len() - report.errors;
    report.valid = report.errors == 0;
    report
}

/// Re-runs each stored sample and compares with its stored outputs.
fn run_samples(bundle: &Bundle) -> Vec<Finding> {
    let fail = |location: String, code: &'static str, message: String| Finding {
        severity: Severity::Error,
        code: FindingCode::Bundle(code),
        location,
        node: None,
        message,
    };
    let model = match Model::from_bundle(bundle) {
        Ok(m) => m,
        Err(e) => return vec![fail("graph.yaml".into(), "model", e.to_string())],
    };
    let mut findings = Vec::new();
    for (i, sample) in bundle.manifest().samples.iter().enumerate() {
        let mut inputs = BTreeMap::new();
        for (value, tensor) in &sample.inputs {
            match bundle
                .tensor(tensor)
                .map_err(|e| e.to_string())
                .and_then(|t| Value::from_tensor(&t).map_err(|e| e.to_string()))
            {
                Ok(v) => {
                    inputs.insert(value.clone(), v);
                }
                Err(e) => findings.push(fail(format!("samples[{i}].inputs.{value}"), "sample", e)),
            }
        }
        let outputs = match model.run(inputs) {
            Ok(o) => o,
            Err(e) => {
                findings.push(fail(format!("samples[{i}]"), "sample", e.to_string()));
                continue;
            }
        };
        for (value, tensor) in &sample.outputs {
            let location = format!("samples[{i}].outputs.{value}");
            let (Some(got), Ok(want)) = (outputs.get(value), bundle.tensor(tensor)) else {
                findings.push(fail(location, "sample", format!("output `{value}` or tensor `{tensor}` is missing")));
                continue;
            };
            if let Some(message) = compare(got, &want, sample.rtol, sample.atol) {
                findings.push(fail(location, "sample-mismatch", message));
            }
        }
    }
    findings
}

/// `None` when `got` matches `want` within `atol + rtol * |want|`, else what differs.
fn compare(got: &Value, want: &nnbundle_format::Tensor, rtol: f64, atol: f64) -> Option<String> {
    let got_t = got.to_tensor();
    if got_t.dtype() != want.dtype() || got_t.shape() != want.shape() {
        return Some(format!(
            "the model gives {} {:?}, the sample stores {} {:?}",
            got_t.dtype(),
            got_t.shape(),
            want.dtype(),
            want.shape()
        ));
    }
    let as_f64 = |t: &nnbundle_format::Tensor| -> Option<Vec<f64>> {
        match t.dtype() {
            nnbundle_format::DType::F32 => t.to_vec::<f32>().ok().map(|v| v.into_iter().map(f64::from).collect()),
            nnbundle_format::DType::F64 => t.to_vec::<f64>().ok(),
            _ => None,
        }
    };
    match (as_f64(&got_t), as_f64(want)) {
        (Some(g), Some(w)) => {
            let mut worst: Option<(usize, f64)> = None;
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                let diff = (a - b).abs();
                // A NaN difference fails unless both sides are NaN.
                let within = diff <= atol + rtol * b.abs() || (a.is_nan() && b.is_nan());
                let bad = !within;
                if bad && worst.is_none_or(|(_, d)| diff > d || diff.is_nan()) {
                    worst = Some((i, diff));
                }
            }
            worst.map(|(i, d)| format!("element {i} differs by {d:e} (rtol {rtol}, atol {atol})"))
        }
        _ => (got_t.as_bytes() != want.as_bytes()).then(|| "values differ".to_owned()),
    }
}

/// The JSON Schema of [`ValidationReport`], as published in `spec/schema/report.schema.json`.
pub fn report_schema() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<ValidationReport>()
        .to_value()
}
