"""Per-frame fractions of local crystal structures by adaptive common-neighbour analysis.

Adaptive CNA (Stukowski, Modelling Simul. Mater. Sci. Eng. 20, 045021 (2012))
labels each atom fcc, hcp, bcc, icosahedral or other from the bond topology of
its nearest neighbours, with a per-atom cutoff, so it needs no lattice constant
and works at any temperature and pressure.  It is computed by pyscal3
(``pyscal3.common_neighbor_analysis``; ICAMS's maintained C++ library with a
Python interface, a light wheel).  OVITO's modifier is the reference
implementation but its pip package is >100 MB with a GUI stack, and freud has
Steinhardt parameters but no CNA.  Frames are streamed one at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AnalysisInputError

TYPES = ("fcc", "hcp", "bcc", "ico", "other")
_PYSCAL_KEYS = {"fcc": "fcc", "hcp": "hcp", "bcc": "bcc", "ico": "ico", "other": "others"}


def _pyscal3():
    try:
        import pyscal3
    except ImportError:
        raise AnalysisInputError("pyscal3 is not installed: pip install 'acemd[plot]'") from None
    return pyscal3


@dataclass
class StructureResult:
    time: np.ndarray         # ps
    step: np.ndarray
    fractions: dict          # type -> per-frame fraction (0..1)
    n_atoms: int


def classify_frame(cell, positions, numbers, pbc=(True, True, True)) -> dict:
    """``{type: count}`` of one configuration by adaptive CNA."""
    from ase import Atoms
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc)
    counts = _pyscal3().common_neighbor_analysis(atoms)
    return {t: int(counts.get(_PYSCAL_KEYS[t], 0)) for t in TYPES}


def compute_structure(traj, frames) -> StructureResult:
    from ase.data import atomic_numbers
    traj.require(["position", "species"], "the structure analysis")
    numbers = np.array([atomic_numbers.get(s, 0) for s in traj.symbols()])
    frames = np.asarray(frames)
    out = {t: np.zeros(len(frames)) for t in TYPES}
    times, steps = np.zeros(len(frames)), np.zeros(len(frames), dtype=np.int64)
    for j, fr in enumerate(traj.frames(["position"], frames)):
        counts = classify_frame(fr.cell, fr["position"], numbers, traj.pbc)
        total = sum(counts.values())
        if total != traj.n_atoms:
            raise RuntimeError(f"adaptive CNA labelled {total} of {traj.n_atoms} atoms")
        for t in TYPES:
            out[t][j] = counts[t] / total
        times[j], steps[j] = fr.time, fr.step
    return StructureResult(times, steps, out, traj.n_atoms)


def plot(res: StructureResult, path, title=""):
    from .plotting import pyplot, save
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for t in TYPES:
        ax.plot(res.time, 100.0 * res.fractions[t], label=t, marker="." if len(res.time) < 50 else None)
    ax.set_xlabel("time [ps]")
    ax.set_ylabel("atoms [%]")
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, path)
