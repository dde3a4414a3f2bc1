"""Phonons with phonopy (acemd.properties.phonons).

* Central springs on fcc (first and second shell) against the analytic dispersion, along
  seekpath's path and on the DOS mesh; the same in a rotated cell (seekpath's path mapped back).
* A negative second-shell spring: an unstable lattice whose imaginary modes are reported (the
  analytic ones), not an error.
* Cu-PBE-core-rep.ace: the force constants from acemd's displaced-supercell evaluator (whole and
  local) equal phonopy driving acemd's ACECalculator serially (1e-8 eV/Å²), for fcc and hcp.
* run_phonons through a property context.
"""
from types import SimpleNamespace

import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI

from acemd.potential import ACEPotential
from acemd.potential.calculator import ACECalculator
from acemd.properties import phonons as P
from acemd.properties.base import PropertyContext
from acemd.properties.displaced_forces import DisplacedForces

from engine_helpers import POTENTIALS
from phonon_helpers import ShellSprings, analytic_frequencies

A = 3.6
R1, R2 = A / np.sqrt(2.0), A


def _cart(phonon, q_frac):
    rec = np.linalg.inv(np.asarray(phonon.primitive.cell)).T
    return 2.0 * np.pi * np.asarray(q_frac) @ rec


def _springs_fcc(shells, cell=None, **kw):
    atoms = bulk("Cu", "fcc", a=A)
    if cell is not None:
        atoms.set_cell(cell, scale_atoms=True)
    model = ShellSprings(shells)
    res = P.phonons_of(atoms, model.forces_of, supercell=[4, 4, 4], mesh=(6, 6, 6), band_points=11, **kw)
    return atoms, res


def _deviation(atoms, res, shells):
    qs = np.concatenate(res.bands["qpoints"])
    got = np.sort(np.concatenate(res.bands["frequencies"]), axis=1)
    want = analytic_frequencies(atoms, shells, _cart(res.phonon, qs))
    dev_band = np.abs(got - want).max()
    got_mesh = np.sort(res.mesh_frequencies, axis=1)
    want_mesh = analytic_frequencies(atoms, shells, _cart(res.phonon, res.mesh_qpoints))
    return dev_band, np.abs(got_mesh - want_mesh).max(), np.abs(want).max()


def test_fcc_springs_match_the_analytic_dispersion():
    shells = [(R1, 2.0), (R2, 0.3)]
    atoms, res = _springs_fcc(shells)
    dev_band, dev_mesh, top = _deviation(atoms, res, shells)
    print(f"\nfcc springs k1 = 2, k2 = 0.3 eV/A^2: max |nu - analytic| band {dev_band:.2e} THz, "
          f"mesh {dev_mesh:.2e} THz (max frequency {top:.3f} THz)")
    assert dev_band < 1e-4 * top and dev_mesh < 1e-4 * top
    assert res.stable and res.imaginary == []
    labels = [l for pair in res.bands["labels"] for l in pair]
    assert {"Γ", "X", "L", "W", "K", "U"} <= set(labels)
    # the point labelled X is (2π/a)(1, 0, 0) up to symmetry: its analytic frequencies
    k = labels.index("X")
    seg, end = divmod(k, 2)
    f_x = np.sort(res.bands["frequencies"][seg][-1 if end else 0])
    want_x = analytic_frequencies(atoms, shells, [2 * np.pi / A, 0.0, 0.0])[0]
    print(f"X: {f_x} THz, analytic {want_x}")
    assert np.allclose(f_x, want_x, atol=1e-4 * top)


def test_rotated_cell_gets_the_same_path():
    from scipy.spatial.transform import Rotation
    shells = [(R1, 2.0), (R2, 0.3)]
    rot = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    cell = bulk("Cu", "fcc", a=A).cell.array @ rot.T
    atoms, res = _springs_fcc(shells, cell=cell)
    _, ref = _springs_fcc(shells)
    dev = max(np.abs(np.sort(a, axis=1) - np.sort(b, axis=1)).max()
              for a, b in zip(res.bands["frequencies"], ref.bands["frequencies"]))
    dev_band, dev_mesh, top = _deviation(atoms, res, shells)
    print(f"\nrotated fcc: bands vs unrotated {dev:.2e} THz; vs analytic band {dev_band:.2e}, mesh {dev_mesh:.2e}")
    assert res.bands["labels"] == ref.bands["labels"]
    assert dev < 1e-4 * top and dev_band < 1e-4 * top


