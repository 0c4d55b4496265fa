//! Any bytes as an ONNX model; an imported model is exported again.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(imported) = nnbundle_onnx::import(data) {
        let _ = nnbundle_onnx::export(&imported.graph, &imported.weights, &imported.aliases);
    }
});
