"""Forces of many finite-displacement supercells with acemd's ACE evaluator, spread over MPI ranks.

A phonon (or quasi-harmonic) calculation evaluates supercells that differ from a perfect one by a
single displaced atom.  Every such structure is a task; tasks go round-robin over the ranks and
the forces are gathered on every rank, so 1 and N ranks give identical numbers (each structure is
computed the same way wherever it runs).  Per structure the work is cut twice, through the force
term's public API (:meth:`acemd.potential.ACEPotential.compute`, no kernel internals):

* the periodic images and the neighbour list are built once per perfect supercell, with a skin
  larger than the displacement, and reused (the kernel drops pairs beyond the cutoff);
* when the supercell is large, only the site energies that see the displaced atom are evaluated:
  with S the atoms within the cutoff (plus the displacement) of it, the force change is
  ``dF = F_S(displaced) - F_S(perfect)`` exactly (the other site energies do not depend on the
  displaced atom, nor do their derivatives), and ``F = F(perfect) + dF``.

A structure says it is a displaced supercell through ``atoms.info["displaced_atom"]`` (index) and
``atoms.info["displacement"]`` (Å, vector), as :mod:`acemd.properties.phonons` sets them; any other
structure is evaluated whole.
"""
from __future__ import annotations

import numpy as np

__all__ = ["DisplacedForces"]


class _Perfect:
    """Images, neighbour list and forces of one perfect supercell (cached per evaluator)."""

    def __init__(self, potential, positions, cell, symbols, skin):
        from ..neighbors import build_neighbor_list, periodic_images
        self.positions = positions
        self.cutoff = potential.cutoff
        self.reach = potential.cutoff + skin
        self.species = potential.species_of(symbols)
        self.ext, self.owner, _ = periodic_images(positions, cell, [True] * 3, self.reach)
        self.n = len(positions)
        self.offsets, self.neighbors = build_neighbor_list(self.ext, self.n, self.reach)
        self.potential = potential
        self._forces = None
        self.subsets = {}

    @property
    def forces(self):
        """Forces of the perfect supercell (evaluated on first use)."""
        if self._forces is None:
            res = self.potential.compute(self.ext, self.species[self.owner], self.n, self.offsets,
                                         self.neighbors, site_virial=False)
            self._forces = _fold(res.forces, self.owner, self.n)
        return self._forces

    def n_sites(self, atom):
        """How many sites see ``atom`` (the size of its local evaluation)."""
        d = np.linalg.norm(self.ext - self.positions[atom], axis=1)
        return len(np.unique(self.owner[d < self.reach]))

    def subset(self, potential, atom):
        """Extended arrays with the sites that see ``atom`` first, their neighbour list and their
        forces in the perfect supercell (cached per atom)."""
        if atom in self.subsets:
            return self.subsets[atom]
        from ..neighbors import build_neighbor_list
        d = np.linalg.norm(self.ext - self.positions[atom], axis=1)
        sites = np.unique(self.owner[d < self.reach])           # owned atoms with an image near `atom`
        rest = np.setdiff1d(np.arange(len(self.ext)), sites)   # every other extended row
        order = np.concatenate([sites, rest])
        ext = np.ascontiguousarray(self.ext[order])
        owner = self.owner[order]
        offsets, neighbors = build_neighbor_list(ext, len(sites), self.reach)
        res = potential.compute(ext, self.species[owner], len(sites), offsets, neighbors, site_virial=False)
        entry = (ext, owner, len(sites), offsets, neighbors, _fold(res.forces, owner, self.n))
        self.subsets[atom] = entry
        return entry


def _fold(ext_forces, owner, n):
    forces = np.zeros((n, 3))
    np.add.at(forces, owner, ext_forces)
    return forces


