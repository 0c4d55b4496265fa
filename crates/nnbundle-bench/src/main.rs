//! `nnb-bench OP ARGS...`: one timed operation per process (so peak RSS is
//! the operation's), printing one JSON line. Driven by `bench/run`, which
//! runs the peers' scripts in the same run and prints ratios.
//!
//! Operations:
//! - `save MODEL PATH [unsynced]`: build the tensors of `MODEL` (`uniform`: 256 x 1024x1024
//!   f32; `mix`: 12 x 4096x4096 + 60 x 1024x1024 + 1000 vectors; `small`: 64 MiB;
//!   `tiny`: 256 x 32x32, 1 MiB: as many tensors as `uniform`, 1/1024 of the bytes)
//!   and save them as a bundle (hashing included; fsynced unless `unsynced`);
//! - `load PATH [pread]`: open (memory-mapped, or with positioned reads), verify every
//!   digest, view every tensor as an ndarray;
//! - `open1 PATH NAME`: trusted open and one tensor view (no hashing);
//! - `lazy1 PATH NAME`: open and read one tensor, its hash checked;
//! - `sha BYTES`: SHA-256 of BYTES in memory on every core (the floor for `load`);
//! - `infer MODEL.onnx BATCH SECONDS [IN.npy[,IN2.npy...] [OUT.npy]]`: import, then median
//!   latency of runs on the inputs (one file per graph input, in order; default: pseudo-random
//!   values for a one-input model), writing the first output to OUT.

use std::time::Instant;

use nnbundle_container::{Bundle, BundleWriter, OpenOptions, Verify};
use nnbundle_format::Tensor;
use rayon::prelude::*;
use serde_json::json;
use sha2::Digest;

