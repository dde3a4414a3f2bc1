"""pacemaker's automatic core repulsion (acemd.fit.repulsion): shortest distances per pair by hand
(a dimer, a periodic fcc cell and its images, a missing pair from covalent radii), and the potential with
it: unchanged on the structures it was measured on, repulsive below r_in."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii

from acemd.fit.basis import build_basis
from acemd.fit.repulsion import DELTA_IN, complete_pair_distances, shortest_pair_distances, with_auto_repulsion
from acemd.potential import ACEPotential
from acemd.potential.calculator import ACECalculator

BASIS = {"elements": ["Al", "Ni"],
         "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5],
                                "ndensity": 2}},
         "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01}},
         "functions": {"ALL": {"nradmax_by_orders": [4, 2], "lmax_by_orders": [0, 1]}}}


def test_shortest_distances_by_hand():
    dimer = Atoms("AlNi", positions=[[0, 0, 0], [2.1, 0, 0]], cell=[20, 20, 20], pbc=False)
    cu = bulk("Cu", "fcc", a=3.6)                              # one atom: its neighbours are images
    d = shortest_pair_distances([dimer, cu], cutoff=5.0)
    assert d[("Al", "Ni")] == pytest.approx(2.1, abs=1e-12)
    assert d[("Cu", "Cu")] == pytest.approx(3.6 / np.sqrt(2), abs=1e-12)
    assert ("Al", "Al") not in d and ("Ni", "Ni") not in d     # single atoms: no such pair
    squeezed = Atoms("NiNi", positions=[[0, 0, 0], [1.9, 0, 0]], cell=[20, 20, 20], pbc=False)
    d = shortest_pair_distances([dimer, squeezed], cutoff=5.0)
    full = complete_pair_distances(d, ["Ni", "Al"])
    assert full[("Ni", "Ni")] == pytest.approx(1.9) and full[("Al", "Ni")] == pytest.approx(2.1)
    z = atomic_numbers["Al"]
    assert full[("Al", "Al")] == pytest.approx(2 * covalent_radii[z])        # pacemaker's default


def _energy(spec, coeffs, atoms):
    pot = ACEPotential.from_model(spec.to_potential(coeffs))
    a = atoms.copy()
    a.calc = ACECalculator(pot)
    return a.get_potential_energy()


def test_potential_with_repulsion_keeps_the_data_and_repels_below():
    rng = np.random.default_rng(11)
    spec = build_basis(BASIS)
    coeffs = [rng.normal(scale=0.1, size=(n, 2)) for n in spec.nfuncs]
    data = []
    for k in range(3):
        a = bulk("Al", "fcc", a=4.05, cubic=True)
        a.symbols[rng.choice(4, 2, replace=False)] = "Ni"
        a.positions += rng.normal(scale=0.08, size=a.positions.shape)
        data.append(a)
    dist = complete_pair_distances(shortest_pair_distances(data, 5.0), spec.elements)
    rep = with_auto_repulsion(spec, dist)
    for b in rep.blocks:
        if b.bond is not None:
            pair = tuple(sorted((b.elements[0], b.elements[-1])))
            assert (b.bond.r_in, b.bond.delta_in, b.bond.inner_cutoff_type) == (dist[pair], DELTA_IN, "zbl")
        if b.embedding is not None:
            assert (b.embedding.rho_core_cut, b.embedding.drho_core_cut) == (1.0, 1.0)
    assert all(b.bond.inner_cutoff_type != "zbl" for b in spec.blocks if b.bond is not None)   # a copy
    diffs = [abs(_energy(rep, coeffs, a) - _energy(spec, coeffs, a)) for a in data]
    print(f"shortest distances {dist}; energy change on the data {max(diffs):.1e} eV")
    assert max(diffs) < 1e-10
    close = Atoms("AlNi", positions=[[0, 0, 0], [1.2, 0, 0]], cell=[20, 20, 20], pbc=False)
    e_rep, e_ace = _energy(rep, coeffs, close), _energy(spec, coeffs, close)
    print(f"Al-Ni at 1.2 A: {e_rep:.3f} eV with the repulsion, {e_ace:.3f} eV without")
    assert e_rep > e_ace + 1.0


def test_missing_pair_is_an_error():
    spec = build_basis(BASIS)
    with pytest.raises(KeyError, match="Al-Ni"):
        with_auto_repulsion(spec, {("Al", "Al"): 2.5, ("Ni", "Ni"): 2.4})
