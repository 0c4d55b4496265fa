"""A second implementation of the bundle format, written from spec/FORMAT.md
alone (not from the Rust code): a reader that gives a verdict and an error
code for a bundle's bytes, and a writer that gives a bundle's bytes for its
content. Section numbers in comments point at the rule each check applies.

Scope: sections 1 to 8 in full (container, manifest, YAML, tensors, digests,
reader contract, limits) and, of section 9, what OPS.md's text gives without
running or inferring anything: the document's fields, names, the ops and
their `since`, duplicate names, references, cycles, the graph record's
opset, and the weights (9.2, 9.7): every parameter present, of the shape its
formula gives, and no `params` tensor unread; samples (3.6) re-run with
ops_reference.py, an independent numpy reference of OPS.md's definitions.
and the architecture digest (9.8) from the attributes normalized as 9.4 and
OPS.md's tables say. Attribute value checks, shape inference and parameter
dtypes need each op's rules in code and are not here.
"""
import base64
import binascii
import hashlib
import json
import math
import re
import struct
import zlib
from decimal import Decimal

import spec_yaml

# Section 7.
MAX_MANIFEST_BYTES = 64 << 20
MAX_GRAPH_BYTES = 64 << 20
MAX_TENSORS = 1 << 20
MAX_SIGNATURES = 16
MAX_SIGNATURE_BYTES = 256 << 20
MAX_ENTRIES = MAX_TENSORS + 2 + MAX_SIGNATURES
MAX_RANK = 16
MAX_TENSOR_BYTES = 1 << 48
MAX_NAME_BYTES = 512
MAX_NPY_HEADER_BYTES = 4096
MAX_METADATA_DEPTH = 32
DATA_ALIGNMENT = 64
MAX_NODES = 1 << 20
MAX_NODE_INPUTS = 1 << 16

# Section 4.1.
DTYPES = {
    "f16": (2, "<f2"), "bf16": (2, "<u2"), "f32": (4, "<f4"), "f64": (8, "<f8"),
    "i8": (1, "|i1"), "i16": (2, "<i2"), "i32": (4, "<i4"), "i64": (8, "<i8"),
    "u8": (1, "|u1"), "bool": (1, "|b1"),
}

HEX64 = re.compile(r"[0-9a-f]{64}\Z")
GROUP = re.compile(r"[A-Za-z0-9_.\-]{1,512}\Z")
VALUE_NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")
SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
VERSION = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})\Z")
SUPPORTED = (1, 2)
SIGNATURE_NAME = re.compile(r"(?!\.)[A-Za-z0-9_.\-]{1,64}\Z")


class Invalid(Exception):
    """A bundle that breaks a rule: `code` as section 8.1 gives it."""

    def __init__(self, code, where, message):
        super().__init__(f"[{code}] {where}: {message}")
        self.code = code


def u16(b, at):
    return struct.unpack_from("<H", b, at)[0]


def u32(b, at):
    return struct.unpack_from("<I", b, at)[0]


def u64(b, at):
    return struct.unpack_from("<Q", b, at)[0]


# ---------------------------------------------------------------- container


def read_zip(data):
    """Section 2.2: the entries, each (name, data start, data end, crc, local
    header offset), in central-directory order."""
    not_zip = lambda why: Invalid("not-a-zip", "archive", why)  # noqa: E731
    eocd = None
    for at in range(len(data) - 22, max(-1, len(data) - 22 - 65536), -1):
        if data[at:at + 4] == b"PK\x05\x06" and at + 22 + u16(data, at + 20) == len(data):
            eocd = at
            break
    if eocd is None:
        raise not_zip("no end-of-central-directory record ends the file")
    disk, cd_disk, here, count = struct.unpack_from("<HHHH", data, eocd + 4)
    if disk != 0 or cd_disk != 0 or here != count:
        raise not_zip("a multi-disk archive")
    cd_size, cd_off = u32(data, eocd + 12), u32(data, eocd + 16)
    end_of_cd = eocd
    loc = eocd - 20
    if loc >= 0 and data[loc:loc + 4] == b"PK\x06\x07":  # rule 10: ZIP64
        rec = u64(data, loc + 8)
        if data[rec:rec + 4] != b"PK\x06\x06" or rec + 56 > loc:
            raise not_zip("ZIP64 locator points to no ZIP64 end record")
        count = u64(data, rec + 32) if count == 0xFFFF else count
        cd_size = u64(data, rec + 40) if cd_size == 0xFFFFFFFF else cd_size
        cd_off = u64(data, rec + 48) if cd_off == 0xFFFFFFFF else cd_off
        end_of_cd = rec
    if count > MAX_ENTRIES:
        raise not_zip(f"{count} entries, above MAX_ENTRIES")
    records, at = [], cd_off
    for _ in range(count):
        if data[at:at + 4] != b"PK\x01\x02" or at + 46 > end_of_cd:
            raise not_zip("the central directory does not hold the records the end record counts")
        (made, _need, flags, method, _t, _d, crc, csize, usize, nlen, elen, clen, _disk, _int, ext, off) = \
            struct.unpack_from("<HHHHHHIIIHHHHHII", data, at + 4)
        name = data[at + 46:at + 46 + nlen]
        extra = data[at + 46 + nlen:at + 46 + nlen + elen]
        usize, csize, off = zip64_sizes(extra, usize, csize, off)
        records.append((name, made, flags, method, crc, csize, usize, ext, off))
        at += 46 + nlen + elen + clen
    if at - cd_off != cd_size or at > end_of_cd:
        raise not_zip(f"the end record gives the directory {cd_size} bytes, its records take {at - cd_off}")
    if records and min(r[8] for r in records) != 0:
        raise not_zip("bytes precede the first entry")
    seen = set()
    for r in records:
        if r[0] in seen:
            raise Invalid("bad-entry", r[0].decode("utf-8", "replace"), "appears twice")
        seen.add(r[0])
    entries = []
    signatures = 0
    for name_bytes, made, flags, method, crc, csize, usize, ext, off in records:
        try:
            name = name_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("bad-entry", repr(name_bytes), "name is not UTF-8")
        bad = lambda why: Invalid("bad-entry", name, why)  # noqa: E731
        check_entry_name(name)
        if flags & 1:
            raise bad("encrypted")
        mode = ext >> 16
        if name.endswith("/") or (made >> 8 == 3 and mode & 0o170000 not in (0, 0o100000)):
            raise bad("not a regular file")
        if method != 0:
            raise bad("compressed")
        if csize != usize:
            raise bad("compressed size differs from the size")
        if flags & 8:
            raise bad("uses a data descriptor")
        if data[off:off + 4] != b"PK\x03\x04" or off + 30 > len(data):
            raise bad("local header has a wrong signature")
        (_v, lflags, lmethod, _t, _d, lcrc, lcs, lus, lnl, lel) = struct.unpack_from("<HHHHHIIIHH", data, off + 4)
        if lflags & 1 or lflags & 8 or lmethod != 0 or lcrc != crc:
            raise bad("local header disagrees with the directory")
        if lus != 0xFFFFFFFF and (lus != usize or lcs != usize):
            raise bad("local header sizes disagree")
        if data[off + 30:off + 30 + lnl] != name_bytes:
            raise bad("local header names another entry")
        start = off + 30 + lnl + lel
        if start + usize > len(data):
            raise bad("data past the end of the file")
        if start + usize > cd_off:
            raise bad("data runs into the central directory")
        if name == "manifest.yaml":
            if usize > MAX_MANIFEST_BYTES:
                raise bad("above MAX_MANIFEST_BYTES")
            if zlib.crc32(data[start:start + usize]) != crc:
                raise bad("CRC-32 mismatch")
        if signature_name(name) is not None:
            signatures += 1
            if signatures > MAX_SIGNATURES:
                raise bad("more than MAX_SIGNATURES signature entries")
            if usize > MAX_SIGNATURE_BYTES:
                raise bad("above MAX_SIGNATURE_BYTES")
        entries.append((name, start, start + usize, off))
    spans = sorted((off, end, name) for name, _s, end, off in entries)
    for (_a, end, first), (off, _e, second) in zip(spans, spans[1:]):
        if off < end:
            raise Invalid("bad-entry", second, f"overlaps {first}")
    return {name: (start, end) for name, start, end, _off in entries}


