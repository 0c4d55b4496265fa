//! Every validation problem, triggered and checked for its code, path and message.

use std::collections::BTreeMap;

use nnbundle_format::DType;
use nnbundle_graph::{Attrs, Code, Graph, GraphInput, Node, OpKind, Report, Severity, WeightInfo, analyze};

fn node(name: &str, op: OpKind, inputs: &[&str]) -> Node {
    Node { name: name.into(), op, inputs: inputs.iter().map(|s| s.to_string()).collect(), attrs: Attrs::default() }
}

fn problems(yaml: &str) -> Report {
    analyze(yaml.as_bytes(), None).report
}

/// Asserts that `report` has an error with `code` at `path` whose message contains `text`.
#[track_caller]
fn expect(report: &Report, code: Code, path: &str, text: &str) {
    let hit = report.problems.iter().any(|p| p.code == code && p.path == path && p.message.contains(text));
    assert!(hit, "no {code:?} at {path} containing {text:?} in:\n{report}");
}

const HEAD: &str = "opset: 1\ninputs: [{name: x, dtype: f32, shape: [batch, 20]}]\n";

#[test]
fn unknown_op_suggests_the_right_case() {
    let r = problems(&format!("{HEAD}nodes: [{{name: a, op: Relu, inputs: [x]}}]\noutputs: [a]\n"));
    expect(
        &r,
        Code::UnknownOp,
        "nodes[0].op",
        "unknown op `Relu`: not in the opset 2 vocabulary; did you mean `ReLU`?",
    );
    let r = problems(&format!("{HEAD}nodes: [{{name: a, op: PythonCall, inputs: [x]}}]\noutputs: [a]\n"));
    expect(&r, Code::UnknownOp, "nodes[0].op", "unknown op `PythonCall`");
}

#[test]
fn attribute_problems_name_the_attribute() {
    let yaml = format!(
        "{HEAD}nodes:\n\
         - {{name: a, op: Linear, inputs: [x], attrs: {{in_features: 20, out_features: 8, activation: relu}}}}\n\
         - {{name: b, op: Linear, inputs: [a], attrs: {{in_features: 8}}}}\n\
         - {{name: c, op: Linear, inputs: [b], attrs: {{in_features: 8, out_features: 2.5}}}}\n\
         - {{name: d, op: GELU, inputs: [c], attrs: {{approximate: fast}}}}\n\
         outputs: [d]\n"
    );
    let r = problems(&yaml);
    expect(&r, Code::UnknownAttribute, "nodes[0].attrs.activation", "Linear has no attribute `activation`");
    expect(&r, Code::MissingAttribute, "nodes[1].attrs", "Linear needs attribute `out_features` (an integer)");
    expect(&r, Code::InvalidAttribute, "nodes[2].attrs.out_features", "expected an integer, found float 2.5");
    expect(
        &r,
        Code::InvalidAttribute,
        "nodes[3].attrs.approximate",
        "expected one of none, tanh, found string \"fast\"",
    );
    assert_eq!(r.errors().count(), 4, "every problem is listed, and nothing more:\n{r}");
}

#[test]
fn attribute_values_are_checked() {
    let yaml = "opset: 1\ninputs: [{name: x, dtype: f32, shape: [1, 6, 8, 8]}]\nnodes:\n\
        - {name: c, op: Conv2d, inputs: [x], attrs: {in_channels: 6, out_channels: 4, kernel_size: [3, 0], groups: 4}}\n\
        outputs: [c]\n";
    let r = problems(yaml);
    expect(&r, Code::InvalidAttribute, "nodes[0].attrs.kernel_size", "every value must be at least 1, found [3, 0]");
    expect(&r, Code::InvalidAttribute, "nodes[0].attrs.groups", "4 must divide in_channels 6 and out_channels 4");
    let r = problems(&format!(
        "{HEAD}nodes: [{{name: a, op: Conv1d, inputs: [x], attrs: {{in_channels: 1, out_channels: 1, kernel_size: [1, 2]}}}}]\noutputs: [a]\n"
    ));
    expect(
        &r,
        Code::InvalidAttribute,
        "nodes[0].attrs.kernel_size",
        "expected an integer or a list of 1 integers, found list [1,2]",
    );
}

#[test]
fn duplicate_names() {
    let r = problems(&format!(
        "{HEAD}nodes:\n- {{name: a, op: ReLU, inputs: [x]}}\n- {{name: a, op: Tanh, inputs: [x]}}\n- {{name: x, op: Tanh, inputs: [x]}}\noutputs: [a]\n"
    ));
    expect(&r, Code::DuplicateName, "nodes[1].name", "`a` is already defined at nodes[0]");
    expect(&r, Code::DuplicateName, "nodes[2].name", "`x` is already defined at inputs[0]");
}

