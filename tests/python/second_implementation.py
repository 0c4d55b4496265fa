"""Runs the second implementation (nnb_spec.py, written from the spec) against
nnb: the conformance bundles' verdicts, byte-identical re-writes of bundles
nnb wrote, and the verdicts of byte flips and truncations nnb judged.

Usage: second_implementation.py OPS.md CONFORMANCE_DIR CORPUS_DIR VARIANTS.json
"""
import json
import os
import sys

import nnb_spec

# Codes whose rules need each op's rules in code (attribute checks, shape
# inference, parameter dtypes): outside nnb_spec.py's scope, so
# a case whose every nnb code is one of these is counted, not compared.
NOT_COVERED = {"parameter-dtype", "shape", "input-count", "unknown-attribute", "missing-attribute",
               "invalid-attribute", "model"}


def main(ops_md, conformance, corpus, variants_json):
    nnb_spec.OPS.update(nnb_spec.ops_table(ops_md))
    failures = []

    with open(os.path.join(conformance, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    covered = 0
    for case in cases:
        path = os.path.join(conformance, case["file"])
        with open(path, "rb") as f:
            got = nnb_spec.verdict(f.read(), folder=os.path.dirname(path))
        if case["verdict"] in NOT_COVERED:
            continue
        covered += 1
        if got != case["verdict"]:
            failures.append(f"conformance {case['file']}: spec reading gives {got}, cases.json {case['verdict']}")
        if "verify" in case:
            with open(os.path.join(conformance, case["file"]), "rb") as f, \
                    open(os.path.join(conformance, case["verify"]["key"]), encoding="utf-8") as k:
                checked = nnb_spec.verify(f.read(), k.read())
            if checked != case["verify"]["verdict"]:
                failures.append(f"conformance {case['file']}: spec verification gives {checked}, "
                                f"cases.json {case['verify']['verdict']}")

    rewritten = 0
    for name in sorted(os.listdir(corpus)):
        with open(os.path.join(corpus, name), "rb") as f:
            original = f.read()
        try:
            content = nnb_spec.read(original)
        except nnb_spec.Invalid as e:
            failures.append(f"corpus {name}: the spec reading refuses it: {e}")
            continue
        if content["graph"] is not None:
            graph = nnb_spec.canonical_graph(nnb_spec.spec_yaml.load(content["graph"])).encode("utf-8")
            if graph != content["graph"]:
                failures.append(f"corpus {name}: graph.yaml re-written differs:\n{graph.decode()}")
        again = nnb_spec.write(content["manifest"], content["graph"], content["tensors"], content["signatures"])
        rewritten += 1
        if again != original:
            at = next(i for i, (a, b) in enumerate(zip(again, original + b"\0" * len(again))) if a != b)
            failures.append(f"corpus {name}: re-written bytes differ from nnb's at offset {at} "
                            f"(spec {again[at:at + 40]!r}, nnb {original[at:at + 40]!r})")

    with open(variants_json, encoding="utf-8") as f:
        variants = json.load(f)
    compared = skipped = 0
    for v in variants:
        with open(v["file"], "rb") as f:
            got = nnb_spec.verdict(f.read())
        codes = set(v["codes"])
        if codes and codes <= NOT_COVERED:
            skipped += 1
            continue
        compared += 1
        ok = got == "valid" if not codes else got in codes
        if not ok:
            failures.append(f"{os.path.basename(v['file'])} ({v['what']}): spec reading gives {got}, "
                            f"nnb {sorted(codes) or 'valid'}")

    for line in failures[:40]:
        print(line)
    print(f"conformance: {covered} of {len(cases)} cases compared; corpus: {rewritten} bundles re-written; "
          f"variants: {compared} compared, {skipped} outside the scope; {len(failures)} disagreements")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
