//! Validation reports: every problem found, each with a stable code and a place.

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The graph is still valid.
    Warning,
    /// The graph cannot be used.
    Error,
}

/// Stable problem codes (the `code` field of JSON reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Code {
    /// The YAML does not parse.
    Yaml,
    /// A field that the schema does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A field of the wrong type or with a value outside its rules.
    InvalidField,
    /// The graph declares an opset this library does not implement.
    UnsupportedOpset,
    /// An op outside the vocabulary.
    UnknownOp,
    /// An attribute the op does not define.
    UnknownAttribute,
    /// A required attribute is absent.
    MissingAttribute,
    /// An attribute of the wrong type or with a value outside its rules.
    InvalidAttribute,
    /// Two inputs or nodes with one name.
    DuplicateName,
    /// A reference to a value no input or node defines.
    UnknownReference,
    /// A node's inputs do not fit the op's operands.
    InputCount,
    /// The graph has a cycle.
    Cycle,
    /// A node that no output depends on.
    Unreachable,
    /// Inference found operands whose shape or dtype does not fit the op.
    Shape,
    /// A parameter that the weights do not provide.
    MissingParameter,
    /// A `params` weight that no node uses.
    UnusedWeight,
    /// A weight whose shape differs from what the attributes imply.
    ParameterShape,
    /// A weight whose dtype does not fit the op.
    #[serde(rename = "parameter-dtype")]
    ParameterDType,
    /// A size or count above the spec's limits.
    Limit,
}

impl Code {
    /// The code as written in reports (what it serializes to).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Yaml => "yaml",
            Code::UnknownField => "unknown-field",
            Code::MissingField => "missing-field",
            Code::InvalidField => "invalid-field",
            Code::UnsupportedOpset => "unsupported-opset",
            Code::UnknownOp => "unknown-op",
            Code::UnknownAttribute => "unknown-attribute",
            Code::MissingAttribute => "missing-attribute",
            Code::InvalidAttribute => "invalid-attribute",
            Code::DuplicateName => "duplicate-name",
            Code::UnknownReference => "unknown-reference",
            Code::InputCount => "input-count",
            Code::Cycle => "cycle",
            Code::Unreachable => "unreachable",
            Code::Shape => "shape",
            Code::MissingParameter => "missing-parameter",
            Code::UnusedWeight => "unused-weight",
            Code::ParameterShape => "parameter-shape",
            Code::ParameterDType => "parameter-dtype",
            Code::Limit => "limit",
        }
    }
}

/// One problem: what, where and how bad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: Code,
    /// YAML path of the offending field (`nodes[3].attrs.kernel_size`).
    pub path: String,
    /// The node concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}] {}", self.severity, self.code, self.path)?;
        if let Some(node) = &self.node {
            write!(f, " (node `{node}`)")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Problems in the order found.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Records an error.
    pub fn error(&mut self, code: Code, path: impl Into<String>, node: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Error, code, path, node, message);
    }

    /// Records a warning.
    pub fn warning(&mut self, code: Code, path: impl Into<String>, node: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Warning, code, path, node, message);
    }

    fn push(
        &mut self,
        severity: Severity,
        code: Code,
        path: impl Into<String>,
        node: Option<&str>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            severity,
            code,
            path: path.into(),
            node: node.map(str::to_owned),
            message: message.into(),
        });
    }

    /// True when there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.severity == Severity::Error)
    }

    /// Appends another report's problems.
    pub fn extend(&mut self, other: Report) {
        self.problems.extend(other.problems);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.problems {
            writeln!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Report {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_strings_are_what_codes_serialize_to() {
        for code in [Code::Yaml, Code::UnsupportedOpset, Code::ParameterDType, Code::MissingParameter, Code::Limit] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
