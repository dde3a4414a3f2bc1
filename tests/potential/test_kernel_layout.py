"""The force kernel's internal organisation: results independent of how atoms fall
into batches and of the neighbour order."""
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from acemd.potential import ACEPotential
from acemd.potential.tree_batch import BATCH
from acemd.neighbors import build_neighbor_list, periodic_images

DATA = Path(__file__).resolve().parents[1] / "data" / "potentials"


def evaluate(pot, atoms, order):
    """Site energies, forces and virial with the atoms listed in ``order``."""
    pos = atoms.positions[order]
    ext, owner, _ = periodic_images(pos, atoms.cell.array, [True] * 3, pot.cutoff)
    off, nb = build_neighbor_list(ext, len(pos), pot.cutoff)
    species = pot.species_of(np.array(atoms.get_chemical_symbols())[order][owner])
    res = pot.compute(ext, species, len(pos), off, nb)
    forces = np.zeros((len(pos), 3))
    np.add.at(forces, owner, res.forces)
    sv = np.zeros((len(pos), 3, 3))
    np.add.at(sv, owner, res.site_virial)
    inv = np.argsort(order)
    return res.site_energy[inv], forces[inv], res.virial, sv[inv]


@pytest.mark.parametrize("potential,symbols", [("ternary_AlCuZn.yace", ["Al", "Cu", "Zn"]),
                                               ("ZBL_rep.yace", None)])
def test_atom_order_and_batches_do_not_change_results(potential, symbols):
    """Atoms of one element go through the product tree BATCH at a time, grouped by
    element: shuffling the atoms (other batches, short last batches, element
    boundaries inside the sort) changes every number by round-off only."""
    pot = ACEPotential(DATA / potential)
    el = pot.elements[0]
    atoms = bulk(el, "fcc", a=4.0, cubic=True).repeat((2, 2, 2))[:4 * BATCH + 3]
    atoms.set_pbc(True)
    rng = np.random.default_rng(7)
    atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
    if symbols:
        atoms.set_chemical_symbols(rng.choice(symbols, len(atoms)))
    n = len(atoms)
    e0, f0, w0, sv0 = evaluate(pot, atoms, np.arange(n))
    assert np.abs(f0).max() > 1e-3           # a real, non-trivial force field
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(n)
        e, f, w, sv = evaluate(pot, atoms, order)
        scale_e = max(1.0, np.abs(e0).max())
        assert np.abs(e - e0).max() < 1e-12 * scale_e
        assert np.abs(f - f0).max() < 1e-11 * max(1.0, np.abs(f0).max())
        assert np.abs(w - w0).max() < 1e-11 * max(1.0, np.abs(w0).max())
        assert np.abs(sv - sv0).max() < 1e-11 * max(1.0, np.abs(sv0).max())
