"""Runs the MPI test modules under mpiexec with 2, 3 and 4 ranks (oversubscribed on a
2-core machine), so that `python -m pytest` alone covers the parallel code, and runs
the CLI under mpiexec end to end (a good input, a bad input: every rank exits)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine_helpers import write_input

TESTS = Path(__file__).resolve().parent
MPI_MODULES = [TESTS / "parallel" / "test_halo_mpi.py", TESTS / "io" / "test_io_mpi.py",
               TESTS / "mpi" / "test_engine_mpi.py", TESTS / "mpi" / "test_thermostats_mpi.py",
               TESTS / "mpi" / "test_extrapolation_mpi.py", TESTS / "mpi" / "test_drivers_mpi.py",
               TESTS / "mpi" / "test_free_energy_mpi.py"]


def mpiexec():
    exe = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
    if exe is None:
        pytest.fail("mpiexec not found: install the 'mpich' wheel (a dependency of acemd)")
    return exe


def _env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.parametrize("nranks", [2, 3, 4])
def test_mpi_suite(nranks):
    modules = [str(m) for m in MPI_MODULES if m.exists()]
    cmd = [mpiexec(), "-n", str(nranks), sys.executable, "-m", "pytest", "--with-mpi", "-q",
           "-p", "no:cacheprovider", "-s", *modules]
    proc = subprocess.run(cmd, cwd=TESTS.parent, capture_output=True, text=True, timeout=600, env=_env())
    print(proc.stdout[-6000:])
    print(proc.stderr[-3000:])
    assert proc.returncode == 0, f"MPI tests failed on {nranks} ranks"


def test_example_input_runs_under_mpiexec(tmp_path):
    """inputs/md_cu_nve.toml end to end on 2 ranks (shortened to 40 steps)."""
    example = (TESTS.parent / "inputs" / "md_cu_nve.toml").read_text()
    example = example.replace("steps = 200", "steps = 40").replace(
        '"../tests/data/potentials/', f'"{(TESTS / "data" / "potentials").as_posix()}/')
    path = tmp_path / "md_cu_nve.toml"
    path.write_text(example)
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "acemd.cli", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_env())
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0
    rows = [l for l in proc.stdout.splitlines() if l.strip() and not l.startswith("#")]
    assert rows[-1].split()[0] == "40"
    assert (tmp_path / "runs" / "md_cu_nve.h5").exists()
    assert (tmp_path / "runs" / "md_cu_nve.ckpt.h5").exists()


@pytest.mark.parametrize("edit,needle", [
    (lambda t: t.replace("timestep =", "time_step ="), "md.time_step"),
    (lambda t: t.replace('element = "Cu"', 'element = "Ni"'), "Ni"),
])
def test_bad_input_under_mpiexec_exits_every_rank(tmp_path, edit, needle):
    path = write_input(tmp_path)
    path.write_text(edit(path.read_text()))
    proc = subprocess.run([mpiexec(), "-n", "3", sys.executable, "-m", "acemd.cli", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 1, proc.stderr
    assert needle in proc.stderr
    assert proc.stderr.count("acemd: error") == 1          # reported once, not once per rank


def test_extrapolation_stop_under_mpiexec_exits_every_rank(tmp_path):
    """A max gamma above [extrapolation].stop_threshold: checkpoint, one message, status 3 on 2 ranks."""
    asi = (TESTS / "data" / "potentials" / "Cu-I.asi").as_posix()
    path = write_input(tmp_path, potential="Cu-I.yaml", rattle=0.05, steps=1000,
                       extra=f'[extrapolation]\nactive_set = "{asi}"\nstop_threshold = 10.0\n')
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "acemd.cli", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env())
    print(proc.stdout[-2000:], proc.stderr[-2000:])
    assert proc.returncode == 3
    assert proc.stderr.count("stopped by extrapolation at step 0") == 1
    assert (tmp_path / "run.ckpt.h5").exists() and (tmp_path / "extrapolative.extxyz").stat().st_size > 0


def test_structure_file_under_mpiexec(tmp_path):
    """[structure].file read on rank 0 only (ASE must not try to broadcast it) on 2 ranks."""
    from ase.build import bulk
    from ase.io import write
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    atoms.rattle(0.02, seed=3)
    write(tmp_path / "cu.extxyz", atoms)
    path = write_input(tmp_path, steps=10)
    text = path.read_text()
    start, end = text.index("[structure]"), text.index("[potential]")
    path.write_text(text[:start] + '[structure]\nfile = "cu.extxyz"\n\n' + text[end:])
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "acemd.cli", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env())
    print(proc.stdout[-2000:], proc.stderr[-2000:])
    assert proc.returncode == 0
    rows = [l for l in proc.stdout.splitlines() if l.strip() and not l.startswith("#")]
    assert rows[-1].split()[0] == "10"


def test_free_energy_example_under_mpiexec(tmp_path):
    """inputs/free_energy_cu_solid.toml through the CLI on 2 ranks with a tiny protocol: status 0,
    the report and the data file; SIGTERM-free."""
    example = (TESTS.parent / "inputs" / "free_energy_cu_solid.toml").read_text()
    for key, value in {"repeat = [5, 5, 5]": "repeat = [2, 2, 2]", "npt_steps = 10000": "npt_steps = 40",
                       "spring_steps = 10000": "spring_steps = 40", "n_iterations = 3": "n_iterations = 1",
                       "equilibration_steps = 5000": "equilibration_steps = 10",
                       "switching_steps = 20000": "switching_steps = 40",
                       "pressure_tolerance = 200.0": "pressure_tolerance = 1e9"}.items():
        assert key in example
        example = example.replace(key, value)
    example = example.replace('"../tests/data/potentials/', f'"{(TESTS / "data" / "potentials").as_posix()}/')
    path = tmp_path / "fe.toml"
    path.write_text(example)
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "acemd.cli", str(path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_env())
    print(proc.stdout[-2000:], proc.stderr[-2000:])
    assert proc.returncode == 0
    assert "# F = " in proc.stdout and proc.stdout.count("# F = ") == 1      # printed once, by rank 0
    for name in ("free_energy.yaml", "free_energy.h5", "free_energy.ckpt.h5"):
        assert (tmp_path / name).exists()
