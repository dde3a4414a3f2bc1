"""The reference side by side: an ASE calculator through the same protocol, given values, a dataset.

``[properties.reference]``:

* ``calculator = "module:Class"`` and ``kwargs``: :func:`calculator_factory` makes a new instance
  for each use; the driver runs every property with it too (:class:`~.backends.AseBackend`).
* ``values = {"eos.B0" = 140.0, ...}``: reference values by entry name, in the report's units
  (they take precedence over the calculator's).
* ``dataset = "train.pckl.gzip"``: a pacemaker dataset (pandas DataFrame, ``ase_atoms`` and
  ``energy_corrected`` or ``energy`` columns).  :func:`dataset_references` takes its structures
  that are the input phase up to a uniform scaling (same composition and atom count per cell,
  the same fractional positions and cell shape), fits the same Birch-Murnaghan form to them and
  returns eos.V0/E0/B0 references.

:func:`pair` fills value, reference and difference entry by entry.
"""
from __future__ import annotations

import numpy as np

from .settings import load_reference_class


def calculator_factory(reference, input_path):
    """A function returning a new ASE calculator of ``[properties.reference]`` (None: no calculator)."""
    if not reference or "calculator" not in reference:
        return None
    cls = load_reference_class(reference["calculator"], input_path)
    kwargs = dict(reference.get("kwargs") or {})

    def make():
        return cls(**kwargs)
    return make


def pair(result, reference_result, label):
    """Put the reference run's entries next to ``result``'s (by name)."""
    if reference_result is None:
        return
    for entry in result.entries:
        ref = reference_result.entry(entry.name)
        if ref is not None:
            entry.reference, entry.reference_error, entry.reference_source = ref.value, ref.error, label


def apply_values(results, values, label):
    """Reference values given in the input override the calculator's; unknown names are returned."""
    used = set()
    for result in results:
        for entry in result.entries:
            if entry.name in values:
                entry.reference, entry.reference_error = float(values[entry.name]), None
                entry.reference_source = label
                used.add(entry.name)
    return sorted(set(values) - used)


def _same_shape(a, b, tol=1e-3) -> bool:
    """``a`` is ``b`` scaled uniformly (same species order, cell shape, fractional positions)."""
    if len(a) != len(b) or sorted(a.get_chemical_symbols()) != sorted(b.get_chemical_symbols()):
        return False
    s = (a.get_volume() / b.get_volume()) ** (1.0 / 3.0)
    if not np.allclose(a.cell.array, b.cell.array * s, atol=tol * s * np.abs(b.cell.array).max()):
        return False
    fa, fb = a.get_scaled_positions(), b.get_scaled_positions()
    sa, sb = np.array(a.get_chemical_symbols()), np.array(b.get_chemical_symbols())
    for i in range(len(a)):
        d = fb - fa[i]
        d -= np.round(d)
        ok = (np.linalg.norm(d, axis=1) < tol) & (sb == sa[i])
        if not ok.any():
            return False
    return True


def dataset_references(path, phase, min_points=5) -> tuple[dict, dict]:
    """({entry name: value}, info) of the dataset's structures that are ``phase`` scaled."""
    import pandas as pd
    from .eos import fit_eos
    df = pd.read_pickle(path, compression="gzip" if str(path).endswith("gzip") else "infer")
    column = "energy_corrected" if "energy_corrected" in df.columns else "energy"
    vols, ens = [], []
    for atoms, energy in zip(df["ase_atoms"], df[column]):
        if _same_shape(atoms, phase):
            vols.append(atoms.get_volume() / len(atoms))
            ens.append(float(energy) / len(atoms))
    info = {"dataset": str(path), "energy_column": column, "matching_structures": len(vols)}
    if len(vols) < min_points:
        info["note"] = f"only {len(vols)} structures of the phase (scaled); an EOS needs {min_points}"
        return {}, info
    order = np.argsort(vols)
    fit = fit_eos(np.array(vols)[order], np.array(ens)[order])
    info["fit"] = fit
    return {"eos.V0": fit["V0"], "eos.E0": fit["E0"], "eos.B0": fit["B0"], "eos.B0_prime": fit["B0_prime"]}, info
