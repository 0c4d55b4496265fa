"""Independent check of a bundle with numpy, zipfile, hashlib and PyYAML only.

Usage: check_bundle.py BUNDLE EXPECTED_JSON

EXPECTED_JSON maps tensor names to {"dtype", "shape", "values"} (values as
strings, parsed here) and holds "bundle_digest" as printed by the Rust side.
Checks, with no nnbundle code involved:
  1. numpy.load opens the bundle as an npz archive and every tensor has the
     expected dtype, shape and values (bf16 read as raw uint16 bits);
  2. every entry is stored, dated 1980-01-01, and tensor data starts at a
     file offset that is a multiple of 64;
  3. the SHA-256 of each tensor's data bytes equals the manifest's, and so
     does each chunk digest (format 1.1);
  4. the bundle digest, recomputed from the manifest's canonical JSON form,
     equals the one the library reports.
"""
import hashlib
import json
import struct
import sys
import zipfile

import numpy as np
import yaml

NUMPY_DTYPE = {
    "f16": np.float16, "bf16": np.uint16, "f32": np.float32, "f64": np.float64,
    "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
    "u8": np.uint8, "bool": np.bool_,
}


def parse_value(dtype, text):
    if dtype in ("f16", "f32", "f64", "bf16"):
        return float(text)
    if dtype == "bool":
        return text == "true"
    return int(text)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def main(bundle_path, expected_path):
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    failures = []

    # 1. numpy alone reads every tensor.
    npz = np.load(bundle_path)
    assert isinstance(npz, np.lib.npyio.NpzFile), type(npz)
    for name, want in expected["tensors"].items():
        key = "tensors/" + name
        arr = npz[key]
        if arr.dtype != np.dtype(NUMPY_DTYPE[want["dtype"]]):
            failures.append(f"{name}: numpy dtype {arr.dtype}, expected {want['dtype']}")
            continue
        if list(arr.shape) != want["shape"]:
            failures.append(f"{name}: shape {arr.shape}, expected {want['shape']}")
            continue
        values = [parse_value(want["dtype"], v) for v in want["values"]]
        got = bf16_to_f32(arr) if want["dtype"] == "bf16" else arr
        ref = np.array(values, dtype=np.float32 if want["dtype"] == "bf16" else NUMPY_DTYPE[want["dtype"]])
        if not np.array_equal(got.reshape(-1), ref.reshape(-1), equal_nan=False):
            failures.append(f"{name}: values {got.reshape(-1).tolist()} != {ref.tolist()}")

    # 2-3. zipfile + hashlib: layout and per-tensor SHA-256.
    with open(bundle_path, "rb") as f:
        raw = f.read()
    with zipfile.ZipFile(bundle_path) as z:
        names = z.namelist()
        manifest = yaml.safe_load(z.read("manifest.yaml").decode("utf-8"))
        tensor_entries = [n for n in names if n.startswith("tensors/")]
        if names[0] != "manifest.yaml" or tensor_entries != sorted(tensor_entries, key=lambda s: s.encode()):
            failures.append(f"entry order {names}")
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                failures.append(f"{info.filename}: compressed")
            if info.date_time != (1980, 1, 1, 0, 0, 0):
                failures.append(f"{info.filename}: timestamp {info.date_time}")
        chunk_digests = 0
        for name, record in manifest["tensors"].items():
            info = z.getinfo("tensors/" + name + ".npy")
            entry = z.read(info)
            major = entry[6]
            header_len = struct.unpack("<H" if major == 1 else "<I", entry[8:10] if major == 1 else entry[8:12])[0]
            header_end = (10 if major == 1 else 12) + header_len
            data = entry[header_end:]
            digest = hashlib.sha256(data).hexdigest()
            if digest != record["sha256"]:
                failures.append(f"{name}: sha256 {digest} != manifest {record['sha256']}")
            if "chunks" in record:
                # Format 1.1: SHA-256 of the chunks' SHA-256 digests, in order.
                size = record["chunks"]["size"]
                pieces = b"".join(hashlib.sha256(data[i:i + size]).digest() for i in range(0, len(data), size))
                root = hashlib.sha256(pieces).hexdigest()
                if root != record["chunks"]["sha256"]:
                    failures.append(f"{name}: chunk digest {root} != manifest {record['chunks']['sha256']}")
                chunk_digests += 1
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
            data_offset = info.header_offset + 30 + name_len + extra_len + header_end
            if data_offset % 64:
                failures.append(f"{name}: data at offset {data_offset}, not 64-aligned")
        for alias, target in manifest.get("aliases", {}).items():
            if target not in manifest["tensors"]:
                failures.append(f"alias {alias} -> missing {target}")

    # 4. The bundle digest from the canonical JSON form.
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    digest = hashlib.sha256(canonical).hexdigest()
    if digest != expected["bundle_digest"]:
        failures.append(f"bundle digest {digest} != library's {expected['bundle_digest']}")

    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"ok: {len(expected['tensors'])} tensors read by numpy, {len(manifest['tensors'])} hashes recomputed, "
          f"{chunk_digests} chunk digests recomputed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
