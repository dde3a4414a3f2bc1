"""Initial structures: any file ASE reads, or a crystal built from a lattice name.

Two kinds of spec (the ``[structure]`` table of the input)::

    {"file": "POSCAR", "format": "vasp", "index": -1}              # ase.io.read
    {"file": "data.lmp", "format": "lammps-data", "atom_style": "atomic",
     "elements": ["Cu", "Ag"]}                                      # type 1 -> Cu, 2 -> Ag
    {"lattice": "fcc", "element": "Cu", "a": 3.615, "repeat": [4, 4, 4],
     "cubic": True, "rattle": 0.01, "seed": 7}

Both accept ``repeat`` (int or three positive ints), ``rattle`` (Gaussian
displacement standard deviation, Å) and ``seed`` (alias ``rattle_seed``,
default 0).  ``index`` defaults to ASE's choice (the last frame).  ``cubic``
applies to the cubic lattices (default true) and is ignored for files and hcp;
hcp takes ``c`` (default ideal ``a*sqrt(8/3)``) and ``orthorhombic``.
Relative paths are relative to ``base_dir``.  Every problem raises
:class:`StructureError` naming the key (``structure.file``) and the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

LATTICES = ("fcc", "bcc", "hcp", "diamond", "sc")
_CUBIC = ("fcc", "bcc", "diamond", "sc")
_FILE_KEYS = ("file", "format", "index", "atom_style", "style", "elements")
_LATTICE_KEYS = ("lattice", "element", "a", "c", "cubic", "orthorhombic")
_COMMON_KEYS = ("repeat", "rattle", "seed", "rattle_seed")


class StructureError(ValueError):
    """The structure spec or the structure file is unusable (message names key and file)."""


def load_structure(spec: Mapping[str, Any], base_dir=".", *, comm=None,
                   key_prefix: str = "structure"):
    """Build the initial ``ase.Atoms`` from ``spec`` (see the module doc).

    With ``comm``, rank 0 reads/builds and broadcasts the result (errors are
    raised on every rank); without, the calling process does the work.
    """
    if comm is not None:
        from ..parallel.collective import on_root
        atoms = on_root(comm, lambda: _load(spec, base_dir, key_prefix))
        return comm.bcast(atoms, root=0)
    return _load(spec, base_dir, key_prefix)


def _err(prefix, key, msg) -> StructureError:
    return StructureError(f"{prefix}.{key}: {msg}" if key else f"{prefix}: {msg}")


def _load(spec, base_dir, p):
    if not isinstance(spec, Mapping):
        raise _err(p, "", f"must be a table/dict, got {type(spec).__name__}")
    spec = {k: v for k, v in spec.items() if v is not None}
    allowed = _FILE_KEYS + _LATTICE_KEYS + _COMMON_KEYS
    for key in spec:
        if key not in allowed:
            raise _err(p, key, f"unknown key; allowed: {', '.join(allowed)}")
    has_file, has_lattice = "file" in spec, "lattice" in spec
    if has_file == has_lattice:
        raise _err(p, "", "give either 'file' (a structure file) or 'lattice' (with 'element', 'a', "
                          "'repeat'), not both or neither")
    if has_file:
        for key in ("element", "a", "c", "orthorhombic"):
            if key in spec:
                raise _err(p, key, "only applies to a lattice builder, not to 'file'")
        atoms = _read_file(spec, Path(base_dir), p)
        where = f" (file {atoms.info.get('_acemd_source')})"
    else:
        for key in ("format", "index", "atom_style", "style", "elements"):
            if key in spec:
                raise _err(p, key, "only applies to 'file', not to a lattice builder")
        atoms = _build_lattice(spec, p)
        where = ""
    atoms.info.pop("_acemd_source", None)

    repeat = spec.get("repeat", [1, 1, 1])
    if isinstance(repeat, (int, np.integer)) and not isinstance(repeat, bool):
        repeat = [int(repeat)] * 3
    if (not isinstance(repeat, (list, tuple)) or len(repeat) != 3
            or not all(isinstance(r, (int, np.integer)) and not isinstance(r, bool) and r >= 1
                       for r in repeat)):
        raise _err(p, "repeat", f"must be three positive integers like [4, 4, 4], got {repeat!r}")
    if tuple(repeat) != (1, 1, 1):
        if not all(atoms.pbc[d] or repeat[d] == 1 for d in range(3)):
            raise _err(p, "repeat", f"cannot repeat along a non-periodic axis (pbc={atoms.pbc.tolist()})"
                       + where)
        atoms = atoms.repeat(tuple(int(r) for r in repeat))

    rattle = spec.get("rattle", 0.0)
    if isinstance(rattle, bool) or not isinstance(rattle, (int, float)) or not rattle >= 0:
        raise _err(p, "rattle", f"must be a non-negative number (Å), got {rattle!r}")
    seed = spec.get("seed", spec.get("rattle_seed", 0))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise _err(p, "seed", f"must be a non-negative integer, got {seed!r}")
    if rattle > 0:
        rng = np.random.default_rng(int(seed))
        atoms.positions = atoms.positions + rng.normal(0.0, float(rattle), size=(len(atoms), 3))

    _validate(atoms, p, where)
    return atoms


def _read_file(spec, base_dir: Path, p):
    import ase.io
    from ase.data import chemical_symbols
    from ase.io.formats import ioformats

    name = spec["file"]
    if not isinstance(name, (str, Path)) or not str(name):
        raise _err(p, "file", f"must be a file name, got {name!r}")
    path = Path(name)
    if not path.is_absolute():
        path = base_dir / path
    if not path.exists():
        raise _err(p, "file", f"file not found: {path}")
    if path.is_dir():
        raise _err(p, "file", f"is a directory, not a structure file: {path}")
    fmt = spec.get("format")
    if fmt is not None:
        if not isinstance(fmt, str) or fmt not in ioformats:
            raise _err(p, "format", f"unknown ASE format {fmt!r} for {path}; e.g. extxyz, vasp, "
                                    "lammps-data, cif, xyz")
    kwargs: dict[str, Any] = {}
    if fmt == "lammps-data":
        elements = spec.get("elements")
        if not elements:
            raise _err(p, "elements", f"required for LAMMPS data file {path}: the element of each "
                                      "atom type in type order, e.g. [\"Cu\", \"Ag\"]")
        if not isinstance(elements, (list, tuple)) or not all(e in chemical_symbols[1:]
                                                                for e in elements):
            raise _err(p, "elements", f"must be a list of element symbols, got {elements!r}")
        kwargs["Z_of_type"] = {i + 1: chemical_symbols.index(e) for i, e in enumerate(elements)}
        style = spec.get("atom_style", spec.get("style", "atomic"))
        if not isinstance(style, str):
            raise _err(p, "atom_style", f"must be a LAMMPS atom style name, got {style!r}")
        kwargs["atom_style"] = style
        kwargs["units"] = "metal"
    else:
        for key in ("elements", "atom_style", "style"):
            if key in spec:
                raise _err(p, key, "only applies to format = \"lammps-data\"")
    index = spec.get("index")
    if index is not None:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer, str)):
            raise _err(p, "index", f"must be a frame number, got {index!r}")
        kwargs["index"] = index
    try:
        # parallel=False: under MPI ASE would otherwise read on rank 0 and broadcast, which
        # deadlocks or desynchronises the ranks when only rank 0 reads
        atoms = ase.io.read(str(path), format=fmt, parallel=False, **kwargs)
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds
        how = f"as {fmt}" if fmt else "(format guessed from the name/content; set 'format')"
        msg = str(exc) or type(exc).__name__
        if fmt == "lammps-data" and isinstance(exc, KeyError):
            t = exc.args[0] if exc.args else "?"
            t = int(t) if isinstance(t, (int, np.integer)) else t
            raise _err(p, "elements", f"{path} has atom type {t} but 'elements' names only "
                                      f"{len(spec['elements'])} type(s): {list(spec['elements'])}") \
                from None
        if index is not None and isinstance(exc, (StopIteration, IndexError)):
            raise _err(p, "index", f"{index!r} is not a frame of {path}, which has "
                                   f"{_count_frames(path, fmt)} frame(s); frames count from 0, "
                                   "-1 is the last") from None
        raise _err(p, "file", f"cannot read {path} {how}: {msg}") from None
    if isinstance(atoms, list):
        raise _err(p, "index", f"{index!r} selects {len(atoms)} frames of {path}; give one frame number")
    if fmt == "lammps-data":
        n_types = len(spec["elements"])
        z = set(atoms.numbers.tolist())
        allowed_z = set(kwargs["Z_of_type"].values())
        if not z <= allowed_z:
            raise _err(p, "elements", f"{path} has more atom types than the {n_types} elements given")
    atoms.info["_acemd_source"] = str(path)
    return atoms


def _count_frames(path, fmt):
    import ase.io
    try:
        return len(ase.io.read(str(path), index=":", format=fmt, parallel=False))
    except Exception:  # noqa: BLE001 - only for the message
        return "an unknown number of"


def _build_lattice(spec, p):
    from ase.build import bulk
    from ase.data import chemical_symbols

    lattice = spec["lattice"]
    if lattice not in LATTICES:
        raise _err(p, "lattice", f"unknown lattice {lattice!r}; choose one of {', '.join(LATTICES)}")
    element = spec.get("element")
    if element is None:
        raise _err(p, "element", f"required with lattice = {lattice!r} (e.g. \"Cu\")")
    if not isinstance(element, str) or element not in chemical_symbols[1:]:
        raise _err(p, "element", f"{element!r} is not a chemical element symbol")
    a = spec.get("a")
    if a is None:
        raise _err(p, "a", f"required with lattice = {lattice!r}: the lattice constant in Å")
    if isinstance(a, bool) or not isinstance(a, (int, float)) or not a > 0:
        raise _err(p, "a", f"must be a positive number (Å), got {a!r}")
    if lattice == "hcp":
        c = spec.get("c", a * np.sqrt(8.0 / 3.0))
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
            raise _err(p, "c", f"must be a positive number (Å), got {c!r}")
        orth = spec.get("orthorhombic", False)
        if not isinstance(orth, bool):
            raise _err(p, "orthorhombic", f"must be true or false, got {orth!r}")
        return bulk(element, "hcp", a=float(a), c=float(c), orthorhombic=orth)
    if "c" in spec:
        raise _err(p, "c", f"only applies to hcp, not to {lattice!r}")
    if "orthorhombic" in spec:
        raise _err(p, "orthorhombic", f"only applies to hcp; use 'cubic' for {lattice!r}")
    cubic = spec.get("cubic", True)
    if not isinstance(cubic, bool):
        raise _err(p, "cubic", f"must be true or false, got {cubic!r}")
    return bulk(element, lattice, a=float(a), cubic=cubic)


def _validate(atoms, p, where):
    if len(atoms) == 0:
        raise _err(p, "", f"the structure has no atoms{where}")
    if not np.all(np.isfinite(atoms.positions)):
        raise _err(p, "", f"the structure has NaN or inf positions{where}")
    cell = atoms.cell.array
    pbc = atoms.pbc
    if not np.all(np.isfinite(cell)):
        raise _err(p, "", f"the cell {cell.tolist()} has NaN or inf entries{where}")
    if pbc.any():
        rows = cell[pbc]
        if np.any(np.linalg.norm(rows, axis=1) < 1e-8) or np.linalg.matrix_rank(rows, tol=1e-8) < len(rows):
            raise _err(p, "", f"periodic along axes {np.flatnonzero(pbc).tolist()} but the cell "
                              f"{cell.tolist()} has zero length/volume there{where}; give the "
                              "structure a cell or make it non-periodic")
        if pbc.all() and abs(np.linalg.det(cell)) < 1e-6:
            raise _err(p, "", f"the periodic cell has zero volume{where}")
