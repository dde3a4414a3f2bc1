"""[minimize]: FIRE and L-BFGS with and without cell degrees of freedom, against independent
calculations with the ASE calculator (perfect-lattice energies, a root search on the stress)."""
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI
from scipy.optimize import brentq

from acemd.config import ConfigError, parse_config
from acemd.drivers.minimize import MinimizeRun, NotConvergedError
from acemd.potential.calculator import ACECalculator

from engine_helpers import POTENTIALS, run_driver

CU = POTENTIALS / "Cu-I.yace"


def minimize_input(folder, *, a=3.62, repeat=(2, 2, 2), rattle=0.0, lattice="fcc", section="", extra="",
                   name="min"):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""
[potential]
file = "{CU.as_posix()}"
[structure]
lattice = "{lattice}"
element = "Cu"
a = {a}
repeat = [{repeat[0]}, {repeat[1]}, {repeat[2]}]
rattle = {rattle}
rattle_seed = 3
{extra}
[minimize]
structure_file = "{name}.extxyz"
{section}
[thermo]
file = "{name}.log"
every = 50
[checkpoint]
file = "{name}.ckpt.h5"
"""
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def run_minimize(path, comm=MPI.COMM_SELF):
    return run_driver(MinimizeRun, path, comm)


def ase_energy_per_atom(a):
    atoms = bulk("Cu", "fcc", a=a, cubic=True)
    atoms.calc = ACECalculator(str(CU))
    return atoms.get_potential_energy() / len(atoms)


def ase_zero_pressure_a():
    """Independent: root of the hydrostatic stress of the perfect fcc cell (ASE calculator)."""
    def pressure(a):
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = ACECalculator(str(CU))
        return atoms.get_stress()[:3].mean()
    return brentq(pressure, 3.4, 3.9, xtol=1e-12)


@pytest.mark.parametrize("method", ["fire", "lbfgs"])
def test_rattled_crystal_relaxes_to_perfect_lattice(tmp_path, method):
    path = minimize_input(tmp_path, rattle=0.08, section=f'method = "{method}"\nfmax = 1e-5')
    run, out = run_minimize(path)
    res = out["result"]
    reference = ase_energy_per_atom(3.62)
    n = run.simulation.state.n_atoms_total
    print(f"\n{method}: {res.steps} steps, E/atom - perfect = {res.energy / n - reference:.2e} eV, "
          f"fmax {res.fmax:.1e}")
    assert res.converged and res.reason == "converged"
    assert res.fmax <= 1e-5
    assert res.energy / n == pytest.approx(reference, abs=1e-9)
    # outputs: relaxed structure and a checkpoint
    from ase.io import read
    atoms = read(tmp_path / "min.extxyz")
    assert len(atoms) == n
    assert (tmp_path / "min.ckpt.h5").exists()
    log = (tmp_path / "min.log").read_text()
    assert "converged" in log and "Fmax[eV/A]" in log


@pytest.mark.parametrize("method,cell", [("fire", "iso"), ("lbfgs", "iso"), ("fire", "aniso"),
                                         ("lbfgs", "triclinic")])
def test_cell_relaxes_to_zero_pressure_lattice_constant(tmp_path, method, cell):
    path = minimize_input(tmp_path, a=3.75, rattle=0.02,
                          section=f'method = "{method}"\ncell = "{cell}"\nfmax = 1e-5\nstress_tol = 0.01')
    run, out = run_minimize(path)
    st = run.simulation.state
    a_relaxed = np.diag(st.cell) / 2.0
    a_ref = ase_zero_pressure_a()
    print(f"\n{method}/{cell}: a = {a_relaxed} vs root search {a_ref:.8f} A, steps {out['result'].steps}")
    assert out["result"].converged
    np.testing.assert_allclose(a_relaxed, a_ref, atol=2e-6)
    # the cell stays orthogonal (to the shear strain stress_tol allows): strains are symmetric
    assert np.abs(st.cell - np.diag(np.diag(st.cell))).max() < 1e-6


def test_target_pressure(tmp_path):
    """At +10 kbar the relaxed cell has that pressure, and a smaller volume than at 0."""
    path = minimize_input(tmp_path, section='cell = "iso"\npressure = 10000.0\nstress_tol = 0.01\n'
                                           'method = "lbfgs"')
    run, out = run_minimize(path)
    assert out["result"].pressure == pytest.approx(10000.0, abs=0.01)
    assert np.diag(run.simulation.state.cell)[0] / 2 < ase_zero_pressure_a()


def test_vacancy_same_energy_with_both_methods(tmp_path):
    """A vacancy in a 3x3x3 cell: FIRE and L-BFGS reach the same relaxed energy."""
    from ase.io import write
    atoms = bulk("Cu", "fcc", a=3.62, cubic=True).repeat(3)
    del atoms[13]
    atoms.rattle(0.02, seed=1)
    write(tmp_path / "vac.extxyz", atoms)
    energies = {}
    for method in ("fire", "lbfgs"):
        text = f"""
