//! Rust errors as Python exceptions: `NnbError` (a `ValueError`) with the
//! validator's `code` and `location`, `IntegrityError` for hash mismatches,
//! `ValidationError` for graph problems, `OSError` for the file system.

use nnbundle_container::ContainerError;
use nnbundle_graph::Report;
use nnbundle_onnx::{BundleExportError, ImportError};
use nnbundle_runtime::RuntimeError;
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

create_exception!(
    nnbundle,
    NnbError,
    PyValueError,
    "A bundle, a graph or an argument is invalid.\n\n`code` is the validator's stable code (`not-a-zip`, `hash-mismatch`,\n`unknown-op`, ...) and `location` where the problem is (an entry, `tensors.NAME`,\nor a YAML path), or None."
);
create_exception!(
    nnbundle,
    IntegrityError,
    NnbError,
    "A tensor's bytes do not hash to the digest the manifest records (corruption,\ntruncation or tampering). `tensor` names the (first) tensor at fault."
);
create_exception!(
    nnbundle,
    ValidationError,
    NnbError,
    "A graph has problems. `problems` lists every one as a dict with `severity`,\n`code`, `location`, `node` and `message`; `code` and `location` are the first error's."
);

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NnbError", py.get_type::<NnbError>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    Ok(())
}

/// An exception with `code` and `location` attributes set.
fn coded(err: PyErr, code: &str, location: Option<String>) -> PyErr {
    Python::attach(|py| {
        let value = err.value(py);
        // Setting attributes on a fresh exception instance cannot fail.
        let _ = value.setattr("code", code);
        let _ = value.setattr("location", location);
        err
    })
}

/// The exception for a container error.
pub fn container(e: ContainerError) -> PyErr {
    let message = e.to_string();
    match e {
        ContainerError::Io { source, path, .. } => os_error(&source, message, path.display().to_string()),
        ContainerError::Graph { report } => graph(&report, &message),
        ContainerError::HashMismatch { .. } | ContainerError::ChunkHashMismatch { .. } => {
            integrity(&message, mismatched_tensor(&e), e.location())
        }
        ContainerError::Verification(ref all) => {
            let first = all.first();
            let listed: Vec<String> = all.iter().map(ToString::to_string).collect();
            let message = format!("{} tensors failed verification:\n  {}", all.len(), listed.join("\n  "));
            integrity(&message, first.map_or("", mismatched_tensor), first.and_then(ContainerError::location))
        }
        other => coded(NnbError::new_err(message), other.code(), other.location()),
    }
}

/// The tensor a hash mismatch names (empty for any other error).
fn mismatched_tensor(e: &ContainerError) -> &str {
    match e {
        ContainerError::HashMismatch { tensor, .. } | ContainerError::ChunkHashMismatch { tensor, .. } => tensor,
        _ => "",
    }
}

/// `OSError(errno, message, filename)`, which Python turns into the matching
/// subclass (`FileNotFoundError`, `PermissionError`, ...).
fn os_error(source: &std::io::Error, message: String, path: String) -> PyErr {
    let errno = source.raw_os_error().unwrap_or(match source.kind() {
        std::io::ErrorKind::NotFound => 2,
        std::io::ErrorKind::PermissionDenied => 13,
        _ => 5,
    });
    PyOSError::new_err((errno, message, path))
}

fn integrity(message: &str, tensor: &str, location: Option<String>) -> PyErr {
    let err = coded(IntegrityError::new_err(message.to_owned()), "hash-mismatch", location);
    Python::attach(|py| {
        let _ = err.value(py).setattr("tensor", tensor);
    });
    err
}

/// A `ValidationError` listing every problem of `report`.
pub fn graph(report: &Report, message: &str) -> PyErr {
    let first = report.errors().next().or(report.problems.first());
    let err = coded(
        ValidationError::new_err(message.to_owned()),
        first.map_or("invalid-graph", |p| p.code.as_str()),
        first.map(|p| p.path.clone()),
    );
    Python::attach(|py| {
        let problems = PyList::empty(py);
        for p in &report.problems {
            let d = PyDict::new(py);
            let _ = d.set_item("severity", p.severity.to_string());
            let _ = d.set_item("code", p.code.as_str());
            let _ = d.set_item("location", &p.path);
            let _ = d.set_item("node", &p.node);
            let _ = d.set_item("message", &p.message);
            let _ = problems.append(d);
        }
        let _ = err.value(py).setattr("problems", problems);
    });
    err
}

/// The exception for a runtime error.
pub fn runtime(e: RuntimeError) -> PyErr {
    match e {
        RuntimeError::Container(e) => container(e),
        RuntimeError::Graph { ref report } => graph(report, &e.to_string()),
        other => coded(NnbError::new_err(other.to_string()), other.code(), other.location()),
    }
}

/// The exception for an ONNX import error.
pub fn import(e: ImportError) -> PyErr {
    match e {
        ImportError::Io { path, source } => os_error(&source, format!("read `{path}`: {source}"), path),
        ImportError::Graph(ref report) => graph(report, &e.to_string()),
        ImportError::Unsupported { .. } => coded(NnbError::new_err(e.to_string()), "unsupported-onnx", None),
        other => coded(NnbError::new_err(other.to_string()), "invalid-onnx", None),
    }
}

/// The exception for an ONNX export error.
pub fn export(e: BundleExportError) -> PyErr {
    match e {
        BundleExportError::Container(e) => container(e),
        BundleExportError::NoGraph => coded(NnbError::new_err(e.to_string()), "no-graph", None),
        other => coded(NnbError::new_err(other.to_string()), "unsupported-export", None),
    }
}
