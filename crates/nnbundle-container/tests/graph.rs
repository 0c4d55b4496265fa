//! Bundles with a graph: the graph owns the `params` group.

use nnbundle_container::{Bundle, BundleWriter, ContainerError};
use nnbundle_format::Tensor;
use nnbundle_graph::{Code, Graph};

const MLP: &[u8] = include_bytes!("../../../spec/examples/mlp.yaml");

fn zeros(shape: &[usize]) -> Tensor {
    Tensor::from_vec(shape.to_vec(), vec![0.0f32; shape.iter().product()]).unwrap()
}

fn mlp_writer() -> BundleWriter {
    let mut w = BundleWriter::new();
    w.set_graph(Graph::from_yaml(MLP).unwrap());
    for (name, shape) in [
        ("hidden.weight", &[256, 20][..]),
        ("hidden.bias", &[256]),
        ("output.weight", &[10, 256]),
        ("output.bias", &[10]),
    ] {
        w.add_tensor(name, zeros(shape)).unwrap();
    }
    w
}

#[test]
fn graph_round_trips_with_its_digests() {
    let mut w = mlp_writer();
    w.add_tensor_to_group("optimizer", "optimizer.hidden.weight.exp_avg", zeros(&[256, 20])).unwrap();
    let bundle = Bundle::from_bytes(w.to_bytes().unwrap()).unwrap();
    let graph = bundle.graph().unwrap().unwrap();
    assert_eq!(graph, Graph::from_yaml(MLP).unwrap());
    let record = bundle.manifest().graph.as_ref().unwrap();
    assert_eq!(record.architecture_digest, graph.architecture_digest());
    assert_eq!(record.opset, 1);
    let analysis = bundle.analyze_graph().unwrap();
    assert!(!analysis.report.has_errors(), "{}", analysis.report);
    assert_eq!(analysis.values["output"].shape.to_string(), "[batch, 10]");
}

#[test]
fn writer_refuses_weights_that_do_not_fit_the_graph() {
    let mut w = BundleWriter::new();
    w.set_graph(Graph::from_yaml(MLP).unwrap());
    w.add_tensor("hidden.weight", zeros(&[256, 21])).unwrap();
    w.add_tensor("stray", zeros(&[1])).unwrap();
    let err = w.to_bytes().unwrap_err();
    let ContainerError::Graph { report } = &err else { panic!("{err}") };
    let codes: Vec<Code> = report.errors().map(|p| p.code).collect();
    assert!(codes.contains(&Code::ParameterShape), "{report}");
    assert!(codes.contains(&Code::MissingParameter), "{report}");
    assert!(codes.contains(&Code::UnusedWeight), "{report}");
    assert!(
        err.to_string().contains("weight `hidden.weight` has shape [256, 21], the attributes imply [256, 20]"),
        "{err}"
    );
}

#[test]
fn tied_weights_serve_as_parameters() {
    let yaml = br#"
opset: 1
inputs: [{name: x, dtype: f32, shape: [batch, 4]}]
sequential:
  - {name: encoder, op: Linear, attrs: {in_features: 4, out_features: 4, bias: false}}
  - {name: decoder, op: Linear, attrs: {in_features: 4, out_features: 4, bias: false}}
"#;
    let mut w = BundleWriter::new();
    w.set_graph(Graph::from_yaml(yaml).unwrap());
    w.add_tensor("encoder.weight", zeros(&[4, 4])).unwrap();
    w.add_alias("decoder.weight", "encoder.weight").unwrap();
    let bundle = Bundle::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert!(!bundle.analyze_graph().unwrap().report.has_errors());
    assert_eq!(bundle.manifest().tensors.len(), 1);
}

#[test]
fn tampered_graph_entry_is_caught() {
    let mut bytes = mlp_writer().to_bytes().unwrap();
    let at = bytes.windows(15).position(|w| w == b"out_features: 1").unwrap();
    bytes[at + 14] = b'2';
    let err = Bundle::from_bytes(bytes).unwrap_err().to_string();
    assert!(err.starts_with("entry `graph.yaml`: SHA-256 mismatch"), "{err}");
}
