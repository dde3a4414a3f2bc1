"""Serial engine tests: forces equal the ASE calculator, NVE conserves energy,
restart continues the same trajectory, bad input gives clear errors."""
import io
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI

from acemd import ACECalculator
from acemd.cli import main
from acemd.config import ConfigError, load_config
from acemd.drivers.md import MDRun

from engine_helpers import POTENTIALS, assert_same_trajectory, write_input


def make_run(path, restart=None):
    settings, text = load_config(path)
    return MDRun(settings, text, path, comm=MPI.COMM_SELF, restart=restart, stream=io.StringIO())


def test_engine_forces_equal_ase_calculator(tmp_path):
    path = write_input(tmp_path, temperature=0.0, steps=0, rattle=0.1, repeat=(2, 3, 2))
    run = make_run(path)
    run.engine.compute_forces(force_rebuild=True)
    st = run.state
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 3, 2))
    atoms.rattle(0.1, seed=0)
    order = np.argsort(st.ids)
    atoms.positions = st.positions[order] + st.images[order] @ st.cell
    atoms.calc = ACECalculator(POTENTIALS / "Cu-I.yace")
    assert run.engine.potential_energy == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(run.engine.forces[order], atoms.get_forces(), atol=1e-10)
    stress = -run.engine.virial / atoms.get_volume()
    np.testing.assert_allclose(stress.flat[[0, 4, 8, 5, 2, 1]], atoms.get_stress(), atol=1e-12)


def test_initial_velocities_have_exact_temperature_and_no_drift(tmp_path):
    path = write_input(tmp_path, temperature=450.0, steps=0)
    run = make_run(path)
    th = run.engine.thermo()
    assert th["temperature"] == pytest.approx(450.0, rel=1e-12)
    momentum = (run.state.masses[:, None] * run.state.velocities).sum(0)
    np.testing.assert_allclose(momentum, 0.0, atol=1e-10)


def test_nve_conserves_energy(tmp_path):
    """Velocity Verlet at 1 fs: total energy fluctuates little and does not drift."""
    path = write_input(tmp_path, temperature=600.0, steps=400, thermo_every=10)
    run = make_run(path)
    run.run()
    from acemd.io.thermo import read_thermo
    table = read_thermo(tmp_path / "run.log")
    n = run.state.n_atoms_total
    etot = table["TotEng"] / n
    drift = abs(np.polyfit(table["Time"], etot, 1)[0])           # eV/atom/ps
    spread = etot.max() - etot.min()
    print(f"\nNVE 400 fs: total-energy spread {spread:.2e} eV/atom, drift {drift:.2e} eV/atom/ps")
    assert spread < 2e-4
    assert drift < 1e-3
    assert table["Temp"].mean() > 100.0         # it really moved


def test_restart_continues_the_same_trajectory(tmp_path):
    straight = write_input(tmp_path / "a", steps=40, ckpt_every=0)
    run_a = make_run(straight)
    run_a.run()
    half = write_input(tmp_path / "b", steps=20)
    run_b = make_run(half)
    run_b.run()
    full = write_input(tmp_path / "b", steps=40)
    run_c = make_run(full, restart=str(tmp_path / "b" / "run.ckpt.h5"))
    assert run_c.state.step == 20
    run_c.run()
    assert_same_trajectory(run_a.state, run_c.state)
    assert run_c.engine.potential_energy == pytest.approx(run_a.engine.potential_energy, abs=1e-9)


@pytest.mark.parametrize("extra,message", [
    ("[md]\nsteps = 5\n", "md"),                                    # duplicate table: TOML error
])
def test_malformed_toml(tmp_path, extra, message):
    path = write_input(tmp_path, extra=extra)
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_unknown_key_suggests_spelling(tmp_path):
    path = write_input(tmp_path)
    path.write_text(path.read_text().replace("timestep =", "timestpe ="))
    with pytest.raises(ConfigError, match=r"md\.timestpe.*did you mean 'timestep'"):
        load_config(path)


def test_wrong_type_names_key(tmp_path):
    path = write_input(tmp_path)
    path.write_text(path.read_text().replace("steps = 20", 'steps = "many"'))
    with pytest.raises(ConfigError, match=r"md\.steps.*expected integer"):
        load_config(path)


def test_missing_potential_file(tmp_path):
    path = write_input(tmp_path, potential="does-not-exist.yace")
    with pytest.raises(ConfigError, match=r"potential\.file.*not found"):
        load_config(path)


def test_cli_reports_element_missing_from_potential(tmp_path, capsys):
    path = write_input(tmp_path, element="Ni", lattice="fcc", a=3.52)
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "Ni" in err and "Cu-I.yace" in err


def test_cli_check_prints_resolved_settings(tmp_path, capsys):
    path = write_input(tmp_path)
    assert main([str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "is valid" in out and "timestep = 0.001" in out and "skin = 1.0" in out
    assert not (tmp_path / "run.log").exists()          # --check runs nothing


def test_sigterm_writes_checkpoint_and_exits_cleanly(tmp_path):
    """What SLURM sends before the wall time: the run stops at the next step with a checkpoint
    and exits with EXIT_STOPPED (75: incomplete, restartable)."""
    path = write_input(tmp_path, steps=100000, thermo_every=50)
    proc = subprocess.Popen([sys.executable, "-m", "acemd.cli", str(path)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until the run is integrating (the log has a first row), then signal
    log = tmp_path / "run.log"
    for _ in range(3000):                   # up to 5 min: a cold numba cache compiles first
        if log.exists() and log.read_text().count("\n") > 12:
            break
        threading.Event().wait(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    from acemd.cli import EXIT_STOPPED
    assert proc.returncode == EXIT_STOPPED, err
    assert "SIGTERM" in out
    from acemd.io.checkpoint import read_checkpoint
    ckpt = read_checkpoint(tmp_path / "run.ckpt.h5")
    assert 0 < int(ckpt["step"]) < 100000


def _file_input(tmp_path, atoms, potential, steps=50, timestep=0.0005):
    import ase.io
    ase.io.write(tmp_path / "start.extxyz", atoms)
    path = tmp_path / "run.toml"
    path.write_text(f"""
[structure]
file = "start.extxyz"
[potential]
file = "{(POTENTIALS / potential).as_posix()}"
[md]
steps = {steps}
timestep = {timestep}
[thermo]
every = 1
file = "run.log"
""")
    return path


def test_atom_leaving_open_box_names_the_step(tmp_path, capsys):
    """Two H atoms 0.6 Å apart repel (ZBL) and one flies out of the non-periodic box."""
    from ase import Atoms
    atoms = Atoms("H2", positions=[[5, 5, 1.2], [5, 5, 1.8]], cell=[10, 10, 10], pbc=[True, True, False])
    path = _file_input(tmp_path, atoms, "ZBL_rep.yace", steps=2000)
    # two atoms gain ~3e4 K: let the escape, not the temperature guard, stop the run
    path.write_text(path.read_text() + "\n[guards]\nmax_temperature_factor = inf\n")
    assert main([str(path)]) == 4          # a blow-up guard stop: checkpoint of the last good state
    err = capsys.readouterr().err
    assert "step" in err and ("left" in err.lower() or "outside" in err)
    assert (tmp_path / "checkpoint.h5").exists()


def test_nan_positions_in_structure_file_are_rejected(tmp_path, capsys):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions[1, 0] = np.nan
    path = _file_input(tmp_path, atoms, "Cu-I.yace")
    assert main([str(path)]) == 1
    assert "NaN" in capsys.readouterr().err
