"""Many structures as one flat atom set for the fit's numba passes.

The structures' atoms never move during a fit, so their periodic images and
neighbour lists are built once.  All structures' own atoms come first (the
passes' "local" atoms, structure by structure), then all periodic images; the
neighbour list indexes that joint set, ``struct_of`` names the structure of each
local atom and ``owner`` the local atom each extended atom is an image of.
"""
from __future__ import annotations

import numpy as np

from ..potential.calculator import periodic_system

__all__ = ["StructureBatch"]


class StructureBatch:
    """Flat arrays of a list of ``ase.Atoms`` for one potential (its cutoff and elements)."""

    def __init__(self, potential, atoms_list):
        n_loc = [len(a) for a in atoms_list]
        self.nstructures = len(atoms_list)
        self.natoms = np.array(n_loc, dtype=np.int64)
        self.first_atom = np.concatenate([[0], np.cumsum(n_loc)]).astype(np.int64)
        self.n_local = int(self.first_atom[-1])
        parts = [periodic_system(potential, a.positions, a.cell.array, a.pbc, a.get_chemical_symbols())
                 for a in atoms_list]
        n_ghost = [len(p[1]) - n for p, n in zip(parts, n_loc)]
        ghost_first = self.n_local + np.concatenate([[0], np.cumsum(n_ghost)]).astype(np.int64)
        n_ext = int(ghost_first[-1])
        positions = np.empty((n_ext, 3))
        owner = np.empty(n_ext, np.int64)
        offsets = [np.zeros(1, np.int64)]
        neighbors = []
        count = 0
        for s, ((species, ext, own, offs, nbrs), n) in enumerate(zip(parts, n_loc)):
            l0 = self.first_atom[s]
            g0 = ghost_first[s]
            positions[l0:l0 + n] = ext[:n]
            positions[g0:g0 + n_ghost[s]] = ext[n:]
            owner[l0:l0 + n] = l0 + own[:n]
            owner[g0:g0 + n_ghost[s]] = l0 + own[n:]
            nbrs = np.asarray(nbrs, np.int64)
            neighbors.append(np.where(nbrs < n, l0 + nbrs, g0 + nbrs - n))
            offsets.append(count + np.asarray(offs[1:n + 1], np.int64))
            count += int(offs[n])
        self.positions = np.ascontiguousarray(positions)
        self.owner = owner
        self.species = np.ascontiguousarray(
            np.concatenate([p[0] for p in parts])[owner] if parts else np.zeros(0, np.int64), dtype=np.int64)
        self.offsets = np.concatenate(offsets).astype(np.int64)
        self.neighbors = (np.concatenate(neighbors) if neighbors else np.zeros(0)).astype(np.int64)
        self.struct_of = np.repeat(np.arange(self.nstructures, dtype=np.int64), n_loc)
        self.periodic = np.array([bool(np.all(a.pbc)) for a in atoms_list])
        self.volume = np.array([a.get_volume() if p else np.nan for a, p in zip(atoms_list, self.periodic)])

    @property
    def n_ext(self) -> int:
        return len(self.positions)

    def fold_forces(self, ext_forces) -> np.ndarray:
        """Forces on the structures' own atoms (n_local, 3) from forces on every extended atom."""
        out = np.zeros((self.n_local, 3))
        for a in range(3):
            out[:, a] = np.bincount(self.owner, weights=ext_forces[:, a], minlength=self.n_local)
        return out

    def structure_sum(self, per_atom) -> np.ndarray:
        return np.bincount(self.struct_of, weights=per_atom, minlength=self.nstructures)
