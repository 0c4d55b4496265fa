//! Any bytes as a bundle: open, verify, parse and check the graph, load every tensor.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = nnbundle_container::Bundle::from_bytes(data.to_vec()) {
        let _ = bundle.verify_all();
        let _ = bundle.graph();
        let _ = bundle.analyze_graph();
        let _ = bundle.load_all();
        let _ = bundle.digest();
    }
});