class DisplacedForces:
    """``DisplacedForces(potential, comm).forces_of(structures) -> list of (n, 3) arrays`` (eV/Å).

    ``local``: "auto" (the local difference when it evaluates fewer sites than the whole supercell),
    True or False.
    """

    def __init__(self, potential, comm=None, skin=0.3, local="auto"):
        self.potential = potential
        self.comm = comm
        self.skin = skin
        self.local = local
        self._perfect: dict = {}
        self.evaluated_sites = 0          # sites evaluated on this rank (for the benchmark)

    def _perfect_of(self, positions, cell, symbols):
        key = (np.round(np.asarray(cell), 10).tobytes(), np.round(positions, 10).tobytes(), tuple(symbols))
        if key not in self._perfect:
            self._perfect[key] = _Perfect(self.potential, positions, cell, symbols, self.skin)
        return self._perfect[key]

    def _split(self, atoms):
        """(perfect supercell, displaced atom, displacement) of a displaced supercell, else None."""
        info = atoms.info
        if "displaced_atom" not in info or not np.all(atoms.pbc):
            return None
        atom = int(info["displaced_atom"])
        u = np.asarray(info["displacement"], float)
        if np.linalg.norm(u) >= self.skin:
            raise ValueError(f"displacement {np.linalg.norm(u):.3g} Å is not below the neighbour skin "
                             f"{self.skin} Å of the displaced-supercell evaluator; use a larger skin")
        perfect_positions = np.array(atoms.positions)
        perfect_positions[atom] -= u
        return self._perfect_of(perfect_positions, atoms.cell.array, atoms.get_chemical_symbols()), atom, u

    def plan(self, structures):
        """Per perfect supercell: evaluate displacements locally (True) or whole (False).

        Local costs N (the perfect supercell) + one subset per displaced atom + one per structure;
        whole costs N per structure.  Decided from the whole list, so every rank agrees.
        """
        groups: dict[int, list] = {}
        for atoms in structures:
            split = self._split(atoms)
            if split is not None:
                groups.setdefault(id(split[0]), [split[0], []])[1].append(split[1])
        decision = {}
        for key, (perfect, atoms_moved) in groups.items():
            if self.local in (True, False):
                decision[key] = self.local
                continue
            sizes = {a: perfect.n_sites(a) for a in set(atoms_moved)}
            local_cost = perfect.n + sum(sizes.values()) + sum(sizes[a] for a in atoms_moved)
            decision[key] = local_cost < perfect.n * len(atoms_moved)
        return decision

    def one(self, atoms, local=False):
        """Forces (n, 3) of one structure on this rank."""
        from ..potential.calculator import evaluate_periodic
        split = self._split(atoms)
        if split is None:
            self.evaluated_sites += len(atoms)
            return evaluate_periodic(self.potential, atoms.positions, atoms.cell.array, atoms.pbc,
                                     atoms.get_chemical_symbols())[2]
        perfect, atom, u = split
        if local:
            fresh = atom not in perfect.subsets
            if perfect._forces is None:
                self.evaluated_sites += perfect.n
            ext, owner, n_sites, offsets, neighbors, f_sub_perfect = perfect.subset(self.potential, atom)
            self.evaluated_sites += n_sites * (2 if fresh else 1)
            ext = ext.copy()
            ext[owner == atom] += u
            res = self.potential.compute(ext, perfect.species[owner], n_sites, offsets, neighbors,
                                         site_virial=False)
            return perfect.forces + (_fold(res.forces, owner, perfect.n) - f_sub_perfect)
        ext = perfect.ext.copy()
        ext[perfect.owner == atom] += u
        res = self.potential.compute(ext, perfect.species[perfect.owner], perfect.n, perfect.offsets,
                                     perfect.neighbors, site_virial=False)
        self.evaluated_sites += perfect.n
        return _fold(res.forces, perfect.owner, perfect.n)

    def forces_of(self, structures):
        """Forces of every structure, on every rank, in the order given (collective over ``comm``)."""
        structures = list(structures)
        size = 1 if self.comm is None else self.comm.Get_size()
        rank = 0 if self.comm is None else self.comm.Get_rank()
        decision = self.plan(structures)

        def local_of(atoms):
            split = self._split(atoms)
            return bool(split is not None and decision.get(id(split[0]), False))
        mine = {k: self.one(s, local_of(s)) for k, s in enumerate(structures) if k % size == rank}
        if size == 1:
            return [mine[k] for k in range(len(structures))]
        gathered = self.comm.allgather(mine)
        out = {}
        for part in gathered:
            out.update(part)
        return [out[k] for k in range(len(structures))]
