//! The nnbundle layer graph: a restricted, declarative description of a
//! model from which any reader can rebuild it with no code from its author.
//!
//! A graph has named inputs (dtype and shape, with symbols such as `batch`),
//! nodes that apply an op of the closed vocabulary ([`OpKind`]) to named
//! values, and named outputs. Nodes own their parameters by PyTorch-style
//! names: node `hidden` of op `Linear` reads `hidden.weight` and `hidden.bias`.
//!
//! Parsing and checking collect every problem with its YAML path
//! ([`Report`]); shape inference runs without weights, and against them.
//!
//! ```
//! use nnbundle_graph::Graph;
//!
//! let yaml = br#"
//! opset: 1
//! inputs: [{name: x, dtype: f32, shape: [batch, 20]}]
//! sequential:
//!   - {name: hidden, op: Linear, attrs: {in_features: 20, out_features: 256}}
//!   - {op: ReLU}
//!   - {name: output, op: Linear, attrs: {in_features: 256, out_features: 10}}
//! "#;
//! let graph = Graph::from_yaml(yaml).unwrap();
//! let analysis = graph.check(None);
//! assert_eq!(analysis.values["output"].shape.to_string(), "[batch, 10]");
//! let names: Vec<_> = graph.parameters().into_iter().map(|p| p.name).collect();
//! assert_eq!(names, ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]);
//! ```
#![deny(missing_docs)]

mod attr;
mod build;
mod check;
mod document;
mod graph;
mod op;
mod ops;
mod reference;
mod report;
pub mod schema;
mod suggest;
mod summary;
mod value;

pub use attr::{AttrDefault, AttrSpec, AttrType, AttrValue, Attrs, NodeAttrs};
pub use build::GraphBuilder;
pub use check::Analysis;
pub use document::{is_symbol, is_value_name};
pub use graph::{Graph, GraphInput, Node, Operand, Parameter, WeightInfo, analyze};
pub use op::{OPSET, OpDef, ParamDType, ParamDoc, ParamSpec, Role, Slot, eval_shape_formula};
pub use ops::OpKind;
pub use ops::Window;
pub use ops::conv::{conv_padding, conv_transpose_geometry, conv_transpose_length, conv_windows};
pub use ops::elementwise::CAST_DTYPES;
pub use ops::pool::pool_windows;
pub use ops::shape::{slice_dims_steps, slice_range};
pub use reference::op_reference_markdown;
pub use report::{Code, Problem, Report, Severity};
pub use suggest::{Suggestion, did_you_mean};
pub use summary::{group_digits, human_bytes};
pub use value::{Dim, Shape, ValueInfo, normalize_axis};
