"""Thermostats and barostats under MPI (run by tests/test_mpi_suites.py with mpiexec -n 2, 3, 4):
Langevin and CSVR draw their noise per atom id / globally, so N ranks follow the 1-rank
trajectory; the deterministic Nose-Hoover chain does too.  The NPT ensembles change the cell
every step: the subdomains follow it and the trajectory is still that of 1 rank."""
import io

import numpy as np
import pytest
from mpi4py import MPI

from acemd.config import load_config
from acemd.drivers.md import MDRun

from engine_helpers import gather_by_id, write_input

pytestmark = pytest.mark.mpi(min_size=2)


NPT = {"npt-mtk": "triclinic", "npt-crescale": "aniso", "berendsen-equilibration": "iso"}


def _nvt_input(folder, ensemble, name):
    extra = "[thermostat]\ntemperature = 900.0\ndamping = 0.02\nseed = 4\n"
    if ensemble in NPT:
        extra += f'[barostat]\npressure = -20000.0\ndamping = 0.05\ncoupling = "{NPT[ensemble]}"\n'
    path = write_input(folder, repeat=(3, 3, 3), temperature=300.0, steps=60, thermo_every=20,
                       rattle=0.05, name=name, extra=extra)
    path.write_text(path.read_text().replace("[md]\n", f'[md]\nensemble = "{ensemble}"\n'))
    return path


def _shared_input(comm, tmp_path_factory, ensemble):
    """Rank 0 writes the input that all ranks then read."""
    folder = tmp_path_factory.mktemp("mpi") if comm.rank == 0 else None
    path = _nvt_input(folder, ensemble, "par") if comm.rank == 0 else None
    path = comm.bcast(path)
    comm.Barrier()
    return path


def _run(path, comm):
    settings, text = load_config(path)
    return MDRun(settings, text, path, comm=comm, stream=io.StringIO())


@pytest.mark.parametrize("ensemble", ["nvt-langevin", "nvt-csvr", "nvt-nose-hoover", *NPT])
def test_rank_count_does_not_change_the_thermostatted_trajectory(tmp_path_factory, ensemble):
    comm = MPI.COMM_WORLD
    par = _shared_input(comm, tmp_path_factory, ensemble)
    ser = _nvt_input(tmp_path_factory.mktemp(f"ser{comm.rank}"), ensemble, "ser")
    run_par, run_ser = _run(par, comm), _run(ser, MPI.COMM_SELF)
    run_par.run()
    run_ser.run()
    st_p, st_s = run_par.state, run_ser.state
    x_par = gather_by_id(comm, st_p.ids, st_p.positions + st_p.images @ st_p.cell)
    v_par = gather_by_id(comm, st_p.ids, st_p.velocities)
    order = np.argsort(st_s.ids)
    x_ser = (st_s.positions + st_s.images @ st_s.cell)[order]
    err_x = np.abs(x_par - x_ser).max()
    err_v = np.abs(v_par - st_s.velocities[order]).max()
    extra_par = run_par.integrator.conserved_extra(run_par.engine)
    extra_ser = run_ser.integrator.conserved_extra(run_ser.engine)
    temperature = run_par.engine.thermo()["temperature"]        # collective
    err_cell = np.abs(st_p.cell - st_s.cell).max()
    if comm.rank == 0:
        print(f"\n{comm.size} ranks, {ensemble}: max |dx| {err_x:.1e} A, max |dv| {err_v:.1e} A/ps, "
              f"max |dcell| {err_cell:.1e} A after 60 steps, T {temperature:.0f} K, "
              f"V {st_p.volume:.2f} A^3")
    assert err_cell < 1e-10
    if ensemble in NPT:
        assert abs(st_p.volume - 10.8 ** 3) > 1.0             # the cell did move
    assert err_x < 1e-8
    assert err_v < 1e-6
    assert extra_par == pytest.approx(extra_ser, abs=1e-8)
    assert extra_ser != 0.0