def test_unstable_lattice_reports_imaginary_modes():
    shells = [(R1, 1.0), (R2, -0.8)]
    atoms, res = _springs_fcc(shells)
    dev_band, dev_mesh, top = _deviation(atoms, res, shells)
    qs = np.concatenate(res.bands["qpoints"])
    lowest = analytic_frequencies(atoms, shells, _cart(res.phonon, qs)).min()
    print(f"\nunstable fcc (k2 = -0.8): {len(res.imaginary)} imaginary modes, lowest {res.imaginary[0][1]:.4f} THz "
          f"(analytic on the path {lowest:.4f}); deviation band {dev_band:.2e}, mesh {dev_mesh:.2e} THz")
    assert not res.stable and lowest < -1.0
    assert res.min_frequency == pytest.approx(lowest, abs=1e-4 * top)
    assert dev_band < 1e-4 * top and dev_mesh < 1e-4 * top

    lines = []
    ctx = SimpleNamespace(label="acemd", atoms=atoms, comm=MPI.COMM_SELF, say=lines.append)
    result = P.phonon_result(res, ctx, {k: v.default for k, v in P.KEYS.items()})
    assert result.info["stable"] is False and result.info["n_imaginary_modes"] == len(res.imaginary)
    assert any("imaginary" in f for f in result.entry("phonons.min_frequency").flags)
    assert any("WARNING" in line for line in lines)


@pytest.fixture(scope="module")
def cu_pbe():
    return ACEPotential(POTENTIALS / "Cu-PBE-core-rep.ace")


def _structure(name):
    if name == "fcc":
        return bulk("Cu", "fcc", a=3.63), [6, 6, 6]          # 216 atoms: the local difference applies
    if name == "hcp":
        return bulk("Cu", "hcp", a=2.57, c=4.19), [3, 3, 2]
    atoms = bulk("Cu", "fcc", a=3.63, cubic=True)           # tetragonal: several displacements
    atoms.set_cell(np.diag([3.63, 3.63, 3.75]), scale_atoms=True)
    return atoms, [2, 2, 2]


@pytest.mark.parametrize("structure", ["fcc", "hcp", "tetragonal"])
def test_force_constants_equal_phonopy_with_the_ase_calculator(cu_pbe, structure):
    atoms, sc = _structure(structure)
    ref = P.phonons_of(atoms, P.forces_from_calculator(ACECalculator(cu_pbe)), supercell=sc, with_analysis=False)
    fc_ref = ref.phonon.force_constants
    for local in (False, True):
        ev = DisplacedForces(cu_pbe, local=local)
        got = P.phonons_of(atoms, ev.forces_of, supercell=sc, with_analysis=False)
        dev = np.abs(got.phonon.force_constants - fc_ref).max()
        print(f"\n{structure} Cu-PBE-core-rep, {len(ref.phonon.supercell)} atoms, "
              f"{len(ref.phonon.supercells_with_displacements)} displacement(s), local={local} "
              f"({ev.evaluated_sites} sites evaluated): max |FC - FC(phonopy + ACECalculator)| = {dev:.2e} eV/A^2 "
              f"(max |FC| {np.abs(fc_ref).max():.3f})")
        assert dev < 1e-8


def test_run_phonons_through_a_context(cu_pbe):
    atoms = bulk("Cu", "fcc", a=3.63)
    calc = ACECalculator(cu_pbe)

    def evaluate(structures):
        out = []
        for a in structures:
            a = a.copy()
            a.calc = calc
            out.append({"energy": a.get_potential_energy(), "forces": a.get_forces(), "stress": a.get_stress()})
        return out
    lines = []
    ctx = PropertyContext(atoms=atoms, evaluate=evaluate, relax=None, relax_many=None, calculator=lambda: calc,
                          comm=MPI.COMM_SELF, say=lines.append)
    result = P.run_phonons(ctx, {"supercell": [3, 3, 3], "mesh": [8, 8, 8], "band_points": 11})
    x1 = result.entry("phonons.X.1").value
    x3 = result.entry("phonons.X.3").value
    print(f"\nCu-PBE-core-rep fcc a = 3.63: X TA {x1:.3f} THz, LA {x3:.3f} THz; {lines[-1]}")
    assert result.info["stable"] and 4.0 < x1 < x3 < 8.5
    assert result.data["force_constants"].shape == (27, 27, 3, 3)
    assert result.units["dos_frequencies"] == "THz"
