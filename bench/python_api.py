"""The nnbundle Python package, one operation per process (so peak RSS means something).

usage:
  python_api.py save PATH [unsynced]   nnbundle.save_file of the 1 GiB "uniform" tensors (256 x 4 MiB f32)
  python_api.py load PATH              nnbundle.load_file (every hash checked), then every page touched
  python_api.py st_load PATH           safetensors.numpy.load_file (no hashes), then every page touched
  python_api.py run BUNDLE INPUT BUDGET  Model.run on INPUT for BUDGET seconds: median ms

Prints one JSON line: seconds of the timed section (or med_ms), bytes, and
peak RSS (VmHWM, KiB) of the process.
"""

import json
import sys
import time

import numpy as np


def uniform():
    """The tensors of ../shared/bench/st_bench.py's "uniform" model: 256 x 1024 x 1024 f32."""
    return {f"layer{i}.weight": np.random.default_rng(i).random((1024, 1024), dtype=np.float32) for i in range(256)}


def touch(tensors):
    """Reads one value per 4 KiB page of every array, so lazily mapped data is really read."""
    total = 0.0
    for a in tensors.values():
        flat = a.reshape(-1)
        step = max(1, 4096 // max(1, flat.itemsize))
        total += float(flat[::step].astype(np.float64).sum())
    return total


def peak_kib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


def main():
    op, args = sys.argv[1], sys.argv[2:]
    result = {"op": op}
    if op == "save":
        import nnbundle

        tensors = uniform()
        start = time.perf_counter()
        nnbundle.save_file(tensors, args[0], fsync=args[1:] != ["unsynced"])
        result["seconds"] = time.perf_counter() - start
        result["bytes"] = sum(a.nbytes for a in tensors.values())
    elif op in ("load", "st_load"):
        start = time.perf_counter()
        if op == "load":
            import nnbundle

            tensors = nnbundle.load_file(args[0])
        else:
            from safetensors.numpy import load_file

            tensors = load_file(args[0])
        touch(tensors)
        result["seconds"] = time.perf_counter() - start
        result["bytes"] = sum(a.nbytes for a in tensors.values())
    elif op == "run":
        import nnbundle

        model = nnbundle.Model.load(args[0])
        x = np.load(args[1])
        feeds = {model.inputs[0]: x}
        model.run(feeds)
        times, deadline = [], time.perf_counter() + float(args[2])
        while time.perf_counter() < deadline or len(times) < 5:
            start = time.perf_counter()
            model.run(feeds)
            times.append((time.perf_counter() - start) * 1e3)
        result["med_ms"] = float(np.median(times))
    else:
        sys.exit(f"unknown op {op}")
    result["peak_kib"] = peak_kib()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
