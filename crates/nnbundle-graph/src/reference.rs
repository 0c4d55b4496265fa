//! The op reference (`spec/OPS.md`), generated from the registry so the
//! spec's op list and the code cannot disagree.

use std::fmt::Write;

use crate::attr::AttrDefault;
use crate::op::{OPSET, ParamDType, Role};
use crate::ops::OpKind;

/// Markdown reference of every op: summary, operands, attributes.
pub fn op_reference_markdown() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Op reference, opsets 1 to {OPSET}\n");
    let _ = writeln!(
        out,
        "Generated from the op registry (`crates/nnbundle-graph`); a test fails when this file differs. \
         Normative together with section 9 of [FORMAT.md](FORMAT.md), which states the rules every op follows. \
         An op is in the vocabulary from the opset in its `since` column on; a graph declares an opset at least \
         that of every op it uses.\n\n\
         A parameter's shape is a formula over the node's attributes after normalization (FORMAT.md 9.4): \
         `[t, t, ...]`, each term either `*name`, the values of the list attribute `name`, or integer attributes \
         and integer literals joined by `*` and `/` (integer division), evaluated left to right; `directions` is 2 \
         when the attribute `bidirectional` is true and 1 otherwise. `[out_channels, in_channels/groups, *kernel_size]` \
         with `out_channels: 8`, `in_channels: 4`, `groups: 2`, `kernel_size: [3, 3]` is `[8, 2, 3, 3]`. A parameter \
         that exists only under some attributes says so; otherwise it always exists.\n"
    );
    let _ = writeln!(out, "| op | since | computes |\n|---|---|---|");
    for op in OpKind::ALL {
        let def = op.def();
        let summary = def.summary.replace('|', "\\|");
        let _ = writeln!(out, "| [`{}`](#{}) | {} | {summary} |", def.name, def.name.to_lowercase(), op.since());
    }
    for op in OpKind::ALL {
        let def = op.def();
        let _ = writeln!(
            out,
            "\n## {}\n\n{}\n\nSince opset {}. Numerics: {}\n",
            def.name,
            def.summary,
            op.since(),
            def.numerics
        );
        let _ = writeln!(out, "Operands, in order:\n");
        for slot in def.slots {
            let role = match slot.role {
                Role::Data => "value, required".to_owned(),
                Role::OptionalData => "value, optional".to_owned(),
                Role::Variadic => "one or more values".to_owned(),
                Role::Param => {
                    let dtype = def.rule.param(slot.name, &Default::default()).map(|p| p.dtype);
                    let dtype = match dtype {
                        Some(ParamDType::Index) => ", i32 or i64",
                        Some(ParamDType::AnyFloat) => ", f32 or f64",
                        Some(ParamDType::I64) => ", i64, optional, unused at inference",
                        Some(ParamDType::SameAsInput) => ", the input's dtype",
                        Some(ParamDType::Any) => ", any dtype",
                        _ => ", the input's float dtype",
                    };
                    let doc = def.param_doc(slot.name);
                    let shape = doc.shape.map_or_else(
                        || ", any shape the op's shape rule accepts".to_owned(),
                        |f| format!(", shape `{f}`"),
                    );
                    let when = match doc.when {
                        [] => String::new(),
                        attrs => format!(
                            "; exists only when {} true",
                            attrs.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(" and ")
                                + if attrs.len() > 1 { " are" } else { " is" }
                        ),
                    };
                    format!("parameter: the weight `<node>.{}` unless given as a value{dtype}{shape}{when}", slot.name)
                }
            };
            let _ = writeln!(out, "- `{}`: {role}", slot.name);
        }
        if def.attrs.is_empty() {
            let _ = writeln!(out, "\nAttributes: none.");
        } else {
            let _ = writeln!(out, "\n| attribute | type | default | meaning |\n|---|---|---|---|");
            for a in def.attrs {
                let default = match a.default {
                    AttrDefault::Required => "required".to_owned(),
                    AttrDefault::Absent => "absent".to_owned(),
                    other => format!("`{other}`"),
                };
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    a.name,
                    a.ty.describe(),
                    default,
                    a.doc.replace('|', "\\|")
                );
            }
        }
    }
    out
}
