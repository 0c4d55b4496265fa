//! Any bytes as `graph.yaml`: parse, check, infer; a valid graph is also summarized and serialized.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The fast block-subset reader must decline or agree with serde_yaml.
    nnbundle_format::yaml::check_fast_path(data);
    nnbundle_format::yaml::check_fast_decode::<nnbundle_format::MetaValue>(data);
    let analysis = nnbundle_graph::analyze(data, None);
    if let Some(g) = analysis.graph {
        let _ = g.summary(None);
        let _ = g.to_yaml();
        let _ = g.architecture_digest();
    }
});
