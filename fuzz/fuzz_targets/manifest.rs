//! Any bytes as `manifest.yaml`; where the fast YAML reader takes them, it reads what serde_yaml reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The fast block-subset reader must decline or agree with serde_yaml.
    nnbundle_format::yaml::check_fast_path(data);
    nnbundle_format::yaml::check_fast_decode::<nnbundle_format::Manifest>(data);
    if let Ok(m) = nnbundle_format::Manifest::parse(data) {
        let _ = m.bundle_digest();
        let _ = m.to_yaml();
    }
});