def zip64_sizes(extra, usize, csize, off):
    at = 0
    while at + 4 <= len(extra):
        hid, size = u16(extra, at), u16(extra, at + 2)
        if hid == 1:
            body, i = extra[at + 4:at + 4 + size], 0
            if usize == 0xFFFFFFFF and i + 8 <= len(body):
                usize, i = u64(body, i), i + 8
            if csize == 0xFFFFFFFF and i + 8 <= len(body):
                csize, i = u64(body, i), i + 8
            if off == 0xFFFFFFFF and i + 8 <= len(body):
                off = u64(body, i)
        at += 4 + size
    return usize, csize, off


def signature_name(entry):
    """Section 10.1: the name of a `signatures/<name>.sigstore.json` entry, else None."""
    if entry.startswith("signatures/") and entry.endswith(".sigstore.json"):
        return entry[len("signatures/"):-len(".sigstore.json")]
    return None


def check_entry_name(name):
    """Section 2.1 and rule 1."""
    if name in ("manifest.yaml", "graph.yaml"):
        return
    signature = signature_name(name)
    if signature is not None:
        if not SIGNATURE_NAME.match(signature):
            raise Invalid("bad-entry", name, "a signature name is 1 to 64 of A-Z a-z 0-9 _ - . not starting with .")
        return
    if name.startswith("tensors/") and name.endswith(".npy"):
        try:
            check_tensor_name(name[len("tensors/"):-len(".npy")])
            return
        except Invalid as e:
            raise Invalid("bad-entry", name, str(e))
    raise Invalid("bad-entry", name, "not an entry a bundle may hold")


def check_tensor_name(name, where="tensors"):
    """Section 3.3."""
    n = len(name.encode("utf-8"))
    if not 1 <= n <= MAX_NAME_BYTES or any(is_cc(c) for c in name) or "/" in name or "\\" in name:
        raise Invalid("invalid-manifest", f"{where}.{name}", "not a valid tensor name")


def is_cc(c):
    return ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F


# ---------------------------------------------------------------- manifest


def manifest_error(where, why):
    return Invalid("invalid-manifest", where, why)


def is_str(v):
    """A string the table reads as one (a plain float is not, 3.7)."""
    return isinstance(v, str) and not isinstance(v, spec_yaml.PlainText)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return is_int(v) or isinstance(v, float)


def expect_map(v, where, keys, required):
    if not isinstance(v, dict):
        raise manifest_error(where, "not a map")
    for k in v:
        if k not in keys:
            raise manifest_error(f"{where}.{k}", "unknown field")
    for k in required:
        if k not in v:
            raise manifest_error(f"{where}.{k}", "missing")


