"""nnbundle: self-describing neural network bundles.

A ``.nnb`` file is a zip archive holding a declarative layer graph (YAML, from
a closed vocabulary of ops: nothing in it can execute) and the weights as
``.npy`` entries, each SHA-256-hashed so corruption, truncation and tampering
are caught and named. From the file alone a model can be rebuilt and run.

Tensors, as safetensors users know them::

    import numpy as np, nnbundle
    nnbundle.save_file({"w": np.ones((2, 3), np.float32)}, "w.nnb", metadata={"epoch": 3})
    tensors = nnbundle.load_file("w.nnb")          # every hash checked
    with nnbundle.safe_open("w.nnb") as f:         # lazy: one tensor at a time
        w = f.get_tensor("w")

Models::

    nnbundle.pack(graph_yaml, state_dict, "mlp.nnb")   # architecture + weights, checked
    model = nnbundle.Model.load("mlp.nnb")
    y = model(x)                                       # or model.run({"x": x})
    report = nnbundle.validate("mlp.nnb")              # what `nnb validate --json` says

Errors: ``NnbError`` (a ``ValueError``, with ``.code`` and ``.location``),
``IntegrityError`` for hash mismatches (``.tensor`` names it),
``ValidationError`` for graph problems (``.problems`` lists them all);
file-system failures are ``OSError``.

Arrays read from a bundle are read-only views of the memory-mapped file (no
copy). bfloat16 tensors come back as ``ml_dtypes.bfloat16`` when ml_dtypes is
installed, else as their raw ``uint16`` bits.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np

from . import _native
from ._native import IntegrityError, NnbError, ValidationError

__all__ = [
    "FORMAT_VERSION",
    "IntegrityError",
    "Model",
    "NnbError",
    "TensorSlice",
    "ValidationError",
    "export_onnx",
    "import_onnx",
    "load",
    "load_file",
    "pack",
    "safe_open",
    "save",
    "save_file",
    "validate",
]

__version__: str = _native.__version__
#: The format version this package writes (readers accept every 1.x up to it).
FORMAT_VERSION: str = _native.FORMAT_VERSION

PathLike = Union[str, "os.PathLike[str]"]

# numpy dtype -> the format's dtype name. bf16 is added when ml_dtypes is importable.
_TO_FORMAT = {
    np.dtype(np.float16): "f16",
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.int8): "i8",
    np.dtype(np.int16): "i16",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
    np.dtype(np.uint8): "u8",
    np.dtype(np.bool_): "bool",
}
_FROM_FORMAT = {name: dtype for dtype, name in _TO_FORMAT.items()}


def _bfloat16() -> Optional[np.dtype]:
    """ml_dtypes' bfloat16, or None when ml_dtypes is not installed."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bf16":
        return _bfloat16() or np.dtype(np.uint16)
    return _FROM_FORMAT[name]


def _format_dtype(tensor: str, dtype: np.dtype) -> str:
    native = dtype.newbyteorder("=")
    if native in _TO_FORMAT:
        return _TO_FORMAT[native]
    bf16 = _bfloat16()
    if bf16 is not None and native == bf16:
        return "bf16"
    supported = ", ".join(sorted(str(d) for d in _TO_FORMAT)) + ", ml_dtypes.bfloat16"
    raise TypeError(f"tensor `{tensor}`: dtype {dtype} cannot be stored (the format stores {supported})")


def _array(dtype: str, shape: List[int], raw: np.ndarray) -> np.ndarray:
    """The array of a tensor from a read-only uint8 view of its bytes (no copy)."""
    return raw.view(_numpy_dtype(dtype)).reshape(shape)


