//! Write-then-read round trips.

mod common;

use std::collections::BTreeMap;

use nnbundle_container::{
    Backend, Bundle, BundleWriter, OpenOptions, Verify, load_tensor, load_tensors, save_tensor, save_tensors,
};
use nnbundle_format::{DType, MetaValue, Tensor};
use proptest::prelude::*;

#[test]
fn every_dtype_round_trips_bit_for_bit() {
    let tensors = common::every_dtype();
    let bytes = common::writer_with(&tensors).to_bytes().unwrap();
    let bundle = Bundle::from_bytes(bytes).unwrap();
    assert_eq!(bundle.tensor_infos().len(), tensors.len());
    for (name, original) in &tensors {
        let loaded = bundle.tensor(name).unwrap();
        assert_eq!(loaded.dtype(), original.dtype(), "{name}");
        assert_eq!(loaded.shape(), original.shape(), "{name}");
        assert_eq!(loaded.as_bytes(), original.as_bytes(), "{name}");
    }
    assert_eq!(bundle.tensor("i64").unwrap().to_vec::<i64>().unwrap(), [0, 1, 2, 3]);
    assert_eq!(bundle.tensor("bool").unwrap().to_vec::<bool>().unwrap(), [true, false, true]);
    assert_eq!(bundle.tensor("scalar").unwrap().shape(), &[] as &[usize]);
    assert!(bundle.tensor("empty").unwrap().is_empty());
}

#[test]
fn files_on_disk_read_the_same_with_every_backend_and_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.nnb");
    let tensors = common::every_dtype();
    common::writer_with(&tensors).save(&path).unwrap();
    for backend in [Backend::Mmap, Backend::Pread, Backend::Memory] {
        let bundle = Bundle::open_with(&path, OpenOptions { verify: Verify::Eager, backend }).unwrap();
        let f64s = bundle.tensor("f64").unwrap();
        // Aligned data (64 in the file, 8 in a pread buffer) means a typed view is always possible.
        assert_eq!(f64s.view::<f64>().unwrap().unwrap(), [std::f64::consts::PI, -1e300], "{backend:?}");
        for (name, tensor) in &tensors {
            assert_eq!(&bundle.tensor(name).unwrap(), tensor, "{backend:?}: {name}");
        }
        let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        let fetched = bundle.prefetch(&names).unwrap();
        assert_eq!(fetched.len(), names.len(), "{backend:?}");
    }
}

#[test]
fn single_tensor_and_dict_helpers() {
    let dir = tempfile::tempdir().unwrap();
    let x = Tensor::from_vec(vec![4], vec![0i64, 1, 2, 3]).unwrap();
    save_tensor(dir.path().join("x.nnb"), &x).unwrap();
    assert_eq!(load_tensor(dir.path().join("x.nnb")).unwrap(), x);

    let mut dict = BTreeMap::new();
    dict.insert("x".to_string(), x.clone());
    dict.insert("y".to_string(), Tensor::from_vec(vec![4], vec![0.0f32; 4]).unwrap());
    save_tensors(dir.path().join("xy.nnb"), &dict).unwrap();
    assert_eq!(load_tensors(dir.path().join("xy.nnb")).unwrap(), dict);
    let err = load_tensor(dir.path().join("xy.nnb")).unwrap_err().to_string();
    assert!(err.contains("expected a bundle with one tensor, found 2"), "{err}");
}

