//! The spec's example graphs: they parse, infer the shapes worked out by hand,
//! and name their parameters as the PyTorch modules' state dicts do.

use nnbundle_graph::Graph;

fn example(name: &str) -> Graph {
    let path = format!("{}/../../spec/examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    Graph::from_yaml(&bytes).unwrap_or_else(|r| panic!("{path}:\n{r}"))
}

fn shape_of(g: &Graph, value: &str) -> String {
    g.check(None).values[value].shape.to_string()
}

fn param_names(g: &Graph) -> Vec<String> {
    g.parameters().into_iter().map(|p| p.name).collect()
}

#[test]
fn mlp() {
    let g = example("mlp");
    assert_eq!(shape_of(&g, "hidden"), "[batch, 256]");
    assert_eq!(shape_of(&g, "output"), "[batch, 10]");
    assert_eq!(param_names(&g), ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]);
    let shapes: Vec<_> = g.parameters().into_iter().map(|p| p.shape.unwrap()).collect();
    assert_eq!(shapes, [vec![256, 20], vec![256], vec![10, 256], vec![10]]);
}

#[test]
fn lenet() {
    let g = example("lenet");
    // 28 + 2*2 - 5 + 1 = 28; pool -> 14; 14 - 5 + 1 = 10; pool -> 5; 16*5*5 = 400.
    for (value, shape) in [
        ("0", "[batch, 6, 28, 28]"),
        ("2", "[batch, 6, 14, 14]"),
        ("3", "[batch, 16, 10, 10]"),
        ("5", "[batch, 16, 5, 5]"),
        ("6", "[batch, 400]"),
        ("11", "[batch, 10]"),
    ] {
        assert_eq!(shape_of(&g, value), shape, "{value}");
    }
    assert_eq!(
        param_names(&g),
        [
            "0.weight",
            "0.bias",
            "3.weight",
            "3.bias",
            "7.weight",
            "7.bias",
            "9.weight",
            "9.bias",
            "11.weight",
            "11.bias"
        ]
    );
    assert_eq!(g.parameters()[2].shape, Some(vec![16, 6, 5, 5]));
}

#[test]
fn residual_block() {
    let g = example("residual_block");
    assert_eq!(shape_of(&g, "conv3"), "[batch, 16, 32, 32]");
    assert_eq!(shape_of(&g, "relu2"), "[batch, 16, 32, 32]");
    let names = param_names(&g);
    for want in ["bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "conv3.weight"] {
        assert!(names.contains(&want.to_string()), "{want} missing from {names:?}");
    }
    let tracked = g.parameters().into_iter().find(|p| p.name == "bn1.num_batches_tracked").unwrap();
    assert!(!tracked.required, "PyTorch's counter is optional");
}

#[test]
fn transformer_encoder_layer() {
    let g = example("transformer_encoder_layer");
    assert_eq!(shape_of(&g, "self_attn"), "[batch, seq, 32]");
    assert_eq!(shape_of(&g, "linear1"), "[batch, seq, 64]");
    assert_eq!(shape_of(&g, "norm2"), "[batch, seq, 32]");
    let mut names = param_names(&g);
    names.sort();
    // The keys of torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True).state_dict().
    let mut torch = vec![
        "self_attn.in_proj_weight",
        "self_attn.in_proj_bias",
        "self_attn.out_proj.weight",
        "self_attn.out_proj.bias",
        "linear1.weight",
        "linear1.bias",
        "linear2.weight",
        "linear2.bias",
        "norm1.weight",
        "norm1.bias",
        "norm2.weight",
        "norm2.bias",
    ];
    torch.sort();
    assert_eq!(names, torch);
}

#[test]
fn shorthand_and_long_form_have_one_digest() {
    let long = br#"
opset: 1
inputs:
  - name: X
    shape: [batch, 20]
    dtype: f32
nodes:
  - {name: output, op: Linear, inputs: [relu], attrs: {out_features: 10, in_features: 256, bias: true}}
  - {name: hidden, op: Linear, inputs: [X], attrs: {in_features: 20, out_features: 256}}
  - {name: relu, op: ReLU, inputs: [hidden]}
outputs: [output]
"#;
    let long = Graph::from_yaml(long).unwrap();
    let short = example("mlp");
    assert_eq!(long.architecture_digest(), short.architecture_digest());

    let changed = std::str::from_utf8(include_bytes!("../../../spec/examples/mlp.yaml"))
        .unwrap()
        .replace("out_features: 10", "out_features: 11");
    assert_ne!(Graph::from_yaml(changed.as_bytes()).unwrap().architecture_digest(), short.architecture_digest());
}

#[test]
fn canonical_yaml_round_trips() {
    for name in ["mlp", "lenet", "residual_block", "transformer_encoder_layer"] {
        let g = example(name);
        let text = g.to_yaml().unwrap();
        let again = Graph::from_yaml(text.as_bytes()).unwrap_or_else(|r| panic!("{name}:\n{r}\n{text}"));
        assert_eq!(again, g, "{name}");
        assert_eq!(again.to_yaml().unwrap(), text, "{name}: canonical text is a fixed point");
    }
}