#[test]
fn unknown_references_and_outputs() {
    let r = problems(&format!("{HEAD}nodes: [{{name: a, op: ReLU, inputs: [y]}}]\noutputs: [a, z]\n"));
    expect(&r, Code::UnknownReference, "nodes[0].inputs[0]", "input `y` is not a graph input or a node");
    expect(&r, Code::UnknownReference, "outputs[1]", "output `z` is not a graph input or a node");
}

#[test]
fn cycles_are_found_and_named() {
    let r = problems(&format!(
        "{HEAD}nodes:\n- {{name: a, op: Add, inputs: [x, c]}}\n- {{name: b, op: ReLU, inputs: [a]}}\n- {{name: c, op: Tanh, inputs: [b]}}\n- {{name: s, op: ReLU, inputs: [s]}}\noutputs: [c, s]\n"
    ));
    let cycles: Vec<_> = r.problems.iter().filter(|p| p.code == Code::Cycle).collect();
    assert_eq!(cycles.len(), 2, "{r}");
    assert!(
        cycles.iter().any(|p| p.message.contains("a -> b -> c -> a")
            || p.message.contains("c -> a -> b -> c")
            || p.message.contains("b -> c -> a -> b")),
        "{r}"
    );
    expect(&r, Code::Cycle, "nodes[3]", "the graph has a cycle: s -> s");
}

#[test]
fn unreachable_nodes_are_warnings() {
    let yaml = format!(
        "{HEAD}nodes:\n- {{name: a, op: ReLU, inputs: [x]}}\n- {{name: dead, op: Tanh, inputs: [x]}}\noutputs: [a]\n"
    );
    let analysis = analyze(yaml.as_bytes(), None);
    let warning = analysis.report.problems.iter().find(|p| p.code == Code::Unreachable).unwrap();
    assert_eq!(
        (warning.severity, warning.path.as_str(), warning.node.as_deref()),
        (Severity::Warning, "nodes[1]", Some("dead"))
    );
    assert!(analysis.graph.is_some(), "a warning does not fail the graph");
}

#[test]
fn input_count() {
    let r = problems(&format!(
        "{HEAD}nodes: [{{name: a, op: Linear, inputs: [x, x, x, x], attrs: {{in_features: 20, out_features: 2}}}}]\noutputs: [a]\n"
    ));
    expect(
        &r,
        Code::InputCount,
        "nodes[0].inputs",
        "Linear takes 1 to 3 inputs (input, weight, bias; parameters not given come from the weights), found 4",
    );
    let r = problems(&format!("{HEAD}nodes: [{{name: a, op: Concat, inputs: []}}]\noutputs: [a]\n"));
    expect(&r, Code::InputCount, "nodes[0].inputs", "Concat takes at least 1 input, found 0");
}

#[test]
fn shape_errors_name_the_node_and_both_shapes() {
    let yaml = "opset: 1\ninputs: [{name: x, dtype: f32, shape: [batch, 20]}]\nsequential:\n\
        - {name: hidden, op: Linear, attrs: {in_features: 20, out_features: 128}}\n\
        - {name: output, op: Linear, attrs: {in_features: 256, out_features: 10}}\n";
    let r = problems(yaml);
    expect(&r, Code::Shape, "sequential[1]", "Linear expects last dimension 256, input has [batch, 128]");
    let p = r.errors().next().unwrap();
    assert_eq!(
        p.to_string(),
        "error[shape] sequential[1] (node `output`): Linear expects last dimension 256, input has [batch, 128]"
    );
}

#[test]
fn shape_errors_flow_no_further() {
    // The first mismatch is reported; nodes after it are not blamed for it.
    let yaml = "opset: 1\ninputs: [{name: x, dtype: f32, shape: [2, 3]}]\nsequential:\n\
        - {op: Linear, attrs: {in_features: 4, out_features: 5}}\n- {op: ReLU}\n- {op: Linear, attrs: {in_features: 5, out_features: 1}}\n";
    assert_eq!(problems(yaml).errors().count(), 1);
}

#[test]
fn dtype_errors() {
    let yaml = "opset: 1\ninputs: [{name: x, dtype: i64, shape: [3]}]\nsequential: [{op: ReLU}]\n";
    expect(&problems(yaml), Code::Shape, "sequential[0]", "ReLU computes in f32 or f64, input is i64");
}

