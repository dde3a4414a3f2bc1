"""Tables written by the analyses: CSV, ``#`` comment lines, one header row ``name[unit]``.

``read_table`` reads them back (``{name: array}``, plus units on request);
``pandas.read_csv(path, comment="#")`` and ``numpy.genfromtxt(path, delimiter=",",
names=True, comments="#")`` read them too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


def label(name: str, unit: str | None) -> str:
    return f"{name}[{unit}]" if unit else name


def write_table(path, columns: Sequence[tuple[str, str | None, np.ndarray]],
                comments: Iterable[str] = ()) -> Path:
    """Write ``[(name, unit, values), ...]`` (equal lengths) as CSV with full precision, atomically
    (a temporary file renamed over ``path``: an interrupted write leaves the previous table)."""
    from ..io.atomic import replaced_atomically
    path = Path(path)
    arrays = [np.asarray(c[2]) for c in columns]
    n = {len(a) for a in arrays}
    if len(n) > 1:
        raise ValueError(f"{path}: columns of different lengths {sorted(n)}")
    with replaced_atomically(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for line in comments:
            f.write(f"# {line}\n")
        f.write(",".join(label(name, unit) for name, unit, _ in columns) + "\n")
        rows = len(arrays[0]) if arrays else 0
        fmts = ["{:d}" if a.dtype.kind in "iub" else "{}" if a.dtype.kind in "USO" else "{!r}"
                for a in arrays]      # repr: the shortest text that reads back as the same double
        for i in range(rows):
            f.write(",".join(fmt.format(a[i].item() if fmt != "{!r}" else float(a[i]))
                             for fmt, a in zip(fmts, arrays)) + "\n")
    return path


def read_table(path, with_units: bool = False):
    """Read a table written by :func:`write_table` into ``{name: array}`` (float, or str for text)."""
    path = Path(path)
    header = None
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if header is None:
            header = line.split(",")
            continue
        rows.append(line.split(","))
    if header is None:
        raise ValueError(f"{path}: no header row")
    table = np.array(rows, dtype=object).reshape(-1, len(header))
    names, units = [], {}
    for lab in header:
        name, unit = (lab[:-1].split("[", 1) if lab.endswith("]") else (lab, ""))
        names.append(name)
        units[name] = unit
    data = {}
    for i, name in enumerate(names):
        try:
            data[name] = table[:, i].astype(float)
        except ValueError:
            data[name] = table[:, i].astype(str)
    return (data, units) if with_units else data
