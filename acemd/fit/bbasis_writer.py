"""pacemaker's B-basis ``.yaml`` text from its tree (``BasisSpec.to_tree``).

The layout follows the files pacemaker writes (``metadata``, ``global``,
``species`` blocks with their keys in pacemaker's order, one flow mapping per
function in ``nbody``), so pyace, pacemaker and acemd's reader take it.
Numbers are written exactly: integers as integers, other floats by their
shortest round-trip repr, so reading the file back gives the same doubles.
"""
from __future__ import annotations

import json
import math
import re

import yaml

__all__ = ["format_bbasis_yaml", "format_tree", "format_number"]


def format_number(value) -> str:
    """An int, or a float that reads back to the same double (integral floats as integers)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number here")
    if isinstance(value, int):
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"cannot write the non-finite number {v}")
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    text = repr(v)
    if "e" in text and "." not in text:     # YAML 1.1 (PyYAML) reads 1e-05 as a string, 1.0e-05 as a float
        text = text.replace("e", ".0e", 1)
    return text


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\- ]*")


def _scalar(value) -> str:
    """A string plain when YAML reads it back unchanged, else double-quoted on one line (JSON escapes)."""
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value == value.strip() and yaml.safe_load(value) == value:
            return value
        return json.dumps(value)
    return format_number(value)


def _flow(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _function_line(item: dict) -> str:
    parts = [f"type: {item['type']}", f"nr: {_flow(item['nr'])}", f"nl: {_flow(item['nl'])}"]
    if "lint" in item:
        parts.append(f"lint: {_flow(item['lint'])}")
    parts.append(f"c: {_flow(item['c'])}")
    return "      - {" + ", ".join(parts) + "}"


def format_tree(tree: dict) -> str:
    """The text of a B-basis tree {metadata?, global, species}."""
    lines = []
    meta = tree.get("metadata")
    if meta:
        lines.append("metadata:")
        for k, v in meta.items():
            lines.append(f"  {_scalar(str(k))}: {_scalar(str(v))}")
    lines.append("global:")
    for k, v in tree["global"].items():
        lines.append(f"  {k}: {_flow(v)}")
    lines.append("species:")
    for block in tree["species"]:
        first = True
        for k, v in block.items():
            if k == "nbody":
                continue
            lines.append(("  - " if first else "    ") + f"{k}: {_flow(v)}")
            first = False
        lines.append("    nbody:" if block.get("nbody") else "    nbody: []")
        for item in block.get("nbody", []):
            lines.append(_function_line(item))
    return "\n".join(lines) + "\n"


def format_bbasis_yaml(spec, coeffs, metadata=None) -> str:
    """pacemaker's B-basis ``.yaml`` of ``spec`` (an ``acemd.fit.basis.BasisSpec``) with ``coeffs``.

    ``coeffs``: per element (list in ``spec.elements`` order, or dict) an array
    (nfuncs, ndensity) in the spec's function order; ``metadata``: str -> str.
    ``read_bbasis_yaml`` of the text gives ``spec.to_potential(coeffs)``.
    """
    return format_tree(spec.to_tree(coeffs, metadata))
