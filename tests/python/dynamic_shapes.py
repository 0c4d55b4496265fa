"""Dynamic dimensions through `nnb import` and `nnb run`, against onnxruntime.

Usage: dynamic_shapes.py NNB_BINARY WORK_DIR

Builds, with onnx.helper, the shape arithmetic torch.onnx writes around
`view`/`reshape` on tensors with a dynamic batch and sequence length
(`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`, `Shape -> Slice`,
arithmetic on sizes), imports each model once with its dimensions left
dynamic, and runs the one bundle at several sizes: every output must match
onnxruntime's on the same inputs (1e-5 relative). Models whose target
shape moves more than one dynamic size must be refused with an error that
names `--input-shape` and the dynamic inputs, and import once pinned. A
two-layer BERT-style encoder written as torch.onnx exports BertModel
imports pinned and matches onnxruntime (1e-4 relative) on a padded batch.

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


def bert_like():
    """A two-layer BERT-style encoder written as torch.onnx exports HF's BertModel (opset 17).

    Word and position embeddings (Gather from constant tables; the position
    ids sliced from a constant buffer up to the sequence length read from
    Shape), LayerNormalization, the attention mask as Unsqueeze/Cast/Sub/Mul,
    attention heads split and merged by Reshapes whose targets come from
    Shape/Gather/Concat, Softmax, GELU as Div/Erf/Add/Mul/Mul, and a pooler
    (Gather of the first token, Gemm, Tanh). Random weights of trained scale.
    """
    rng = np.random.default_rng(3)
    hidden, heads, inter, vocab, positions = 32, 4, 64, 50, 64
    inits, nodes = [], []

    def weight(name, shape, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[0])
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    for name, values in [("zero", 0), ("one", 1), ("axes0", [0]), ("axes12", [1, 2]), ("pos_start", [0]),
                         ("pos_axis", [1]), ("heads_dims", [heads, hidden // heads]), ("width", [hidden])]:
        inits.append(const(name, values))
    inits.append(numpy_helper.from_array(np.arange(positions, dtype=np.int64)[None], "position_ids"))
    for name, value in [("one_f", 1.0), ("min_f", float(np.finfo(np.float32).min)),
                        ("sqrt_d", float(np.sqrt(hidden // heads))), ("sqrt2", float(np.sqrt(2.0))), ("half", 0.5)]:
        inits.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))

    def layer_norm(x, prefix):
        g = weight(f"{prefix}.weight", [hidden], 0.1)
        b = weight(f"{prefix}.bias", [hidden], 0.1)
        return node("LayerNormalization", [x, g, b], f"{prefix}.out", axis=-1, epsilon=1e-12)

    def linear(x, prefix, n_in, n_out):
        w = weight(f"{prefix}.weight_t", [n_in, n_out])
        b = weight(f"{prefix}.bias", [n_out], 0.1)
        return node("Add", [node("MatMul", [x, w], f"{prefix}.mm"), b], f"{prefix}.out")

    # Embeddings.
    words = node("Gather", [weight("word_embeddings", [vocab, hidden], 1.0), "input_ids"], "words")
    seq = node("Gather", [node("Shape", ["input_ids"], "ids_shape"), "one"], "seq", axis=0)
    ends = node("Unsqueeze", [seq, "axes0"], "seq1")
    pos = node("Slice", ["position_ids", "pos_start", ends, "pos_axis"], "pos")
    where = node("Gather", [weight("position_embeddings", [positions, hidden], 1.0), pos], "where")
    h = layer_norm(node("Add", [words, where], "embedded"), "embeddings.LayerNorm")
    # The additive mask: (1 - mask) * min over [batch, 1, 1, seq].
    mask = node("Cast", [node("Unsqueeze", ["attention_mask", "axes12"], "mask4")], "maskf", to=TensorProto.FLOAT)
    big = node("Mul", [node("Sub", ["one_f", mask], "inverted"), "min_f"], "additive_mask")
    for i in range(2):
        p = f"encoder.layer.{i}"
        shape = node("Shape", [h], f"{p}.shape")
        batch = node("Unsqueeze", [node("Gather", [shape, "zero"], f"{p}.b", axis=0), "axes0"], f"{p}.b1")
        length = node("Unsqueeze", [node("Gather", [shape, "one"], f"{p}.s", axis=0), "axes0"], f"{p}.s1")
        split = node("Concat", [batch, length, "heads_dims"], f"{p}.split", axis=0)
        merge = node("Concat", [batch, length, "width"], f"{p}.merge", axis=0)
        q, k, v = (linear(h, f"{p}.attention.{n}", hidden, hidden) for n in ("query", "key", "value"))
        qh = node("Transpose", [node("Reshape", [q, split], f"{p}.q4")], f"{p}.qh", perm=[0, 2, 1, 3])
        kh = node("Transpose", [node("Reshape", [k, split], f"{p}.k4")], f"{p}.kh", perm=[0, 2, 3, 1])
        vh = node("Transpose", [node("Reshape", [v, split], f"{p}.v4")], f"{p}.vh", perm=[0, 2, 1, 3])
        scores = node("Div", [node("MatMul", [qh, kh], f"{p}.qk"), "sqrt_d"], f"{p}.scaled")
        probs = node("Softmax", [node("Add", [scores, big], f"{p}.masked")], f"{p}.probs", axis=-1)
        context = node("Transpose", [node("MatMul", [probs, vh], f"{p}.ctx4")], f"{p}.ctx", perm=[0, 2, 1, 3])
        attended = linear(node("Reshape", [context, merge], f"{p}.ctx3"), f"{p}.attention.output", hidden, hidden)
        h = layer_norm(node("Add", [attended, h], f"{p}.res1"), f"{p}.attention.LayerNorm")
        up = linear(h, f"{p}.intermediate", hidden, inter)
        erf = node("Erf", [node("Div", [up, "sqrt2"], f"{p}.gelu.scaled")], f"{p}.gelu.erf")
        gelu = node("Mul", [node("Mul", [up, node("Add", [erf, "one_f"], f"{p}.gelu.plus")], f"{p}.gelu.mul"), "half"], f"{p}.gelu")
        down = linear(gelu, f"{p}.output", inter, hidden)
        h = layer_norm(node("Add", [down, h], f"{p}.res2"), f"{p}.output.LayerNorm")
    node("Identity", [h], "last_hidden_state")
    first = node("Gather", [h, "zero"], "first_token", axis=1)
    dense = node("Gemm", [first, weight("pooler.weight", [hidden, hidden]), weight("pooler.bias", [hidden], 0.1)],
                 "pooled", transB=1)
    node("Tanh", [dense], "pooler_output")
    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask")]
    outs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden]),
            helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch", hidden])]
    return model(nodes, inits, ids, outs)


def check_bert(nnb, work):
    """The BERT-style encoder at a pinned shape, against onnxruntime, with a padded sequence."""
    src, bundle, out = (os.path.join(work, f) for f in ("bert.onnx", "bert.nnb", "bert_out"))
    onnx.save(bert_like(), src)
    pins = ["--input-shape", "input_ids=2,7", "--input-shape", "attention_mask=2,7"]
    done = run([nnb, "import", src, "-o", bundle, *pins])
    if done.returncode != 0:
        return f"`nnb import` exited {done.returncode}: {done.stderr.strip()[:1500]}"
    rng = np.random.default_rng(5)
    feeds = {"input_ids": rng.integers(0, 50, (2, 7)).astype(np.int64),
             "attention_mask": np.array([[1] * 7, [1] * 4 + [0] * 3], dtype=np.int64)}
    args = []
    for name, x in feeds.items():
        path = os.path.join(work, f"bert_{name}.npy")
        np.save(path, x)
        args += ["--input", f"{name}={path}"]
    done = run([nnb, "run", bundle, *args, "-o", out])
    if done.returncode != 0:
        return f"`nnb run` exited {done.returncode}: {done.stderr.strip()[:1500]}"
    session = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    for o, want in zip(session.get_outputs(), session.run(None, feeds)):
        got = np.load(os.path.join(out, f"{o.name}.npy"))
        if got.shape != want.shape:
            return f"{o.name}: shape {list(got.shape)}, onnxruntime gives {list(want.shape)}"
        err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
        if err > 1e-4:
            return f"{o.name}: relative error {err:.2e}"
    return None


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
    checks.append(("a BERT-style encoder (torch.onnx's patterns) matches onnxruntime", check_bert(nnb, work)))
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