def parse_manifest(text):
    """Sections 1 and 3: the checked manifest (a dict)."""
    try:
        m = spec_yaml.load(text)
    except UnicodeDecodeError as e:
        raise manifest_error("manifest.yaml", f"not UTF-8: {e}")
    except Exception as e:  # noqa: BLE001 (any YAML error)
        raise manifest_error("manifest.yaml", str(e))
    if not isinstance(m, dict):
        raise manifest_error("manifest.yaml", "not a map")
    version = m.get("format_version")
    match = VERSION.match(version) if isinstance(version, str) else None  # read by its text (3.1)
    if match is None:
        raise manifest_error("format_version", "missing or not MAJOR.MINOR")
    major, minor = int(match.group(1)), int(match.group(2))
    if major != SUPPORTED[0]:
        raise Invalid("unsupported-version", "format_version", f"{version}")
    expect_map(m, "manifest", ("format_version", "graph", "tensors", "aliases", "metadata", "samples", "shards"),
               ("tensors",))
    graph = m.get("graph")
    if "graph" in m:
        expect_map(graph, "graph", ("opset", "sha256", "architecture_digest"), ("opset", "sha256", "architecture_digest"))
        if not is_int(graph["opset"]) or graph["opset"] < 1:
            raise manifest_error("graph.opset", "not an integer >= 1")
        for k in ("sha256", "architecture_digest"):
            if not is_str(graph[k]) or not HEX64.match(graph[k]):
                raise manifest_error(f"graph.{k}", "not 64 lowercase hex digits")
    tensors = m["tensors"]
    if not isinstance(tensors, dict):
        raise manifest_error("tensors", "not a map")
    aliases = m.get("aliases", {})
    if not isinstance(aliases, dict):
        raise manifest_error("aliases", "not a map")
    if len(tensors) + len(aliases) > MAX_TENSORS:
        raise manifest_error("tensors", "above MAX_TENSORS")
    for name, r in tensors.items():
        where = f"tensors.{name}"
        if not is_str(name):
            raise manifest_error(where, "name is not a string")
        check_tensor_name(name)
        expect_map(r, where, ("dtype", "shape", "sha256", "group", "chunks"), ("dtype", "shape"))
        if not is_str(r["dtype"]) or r["dtype"] not in DTYPES:
            raise manifest_error(f"{where}.dtype", "unknown dtype")
        shape = r["shape"]
        if not isinstance(shape, list) or not all(is_int(d) and 0 <= d < 2**64 for d in shape):
            raise manifest_error(f"{where}.shape", "not a list of non-negative integers")
        if "sha256" in r and (not is_str(r["sha256"]) or not HEX64.match(r["sha256"])):
            raise manifest_error(f"{where}.sha256", "not 64 lowercase hex digits")
        r.setdefault("group", "params")
        if not is_str(r["group"]) or not GROUP.match(r["group"]):
            raise manifest_error(f"{where}.group", "not a group name")
        byte_size(r["dtype"], shape, where)
        if "sha256" not in r:  # 3.2: sha256, chunks or both; chunks alone from format 1.2
            if "chunks" not in r:
                raise manifest_error(where, "has no digest")
            if (major, minor) < (1, 2):
                raise manifest_error(f"{where}.sha256", "chunks alone need format 1.2")
        if "chunks" in r:
            c = r["chunks"]
            expect_map(c, f"{where}.chunks", ("size", "sha256"), ("size", "sha256"))
            if (major, minor) < (1, 1):
                raise manifest_error(f"{where}.chunks", "chunk digests need format 1.1")
            size = c["size"]
            if not is_int(size) or size & (size - 1) or not (1 << 20) <= size <= (1 << 30):
                raise manifest_error(f"{where}.chunks.size", "not a power of two from 2^20 to 2^30")
            if not is_str(c["sha256"]) or not HEX64.match(c["sha256"]):
                raise manifest_error(f"{where}.chunks.sha256", "not 64 lowercase hex digits")
    check_shard_table(m, (major, minor))
    for alias, target in aliases.items():
        if not is_str(alias) or not is_str(target):
            raise manifest_error(f"aliases.{alias}", "not a string")
        check_tensor_name(alias, "aliases")
        if alias in tensors or target not in tensors:
            raise manifest_error(f"aliases.{alias}", "an alias names a stored tensor and is not one")
    metadata = m.get("metadata", {})
    if not isinstance(metadata, dict):
        raise manifest_error("metadata", "not a map")
    for k, v in metadata.items():
        check_metadata(k, v, f"metadata.{k}", 0)
    samples = m.get("samples", [])
    if not isinstance(samples, list):
        raise manifest_error("samples", "not a list")
    if samples and graph is None:
        raise manifest_error("samples", "samples need a graph")
    for i, s in enumerate(samples):
        where = f"samples[{i}]"
        expect_map(s, where, ("inputs", "outputs", "rtol", "atol"), ("inputs", "outputs", "rtol", "atol"))
        for kind in ("inputs", "outputs"):
            if not isinstance(s[kind], dict):
                raise manifest_error(f"{where}.{kind}", "not a map")
            for value, tensor in s[kind].items():
                if not is_str(value) or not is_str(tensor):
                    raise manifest_error(f"{where}.{kind}", "not a map of strings")
                if tensor not in tensors and aliases.get(tensor) not in tensors:
                    raise manifest_error(f"{where}.{kind}.{value}", f"no tensor {tensor}")
        for k in ("rtol", "atol"):
            s[k] = spec_yaml.plain_floats_to_numbers(s[k])
            if not is_number(s[k]) or not math.isfinite(s[k]) or s[k] < 0:
                raise manifest_error(f"{where}.{k}", "not a finite number >= 0")
            s[k] = float(s[k])
    return m


def byte_size(dtype, shape, where):
    """Section 3.2: the running product, overflow-checked at every step."""
    if len(shape) > MAX_RANK:
        raise manifest_error(f"{where}.shape", "rank above MAX_RANK")
    n = DTYPES[dtype][0]
    for d in shape:
        n *= d
        if n >= 2**64:
            raise manifest_error(f"{where}.shape", "size overflows 64 bits")
    if n > MAX_TENSOR_BYTES:
        raise manifest_error(f"{where}.shape", "above MAX_TENSOR_BYTES")
    return n


def check_metadata(key, value, where, depth):
    """Section 3.5."""
    if not is_str(key) or not 1 <= len(key.encode("utf-8")) <= MAX_NAME_BYTES or any(is_cc(c) for c in key):
        raise manifest_error(where, "not a metadata key")
    if depth > MAX_METADATA_DEPTH:
        raise manifest_error(where, "deeper than MAX_METADATA_DEPTH")
    value = spec_yaml.plain_floats_to_numbers(value)
    if value is None:
        raise manifest_error(where, "null is not a metadata value")
    if is_int(value) and not -(2**63) <= value < 2**63:
        raise manifest_error(where, "integer outside the signed 64-bit range")
    if isinstance(value, float) and not math.isfinite(value):
        raise manifest_error(where, "not finite")
    if isinstance(value, list):
        for i, v in enumerate(value):
            check_metadata("item", v, f"{where}[{i}]", depth + 1)
    if isinstance(value, dict):
        for k, v in value.items():
            check_metadata(k, v, f"{where}.{k}", depth + 1)


# ---------------------------------------------------------------- .npy


NPY_DICT = re.compile(r"\{(.*)\}\s*\Z", re.S)


def parse_npy_header(data, where, tensor):
    """Section 4.2: (descr, fortran_order, shape, data offset)."""
    bad = lambda why: Invalid("bad-tensor-entry", where, f"{tensor}: {why}")  # noqa: E731
    if data[:6] != b"\x93NUMPY" or len(data) < 10:
        raise bad("no .npy magic")
    major = data[6]
    if (major, data[7]) == (1, 0):
        hlen, start = u16(data, 8), 10
    elif (major, data[7]) == (2, 0) and len(data) >= 12:
        hlen, start = u32(data, 8), 12
    else:
        raise bad("unsupported .npy version")
    if hlen > MAX_NPY_HEADER_BYTES or start + hlen > len(data):
        raise bad("header too long")
    try:
        text = data[start:start + hlen].decode("ascii")
    except UnicodeDecodeError:
        raise bad("header is not ASCII")
    match = NPY_DICT.match(text.strip(" \n"))
    if not text.endswith("\n") or match is None:
        raise bad("header is not a dict")
    fields = {}
    for key, value in re.findall(r"'([a-z_]+)'\s*:\s*('[^']*'|True|False|\([0-9, ]*\))", match.group(1)):
        if key in fields:
            raise bad(f"key {key} twice")
        fields[key] = value
    rest = re.sub(r"'([a-z_]+)'\s*:\s*('[^']*'|True|False|\([0-9, ]*\))", "", match.group(1))
    if set(fields) != {"descr", "fortran_order", "shape"} or rest.replace(",", "").strip():
        raise bad("header keys are not descr, fortran_order and shape")
    dims = [d.strip() for d in fields["shape"][1:-1].split(",") if d.strip()]
    if not all(d.isdigit() for d in dims):
        raise bad("bad shape")
    return fields["descr"][1:-1], fields["fortran_order"] == "True", [int(d) for d in dims], start + hlen


# ---------------------------------------------------------------- reading


