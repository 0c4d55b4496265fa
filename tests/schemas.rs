//! The published JSON Schemas equal what the code generates, and an
//! independent validator (Python `jsonschema`) accepts the spec's examples.

mod support;

use std::path::PathBuf;

fn spec(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec").join(path)
}

/// Compares a generated schema with the committed file; `NNB_UPDATE_SCHEMAS=1` rewrites it.
fn check_committed(file: &str, schema: serde_json::Value) {
    check_generated(&format!("schema/{file}"), serde_json::to_string_pretty(&schema).unwrap() + "\n");
}

fn check_generated(file: &str, generated: String) {
    let path = spec(file);
    if std::env::var_os("NNB_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from what the code generates; if the change is intended, run `NNB_UPDATE_SCHEMAS=1 cargo test --test schemas` and note it in CHANGELOG.md under Format",
        path.display()
    );
}

#[test]
fn graph_schema_matches_the_code() {
    check_committed("graph.schema.json", nnbundle::graph::schema::graph_schema());
}

#[test]
fn op_reference_matches_the_registry() {
    check_generated("OPS.md", nnbundle::graph::op_reference_markdown());
}

#[test]
fn report_schema_matches_the_code() {
    check_committed("report.schema.json", nnbundle::runtime::report_schema());
}

#[test]
fn signature_schemas_match_the_code() {
    check_committed("signature.schema.json", nnbundle::signing::document::signature_schema());
    check_committed("statement.schema.json", nnbundle::signing::document::statement_schema());
}

#[test]
fn manifest_schema_matches_the_code() {
    check_committed("manifest.schema.json", nnbundle::format::manifest_schema());
}

#[test]
fn spec_examples_pass_the_library_and_an_independent_validator() {
    let examples: Vec<PathBuf> = std::fs::read_dir(spec("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert!(examples.len() >= 4, "{examples:?}");
    for path in &examples {
        let bytes = std::fs::read(path).unwrap();
        nnbundle::graph::Graph::from_yaml(&bytes).unwrap_or_else(|r| panic!("{}:\n{r}", path.display()));
    }
    let Some(python) = support::python() else { return };
    let mut args = vec![support::script("validate_schemas.py").into_os_string(), spec("schema").into_os_string()];
    args.extend(examples.iter().map(|p| p.clone().into_os_string()));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = support::run_python(&python, &refs);
    assert!(out.contains(&format!("ok: {} graph examples valid", examples.len())), "{out}");
    assert!(out.contains("conformance cases agree"), "{out}");
}
