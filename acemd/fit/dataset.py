"""Reference data for fitting: pacemaker pickles and ASE formats -> validated Structures.

A fit needs, per structure, the atoms, a total-energy target, forces and (optionally)
a stress.  pacemaker keeps these in pandas pickles with the columns ``ase_atoms``,
``energy``, ``energy_corrected``, ``forces`` and optionally ``stress``, ``name``,
``w_energy``, ``w_forces``, ``w_factor``; every other format is read by
``ase.io.read``.  Pickles written by pacemaker reference its own DataFrame subclass
(``pyace.preparedata.DataFrameWithMetadata``): :func:`read_pickled_dataframe` maps
such classes onto plain pandas ones, so pyace need not be installed.

Energies.  ``Structure.energy`` is the target the fit uses.  As read, it is the
``energy_corrected`` column when a pickle has one, else the ``energy`` column / the
file's energy; ``Structure.raw_energy`` keeps the uncorrected total energy
(``energy`` column, or the file's energy), which :func:`reference_energies`
turns into ``energy_corrected = raw_energy - sum_atoms E_ref(element)``
(pacemaker's ``data.reference_energy``).  From ASE formats the energy is the
force-consistent ``free_energy`` when the file has it (what pacemaker's
``pace_collect`` stores), else ``energy``.

Stresses are Voigt 6-vectors (xx yy zz yz xz xy) in eV/Å³ with ASE's sign
(``atoms.get_stress()``: positive = tensile).  pacemaker's ``pace_collect`` writes
its ``stress`` column with ``get_stress()``, i.e. in the same convention; ASE's
readers convert VASP's kbar (and its opposite sign) to it.  None of pacemaker's
example pickles has a ``stress`` column.

Pickles execute code when loaded: load only files you trust.
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = [
    "DatasetError", "Structure", "load_structures", "read_pickled_dataframe",
    "validate_structures", "reference_energies", "apply_reference_energies",
    "split_train_test", "MIN_DISTANCE", "MAX_ERRORS_LISTED",
]

MIN_DISTANCE = 0.5          # Å: closer atoms (periodic images included) are a broken structure
MAX_ERRORS_LISTED = 20      # bad entries listed in one DatasetError
MAX_STRESS = 5.0            # eV/Å³ (= 801 GPa): larger stresses are taken for kbar/GPa numbers
EXTREME_EPA = (-20.0, 250.0)  # eV/atom: pacemaker switches to reference_energy: auto outside
PICKLE_SUFFIXES = (".pckl", ".pkl", ".pickle")
_FOREIGN_MODULES = ("pyace", "tensorpotential")


class DatasetError(ValueError):
    """A reference-data file or entry cannot be used; the message says which and what to do."""


class _ForeignClassError(pickle.UnpicklingError):
    """A pyace/tensorpotential class that has no pandas stand-in."""


@dataclass
class Structure:
    """One reference structure with its fit targets.

    ``energy`` is the total-energy target in eV (see the module docstring for which
    column); ``raw_energy`` the uncorrected total energy or None when the file holds
    only ``energy_corrected``.  ``forces`` (N,3) eV/Å or None (energy-only entries);
    ``stress`` Voigt (6,) eV/Å³, ASE sign, or None.  ``energy_weight``,
    ``force_weights`` (N,) and ``weight_factor`` come from the ``w_energy``,
    ``w_forces`` and ``w_factor`` columns.  ``source`` says where the entry came from
    (file and row label / frame index) for messages.
    """

    atoms: Any
    energy: float
    forces: np.ndarray | None
    stress: np.ndarray | None = None
    name: str = ""
    source: str = ""
    energy_weight: float | None = None
    force_weights: np.ndarray | None = None
    raw_energy: float | None = None
    weight_factor: float | None = None

    @property
    def natoms(self) -> int:
        return len(self.atoms)


# ---------------------------------------------------------------------------
# pickles
# ---------------------------------------------------------------------------


def _pandas_stand_in(module: str, name: str):
    """The plain pandas class for a pacemaker/tensorpotential class, or None."""
    import pandas as pd

    if module.split(".")[0] not in _FOREIGN_MODULES:
        return None
    if "DataFrame" in name:
        return pd.DataFrame
    if "Series" in name:
        return pd.Series
    raise _ForeignClassError(
        f"the pickle references {module}.{name}, a class of {module.split('.')[0]} that acemd "
        "cannot replace by a pandas class; re-save the data as a plain pandas DataFrame "
        "(df = pd.DataFrame(df); df.to_pickle(...)) where that package is installed")


def _unpicklers():
    """Unpickler classes to try in order: the fast C one, then pandas' compatibility one."""
    classes = []

    class _Fast(pickle.Unpickler):
        def find_class(self, module, name):
            return _pandas_stand_in(module, name) or super().find_class(
                _modern_module(module), name)

    classes.append(_Fast)
    try:  # pandas' shims for pickles of older pandas (Int64Index, old block layout, ...)
        from pandas.compat.pickle_compat import Unpickler as _PandasCompat
    except ImportError:  # pragma: no cover - depends on the pandas version
        return classes

    class _Compat(_PandasCompat):
        def find_class(self, module, name):
            return _pandas_stand_in(module, name) or super().find_class(
                _modern_module(module), name)

    classes.append(_Compat)
    return classes


