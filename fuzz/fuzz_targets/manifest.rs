//! Any bytes as `manifest.yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = nnbundle_format::Manifest::parse(data) {
        let _ = m.bundle_digest();
        let _ = m.to_yaml();
    }
});