def _tensor_args(tensors: Mapping[str, Any]) -> List[Tuple[str, str, List[int], np.ndarray]]:
    """(name, dtype, shape, C-order uint8 bytes) per tensor (the writer orders them by name)."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors: expected a dict of name -> numpy array, got a {type(tensors).__name__}")
    out = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor name {name!r} is not a str")
        array = np.asarray(value)
        dtype = _format_dtype(name, array.dtype)
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        out.append((name, dtype, list(array.shape), array.reshape(-1).view(np.uint8)))
    return out


def _path(path: PathLike) -> str:
    if isinstance(path, bytes):
        return os.fsdecode(path)
    return os.fspath(path)


def save_file(
    tensors: Mapping[str, np.ndarray],
    path: PathLike,
    metadata: Optional[Dict[str, Any]] = None,
    *,
    fsync: bool = True,
) -> None:
    """Saves named arrays as a bundle at ``path``, atomically.

    The file is written beside ``path``, flushed to disk and renamed over it:
    a crash leaves the old file or the new one, never a part. The bytes depend
    only on the content (not on dict order), so saving twice gives the same file.
    Arrays are hashed (in parallel) and written from their own memory, without
    a copy: do not modify them from another thread while the call runs.

    Args:
        tensors: name -> array. Any numpy layout is accepted (stored in C order);
            dtypes float16/32/64, int8/16/32/64, uint8, bool and ml_dtypes.bfloat16.
        path: where to write (``str`` or ``os.PathLike``).
        metadata: str-keyed values: str, int (64-bit), float (finite), bool, and
            lists and dicts of them. They come back with their types.
        fsync: wait until the file is on the storage device (the default). False
            still replaces ``path`` atomically for crashed processes, but not
            for a power loss; it is what safetensors' ``save_file`` does.

    Raises:
        NnbError: an invalid name (empty, with ``/``, a control character...) or metadata key.
        TypeError: an unsupported dtype, a non-str name or a non-metadata value.
        ValueError: a None or non-finite metadata value.
        OSError: the file cannot be written (nothing is left behind).
    """
    _native.write(_tensor_args(tensors), metadata, None, _path(path), fsync)


def save(tensors: Mapping[str, np.ndarray], metadata: Optional[Dict[str, Any]] = None) -> bytes:
    """The bytes of the bundle ``save_file`` would write for the same arguments."""
    return _native.write(_tensor_args(tensors), metadata, None, None)


def load_file(path: PathLike, verify: bool = True) -> Dict[str, np.ndarray]:
    """Every tensor of the bundle at ``path``, by name (aliases included).

    With ``verify`` (the default) every tensor's SHA-256 is checked, in
    parallel, before anything is returned. Arrays are read-only views of the
    memory-mapped file: no copy, and pages are read only as they are touched.

    Raises:
        IntegrityError: a tensor's bytes do not match its digest (``.tensor`` names it).
        NnbError: the file is not a valid bundle (``.code`` says why, ``.location`` where).
        OSError: the file cannot be opened.
    """
    return _all(_native.open(_path(path), None, verify))


def load(data: bytes, verify: bool = True) -> Dict[str, np.ndarray]:
    """Every tensor of a bundle held in memory (``bytes``), as ``load_file`` does."""
    return _all(_native.open(None, bytes(data), verify))


def _all(reader: Any) -> Dict[str, np.ndarray]:
    return {name: _array(dtype, shape, raw) for name, dtype, shape, raw in reader.load_all()}


class TensorSlice:
    """A tensor read lazily: index it like an array to read only what the index covers.

    ``f.get_slice("emb")[10:20]`` reads rows 10 to 19 and nothing else; ints,
    negative ints, slices, steps and Ellipsis work as in numpy. The result is a
    new (writable) array. Slices are not hash-checked (hashing reads the whole
    tensor): use ``get_tensor`` for verified data.
    """

    def __init__(self, reader: Any, name: str):
        self._reader, self._name = reader, name
        self._dtype, self._shape = reader.info(name)

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self._shape)

    @property
    def dtype(self) -> np.dtype:
        return _numpy_dtype(self._dtype)

    def get_shape(self) -> List[int]:
        """The tensor's shape (as safetensors' ``get_shape``)."""
        return list(self._shape)

    def get_dtype(self) -> str:
        """The tensor's dtype name in the format (``f32``, ``bf16``, ...)."""
        return self._dtype

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        view = _array(self._dtype, self._shape, self._reader.tensor(self._name, False))
        return np.array(view[index])

    def __repr__(self) -> str:
        return f"TensorSlice({self._name!r}, dtype={self._dtype}, shape={self._shape})"


