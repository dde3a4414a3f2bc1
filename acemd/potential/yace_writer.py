"""Writer for ``.yace`` files and the ``.yaml``/``.ace``/``.yace`` -> ``.yace`` converter.

The layout follows what pacemaker's ``pace_yaml2yace`` writes (and LAMMPS
ML-PACE reads): top-level keys ``elements``, ``E0``, ``deltaSplineBins``,
``embeddings``, ``bonds``, ``functions`` in that order; one flow-style mapping
per embedding, bond and function; bond keys written as ``[i, j]:``.  Floats are
written with Python's ``repr`` (shortest round-trip form, with a ``.0`` added
to a bare exponent mantissa so that YAML 1.1 readers see a float), so reading
the file back gives bit-identical tables.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import yaml

from .model import CTildePotential, PotentialFileError

__all__ = ["write_yace", "convert_potential", "format_yace"]

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


def _float(x) -> str:
    x = float(x)
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    r = repr(x)
    if "e" in r:
        mant, exp = r.split("e")
        if "." not in mant:
            mant += ".0"
        if exp[0] not in "+-":
            exp = "+" + exp
        r = f"{mant}e{exp}"
    return r


def _int(x) -> str:
    return str(int(x))


def _str(s: str) -> str:
    s = str(s)
    if _PLAIN.match(s):
        try:
            if yaml.safe_load(s) == s:
                return s
        except yaml.YAMLError:
            pass
    return json.dumps(s)          # a JSON string is a valid YAML double-quoted scalar


def _flow(values, fmt) -> str:
    return "[" + ", ".join(fmt(v) for v in values) + "]"


def _nested(arr, fmt) -> str:
    if isinstance(arr, list):
        return "[" + ", ".join(_nested(a, fmt) for a in arr) + "]"
    return fmt(arr)


def format_yace(pot: CTildePotential, header: str | None = None) -> str:
    """The ``.yace`` text of ``pot`` (see :func:`write_yace`)."""
    out = []
    if header:
        out += [f"# {line}".rstrip() for line in header.splitlines()]
    out.append(f"elements: {_flow(pot.elements, _str)}")
    out.append(f"E0: {_flow(np.asarray(pot.E0, dtype=float).tolist(), _float)}")
    out.append(f"deltaSplineBins: {_float(pot.delta_spline_bins)}")
    out.append("embeddings:")
    for mu, e in enumerate(pot.embeddings):
        out.append(f"  {mu}: {{ndensity: {_int(e.ndensity)}, "
                   f"FS_parameters: {_flow(e.fs_parameters, _float)}, npoti: {_str(e.npoti)}, "
                   f"rho_core_cutoff: {_float(e.rho_core_cutoff)}, "
                   f"drho_core_cutoff: {_float(e.drho_core_cutoff)}}}")
    out.append("bonds:")
    for (i, j) in sorted(pot.bonds):
        b = pot.bonds[(i, j)]
        crad = np.asarray(b.radcoefficients, dtype=float)
        crad_txt = _nested(crad.tolist(), _float) if crad.size else "[]"
        out.append(f"  [{_int(i)}, {_int(j)}]: {{nradmax: {_int(b.nradmax)}, lmax: {_int(b.lmax)}, "
                   f"nradbasemax: {_int(b.nradbase)}, radbasename: {_str(b.radbasename)}, "
                   f"radparameters: {_flow(b.radparameters, _float)}, radcoefficients: {crad_txt}, "
                   f"prehc: {_float(b.prehc)}, lambdahc: {_float(b.lambdahc)}, rcut: {_float(b.rcut)}, "
                   f"dcut: {_float(b.dcut)}, rcut_in: {_float(b.rcut_in)}, dcut_in: {_float(b.dcut_in)}, "
                   f"inner_cutoff_type: {_str(b.inner_cutoff_type)}}}")
    out.append("functions:")
    for mu, funcs in enumerate(pot.functions):
        if not funcs:
            out.append(f"  {mu}: []")
            continue
        out.append(f"  {mu}:")
        for f in funcs:
            ms = np.asarray(f.ms_combs, dtype=np.int64)
            ct = np.asarray(f.ctildes, dtype=float)
            out.append(f"    - {{mu0: {_int(f.mu0)}, rank: {_int(f.rank)}, ndensity: {_int(ct.shape[1])}, "
                       f"num_ms_combs: {_int(ms.shape[0])}, mus: {_flow(f.mus, _int)}, "
                       f"ns: {_flow(f.ns, _int)}, ls: {_flow(f.ls, _int)}, "
                       f"ms_combs: {_flow(ms.ravel().tolist(), _int)}, "
                       f"ctildes: {_flow(ct.ravel().tolist(), _float)}}}")
    return "\n".join(out) + "\n"


def write_yace(pot: CTildePotential, path, header: str | None = None) -> Path:
    """Write ``pot`` to ``path`` as a ``.yace`` file, atomically.

    The text goes to a temporary file in the target directory, which then
    replaces ``path`` (``os.replace``): readers never see a partial file.
    ``header`` (optional) is written as leading ``#`` comment lines.
    Returns the path written.
    """
    path = Path(path)
    pot.validate()
    text = format_yace(pot, header)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _read_any(src: Path) -> CTildePotential:
    suffix = src.suffix.lower()
    if suffix in (".yaml", ".yml"):
        from .bbasis import read_bbasis_yaml
        from .yace import load_yaml_tree, read_yace
        tree = load_yaml_tree(src)
        if "species" not in tree and "functions" in tree and "elements" in tree:
            return read_yace(src)             # a C-tilde file with a .yaml name
        return read_bbasis_yaml(src)
    if suffix == ".yace":
        from .yace import read_yace
        return read_yace(src)
    if suffix == ".ace":
        from .ace_format import read_ace    # lazy: optional reader
        return read_ace(src)
    raise PotentialFileError(src, "", f"unknown potential format '{src.suffix}': expected .yaml "
                             "(pacemaker B-basis), .yace or .ace (C-tilde)")


def convert_potential(src, dst) -> CTildePotential:
    """Read a ``.yaml`` (B-basis), ``.yace`` or ``.ace`` potential and write it as ``.yace``.

    Returns the potential that was written.  A B-basis file has no E0, so the
    written E0 is 0 for every element.
    """
    import os

    from . import reading_errors
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise PotentialFileError(src, "", "file not found")
    if dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(src, dst)):
        raise PotentialFileError(dst, "", f"is the source file {src}: refusing to overwrite the input; "
                                          "give another destination")
    if dst.is_dir():
        raise PotentialFileError(dst, "", "is a folder; give the destination file name (e.g. out.yace)")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise PotentialFileError(dst, "", f"cannot write: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (dst.exists() and not os.access(dst, os.W_OK)):
        raise PotentialFileError(dst, "", "cannot write: permission denied")
    with reading_errors(src):
        pot = _read_any(src)
    write_yace(pot, dst, header=f"converted by acemd from {src.name}")
    return pot
