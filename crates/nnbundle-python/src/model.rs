//! `Model`: a bundle's graph rebuilt and run on numpy arrays.

use std::path::PathBuf;

use nnbundle_container::Bundle;
use nnbundle_graph::{Shape, ValueInfo};
use nnbundle_runtime::Value;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::{convert, errors};

/// A model loaded from a bundle, every weight hash checked.
#[pyclass(frozen, module = "nnbundle._native")]
pub struct Model {
    model: nnbundle_runtime::Model,
    /// Name, dtype and shape of each input, in graph order.
    inputs: Vec<(String, ValueInfo)>,
    /// Name, dtype and (inferred) shape of each output, in graph order.
    outputs: Vec<(String, ValueInfo)>,
}

/// `{"name", "dtype", "shape"}` for each value.
fn infos<'py>(py: Python<'py>, values: &[(String, ValueInfo)]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for (name, info) in values {
        let d = PyDict::new(py);
        d.set_item("name", name)?;
        d.set_item("dtype", info.dtype.to_string())?;
        d.set_item("shape", convert::shape_to_py(py, &info.shape)?)?;
        list.append(d)?;
    }
    Ok(list)
}

#[pymethods]
impl Model {
    /// Opens the bundle at `path`, verifies every weight and rebuilds its model.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
        py.detach(|| {
            let bundle = Bundle::open(&path).map_err(errors::container)?;
            let model = nnbundle_runtime::Model::from_bundle(&bundle).map_err(errors::runtime)?;
            let values = model.graph().check(Some(&bundle.params_table())).values;
            let graph = model.graph();
            let inputs =
                graph.inputs().iter().map(|i| (i.name.clone(), ValueInfo::new(i.dtype, i.shape.clone()))).collect();
            let unknown = |name: &String| {
                let fallback = ValueInfo::new(nnbundle_format::DType::F32, Shape(Vec::new()));
                (name.clone(), values.get(name).cloned().unwrap_or(fallback))
            };
            let outputs = graph.outputs().iter().map(unknown).collect();
            Ok(Model { model, inputs, outputs })
        })
    }

    /// Input names, in graph order.
    #[getter]
    fn inputs(&self) -> Vec<String> {
        self.inputs.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Output names, in graph order.
    #[getter]
    fn outputs(&self) -> Vec<String> {
        self.outputs.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Name, dtype and shape (ints, symbol names, None when unknown) of each input.
    #[getter]
    fn input_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        infos(py, &self.inputs)
    }

    /// Name, dtype and inferred shape of each output.
    #[getter]
    fn output_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        infos(py, &self.outputs)
    }

    /// Runs the model on named arrays (the GIL released while it computes);
    /// returns a dict of each output by name, in graph order.
    fn run<'py>(&self, py: Python<'py>, inputs: Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
        let values: Vec<(String, Value)> = inputs
            .iter()
            .map(|(k, v)| {
                let name: String = k.extract()?;
                let value = convert::value(&name, &v)?;
                Ok((name, value))
            })
            .collect::<PyResult<_>>()?;
        let mut outputs = py.detach(|| self.model.run(values)).map_err(errors::runtime)?;
        let dict = PyDict::new(py);
        for (name, _) in &self.outputs {
            if let Some(v) = outputs.remove(name) {
                dict.set_item(name, convert::value_to_py(py, v))?;
            }
        }
        Ok(dict)
    }
}