def read(data, verify=True, folder=None):
    """Steps 1 to 5 of section 6 and the graph checks described above: the
    content (manifest, graph text, tensor data by name) or `Invalid`."""
    entries = read_zip(data)
    if "manifest.yaml" not in entries:
        raise Invalid("missing-entry", "manifest.yaml", "every bundle has one")
    m = parse_manifest(data[slice(*entries["manifest.yaml"])])
    graph_text = None
    if "graph" in m:
        if "graph.yaml" not in entries:
            raise Invalid("missing-entry", "graph.yaml", "the manifest has a graph record")
        graph_text = data[slice(*entries["graph.yaml"])]
        if len(graph_text) > MAX_GRAPH_BYTES:
            raise Invalid("bad-entry", "graph.yaml", "above MAX_GRAPH_BYTES")
        if hashlib.sha256(graph_text).hexdigest() != m["graph"]["sha256"]:
            raise Invalid("bad-entry", "graph.yaml", "SHA-256 mismatch")
    elif "graph.yaml" in entries:
        raise Invalid("bad-entry", "graph.yaml", "no graph record")
    tensors = read_shards(m, folder, verify) if m.get("shards") else {}
    for name in sorted(m["tensors"], key=lambda n: n.encode("utf-8")):
        if name in tensors:
            continue
        r = m["tensors"][name]
        entry = f"tensors/{name}.npy"
        if entry not in entries:
            raise Invalid("missing-entry", entry, "listed in the manifest")
        start, end = entries[entry]
        head = data[start:min(end, start + 12 + MAX_NPY_HEADER_BYTES)]
        descr, fortran, shape, offset = parse_npy_header(head, entry, name)
        if descr != DTYPES[r["dtype"]][1] or fortran or shape != r["shape"]:
            raise Invalid("bad-tensor-entry", entry, "header disagrees with the manifest")
        if end - start - offset != byte_size(r["dtype"], r["shape"], name):
            raise Invalid("bad-tensor-entry", entry, "data length disagrees")
        tensors[name] = data[start + offset:end]
    expected = {"manifest.yaml"} | ({"graph.yaml"} if graph_text is not None else set())
    expected |= {f"tensors/{n}.npy" for n in m["tensors"] if not m.get("shards")}
    signatures = {}
    for entry in entries:
        if signature_name(entry) is not None:
            signatures[signature_name(entry)] = data[slice(*entries[entry])]
        elif entry not in expected:
            raise Invalid("bad-entry", entry, "not listed in the manifest")
    for name, text in signatures.items():
        parse_signature(text, f"signatures/{name}.sigstore.json")
    if verify:
        verify_digests(m, tensors)
    if graph_text is not None:
        params = {n: r["shape"] for n, r in m["tensors"].items() if r["group"] == "params"}
        params.update({a: m["tensors"][t]["shape"] for a, t in m.get("aliases", {}).items()
                       if m["tensors"][t]["group"] == "params"})
        nodes = check_graph(graph_text, m["graph"], params)
        if m.get("samples"):
            run_samples(m, nodes, tensors)
    return {"manifest": m, "graph": graph_text, "tensors": tensors, "signatures": signatures}


SHARD_FILE = re.compile(r"(?!\.)[A-Za-z0-9_.\-]{0,251}\.nnb\Z")
MAX_SHARDS = 1 << 16


def check_shard_table(m, version):
    """Section 11.2."""
    shards = m.get("shards", [])
    if not shards:
        return
    if not isinstance(shards, list):
        raise manifest_error("shards", "not a list")
    if version < (1, 2):
        raise manifest_error("shards", "shards need format 1.2")
    if len(shards) > MAX_SHARDS:
        raise manifest_error("shards", "above MAX_SHARDS")
    files, holder = set(), {}
    for i, shard in enumerate(shards):
        where = f"shards[{i}]"
        expect_map(shard, where, ("file", "size", "bundle_digest", "tensors"), ("file", "size", "bundle_digest", "tensors"))
        if not is_str(shard["file"]) or not SHARD_FILE.match(shard["file"]) or shard["file"] == ".nnb":
            raise manifest_error(f"{where}.file", "not a file name in the index's folder")
        if shard["file"] in files:
            raise manifest_error(f"{where}.file", "listed twice")
        files.add(shard["file"])
        if not is_int(shard["size"]) or shard["size"] < 0:
            raise manifest_error(f"{where}.size", "not a size")
        if not is_str(shard["bundle_digest"]) or not HEX64.match(shard["bundle_digest"]):
            raise manifest_error(f"{where}.bundle_digest", "not 64 lowercase hex digits")
        names = shard["tensors"]
        if not isinstance(names, list) or not all(is_str(n) for n in names):
            raise manifest_error(f"{where}.tensors", "not a list of names")
        if any(a.encode("utf-8") >= b.encode("utf-8") for a, b in zip(names, names[1:])):
            raise manifest_error(f"{where}.tensors", "not sorted, or a name repeats")
        for name in names:
            if name not in m["tensors"]:
                raise manifest_error(f"{where}.tensors", f"{name} is not a stored tensor")
            if name in holder:
                raise manifest_error(f"{where}.tensors", f"{name} is in two shards")
            holder[name] = i
    for name in m["tensors"]:
        if name not in holder:
            raise manifest_error(f"tensors.{name}", "in no shard")


def bundle_digest(m):
    """Section 5.4: the canonical JSON of the parsed manifest, empty optional maps and lists left out."""
    doc = {k: v for k, v in m.items() if not (k in ("aliases", "metadata", "samples", "shards") and not v)}
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def read_shards(m, folder, verify):
    """Section 11.3: each shard's tensors (name -> data), or `Invalid` with code `bad-shard`."""
    import os
    import stat
    if folder is None:
        raise Invalid("bad-shard", "shards", "an index needs its folder")
    tensors = {}
    for shard in m["shards"]:
        path = os.path.join(folder, shard["file"])
        bad = lambda why: Invalid("bad-shard", shard["file"], why)  # noqa: E731
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            raise bad("missing")
        if not stat.S_ISREG(info.st_mode):
            raise bad("not a regular file")
        if info.st_size != shard["size"]:
            raise bad("another size than the index gives")
        with open(path, "rb") as f:
            data = f.read()
        try:
            part = read(data, verify)
        except Invalid as e:
            raise bad(f"not a valid bundle: {e}")
        pm = part["manifest"]
        if pm.get("shards"):
            raise bad("an index itself")
        if bundle_digest(pm) != shard["bundle_digest"]:
            raise bad("another bundle digest than the index gives")
        if sorted(pm["tensors"], key=lambda n: n.encode("utf-8")) != shard["tensors"]:
            raise bad("other tensors than the index lists")
        for name in shard["tensors"]:
            if pm["tensors"][name] != m["tensors"][name]:
                raise bad(f"its record of {name} differs from the index's")
        tensors.update(part["tensors"])
    return tensors


