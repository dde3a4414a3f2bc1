"""I/O under MPI: atoms split between ranks in arbitrary order end up in one file
ordered by id, written by rank 0; errors on one rank are raised on every rank.

Run: mpiexec -n 2 python -m pytest --with-mpi tests/io/test_io_mpi.py
"""
import io

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.mpi(min_size=2)


@pytest.fixture
def comm():
    from mpi4py import MPI
    return MPI.COMM_WORLD


def split(comm, n, seed=0):
    """This rank's ids: a random assignment of atoms to ranks, in shuffled order."""
    rng = np.random.default_rng(seed)          # same on every rank
    owner = rng.integers(0, comm.size, size=n)
    owner[: comm.size] = np.arange(comm.size)  # every rank owns something
    mine = np.flatnonzero(owner == comm.rank)
    return np.random.default_rng(100 + comm.rank + seed).permutation(mine)


def global_data(n, k):
    i = np.arange(n, dtype=float)
    return {"position": np.stack([i, i + 0.5, i + 0.25 + k], axis=1),
            "velocity": np.stack([-i, 2 * i, 3.0 + k + 0 * i], axis=1),
            "force": np.stack([i * k, -i, i * i], axis=1),
            "species": (np.arange(n) % 2).astype(np.int64),
            "image": np.stack([np.arange(n) % 3 - 1] * 3, axis=1)}


def test_h5md_gather_orders_by_id(comm, mpi_tmp_path):
    from acemd.io.h5md import H5MDWriter
    n = 23
    path = mpi_tmp_path / "traj.h5md"
    fields = ("position", "velocity", "force", "image", "species", "id")
    with H5MDWriter(path, comm, n, ["Cu", "Ag"], fields=fields,
                    observables=["temperature"]) as w:
        for k in range(3):
            mine = split(comm, n, seed=k)          # atoms migrate between frames
            g = global_data(n, k)
            w.write_frame(10 * k, 0.01 * k, np.eye(3) * (10 + k), mine,
                          {f: g[f][mine] for f in fields if f != "id"},
                          {"temperature": 300.0 + k} if comm.rank == 0 else {})
            assert w.n_frames == k + 1 and w.last_step == 10 * k     # known on every rank
    comm.Barrier()
    with h5py.File(path, "r") as f:        # every rank checks the single file
        part = f["particles/all"]
        np.testing.assert_array_equal(part["id/value"][:], np.tile(np.arange(n), (3, 1)))
        for k in range(3):
            g = global_data(n, k)
            for name in fields[:-1]:
                np.testing.assert_array_equal(part[f"{name}/value"][k], g[name], err_msg=name)
        np.testing.assert_array_equal(part["box/edges/step"][:], [0, 10, 20])
        np.testing.assert_allclose(f["observables/temperature/value"][:], [300, 301, 302])


