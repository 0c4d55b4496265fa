"""Type stubs of the extension module (the Rust core); use the functions of `nnbundle`."""

from os import PathLike
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

__version__: str
FORMAT_VERSION: str

class NnbError(ValueError):
    """A bundle, a graph or an argument is invalid."""

    code: str
    location: Optional[str]

class IntegrityError(NnbError):
    """A tensor's bytes do not hash to the manifest's digest."""

    tensor: str

class ValidationError(NnbError):
    """A graph has problems; `problems` lists every one."""

    problems: List[Dict[str, Any]]

_Path = Union[str, PathLike[str]]
_TensorArg = Tuple[str, str, List[int], np.ndarray]

def write(
    tensors: List[_TensorArg],
    metadata: Optional[Dict[str, Any]] = None,
    graph: Optional[str] = None,
    path: Optional[_Path] = None,
    fsync: bool = True,
) -> Optional[bytes]:
    """Writes a bundle to `path` atomically, or returns its bytes."""

def open(path: Optional[_Path] = None, data: Optional[bytes] = None, verify: bool = True) -> Reader:
    """Opens a bundle from a path (memory-mapped) or from bytes."""

class Reader:
    """An open bundle."""

    def keys(self) -> List[str]: ...
    def info(self, name: str) -> Tuple[str, List[int]]: ...
    def tensor(self, name: str, verify: bool = True) -> np.ndarray: ...
    def load_all(self) -> List[_TensorArg]: ...
    def metadata(self) -> Dict[str, Any]: ...
    def graph_json(self) -> Optional[str]: ...
    def digest(self) -> str: ...
    def format_version(self) -> str: ...

class Model:
    """A model rebuilt from a bundle."""

    @staticmethod
    def load(path: _Path) -> Model: ...
    @property
    def inputs(self) -> List[str]: ...
    @property
    def outputs(self) -> List[str]: ...
    @property
    def input_info(self) -> List[Dict[str, Any]]: ...
    @property
    def output_info(self) -> List[Dict[str, Any]]: ...
    def run(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]: ...

def validate(path: _Path, verify_hashes: bool = True) -> str:
    """`nnb validate --json`'s report as JSON text."""

def import_onnx(
    src: _Path,
    dst: _Path,
    input_shapes: Dict[str, List[int]] = ...,
    input_values: Dict[str, str] = ...,
    outputs: Optional[List[str]] = None,
) -> Dict[str, str]:
    """Imports an ONNX model as a bundle."""

def export_onnx(src: _Path, dst: _Path) -> None:
    """Exports a bundle as ONNX."""
