//! The textbook flow: build the MLP, run it, save it, rebuild it from the
//! bundle alone, and show that the clone computes exactly the same outputs.
//!
//! Usage: `cargo run --example mlp [OUTPUT_FOLDER]` (default: a temporary folder).
//! Exits non-zero if any output element differs.

use std::path::PathBuf;
use std::process::ExitCode;

use ndarray::{ArrayD, IxDyn};
use nnbundle::{Bundle, DType, Layer, Model, Sequential, Value};
use rand::SeedableRng;
use rand_distr::{Distribution, Uniform};

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let temp = tempfile::tempdir()?;
    let kept = std::env::args().nth(1).map(PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;

    // class MLP(nn.Module): hidden = Linear(20, 256); output = Linear(256, 10);
    // forward(X) = output(relu(hidden(X)))
    let net = Sequential::new("X", DType::F32, &["batch".into(), 20u64.into()])
        .add("hidden", Layer::linear(20, 256))
        .add("relu", Layer::relu())
        .add("output", Layer::linear(256, 10))
        .build(0)?;

    // X = torch.rand(size=(2, 20)); Y = net(X)
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let uniform = Uniform::new(0.0f32, 1.0)?;
    let x = ArrayD::from_shape_fn(IxDyn(&[2, 20]), |_| uniform.sample(&mut rng));
    let y = net.forward(x.clone())?;

    // torch.save(net.state_dict(), 'mlp.params') -- here the architecture travels too.
    let path = dir.join("mlp.nnb");
    net.save(&path)?;
    match &kept {
        Some(_) => println!("saved {} (kept: inspect it with `nnb inspect`)", path.display()),
        None => println!(
            "saved {} (a temporary folder, removed when the example ends; \
             `cargo run --release --example mlp -- DIR` keeps the bundle in DIR)",
            path.display()
        ),
    }

    // Validate the bundle as a CI job would: container, hashes, graph against weights.
    let bundle = Bundle::open(&path)?;
    bundle.verify_all()?;
    let analysis = bundle.analyze_graph().ok_or("the bundle has no graph")?;
    if analysis.report.has_errors() {
        return Err(format!("invalid bundle:\n{}", analysis.report).into());
    }
    println!(
        "validated: {} tensors verified, bundle digest {}",
        bundle.manifest().tensors.len(),
        bundle.digest().short(16)
    );

    // clone = MLP(); clone.load_state_dict(torch.load('mlp.params')) -- without the class.
    let clone = Model::load(&path)?;
    println!("\n{}", clone.summary());

    let y_clone = clone.forward(x)?;
    let (Value::F32(a), Value::F32(b)) = (&y_clone, &y) else { return Err("unexpected dtype".into()) };
    let equal = ndarray::Zip::from(a).and(b).map_collect(|p, q| u8::from(p.to_bits() == q.to_bits()));
    println!("Y_clone == Y:\n{equal}");
    if equal.iter().all(|&e| e == 1) {
        println!("all {} outputs are bit-identical", equal.len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("outputs differ");
        Ok(ExitCode::FAILURE)
    }
}
