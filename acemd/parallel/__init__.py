"""Domain decomposition and atom communication (the only MPI user for atoms).

* :mod:`.grid`: processor grid (:func:`choose_grid`) and the subdomain
  geometry in fractional coordinates (:class:`Decomposition`).
* :mod:`.halo`: distribution, migration, ghost exchange and reverse
  communication of per-atom arrays (:class:`Halo`).

Cells are 3x3 with lattice vectors as rows (ASE), Å; fractional coordinates
``s = x @ inv(cell)``.  Nothing here knows about the potential.
"""

from .grid import DecompositionError, Decomposition, ParallelError, cell_heights, choose_grid
from .halo import AtomLeftBoxError, AtomOutsideSubdomainError, Halo, LostAtomsError, Swap

__all__ = [
    "choose_grid",
    "cell_heights",
    "Decomposition",
    "Halo",
    "Swap",
    "ParallelError",
    "DecompositionError",
    "AtomLeftBoxError",
    "LostAtomsError",
    "AtomOutsideSubdomainError",
]