fn weights(list: &[(&str, DType, &[u64])]) -> BTreeMap<String, WeightInfo> {
    list.iter().map(|(n, d, s)| (n.to_string(), WeightInfo { dtype: *d, shape: s.to_vec() })).collect()
}

#[test]
fn weights_are_checked_against_the_graph() {
    let yaml = std::fs::read(format!("{}/../../spec/examples/mlp.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let w = weights(&[
        ("hidden.weight", DType::F32, &[256, 20]),
        ("hidden.bias", DType::F64, &[256]),
        ("output.weight", DType::F32, &[10, 255]),
        ("extra.weight", DType::F32, &[1]),
    ]);
    let r = analyze(&yaml, Some(&w)).report;
    expect(
        &r,
        Code::ParameterDType,
        "sequential[0]",
        "weight `hidden.bias` is f64, Linear needs f32 (the input's dtype)",
    );
    expect(
        &r,
        Code::ParameterShape,
        "sequential[2]",
        "weight `output.weight` has shape [10, 255], the attributes imply [10, 256]",
    );
    expect(
        &r,
        Code::MissingParameter,
        "sequential[2]",
        "Linear needs weight `output.bias` of shape [10], which the bundle does not have",
    );
    expect(
        &r,
        Code::UnusedWeight,
        r#"tensors["extra.weight"]"#,
        "weight `extra.weight` is in the `params` group but no node uses it",
    );
    assert_eq!(r.errors().count(), 4, "{r}");

    let good = weights(&[
        ("hidden.weight", DType::F32, &[256, 20]),
        ("hidden.bias", DType::F32, &[256]),
        ("output.weight", DType::F32, &[10, 256]),
        ("output.bias", DType::F32, &[10]),
    ]);
    assert!(!analyze(&yaml, Some(&good)).report.has_errors());
}

#[test]
fn parameters_can_be_graph_inputs() {
    // ONNX style: the weight is a value, not a stored parameter.
    let yaml = "opset: 1\ninputs:\n- {name: x, dtype: f32, shape: [2, 3]}\n- {name: w, dtype: f32, shape: [4, 3]}\n\
        nodes: [{name: y, op: Linear, inputs: [x, w], attrs: {in_features: 3, out_features: 4, bias: false}}]\noutputs: [y]\n";
    let analysis = analyze(yaml.as_bytes(), Some(&BTreeMap::new()));
    assert!(!analysis.report.has_errors(), "{}", analysis.report);
    assert_eq!(analysis.values["y"].shape.to_string(), "[2, 4]");
    let bad = yaml.replace("[4, 3]}", "[4, 5]}");
    expect(
        &problems(&bad),
        Code::ParameterShape,
        "nodes[0].inputs",
        "input `w` for Linear `weight` has shape [4, 5], the attributes imply [4, 3]",
    );
}

#[test]
fn a_float_parameter_on_an_integer_input_says_what_is_wrong() {
    let yaml = "opset: 1\ninputs: [{name: x, dtype: i64, shape: [3]}]\nsequential: [{name: m, op: Div}]\n";
    let weights = BTreeMap::from([("m.other".to_string(), WeightInfo { dtype: DType::I64, shape: vec![] })]);
    let report = analyze(yaml.as_bytes(), Some(&weights)).report;
    expect(
        &report,
        Code::ParameterDType,
        "sequential[0]",
        "weight `m.other` is i64, Div needs f32 or f64, and the input (i64) must be that float type too",
    );
}

#[test]
fn integer_arithmetic_needs_opset_2() {
    let yaml = "opset: 1\ninputs: [{name: x, dtype: i64, shape: [3]}]\nsequential: [{name: m, op: Mul}]\n";
    let weights = BTreeMap::from([("m.other".to_string(), WeightInfo { dtype: DType::I64, shape: vec![] })]);
    expect(
        &analyze(yaml.as_bytes(), Some(&weights)).report,
        Code::UnknownOp,
        "sequential[0]",
        "`Mul` on i64 operands is in the vocabulary from opset 2; this graph declares opset 1",
    );
    let two = yaml.replace("opset: 1", "opset: 2");
    let analysis = analyze(two.as_bytes(), Some(&weights));
    assert!(!analysis.report.has_errors(), "{:?}", analysis.report);
    assert_eq!(analysis.values["m"].dtype, DType::I64);
    // Built in code, the graph declares opset 2 for integer operands only.
    let graph = Graph::from_yaml(two.as_bytes()).unwrap();
    let mul = |x: &str| Graph::new(graph.inputs().to_vec(), vec![node("m", OpKind::Mul, &[x, x])], vec!["m".into()]);
    assert_eq!(mul("x").unwrap().opset(), 2);
    let floats = vec![GraphInput { name: "f".into(), dtype: DType::F32, shape: graph.inputs()[0].shape.clone() }];
    let float_mul = Graph::new(floats, vec![node("m", OpKind::Mul, &["f", "f"])], vec!["m".into()]).unwrap();
    assert_eq!(float_mul.opset(), 1);
    // Div stays float-only whatever the opset.
    let div = yaml.replace("opset: 1", "opset: 2").replace("op: Mul", "op: Div");
    let weights = BTreeMap::from([("m.other".to_string(), WeightInfo { dtype: DType::I64, shape: vec![] })]);
    assert!(analyze(div.as_bytes(), Some(&weights)).report.has_errors());
}

