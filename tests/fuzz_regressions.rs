//! Inputs the fuzzers once crashed on (`fuzz/regressions/<target>/`), replayed
//! through the same calls as the fuzz targets on every test run.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries.map(|e| e.unwrap().path()).map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

#[test]
fn onnx_import_regressions() {
    let cases = inputs("onnx_import");
    assert!(!cases.is_empty());
    for (name, data) in cases {
        if let Ok(imported) = nnbundle::onnx::import(&data) {
            let _ = nnbundle::onnx::export(&imported.graph, &imported.weights, &imported.aliases);
        }
        println!("replayed {name}");
    }
}

#[test]
fn bundle_reader_regressions() {
    for (name, data) in inputs("bundle_reader") {
        if let Ok(bundle) = nnbundle::Bundle::from_bytes(data) {
            let _ = bundle.verify_all();
            let _ = bundle.graph();
            let _ = bundle.analyze_graph();
            let _ = bundle.load_all();
        }
        println!("replayed {name}");
    }
}

#[test]
fn graph_regressions() {
    for (name, data) in inputs("graph") {
        let _ = nnbundle::graph::analyze(&data, None);
        println!("replayed {name}");
    }
}
