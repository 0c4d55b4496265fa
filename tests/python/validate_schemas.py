"""Validates graph documents against spec/schema/graph.schema.json with the
`jsonschema` package (an implementation independent of nnbundle), and checks
that the schema also rejects what it must.

Usage: validate_schemas.py SCHEMA_DIR GRAPH.yaml...
"""
import json
import os
import sys

import jsonschema
import yaml


def main(schema_dir, examples):
    with open(os.path.join(schema_dir, "graph.schema.json"), encoding="utf-8") as f:
        graph_schema = json.load(f)
    with open(os.path.join(schema_dir, "manifest.schema.json"), encoding="utf-8") as f:
        manifest_schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(graph_schema)
    jsonschema.Draft202012Validator.check_schema(manifest_schema)
    graphs = jsonschema.Draft202012Validator(graph_schema)
    for path in examples:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        errors = sorted(graphs.iter_errors(doc), key=str)
        if errors:
            sys.exit(f"{path}: {errors[0].message} at {list(errors[0].absolute_path)}")

    # The schema must also say no.
    base = {"opset": 1, "inputs": [{"name": "x", "dtype": "f32", "shape": ["batch", 4]}]}
    bad = {
        "unknown op": {**base, "sequential": [{"op": "PythonCall"}]},
        "unknown attribute": {**base, "sequential": [{"op": "ReLU", "attrs": {"inplace": True}}]},
        "missing attribute": {**base, "sequential": [{"op": "Linear", "attrs": {"in_features": 4}}]},
        "wrong attribute type": {**base, "sequential": [{"op": "Softmax", "attrs": {"dim": "last"}}]},
        "unknown field": {**base, "sequential": [{"op": "ReLU"}], "code": "import os"},
        "both forms": {**base, "sequential": [{"op": "ReLU"}], "nodes": [], "outputs": ["x"]},
        "bad name": {**base, "nodes": [{"name": "a/b", "op": "ReLU", "inputs": ["x"]}], "outputs": ["x"]},
        "wrong opset": {**base, "opset": 99, "sequential": [{"op": "ReLU"}]},
    }
    for what, doc in bad.items():
        if graphs.is_valid(doc):
            sys.exit(f"the graph schema accepts a document with: {what}")

    manifests = jsonschema.Draft202012Validator(manifest_schema)
    good_manifest = {
        "format_version": "1.0",
        "tensors": {"w": {"dtype": "f32", "shape": [2, 3], "sha256": "0" * 64, "group": "params"}},
        "metadata": {"step": 3, "lr": 0.5, "tags": ["a"], "nested": {"ok": True}},
    }
    if not manifests.is_valid(good_manifest):
        sys.exit("the manifest schema rejects a valid manifest")
    for what, change in {
        "bad dtype": lambda m: m["tensors"]["w"].update(dtype="f33"),
        "bad digest": lambda m: m["tensors"]["w"].update(sha256="XYZ"),
        "unknown field": lambda m: m.update(extra=1),
    }.items():
        m = json.loads(json.dumps(good_manifest))
        change(m)
        if manifests.is_valid(m):
            sys.exit(f"the manifest schema accepts a manifest with: {what}")
    print(f"ok: {len(examples)} graph examples valid, {len(bad)} invalid documents rejected")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
