"""Runs ONNX models in onnxruntime and compares outputs.

Usage: ort_check.py CHECKS_JSON

CHECKS_JSON is a list of {"name", "model", "inputs": {input: file.npy},
"expect": {output: file.npy} or "same_as": other.onnx, "rtol", "atol"}.
Paths are relative to the JSON file's folder. Prints one line per failure
and a closing line 'N passed, M failed'.
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def run(path, feeds):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def main(checks_path):
    folder = os.path.dirname(checks_path)
    with open(checks_path, encoding="utf-8") as f:
        checks = json.load(f)
    failures = []
    for c in checks:
        try:
            feeds = {k: np.load(os.path.join(folder, v)) for k, v in c["inputs"].items()}
            got = run(os.path.join(folder, c["model"]), feeds)
            if "same_as" in c:
                want = run(os.path.join(folder, c["same_as"]), feeds)
            else:
                want = {k: np.load(os.path.join(folder, v)) for k, v in c["expect"].items()}
            for k, w in want.items():
                g = got[k]
                if g.shape != w.shape or not np.allclose(g.astype(np.float64), w.astype(np.float64), rtol=c["rtol"], atol=c["atol"]):
                    diff = np.abs(g.astype(np.float64) - w.astype(np.float64)).max() if g.shape == w.shape else f"shape {g.shape} vs {w.shape}"
                    failures.append(f"{c['name']}: output {k} differs ({diff})")
        except Exception as e:  # a model onnxruntime refuses is a failure, reported by name
            failures.append(f"{c['name']}: {type(e).__name__}: {e}")
    for f in failures:
        print("FAILED", f)
    print(f"{len(checks) - len({f.split(':')[0] for f in failures})} passed, {len({f.split(':')[0] for f in failures})} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1])