#[test]
fn aliases_groups_and_metadata() {
    let w_enc = Tensor::from_vec(vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let mut w = BundleWriter::new();
    w.add_tensor("encoder.weight", w_enc.clone()).unwrap();
    w.add_alias("decoder.weight", "encoder.weight").unwrap();
    w.add_tensor_to_group("optimizer", "optimizer.state.encoder.weight.exp_avg", w_enc.clone()).unwrap();
    w.set_metadata("step", 1000i64).unwrap();
    w.set_metadata("lr", 0.001f64).unwrap();
    w.set_metadata("tags", vec!["a", "b"]).unwrap();
    let bundle = Bundle::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(bundle.tensor("decoder.weight").unwrap(), w_enc);
    assert_eq!(bundle.tensor_info("decoder.weight").unwrap().stored_as, "encoder.weight");
    assert_eq!(bundle.manifest().tensors.len(), 2, "the tied weight is stored once");
    assert_eq!(bundle.group("optimizer"), ["optimizer.state.encoder.weight.exp_avg"]);
    assert_eq!(bundle.group("params"), ["encoder.weight"]);
    let meta = &bundle.manifest().metadata;
    assert_eq!(meta["step"], MetaValue::Int(1000));
    assert_eq!(meta["lr"], MetaValue::Float(0.001));
    assert_eq!(meta["tags"], MetaValue::List(vec!["a".into(), "b".into()]));
    let all = bundle.load_all().unwrap();
    assert_eq!(
        all.keys().collect::<Vec<_>>(),
        ["decoder.weight", "encoder.weight", "optimizer.state.encoder.weight.exp_avg"]
    );
}

#[test]
fn writer_refuses_what_the_format_cannot_hold() {
    let mut w = BundleWriter::new();
    let t = Tensor::scalar(1u8);
    let err = w.add_tensor("a/b", t.clone()).unwrap_err().to_string();
    assert!(err.contains("tensor `a/b`") && err.contains("`/`"), "{err}");
    w.add_tensor("a", t.clone()).unwrap();
    assert!(w.add_tensor("a", t.clone()).unwrap_err().to_string().contains("`a` is added twice"));
    w.add_alias("b", "missing").unwrap();
    let err = w.to_bytes().unwrap_err().to_string();
    assert!(err.contains("aliases.b") && err.contains("`missing`"), "{err}");
    let err = w.set_metadata("x", f64::NAN).unwrap_err().to_string();
    assert!(err.contains("metadata `x`") && err.contains("finite"), "{err}");
    let err = w.add_tensor_to_group("bad group", "c", t).unwrap_err().to_string();
    assert!(err.contains("group name \"bad group\""), "{err}");
}

#[test]
fn identical_content_gives_identical_bytes() {
    let a = common::writer_with(&common::every_dtype()).to_bytes().unwrap();
    let mut reversed = common::every_dtype();
    reversed.reverse();
    let b = common::writer_with(&reversed).to_bytes().unwrap();
    assert_eq!(a, b, "insertion order must not matter");
}

/// `save` writes while it hashes, then writes the manifest over its draft:
/// the file holds exactly the bytes of the in-order writer.
#[test]
fn saved_files_hold_the_in_order_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = common::every_dtype();
    tensors.push(("big".into(), Tensor::from_vec(vec![512, 512], vec![0.5f32; 1 << 18]).unwrap()));
    let writer = common::writer_with(&tensors);
    let path = dir.path().join("b.nnb");
    let manifest = writer.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), writer.to_bytes().unwrap());
    let bundle = Bundle::open_with(&path, OpenOptions { verify: Verify::Eager, ..Default::default() }).unwrap();
    assert_eq!(bundle.manifest(), &manifest);
}

fn dtype_strategy() -> impl Strategy<Value = DType> {
    proptest::sample::select(DType::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_tensors_round_trip(
        dtype in dtype_strategy(),
        shape in proptest::collection::vec(0usize..5, 0..4),
        seed in any::<u64>(),
        name in "[a-z]{1,8}(\\.[a-z0-9]{1,4}){0,3}",
    ) {
        let n: usize = shape.iter().product::<usize>() * dtype.size();
        let mut state = seed;
        let mut bytes: Vec<u8> = (0..n).map(|_| { state = state.wrapping_mul(6364136223846793005).wrapping_add(1); (state >> 33) as u8 }).collect();
        if dtype == DType::Bool { bytes.iter_mut().for_each(|b| *b &= 1); }
        let tensor = Tensor::from_bytes(dtype, shape, bytes).unwrap();
        let mut w = BundleWriter::new();
        w.add_tensor(name.clone(), tensor.clone()).unwrap();
        let bundle = Bundle::from_bytes(w.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(bundle.tensor(&name).unwrap(), tensor);
    }
}