#[test]
fn an_op_needs_the_opset_that_added_it() {
    let yaml = "opset: 1\ninputs: [{name: x, dtype: f32, shape: [2]}]\nsequential: [{name: e, op: Exp}]\n";
    expect(
        &problems(yaml),
        Code::UnknownOp,
        "sequential[0].op",
        "`Exp` is in the vocabulary from opset 2; this graph declares opset 1",
    );
    let graph = Graph::from_yaml(yaml.replace("opset: 1", "opset: 2").as_bytes()).unwrap();
    assert_eq!(graph.opset(), 2);
    // Built in code, a graph declares the lowest opset that has its ops.
    let relu = Graph::new(graph.inputs().to_vec(), vec![node("r", OpKind::ReLU, &["x"])], vec!["r".into()]).unwrap();
    assert_eq!(relu.opset(), 1);
    let exp = Graph::new(graph.inputs().to_vec(), vec![node("e", OpKind::Exp, &["x"])], vec!["e".into()]).unwrap();
    assert_eq!(exp.opset(), 2);
}

#[test]
fn document_structure_problems() {
    let r = problems("opset: 3\ninputs: [{name: x, dtype: f33, shape: [batch, -1]}]\nnodes: []\nextra: 1\n");
    expect(
        &r,
        Code::UnsupportedOpset,
        "opset",
        "the graph uses opset 3, this library reads opsets 1 to 2: upgrade nnbundle",
    );
    expect(&r, Code::InvalidField, "inputs[0].dtype", "unknown dtype `f33`");
    expect(
        &r,
        Code::InvalidField,
        "inputs[0].shape[1]",
        "expected a size (integer >= 0) or a symbol like `batch`, found integer -1",
    );
    expect(&r, Code::UnknownField, "extra", "unknown field `extra` in the graph document");
    expect(&r, Code::MissingField, "outputs", "missing field `outputs`");
    let r = problems("opset: 1\ninputs: [{name: x, dtype: f32, shape: [1]}]\nsequential: [{op: ReLU, inputs: [x]}]\n");
    expect(&r, Code::UnknownField, "sequential[0].inputs", "a sequential node reads the previous node's output");
    let r = problems("opset: 1\ninputs: [{name: x.., dtype: f32, shape: [1]}]\nsequential: [{op: ReLU}]\n");
    expect(&r, Code::InvalidField, "inputs[0].name", "invalid name \"x..\"");
}

#[test]
fn yaml_errors_are_reported_not_panicked() {
    for doc in ["{", "opset: [", "- 1\n- 2\n", "a: &a [*a]", "\u{feff}\u{0}"] {
        let r = problems(doc);
        assert!(r.has_errors(), "{doc:?}");
    }
    let bomb = "a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
    expect(&problems(bomb), Code::Yaml, "", "graph.yaml");
}

#[test]
fn graphs_built_in_code_get_the_same_checks() {
    use nnbundle_graph::{AttrValue, Attrs, GraphInput, Node, OpKind, Shape};
    let mut attrs = Attrs::default();
    attrs.set("in_features", AttrValue::Int(20)).set("out_features", AttrValue::Ints(vec![3]));
    let node = Node { name: "fc".into(), op: OpKind::Linear, inputs: vec!["x".into()], attrs };
    let input = GraphInput { name: "x".into(), dtype: DType::F32, shape: Shape::fixed(&[1, 20]) };
    let err = Graph::new(vec![input], vec![node], vec!["fc".into()]).unwrap_err();
    expect(&err, Code::InvalidAttribute, "nodes[0].attrs.out_features", "expected an integer, found [3]");
}

