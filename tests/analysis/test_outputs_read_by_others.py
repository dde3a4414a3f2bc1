"""acemd's outputs as other programs read them (issue 27).

- The relaxed structure of [minimize] read by ASE: ``get_potential_energy()``, ``get_forces()``
  and ``get_stress()`` equal an independent evaluation of the same atoms by the ASE calculator.
- A binary trajectory read by MDAnalysis through ``acemd.io.mdanalysis.universe``: atoms
  selectable by element (the structure file's species), with the run's masses ([masses] override
  and standard masses).
"""
import os

import numpy as np
import pytest

from acemd.cli import main as acemd_main
from engine_helpers import POTENTIALS


def _run(folder, text, *extra):
    (folder / "in.toml").write_text(text)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert acemd_main(["in.toml", *extra]) == 0
    finally:
        os.chdir(cwd)


def test_relaxed_extxyz_gives_ase_the_energy_forces_and_stress(tmp_path):
    import ase.io
    from acemd import ACECalculator
    pot = POTENTIALS / "Cu-I.yace"
    _run(tmp_path, f'[structure]\nlattice = "fcc"\nelement = "Cu"\na = 3.7\nrepeat = [2, 2, 2]\nrattle = 0.05\n'
                   f'[potential]\nfile = "{pot.as_posix()}"\n[minimize]\ncell = "iso"\nfmax = 0.05\n'
                   'pressure = 5000.0\nstructure_file = "relaxed.extxyz"\n')
    atoms = ase.io.read(tmp_path / "relaxed.extxyz")
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    assert atoms.info["converged"] is True and "eV" in atoms.info["units"]
    ref = atoms.copy()
    ref.calc = ACECalculator(str(pot))
    print(f"relaxed extxyz vs ACECalculator: energy {energy - ref.get_potential_energy():.2e} eV, "
          f"forces {np.abs(forces - ref.get_forces()).max():.2e} eV/A, "
          f"stress {np.abs(stress - ref.get_stress()).max():.2e} eV/A^3")
    assert energy == pytest.approx(ref.get_potential_energy(), abs=1e-9)
    assert np.abs(forces - ref.get_forces()).max() < 1e-7          # extxyz keeps 8 decimals
    assert np.abs(forces).max() < 0.05                               # it is relaxed
    np.testing.assert_allclose(stress, ref.get_stress(), atol=1e-10)
    # relaxed at 5000 bar: the stress is the target pressure, compressive (ASE sign: -P)
    np.testing.assert_allclose(stress[:3], -5000.0 / 1.602176634e6, rtol=0.02)


def test_mdanalysis_universe_selects_atoms_by_element_with_the_run_masses(tmp_path):
    pytest.importorskip("MDAnalysis")
    import ase.io
    from ase.build import bulk
    from ase.data import atomic_masses, atomic_numbers
    from acemd.io.mdanalysis import universe
    atoms = bulk("Ni", "fcc", a=3.56, cubic=True).repeat((2, 2, 2))
    symbols = np.where(np.random.default_rng(3).random(len(atoms)) < 0.4, "Al", "Ni")
    atoms.set_chemical_symbols(list(symbols))
    ase.io.write(tmp_path / "alni.extxyz", atoms)
    _run(tmp_path, f'[structure]\nfile = "alni.extxyz"\n[potential]\nfile = '
                   f'"{(POTENTIALS / "Al-Ni_opt_all.yace").as_posix()}"\n[masses]\nAl = 30.0\n'
                   '[velocities]\ntemperature = 300.0\n[md]\nsteps = 4\ntimestep = 0.001\n'
                   '[trajectory]\nfile = "t.h5"\nevery = 2\n')
    u = universe(tmp_path / "t.h5")
    assert u.trajectory.n_frames == 3
    np.testing.assert_array_equal(u.select_atoms("element Ni").indices, np.flatnonzero(symbols == "Ni"))
    np.testing.assert_array_equal(u.select_atoms("name Al").indices, np.flatnonzero(symbols == "Al"))
    expected = np.where(symbols == "Al", 30.0, atomic_masses[atomic_numbers["Ni"]])
    np.testing.assert_allclose(u.atoms.masses, expected)
    np.testing.assert_allclose(u.trajectory[0].positions, atoms.positions, atol=1e-5)   # frame 0, float32
