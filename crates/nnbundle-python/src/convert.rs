//! Between Python objects and the Rust types: metadata values, tensors
//! (as raw bytes the Python layer views with a dtype), and runtime values.

use std::collections::BTreeMap;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayView1};
use nnbundle_format::{Buffer, ByteOwner, DType, MetaValue, Tensor};
use nnbundle_runtime::Value;
use numpy::{PyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// A metadata value from a Python object: `bool`, `int` (64-bit), `float`
/// (finite), `str`, and lists, tuples and `str`-keyed dicts of them; numpy
/// scalars by their `.item()`. `path` names the value in errors.
pub fn meta_from_py(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<MetaValue> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(MetaValue::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(MetaValue::Int).map_err(|_| {
            PyValueError::new_err(format!("metadata `{path}`: {obj} does not fit a signed 64-bit integer"))
        });
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        if !f.is_finite() {
            return Err(PyValueError::new_err(format!("metadata `{path}`: {f} is not a finite number")));
        }
        return Ok(MetaValue::Float(f));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(MetaValue::String(obj.extract()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return Ok(MetaValue::Map(meta_map(d, path)?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        return obj
            .try_iter()?
            .enumerate()
            .map(|(i, item)| meta_from_py(&item?, &format!("{path}[{i}]")))
            .collect::<PyResult<_>>()
            .map(MetaValue::List);
    }
    if obj.is_none() {
        return Err(PyValueError::new_err(format!(
            "metadata `{path}` is None: the format has no null, leave the key out instead"
        )));
    }
    // numpy scalars (np.int64, np.bool_, np.float32, 0-d arrays) convert through `.item()`.
    if obj.hasattr("item")? && obj.hasattr("dtype")? {
        let item = obj.call_method0("item")?;
        if !item.is(obj) {
            return meta_from_py(&item, path);
        }
    }
    Err(PyTypeError::new_err(format!(
        "metadata `{path}`: a {} is not a metadata value (str, int, float, bool, list or dict)",
        obj.get_type().name()?
    )))
}

/// A `str`-keyed dict of metadata values.
pub fn meta_map(d: &Bound<'_, PyDict>, path: &str) -> PyResult<BTreeMap<String, MetaValue>> {
    d.iter()
        .map(|(k, v)| {
            let key: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!("metadata `{path}`: key {k} is not a str", path = display_path(path)))
            })?;
            let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            Ok((key, meta_from_py(&v, &at)?))
        })
        .collect()
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "(top level)" } else { path }
}

/// The Python object of a metadata value (ints stay ints, whole floats stay floats).
pub fn meta_to_py<'py>(py: Python<'py>, value: &MetaValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        MetaValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        MetaValue::Int(i) => i.into_pyobject(py)?.into_any(),
        MetaValue::Float(f) => PyFloat::new(py, *f).into_any(),
        MetaValue::String(s) => PyString::new(py, s).into_any(),
        MetaValue::List(items) => {
            PyList::new(py, items.iter().map(|v| meta_to_py(py, v)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        MetaValue::Map(map) => meta_dict(py, map)?.into_any(),
    })
}

/// A dict of metadata values.
pub fn meta_dict<'py>(py: Python<'py>, map: &BTreeMap<String, MetaValue>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in map {
        d.set_item(k, meta_to_py(py, v)?)?;
    }
    Ok(d)
}

/// A dtype from its name in the format (`f32`, `bf16`, ...).
pub fn dtype(name: &str) -> PyResult<DType> {
    name.parse::<DType>().map_err(|_| PyTypeError::new_err(format!("`{name}` is not a dtype of the format")))
}

/// A tensor viewing the C-order bytes of an array (as `uint8`) in place.
///
/// The tensor borrows the array's memory: it and every clone of it must be
/// dropped before `bytes` is (the writer of one `write` call holds them, and
/// is dropped first).
pub fn lent_tensor(
    name: &str,
    dtype_name: &str,
    shape: Vec<usize>,
    bytes: &PyReadonlyArray1<'_, u8>,
) -> PyResult<Tensor> {
    let slice = bytes.as_slice().map_err(|e| PyValueError::new_err(format!("tensor `{name}`: {e}")))?;
    let lent: Arc<dyn ByteOwner> = Arc::new(Lent { ptr: slice.as_ptr(), len: slice.len() });
    let buffer = Buffer::from_owner(lent, 0..slice.len()).expect("the range is the whole slice");
    Tensor::from_bytes(dtype(dtype_name)?, shape, buffer)
        .map_err(|e| PyValueError::new_err(format!("tensor `{name}`: {e}")))
}

