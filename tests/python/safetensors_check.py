"""The Python side of the CLI's interop test, with the real `safetensors` package.

  safetensors_check.py write OUT.safetensors   -- seeded MLP weights, as Python users save them
  safetensors_check.py same A.safetensors B.safetensors  -- equal names, dtypes, shapes, values
  safetensors_check.py svg FILE.svg            -- the file is well-formed XML with an <svg> root
"""
import sys
import xml.etree.ElementTree as ET

import numpy as np
from safetensors.numpy import load_file, save_file


def main(args):
    if args[0] == "write":
        rng = np.random.default_rng(0)
        shapes = {"hidden.weight": (256, 20), "hidden.bias": (256,), "output.weight": (10, 256), "output.bias": (10,)}
        save_file({k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}, args[1], metadata={"origin": "python"})
        print(f"wrote {len(shapes)} tensors")
    elif args[0] == "same":
        a, b = load_file(args[1]), load_file(args[2])
        if sorted(a) != sorted(b):
            sys.exit(f"names differ: {sorted(a)} vs {sorted(b)}")
        for k in a:
            if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not np.array_equal(a[k], b[k]):
                sys.exit(f"{k} differs")
        print(f"same: {len(a)} tensors")
    elif args[0] == "svg":
        root = ET.parse(args[1]).getroot()
        if root.tag != "{http://www.w3.org/2000/svg}svg":
            sys.exit(f"root element is {root.tag}")
        print(f"svg: {sum(1 for _ in root.iter('{http://www.w3.org/2000/svg}rect'))} rects")


if __name__ == "__main__":
    main(sys.argv[1:])