def verify_digests(m, tensors):
    """Sections 5.1 and 5.1.1, as a validator: every digest present, and bool bytes."""
    for name in sorted(tensors):
        r, data = m["tensors"][name], tensors[name]
        if "sha256" in r and hashlib.sha256(data).hexdigest() != r["sha256"]:
            raise Invalid("hash-mismatch", f"tensors.{name}", "SHA-256 mismatch")
        if "chunks" in r:
            size = r["chunks"]["size"]
            digest = hashlib.sha256(b"".join(
                hashlib.sha256(data[i:i + size]).digest() for i in range(0, len(data), size))).hexdigest()
            if digest != r["chunks"]["sha256"]:
                raise Invalid("hash-mismatch", f"tensors.{name}.chunks", "chunk digest mismatch")
        if r["dtype"] == "bool" and any(b > 1 for b in data):
            raise Invalid("bad-tensor-entry", f"tensors/{name}.npy", "a bool byte other than 0 or 1")


# ---------------------------------------------------------------- graph (structure)


def ops_table(path):
    """OPS.md: for each op, its `since`, operand slots and attributes.

    A slot is (name, kind, optional, shape formula or None, attributes that
    must be true for it to exist); kind is `data`, `optional`, `variadic`
    or `param`. Attributes map to (type text, default text)."""
    ops, current = {}, None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for name, since in re.findall(r"^\| \[`([A-Za-z0-9]+)`\]\(#[a-z0-9]+\) \| ([0-9]+) \|", text, re.M):
        ops[name] = {"since": int(since), "slots": [], "attrs": {}}
    for line in text.splitlines():
        if line.startswith("## "):
            current = ops.get(line[3:].strip())
            continue
        if current is None:
            continue
        slot = re.match(r"- `([A-Za-z0-9_.]+)`: (.*)", line)
        if slot:
            name, what = slot.groups()
            if what.startswith("parameter"):
                shape = re.search(r"shape `(\[[^`]*\])`", what)
                when = re.search(r"exists only when (.*) (?:is|are) true", what)
                current["slots"].append((name, "param", "optional" in what, shape and shape.group(1),
                                         re.findall(r"`([a-z_]+)`", when.group(1)) if when else []))
            else:
                kind = "variadic" if "one or more" in what else "optional" if "optional" in what else "data"
                current["slots"].append((name, kind, kind == "optional", None, []))
        attr = re.match(r"\| `([a-z_]+)` \| ([^|]*) \| ([^|]*) \|", line)
        if attr:
            current["attrs"][attr.group(1)] = (attr.group(2).strip(), attr.group(3).strip().strip("`"))
    return ops


OPS = {}


def normalized_attrs(op, given):
    """Section 9.4: every attribute that has a value, defaults filled in and
    each value in its normalized form (types as OPS.md's attribute tables
    word them)."""
    attrs = {}
    for name, (ty, default) in OPS[op]["attrs"].items():
        value = spec_yaml.plain_floats_to_numbers(given.get(name))
        if value is None:
            same_as = re.match(r"same as `?([a-z_]+)`?", default)
            if same_as:
                value = attrs.get(same_as.group(1))
            elif default not in ("required", "absent"):
                value = {"true": True, "false": False}.get(default, default)
                if re.fullmatch(r"-?[0-9]+", value if isinstance(value, str) else "x"):
                    value = int(value)
                elif re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", value if isinstance(value, str) else "x"):
                    value = float(value)
        if value is None:
            continue
        counts = re.search(r"a list of ([0-9]+)(?: or ([0-9]+))? integers", ty)
        if ty == "a number" and is_int(value):
            value = float(value)
        elif ty == "a list of integers" and is_int(value):
            value = [value]
        elif counts and is_int(value):
            value = [value] * int(counts.group(1))
        elif counts and counts.group(2) and isinstance(value, list) and len(value) == int(counts.group(2)):
            n = int(counts.group(1))  # pads: begins then ends; n values when symmetric
            if value[:n] == value[n:]:
                value = value[:n]
        attrs[name] = value
    return attrs


def canonical_json(value):
    """Section 5.3."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if is_int(value):
        return str(value)
    if isinstance(value, float):
        return canonical_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-8"))
    return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{canonical_json(v)}" for k, v in items) + "}"


def architecture_digest(opset, inputs, nodes, outputs):
    """Section 9.8."""
    doc = {
        "opset": opset,
        "inputs": [{"name": i["name"], "dtype": i["dtype"], "shape": i["shape"]} for i in inputs],
        "nodes": [{"name": n["name"], "op": n["op"], "inputs": n["inputs"],
                   "attrs": normalized_attrs(n["op"], n.get("attrs") or {})}
                  for n in sorted(nodes, key=lambda n: n["name"].encode("utf-8"))],
        "outputs": outputs,
    }
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def eval_shape(formula, attrs):
    """OPS.md's shape formula language."""
    def atom(token):
        if re.fullmatch(r"[0-9]+", token):
            return int(token)
        if token == "directions":
            return 2 if attrs.get("bidirectional") else 1
        return attrs[token]
    shape = []
    for term in filter(None, formula[1:-1].split(", ")):
        if term.startswith("*"):
            shape += list(attrs[term[1:]])
            continue
        tokens = re.split(r"([*/])", term)
        value = atom(tokens[0])
        for op, operand in zip(tokens[1::2], tokens[2::2]):
            value = value * atom(operand) if op == "*" else value // max(atom(operand), 1)
        shape.append(value)
    return shape


