//! Shared fixtures for the container tests.
#![allow(dead_code, missing_docs)]

use nnbundle_container::BundleWriter;
use nnbundle_format::{Tensor, bf16, f16};

/// One tensor of every dtype, plus a scalar, empty tensors and non-ASCII names.
pub fn every_dtype() -> Vec<(String, Tensor)> {
    let t = |shape: Vec<usize>, t: Result<Tensor, _>| {
        let t = t.unwrap();
        assert_eq!(t.shape(), shape.as_slice());
        t
    };
    vec![
        ("f16".into(), t(vec![3], Tensor::from_vec(vec![3], vec![f16::from_f32(0.5), f16::MAX, f16::NEG_INFINITY]))),
        ("bf16".into(), t(vec![2], Tensor::from_vec(vec![2], vec![bf16::from_f32(-1.5), bf16::from_f32(3.0e38)]))),
        (
            "f32".into(),
            t(vec![2, 3], Tensor::from_vec(vec![2, 3], vec![0.0f32, -0.0, 1.5, f32::MIN_POSITIVE, 1e-45, 7.0])),
        ),
        ("f64".into(), t(vec![2], Tensor::from_vec(vec![2], vec![std::f64::consts::PI, -1e300]))),
        ("i8".into(), t(vec![3], Tensor::from_vec(vec![3], vec![i8::MIN, 0, i8::MAX]))),
        ("i16".into(), t(vec![2], Tensor::from_vec(vec![2], vec![i16::MIN, i16::MAX]))),
        ("i32".into(), t(vec![1, 2], Tensor::from_vec(vec![1, 2], vec![i32::MIN, i32::MAX]))),
        ("i64".into(), t(vec![4], Tensor::from_vec(vec![4], vec![0i64, 1, 2, 3]))),
        ("u8".into(), t(vec![2, 2], Tensor::from_vec(vec![2, 2], vec![0u8, 1, 254, 255]))),
        ("bool".into(), t(vec![3], Tensor::from_vec(vec![3], vec![true, false, true]))),
        ("scalar".into(), Tensor::scalar(42.0f32)),
        ("empty".into(), t(vec![0, 5], Tensor::from_vec::<f32>(vec![0, 5], vec![]))),
        ("empty_i64".into(), t(vec![0], Tensor::from_vec::<i64>(vec![0], vec![]))),
        ("encoder.layers.0.вес".into(), t(vec![2], Tensor::from_vec(vec![2], vec![1.0f32, 2.0]))),
        ("名前 with spaces".into(), Tensor::scalar(7i32)),
    ]
}

pub fn writer_with(tensors: &[(String, Tensor)]) -> BundleWriter {
    let mut w = BundleWriter::new();
    for (name, t) in tensors {
        w.add_tensor(name.clone(), t.clone()).unwrap();
    }
    w
}

/// A bundle with a few f32 tensors large enough to span several pages.
pub fn sample_bundle() -> Vec<u8> {
    let mut w = BundleWriter::new();
    let a: Vec<f32> = (0..1000).map(|i| i as f32 * 0.25).collect();
    let b: Vec<f32> = (0..300).map(|i| (i as f32).sin()).collect();
    w.add_tensor("hidden.weight", Tensor::from_vec(vec![10, 100], a).unwrap()).unwrap();
    w.add_tensor("hidden.bias", Tensor::from_vec(vec![300], b).unwrap()).unwrap();
    w.add_tensor("step", Tensor::scalar(12i64)).unwrap();
    w.set_metadata("epoch", 3i64).unwrap();
    w.to_bytes().unwrap()
}
