"""YAML as spec/FORMAT.md section 3.7 reads it, written from the spec text:
PyYAML's parser with the spec's scalar table in place of YAML 1.1's
resolvers. Quoted scalars are strings; plain ones go through `resolve`;
tags, anchors, aliases and refused spellings are errors."""
import re

import yaml

NULL = re.compile(r"(|~|null|Null|NULL)\Z")
TRUE = re.compile(r"(true|True|TRUE)\Z")
FALSE = re.compile(r"(false|False|FALSE)\Z")
INT = re.compile(r"-?(0|[1-9][0-9]*)\Z")
FLOAT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z")
REFUSED = re.compile(
    r"[-+]?(0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|\.(inf|Inf|INF|nan|NaN|NAN)"
    r"|([0-9][0-9_]*(:[0-5]?[0-9])*(\.[0-9_]*)?|\.[0-9_]+)([eE][-+]?[0-9]+)?)\Z"
)


class Refused(ValueError):
    pass


def resolve(text):
    """The value of a plain scalar (section 3.7's table, first match wins)."""
    if NULL.match(text):
        return None
    if TRUE.match(text):
        return True
    if FALSE.match(text):
        return False
    if INT.match(text):
        value = int(text)
        if -(2**63) <= value <= 2**64 - 1:
            return value
        raise Refused(f"integer out of range: {text}")
    if FLOAT.match(text) and ("." in text or "e" in text or "E" in text):
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise Refused(f"float out of range: {text}")
        return value
    if REFUSED.match(text):
        raise Refused(f"refused spelling: {text}")
    return text


class PlainText(str):
    """A string that came from a plain scalar (format_version keeps its text)."""


class SpecLoader(yaml.SafeLoader):
    """PyYAML's parser and composer with no implicit resolvers: every plain
    scalar keeps its text and its untagged node, for `resolve` to read."""


    def resolve(self, kind, value, implicit):
        # Called only for nodes without an explicit tag.
        if kind is yaml.ScalarNode:
            return PLAIN if implicit[0] else STR
        return SEQ if kind is yaml.SequenceNode else MAP


PLAIN, STR = "nnb:plain", "nnb:quoted"
SEQ, MAP = "nnb:seq", "nnb:map"


def load(text):
    """Parses one document by the spec's rules; raises on anything refused."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    for event in yaml.parse(text, Loader=SpecLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise Refused(f"anchor or alias at line {event.start_mark.line + 1}")
    loader = SpecLoader(text)
    try:
        node = loader.get_single_node()
        return _to_python(loader, node)
    finally:
        loader.dispose()


def _to_python(loader, node):
    expected = {yaml.ScalarNode: (PLAIN, STR), yaml.SequenceNode: (SEQ,), yaml.MappingNode: (MAP,)}[type(node)]
    if node.tag not in expected:
        raise Refused(f"tag {node.tag} at line {node.start_mark.line + 1}")
    if node.tag == PLAIN:
        value = resolve(node.value)
        return PlainText(node.value) if isinstance(value, float) else value
    if node.tag == STR:
        return node.value
    if node.tag == SEQ:
        return [_to_python(loader, n) for n in node.value]
    out = {}
    for k, v in node.value:
        key = _to_python(loader, k)
        if key in out:
            raise Refused(f"duplicate key {key!r} at line {k.start_mark.line + 1}")
        out[key] = _to_python(loader, v)
    return out


def plain_floats_to_numbers(value):
    """The JSON view of a loaded document: plain-scalar floats become floats."""
    if isinstance(value, PlainText):
        return float(value)
    if isinstance(value, list):
        return [plain_floats_to_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_floats_to_numbers(v) for k, v in value.items()}
    return value