/// The memory of a numpy array, lent for the length of one call (see [`lent_tensor`]).
struct Lent {
    ptr: *const u8,
    len: usize,
}

// SAFETY: `Lent` only reads memory that stays valid and unchanged while it lives
// (see `bytes`), so sharing it across the hashing threads is sound.
#[allow(unsafe_code)]
unsafe impl Send for Lent {}
#[allow(unsafe_code)]
unsafe impl Sync for Lent {}

impl ByteOwner for Lent {
    #[allow(unsafe_code)]
    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is a C-contiguous numpy array's data, read-borrowed
        // (rust-numpy's borrow flag) by a `PyReadonlyArray1` that the caller keeps alive
        // until every `Lent` of it is dropped, so the memory is allocated and not written
        // by Rust code meanwhile; numpy writers in other threads are excluded by the
        // documented contract of `save_file` (do not modify arrays while saving).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Keeps the bytes of a tensor alive for as long as a numpy array views them.
#[pyclass(frozen, module = "nnbundle._native")]
pub struct Keep(Tensor);

/// A read-only `uint8` numpy array viewing a tensor's bytes without copying
/// (the memory-mapped file, for a bundle opened from a path).
#[allow(unsafe_code)]
pub fn bytes_view<'py>(py: Python<'py>, tensor: Tensor) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let keep = Bound::new(py, Keep(tensor))?;
    let bytes = keep.get().0.as_bytes();
    let view = ArrayView1::from(bytes);
    // SAFETY: the array borrows bytes owned by `keep`'s tensor (a reference-counted
    // buffer: a read-only memory map or an owned vector, never mutated or freed while
    // referenced), and `keep` becomes the array's base object, so the bytes outlive it.
    // The array is made read-only below, so numpy never writes through the view.
    let array = unsafe { PyArray1::borrow_from_array(&view, keep.clone().into_any()) };
    array.call_method1("setflags", (false,))?;
    Ok(array)
}

/// A runtime value from a numpy array of a dtype the runtime computes with.
pub fn value(name: &str, array: &Bound<'_, PyAny>) -> PyResult<Value> {
    // A copy taken under the GIL (no borrow registration needed): the model owns its inputs.
    fn owned<T: numpy::Element + Clone>(a: &Bound<'_, PyArrayDyn<T>>) -> ArrayD<T> {
        a.to_owned_array()
    }
    if let Ok(a) = array.cast::<PyArrayDyn<f32>>() {
        return Ok(Value::F32(owned(a)));
    }
    if let Ok(a) = array.cast::<PyArrayDyn<f64>>() {
        return Ok(Value::F64(owned(a)));
    }
    if let Ok(a) = array.cast::<PyArrayDyn<i64>>() {
        return Ok(Value::I64(owned(a)));
    }
    if let Ok(a) = array.cast::<PyArrayDyn<i32>>() {
        return Ok(Value::I32(owned(a)));
    }
    if let Ok(a) = array.cast::<PyArrayDyn<bool>>() {
        return Ok(Value::Bool(owned(a)));
    }
    let dtype = array.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| "?".into());
    Err(PyTypeError::new_err(format!(
        "input `{name}`: a {dtype} array; models compute with float32, float64, int32, int64 and bool"
    )))
}

/// A numpy array taking ownership of a runtime value (no copy).
pub fn value_to_py<'py>(py: Python<'py>, value: Value) -> Bound<'py, PyAny> {
    match value {
        Value::F32(a) => PyArray::from_owned_array(py, a).into_any(),
        Value::F64(a) => PyArray::from_owned_array(py, a).into_any(),
        Value::I32(a) => PyArray::from_owned_array(py, a).into_any(),
        Value::I64(a) => PyArray::from_owned_array(py, a).into_any(),
        Value::Bool(a) => PyArray::from_owned_array(py, a).into_any(),
    }
}

/// A shape as Python sees it: sizes as ints, symbols as strings, unknown sizes as None.
pub fn shape_to_py<'py>(py: Python<'py>, shape: &nnbundle_graph::Shape) -> PyResult<Bound<'py, PyList>> {
    let dims: Vec<Bound<'py, PyAny>> = shape
        .0
        .iter()
        .map(|d| match d {
            nnbundle_graph::Dim::Fixed(n) => n.into_pyobject(py).map(Bound::into_any).unwrap_or_else(|e| match e {}),
            nnbundle_graph::Dim::Symbol(s) => PyString::new(py, s).into_any(),
            nnbundle_graph::Dim::Unknown => py.None().into_bound(py),
        })
        .collect();
    PyList::new(py, dims)
}