fn tensors(model: &str) -> Vec<(String, Vec<usize>)> {
    let mut t = Vec::new();
    match model {
        "uniform" => (0..256).for_each(|i| t.push((format!("layer{i}.weight"), vec![1024, 1024]))),
        "tiny" => (0..256).for_each(|i| t.push((format!("layer{i}.weight"), vec![32, 32]))),
        "small" => (0..16).for_each(|i| t.push((format!("layer{i}.weight"), vec![1024, 1024]))),
        _ => {
            (0..12).for_each(|i| t.push((format!("big{i}.weight"), vec![4096, 4096])));
            (0..60).for_each(|i| t.push((format!("mid{i}.weight"), vec![1024, 1024])));
            (0..500).for_each(|i| t.push((format!("vec{i}.bias"), vec![4096])));
            (0..500).for_each(|i| t.push((format!("tiny{i}.scale"), vec![64])));
        }
    }
    t
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| panic!("usage: see the crate docs"));
    let out = match arg(0).as_str() {
        "save" => {
            let mut w = BundleWriter::new();
            let mut bytes = 0usize;
            for (k, (name, shape)) in tensors(&arg(1)).into_iter().enumerate() {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = (0..n).into_par_iter().map(|i| ((i ^ k) % 997) as f32 * 1e-3).collect();
                bytes += n * 4;
                w.add_tensor(name, Tensor::from_vec(shape, values).unwrap()).unwrap();
            }
            let t0 = Instant::now();
            let durability = match args.get(3).map(String::as_str) {
                Some("unsynced") => nnbundle_container::Durability::Unsynced,
                _ => nnbundle_container::Durability::Synced,
            };
            w.save_with(arg(2), durability).unwrap();
            json!({"op": "save", "seconds": t0.elapsed().as_secs_f64(), "bytes": bytes})
        }
        "load" => {
            let backend = match args.get(2).map(String::as_str) {
                Some("pread") => nnbundle_container::Backend::Pread,
                _ => nnbundle_container::Backend::Mmap,
            };
            let t0 = Instant::now();
            let bundle = Bundle::open_with(arg(1), OpenOptions { verify: Verify::Eager, backend }).unwrap();
            let all = bundle.load_all().unwrap();
            let views = all.values().filter(|t| t.array_view::<f32>().ok().flatten().is_some()).count();
            json!({"op": "load", "seconds": t0.elapsed().as_secs_f64(), "tensors": all.len(), "views": views})
        }
        op @ ("open1" | "lazy1") => {
            let t0 = Instant::now();
            let verify = if op == "open1" { Verify::Never } else { Verify::OnAccess };
            let bundle = match nnbundle_container::is_url(&arg(1)) {
                true => Bundle::open_url_with(&arg(1), verify),
                false => Bundle::open_with(arg(1), OpenOptions { verify, ..Default::default() }),
            };
            let t = bundle.unwrap().tensor(&arg(2)).unwrap();
            let sum: f32 = t.array_view::<f32>().unwrap().unwrap().iter().take(16).sum();
            json!({"op": op, "seconds": t0.elapsed().as_secs_f64(), "check": sum})
        }
        "sha" => {
            let n: usize = arg(1).parse().unwrap();
            let chunk = 64 << 20;
            let data: Vec<Vec<u8>> =
                (0..n.div_ceil(chunk)).map(|i| vec![(i % 251) as u8; chunk.min(n - i * chunk)]).collect();
            let t0 = Instant::now();
            let digests: Vec<_> = data.par_iter().map(sha2::Sha256::digest).collect();
            let s = t0.elapsed().as_secs_f64();
            json!({"op": "sha", "seconds": s, "gb_per_s": n as f64 / s / 1e9, "chunks": digests.len()})
        }
        "infer" => {
            let imported = nnbundle_onnx::import_file(std::path::Path::new(&arg(1))).unwrap();
            let mut weights = imported.weights.clone();
            for (a, t) in &imported.aliases {
                weights.insert(a.clone(), imported.weights[t].clone());
            }
            let model = nnbundle_runtime::Model::new(imported.graph.clone(), weights).unwrap();
            let graph_inputs = model.graph().inputs();
            let inputs: Vec<(String, nnbundle_runtime::Value)> = match args.get(4) {
                Some(paths) => graph_inputs
                    .iter()
                    .zip(paths.split(','))
                    .map(|(input, path)| {
                        let t = nnbundle_container::npy::from_npy(&std::fs::read(path).unwrap()).unwrap();
                        (input.name.clone(), nnbundle_runtime::Value::from_tensor(&t).unwrap())
                    })
                    .collect(),
                None => {
                    let input = &graph_inputs[0];
                    let batch: usize = arg(2).parse().unwrap();
                    let shape: Vec<usize> =
                        input.shape.0.iter().map(|d| d.fixed().map_or(batch, |v| v as usize)).collect();
                    let n: usize = shape.iter().product();
                    // Pseudo-random values in [-1, 1): a ramp would make every
                    // data-dependent branch predictable and flatter the timings.
                    let mut state = 0x9e37_79b9_7f4a_7c15u64;
                    let noise = (0..n)
                        .map(|_| {
                            state =
                                state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                        })
                        .collect();
                    let x = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), noise).unwrap();
                    vec![(input.name.clone(), x.into())]
                }
            };
            assert_eq!(inputs.len(), graph_inputs.len(), "one .npy per graph input");
            let first = model.graph().outputs()[0].clone();
            if let Some(path) = args.get(5) {
                let y = model.run(inputs.clone()).unwrap().remove(&first).unwrap();
                std::fs::write(path, nnbundle_container::npy::to_npy(&y.to_tensor())).unwrap();
            }
            let budget: f64 = arg(3).parse().unwrap_or(2.0);
            let mut times = Vec::new();
            let start = Instant::now();
            while start.elapsed().as_secs_f64() < budget || times.len() < 5 {
                let t0 = Instant::now();
                let y = model.run(inputs.clone()).unwrap();
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(y);
            }
            times.sort_by(f64::total_cmp);
            json!({"op": "infer", "median_ms": times[times.len() / 2], "iters": times.len()})
        }
        other => panic!("unknown op {other}"),
    };
    println!("{out}");
}
