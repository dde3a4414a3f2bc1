"""Extrapolation grade under MPI (run by tests/test_mpi_suites.py with mpiexec -n 2, 3, 4):
per-atom gamma, its maximum and the extrapolative-structures file equal the 1-rank run's,
and a stop ends the run on every rank."""
import io

import numpy as np
import pytest
from mpi4py import MPI

from acemd.config import load_config
from acemd.drivers.md import MDRun

from engine_helpers import POTENTIALS, gather_by_id, write_input

pytestmark = pytest.mark.mpi(min_size=2)


def _section(every, dump, stop):
    return (f'[extrapolation]\nactive_set = "{(POTENTIALS / "Cu-I.asi").as_posix()}"\n'
            f"every = {every}\ndump_threshold = {dump!r}\nstop_threshold = {stop!r}\n")


def _inputs(tmp_path_factory, **kwargs):
    """The same input for all ranks (written by rank 0) and a private copy for a 1-rank run."""
    comm = MPI.COMM_WORLD
    base = comm.bcast(tmp_path_factory.mktemp("mpi") if comm.rank == 0 else None)
    par = write_input(base / "par", name="par", **kwargs) if comm.rank == 0 else None
    par = comm.bcast(par)
    comm.Barrier()
    ser = write_input(base / f"ser{comm.rank}", name="ser", **kwargs)
    return par, ser


def _run(path, comm):
    settings, text = load_config(path)
    return MDRun(settings, text, path, comm=comm, stream=io.StringIO())


def test_gamma_does_not_depend_on_the_rank_count(tmp_path_factory):
    comm = MPI.COMM_WORLD
    kwargs = dict(potential="Cu-I.yaml", repeat=(4, 3, 3), temperature=800.0, rattle=0.05, steps=20,
                  extra=_section(5, 1.0, 1e30))
    par, ser = _inputs(tmp_path_factory, **kwargs)
    run_par, run_ser = _run(par, comm), _run(ser, MPI.COMM_SELF)
    run_par.run()
    run_ser.run()
    assert run_par.monitor.step == run_ser.monitor.step == 20
    g_par = gather_by_id(comm, run_par.state.ids, run_par.monitor.gamma)
    g_ser = run_ser.monitor.gamma[np.argsort(run_ser.state.ids)]
    rel = np.max(np.abs(g_par - g_ser) / np.abs(g_ser))
    if comm.rank == 0:
        print(f"\n{comm.size} ranks: gamma after 20 steps, max relative deviation from 1 rank {rel:.1e}")
    assert rel < 1e-9
    assert run_par.monitor.max_gamma == pytest.approx(run_ser.monitor.max_gamma, rel=1e-9)
    assert len(set(comm.allgather(run_par.monitor.max_gamma))) == 1      # the same on every rank
    if comm.rank == 0:
        from ase.io import read
        fp = read(par.parent / "extrapolative.extxyz", ":", parallel=False)    # rank 0 alone
        fs = read(ser.parent / "extrapolative.extxyz", ":", parallel=False)
        assert [f.info["step"] for f in fp] == [f.info["step"] for f in fs] == [0, 5, 10, 15, 20]
        for a, b in zip(fp, fs):
            np.testing.assert_array_equal(a.arrays["id"], np.arange(len(a)))
            np.testing.assert_allclose(a.arrays["gamma"], b.arrays["gamma"], rtol=1e-7)
            np.testing.assert_allclose(a.positions, b.positions, atol=1e-7)


def test_stop_ends_the_run_on_every_rank(tmp_path_factory):
    comm = MPI.COMM_WORLD
    par, _ = _inputs(tmp_path_factory, potential="Cu-I.yaml", repeat=(3, 3, 3), rattle=0.05, steps=50,
                     extra=_section(5, 1e30, 1.0))
    summary = _run(par, comm).run()
    assert summary["stopped_by"] == "extrapolation" and summary["steps"] == 0
    assert comm.allgather(summary["stopped_by"]) == ["extrapolation"] * comm.size
