//! The JSON Schema of graph documents, generated from the op registry, so
//! the published schema and the code cannot disagree.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use crate::attr::{AttrDefault, AttrSpec, AttrType};
use crate::op::{OPSET, Role};
use crate::ops::OpKind;

fn attr_schema(spec: &AttrSpec) -> Value {
    let int = json!({"type": "integer"});
    let list = |n: Option<usize>| {
        let mut s = json!({"type": "array", "items": {"type": "integer"}});
        if let Some(n) = n {
            s["minItems"] = json!(n);
            s["maxItems"] = json!(n);
        }
        s
    };
    let mut s = match spec.ty {
        AttrType::Int => int,
        AttrType::Float => json!({"type": "number"}),
        AttrType::Bool => json!({"type": "boolean"}),
        AttrType::Choice(c) => json!({"enum": c}),
        AttrType::Ints => json!({"oneOf": [int, list(None)]}),
        AttrType::Spatial(n) => json!({"oneOf": [int, list(Some(n))]}),
        AttrType::Pads(n) => json!({"oneOf": [int, list(Some(n)), list(Some(2 * n))]}),
        AttrType::Padding(n) => json!({"oneOf": [int, list(Some(n)), list(Some(2 * n)), {"enum": ["valid", "same"]}]}),
    };
    let default = match spec.default {
        AttrDefault::Required => "required".to_owned(),
        other => format!("default: {other}"),
    };
    s["description"] = json!(format!("{} ({default})", spec.doc));
    s
}

fn node_schema(op: OpKind, sequential: bool) -> Value {
    let def = op.def();
    let properties: serde_json::Map<String, Value> =
        def.attrs.iter().map(|a| (a.name.to_owned(), attr_schema(a))).collect();
    let required_attrs: Vec<&str> =
        def.attrs.iter().filter(|a| a.default == AttrDefault::Required).map(|a| a.name).collect();
    let slots: Vec<String> = def
        .slots
        .iter()
        .map(|s| match s.role {
            Role::Data => s.name.to_owned(),
            Role::OptionalData => format!("[{}]", s.name),
            Role::Variadic => format!("{}...", s.name),
            Role::Param => format!("[{} = weight <name>.{}]", s.name, s.name),
        })
        .collect();
    let mut props = json!({
        "name": {"$ref": "#/$defs/ValueName"},
        "op": {"const": def.name},
        "attrs": {"type": "object", "additionalProperties": false, "properties": properties, "required": required_attrs},
    });
    let mut required = vec!["op"];
    if !sequential {
        props["inputs"] = json!({"type": "array", "items": {"$ref": "#/$defs/ValueName"}, "description": format!("operands: {}", slots.join(", "))});
        required.extend(["name", "inputs"]);
    }
    if !required_attrs.is_empty() {
        required.push("attrs");
    }
    json!({
        "title": def.name,
        "description": def.summary,
        "type": "object",
        "additionalProperties": false,
        "properties": props,
        "required": required,
    })
}

/// Marker type whose `JsonSchema` implementation is the graph document schema.
pub struct GraphDocumentSchema;

impl JsonSchema for GraphDocumentSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GraphDocument".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let nodes: Vec<Value> = OpKind::ALL.iter().map(|&op| node_schema(op, false)).collect();
        let sequential: Vec<Value> = OpKind::ALL.iter().map(|&op| node_schema(op, true)).collect();
        json_schema!({
            "title": "nnbundle graph document",
            "description": format!("A layer graph of opset 1 to {OPSET}: named inputs, nodes from the closed op vocabulary, named outputs. Give either `nodes` (long form) or `sequential` (each node reads the previous one; names default to the index; outputs default to the last node)."),
            "type": "object",
            "additionalProperties": false,
            "required": ["opset", "inputs"],
            "oneOf": [{"required": ["nodes", "outputs"]}, {"required": ["sequential"]}],
            "properties": {
                "opset": {"type": "integer", "minimum": 1, "maximum": OPSET, "description": "version of the op vocabulary: at least the opset of every op the graph uses (see OPS.md)"},
                "inputs": {"type": "array", "items": {"$ref": "#/$defs/Input"}},
                "nodes": {"type": "array", "items": {"oneOf": nodes}},
                "sequential": {"type": "array", "items": {"oneOf": sequential}},
                "outputs": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/ValueName"}}
            },
            "$defs": {
                "ValueName": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$",
                    "maxLength": 512,
                    "description": "a graph input or node name: dot-separated parts of ASCII letters, digits and _"
                },
                "Input": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "dtype", "shape"],
                    "properties": {
                        "name": {"$ref": "#/$defs/ValueName"},
                        "dtype": {"enum": ["f16", "bf16", "f32", "f64", "i8", "i16", "i32", "i64", "u8", "bool"]},
                        "shape": {
                            "type": "array",
                            "maxItems": 16,
                            "items": {"oneOf": [
                                {"type": "integer", "minimum": 0},
                                {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
                            ]}
                        }
                    }
                }
            }
        })
    }
}

/// The graph document schema (JSON Schema draft 2020-12), as published in `spec/schema/`.
pub fn graph_schema() -> Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<GraphDocumentSchema>();
    schema.to_value()
}
