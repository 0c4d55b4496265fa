"""Dynamic dimensions through `nnb import` and `nnb run`, against onnxruntime.

Usage: dynamic_shapes.py NNB_BINARY WORK_DIR

Builds, with onnx.helper, the shape arithmetic torch.onnx writes around
`view`/`reshape` on tensors with a dynamic batch and sequence length
(`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`, `Shape -> Slice`,
arithmetic on sizes), imports each model once with its dimensions left
dynamic, and runs the one bundle at several sizes: every output must match
onnxruntime's on the same inputs (1e-5 relative). Models whose target
shape moves more than one dynamic size must be refused with an error that
names `--input-shape` and the dynamic inputs, and import once pinned.

Prints one line per check and a closing line 'N passed, M failed'.
"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

TOLERANCE = 1e-5


def const(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def model(nodes, inits, inputs, outputs, opset=17):
    graph = helper.make_graph(nodes, "dynamic", inputs, outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    return m


def x_input(dims):
    return helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)


def y_output(rank):
    return helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"out{i}" for i in range(rank)])


def heads():
    """[batch, seq, 64] -> [batch, 4, seq, 16] -> [batch, seq, 64] through shapes read at run time."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["proj"]),
        helper.make_node("Shape", ["proj"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Gather", ["shape", "one"], ["seq"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"]),
        helper.make_node("Unsqueeze", ["seq", "axes0"], ["seq1"]),
        helper.make_node("Concat", ["batch1", "seq1", "split_heads"], ["target"], axis=0),
        helper.make_node("Reshape", ["proj", "target"], ["split"]),
        helper.make_node("Transpose", ["split"], ["per_head"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["per_head"], ["back"], perm=[0, 2, 1, 3]),
        # The merged width computed as 4 * 16 from constants, batch and seq from the shape.
        helper.make_node("Mul", ["four", "sixteen"], ["width"]),
        helper.make_node("Concat", ["batch1", "seq1", "width"], ["merged"], axis=0),
        helper.make_node("Reshape", ["back", "merged"], ["y"]),
    ]
    inits = [
        w,
        const("zero", 0),
        const("one", 1),
        const("axes0", [0]),
        const("split_heads", [4, 16]),
        const("four", [4]),
        const("sixteen", [16]),
    ]
    return model(nodes, inits, [x_input(["batch", "seq", 64])], [y_output(3)])


def flatten_batch():
    """Reshape(x, [Shape(x)[0:1], -1]): torch's `x.view(x.size(0), -1)`."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "starts", "ends"], ["lead"]),
        helper.make_node("Concat", ["lead", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [const("starts", [0]), const("ends", [1]), const("minus_one", [-1])]
    return model(nodes, inits, [x_input(["batch", 3, 5])], [y_output(2)])


def tokens_by_batch():
    """Reshape(x, [batch * seq, 8]): one size derived from two symbols becomes the -1."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Gather", ["shape", "one"], ["seq"], axis=0),
        helper.make_node("Mul", ["batch", "seq"], ["tokens"]),
        helper.make_node("Unsqueeze", ["tokens", "axes0"], ["tokens1"]),
        helper.make_node("Concat", ["tokens1", "eight"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [const("zero", 0), const("one", 1), const("axes0", [0]), const("eight", [8])]
    return model(nodes, inits, [x_input(["batch", "seq", 8])], [y_output(2)])


def swapped():
    """Reshape(x, [seq, batch, 8]): two dynamic sizes move, which no static Reshape says."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "swap"], ["seq_batch"], axis=0),
        helper.make_node("Concat", ["seq_batch", "eight"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [const("swap", [1, 0]), const("eight", [8])]
    return model(nodes, inits, [x_input(["batch", "seq", 8])], [y_output(3)])


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def check_runs(nnb, work, name, m, sizes, pins=()):
    """Imports `m` once, then runs it at each input shape in `sizes` against onnxruntime."""
    src, bundle = os.path.join(work, f"{name}.onnx"), os.path.join(work, f"{name}.nnb")
    onnx.save(m, src)
    done = run([nnb, "import", src, "-o", bundle, *pins])
    if done.returncode != 0:
        return f"`nnb import` exited {done.returncode}: {done.stderr.strip()[:1500]}"
    session = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for shape in sizes:
        x = rng.standard_normal(shape).astype(np.float32)
        path, out = os.path.join(work, f"{name}_x.npy"), os.path.join(work, f"{name}_out")
        np.save(path, x)
        done = run([nnb, "run", bundle, "--input", f"x={path}", "-o", out])
        if done.returncode != 0:
            return f"`nnb run` at {shape} exited {done.returncode}: {done.stderr.strip()[:1500]}"
        want = session.run(None, {"x": x})[0]
        got = np.load(os.path.join(out, "y.npy"))
        if got.shape != want.shape:
            return f"at {shape}: shape {list(got.shape)}, onnxruntime gives {list(want.shape)}"
        err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
        if err > TOLERANCE:
            return f"at {shape}: relative error {err:.2e}"
    return None


def main(nnb, work):
    os.makedirs(work, exist_ok=True)
    checks = []
    for name, m, sizes in [
        ("heads", heads(), [(1, 5, 64), (3, 17, 64)]),
        ("flatten_batch", flatten_batch(), [(1, 3, 5), (4, 3, 5)]),
        ("tokens_by_batch", tokens_by_batch(), [(2, 3, 8), (5, 1, 8)]),
    ]:
        checks.append((f"{name} runs at {len(sizes)} sizes from one import", check_runs(nnb, work, name, m, sizes)))

    src = os.path.join(work, "swapped.onnx")
    onnx.save(swapped(), src)
    done = run([nnb, "import", src, "-o", os.path.join(work, "swapped.nnb")])
    names_pin = done.returncode != 0 and "--input-shape" in done.stderr and "`x`" in done.stderr
    checks.append(
        (
            "swapped dynamic sizes are refused naming --input-shape and `x`",
            None if names_pin else f"exit {done.returncode}: {done.stderr.strip()[:1500]}",
        )
    )
    checks.append(
        (
            "swapped dynamic sizes import once pinned",
            check_runs(nnb, work, "swapped", swapped(), [(2, 3, 8)], ["--input-shape", "x=2,3,8"]),
        )
    )
    failures = 0
    for what, error in checks:
        if error is None:
            print(f"{what}: ok")
        else:
            failures += 1
            print(f"FAILED {what}: {error}")
    print(f"{len(checks) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
