"""The battery's outputs: the table on stdout, the YAML/JSON report, the HDF5 raw data.

HDF5 layout: one group per context and property, ``/acemd/<property>/<key>`` and
``/reference/<property>/<key>`` (nested dicts are subgroups; ``unit`` attributes), the entries
as a table in ``/entries`` (name, value, error, reference, difference), and the input text,
acemd version and potential's SHA-256 as root attributes.
"""
from __future__ import annotations

import json

import numpy as np

from .. import __version__
from ..io.atomic import replaced_atomically


def _fmt(x, width=12):
    if x is None:
        return " " * (width - 1) + "-"
    return f"{x:{width}.5g}"


def table_lines(results, reference_label=None) -> list[str]:
    """The side-by-side table: property, unit, value (+- error), reference, difference, flags."""
    ref = reference_label or "reference"
    head = f"{'property':24s} {'unit':9s} {'acemd':>12s} {'+-':>9s} {ref[:12]:>12s} {'difference':>12s} {'rel.':>8s}  flags"
    lines = [head, "-" * len(head)]
    for result in results:
        for e in result.entries:
            rel = e.relative_difference
            err = "" if e.error is None or not np.isfinite(e.error) else f"{e.error:9.2g}"
            lines.append(f"{e.name:24s} {e.unit:9s} {_fmt(e.value)} {err:>9s} {_fmt(e.reference)} "
                         f"{_fmt(e.difference)} {'' if rel is None else f'{100 * rel:7.2f}%':>8s}  "
                         + ", ".join(e.flags))
    return lines


def report_dict(results, metadata, reference_info) -> dict:
    out = dict(metadata)
    out["reference"] = reference_info
    out["properties"] = {}
    for r in results:
        out["properties"][r.name] = {"entries": [e.as_dict() for e in r.entries], "info": _jsonable(r.info),
                                     "max_gamma": r.max_gamma}
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_report(path, report: dict):
    """YAML (or JSON when the name ends in .json), replaced atomically."""
    import yaml
    report = _jsonable(report)
    with replaced_atomically(path) as tmp:
        if str(path).endswith(".json"):
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        else:
            tmp.write_text(yaml.safe_dump(report, sort_keys=False, width=110))


def _put(group, key, value, units):
    if isinstance(value, dict):
        sub = group.create_group(key)
        for k, v in value.items():
            _put(sub, str(k), v, {})
        return
    group[key] = np.asarray(value)
    if key in units:
        group[key].attrs["unit"] = units[key]


def write_data(path, contexts: dict, results, metadata: dict):
    """HDF5 of every context's raw data (``contexts``: {label: [PropertyResult]})."""
    import h5py
    with replaced_atomically(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["acemd_version"] = __version__
        for k in ("input_text", "potential_sha256", "units"):
            if metadata.get(k) is not None:
                f.attrs[k] = str(metadata[k])
        for label, rs in contexts.items():
            g = f.create_group(label)
            for r in rs:
                pg = g.create_group(r.name)
                for key, value in r.data.items():
                    _put(pg, key, value, r.units)
                if r.max_gamma is not None:
                    pg.attrs["max_gamma"] = r.max_gamma
        entries = [e for r in results for e in r.entries]
        nan = float("nan")
        f["entries/name"] = np.array([e.name for e in entries], dtype=h5py.string_dtype())
        f["entries/unit"] = np.array([e.unit for e in entries], dtype=h5py.string_dtype())
        for key in ("value", "error", "reference", "difference"):
            vals = [getattr(e, key) for e in entries]
            f[f"entries/{key}"] = np.array([nan if v is None else float(v) for v in vals])