def check_graph(text, record, params):
    """Section 9.1, the structural codes of 9.5, 9.9's op `since`, 3.1.1's
    opset, and 9.2/9.7's parameters: each one present with the shape OPS.md
    gives, and no `params` tensor unread (`params`: name -> shape, aliases included)."""
    def fail(code, where, why):
        raise Invalid(code, f"graph.yaml {where}", why)
    try:
        g = spec_yaml.load(text)
    except Exception as e:  # noqa: BLE001
        fail("yaml", "", str(e))
    if not isinstance(g, dict):
        fail("invalid-field", "", "not a map")
    for k in g:
        if k not in ("opset", "inputs", "nodes", "sequential", "outputs"):
            fail("unknown-field", k, "unknown field")
    opset = g.get("opset")
    if not is_int(opset):
        fail("missing-field", "opset", "missing or not an integer")
    if opset not in (1, 2):
        fail("unsupported-opset", "opset", f"{opset}")
    inputs = g.get("inputs")
    if not isinstance(inputs, list):
        fail("missing-field", "inputs", "missing")
    names = []
    for i, inp in enumerate(inputs):
        if not isinstance(inp, dict) or set(inp) != {"name", "dtype", "shape"}:
            fail("invalid-field", f"inputs[{i}]", "an input has name, dtype and shape")
        names.append(inp["name"])
    if ("nodes" in g) == ("sequential" in g):
        fail("invalid-field", "", "one of nodes and sequential")
    nodes = []
    if "sequential" in g:
        if len(inputs) != 1:
            fail("invalid-field", "sequential", "the shorthand needs exactly one input")
        previous = inputs[0]["name"]
        for i, n in enumerate(g["sequential"]):
            if not isinstance(n, dict) or "inputs" in n:
                fail("invalid-field", f"sequential[{i}]", "a sequential node has no inputs")
            node = dict(n, name=n.get("name", str(i)), inputs=[previous])
            nodes.append((f"sequential[{i}]", node))
            previous = node["name"]
        outputs = g.get("outputs", [previous])
    else:
        nodes = [(f"nodes[{i}]", n) for i, n in enumerate(g["nodes"])]
        outputs = g.get("outputs")
        if outputs is None:
            fail("missing-field", "outputs", "missing")
    if len(nodes) > MAX_NODES:
        fail("limit", "nodes", "above MAX_NODES")
    for where, n in nodes:
        if not isinstance(n, dict):
            fail("invalid-field", where, "not a map")
        for k in n:
            if k not in ("name", "op", "inputs", "attrs"):
                fail("unknown-field", f"{where}.{k}", "unknown field")
        if not isinstance(n.get("op"), str) or n["op"] not in OPS or OPS[n["op"]]["since"] > opset:
            fail("unknown-op", f"{where}.op", f"{n.get('op')}")
        if len(n["inputs"]) > MAX_NODE_INPUTS:
            fail("limit", f"{where}.inputs", "above MAX_NODE_INPUTS")
        names.append(n["name"])
    for name in names:
        if not is_str(name) or not VALUE_NAME.match(name) or len(name.encode()) > 512:
            fail("invalid-field", "name", f"{name!r} is not a value name")
    if len(set(names)) != len(names):
        fail("duplicate-name", "", "a name defined twice")
    if not outputs or len(set(outputs)) != len(outputs):
        fail("duplicate-name" if outputs else "missing-field", "outputs", "outputs listed twice or none")
    defined = set(names)
    for where, n in nodes:
        for ref in n["inputs"]:
            if ref not in defined:
                fail("unknown-reference", f"{where}.inputs", f"{ref}")
    for ref in outputs:
        if ref not in defined:
            fail("unknown-reference", "outputs", f"{ref}")
    node_names = {n["name"] for _, n in nodes}
    deps = {n["name"]: [r for r in n["inputs"] if r in node_names] for _, n in nodes}
    state = {}
    for start in deps:
        stack = [(start, iter(deps[start]))]
        state[start] = state.get(start, 0) or 1
        if state[start] == 2:
            continue
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                fail("cycle", nxt, "depends on itself")
            elif state.get(nxt) is None:
                state[nxt] = 1
                stack.append((nxt, iter(deps[nxt])))
    read_weights = set()
    for where, n in nodes:
        attrs = normalized_attrs(n["op"], n.get("attrs") or {})
        slots = [s for s in OPS[n["op"]]["slots"] if all(attrs.get(a) is True for a in s[4])]
        given = list(n["inputs"])
        for name, kind, optional, formula, _when in slots:
            if kind == "variadic":
                given = []
            elif kind in ("data", "optional"):
                given = given[1:]
            elif given:
                given = given[1:]
            else:
                weight = f"{n['name']}.{name}"
                if weight not in params:
                    if not optional:
                        fail("missing-parameter", where, weight)
                    continue
                read_weights.add(weight)
                if formula and params[weight] != eval_shape(formula, attrs):
                    fail("parameter-shape", where, f"{weight} {params[weight]}, {formula} gives {eval_shape(formula, attrs)}")
    for weight in sorted(set(params) - read_weights):
        fail("unused-weight", weight, "no node reads it")
    if opset != record["opset"]:
        raise Invalid("bad-entry", "graph.yaml", f"opset {opset}, the graph record says {record['opset']}")
    node_list = [n for _, n in nodes]
    if architecture_digest(opset, inputs, node_list, outputs) != record["architecture_digest"]:
        raise Invalid("bad-entry", "graph.yaml", "architecture digest mismatch")
    return node_list


# ---------------------------------------------------------------- samples


def array(record, data):
    """A tensor's data as numpy (section 4.1), floats widened to float64."""
    import numpy as np
    descr = DTYPES[record["dtype"]][1]
    a = np.frombuffer(data, dtype=np.dtype(descr.replace("|b1", "?"))).reshape(record["shape"])
    if record["dtype"] == "bf16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def run_samples(m, nodes, tensors):
    """Section 3.6: runs each sample with an independent numpy reference of
    OPS.md's definitions (ops_reference.py) and compares within its tolerance."""
    import numpy as np
    from ops_reference import reference

    def tensor(name):
        stored = m.get("aliases", {}).get(name, name)
        return array(m["tensors"][stored], tensors[stored])

    order, done = [], set()
    pending = list(nodes)
    while pending:  # dependencies first (node order carries no meaning, 9.5)
        waiting = {p["name"] for p in pending}
        ready = [n for n in pending if all(i in done or i not in waiting for i in n["inputs"])]
        order += ready
        done |= {n["name"] for n in ready}
        pending = [n for n in pending if n["name"] not in done]
    for i, sample in enumerate(m["samples"]):
        values = {name: tensor(t) for name, t in sample["inputs"].items()}
        try:
            for n in order:
                attrs = normalized_attrs(n["op"], n.get("attrs") or {})
                ops, given = {}, list(n["inputs"])
                for name, kind, _optional, _formula, when in OPS[n["op"]]["slots"]:
                    if not all(attrs.get(a) is True for a in when):
                        continue
                    if kind == "variadic":
                        ops.update({f"inputs{k}": values[v] for k, v in enumerate(given)})
                        given = []
                    elif given:
                        ops[name] = values[given.pop(0)]
                    elif kind == "param" and f"{n['name']}.{name}" in m["tensors"] | m.get("aliases", {}):
                        ops[name] = tensor(f"{n['name']}.{name}")
                values[n["name"]] = reference(n["op"], attrs, ops)
        except (KeyError, ValueError, IndexError) as e:
            raise Invalid("sample", f"samples[{i}]", f"cannot run: {e!r}")
        for name, t in sample["outputs"].items():
            got, want = np.asarray(values.get(name)), tensor(t)
            if got.shape != want.shape:
                raise Invalid("sample-mismatch", f"samples[{i}].outputs.{name}", f"shape {got.shape} vs {want.shape}")
            bad = ~((np.abs(got - want) <= sample["atol"] + sample["rtol"] * np.abs(want)) | (np.isnan(got) & np.isnan(want)))
            if bad.any():
                raise Invalid("sample-mismatch", f"samples[{i}].outputs.{name}", f"{int(bad.sum())} elements differ")


