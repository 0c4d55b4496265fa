"""The `nnbundle` Python package against independent references: numpy
(values, forward passes), safetensors (the same tensors), the `nnb` CLI (the
same bytes, digests and reports), and Python's zipfile/hashlib (tampering).

Run with pytest; `nnb` is taken from $NNB, else target/release/nnb.
"""

import hashlib
import io
import json
import os
import pathlib
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

import nnbundle

ROOT = pathlib.Path(__file__).resolve().parents[2]
NNB = os.environ.get("NNB", str(ROOT / "target" / "release" / "nnb"))
MLP_YAML = (ROOT / "spec" / "examples" / "mlp.yaml").read_text()


def nnb(*args, check=True):
    done = subprocess.run([NNB, *map(str, args)], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"nnb {' '.join(map(str, args))} exited {done.returncode}: {done.stderr}")
    return done


def every_dtype(rng):
    import ml_dtypes

    return {
        "f16": rng.standard_normal((3, 5)).astype(np.float16),
        "bf16": rng.standard_normal((4,)).astype(ml_dtypes.bfloat16),
        "f32": rng.standard_normal((2, 3, 4)).astype(np.float32),
        "f64": rng.standard_normal((7,)),
        "i8": rng.integers(-128, 128, (9,), dtype=np.int8),
        "i16": rng.integers(-(2**15), 2**15, (3, 3), dtype=np.int16),
        "i32": rng.integers(-(2**31), 2**31, (5,), dtype=np.int32),
        "i64": np.array([-(2**63), 2**63 - 1, 0], dtype=np.int64),
        "u8": rng.integers(0, 256, (2, 2), dtype=np.uint8),
        "bool": rng.random((6,)) < 0.5,
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "größe.名前": np.arange(4, dtype=np.int32),
    }


def mlp_weights(rng):
    return {
        "hidden.weight": (rng.standard_normal((256, 20)) * 0.2).astype(np.float32),
        "hidden.bias": (rng.standard_normal(256) * 0.1).astype(np.float32),
        "output.weight": (rng.standard_normal((10, 256)) * 0.06).astype(np.float32),
        "output.bias": (rng.standard_normal(10) * 0.1).astype(np.float32),
    }


