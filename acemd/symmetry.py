"""The symmetry class of a crystal, from its atoms: which form its elastic tensor takes.

The elastic drivers report C11, C12, C44 (cubic) or C11, C12, C13, C33, C44 (hexagonal, c along
z) only when the structure has that symmetry in the Cartesian frame of the run.  Judging it from
the tensor (entries equal within a tolerance) fails at temperature > 0, where the constants are
noisy (a 96-atom hcp crystal at 300 K came out "cubic"), so it is judged here from the positions:
the crystal is mapped onto itself by a point operation R (or -R: the elastic tensor does not see
inversion) followed by some translation t (screw axes and glide planes, e.g. hcp's 6_3), each atom
onto an atom of its species within ``tolerance_A``, periodic images included.

* cubic: the 3-fold rotation about [111] and the 2-fold rotations about z and x (the group T,
  whose elastic tensor already has the cubic form),
* hexagonal: the 6-fold rotation about z (Laue class 6/m or 6/mmm: five constants),
* other: anything else.
"""
from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE_A = 0.1       # Å: thermal or rattle noise below this does not lower the symmetry

C3_111 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])    # (x, y, z) -> (z, x, y)
C2_Z = np.diag([-1.0, -1.0, 1.0])
C2_X = np.diag([1.0, -1.0, -1.0])
_c, _s = 0.5, np.sqrt(3.0) / 2.0
C6_Z = np.array([[_c, -_s, 0.0], [_s, _c, 0.0], [0.0, 0.0, 1.0]])


FIRST_ATOMS = 8                 # atoms tried first for each candidate translation (most fail there)


class _Lookup:
    """Nearest atom of a species to any point, periodic images included (k-d trees in fractional
    coordinates, the Cartesian distance checked), so a structure of N atoms costs ~N log N."""

    def __init__(self, positions, species, cell, pbc):
        from scipy.spatial import cKDTree
        self.cell = cell
        self.inv = np.linalg.inv(cell)
        self.periodic = np.asarray(pbc, dtype=bool)
        frac = positions @ self.inv
        self.offset = np.where(self.periodic, 0.0, frac.min(axis=0) - 1.0)
        self.box = np.where(self.periodic, 1.0, 1e9)
        # a Cartesian distance d is at most d * ||h^-1|| in fractional coordinates
        self.scale = float(np.linalg.norm(self.inv, 2))
        self.trees, self.index = {}, {}
        for sp in np.unique(species):
            idx = np.flatnonzero(species == sp)
            self.trees[sp] = cKDTree(self._wrap(frac[idx]), boxsize=self.box)
            self.index[sp] = idx

    def _wrap(self, frac):
        f = frac - self.offset
        f[:, self.periodic] %= 1.0
        return np.minimum(f, np.nextafter(self.box, 0.0))

    def all_within(self, points, sp, tolerance) -> bool:
        """True when each Cartesian point has an atom of species ``sp`` within ``tolerance`` (Å)."""
        tree = self.trees.get(sp)
        if tree is None:
            return False
        frac = self._wrap(points @ self.inv)
        near = tree.query_ball_point(frac, r=tolerance * self.scale * (1.0 + 1e-9))
        for q, hits in zip(frac, near):
            if not hits:
                return False
            d = q[None, :] - tree.data[hits]
            d[:, self.periodic] -= np.round(d[:, self.periodic])
            if np.min(np.linalg.norm(d @ self.cell, axis=1)) > tolerance:
                return False
        return True


def _maps_onto_itself(rotation, positions, species, lookup, tolerance) -> bool:
    """True when x -> R x + t maps every atom onto an atom of its species for one translation t."""
    rotated = positions @ rotation.T
    first = 0
    for j in np.flatnonzero(species == species[first]):
        moved = rotated + (positions[j] - rotated[first])
        if not all(lookup.all_within(moved[species == sp][:FIRST_ATOMS], sp, tolerance)
                   for sp in np.unique(species)):
            continue
        if all(lookup.all_within(moved[species == sp], sp, tolerance) for sp in np.unique(species)):
            return True
    return False


def _maps_lattice(rotation, positions, species, lookup, tolerance, cell, pbc) -> bool:
    """True when ``rotation`` maps the periodic lattice into the structure's translations: every
    R @ a_i (a_i a periodic cell vector) moves each atom onto an atom of its species.  Atoms mapped
    onto atoms are not enough: a one-atom cell maps onto itself under every rotation.  For a
    one-atom cell this is R @ A == A @ M with M integer; a supercell whose own lattice lacks the
    symmetry (hcp in an orthorhombic cell) passes through the finer translations of its atoms."""
    for a in cell[np.asarray(pbc, dtype=bool)]:
        moved = positions + rotation @ a
        if not all(lookup.all_within(moved[species == sp], sp, tolerance) for sp in np.unique(species)):
            return False
    return True


def _invariant(rotation, atoms, lattice) -> bool:
    """``rotation`` (or -``rotation``) maps the lattice and the atoms onto themselves; ``atoms`` are
    the other arguments of :func:`_maps_onto_itself`, ``lattice`` (cell, pbc) the last of
    :func:`_maps_lattice`.  -R maps the translations onto themselves exactly when R does."""
    return _maps_lattice(rotation, *atoms, *lattice) and (_maps_onto_itself(rotation, *atoms)
                                                          or _maps_onto_itself(-rotation, *atoms))


def crystal_class_of_structure(positions, species, cell, pbc=(True, True, True),
                               tolerance_A=DEFAULT_TOLERANCE_A) -> str:
    """'cubic', 'hexagonal' (c axis along z) or 'other' for the atoms ``positions`` (Å, (N, 3)) of
    ``species`` in ``cell`` (rows are the lattice vectors, Å)."""
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    species = np.asarray(species)
    cell = np.asarray(cell, dtype=float)
    if len(positions) == 0:
        return "other"
    tol = float(tolerance_A)
    args = ((positions, species, _Lookup(positions, species, cell, pbc), tol), (cell, pbc))
    if all(_invariant(r, *args) for r in (C3_111, C2_Z, C2_X)):
        return "cubic"
    if _invariant(C6_Z, *args):
        return "hexagonal"
    return "other"


def crystal_class_of_simulation(simulation, tolerance_A=DEFAULT_TOLERANCE_A) -> str:
    """:func:`crystal_class_of_structure` of a simulation's present configuration (collective)."""
    atoms = simulation.gather_atoms()
    kind = None
    if simulation.comm.Get_rank() == 0:
        kind = crystal_class_of_structure(atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc,
                                          tolerance_A)
    return simulation.comm.bcast(kind, root=0)