# ---------------------------------------------------------------- writing


def canonical_float(x):
    """Section 5.3's float form (canonical YAML uses it too, 3.8)."""
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    sign, digits, exp = Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, digits))
    e = len(digits) - 1 + exp
    s = "-" if sign else ""
    if -5 <= e <= 15:
        if e >= len(digits) - 1:
            return f"{s}{digits}{'0' * (e - len(digits) + 1)}.0"
        if e >= 0:
            return f"{s}{digits[:e + 1]}.{digits[e + 1:]}"
        return f"{s}0.{'0' * (-e - 1)}{digits}"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{s}{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def yaml_string(s):
    """Section 3.8's strings."""
    if PLAIN.match(s):
        try:
            if spec_yaml.resolve(s) == s:
                return s
        except spec_yaml.Refused:
            pass
    out = []
    for c in s:
        o = ord(c)
        if c in ESCAPES:
            out.append(ESCAPES[c])
        elif o < 0x20 or 0x7F <= o <= 0x9F or c in "\u2028\u2029\ufeff\ufffe\uffff":
            out.append(f"\\u{o:04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_int(v):
        return str(v)
    if isinstance(v, float):
        return canonical_float(v)
    if isinstance(v, str):
        return yaml_string(v)
    if v == []:
        return "[]"
    if v == {}:
        return "{}"
    raise ValueError(f"not a scalar: {v!r}")


def utf8_sorted(d):
    return {k: d[k] for k in sorted(d, key=lambda k: k.encode("utf-8"))}


def emit(value, indent=0):
    """Section 3.8's block layout: the lines of a non-empty map or list."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            key = yaml_string(k)
            head = f"{pad}? {key}\n{pad}:" if len(key) > 1024 else f"{pad}{key}:"
            if isinstance(v, dict) and v:
                lines.append(head)
                lines += emit(v, indent + 2)
            elif isinstance(v, list) and v:
                lines.append(head)
                lines += emit(v, indent)
            else:
                lines.append(f"{head} {yaml_scalar(v)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = emit(item, indent + 2)
                inner[0] = pad + "- " + inner[0][indent + 2:]
                lines += inner
            else:
                lines.append(f"{pad}- {yaml_scalar(item)}")
    return lines


def canonical_manifest(m):
    """Section 3.8's key order and defaults, then its text."""
    records = m["tensors"].values()
    out = {"format_version": "1.2" if any("sha256" not in r for r in records)
           else "1.1" if any("chunks" in r for r in records) else "1.0"}
    if "graph" in m:
        out["graph"] = {k: m["graph"][k] for k in ("opset", "sha256", "architecture_digest")}
    tensors = {}
    for name, r in utf8_sorted(m["tensors"]).items():
        rec = {"dtype": r["dtype"], "shape": r["shape"]}
        if "sha256" in r:
            rec["sha256"] = r["sha256"]
        rec["group"] = r.get("group", "params")
        if "chunks" in r:
            rec["chunks"] = {"size": r["chunks"]["size"], "sha256": r["chunks"]["sha256"]}
        tensors[name] = rec
    out["tensors"] = tensors
    if m.get("aliases"):
        out["aliases"] = utf8_sorted(m["aliases"])
    if m.get("metadata"):
        out["metadata"] = sort_maps(spec_yaml.plain_floats_to_numbers(m["metadata"]))
    if m.get("samples"):
        out["samples"] = [{"inputs": utf8_sorted(s["inputs"]), "outputs": utf8_sorted(s["outputs"]),
                           "rtol": float(s["rtol"]), "atol": float(s["atol"])} for s in m["samples"]]
    return "\n".join(emit(out)) + "\n"


def canonical_graph(doc):
    """Section 9.8's long form as canonical YAML, from a parsed long-form graph."""
    out = {
        "opset": doc["opset"],
        "inputs": [{"name": i["name"], "dtype": i["dtype"], "shape": i["shape"]} for i in doc["inputs"]],
        "nodes": [{"name": n["name"], "op": n["op"], "inputs": n["inputs"],
                   "attrs": sort_maps(spec_yaml.plain_floats_to_numbers(n.get("attrs", {})))} for n in doc["nodes"]],
        "outputs": doc["outputs"],
    }
    return "\n".join(emit(out)) + "\n"


def sort_maps(v):
    if isinstance(v, dict):
        return {k: sort_maps(x) for k, x in utf8_sorted(v).items()}
    if isinstance(v, list):
        return [sort_maps(x) for x in v]
    return v


def npy_header(dtype, shape):
    """Section 4.2, minimal padding."""
    dims = "()" if not shape else f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"
    text = f"{{'descr': '{DTYPES[dtype][1]}', 'fortran_order': False, 'shape': {dims}, }}"
    total = -(-(10 + len(text) + 1) // 64) * 64
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + (text + " " * (total - 11 - len(text)) + "\n").encode()


def write(manifest, graph_text, tensor_data, signatures=None):
    """Section 2.3: the bundle's bytes for its content (`tensor_data`: name -> data bytes;
    `signatures`: name -> signature file bytes)."""
    entries = [("manifest.yaml", canonical_manifest(manifest).encode("utf-8"), False)]
    if graph_text is not None:
        entries.append(("graph.yaml", graph_text, False))
    for name in sorted(manifest["tensors"], key=lambda n: n.encode("utf-8")):
        r = manifest["tensors"][name]
        entries.append((f"tensors/{name}.npy", npy_header(r["dtype"], r["shape"]) + tensor_data[name], True))
    for name in sorted(signatures or {}):
        entries.append((f"signatures/{name}.sigstore.json", signatures[name], False))
    out, central = bytearray(), bytearray()
    for name, body, aligned in entries:
        raw = name.encode("utf-8")
        flags = 0 if raw.isascii() else 0x0800
        crc, offset = zlib.crc32(body), len(out)
        extra = b""
        if aligned and (offset + 30 + len(raw)) % DATA_ALIGNMENT:
            n = 6
            while (offset + 30 + len(raw) + n) % DATA_ALIGNMENT:
                n += 1
            extra = struct.pack("<HHH", 0xA11E, n - 4, DATA_ALIGNMENT) + b"\0" * (n - 6)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 10, flags, 0, 0, 0x21, crc, len(body), len(body),
                           len(raw), len(extra)) + raw + extra + body
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x030A, 10, flags, 0, 0, 0x21, crc, len(body),
                               len(body), len(raw), 0, 0, 0, 0, 0o100644 << 16, offset) + raw
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), cd_offset, 0)
    return bytes(out)


