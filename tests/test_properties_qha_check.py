"""The QHA's Frenkel-Ladd cross-check (acemd.properties.qha_check).

* The finite-cell harmonic free energy is in the Frenkel-Ladd route's convention: for
  centre-of-mass-free Einstein springs (3N - 3 modes at ω_E) it equals acemd's
  einstein_free_energy + com_correction exactly.
* The commensurate-q frequencies of a phonopy supercell are the Γ modes of that cell taken as its
  own unit cell (the same 3N numbers).
* Cu-I.yace, 32 atoms: the [free_energy] solid route (short switches) against the classical
  QHA at 100 and 300 K: the anharmonic part (route minus the same cell's harmonic free energy
  at the MD volume) is printed with its error, below 5 meV/atom at 300 K and smaller at 100 K;
  the MD volume against the QHA's.
"""
import json

import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI

from acemd.free_energy.reference import com_correction, einstein_free_energy, einstein_frequency
from acemd.potential import ACEPotential
from acemd.potential.calculator import ACECalculator
from acemd.properties import phonons as P
from acemd.properties import qha as Q
from acemd.properties import qha_check as C
from acemd.properties.displaced_forces import DisplacedForces

from engine_helpers import POTENTIALS
from phonon_helpers import ShellSprings


@pytest.mark.parametrize("n,temperature", [(32, 100.0), (108, 300.0), (500, 1000.0)])
def test_finite_cell_convention_is_the_routes(n, temperature):
    k, m, volume = 1.7, 63.546, 11.8 * n
    nu_thz = einstein_frequency(k, m) / (2 * np.pi)          # rad/ps -> 1/ps
    freqs = np.concatenate([[1e-9, -1e-9, 0.0], np.full(3 * n - 3, nu_thz)])
    mine = C.finite_cell_free_energy(freqs, np.full(n, m), volume, temperature)
    route = einstein_free_energy(temperature, [k], [m], [n]) + com_correction(temperature, [k], [m], [n], volume)
    print(f"\nN = {n}, {temperature:g} K: finite-cell {mine:.12f}, Einstein + F_CM {route:.12f} eV/atom "
          f"(diff {mine - route:.1e})")
    assert mine == pytest.approx(route, abs=1e-12)


def test_commensurate_frequencies_are_the_cells_gamma_modes():
    a = 3.6
    model = ShellSprings([(a / np.sqrt(2), 2.0), (a, 0.3)])
    prim = bulk("Cu", "fcc", a=a)
    p = P.make_phonopy(prim, np.diag([3, 3, 3]))
    P.force_constants(p, model.forces_of(P.displaced_supercells(p)))
    f_comm = np.sort(C.commensurate_frequencies(p))
    cell = P.perfect_supercell(p)
    whole = P.make_phonopy(cell, np.eye(3, dtype=int), primitive="P")
    P.force_constants(whole, model.forces_of(P.displaced_supercells(whole)))
    whole.run_qpoints([[0, 0, 0]])
    f_gamma = np.sort(np.asarray(whole.qpoints.frequencies).ravel())
    print(f"\n27-atom cell: commensurate-q vs Γ-of-the-cell frequencies, max diff {np.abs(f_comm - f_gamma).max():.2e} THz")
    assert f_comm.shape == (81,) and np.allclose(f_comm, f_gamma, atol=1e-6)


