"""Independent numpy reference for every nnbundle op (PyTorch semantics).

Usage: ops_reference.py CASES_JSON

Each case names an op, its attributes (defaults filled in) and its operands
as .npy files by slot name; the runtime's output is in another .npy file.
This script recomputes the output in float64 with numpy only and compares:
f32 outputs with rtol 1e-4, atol 1e-5; f64 outputs with rtol 1e-9, atol 1e-12.
Prints one line per op and a closing line 'N passed, M failed'.
"""
import json
import math
import os
import sys
from collections import defaultdict

import numpy as np


def window_out(n, k, s, pb, pe, d, ceil):
    room = n + pb + pe - d * (k - 1) - 1
    out = (-(-room // s) if ceil else room // s) + 1
    if ceil and (out - 1) * s >= n + pb:
        out -= 1
    return out


def conv_pads(attrs, n):
    pad = attrs["padding"]
    if pad == "valid":
        return [(0, 0)] * n
    if pad == "same":
        res = []
        for k, d in zip(attrs["kernel_size"], attrs["dilation"]):
            total = d * (k - 1)
            res.append((total // 2, total - total // 2))
        return res
    return pad_pairs(pad, n)


def pad_pairs(pad, n):
    """n values: both sides; 2n values: begins, then ends."""
    return [(pad[i], pad[n + i]) for i in range(n)] if len(pad) == 2 * n else [(p, p) for p in pad]


def recurrent(op, attrs, ops):
    """nn.LSTM / nn.GRU with one layer, written from PyTorch's documented equations."""
    x = ops["input"]
    if attrs["batch_first"]:
        x = x.transpose(1, 0, 2)
    steps, n, _ = x.shape
    h_size, dirs = attrs["hidden_size"], 2 if attrs["bidirectional"] else 1
    h0 = ops.get("h_0", np.zeros((dirs, n, h_size)))
    c0 = ops.get("c_0", np.zeros((dirs, n, h_size)))
    sig = lambda v: 1 / (1 + np.exp(-v))
    out = np.zeros((steps, n, dirs * h_size))
    h_n, c_n = np.zeros((dirs, n, h_size)), np.zeros((dirs, n, h_size))
    for d in range(dirs):
        w_ih, w_hh = ops["weight_ih"][d], ops["weight_hh"][d]
        b_ih = ops["bias_ih"][d] if "bias_ih" in ops else 0
        b_hh = ops["bias_hh"][d] if "bias_hh" in ops else 0
        h, c = h0[d], c0[d]
        for t in (range(steps - 1, -1, -1) if d == 1 else range(steps)):
            a, b = x[t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
            if op == "LSTM":
                i, f, g, o = np.split(a + b, 4, axis=1)
                c = sig(f) * c + sig(i) * np.tanh(g)
                h = sig(o) * np.tanh(c)
            else:
                (ar, az, an), (br, bz, bn) = np.split(a, 3, axis=1), np.split(b, 3, axis=1)
                r, z = sig(ar + br), sig(az + bz)
                if not attrs["reset_after"]:  # the reset gate scales h before its projection
                    w_hn = w_hh[2 * h_size:]
                    b_hn = ops["bias_hh"][d][2 * h_size:] if "bias_hh" in ops else 0
                    bn = (r * h) @ w_hn.T + b_hn
                    h = (1 - z) * np.tanh(an + bn) + z * h
                else:
                    h = (1 - z) * np.tanh(an + r * bn) + z * h
            out[t, :, d * h_size:(d + 1) * h_size] = h
        h_n[d], c_n[d] = h, c
    if attrs["returns"] == "h_n":
        return h_n
    if attrs["returns"] == "c_n":
        return c_n
    return out.transpose(1, 0, 2) if attrs["batch_first"] else out


def conv2d(x, w, b, stride, pads, dil, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    ho = window_out(h, kh, stride[0], pt, pb, dil[0], False)
    wo = window_out(wd, kw, stride[1], pl, pr, dil[1], False)
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dil[0], j * dil[1]
                patch = xs[:, :, y0:y0 + stride[0] * (ho - 1) + 1:stride[0], x0:x0 + stride[1] * (wo - 1) + 1:stride[1]]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out


def conv(attrs, ops, spatial):
    x, w = ops["input"], ops["weight"]
    b = ops.get("bias")
    stride, dil = list(attrs["stride"]), list(attrs["dilation"])
    pads = conv_pads(attrs, spatial)
    if spatial == 1:
        y = conv2d(x[:, :, None, :], w[:, :, None, :], b, [1] + stride, [(0, 0)] + pads, [1] + dil, attrs["groups"])
        return y[:, :, 0, :]
    return conv2d(x, w, b, stride, pads, dil, attrs["groups"])


def pool2d(x, k, s, pads, d, ceil, kind, include_pad):
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    ho = window_out(h, k[0], s[0], pt, pb, d[0], ceil)
    wo = window_out(w, k[1], s[1], pl, pr, d[1], ceil)
    out = np.zeros((n, c, ho, wo))
    for oy in range(ho):
        for ox in range(wo):
            y0, x0 = oy * s[0] - pt, ox * s[1] - pl
            ys_all = [y0 + i * d[0] for i in range(k[0])]
            xs_all = [x0 + j * d[1] for j in range(k[1])]
            ys = [y for y in ys_all if 0 <= y < h]
            xs = [v for v in xs_all if 0 <= v < w]
            window = x[:, :, ys][:, :, :, xs]
            if kind == "max":
                out[:, :, oy, ox] = window.max(axis=(2, 3))
            else:
                # PyTorch: the divisor counts taps in the padding, never past the end padding (ceil mode).
                padded = sum(1 for y in ys_all if y < h + pb) * sum(1 for v in xs_all if v < w + pr)
                out[:, :, oy, ox] = window.sum(axis=(2, 3)) / (padded if include_pad else len(ys) * len(xs))
    return out


def pool(attrs, ops, spatial, kind):
    x = ops["input"]
    k, s = list(attrs["kernel_size"]), list(attrs["stride"])
    pads = pad_pairs(attrs["padding"], spatial)
    d = list(attrs["dilation"])
    include = attrs.get("count_include_pad", True)
    if spatial == 1:
        return pool2d(x[:, :, None, :], [1] + k, [1] + s, [(0, 0)] + pads, [1] + d, attrs["ceil_mode"], kind, include)[:, :, 0, :]
    return pool2d(x, k, s, pads, d, attrs["ceil_mode"], kind, include)


def adaptive_avg(attrs, ops):
    x = ops["input"]
    n, c, h, w = x.shape
    oh, ow = attrs["output_size"]
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            ya, yb = (i * h) // oh, -(-((i + 1) * h) // oh)
            xa, xb = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[:, :, i, j] = x[:, :, ya:yb, xa:xb].mean(axis=(2, 3))
    return out


def batch_norm(attrs, ops):
    x = ops["input"]
    shape = [1, -1] + [1] * (x.ndim - 2)
    y = (x - ops["running_mean"].reshape(shape)) / np.sqrt(ops["running_var"].reshape(shape) + attrs["eps"])
    if attrs["affine"]:
        y = y * ops["weight"].reshape(shape) + ops["bias"].reshape(shape)
    return y


def layer_norm(attrs, ops):
    x = ops["input"]
    axes = tuple(range(x.ndim - len(attrs["normalized_shape"]), x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + attrs["eps"])
    if "weight" in ops:
        y = y * ops["weight"]
    if "bias" in ops:
        y = y + ops["bias"]
    return y


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def mha(attrs, ops):
    q, k, v = ops["query"], ops["key"], ops["value"]
    if not attrs["batch_first"]:
        q, k, v = (t.transpose(1, 0, 2) for t in (q, k, v))
    e, heads = attrs["embed_dim"], attrs["num_heads"]
    hd = e // heads
    w, b = ops["in_proj_weight"], ops.get("in_proj_bias", np.zeros(3 * e))
    qp, kp, vp = q @ w[:e].T + b[:e], k @ w[e:2 * e].T + b[e:2 * e], v @ w[2 * e:].T + b[2 * e:]
    n, l, _ = q.shape
    s = k.shape[1]
    mask = ops.get("attn_mask")
    if mask is not None and mask.dtype == np.bool_:
        mask = np.where(mask, -np.inf, 0.0)
    out = np.zeros((n, l, e))
    for bi in range(n):
        for h in range(heads):
            cols = slice(h * hd, (h + 1) * hd)
            scores = qp[bi][:, cols] @ kp[bi][:, cols].T / math.sqrt(hd)
            if mask is not None:
                scores = scores + (mask if mask.ndim == 2 else mask[bi * heads + h])
            out[bi][:, cols] = softmax(scores, -1) @ vp[bi][:, cols]
    out = out @ ops["out_proj.weight"].T + ops.get("out_proj.bias", np.zeros(e))
    return out if attrs["batch_first"] else out.transpose(1, 0, 2)


erf = np.vectorize(math.erf)


def gelu(attrs, x):
    if attrs["approximate"] == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def flatten(attrs, x):
    r = max(x.ndim, 1)
    s, e = attrs["start_dim"] % r, attrs["end_dim"] % r
    return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])


def upsample(attrs, x):
    """ONNX Resize semantics (nearest or linear), one spatial axis after another."""
    y = x
    for axis, m in enumerate(attrs["size"], start=2):
        n = y.shape[axis]
        out = []
        for i in range(m):
            mode = attrs["coordinate_mode"]
            if mode == "asymmetric":
                c = i * n / m
            elif mode == "half_pixel" or (mode == "pytorch_half_pixel" and m > 1):
                c = (i + 0.5) * n / m - 0.5
            elif mode == "align_corners" and m > 1:
                c = i * (n - 1) / (m - 1)
            else:
                c = 0.0
            if attrs["mode"] == "nearest":
                rounding = attrs["nearest_mode"]
                if rounding == "floor":
                    r = math.floor(c)
                elif rounding == "ceil":
                    r = math.ceil(c)
                elif c - math.floor(c) == 0.5:
                    r = math.floor(c) if rounding == "round_prefer_floor" else math.ceil(c)
                else:
                    r = math.floor(c + 0.5)
                out.append(np.take(y, [min(max(r, 0), n - 1)], axis=axis))
            else:
                c = min(max(c, 0.0), n - 1)
                i0 = math.floor(c)
                i1 = min(i0 + 1, n - 1)
                t = c - i0
                out.append((1 - t) * np.take(y, [i0], axis=axis) + t * np.take(y, [i1], axis=axis))
        y = np.concatenate(out, axis=axis)
    return y


def conv_transpose(attrs, ops, spatial):
    """Scatter each input element through the kernel (PyTorch's ConvTranspose definition)."""
    x, w = ops["input"], ops["weight"]
    if spatial == 1:
        x, w = x[:, :, None, :], w[:, :, None, :]
        geometry = [(1, 1, 0, 0, 1, 0)]
    else:
        geometry = []
    pads = pad_pairs(attrs["padding"], spatial)
    for i in range(spatial):
        geometry.append((attrs["kernel_size"][i], attrs["stride"][i], pads[i][0], pads[i][1], attrs["dilation"][i], attrs["output_padding"][i]))
    (_, sh, ph, _, dh, _), (_, sw, pw, _, dw, _) = geometry
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    out = [(l - 1) * s - pb - pe + d * (k - 1) + op + 1 for l, (k, s, pb, pe, d, op) in zip((h, wd), geometry)]
    groups = attrs["groups"]
    cg = c // groups
    y = np.zeros((n, og * groups, out[0], out[1]))
    for ci in range(c):
        g = ci // cg
        for o in range(og):
            for i in range(h):
                for j in range(wd):
                    for ti in range(kh):
                        yi = i * sh - ph + ti * dh
                        if not 0 <= yi < out[0]:
                            continue
                        for tj in range(kw):
                            yj = j * sw - pw + tj * dw
                            if 0 <= yj < out[1]:
                                y[:, g * og + o, yi, yj] += x[:, ci, i, j] * w[ci, o, ti, tj]
    if "bias" in ops:
        y += ops["bias"].reshape(1, -1, 1, 1)
    return y[:, :, 0, :] if spatial == 1 else y


def reference(op, attrs, ops):
    x = ops.get("input")
    if op == "Linear":
        y = x @ ops["weight"].T
        return y + ops["bias"] if "bias" in ops else y
    if op in ("Conv1d", "Conv2d"):
        return conv(attrs, ops, int(op[4]))
    if op in ("MaxPool1d", "MaxPool2d"):
        return pool(attrs, ops, int(op[7]), "max")
    if op in ("AvgPool1d", "AvgPool2d"):
        return pool(attrs, ops, int(op[7]), "avg")
    if op == "AdaptiveAvgPool2d":
        return adaptive_avg(attrs, ops)
    if op in ("BatchNorm1d", "BatchNorm2d"):
        return batch_norm(attrs, ops)
    if op == "LayerNorm":
        return layer_norm(attrs, ops)
    if op == "Embedding":
        return ops["weight"][x]
    if op == "Gather":
        return np.take(x, ops["indices"], axis=attrs["axis"])
    if op in ("Dropout", "Identity"):
        return x
    if op == "Flatten":
        return flatten(attrs, x)
    if op == "Reshape":
        shape = [x.shape[i] if d == 0 and attrs["zero_copies_input"] else d for i, d in enumerate(attrs["shape"])]
        return x.reshape(shape)
    if op == "Permute":
        return np.transpose(x, attrs["dims"])
    if op == "Concat":
        parts = [ops[k] for k in sorted((k for k in ops if k.startswith("inputs")), key=lambda k: int(k[6:]))]
        return np.concatenate(parts, axis=attrs["dim"])
    if op in ("Add", "Sub", "Mul", "Div"):
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        return fn(x, ops["other"])
    if op == "MatMul":
        return np.matmul(x, ops["other"])
    if op == "ReLU":
        return np.maximum(x, 0)
    if op == "LeakyReLU":
        return np.where(x >= 0, x, attrs["negative_slope"] * x)
    if op == "GELU":
        return gelu(attrs, x)
    if op == "SiLU":
        return x / (1 + np.exp(-x))
    if op == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if op == "Tanh":
        return np.tanh(x)
    if op in ("ConvTranspose1d", "ConvTranspose2d"):
        return conv_transpose(attrs, ops, int(op[13]))
    if op == "Upsample":
        return upsample(attrs, x)
    if op in ("Equal", "Less", "Greater"):
        return {"Equal": np.equal, "Less": np.less, "Greater": np.greater}[op](x, ops["other"])
    if op == "Where":
        return np.where(ops["condition"], ops["input"], ops["other"])
    if op == "Cast":
        kind = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}[attrs["dtype"]]
        if np.issubdtype(kind, np.integer) and x.dtype.kind == "f":
            x = np.trunc(x)  # toward zero, as C casts
        return x.astype(kind)
    if op == "ELU":
        return np.where(x > 0, x, attrs["alpha"] * np.expm1(x))
    if op == "SELU":
        alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
        return scale * np.where(x > 0, x, alpha * np.expm1(x))
    if op == "Softplus":
        bx = attrs["beta"] * x
        return np.where(bx > attrs["threshold"], x, np.log1p(np.exp(bx)) / attrs["beta"])
    if op == "PReLU":
        w = ops["weight"]
        if attrs["num_parameters"] > 1:
            w = w.reshape((1, -1) + (1,) * (x.ndim - 2))
        return np.where(x >= 0, x, w * x)
    if op in ("Maximum", "Minimum"):
        return (np.maximum if op == "Maximum" else np.minimum)(x, ops["other"])
    if op == "Expand":
        sizes = attrs["sizes"]
        lead = len(sizes) - x.ndim
        target = [x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes)]
        return np.broadcast_to(x, target)
    if op == "Floor":
        return np.floor(x)
    if op == "Fmod":
        return np.fmod(x, ops["other"])
    if op == "Tile":
        return np.tile(x, attrs["repeats"])
    if op in ("GroupNorm", "InstanceNorm1d", "InstanceNorm2d"):
        n, c = x.shape[:2]
        g = attrs.get("num_groups", c)
        grouped = x.reshape(n, g, -1)
        mean = grouped.mean(axis=2, keepdims=True)
        var = grouped.var(axis=2, keepdims=True)
        y = ((grouped - mean) / np.sqrt(var + attrs["eps"])).reshape(x.shape)
        per_channel = (1, c) + (1,) * (x.ndim - 2)
        if attrs["affine"]:
            y = y * ops["weight"].reshape(per_channel) + ops["bias"].reshape(per_channel)
        return y
    if op in ("LSTM", "GRU"):
        return recurrent(op, attrs, ops)
    if op == "Pad":
        p, r = attrs["padding"], x.ndim
        mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[attrs["mode"]]
        widths = [(p[d], p[r + d]) for d in range(r)]
        if mode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=attrs["value"])
        return np.pad(x, widths, mode=mode)
    if op == "Slice":
        n = len(attrs["starts"])
        dims = attrs.get("dims") or list(range(n))
        steps = attrs.get("steps") or [1] * n
        index = [slice(None)] * x.ndim
        for s, e, d, st in zip(attrs["starts"], attrs["ends"], dims, steps):
            index[d] = slice(s, e, st)  # Python's slicing clamps as ONNX does
        return x[tuple(index)]
    if op in ("ReduceMean", "ReduceSum", "ReduceMax"):
        fn = {"ReduceMean": np.mean, "ReduceSum": np.sum, "ReduceMax": np.max}[op]
        dims = attrs.get("dims")
        return fn(x, axis=None if dims is None else tuple(dims), keepdims=attrs["keepdim"])
    if op == "LocalResponseNorm":
        size, c = attrs["size"], x.shape[1]
        sq = np.zeros_like(x)
        for ch in range(c):
            lo, hi = max(0, ch - (size - 1) // 2), min(c - 1, ch + size // 2)
            sq[:, ch] = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        return x / (attrs["k"] + attrs["alpha"] / size * sq) ** attrs["beta"]
    if op == "Hardtanh":
        return np.clip(x, attrs["min_val"], attrs["max_val"])
    if op == "Hardsigmoid":
        return np.clip(attrs["alpha"] * x + attrs["beta"], 0, 1)
    if op == "Hardswish":
        return x * np.clip(x + 3, 0, 6) / 6
    if op == "Exp":
        return np.exp(x)
    if op == "Log":
        return np.log(x)
    if op == "Sqrt":
        return np.sqrt(x)
    if op == "Erf":
        return np.vectorize(math.erf)(x)
    if op == "Neg":
        return -x
    if op == "Abs":
        return np.abs(x)
    if op == "Reciprocal":
        return 1 / x
    if op == "Pow":
        return np.power(x, ops["other"])
    if op == "Softmax":
        return softmax(x, attrs["dim"])
    if op == "LogSoftmax":
        m = x.max(axis=attrs["dim"], keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=attrs["dim"], keepdims=True))
    if op == "MultiheadAttention":
        return mha(attrs, ops)
    raise ValueError(f"no reference for op {op}")


def main(cases_path):
    folder = os.path.dirname(cases_path)
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    per_op = defaultdict(lambda: [0, 0])
    failures = []
    for case in cases:
        ops = {}
        for slot, file in case["operands"].items():
            a = np.load(os.path.join(folder, file))
            ops[slot] = a.astype(np.float64) if a.dtype.kind == "f" else a
        got = np.load(os.path.join(folder, case["output"]))
        want = reference(case["op"], case["attrs"], ops)
        rtol, atol = (1e-9, 1e-12) if got.dtype == np.float64 else (1e-4, 1e-5)
        atol = case.get("atol") or atol  # a case's own, for long sums
        # Casts and integer or bool results must also have the reference's dtype.
        exact_dtype = case["op"] == "Cast" or want.dtype.kind in "biu"
        dtype_ok = got.dtype == want.dtype if exact_dtype else True
        ok = dtype_ok and got.shape == want.shape and np.allclose(got.astype(np.float64), want, rtol=rtol, atol=atol)
        per_op[case["op"]][0 if ok else 1] += 1
        if not ok:
            if not dtype_ok:
                detail = f"dtype {got.dtype} vs {want.dtype}"
            elif got.shape != want.shape:
                detail = f"shape {got.shape} vs {want.shape}"
            else:
                detail = f"max abs diff {np.abs(got.astype(np.float64) - want).max():.3g}"
            failures.append(f"{case['name']} ({case['op']}): {detail}")
    for op, (passed, failed) in sorted(per_op.items()):
        print(f"{op}: {passed}/{passed + failed}")
    for f in failures:
        print("FAILED", f)
    print(f"{sum(p for p, _ in per_op.values())} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main(sys.argv[1])
