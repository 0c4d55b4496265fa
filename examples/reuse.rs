//! Reusing the first layers of a saved network in a different network,
//! two ways: extracting a sub-graph, and loading parameters by name.
//!
//! Usage: `cargo run --example reuse [OUTPUT_FOLDER]` (default: a temporary folder).

use std::path::PathBuf;
use std::process::ExitCode;

use ndarray::{ArrayD, IxDyn};
use nnbundle::{Bundle, DType, Layer, LoadOptions, Model, ModelBuilder, Sequential, extract};
use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;

    // The trained network: hidden -> relu -> output.
    let original = Sequential::new("X", DType::F32, &["batch".into(), 20u64.into()])
        .add("hidden", Layer::linear(20, 256))
        .add("relu", Layer::relu())
        .add("output", Layer::linear(256, 10))
        .build(7)?;
    let saved = dir.join("original.nnb");
    original.save(&saved)?;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let uniform = Uniform::new(-1.0f32, 1.0)?;
    let x = ArrayD::from_shape_fn(IxDyn(&[4, 20]), |_| uniform.sample(&mut rng));

    // Way 1: extract the first two layers into their own bundle.
    let bundle = Bundle::open(&saved)?;
    let part_path = dir.join("first-layers.nnb");
    extract(&bundle, &["relu"])?.save(&part_path)?;
    let part = Model::load(&part_path)?;
    println!("extracted sub-model:\n{}", part.summary());
    let features = part.forward(x.clone())?;

    // Way 2: a different network that starts with the same two layers and
    // ends in a new 3-class head, with the shared layers' weights loaded by name.
    let mut b = ModelBuilder::new();
    b.input("X", DType::F32, &["batch".into(), 20u64.into()]);
    b.add("hidden", Layer::linear(20, 256), &["X"]);
    b.add("relu", Layer::relu(), &["hidden"]);
    b.add("head", Layer::linear(256, 3), &["relu"]);
    let mut other = b.build(&["relu", "head"], 99)?;
    let report = other.load_state_dict_from(&bundle, &LoadOptions::default())?;
    println!("partial load:\n{report}");

    let out = other.run([("X", x.into())])?;
    let same = out["relu"] == features;
    println!("shared layers compute identical intermediate outputs: {same}");
    println!("new head output shape: {:?}", out["head"].shape());
    Ok(if same && report.loaded == ["hidden.bias", "hidden.weight"] { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
