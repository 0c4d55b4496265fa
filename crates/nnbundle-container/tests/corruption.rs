//! The corruption matrix: real bundles truncated at offsets spread over the
//! file and with a byte flipped at offsets spread over every entry. Each
//! variant is rejected with an error, or loads to content identical to the
//! original with every digest verified (the byte was inert: zip slack such
//! as the alignment padding or a tensor entry's CRC, which SHA-256
//! supersedes). Never a panic, never a silently different tensor.

use std::collections::BTreeMap;

use nnbundle_container::{Bundle, BundleWriter};
use nnbundle_format::{MetaValue, Tensor};
use nnbundle_graph::Graph;

fn floats(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2000) as f32 / 1000.0 - 1.0).collect()
}

/// The textbook MLP bundle, with a graph, metadata and an optimizer group.
fn mlp() -> Vec<u8> {
    let mut w = BundleWriter::new();
    w.set_graph(Graph::from_yaml(include_bytes!("../../../spec/examples/mlp.yaml")).unwrap());
    for (name, shape, seed) in [
        ("hidden.weight", vec![256, 20], 1),
        ("hidden.bias", vec![256], 2),
        ("output.weight", vec![10, 256], 3),
        ("output.bias", vec![10], 4),
    ] {
        let n = shape.iter().product();
        w.add_tensor(name, Tensor::from_vec(shape, floats(n, seed)).unwrap()).unwrap();
    }
    w.add_tensor_to_group("optimizer", "optimizer.step", Tensor::scalar(100i64)).unwrap();
    w.set_metadata("epochs", 3i64).unwrap();
    w.to_bytes().unwrap()
}

/// LeNet: convolutions, pooling, more tensors.
fn lenet() -> Vec<u8> {
    let graph = Graph::from_yaml(include_bytes!("../../../spec/examples/lenet.yaml")).unwrap();
    let mut w = BundleWriter::new();
    for (i, p) in graph.parameters().iter().enumerate() {
        let shape: Vec<usize> = p.shape.clone().unwrap().iter().map(|&d| d as usize).collect();
        let n = shape.iter().product();
        w.add_tensor(p.name.clone(), Tensor::from_vec(shape, floats(n, i as u32)).unwrap()).unwrap();
    }
    w.set_graph(graph);
    w.to_bytes().unwrap()
}

/// Everything a reader hands out: tensors, metadata, graph.
type Content = (BTreeMap<String, Tensor>, BTreeMap<String, MetaValue>, Option<Graph>);

/// What a bundle's bytes load to, for comparison with the original.
fn content(bytes: Vec<u8>) -> Result<Content, String> {
    let bundle = Bundle::from_bytes(bytes).map_err(|e| e.to_string())?;
    bundle.verify_all().map_err(|e| e.to_string())?;
    let graph = bundle.graph().map_err(|e| e.to_string())?;
    if let Some(a) = bundle.analyze_graph()
        && a.report.has_errors()
    {
        return Err(a.report.to_string());
    }
    Ok((bundle.load_all().map_err(|e| e.to_string())?, bundle.manifest().metadata.clone(), graph))
}

#[derive(Default, Debug)]
struct Counts {
    tried: usize,
    rejected: usize,
    inert: usize,
}

fn matrix(name: &str, original: Vec<u8>) -> Counts {
    let reference = content(original.clone()).expect("the original bundle is valid");
    let mut counts = Counts::default();
    let mut check = |variant: Vec<u8>, what: String| {
        counts.tried += 1;
        match content(variant) {
            Err(message) => {
                assert!(!message.is_empty(), "{what}: an error must say something");
                counts.rejected += 1;
            }
            Ok(got) => {
                assert!(got == reference, "{name}: {what} loaded to different content without an error");
                counts.inert += 1;
            }
        }
    };
    let len = original.len();
    // Truncations: 300 offsets spread over the file, plus every one of the last 64 bytes.
    for i in 0..300 {
        let at = i * len / 300;
        check(original[..at].to_vec(), format!("truncated to {at}"));
    }
    for at in len - 64..len {
        check(original[..at].to_vec(), format!("truncated to {at}"));
    }
    // Flips: every byte of the first 4 KiB (headers, manifest, graph) and of the
    // central directory, and 600 offsets spread over the rest.
    let cd = original.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let mut offsets: Vec<usize> = (0..4096.min(len)).chain(cd..len).collect();
    offsets.extend((0..600).map(|i| i * len / 600));
    offsets.sort_unstable();
    offsets.dedup();
    for at in offsets {
        let mut v = original.clone();
        v[at] ^= 0x5a;
        check(v, format!("byte {at} flipped"));
    }
    println!("{name}: {} variants tried, {} rejected, {} inert", counts.tried, counts.rejected, counts.inert);
    counts
}

#[test]
fn corruption_matrix_mlp() {
    let c = matrix("mlp", mlp());
    assert!(c.rejected > c.inert, "{c:?}");
}

#[test]
fn corruption_matrix_lenet() {
    let c = matrix("lenet", lenet());
    assert!(c.rejected > c.inert, "{c:?}");
}
