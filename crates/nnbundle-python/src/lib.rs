//! `nnbundle._native`: the Rust core of the `nnbundle` Python package.
//!
//! A thin PyO3 layer over the workspace crates. The public API, its
//! docstrings and the numpy dtype handling live in `python/nnbundle/`; this
//! module writes and opens bundles, hands out tensor bytes without copying,
//! validates, converts ONNX and runs models with the GIL released.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nnbundle_container::{Bundle, BundleWriter, Durability, OpenOptions, Verify};
use nnbundle_graph::Graph;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

mod convert;
mod errors;
mod model;

/// One tensor as the Python layer passes it: name, dtype name, shape, C-order bytes.
type TensorArg<'py> = (String, String, Vec<usize>, PyReadonlyArray1<'py, u8>);
/// One tensor as handed back: name, dtype name, shape, a read-only byte view.
type TensorOut<'py> = (String, String, Vec<u64>, Bound<'py, PyArray1<u8>>);

/// A graph from YAML (or JSON) text, every problem raised as one `ValidationError`.
fn parse_graph(text: &str) -> PyResult<Graph> {
    Graph::from_yaml(text.as_bytes())
        .map_err(|report| errors::graph(&report, &format!("the graph is invalid:\n{report}")))
}

/// Writes tensors (and a graph and metadata) to `path` atomically (synced to
/// disk unless `fsync` is false), or returns the bundle's bytes when `path` is None.
///
/// The arrays' memory is hashed and written where it is, without a copy; the
/// GIL is released meanwhile, so the arrays must not change until it returns.
#[pyfunction]
#[pyo3(signature = (tensors, metadata=None, graph=None, path=None, fsync=true))]
fn write<'py>(
    py: Python<'py>,
    tensors: Vec<TensorArg<'py>>,
    metadata: Option<Bound<'py, PyDict>>,
    graph: Option<&str>,
    path: Option<PathBuf>,
    fsync: bool,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let mut writer = BundleWriter::new();
    if let Some(text) = graph {
        writer.set_graph(parse_graph(text)?);
    }
    for (name, dtype, shape, bytes) in &tensors {
        let tensor = convert::lent_tensor(name, dtype, shape.clone(), bytes)?;
        writer.add_tensor(name.clone(), tensor).map_err(errors::container)?;
    }
    if let Some(metadata) = metadata {
        for (key, value) in convert::meta_map(&metadata, "")? {
            writer.set_metadata(key, value).map_err(errors::container)?;
        }
    }
    let durability = if fsync { Durability::Synced } else { Durability::Unsynced };
    let written = match path {
        Some(path) => py.detach(|| writer.save_with(&path, durability)).map(|_| None),
        None => py.detach(|| writer.to_bytes()).map(Some),
    };
    // The writer holds views of the arrays' memory: it goes before they are released.
    drop(writer);
    drop(tensors);
    Ok(written.map_err(errors::container)?.map(|bytes| PyBytes::new(py, &bytes)))
}

/// An open bundle: checked container, tensors read (and hashed) on demand.
#[pyclass(frozen, module = "nnbundle._native")]
struct Reader {
    bundle: Bundle,
}

#[pymethods]
impl Reader {
    /// Every tensor name (aliases included), sorted.
    fn keys(&self) -> Vec<String> {
        self.bundle.tensor_infos().iter().map(|i| i.name.to_owned()).collect()
    }

    /// A tensor's dtype name and shape, read from the manifest.
    fn info(&self, name: &str) -> PyResult<(String, Vec<u64>)> {
        let info = self.bundle.tensor_info(name).ok_or_else(|| {
            errors::container(nnbundle_container::ContainerError::UnknownTensor { name: name.into() })
        })?;
        Ok((info.dtype().to_string(), info.record.shape.clone()))
    }