class safe_open:
    """A bundle opened for lazy reads, as a context manager.

    Opening checks the container (entries, manifest, graph) but reads no
    tensor entry; ``get_tensor`` reads one tensor, checking its ``.npy`` header
    and, on first access, its hash (unless ``verify=False``)::

        with nnbundle.safe_open("model.nnb") as f:
            for name in f.keys():
                array = f.get_tensor(name)

    Args:
        path: the bundle (``str`` or ``os.PathLike``).
        framework: ``"np"`` (numpy; the only framework).
        verify: check each tensor's hash when it is first read.
    """

    def __init__(self, path: PathLike, framework: str = "np", verify: bool = True):
        if framework not in ("np", "numpy"):
            raise ValueError(f"framework {framework!r}: nnbundle returns numpy arrays (framework='np')")
        self._reader: Any = _native.open(_path(path), None, verify)

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Releases the bundle (arrays already read stay valid)."""
        self._reader = None

    def _open(self) -> Any:
        if self._reader is None:
            raise ValueError("the bundle is closed")
        return self._reader

    def keys(self) -> List[str]:
        """Every tensor name (aliases of tied weights included), sorted."""
        return self._open().keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __contains__(self, name: object) -> bool:
        return name in self.keys()

    def get_tensor(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a read-only array, its hash checked on first access.

        Raises:
            IntegrityError: the bytes do not match the manifest's digest.
            NnbError: no tensor of that name (code ``unknown-tensor``).
        """
        reader = self._open()
        dtype, shape = reader.info(name)
        return _array(dtype, shape, reader.tensor(name, True))

    def get_slice(self, name: str) -> TensorSlice:
        """Tensor ``name`` for lazy, partial reads (see ``TensorSlice``)."""
        return TensorSlice(self._open(), name)

    def metadata(self) -> Dict[str, Any]:
        """The bundle's metadata, with its types (int, float, bool, str, lists, dicts)."""
        return self._open().metadata()

    def graph(self) -> Optional[Dict[str, Any]]:
        """The layer graph as a dict in the graph schema, or None for weights only."""
        text = self._open().graph_json()
        return None if text is None else json.loads(text)

    def digest(self) -> str:
        """The bundle digest (hex SHA-256 of the canonical manifest), as ``nnb inspect`` shows it."""
        return self._open().digest()

    def format_version(self) -> str:
        """The format version the bundle declares."""
        return self._open().format_version()


