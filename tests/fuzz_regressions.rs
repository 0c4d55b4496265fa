//! Inputs the fuzzers once crashed on (`fuzz/regressions/<target>/`), replayed
//! through the same calls as the fuzz targets on every test run.
//!
//! Only targets that have found something have a folder and a test here; a
//! target's first regression adds both (`bundle_reader` and `graph` have
//! none yet). A missing or empty folder fails, so a replay cannot pass
//! having replayed nothing.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let cases: Vec<_> =
        entries.map(|e| e.unwrap().path()).map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect();
    assert!(!cases.is_empty(), "{} holds no regression input", dir.display());
    cases
}

#[test]
fn onnx_import_regressions() {
    for (name, data) in inputs("onnx_import") {
        if let Ok(imported) = nnbundle::onnx::import(&data) {
            let _ = nnbundle::onnx::export(&imported.graph, &imported.weights, &imported.aliases);
        }
        println!("replayed {name}");
    }
}

#[test]
fn every_regression_folder_has_a_replay() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let targets: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(targets, ["onnx_import"], "a new regression folder needs its replay test here");
}
