//! Any bytes as an `.npy` file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = nnbundle_container::npy::from_npy(data);
});
