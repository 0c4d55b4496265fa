//! `validate` and `schema`.

use std::path::Path;
use std::process::ExitCode;

use nnbundle_runtime::{Status, ValidateOptions, ValidationReport};
use nnbundle_signing::VerifyingKey;

use super::SchemaKind;
use crate::Outcome;
use crate::output::{BAD, DIM, GOOD, WARN, json, progress};

pub(crate) fn validate(path: &Path, as_json: bool, no_hash: bool, key: Option<VerifyingKey>) -> Outcome {
    let bar = progress("hashing", 0, true);
    let report = nnbundle_runtime::validate_opened(
        &path.display().to_string(),
        super::open_bundle(path),
        ValidateOptions { verify_hashes: !no_hash, run_samples: true, key },
        &|bytes, total| {
            bar.set_length(total);
            bar.inc(bytes);
        },
    );
    bar.finish_and_clear();
    if as_json {
        json(&report)?;
    } else {
        print_human(&report);
    }
    Ok(ExitCode::from(match (report.valid, report.is_io_failure()) {
        (true, _) => 0,
        (false, true) => 2,
        (false, false) => 1,
    }))
}

fn print_human(report: &ValidationReport) {
    for check in &report.checks {
        let (style, word) = match check.status {
            Status::Passed => (GOOD, "ok"),
            Status::Failed => (BAD, "FAILED"),
            Status::Skipped => (DIM, "skipped"),
        };
        anstream::println!("{:<10} {style}{word}{style:#}  {DIM}{}{DIM:#}", check.name, check.detail);
    }
    if !report.problems.is_empty() {
        anstream::println!();
    }
    for p in &report.problems {
        let style = if p.severity == nnbundle_graph::Severity::Error { BAD } else { WARN };
        let node = p.node.as_ref().map(|n| format!(" (node `{n}`)")).unwrap_or_default();
        anstream::println!("{style}{}{style:#}[{}] {}{node}: {}", p.severity, p.code, p.location, p.message);
    }
    let verdict = if report.valid { format!("{GOOD}valid{GOOD:#}") } else { format!("{BAD}invalid{BAD:#}") };
    anstream::println!("\n{}: {verdict} ({} errors, {} warnings)", report.file, report.errors, report.warnings);
}

pub(crate) fn schema(kind: SchemaKind) -> Outcome {
    let value = match kind {
        SchemaKind::Graph => nnbundle_graph::schema::graph_schema(),
        SchemaKind::Manifest => nnbundle_format::manifest_schema(),
        SchemaKind::Report => nnbundle_runtime::report_schema(),
        SchemaKind::Signature => nnbundle_signing::document::signature_schema(),
        SchemaKind::Statement => nnbundle_signing::document::statement_schema(),
    };
    json(&value)?;
    Ok(ExitCode::SUCCESS)
}
