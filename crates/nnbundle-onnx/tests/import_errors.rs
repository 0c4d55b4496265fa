//! ONNX inputs the importer refuses, each with a message that says why.

use nnbundle_onnx::proto::{
    AttributeProto, Dimension, DimensionValue, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, attribute_type,
};
use prost::Message;

fn value(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto { tensor_type: Some(TypeProtoTensor { elem_type: 1, shape: None }) }),
        doc_string: String::new(),
    }
}

fn model(opset: i64, nodes: Vec<NodeProto>, initializer: Vec<TensorProto>) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        graph: Some(GraphProto {
            node: nodes,
            initializer,
            input: vec![value("x")],
            output: vec![value("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn node(op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec!["y".into()],
        name: "n".into(),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attribute_type::INT, i, ..Default::default() }
}

fn err(bytes: &[u8]) -> String {
    nnbundle_onnx::import(bytes).unwrap_err().to_string()
}

#[test]
fn external_data_is_refused_clearly() {
    let w = TensorProto {
        dims: vec![1],
        data_type: 1,
        name: "w".into(),
        data_location: 1,
        external_data: vec![StringStringEntryProto { key: "location".into(), value: "../../etc/passwd".into() }],
        ..Default::default()
    };
    let e = err(&model(17, vec![node("Add", &["x", "w"], vec![])], vec![w]));
    assert!(e.contains("tensor `w`") && e.contains("external data file"), "{e}");
}

#[test]
fn opsets_outside_the_range_are_refused() {
    let e = err(&model(5, vec![node("Relu", &["x"], vec![])], vec![]));
    assert!(e.contains("ONNX opset 5: the importer reads opsets 6 to 25"), "{e}");
}

#[test]
fn training_mode_dropout_is_refused() {
    let e = err(&model(6, vec![node("Dropout", &["x"], vec![int("is_test", 0)])], vec![]));
    assert!(e.contains("training-mode dropout"), "{e}");
}

#[test]
fn garbage_is_not_a_model() {
    assert!(err(b"\xff\xff\xff\xff").starts_with("not an ONNX model"));
}

/// `y = If(flag) { Relu(x) } else { Neg(x) }` with the branches reading `x`
/// from the outer scope, and `flag` a bool graph input.
fn branching_model() -> Vec<u8> {
    let branch = |op: &str, out: &str| GraphProto {
        node: vec![NodeProto {
            input: vec!["x".into()],
            output: vec![out.into()],
            op_type: op.into(),
            ..Default::default()
        }],
        output: vec![value(out)],
        ..Default::default()
    };
    let graph_attr = |name: &str, g: GraphProto| AttributeProto {
        name: name.into(),
        r#type: attribute_type::GRAPH,
        g: Some(Box::new(g)),
        ..Default::default()
    };
    let mut flag = value("flag");
    flag.r#type = Some(TypeProto {
        tensor_type: Some(TypeProtoTensor { elem_type: 9, shape: Some(TensorShapeProto { dim: vec![] }) }),
    });
    let mut x = value("x");
    x.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape =
        Some(TensorShapeProto { dim: vec![Dimension { value: Some(DimensionValue::DimValue(3)) }] });
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: vec!["flag".into()],
                output: vec!["y".into()],
                name: "choose".into(),
                op_type: "If".into(),
                attribute: vec![
                    graph_attr("then_branch", branch("Relu", "a")),
                    graph_attr("else_branch", branch("Neg", "b")),
                ],
                ..Default::default()
            }],
            input: vec![x, flag],
            output: vec![value("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn if_on_a_run_time_condition_names_input_value() {
    let e = err(&branching_model());
    assert!(e.contains("`choose` (If)") && e.contains("`--input-value NAME=VALUE`"), "{e}");
}

#[test]
fn if_on_a_pinned_condition_imports_the_taken_branch() {
    use nnbundle_graph::OpKind;
    for (flag, op) in [("true", OpKind::ReLU), ("false", OpKind::Neg)] {
        let options = nnbundle_onnx::ImportOptions {
            input_values: [("flag".to_string(), flag.to_string())].into(),
            ..Default::default()
        };
        let model = ModelProto::decode(branching_model().as_slice()).unwrap();
        let imported = nnbundle_onnx::import_model_with(&model, &options).unwrap();
        let graph = &imported.graph;
        assert_eq!(graph.inputs().iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["x"], "flag is pinned away");
        // The branch's value is the graph output under the If's ONNX name, `y`.
        assert_eq!(graph.nodes().iter().map(|n| n.op).collect::<Vec<_>>(), [op, OpKind::Identity], "flag={flag}");
        assert_eq!(graph.outputs(), ["y"]);
    }
}