# Section 10.
BUNDLE_MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def strict_json(text, where):
    """JSON with duplicate keys refused (10.2)."""
    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise Invalid("bad-signature", where, "a duplicate key")
        return dict(items)
    try:
        return json.loads(text.decode("utf-8"), object_pairs_hook=pairs)
    except (UnicodeDecodeError, ValueError) as e:
        raise Invalid("bad-signature", where, f"not JSON: {e}")


def parse_signature(text, where):
    """Section 10.2 and 10.3: (Sigstore bundle, payload bytes, statement, signatures) or `Invalid`."""
    def bad(why):
        return Invalid("bad-signature", where, why)

    def fields(value, what, required, optional=()):
        if not isinstance(value, dict):
            raise bad(f"{what} is not an object")
        missing = set(required) - set(value)
        if missing:
            raise bad(f"{what} lacks {sorted(missing)}")
        return value

    def closed(value, what, required, optional=()):
        fields(value, what, required)
        unknown = set(value) - set(required) - set(optional)
        if unknown:
            raise bad(f"{what} has unknown fields {sorted(unknown)}")
        return value

    def string(value, what):
        if not isinstance(value, str):
            raise bad(f"{what} is not a string")
        return value

    def b64(value, what):
        try:
            return base64.b64decode(string(value, what), validate=True)
        except binascii.Error:
            raise bad(f"{what} is not standard base64")

    doc = closed(strict_json(text, where), "the file", ["mediaType", "verificationMaterial", "dsseEnvelope"])
    if not string(doc["mediaType"], "mediaType").startswith(BUNDLE_MEDIA_TYPE_PREFIX):
        raise bad("not a Sigstore bundle media type")
    vm = closed(doc["verificationMaterial"], "verificationMaterial", [],
                ["publicKey", "certificate", "x509CertificateChain", "tlogEntries", "timestampVerificationData"])
    if "publicKey" in vm:
        closed(vm["publicKey"], "publicKey", [], ["hint"])
        if "hint" in vm["publicKey"]:
            string(vm["publicKey"]["hint"], "hint")
    if not isinstance(vm.get("tlogEntries", []), list):
        raise bad("tlogEntries is not a list")
    env = closed(doc["dsseEnvelope"], "dsseEnvelope", ["payload", "payloadType", "signatures"])
    if string(env["payloadType"], "payloadType") != PAYLOAD_TYPE:
        raise bad("payloadType is not the in-toto one")
    payload = b64(env["payload"], "payload")
    if not isinstance(env["signatures"], list) or not env["signatures"]:
        raise bad("no signatures in the envelope")
    sigs = []
    for i, sig in enumerate(env["signatures"]):
        closed(sig, f"signatures[{i}]", ["sig"], ["keyid"])
        if "keyid" in sig:
            string(sig["keyid"], "keyid")
        sigs.append(b64(sig["sig"], f"signatures[{i}].sig"))
    st = fields(strict_json(payload, where), "the statement", ["_type", "predicate", "predicateType", "subject"])
    if st["_type"] != "https://in-toto.io/Statement/v1":
        raise bad("_type is not in-toto Statement v1")
    if st["predicateType"] != "https://model_signing/signature/v1.0":
        raise bad("predicateType is not Model Signing v1.0")
    if not isinstance(st["subject"], list) or len(st["subject"]) != 1:
        raise bad("not exactly one subject")
    subject = fields(st["subject"][0], "the subject", ["digest", "name"])
    string(subject["name"], "subject name")
    root = string(fields(subject["digest"], "the subject digest", ["sha256"])["sha256"], "sha256")
    predicate = fields(st["predicate"], "the predicate", ["resources", "serialization"])
    ser = fields(predicate["serialization"], "serialization", ["hash_type", "method"])
    if ser["method"] != "files" or ser["hash_type"] != "sha256":
        raise bad("serialization is not `files` with `sha256`")
    if not isinstance(ser.get("allow_symlinks", False), bool):
        raise bad("allow_symlinks is not a boolean")
    paths = ser.get("ignore_paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise bad("ignore_paths is not a list of strings")
    if "nnbundle" in predicate:
        claims = closed(predicate["nnbundle"], "nnbundle", ["bundle_digest", "format_version"],
                        ["architecture_digest"])
        for k, v in claims.items():
            string(v, k)
    resources = predicate["resources"]
    if not isinstance(resources, list):
        raise bad("resources is not a list")
    hasher, names = hashlib.sha256(), set()
    for r in resources:
        fields(r, "a resource", ["algorithm", "digest", "name"])
        name = string(r["name"], "resource name")
        if string(r["algorithm"], "algorithm") != "sha256":
            raise bad(f"resource {name}: algorithm is not sha256")
        if not isinstance(r["digest"], str) or not HEX64.match(r["digest"]):
            raise bad(f"resource {name}: digest is not 64 lowercase hex digits")
        if name in names:
            raise bad(f"resource {name} is listed twice")
        names.add(name)
        hasher.update(bytes.fromhex(r["digest"]))
    if hasher.hexdigest() != root:
        raise bad("the subject digest is not the resources' root digest")
    return doc, payload, st, sigs


def verify(data, public_pem):
    """Section 10.5: `verified` when a signature by the key (PEM text) covers
    exactly the entries' current bytes; `signature` when none does; the code
    of a container rule the bytes break."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key = serialization.load_pem_public_key(public_pem.encode())
    spki = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hint = hashlib.sha256(spki).hexdigest()
    try:
        entries = read_zip(data)
    except Invalid as e:
        return e.code
    current = {n: hashlib.sha256(data[s:e]).hexdigest() for n, (s, e) in entries.items() if signature_name(n) is None}
    for entry, (start, end) in sorted(entries.items()):
        if signature_name(entry) is None:
            continue
        try:
            doc, payload, st, sigs = parse_signature(data[start:end], entry)
        except Invalid:
            continue
        vm = doc["verificationMaterial"]
        if "certificate" in vm or "x509CertificateChain" in vm:
            continue
        if vm.get("publicKey", {}).get("hint", hint) != hint:
            continue
        pae = b"DSSEv1 %d %s %d " % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload)) + payload

        def good(sig):
            try:
                if isinstance(key, ed25519.Ed25519PublicKey):
                    key.verify(sig, pae)
                else:
                    key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
                return True
            except InvalidSignature:
                return False

        if any(good(s) for s in sigs):
            if {r["name"]: r["digest"] for r in st["predicate"]["resources"]} == current:
                return "verified"
    return "signature"


def verdict(data, folder=None):
    """`valid` or the code of the first rule the bytes break (`folder`: where an index's shards are)."""
    try:
        read(data, folder=folder)
        return "valid"
    except Invalid as e:
        return e.code


if __name__ == "__main__":
    import sys
    OPS.update(ops_table(sys.argv[1]))
    for path in sys.argv[2:]:
        with open(path, "rb") as f:
            print(json.dumps({"file": path, "verdict": verdict(f.read())}))