def tensor_data_offset(path, name):
    """Offset in the file of tensor `name`'s first data byte (after its .npy header)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"tensors/{name}.npy")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        f.seek(start + 8)
        header_len = int.from_bytes(f.read(2), "little")
    return start + 10 + header_len


# --- tensors -----------------------------------------------------------------


def test_every_dtype_round_trips_read_only_and_without_copies(tmp_path):
    tensors = every_dtype(np.random.default_rng(1))
    path = tmp_path / "all.nnb"
    nnbundle.save_file(tensors, path)
    loaded = nnbundle.load_file(path)
    assert sorted(loaded) == sorted(tensors)
    for name, want in tensors.items():
        got = loaded[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        assert got.tobytes() == want.tobytes(), name
        assert not got.flags.writeable and not got.flags.owndata, name
        with pytest.raises(ValueError):
            got[...] = 0
    # The bytes in the file are the array's own, so numpy reads them back unchanged.
    with zipfile.ZipFile(path) as z:
        stored = np.load(io.BytesIO(z.read("tensors/f64.npy")))
    assert np.array_equal(stored, tensors["f64"])


def test_bf16_without_ml_dtypes_comes_back_as_uint16_bits(tmp_path, monkeypatch):
    import ml_dtypes

    x = np.array([1.0, -2.5, 3.0e38], dtype=ml_dtypes.bfloat16)
    nnbundle.save_file({"x": x}, tmp_path / "b.nnb")
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    got = nnbundle.load_file(tmp_path / "b.nnb")["x"]
    assert got.dtype == np.uint16
    assert np.array_equal(got, x.view(np.uint16))


def test_non_contiguous_arrays_are_stored_in_c_order(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    tensors = {"t": base.T, "strided": base[::2, ::3], "fortran": np.asfortranarray(base), "be": base.astype(">f4")}
    nnbundle.save_file(tensors, tmp_path / "n.nnb")
    loaded = nnbundle.load_file(tmp_path / "n.nnb")
    for name, want in tensors.items():
        assert np.array_equal(loaded[name], want), name
        assert loaded[name].flags.c_contiguous
    assert loaded["be"].dtype == np.float32


def test_save_bytes_equal_the_file_whatever_the_dict_order(tmp_path):
    tensors = every_dtype(np.random.default_rng(2))
    metadata = {"epoch": 3, "author": "ada"}
    nnbundle.save_file(tensors, str(tmp_path / "a.nnb"), metadata=metadata)
    reordered = dict(reversed(list(tensors.items())))
    assert nnbundle.save(reordered, metadata=dict(reversed(list(metadata.items())))) == (tmp_path / "a.nnb").read_bytes()
    assert nnbundle.load(nnbundle.save(tensors))["i64"].tolist() == tensors["i64"].tolist()


def test_metadata_keeps_its_types(tmp_path):
    metadata = {
        "int_min": -(2**63),
        "int_max": 2**63 - 1,
        "whole_float": 2.0,
        "float": 0.1,
        "yes": True,
        "no": False,
        "text": "ünïcode",
        "empty_list": [],
        "empty_map": {},
        "nested": {"layers": [1, 2.5, "x", [True]], "inner": {"k": -1}},
        "numpy_scalar": np.int64(7),
    }
    nnbundle.save_file({"x": np.zeros(1, np.float32)}, tmp_path / "m.nnb", metadata=metadata)
    with nnbundle.safe_open(tmp_path / "m.nnb") as f:
        got = f.metadata()
    assert got == {**metadata, "numpy_scalar": 7}
    for key in ("int_min", "whole_float", "yes", "empty_list", "empty_map"):
        assert type(got[key]) is type(metadata[key]), key


@pytest.mark.parametrize(
    "metadata, error, words",
    [
        ({"k": None}, ValueError, "`k` is None"),
        ({"k": float("nan")}, ValueError, "not a finite"),
        ({"k": {"inner": float("inf")}}, ValueError, "`k.inner`"),
        ({"k": 2**63}, ValueError, "64-bit"),
        ({"k": 1j}, TypeError, "complex"),
        ({"k": object()}, TypeError, "object"),
    ],
)
def test_bad_metadata_is_refused_and_writes_nothing(tmp_path, metadata, error, words):
    with pytest.raises(error, match=words):
        nnbundle.save_file({"x": np.zeros(1, np.float32)}, tmp_path / "m.nnb", metadata=metadata)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "tensors, error, words",
    [
        ({"a/b": np.zeros(1)}, ValueError, "a/b"),
        ({"": np.zeros(1)}, ValueError, "empty"),
        ({"tab\there": np.zeros(1)}, ValueError, "control"),
        ({"c": np.zeros(2, np.complex64)}, TypeError, "complex64"),
        ({"o": np.array([object()])}, TypeError, "object"),
        ({"u": np.zeros(2, np.uint32)}, TypeError, "uint32"),
        ({3: np.zeros(1)}, TypeError, "not a str"),
    ],
)
def test_bad_tensors_are_refused_and_leave_no_file(tmp_path, tensors, error, words):
    good = tmp_path / "keep.nnb"
    nnbundle.save_file({"x": np.ones(3, np.float32)}, good)
    before = good.read_bytes()
    with pytest.raises(error, match=words):
        nnbundle.save_file(tensors, good)
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.nnb"]


def test_errors_are_typed_with_codes_and_locations(tmp_path):
    with pytest.raises(FileNotFoundError):
        nnbundle.load_file(tmp_path / "missing.nnb")
    (tmp_path / "junk.nnb").write_bytes(b"not a zip at all")
    with pytest.raises(nnbundle.NnbError) as e:
        nnbundle.load_file(tmp_path / "junk.nnb")
    assert e.value.code == "not-a-zip" and isinstance(e.value, ValueError)
    nnbundle.save_file({"x": np.ones(3, np.float32)}, tmp_path / "x.nnb")
    with nnbundle.safe_open(tmp_path / "x.nnb") as f, pytest.raises(nnbundle.NnbError) as e:
        f.get_tensor("y")
    assert e.value.code == "unknown-tensor" and e.value.location == "tensors.y"
    assert issubclass(nnbundle.IntegrityError, nnbundle.NnbError)
    assert issubclass(nnbundle.ValidationError, nnbundle.NnbError)


def test_tampering_raises_integrity_error_naming_the_tensor(tmp_path):
    path = tmp_path / "t.nnb"
    good = np.arange(1000, dtype=np.float32)
    nnbundle.save_file({"good": good, "victim": np.ones(1000, np.float32)}, path)
    data = bytearray(path.read_bytes())
    data[tensor_data_offset(path, "victim") + 17] ^= 0x01
    path.write_bytes(bytes(data))

    for load in (lambda: nnbundle.load_file(path), lambda: nnbundle.load(bytes(data))):
        with pytest.raises(nnbundle.IntegrityError, match="victim") as e:
            load()
        assert e.value.tensor == "victim" and e.value.code == "hash-mismatch"
        assert e.value.location == "tensors.victim"
    with nnbundle.safe_open(path) as f:
        assert np.array_equal(f.get_tensor("good"), good)
        with pytest.raises(nnbundle.IntegrityError, match="victim"):
            f.get_tensor("victim")
    stored = nnbundle.load_file(path, verify=False)["victim"]
    assert np.count_nonzero(stored != 1.0) == 1
    assert np.array_equal(nnbundle.load(bytes(data), verify=False)["victim"], stored)
    with nnbundle.safe_open(path, verify=False) as f:
        assert np.array_equal(f.get_tensor("victim"), stored)


def test_safe_open_is_lazy_and_slices_like_numpy(tmp_path):
    x = np.arange(4 * 5 * 6, dtype=np.int64).reshape(4, 5, 6)
    nnbundle.save_file({"x": x, "s": np.array(9, np.int32)}, tmp_path / "s.nnb", metadata={"m": 1})
    with nnbundle.safe_open(tmp_path / "s.nnb", framework="np") as f:
        assert f.keys() == ["s", "x"] and "x" in f
        assert f.graph() is None and f.metadata() == {"m": 1}
        s = f.get_slice("x")
        assert s.get_shape() == [4, 5, 6] and s.get_dtype() == "i64" and len(s) == 4
        for index in (1, -1, slice(1, 3), (slice(None), 2), (Ellipsis, -2), (slice(None, None, 2), slice(4, 0, -2)), ()):
            assert np.array_equal(s[index], x[index]), index
        assert f.get_tensor("s").shape == ()
    with pytest.raises(ValueError, match="framework"):
        nnbundle.safe_open(tmp_path / "s.nnb", framework="pt")


# --- with nnb and safetensors -------------------------------------------------


def test_python_bundles_are_what_nnb_reads_and_nnb_bundles_what_python_reads(tmp_path):
    tensors = every_dtype(np.random.default_rng(3))
    nnbundle.save_file(tensors, tmp_path / "py.nnb", metadata={"from": "python"})
    report = json.loads(nnb("validate", "--json", tmp_path / "py.nnb").stdout)
    assert report["valid"], report
    inspected = json.loads(nnb("inspect", "--json", tmp_path / "py.nnb").stdout)
    with nnbundle.safe_open(tmp_path / "py.nnb") as f:
        assert f.digest() == inspected["bundle_digest"]
    nnb("unpack", tmp_path / "py.nnb", "-o", tmp_path / "out")
    from safetensors.numpy import load_file as st_load

    unpacked = st_load(str(tmp_path / "out" / "weights.safetensors"))
    for name in ("f32", "i64", "u8", "scalar", "größe.名前"):
        assert np.array_equal(unpacked[name], tensors[name]), name


def test_load_file_equals_safetensors_after_nnb_pack(tmp_path):
    from safetensors.numpy import load_file as st_load
    from safetensors.numpy import save_file as st_save

    weights = mlp_weights(np.random.default_rng(4))
    st_save(weights, str(tmp_path / "w.safetensors"))
    (tmp_path / "mlp.yaml").write_text(MLP_YAML)
    nnb("pack", tmp_path / "mlp.yaml", tmp_path / "w.safetensors", "-o", tmp_path / "mlp.nnb")
    ours, theirs = nnbundle.load_file(tmp_path / "mlp.nnb"), st_load(str(tmp_path / "w.safetensors"))
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name].dtype == theirs[name].dtype and np.array_equal(ours[name], theirs[name]), name


def test_pack_writes_the_bytes_nnb_pack_writes_from_text_path_and_dict(tmp_path):
    import yaml

    rng = np.random.default_rng(5)
    # A weight over 16 MiB gets a chunk digest: both writers must give it the same one.
    graph = {
        "opset": 1,
        "inputs": [{"name": "x", "dtype": "f32", "shape": ["batch", 4400]}],
        "sequential": [{"name": "big", "op": "Linear", "attrs": {"in_features": 4400, "out_features": 1000}}],
    }
    weights = {"big.weight": rng.standard_normal((1000, 4400)).astype(np.float32), "big.bias": np.zeros(1000, np.float32)}
    text = yaml.safe_dump(graph)
    (tmp_path / "g.yaml").write_text(text)
    np.savez(tmp_path / "w.npz", **weights)
    nnb("pack", tmp_path / "g.yaml", tmp_path / "w.npz", "-o", tmp_path / "cli.nnb", "--meta", "epochs=10", "--meta", "lr=0.5")
    want = (tmp_path / "cli.nnb").read_bytes()
    for i, g in enumerate((text, str(tmp_path / "g.yaml"), tmp_path / "g.yaml", graph)):
        out = tmp_path / f"py{i}.nnb"
        nnbundle.pack(g, weights, out, metadata={"lr": 0.5, "epochs": 10})
        assert out.read_bytes() == want, type(g)
    with nnbundle.safe_open(tmp_path / "py0.nnb") as f:
        assert [n["op"] for n in f.graph()["nodes"]] == ["Linear"]


def test_pack_names_every_graph_problem_and_writes_nothing(tmp_path):
    weights = mlp_weights(np.random.default_rng(6))
    bad = MLP_YAML.replace("op: ReLU", "op: Swishy")
    with pytest.raises(nnbundle.ValidationError, match="Swishy") as e:
        nnbundle.pack(bad, weights, tmp_path / "bad.nnb")
    assert e.value.code == "unknown-op" and e.value.location == "sequential[1].op"
    assert any(p["code"] == "unknown-op" for p in e.value.problems)
    del weights["output.bias"]
    with pytest.raises(nnbundle.ValidationError) as e:
        nnbundle.pack(MLP_YAML, weights, tmp_path / "bad.nnb")
    assert e.value.code == "missing-parameter" and "output.bias" in str(e.value)
    assert list(tmp_path.iterdir()) == []


# --- models --------------------------------------------------------------------


def test_packed_mlp_runs_and_matches_numpy_and_nnb_run(tmp_path):
    rng = np.random.default_rng(7)
    weights = mlp_weights(rng)
    nnbundle.pack(MLP_YAML, weights, tmp_path / "mlp.nnb", metadata={"task": "textbook"})
    model = nnbundle.Model.load(tmp_path / "mlp.nnb")
    assert model.inputs == ["X"] and len(model.outputs) == 1
    assert model.input_info == [{"name": "X", "dtype": "f32", "shape": ["batch", 20]}]
    assert model.output_info[0]["shape"] == ["batch", 10]
    x = rng.standard_normal((5, 20)).astype(np.float32)
    y = model(x)
    hidden = np.maximum(x.astype(np.float64) @ weights["hidden.weight"].T + weights["hidden.bias"], 0)
    reference = hidden @ weights["output.weight"].T + weights["output.bias"]
    assert y.dtype == np.float32 and y.shape == (5, 10)
    assert np.abs(y - reference).max() <= 1e-5 * np.abs(reference).max()
    np.save(tmp_path / "x.npy", x)
    nnb("run", tmp_path / "mlp.nnb", "--input", f"X={tmp_path / 'x.npy'}", "-o", tmp_path / "out")
    cli = np.load(tmp_path / "out" / f"{model.outputs[0]}.npy")
    assert y.tobytes() == cli.tobytes()
    assert model.run({"X": x})[model.outputs[0]].tobytes() == y.tobytes()


def test_model_errors_say_what_was_expected(tmp_path):
    nnbundle.pack(MLP_YAML, mlp_weights(np.random.default_rng(8)), tmp_path / "mlp.nnb")
    model = nnbundle.Model.load(tmp_path / "mlp.nnb")
    with pytest.raises(nnbundle.NnbError, match=r"f32 \[batch, 20\]"):
        model(np.zeros((2, 21), np.float32))
    with pytest.raises(nnbundle.NnbError, match="X"):
        model.run({"Y": np.zeros((2, 20), np.float32)})
    with pytest.raises(TypeError, match="complex"):
        model(np.zeros((2, 20), np.complex64))
    nnbundle.save_file({"x": np.zeros(1, np.float32)}, tmp_path / "weights_only.nnb")
    with pytest.raises(nnbundle.NnbError) as e:
        nnbundle.Model.load(tmp_path / "weights_only.nnb")
    assert e.value.code == "no-graph"


def test_model_runs_in_threads_at_once(tmp_path):
    rng = np.random.default_rng(9)
    nnbundle.pack(MLP_YAML, mlp_weights(rng), tmp_path / "mlp.nnb")
    model = nnbundle.Model.load(tmp_path / "mlp.nnb")
    xs = [rng.standard_normal((64, 20)).astype(np.float32) for _ in range(4)]
    want = [model(x) for x in xs]
    got = [None] * 4

    def work(i):
        for _ in range(20):
            got[i] = model(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_validate_gives_the_report_of_nnb_validate_json(tmp_path):
    nnbundle.pack(MLP_YAML, mlp_weights(np.random.default_rng(10)), tmp_path / "mlp.nnb")
    ours = nnbundle.validate(tmp_path / "mlp.nnb")
    theirs = json.loads(nnb("validate", "--json", tmp_path / "mlp.nnb").stdout)
    ours.pop("file"), theirs.pop("file")
    assert ours == theirs and ours["valid"]
    data = bytearray((tmp_path / "mlp.nnb").read_bytes())
    data[tensor_data_offset(tmp_path / "mlp.nnb", "hidden.weight")] ^= 0x40
    (tmp_path / "mlp.nnb").write_bytes(bytes(data))
    ours = nnbundle.validate(tmp_path / "mlp.nnb")
    theirs = json.loads(nnb("validate", "--json", tmp_path / "mlp.nnb", check=False).stdout)
    ours.pop("file"), theirs.pop("file")
    assert ours == theirs and not ours["valid"]
    assert [p["code"] for p in ours["problems"]] == ["hash-mismatch"]


def test_onnx_import_and_export_give_what_nnb_gives(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    renamed = nnbundle.import_onnx(tmp_path / "m.onnx", tmp_path / "py.nnb")
    nnb("import", tmp_path / "m.onnx", "-o", tmp_path / "cli.nnb")
    assert renamed == {}
    assert (tmp_path / "py.nnb").read_bytes() == (tmp_path / "cli.nnb").read_bytes()
    nnbundle.export_onnx(tmp_path / "py.nnb", tmp_path / "py.onnx")
    nnb("export", tmp_path / "cli.nnb", "-o", tmp_path / "cli.onnx")
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    x = rng.standard_normal((3, 4)).astype(np.float32)
    assert np.allclose(nnbundle.Model.load(tmp_path / "py.nnb")(x), np.maximum(x @ w.T, 0), rtol=1e-6, atol=1e-6)
    with pytest.raises(nnbundle.NnbError):
        nnbundle.import_onnx(tmp_path / "py.nnb", tmp_path / "x.nnb")
    assert not (tmp_path / "x.nnb").exists()


def test_help_documents_every_public_name():
    for name in nnbundle.__all__:
        obj = getattr(nnbundle, name)
        if callable(obj):
            assert obj.__doc__ and len(obj.__doc__) > 30, name
    assert "safe_open" in nnbundle.__doc__


def test_hashes_are_the_sha256_of_the_npy_data(tmp_path):
    x = np.arange(10, dtype=np.float32)
    nnbundle.save_file({"x": x}, tmp_path / "h.nnb")
    with zipfile.ZipFile(tmp_path / "h.nnb") as z:
        manifest = z.read("manifest.yaml").decode()
    assert hashlib.sha256(x.tobytes()).hexdigest() in manifest