#[test]
fn ten_thousand_nodes_validate() {
    let mut yaml = String::from("opset: 1\ninputs: [{name: x, dtype: f32, shape: [batch, 8]}]\nsequential:\n");
    for _ in 0..10_000 {
        yaml.push_str("- {op: ReLU}\n");
    }
    let analysis = analyze(yaml.as_bytes(), None);
    assert!(analysis.graph.is_some(), "{}", analysis.report);
    assert_eq!(analysis.values["9999"].shape.to_string(), "[batch, 8]");
}

#[test]
fn misspelled_references_and_prefixed_weights_get_a_suggestion() {
    let r = problems(&format!(
        "{HEAD}nodes:\n- {{name: hidden, op: ReLU, inputs: [x]}}\n- {{name: out, op: ReLU, inputs: [hiden]}}\noutputs: [outt]\n"
    ));
    expect(
        &r,
        Code::UnknownReference,
        "nodes[1].inputs[0]",
        "input `hiden` is not a graph input or a node; did you mean `hidden`?",
    );
    expect(
        &r,
        Code::UnknownReference,
        "outputs[0]",
        "output `outt` is not a graph input or a node; did you mean `out`?",
    );

    let yaml =
        format!("{HEAD}sequential:\n- {{name: hidden, op: Linear, attrs: {{in_features: 20, out_features: 4}}}}\n");
    let prefixed = weights(&[("model.hidden.weight", DType::F32, &[4, 20]), ("model.hidden.bias", DType::F32, &[4])]);
    let r = analyze(yaml.as_bytes(), Some(&prefixed)).report;
    expect(
        &r,
        Code::MissingParameter,
        "sequential[0]",
        "needs weight `hidden.weight` of shape [4, 20], which the bundle does not have; \
         did you mean `model.hidden.weight`? (the names differ by the prefix `model.`)",
    );
}

#[test]
fn a_repeated_node_name_is_a_duplicate_not_a_cycle() {
    // The second `a` reads `a`: with two nodes of that name, the reference is ambiguous, not circular.
    let r = problems(&format!(
        "{HEAD}nodes:\n- {{name: a, op: ReLU, inputs: [x]}}\n- {{name: a, op: Sigmoid, inputs: [a]}}\noutputs: [a]\n"
    ));
    expect(&r, Code::DuplicateName, "nodes[1].name", "`a` is already defined at nodes[0]");
    assert!(!r.problems.iter().any(|p| p.code == Code::Cycle), "{r}");
    assert_eq!(r.errors().count(), 1, "{r}");
    // A real cycle is still one.
    let r = problems(&format!(
        "{HEAD}nodes:\n- {{name: a, op: Add, inputs: [x, b]}}\n- {{name: b, op: ReLU, inputs: [a]}}\noutputs: [b]\n"
    ));
    expect(&r, Code::Cycle, "nodes[1]", "the graph has a cycle: b -> a -> b");
}

#[test]
fn summaries_count_stored_parameters_and_tied_ones_once() {
    let yaml = format!(
        "{HEAD}sequential:\n- {{name: a, op: Linear, attrs: {{in_features: 20, out_features: 20, bias: false}}}}\n\
         - {{name: bn, op: BatchNorm1d, attrs: {{num_features: 20}}}}\n\
         - {{name: b, op: Linear, attrs: {{in_features: 20, out_features: 20, bias: false}}}}\n"
    );
    let graph = Graph::from_yaml(yaml.as_bytes()).unwrap();
    // bn stores weight, bias, running_mean and running_var (4 x 20), not
    // num_batches_tracked; b.weight is a.weight, tied.
    let stored = weights(&[
        ("a.weight", DType::F32, &[20, 20]),
        ("b.weight", DType::F32, &[20, 20]),
        ("bn.weight", DType::F32, &[20]),
        ("bn.bias", DType::F32, &[20]),
        ("bn.running_mean", DType::F32, &[20]),
        ("bn.running_var", DType::F32, &[20]),
    ]);
    let summary = graph.summary(Some(&stored));
    assert!(summary.ends_with("parameters: 880 (3.4 KiB)\n"), "400 + 80 + 400:\n{summary}");
    let tied = BTreeMap::from([("b.weight".to_owned(), "a.weight".to_owned())]);
    let summary = graph.summary_with_aliases(Some(&stored), &tied);
    assert!(summary.ends_with("parameters: 480 (1.9 KiB)\n"), "400 + 80:\n{summary}");
    assert!(summary.contains("(bn): BatchNorm1d(num_features=20"), "{summary}");
    assert!(summary.contains("-> [batch, 20], 80 params"), "{summary}");
}
