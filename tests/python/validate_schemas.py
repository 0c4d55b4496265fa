"""Validates graph documents against spec/schema/graph.schema.json with the
`jsonschema` package (an implementation independent of nnbundle), and checks
that the schema also rejects what it must.

Usage: validate_schemas.py SCHEMA_DIR GRAPH.yaml...
"""
import json
import os
import sys

import zipfile
import zlib

import jsonschema
import yaml

import spec_yaml

# Invalid conformance bundles whose fault the YAML rules (3.7) or the schemas
# express: these, and only these, must be refused before a reader's own checks.
SCHEMA_OR_YAML_REJECTS = {
    "unknown_manifest_field.nnb",
    "duplicate_yaml_key.nnb",
    "yaml_refused_scalar.nnb",
    "yaml_tag.nnb",
    "yaml_alias_bomb.nnb",
    "graph_unknown_op.nnb",
}


def conformance_verdicts(schema_dir, manifests, graphs):
    """Reads every conformance bundle's manifest and graph by the spec's YAML
    rules and checks them against the schemas: valid bundles pass, and the
    invalid ones refused at this level are exactly SCHEMA_OR_YAML_REJECTS."""
    folder = os.path.join(schema_dir, "..", "conformance")
    with open(os.path.join(folder, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    rejected = set()
    for case in cases:
        try:
            with zipfile.ZipFile(os.path.join(folder, case["file"])) as z:
                names = z.namelist()
                docs = {n: z.read(n) for n in ("manifest.yaml", "graph.yaml") if n in names}
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, RuntimeError, zlib.error):
            continue  # a container fault: not for a schema to see
        if "manifest.yaml" not in docs:
            continue
        problems = []
        for entry, schema in (("manifest.yaml", manifests), ("graph.yaml", graphs)):
            if entry not in docs:
                continue
            try:
                doc = spec_yaml.plain_floats_to_numbers(spec_yaml.load(docs[entry]))
            except (spec_yaml.Refused, yaml.YAMLError) as e:
                problems.append(f"{entry}: {e}")
                continue
            problems += [f"{entry}: {e.message}" for e in schema.iter_errors(doc)]
        if case["verdict"] == "valid" and problems:
            sys.exit(f"{case['file']} is valid, but: {problems[0]}")
        if problems:
            rejected.add(case["file"])
    if rejected != SCHEMA_OR_YAML_REJECTS:
        sys.exit(f"refused by the YAML rules or schemas: {sorted(rejected)}, expected {sorted(SCHEMA_OR_YAML_REJECTS)}")
    return len(cases)


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
    checked = conformance_verdicts(schema_dir, manifests, graphs)
    print(f"ok: {len(examples)} graph examples valid, {len(bad)} invalid documents rejected, {checked} conformance cases agree")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