def test_h5md_errors_reach_every_rank(comm, mpi_tmp_path):
    from acemd.io.h5md import H5MDError, H5MDWriter
    n = 8
    w = H5MDWriter(mpi_tmp_path / "err.h5md", comm, n, ["Cu"], fields=("position", "velocity"),
                   observables=[])
    mine = split(comm, n)
    g = global_data(n, 0)
    data = {"position": g["position"][mine], "velocity": g["velocity"][mine]}
    if comm.rank == 1:
        del data["velocity"]               # one rank forgets a field: nobody hangs
    with pytest.raises(H5MDError, match="rank 1: .*'velocity' is missing"):
        w.write_frame(0, 0.0, np.eye(3), mine, data, {})
    dup = np.arange(n // 2) if comm.rank < 2 else np.zeros(0, dtype=np.int64)
    local = {"position": np.zeros((len(dup), 3)), "velocity": np.zeros((len(dup), 3))}
    with pytest.raises(H5MDError, match="duplicate atom ids|expected 8"):
        w.write_frame(0, 0.0, np.eye(3), dup, local, {})
    w.write_frame(1, 0.001, np.eye(3), mine, {"position": g["position"][mine],
                                             "velocity": g["velocity"][mine]}, {})
    w.close()


def test_checkpoint_gather_orders_by_id(comm, mpi_tmp_path):
    from acemd.io.checkpoint import read_checkpoint, write_checkpoint
    n = 17
    mine = split(comm, n, seed=5)
    g = global_data(n, 1)
    path = mpi_tmp_path / "ckpt.h5"
    state = {"integrator": {"xi": np.arange(3.0), "rng": np.random.default_rng(1).bit_generator.state}}
    write_checkpoint(path, comm, step=42, time_ps=0.042, cell=np.eye(3) * 9, pbc=[True] * 3,
                     ids=mine, positions=g["position"][mine], velocities=g["velocity"][mine],
                     species=g["species"][mine], images=g["image"][mine],
                     masses_by_species=[63.5, 107.9], species_names=["Cu", "Ag"], state=state,
                     metadata={"input_text": "x = 1"})
    comm.Barrier()
    d = read_checkpoint(path)                    # every rank reads the same plain dict
    np.testing.assert_array_equal(d["ids"], np.arange(n))
    np.testing.assert_array_equal(d["positions"], g["position"])
    np.testing.assert_array_equal(d["velocities"], g["velocity"])
    np.testing.assert_array_equal(d["species"], g["species"])
    np.testing.assert_array_equal(d["images"], g["image"])
    assert d["step"] == 42 and d["input_text"] == "x = 1"
    assert d["state"]["integrator"]["rng"] == state["integrator"]["rng"]
    assert not (mpi_tmp_path / "ckpt.h5.tmp").exists()


def test_checkpoint_error_on_one_rank(comm, mpi_tmp_path):
    from acemd.io.checkpoint import CheckpointError, write_checkpoint
    n = 6
    mine = split(comm, n)
    pos = np.zeros((len(mine), 3)) if comm.rank != 1 else np.zeros((len(mine), 2))
    with pytest.raises(CheckpointError, match="rank 1: .*positions has shape"):
        write_checkpoint(mpi_tmp_path / "bad.h5", comm, step=0, time_ps=0.0, cell=np.eye(3),
                         pbc=[True] * 3, ids=mine, positions=pos, velocities=np.zeros((len(mine), 3)),
                         species=np.zeros(len(mine), dtype=int), images=np.zeros((len(mine), 3), int),
                         masses_by_species=[1.0], species_names=["H"], state={})


def test_thermo_written_by_rank0_only(comm, mpi_tmp_path):
    from acemd.io.thermo import ThermoLog, read_thermo
    stream = io.StringIO()
    shared = mpi_tmp_path / "thermo.log"
    own = mpi_tmp_path / f"thermo_rank{comm.rank}.log"
    cols = [("Step", "", "{:d}"), ("Temp", "K", "{:.3f}")]
    logs = [ThermoLog(comm, cols, log_path=p, stream=stream, total_steps=4) for p in (shared, own)]
    for s in range(5):
        for log in logs:
            log.row(s, {"Temp": 300.0 + s})
    for log in logs:
        log.close()
    comm.Barrier()
    if comm.rank == 0:
        assert stream.getvalue().count("Temp[K]") == 2
    else:
        assert stream.getvalue() == ""
    assert (mpi_tmp_path / "thermo_rank0.log").exists()
    assert not (mpi_tmp_path / "thermo_rank1.log").exists()
    text = shared.read_text()
    assert text.count("Temp[K]") == 1 and text.count("# summary:") == 1
    np.testing.assert_array_equal(read_thermo(shared)["Step"], np.arange(5))


def test_structure_broadcast(comm):
    from acemd.io.structure import StructureError, load_structure
    spec = {"lattice": "bcc", "element": "W", "a": 3.16, "repeat": [2, 2, 2], "rattle": 0.1, "seed": 3}
    atoms = load_structure(spec, ".", comm=comm)
    ref = comm.bcast(atoms.positions if comm.rank == 0 else None)
    np.testing.assert_array_equal(atoms.positions, ref)
    with pytest.raises(StructureError, match="unknown lattice"):
        load_structure(dict(spec, lattice="bct"), ".", comm=comm)