class Model:
    """A model rebuilt from a bundle's graph and weights, run on numpy arrays.

    ``Model.load(path)`` verifies every weight first. ``run`` takes a dict of
    input arrays and returns a dict of output arrays; ``model(x)`` is the
    shorthand for one input and one output. Outputs are bit-identical to
    ``nnb run``. The GIL is released while the model computes.
    """

    def __init__(self, native: Any):
        self._native = native
        # Read once: run() and __call__ are per-batch paths, kept to a few dict operations.
        self._inputs: List[str] = native.inputs
        self._outputs: List[str] = native.outputs

    @classmethod
    def load(cls, path: PathLike) -> "Model":
        """Loads the model of the bundle at ``path`` (every weight hash checked).

        Raises:
            NnbError: the bundle has no graph (code ``no-graph``) or is invalid.
            ValidationError: the graph does not fit its weights.
            IntegrityError: a weight does not match its digest.
        """
        return cls(_native.Model.load(_path(path)))

    @property
    def inputs(self) -> List[str]:
        """Input names, in graph order."""
        return list(self._inputs)

    @property
    def outputs(self) -> List[str]:
        """Output names, in graph order."""
        return list(self._outputs)

    @property
    def input_info(self) -> List[Dict[str, Any]]:
        """``{"name", "dtype", "shape"}`` per input; shapes hold ints and symbol names (``"batch"``)."""
        return self._native.input_info

    @property
    def output_info(self) -> List[Dict[str, Any]]:
        """``{"name", "dtype", "shape"}`` per output, as shape inference gives them (None where unknown)."""
        return self._native.output_info

    def run(self, inputs: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        """Runs the model on named inputs; returns every output by name.

        Inputs must have the declared dtype (float32, float64, int32, int64 or
        bool) and shape; symbols (``batch``) take any size, consistently across inputs.

        Raises:
            NnbError: an unknown, missing or mis-shaped input (the message says what was expected).
        """
        if type(inputs) is not dict and not isinstance(inputs, Mapping):
            raise TypeError(f"inputs: expected a dict of name -> array, got a {type(inputs).__name__}")
        return self._native.run({name: np.asarray(x) for name, x in inputs.items()})

    def __call__(self, x: Any) -> np.ndarray:
        """``model(x)``: runs a model with one input and one output."""
        if len(self._inputs) != 1 or len(self._outputs) != 1:
            raise TypeError(
                f"model(x) needs one input and one output; this model has inputs {self._inputs} "
                f"and outputs {self._outputs}: use model.run({{name: array}})"
            )
        return self._native.run({self._inputs[0]: np.asarray(x)})[self._outputs[0]]

    def __repr__(self) -> str:
        return f"Model(inputs={self.input_info}, outputs={self.output_info})"


def _graph_text(graph: Union[str, "os.PathLike[str]", Mapping[str, Any]]) -> str:
    """YAML (or JSON) text of a graph given as text, a path or a dict."""
    if isinstance(graph, Mapping):
        return json.dumps(graph)
    if isinstance(graph, os.PathLike) or (
        isinstance(graph, str) and "\n" not in graph and (graph.endswith((".yaml", ".yml", ".json")) or os.path.isfile(graph))
    ):
        with open(graph, encoding="utf-8") as f:
            return f.read()
    if isinstance(graph, str):
        return graph
    raise TypeError(f"graph: expected YAML text, a path or a dict, got a {type(graph).__name__}")


def pack(
    graph: Union[str, "os.PathLike[str]", Mapping[str, Any]],
    tensors: Mapping[str, np.ndarray],
    path: PathLike,
    metadata: Optional[Dict[str, Any]] = None,
    *,
    fsync: bool = True,
) -> None:
    """Writes a model bundle: a layer graph and its weights, checked against each other.

    Gives the same bytes as ``nnb pack`` for the same graph, weights and metadata.

    Args:
        graph: the graph as YAML text, a path to a YAML file, or a dict in the graph schema.
        tensors: the weights (a numpy state dict), named as the graph's parameters.
        path: the bundle to write, atomically.
        metadata: as for ``save_file``.
        fsync: as for ``save_file``.

    Raises:
        ValidationError: the graph is invalid or does not fit the weights; ``.problems``
            lists every problem with its YAML path (``nodes[2].attrs.kernel_size``).
    """
    _native.write(_tensor_args(tensors), metadata, _graph_text(graph), _path(path), fsync)


def validate(path: PathLike, verify_hashes: bool = True) -> Dict[str, Any]:
    """The report ``nnb validate --json`` gives: never raises for an invalid bundle.

    ``report["valid"]`` is the verdict; ``report["problems"]`` lists each problem
    with ``severity``, ``code``, ``location`` and ``message``.
    """
    return json.loads(_native.validate(_path(path), verify_hashes))


def import_onnx(
    src: PathLike,
    dst: PathLike,
    input_shapes: Optional[Mapping[str, List[int]]] = None,
    input_values: Optional[Mapping[str, Any]] = None,
    outputs: Optional[List[str]] = None,
) -> Dict[str, str]:
    """Imports an ONNX model as a bundle, as ``nnb import`` does.

    Args:
        input_shapes: pins dynamic inputs (``{"input_ids": [1, 128]}``), as ``--input-shape``.
        input_values: pins scalar inputs to constants (``{"sr": 16000}``), as ``--input-value``.
        outputs: imports only these outputs, as ``--outputs``.

    Returns:
        The input and output names that are not graph names, as renamed (graph name -> ONNX name).
    """
    values = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (input_values or {}).items()}
    shapes = {k: [int(d) for d in dims] for k, dims in (input_shapes or {}).items()}
    return _native.import_onnx(_path(src), _path(dst), shapes, values, outputs)


def export_onnx(src: PathLike, dst: PathLike) -> None:
    """Exports a bundle's graph and weights as an ONNX model, as ``nnb export`` does."""
    _native.export_onnx(_path(src), _path(dst))