@pytest.mark.slow
def test_frenkel_ladd_against_the_classical_qha(tmp_path):
    """Cu-I.yace, 32 atoms (2x2x2 conventional cells: the phonon supercell is the MD cell), 0 bar;
    1000-step switches x 2 at 100 and 300 K (about a minute on one core)."""
    from scipy.optimize import minimize_scalar
    pot = ACEPotential(POTENTIALS / "Cu-I.yace")
    calc = ACECalculator(pot)

    def energy(a):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = calc
        return atoms.get_potential_energy()
    a0 = minimize_scalar(energy, bracket=(3.55, 3.63, 3.72), tol=1e-12).x

    def evaluate(structures):
        out = []
        for s in structures:
            s = s.copy()
            s.calc = calc
            out.append({"energy": s.get_potential_energy(), "forces": s.get_forces()})
        return out
    atoms = bulk("Cu", "fcc", a=a0, cubic=True)
    forces = DisplacedForces(pot).forces_of
    res = Q.qha_of(atoms, evaluate, forces, supercell=[2, 2, 2], mesh=(12, 12, 12), t_max=500.0)
    rows = C.cross_check(atoms, pot.path, res, forces, evaluate, [100.0, 300.0], tmp_path, MPI.COMM_SELF,
                         supercell=[2, 2, 2], mesh=(12, 12, 12), steps=1000, iterations=2)
    print("\n" + C.format_table(rows))
    low, high = rows
    assert abs(high["difference"]) < 5e-3                        # FL - QHA(classical) at 300 K < 5 meV/atom
    # 32 atoms: the finite-cell term (classical, ~k_B T ln N / N) dominates FL - QHA here and grows
    # with T like it; without it, what is left (anharmonic + volume term) shrinks toward low T
    assert abs(low["difference"] - low["finite_size"]) < 0.5 * abs(high["difference"] - high["finite_size"])
    # the anharmonic part (same cell, same volume) shrinks toward low T (~T^2) and is resolved
    assert abs(low["anharmonic"]) < 0.5 * abs(high["anharmonic"])
    # and so does the difference to the QHA of the same 32-atom cell at the same pressure
    assert abs(low["anharmonic_at_P"]) < 0.5 * abs(high["anharmonic_at_P"])
    assert high["G_FL_error"] < 1e-3
    for r in rows:
        assert abs(r["V_MD"] / r["V_QHA_classical"] - 1) < 0.03
        assert r["volume_term"] > -2e-4              # G_QHA is the minimum over V (up to the EOS fit)


def test_cross_check_through_run_qha_stores_and_resumes(tmp_path):
    """run_qha with cross_check: the rows go into the result and, after each temperature, into the
    context's checkpoint; a context that saved them (a restart) does not run the route again."""
    from acemd.properties.base import PropertyContext
    pot = ACEPotential(POTENTIALS / "Cu-I.yace")
    calc = ACECalculator(pot)

    def evaluate(structures):
        out = []
        for s in structures:
            s = s.copy()
            s.calc = calc
            out.append({"energy": s.get_potential_energy(), "forces": s.get_forces()})
        return out
    stored = []
    settings = {"supercell": [2, 2, 2], "mesh": [8, 8, 8], "t_max": 400.0, "t_step": 20.0, "cross_check": True,
                "cross_check_temperatures": [200.0], "cross_check_steps": 200, "cross_check_iterations": 2,
                "report_temperatures": [200.0]}

    def ctx(saved):
        lines = []
        c = PropertyContext(atoms=bulk("Cu", "fcc", a=3.633, cubic=True), evaluate=evaluate, relax=None,
                            relax_many=None, calculator=lambda: calc, comm=MPI.COMM_SELF, output_dir=tmp_path,
                            saved=saved, checkpoint=stored.append, say=lines.append, potential=pot)
        return c, lines
    first, lines = ctx({})
    result = Q.run_qha(first, settings)
    rows = result.info["cross_check"]
    e = {x.name: x for x in result.entries}
    print(f"\ntiny protocol, 32 atoms, 200 K: FL - QHA {e['qha.FL_minus_QHA_200K'].value:+.3f} ± "
          f"{e['qha.FL_minus_QHA_200K'].error:.3f} meV/atom, anharmonic {e['qha.anharmonic_200K'].value:+.3f}")
    assert len(rows) == 1 and len(stored) == 1 and "cross_check_rows" in stored[0]
    assert abs(e["qha.FL_minus_QHA_200K"].value) < 10.0
    assert (tmp_path / "acemd_qha_cross_check" / "fl_200K.yaml").exists()
    again, lines2 = ctx({"cross_check_rows": stored[0]["cross_check_rows"]})
    result2 = Q.run_qha(again, settings)
    assert json.dumps(result2.info["cross_check"]) == json.dumps(rows)     # (nan != nan: compare the text)
    assert not any("Frenkel-Ladd at" in line for line in lines2)      # nothing ran again
