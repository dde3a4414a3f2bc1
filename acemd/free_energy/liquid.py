"""Pieces of the liquid route (``[free_energy] mode = "liquid"``).

* :class:`ZeroTerm`: the ideal gas as a force term (no energy, no force), the far end
  of the Uhlenbeck-Ford -> ideal-gas switch that gives the UF excess free energy.
* :func:`min_pair_distance`: the smallest distance between an owned atom and any
  neighbour (global), the collapse test of a liquid that has no stable state.
* :func:`mean_averaged_q6`: the liquid/crystal structure check, the mean
  Lechner-Dellago averaged q6 (q6 bar; each atom's q6m averaged over itself and its 12
  nearest neighbours before the invariant is formed), with freud (a maintained library:
  Steinhardt order parameters with the averaged variant, periodic triclinic boxes).
  Above :data:`CRYSTAL_Q6BAR` the configuration is called crystalline.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ..forcefield import ForceTerm, TermResult

#: Crystal above, liquid below.  Measured (tests/free_energy/test_structure_check.py,
#: scripts/liquid_evidence.py): liquid Cu (Cu-PBE-core-rep, diffusing) 0.13-0.18 at
#: 1500-3500 K; perfect fcc 0.575, bcc 0.54, hcp 0.485; Einstein crystals (independent
#: Gaussian displacements, harsher than correlated phonons) with an RMS displacement of
#: 0.15 nearest-neighbour distances (beyond Lindemann melting) 0.42 / 0.42 / 0.36;
#: fcc Cu superheated at 2500 K (not diffusing) 0.29-0.38.  The plain per-atom q6 does
#: not separate them: liquid 0.33-0.38, that hot crystal 0.39-0.43.
CRYSTAL_Q6BAR = 0.25


class ZeroTerm(ForceTerm):
    """U = 0: the ideal gas."""

    name = "ideal_gas"
    cutoff = 0.0

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        return TermResult(np.zeros(n_local), np.zeros((len(positions), 3)), np.zeros((3, 3)))


def min_pair_distance(engine) -> float:
    """Smallest owned-atom/neighbour distance (Å) on the engine's current list (collective)."""
    n = engine.state.n_local
    x = engine.ext_positions
    i = np.repeat(np.arange(n), np.diff(engine.offsets))
    d = x[engine.neighbors] - x[i]
    local = float(np.sqrt((d * d).sum(1).min())) if len(d) else np.inf
    return engine.comm.allreduce(local, op=MPI.MIN)


def mean_averaged_q6(atoms) -> float:
    """Mean Lechner-Dellago averaged q6 over atoms (12 nearest neighbours), periodic; needs freud.

    Averaging q6m over the neighbourhood (Lechner and Dellago, J. Chem. Phys. 129, 114707
    (2008)) keeps the order that neighbouring atoms share (a crystal) and averages out the
    uncorrelated orientations of a liquid's bonds; the plain q6 of 12 neighbours is ~0.35
    in liquids and ~0.4 in hot crystals, too close to threshold.  Adaptive CNA (pyscal3)
    is no alternative here: it labels fcc Cu at 2500 K as >90 % "other".
    """
    try:
        import freud
    except ImportError:
        raise ImportError("the liquid/crystal structure check needs freud: pip install freud-analysis") from None
    box = freud.box.Box.from_matrix(atoms.cell.array.T)
    frac = atoms.get_scaled_positions(wrap=True) - 0.5
    ql = freud.order.Steinhardt(6, average=True)
    ql.compute((box, frac @ atoms.cell.array), neighbors={"num_neighbors": 12})
    return float(np.mean(ql.particle_order))
