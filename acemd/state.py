"""Per-rank atom arrays and the (global) simulation cell."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class State:
    """Atoms owned by this rank, in metal units.

    ``images`` count the periodic wraps of each atom, so the unwrapped position
    is positions + images @ cell.  ``species`` index ``species_names`` (the
    potential's element order) and ``masses_by_species`` (amu).
    """

    cell: np.ndarray                      # (3, 3) Å, rows are lattice vectors
    pbc: np.ndarray                       # (3,) bool
    ids: np.ndarray                       # (n,) int64 global atom ids, 0..N-1
    species: np.ndarray                   # (n,) int64
    positions: np.ndarray                 # (n, 3) Å
    velocities: np.ndarray                # (n, 3) Å/ps
    images: np.ndarray                    # (n, 3) int64
    species_names: list[str]
    masses_by_species: np.ndarray         # (n_species,) amu
    n_atoms_total: int
    step: int = 0
    time: float = 0.0                     # ps
    extra: dict = field(default_factory=dict)
    # per-atom arrays of a stage (e.g. a minimiser's search direction) that travel with
    # the atoms when they migrate: name -> (n, ...) array in the order of ``ids``
    extra_per_atom: dict = field(default_factory=dict)

    @property
    def n_local(self) -> int:
        return len(self.ids)

    @property
    def masses(self) -> np.ndarray:
        return self.masses_by_species[self.species]

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell)))

    def per_atom_arrays(self) -> dict:
        """The arrays that travel with atoms when they migrate between ranks."""
        arrays = {"positions": self.positions, "ids": self.ids, "species": self.species,
                  "velocities": self.velocities, "image": self.images}
        arrays.update({f"extra:{k}": v for k, v in self.extra_per_atom.items()})
        return arrays

    def set_per_atom_arrays(self, arrays: dict):
        self.positions = np.ascontiguousarray(arrays["positions"], dtype=float)
        self.ids = np.ascontiguousarray(arrays["ids"], dtype=np.int64)
        self.species = np.ascontiguousarray(arrays["species"], dtype=np.int64)
        self.velocities = np.ascontiguousarray(arrays["velocities"], dtype=float)
        self.images = np.ascontiguousarray(arrays["image"], dtype=np.int64)
        self.extra_per_atom = {k[6:]: np.ascontiguousarray(v) for k, v in arrays.items()
                               if k.startswith("extra:")}