    /// A tensor's bytes, hashed first unless the bundle was opened unverified
    /// or `verify` is false.
    #[pyo3(signature = (name, verify=true))]
    fn tensor<'py>(&self, py: Python<'py>, name: &str, verify: bool) -> PyResult<Bound<'py, PyArray1<u8>>> {
        let tensor = py
            .detach(|| if verify { self.bundle.tensor(name) } else { self.bundle.tensor_unverified(name) })
            .map_err(errors::container)?;
        convert::bytes_view(py, tensor)
    }

    /// Every tensor, all hashes checked in parallel first (unless opened unverified).
    fn load_all<'py>(&self, py: Python<'py>) -> PyResult<Vec<TensorOut<'py>>> {
        let all = py.detach(|| self.bundle.load_all()).map_err(errors::container)?;
        all.into_iter()
            .map(|(name, t)| {
                let (dtype, shape) = (t.dtype().to_string(), t.shape().iter().map(|&d| d as u64).collect());
                Ok((name, dtype, shape, convert::bytes_view(py, t)?))
            })
            .collect()
    }

    /// The manifest's metadata, typed.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        convert::meta_dict(py, &self.bundle.manifest().metadata)
    }

    /// The graph document as JSON text, or None for a bundle without a graph.
    fn graph_json(&self) -> PyResult<Option<String>> {
        let Some(yaml) = self.bundle.graph_yaml() else { return Ok(None) };
        let value: serde_json::Value = nnbundle_format::yaml::from_slice("graph.yaml", yaml)
            .map_err(|e| PyValueError::new_err(format!("graph.yaml: {e}")))?;
        Ok(Some(value.to_string()))
    }

    /// The bundle digest, hex.
    fn digest(&self) -> String {
        self.bundle.digest().to_hex()
    }

    /// The format version the manifest declares.
    fn format_version(&self) -> String {
        self.bundle.manifest().format_version.to_string()
    }
}

/// Opens a bundle from a path (memory-mapped) or from bytes; `verify` false
/// never checks hashes.
#[pyfunction]
#[pyo3(signature = (path=None, data=None, verify=true))]
fn open(py: Python<'_>, path: Option<PathBuf>, data: Option<&[u8]>, verify: bool) -> PyResult<Reader> {
    let verify = if verify { Verify::OnAccess } else { Verify::Never };
    let bundle = match (path, data) {
        (Some(path), None) => py.detach(|| Bundle::open_with(&path, OpenOptions { verify, ..Default::default() })),
        (None, Some(data)) => {
            let bytes = data.to_vec();
            py.detach(|| Bundle::from_bytes_with(bytes, verify))
        }
        _ => return Err(PyValueError::new_err("open: give a path or bytes")),
    }
    .map_err(errors::container)?;
    Ok(Reader { bundle })
}

/// `nnb validate --json`'s report of `path`, as JSON text (never raises for a bad bundle).
#[pyfunction]
#[pyo3(signature = (path, verify_hashes=true))]
fn validate(py: Python<'_>, path: PathBuf, verify_hashes: bool) -> PyResult<String> {
    let options = nnbundle_runtime::ValidateOptions { verify_hashes, run_samples: true, key: None };
    let report = py.detach(|| nnbundle_runtime::validate(&path, options));
    serde_json::to_string(&report).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Imports an ONNX model into a bundle, as `nnb import` does; returns the
/// input and output names it changed (graph name -> ONNX name).
#[pyfunction]
#[pyo3(signature = (src, dst, input_shapes=BTreeMap::new(), input_values=BTreeMap::new(), outputs=None))]
fn import_onnx(
    py: Python<'_>,
    src: PathBuf,
    dst: PathBuf,
    input_shapes: BTreeMap<String, Vec<u64>>,
    input_values: BTreeMap<String, String>,
    outputs: Option<Vec<String>>,
) -> PyResult<BTreeMap<String, String>> {
    let options = nnbundle_onnx::ImportOptions { input_shapes, input_values, outputs };
    py.detach(|| {
        let imported = nnbundle_onnx::import_file_with(&src, &options).map_err(errors::import)?;
        imported.to_writer().and_then(|w| w.save(&dst)).map_err(errors::container)?;
        Ok(imported.onnx_names)
    })
}

/// Exports a bundle's graph and weights as ONNX, as `nnb export` does.
#[pyfunction]
fn export_onnx(py: Python<'_>, src: PathBuf, dst: PathBuf) -> PyResult<()> {
    py.detach(|| {
        let bundle = Bundle::open(&src).map_err(errors::container)?;
        let model = nnbundle_onnx::export_bundle(&bundle).map_err(errors::export)?;
        nnbundle_onnx::save_model(&model, &dst).map_err(errors::container)
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<Reader>()?;
    m.add_class::<model::Model>()?;
    m.add_class::<convert::Keep>()?;
    m.add_function(wrap_pyfunction!(write, m)?)?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(import_onnx, m)?)?;
    m.add_function(wrap_pyfunction!(export_onnx, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FORMAT_VERSION", nnbundle_format::FormatVersion::CURRENT.to_string())?;
    Ok(())
}
