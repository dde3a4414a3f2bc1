"""Engine under MPI (run by tests/test_mpi_suites.py with mpiexec -n 2, 3, 4):
the same input on N ranks gives the energies and the trajectory of 1 rank."""
import io

import numpy as np
import pytest
from mpi4py import MPI

from acemd.config import load_config
from acemd.drivers.md import MDRun

from engine_helpers import gather_by_id, write_input

pytestmark = pytest.mark.mpi(min_size=2)


def _shared_tmp(tmp_path_factory):
    comm = MPI.COMM_WORLD
    path = tmp_path_factory.mktemp("mpi") if comm.rank == 0 else None
    return comm.bcast(path)


def _write_shared(comm, folder, **kwargs):
    """Rank 0 writes an input file that all ranks then read."""
    path = write_input(folder, **kwargs) if comm.rank == 0 else None
    path = comm.bcast(path)
    comm.Barrier()
    return path


def _run(path, comm, restart=None):
    settings, text = load_config(path)
    run = MDRun(settings, text, path, comm=comm, restart=restart, stream=io.StringIO())
    return run


def _unwrapped(run, comm):
    st = run.state
    return gather_by_id(comm, st.ids, st.positions + st.images @ st.cell)


@pytest.mark.parametrize("repeat,potential,lattice,element,a", [
    ((3, 3, 3), "Cu-I.yace", "fcc", "Cu", 3.6),            # subdomains thinner than the cutoff
    ((4, 3, 2), "synth_NbTa_distance.yace", "bcc", "Nb", 3.3),
])
def test_rank_count_does_not_change_the_trajectory(tmp_path_factory, repeat, potential, lattice, element, a):
    comm = MPI.COMM_WORLD
    base = _shared_tmp(tmp_path_factory)
    par = _write_shared(comm, base / "par", potential=potential, lattice=lattice, element=element,
                        a=a, repeat=repeat, temperature=800.0, steps=100, thermo_every=50, rattle=0.05,
                        name="par")
    ser = write_input(base / f"ser{comm.rank}", potential=potential, lattice=lattice, element=element,
                      a=a, repeat=repeat, temperature=800.0, steps=100, thermo_every=50, rattle=0.05,
                      name="ser")
    run_par = _run(par, comm)
    run_ser = _run(ser, MPI.COMM_SELF)
    n = run_ser.state.n_atoms_total
    run_par.engine.compute_forces(force_rebuild=True)
    run_ser.engine.compute_forces(force_rebuild=True)
    e_par, e_ser = run_par.engine.potential_energy, run_ser.engine.potential_energy
    assert abs(e_par - e_ser) / n < 1e-10
    f_par = gather_by_id(comm, run_par.state.ids, run_par.engine.forces)
    order = np.argsort(run_ser.state.ids)
    np.testing.assert_allclose(f_par, run_ser.engine.forces[order], atol=1e-9)
    np.testing.assert_allclose(run_par.engine.virial, run_ser.engine.virial, atol=1e-8)
    run_par.run()
    run_ser.run()
    x_par, x_ser = _unwrapped(run_par, comm), _unwrapped(run_ser, MPI.COMM_SELF)
    err = np.abs(x_par - x_ser).max()
    if comm.rank == 0:
        print(f"\n{comm.size} ranks, {potential}: |dE|/atom at step 0 {abs(e_par - e_ser) / n:.1e} eV, "
              f"max |dx| after 100 steps {err:.1e} A, rebuilds {run_par.engine.n_rebuilds}")
    assert err < 1e-8
    assert run_par.engine.potential_energy == pytest.approx(run_ser.engine.potential_energy, abs=1e-8 * n)


def test_restart_under_mpi_continues_trajectory(tmp_path_factory):
    comm = MPI.COMM_WORLD
    base = _shared_tmp(tmp_path_factory)
    straight = _run(_write_shared(comm, base / "a", steps=30, name="a"), comm)
    straight.run()
    first = _run(_write_shared(comm, base / "b", steps=15, name="b"), comm)
    first.run()
    second = _run(_write_shared(comm, base / "b", steps=30, name="b"), comm,
                  restart=str(base / "b" / "b.ckpt.h5"))
    second.run()
    np.testing.assert_allclose(_unwrapped(second, comm), _unwrapped(straight, comm), atol=1e-10)