[potential]
file = "{CU.as_posix()}"
[structure]
file = "vac.extxyz"
[minimize]
method = "{method}"
fmax = 1e-5
structure_file = "{method}.extxyz"
[thermo]
file = "{method}.log"
[checkpoint]
file = "{method}.h5"
"""
        path = tmp_path / f"{method}.toml"
        path.write_text(text)
        _, out = run_minimize(path)
        energies[method] = out["result"].energy
    unrelaxed = bulk("Cu", "fcc", a=3.62, cubic=True).repeat(3)
    del unrelaxed[13]
    unrelaxed.calc = ACECalculator(str(CU))
    e_unrelaxed = unrelaxed.get_potential_energy()
    # independent: ASE's BFGS on the ASE calculator from the same start
    from ase.optimize import BFGS
    atoms.calc = ACECalculator(str(CU))
    BFGS(atoms, logfile=None).run(fmax=1e-6)
    e_ase = atoms.get_potential_energy()
    print(f"\nvacancy: FIRE {energies['fire']:.8f}, L-BFGS {energies['lbfgs']:.8f}, ASE BFGS {e_ase:.8f} eV, "
          f"relaxation energy {e_unrelaxed - energies['fire']:.4f} eV")
    assert energies["fire"] == pytest.approx(energies["lbfgs"], abs=1e-7)
    assert energies["fire"] == pytest.approx(e_ase, abs=1e-7)
    assert energies["fire"] < e_unrelaxed - 1e-3


def test_hcp_triclinic_relaxation_reaches_zero_stress(tmp_path):
    """hcp with a wrong c/a: every stress component relaxes to the target."""
    path = minimize_input(tmp_path, lattice="hcp", a=2.6, repeat=(2, 2, 2), extra="c = 4.0",
                          section='cell = "triclinic"\nmethod = "lbfgs"\nstress_tol = 0.01\nfmax = 1e-5')
    run, out = run_minimize(path)
    assert out["result"].converged
    p = run.simulation.virial_pressure_bar()
    assert np.abs(p).max() < 0.01
    cell = run.simulation.state.cell
    c_over_a = np.linalg.norm(cell[2]) / np.linalg.norm(cell[0])
    print(f"\nhcp Cu-I relaxed: a = {np.linalg.norm(cell[0]) / 2:.5f} A, c/a = {c_over_a:.5f}")
    assert c_over_a != pytest.approx(4.0 / 2.6, abs=1e-3)


def test_max_steps_is_an_error(tmp_path):
    path = minimize_input(tmp_path, rattle=0.1, section="max_steps = 3")
    with pytest.raises(NotConvergedError, match="max_steps"):
        run_minimize(path)
    # the last structure is still written, and the log warns
    assert (tmp_path / "min.extxyz").exists()
    assert "WARNING: stopped at max_steps" in (tmp_path / "min.log").read_text()


def test_md_restarts_from_minimize_checkpoint(tmp_path):
    """The minimiser's checkpoint starts an [md] run (step 0, zero velocities, relaxed positions)."""
    path = minimize_input(tmp_path, rattle=0.05, section="fmax = 1e-4")
    _, out = run_minimize(path)
    md = tmp_path / "md.toml"
    md.write_text(path.read_text().replace("[minimize]", "[md]\nsteps = 5")
                  .replace('structure_file = "min.extxyz"', "").replace("fmax = 1e-4", ""))
    from acemd.drivers.md import MDRun
    settings = parse_config(md.read_text(), md)
    run = MDRun(settings, md.read_text(), md, comm=MPI.COMM_SELF, restart=str(tmp_path / "min.ckpt.h5"),
                stream=io.StringIO())
    assert run.state.step == 0
    run.engine.compute_forces(force_rebuild=True)
    assert run.engine.potential_energy == pytest.approx(out["result"].energy, abs=1e-9)
    summary = run.run()
    assert summary["steps"] == 5


@pytest.mark.parametrize("section,match", [
    ('method = "fiire"', "did you mean 'fire'"),
    ('method = "cg"', "one of 'fire', 'lbfgs'"),
    ('cell = "anisso"', "did you mean 'aniso'"),
    ("fmax = -1.0", "positive"),
])
def test_bad_minimize_keys(tmp_path, section, match):
    path = minimize_input(tmp_path, section=section)
    with pytest.raises(ConfigError, match=match):
        parse_config(path.read_text(), path)


def test_driver_sections_exclusive(tmp_path):
    path = minimize_input(tmp_path, extra="")
    text = path.read_text() + "\n[md]\nsteps = 10\n"
    with pytest.raises(ConfigError, match=r"exactly one driver section.*found \[md\], \[minimize\]"):
        parse_config(text, path)
    text = path.read_text().replace("[minimize]", "[thermostat]\ntemperature = 300.0\n[minimize]")
    with pytest.raises(ConfigError, match=r"\[md\] runs only"):
        parse_config(text, path)
    bare = "\n".join(l for l in path.read_text().splitlines() if "minimize" not in l
                     and "structure_file" not in l)
    with pytest.raises(ConfigError, match="found none"):
        parse_config(bare, path)


def test_cli_not_converged_exits_1_on_every_rank(tmp_path):
    """Under mpiexec -n 2 a minimisation that hits max_steps ends with status 1 and says so once."""
    from test_mpi_suites import _env, mpiexec
    path = minimize_input(tmp_path, rattle=0.1, section="max_steps = 2")
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "acemd.cli", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env())
    print(proc.stdout[-2000:], proc.stderr[-2000:])
    assert proc.returncode == 1
    errors = [l for l in proc.stderr.splitlines() if l.startswith("acemd: error")]
    assert len(errors) == 1 and "max_steps" in errors[0]
    assert "Traceback" not in proc.stderr
