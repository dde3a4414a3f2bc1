"""Pieces of the liquid route (``[free_energy] mode = "liquid"``).

* :class:`ZeroTerm`: the ideal gas as a force term (no energy, no force), the far end
  of the Uhlenbeck-Ford -> ideal-gas switch that gives the UF excess free energy.
* :func:`min_pair_distance`: the smallest distance between an owned atom and any
  neighbour (global), the collapse test of a liquid that has no stable state.
* :func:`mean_q6`: the mean Steinhardt q6 (12 nearest neighbours) of the whole
  configuration on rank 0, with freud (a maintained library: Steinhardt order
  parameters with periodic triclinic boxes).  fcc 0.575, bcc 0.51, hcp 0.48, liquids
  and random packings 0.28-0.35; above 0.42 the configuration is called crystalline.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ..forcefield import ForceTerm, TermResult

CRYSTAL_Q6 = 0.42


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


def mean_q6(atoms) -> float:
    """Mean Steinhardt q6 over atoms (12 nearest neighbours), periodic; needs freud."""
    try:
        import freud
    except ImportError:
        raise ImportError("the liquid/crystal structure check needs freud: pip install freud-analysis") from None
    box = freud.box.Box.from_matrix(atoms.cell.array.T)
    frac = atoms.get_scaled_positions(wrap=True) - 0.5
    ql = freud.order.Steinhardt(6)
    ql.compute((box, frac @ atoms.cell.array), neighbors={"num_neighbors": 12})
    return float(np.mean(ql.particle_order))