def _modern_module(module: str) -> str:
    """numpy 2 renamed numpy.core to numpy._core (the old path still works, with a warning)."""
    if module == "numpy.core" or module.startswith("numpy.core."):
        try:
            import numpy._core  # noqa: F401
        except ImportError:  # numpy < 2
            return module
        return "numpy._core" + module[len("numpy.core"):]
    return module


def _open_maybe_compressed(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic[:3] == b"BZh":
        return bz2.open(path, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb")
    return open(path, "rb")


def read_pickled_dataframe(path) -> Any:
    """The pandas DataFrame pickled in ``path`` (gzip/bz2/xz or plain), without pyace.

    Classes of ``pyace*``/``tensorpotential*`` modules that subclass pandas frames
    (pacemaker's ``DataFrameWithMetadata``) load as ``pandas.DataFrame``; pickles of
    older pandas versions go through pandas' own compatibility unpickler.
    """
    import pandas as pd

    path = Path(path)
    errors = []
    for unpickler in _unpicklers():
        try:
            with _open_maybe_compressed(path) as fh, warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                obj = unpickler(fh).load()
            break
        except _ForeignClassError as exc:
            raise DatasetError(f"{path}: {exc}") from exc
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read the file ({exc}); is it complete?") from exc
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError,
                ValueError) as exc:
            errors.append(exc)
    else:
        raise DatasetError(f"{path}: cannot unpickle the data ({errors[-1]!r}): the file is "
                           "damaged, not a pickle, or needs a module or class this Python does "
                           "not have; re-save it as a plain pandas DataFrame with a current "
                           "pandas") from errors[-1]
    if not isinstance(obj, pd.DataFrame):
        raise DatasetError(f"{path}: the pickle holds a {type(obj).__name__}, not a pandas "
                           "DataFrame with the columns ase_atoms, energy/energy_corrected, forces")
    return obj


def _is_missing(value) -> bool:
    """None, NaN or pandas' NA: a cell pandas fills in for a column another file had."""
    if value is None:
        return True
    if np.ndim(value) == 0 and not isinstance(value, (str, bytes)):
        import pandas as pd

        try:
            return bool(pd.isna(value))
        except (TypeError, ValueError):
            return False
    return False


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gzip", ".gz", ".bz2", ".xz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in PICKLE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _is_pickle(path: Path) -> bool:
    name = path.name.lower()
    for suffix in (".gzip", ".gz", ".bz2", ".xz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.endswith(PICKLE_SUFFIXES)


def _as_float_array(value, where, what, problems):
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        _note(problems, where, f"{what} is not numeric ({type(value).__name__})")
        return None


def _voigt(stress, where, problems):
    """ASE-convention Voigt 6-vector from a 6-vector or a 3x3 matrix."""
    arr = _as_float_array(stress, where, "stress", problems)
    if arr is None:
        return None
    if arr.shape == (6,):
        return arr.copy()
    if arr.shape == (3, 3):
        return arr[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]].copy()
    _note(problems, where, f"stress has shape {arr.shape}; give 6 Voigt components "
                           "(xx yy zz yz xz xy, eV/Å³) or a 3x3 matrix")
    return None


def _structures_from_dataframe(df, path: Path, energy_key, problems) -> list[Structure]:
    cols = set(df.columns)
    if "ase_atoms" not in cols:
        raise DatasetError(f"{path}: no 'ase_atoms' column (columns: {sorted(map(str, cols))}); "
                           "pacemaker datasets hold the structures as ASE Atoms in 'ase_atoms'")
    if energy_key is not None:
        if energy_key not in cols:
            raise DatasetError(f"{path}: no column {energy_key!r} (the energy key asked for); "
                               f"columns: {sorted(map(str, cols))}")
        target_col = energy_key
    elif "energy_corrected" in cols:
        target_col = "energy_corrected"
    elif "energy" in cols:
        target_col = "energy"
    else:
        raise DatasetError(f"{path}: neither 'energy' nor 'energy_corrected' column "
                           f"(columns: {sorted(map(str, cols))}); add the total energies in eV")
    stem = _stem(path)
    out = []
    columns = list(df.columns)
    for label, row in zip(df.index, df.itertuples(index=False, name=None)):
        rec = dict(zip(columns, row))
        where = f"{path} row {label!r}"
        problems.setdefault(where, [])
        atoms = rec["ase_atoms"]
        if not hasattr(atoms, "get_chemical_symbols"):
            _note(problems, where, f"ase_atoms holds a {type(atoms).__name__}, not ASE Atoms")
            continue
        atoms = atoms.copy()
        atoms.calc = None
        name = rec.get("name")
        out.append(_make_structure(
            atoms, rec[target_col], rec.get("energy"), rec.get("forces"), rec.get("stress"),
            rec.get("w_energy"), rec.get("w_forces"), rec.get("w_factor"),
            name if isinstance(name, str) and name else f"{stem}:{label}", where, problems))
    return out


def _make_structure(atoms, energy, raw, forces, stress, w_e, w_f, w_x, name, where, problems):
    def scalar(v, what):
        if _is_missing(v):
            return None
        try:
            return float(v)
        except (TypeError, ValueError):
            _note(problems, where, f"{what} is not a number ({v!r})")
            return None

    e = scalar(energy, "energy")
    f = None if _is_missing(forces) else _as_float_array(forces, where, "forces", problems)
    s = None if _is_missing(stress) else _voigt(stress, where, problems)
    wf = None if _is_missing(w_f) else _as_float_array(w_f, where, "w_forces", problems)
    return Structure(atoms=atoms, energy=e if e is not None else float("nan"), forces=f,
                     stress=s, name=str(name), source=where,
                     energy_weight=scalar(w_e, "w_energy"), force_weights=wf,
                     raw_energy=scalar(raw, "energy"), weight_factor=scalar(w_x, "w_factor"))


# ---------------------------------------------------------------------------
# ASE formats
# ---------------------------------------------------------------------------


def _lookup(atoms, key, per_atom):
    results = atoms.calc.results if atoms.calc is not None else {}
    if key in results:
        return results[key]
    table = atoms.arrays if per_atom else atoms.info
    return table.get(key)


def _structures_from_ase(path: Path, energy_key, forces_key, stress_key, problems):
    import ase.io

    try:
        frames = ase.io.read(str(path), index=":", parallel=False)   # every rank reads for itself
    except Exception as exc:  # ASE raises many types for unreadable files
        raise DatasetError(f"{path}: ASE cannot read this file ({type(exc).__name__}: {exc}); "
                           "give a pacemaker pickle (.pckl.gzip) or a format ase.io.read reads "
                           "(extxyz, OUTCAR, vasprun.xml, ...)") from exc
    if not isinstance(frames, list):
        frames = [frames]
    stem = _stem(path)
    out = []
    for i, atoms in enumerate(frames):
        where = f"{path} frame {i}"
        problems.setdefault(where, [])
        if energy_key is not None:
            energy = _lookup(atoms, energy_key, False)
        else:
            energy = _lookup(atoms, "free_energy", False)
            if energy is None:
                energy = _lookup(atoms, "energy", False)
        if energy is None:
            _note(problems, where, f"no energy ({energy_key or 'free_energy/energy'}) in the "
                                   "file; label the structure or pass energy_key")
            continue
        forces = _lookup(atoms, forces_key or "forces", True)
        stress = _lookup(atoms, stress_key or "stress", False)
        if stress is None and stress_key is None and atoms.info.get("virial") is not None:
            stress = _stress_from_virial(atoms, atoms.info["virial"], where, problems)
        clean = atoms.copy()
        clean.calc = None
        out.append(_make_structure(clean, energy, energy, forces, stress, None, None, None,
                                   f"{stem}:{i}", where, problems))
    return out


def _stress_from_virial(atoms, virial, where, problems):
    """ASE stress = -virial / volume (extxyz ``virial``: 3x3 or 9 numbers, eV)."""
    arr = _as_float_array(virial, where, "virial", problems)
    if arr is None:
        return None
    if arr.size == 9:
        arr = arr.reshape(3, 3)
    volume = abs(float(np.linalg.det(atoms.cell.array)))
    if arr.shape != (3, 3) or not volume > 0:
        _note(problems, where, f"virial of shape {arr.shape} for a cell of volume {volume:g} Å³; "
                               "give 3x3 (eV) for a periodic cell")
        return None
    return -arr / volume


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------


def _cell_problem(atoms) -> str | None:
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not np.all(np.isfinite(cell)):
        return "the cell has NaN or inf entries"
    if not pbc.any():
        return None
    per = np.flatnonzero(pbc)
    lengths = np.linalg.norm(cell, axis=1)
    zero = [int(a) for a in per if lengths[a] < 1e-8]
    if zero:
        return (f"periodic along axis {zero} but the cell vector there is zero (cell "
                f"{np.round(cell, 6).tolist()}): a molecule or cluster marked periodic? set "
                "pbc False there, or give the real cell")
    rows = cell[per]
    if np.linalg.matrix_rank(rows, tol=1e-8 * max(lengths.max(), 1.0)) < len(per):
        return (f"periodic along axes {per.tolist()} but those cell vectors are "
                f"collinear/coplanar (cell {np.round(cell, 6).tolist()}); give a cell of "
                "non-zero volume or make those directions non-periodic")
    return None


def _cell_heights(cell) -> np.ndarray:
    """Distances between opposite faces (Å); the vector lengths for a flat cell."""
    volume = abs(float(np.linalg.det(cell)))
    if volume == 0.0:
        return np.linalg.norm(cell, axis=1)
    return volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def _close_contact(atoms, min_distance) -> str | None:
    """A message for the closest pair under ``min_distance`` (images included), or None."""
    from scipy.spatial import cKDTree

    from acemd.neighbors import periodic_images

    n = len(atoms)
    ext, owner, shift = periodic_images(atoms.positions, atoms.cell.array, atoms.pbc, min_distance)
    pairs = cKDTree(ext).query_pairs(min_distance, output_type="ndarray")
    if len(pairs) == 0:
        return None
    pairs = pairs[(pairs[:, 0] < n) | (pairs[:, 1] < n)]
    if len(pairs) == 0:
        return None
    d = np.linalg.norm(ext[pairs[:, 0]] - ext[pairs[:, 1]], axis=1)
    k = int(np.argmin(d))
    a, b = (int(x) for x in pairs[k])
    i, j = int(owner[a]), int(owner[b])
    rel = shift[b] - shift[a]
    msg = (f"atoms {i} and {j} are {d[k]:.3f} Å apart (minimum {min_distance} Å); "
           f"{len(pairs)} close contact(s)")
    if rel.any():
        heights = _cell_heights(atoms.cell.array)
        extent = np.ptp(atoms.positions, axis=0)
        msg += (f", through the periodic image shifted by {rel.tolist()} cells (cell heights "
                f"{np.round(heights, 3).tolist()} Å, atoms span {np.round(extent, 3).tolist()} Å "
                "in x,y,z): is the cell too small, in the wrong units, or is a molecule marked "
                "periodic?")
    else:
        msg += ": duplicated atoms or positions in the wrong units?"
    return msg


def _check(s: Structure, elements, require_forces, min_distance) -> list[str]:
    atoms = s.atoms
    n = len(atoms)
    issues = []
    if n == 0:
        return ["the structure has no atoms"]
    if elements is not None:
        bad = sorted(set(atoms.get_chemical_symbols()) - set(elements))
        if bad:
            issues.append(f"element(s) {bad} not among the potential's elements {list(elements)}")
    if not np.all(np.isfinite(atoms.positions)):
        issues.append("positions contain NaN or inf")
    if not np.isfinite(s.energy):
        issues.append(f"energy is {s.energy} (NaN/inf)")
    elif s.raw_energy is not None and not np.isfinite(s.raw_energy):
        issues.append(f"the uncorrected 'energy' is {s.raw_energy} (NaN/inf)")
    if s.forces is None:
        if require_forces:
            issues.append("no forces (pass allow_energy_only=True to fit energies alone)")
    elif s.forces.shape != (n, 3):
        issues.append(f"forces have shape {s.forces.shape}, expected ({n}, 3) for {n} atoms")
    elif not np.all(np.isfinite(s.forces)):
        issues.append("forces contain NaN or inf")
    if s.stress is not None:
        if not np.all(np.isfinite(s.stress)):
            issues.append("stress contains NaN or inf")
        elif not np.all(atoms.pbc):
            issues.append("a stress is given but the structure is not periodic in all three "
                          "directions; remove the stress or make the structure periodic")
        elif np.abs(s.stress).max() > MAX_STRESS:
            issues.append(f"stress component {np.abs(s.stress).max():.4g} eV/Å³ exceeds "
                          f"{MAX_STRESS} eV/Å³ (801 GPa): the stress is probably in kbar or GPa; "
                          "convert to eV/Å³ (ASE convention: atoms.get_stress())")
    if s.energy_weight is not None and not (np.isfinite(s.energy_weight) and s.energy_weight >= 0):
        issues.append(f"w_energy is {s.energy_weight}; weights must be finite and >= 0")
    if s.force_weights is not None:
        if s.force_weights.shape != (n,):
            issues.append(f"w_forces has shape {s.force_weights.shape}, expected ({n},)")
        elif not (np.all(np.isfinite(s.force_weights)) and np.all(s.force_weights >= 0)):
            issues.append("w_forces contains NaN, inf or negative values")
    if s.weight_factor is not None and not (np.isfinite(s.weight_factor) and s.weight_factor >= 0):
        issues.append(f"w_factor is {s.weight_factor}; it must be finite and >= 0")
    cell_msg = _cell_problem(atoms)
    if cell_msg:
        issues.append(cell_msg)
    elif np.all(np.isfinite(atoms.positions)):
        close = _close_contact(atoms, min_distance)
        if close:
            issues.append(close)
    return issues


def _note(problems: dict, where: str, msg: str) -> None:
    problems.setdefault(where, []).append(msg)


def _raise_collected(problems: dict, what="reference data"):
    """One DatasetError listing each bad entry (all its issues on one line), if any."""
    bad = [(where, msgs) for where, msgs in problems.items() if msgs]
    if not bad:
        return
    files = sorted({where.split(" row ")[0].split(" frame ")[0] for where, _ in bad})
    lines = [f"  {where}: {'; '.join(msgs)}" for where, msgs in bad[:MAX_ERRORS_LISTED]]
    more = len(bad) - MAX_ERRORS_LISTED
    if more > 0:
        lines.append(f"  ... and {more} more")
    raise DatasetError(
        f"{len(bad)} bad entr{'y' if len(bad) == 1 else 'ies'} in the {what} "
        f"({', '.join(files)}):\n" + "\n".join(lines) +
        "\nFix or remove these entries in the data file(s); no structure was dropped silently.")


def validate_structures(structures: Sequence[Structure], elements=None, *,
                        allow_energy_only=False, min_distance=MIN_DISTANCE) -> None:
    """Raise DatasetError listing every bad entry (up to MAX_ERRORS_LISTED named).

    Checks: empty structures, elements outside ``elements``, NaN/inf positions,
    energies, forces, stresses and weights, forces shaped other than (N,3), missing
    forces (unless ``allow_energy_only``), stresses of non-periodic structures or of
    kbar-like size, periodic axes with a zero or degenerate cell vector, and atoms
    closer than ``min_distance`` Å (periodic images included).
    """
    problems: dict[str, list[str]] = {}
    for s in structures:
        for msg in _check(s, elements, not allow_energy_only, min_distance):
            _note(problems, s.source, msg)
    _raise_collected(problems)


def load_structures(paths, elements=None, *, energy_key=None, forces_key=None, stress_key=None,
                    allow_energy_only=False, min_distance=MIN_DISTANCE,
                    datapath=None) -> list[Structure]:
    """Read and validate reference structures from one path or a list of paths.

    Pickles (``.pckl``/``.pkl``, optionally ``.gzip``/``.gz``/``.bz2``/``.xz``) are
    pacemaker DataFrames; any other file goes through ``ase.io.read(path, index=":")``.
    ``energy_key`` names the energy column (pickles) or result/info key (ASE files) to
    use as the target instead of the default (see the module docstring);
    ``forces_key``/``stress_key`` do the same for ASE files.  A path that is not a file
    is looked up in ``datapath`` (pacemaker's ``data.datapath``; default: the
    ``PACEMAKERDATAPATH`` environment variable), as pacemaker does.  Every bad entry of
    every file is reported in one DatasetError (:func:`validate_structures`).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if datapath is None:
        datapath = os.environ.get("PACEMAKERDATAPATH")
    paths = [_find(Path(p), datapath) for p in paths]
    if not paths:
        raise DatasetError("no dataset file given; name at least one file")
    problems: dict[str, list[str]] = {}   # entry -> issues, in file and row order
    structures: list[Structure] = []
    for path in paths:
        if not path.is_file():
            raise DatasetError(f"{path}: no such file; check the path (relative paths are taken "
                               "from the input file's folder, then from data.datapath)")
        if _is_pickle(path):
            df = read_pickled_dataframe(path)
            got = _structures_from_dataframe(df, path, energy_key, problems)
        else:
            got = _structures_from_ase(path, energy_key, forces_key, stress_key, problems)
        if not got and not any(where.startswith(str(path)) for where in problems):
            raise DatasetError(f"{path}: the file holds no structures")
        structures.extend(got)
    for s in structures:
        for msg in _check(s, elements, not allow_energy_only, min_distance):
            _note(problems, s.source, msg)
    _raise_collected(problems)
    return structures


def _find(path: Path, datapath) -> Path:
    if path.is_file() or not datapath:
        return path
    return Path(datapath) / path


# ---------------------------------------------------------------------------
# reference energies
# ---------------------------------------------------------------------------


def _counts(structures, elements):
    index = {e: k for k, e in enumerate(elements)}
    counts = np.zeros((len(structures), len(elements)))
    for i, s in enumerate(structures):
        for sym in s.atoms.get_chemical_symbols():
            counts[i, index[sym]] += 1
    return counts


def _auto_reference(structures, elements):
    """pacemaker's ``reference_energy: auto`` as per-element energies (eV).

    Least squares (pseudo-inverse) of the raw total energies on the element counts,
    then one per-atom shift that puts the corrected energy per atom of the structure
    with the largest volume per atom (the most dilute, e.g. an isolated atom) at zero.
    The shift is folded into the returned per-element values.
    """
    labelled = [s for s in structures if s.raw_energy is not None]
    if not labelled:
        raise DatasetError("reference_energy: auto needs the uncorrected total energies (an "
                           "'energy' column or energies from the file), but the data has only "
                           "'energy_corrected'; give reference energies as a mapping, or none")
    present = sorted({sym for s in labelled for sym in s.atoms.get_chemical_symbols()})
    counts = _counts(labelled, present)
    energies = np.array([s.raw_energy for s in labelled])
    if np.linalg.matrix_rank(counts) < len(present):
        warnings.warn(f"reference_energy: auto: the compositions do not determine one energy per "
                      f"element {present} (too few distinct compositions); the minimum-norm "
                      "least-squares solution is used, as pacemaker does", stacklevel=3)
    e_ref = np.linalg.pinv(counts, rcond=1e-10) @ energies
    corrected_pa = (energies - counts @ e_ref) / counts.sum(axis=1)
    volume_pa = np.array([_volume_per_atom(s.atoms) for s in labelled])
    shift = 0.0
    if volume_pa.max() > 0:
        shift = -corrected_pa[int(np.argmax(volume_pa))]
    out = {e: 0.0 for e in elements}
    out.update({e: float(v - shift) for e, v in zip(present, e_ref)})
    return out


def _volume_per_atom(atoms) -> float:
    """Cell volume per atom, whatever the pbc (as pacemaker's ``atoms.get_volume()``)."""
    return abs(float(np.linalg.det(atoms.cell.array))) / len(atoms)


def apply_reference_energies(structures, e_ref: dict | None) -> list[Structure]:
    """New Structures with ``energy = raw_energy - sum_atoms e_ref[element]`` (eV).

    ``e_ref`` None returns the structures unchanged.  Structures without a raw energy
    (only ``energy_corrected`` in the file) keep their target, as in pacemaker.
    """
    if e_ref is None:
        return list(structures)
    out = []
    for s in structures:
        if s.raw_energy is None:
            out.append(s)
            continue
        missing = sorted(set(s.atoms.get_chemical_symbols()) - set(e_ref))
        if missing:
            raise DatasetError(f"{s.source}: no reference energy for element(s) {missing}; "
                               f"reference energies are given for {sorted(e_ref)}")
        shift = sum(e_ref[sym] for sym in s.atoms.get_chemical_symbols())
        out.append(dataclasses.replace(s, energy=s.raw_energy - shift))
    return out


def reference_energies(structures, elements, setting) -> tuple[dict | None, list[Structure]]:
    """Apply pacemaker's ``data.reference_energy``: returns (E_ref used, new structures).

    ``setting``: None (targets as read; but, as pacemaker does, ``auto`` when a target
    lies outside -20..250 eV/atom, with a warning), a number (the same E_ref for every
    element), a mapping ``{element: eV}`` with an optional ``shift`` (eV/atom added to
    every atom: E_ref(el) = value - shift), or ``"auto"`` (:func:`_auto_reference`).
    When a setting is given, targets are recomputed from the uncorrected energies even
    if the file has ``energy_corrected`` (pacemaker overwrites that column too).  The
    returned dict maps each of ``elements`` to its E_ref (eV); apply it to a separate
    test set with :func:`apply_reference_energies`.
    """
    elements = list(elements)
    if setting is None:
        epa = np.array([s.energy / s.natoms for s in structures])
        if len(epa) and (epa.min() < EXTREME_EPA[0] or epa.max() > EXTREME_EPA[1]):
            warnings.warn(f"energies per atom span {epa.min():.4g}..{epa.max():.4g} eV/atom, "
                          f"outside {EXTREME_EPA[0]}..{EXTREME_EPA[1]} eV/atom: total energies "
                          "without reference energies? Using reference_energy: auto, as "
                          "pacemaker does; set data.reference_energy to silence this",
                          stacklevel=2)
            setting = "auto"
        else:
            return None, list(structures)
    if isinstance(setting, str):
        if setting.strip().lower() != "auto":
            raise DatasetError(f"data.reference_energy = {setting!r}: give 'auto', a number, or "
                               "a mapping {element: energy in eV, shift: eV/atom}; pacemaker's "
                               "named DFT presets are not built into acemd")
        e_ref = _auto_reference(structures, elements)
    elif isinstance(setting, bool):
        raise DatasetError(f"data.reference_energy = {setting!r}: give 'auto', a number or a "
                           "mapping {element: eV}")
    elif isinstance(setting, (int, float)):
        e_ref = {e: float(setting) for e in elements}
    elif isinstance(setting, dict):
        unknown = sorted(set(setting) - set(elements) - {"shift"})
        if unknown:
            raise DatasetError(f"data.reference_energy: {unknown} are not among the elements "
                               f"{elements} (nor 'shift')")
        try:
            shift = float(setting.get("shift", 0.0))
            e_ref = {e: float(setting.get(e, 0.0)) - shift for e in elements}
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"data.reference_energy: values must be numbers in eV ({exc})") \
                from exc
    else:
        raise DatasetError(f"data.reference_energy: unsupported value {setting!r}; give 'auto', "
                           "a number or a mapping {element: eV}")
    if not any(s.raw_energy is not None for s in structures) and structures:
        raise DatasetError("data.reference_energy is set but the data has only 'energy_corrected' "
                           "(no uncorrected 'energy'); remove reference_energy to fit the "
                           "corrected energies as they are")
    return e_ref, apply_reference_energies(structures, e_ref)


# ---------------------------------------------------------------------------
# train/test split
# ---------------------------------------------------------------------------


def split_train_test(structures: Sequence[Structure], test_size, seed=None):
    """(train, test): ``test_size`` < 1 a fraction (rounded down), >= 1 a count.

    The test indices are drawn by ``numpy.random.default_rng(seed)`` alone, so a seed
    gives the same split every time; both parts keep the original order.
    """
    n = len(structures)
    try:
        size = float(test_size)
    except (TypeError, ValueError):
        raise DatasetError(f"data.test_size = {test_size!r}: give a fraction in (0, 1) or a "
                           "count >= 1") from None
    if not np.isfinite(size) or size <= 0:
        raise DatasetError(f"data.test_size = {test_size!r}: must be > 0 (a fraction in (0, 1) "
                           "or a count >= 1)")
    if size < 1:
        n_test = int(n * size)
    else:
        if size != int(size):
            raise DatasetError(f"data.test_size = {test_size!r}: a count must be an integer")
        n_test = int(size)
    if n_test >= n:
        raise DatasetError(f"data.test_size = {test_size!r} takes {n_test} of the {n} structures "
                           "and leaves none to fit; use a smaller test_size")
    if n_test == 0:
        raise DatasetError(f"data.test_size = {test_size!r} of {n} structures selects no test "
                           "structure; use a larger fraction or a count")
    rng = np.random.default_rng(seed)
    test_idx = np.sort(rng.choice(n, size=n_test, replace=False))
    mask = np.zeros(n, dtype=bool)
    mask[test_idx] = True
    train = [s for s, m in zip(structures, mask) if not m]
    test = [s for s, m in zip(structures, mask) if m]
    return train, test

