"""Checkpoints: round trip of the system and of nested state (types kept), atomic
replacement, and clear errors for missing, truncated and foreign files."""
import os

import h5py
import numpy as np
import pytest
from mpi4py import MPI

import acemd.io.checkpoint as ckmod
from acemd.io.checkpoint import CheckpointError, read_checkpoint, write_checkpoint

COMM = MPI.COMM_SELF


def system(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "cell": np.array([[5.0, 0.0, 0.0], [0.5, 5.2, 0.0], [0.1, 0.2, 5.4]]),
        "pbc": np.array([True, True, False]),
        "ids": np.arange(n, dtype=np.int64),
        "positions": rng.uniform(0, 5, size=(n, 3)),
        "velocities": rng.normal(size=(n, 3)),
        "species": rng.integers(0, 2, size=n).astype(np.int64),
        "images": rng.integers(-3, 4, size=(n, 3)).astype(np.int64),
        "masses_by_species": np.array([63.546, 107.8682]),
        "species_names": ["Cu", "Ag"],
    }


def nested_state():
    pcg = np.random.default_rng(42)
    pcg.normal(size=3)
    philox = np.random.Generator(np.random.Philox(7))
    philox.random(5)
    mt = np.random.Generator(np.random.MT19937(3))
    mt.random(2)
    return {
        "integrator": {
            "name": "nose-hoover-chain",
            "xi": np.array([0.1, -0.2, 0.3]),
            "v_xi": np.zeros((2, 3), dtype=np.float32),
            "n_chain": 3,
            "tdamp": 0.1,
            "active": True,
            "flags": np.array([True, False]),
            "counts": np.arange(6, dtype=np.int32).reshape(2, 3),
            "scalar0d": np.array(2.5),
            "empty": np.zeros(0),
            "labels": np.array(["x", "yz"]),
            "z": 1 + 2j,
            "zarr": np.array([1 + 1j, 2 - 1j]),
        },
        "barostat": {"eta": np.float64(0.5), "mass": np.float32(1.25), "n": np.int16(-3),
                     "flag": np.bool_(True), "cell_ref": np.eye(3)},
        "rng": {"pcg": pcg.bit_generator.state, "philox": philox.bit_generator.state,
                "mt": mt.bit_generator.state},
        "history": [1, 2.0, "three", None, (4, "five"), [b"\x00\x01raw"]],
        "big": 2 ** 100, "negbig": -(2 ** 70), "edge": 2 ** 63 - 1,
        "nothing": None, "text": "naïve Å", "blob": b"", "empty_dict": {}, "empty_list": [],
        "order": {"z": 1, "a": 2, "m": 3},
    }


def assert_same(a, b, where="state"):
    """Equal values and identical types, recursively."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype, where
        assert a == b, where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def write(path, sysd, perm=None, step=1000, state=None, **kw):
    n = len(sysd["ids"])
    perm = np.arange(n) if perm is None else perm
    write_checkpoint(path, COMM, step=step, time_ps=step * 0.001, cell=sysd["cell"], pbc=sysd["pbc"],
                     ids=sysd["ids"][perm], positions=sysd["positions"][perm],
                     velocities=sysd["velocities"][perm], species=sysd["species"][perm],
                     images=sysd["images"][perm], masses_by_species=sysd["masses_by_species"],
                     species_names=sysd["species_names"],
                     state=nested_state() if state is None else state, **kw)


def test_round_trip_all_fields_and_state(tmp_path):
    sysd = system()
    path = tmp_path / "ckpt.h5"
    perm = np.random.default_rng(3).permutation(len(sysd["ids"]))
    write(path, sysd, perm=perm, metadata={"input_text": "[md]\nsteps = 10\n", "input_file": "in.toml"},
          potential_sha256="f" * 64)
    d = read_checkpoint(path)
    assert d["step"] == 1000 and d["time"] == pytest.approx(1.0) and d["time_ps"] == d["time"]
    for key in ("cell", "pbc", "ids", "positions", "velocities", "species", "images",
                "masses_by_species"):
        np.testing.assert_array_equal(d[key], sysd[key], err_msg=key)   # ordered by id
    assert d["pbc"].dtype == bool
    assert d["species_names"] == ["Cu", "Ag"]
    assert d["input_text"] == "[md]\nsteps = 10\n"
    assert d["potential_sha256"] == "f" * 64
    assert d["metadata"]["input_file"] == "in.toml"
    assert d["acemd_version"] and d["format_version"] == ckmod.FORMAT_VERSION
    assert_same(d["state"], nested_state())
    assert not os.path.exists(str(path) + ".tmp")


def test_rng_states_resume_the_same_stream(tmp_path):
    gens = {"pcg": np.random.default_rng(9), "philox": np.random.Generator(np.random.Philox(9)),
            "mt": np.random.Generator(np.random.MT19937(9)), "sfc": np.random.Generator(np.random.SFC64(9))}
    for g in gens.values():
        g.normal(size=11)
    path = tmp_path / "rng.h5"
    write(path, system(), state={k: g.bit_generator.state for k, g in gens.items()})
    back = read_checkpoint(path)["state"]
    for k, g in gens.items():
        bg = type(g.bit_generator)()
        bg.state = back[k]
        np.testing.assert_array_equal(np.random.Generator(bg).normal(size=5), g.normal(size=5))


def test_interrupted_write_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    sysd = system()
    path = tmp_path / "ckpt.h5"
    write(path, sysd, step=100)

    def killed(src, dst):
        raise KeyboardInterrupt("simulated kill between fsync and rename")

    monkeypatch.setattr(ckmod.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write(path, system(seed=1), step=200)
    monkeypatch.undo()
    assert os.path.exists(str(path) + ".tmp")
    d = read_checkpoint(path)
    assert d["step"] == 100
    np.testing.assert_array_equal(d["positions"], sysd["positions"])
    # a half-written tmp file is simply overwritten by the next checkpoint
    with open(str(path) + ".tmp", "wb") as fh:
        fh.write(b"\x89HDF garbage")
    write(path, system(seed=1), step=300)
    assert read_checkpoint(path)["step"] == 300
    assert not os.path.exists(str(path) + ".tmp")


def test_bad_state_fails_before_touching_the_old_file(tmp_path):
    path = tmp_path / "ckpt.h5"
    write(path, system(), step=1)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"state\.integrator\.obj.*unsupported type object"):
        write(path, system(), step=2, state={"integrator": {"obj": object()}})
    with pytest.raises(CheckpointError, match="must be a non-empty string"):
        write(path, system(), step=2, state={"a/b": 1})
    with pytest.raises(CheckpointError, match="unsupported dtype object"):
        write(path, system(), step=2, state={"x": np.array([1, "a", None], dtype=object)})
    assert path.read_bytes() == before


def test_bad_inputs(tmp_path):
    sysd = system()
    path = tmp_path / "c.h5"
    bad = dict(sysd, positions=sysd["positions"][:, :2])
    with pytest.raises(CheckpointError, match="positions has shape"):
        write(path, bad)
    dup = dict(sysd, ids=np.zeros(len(sysd["ids"]), dtype=np.int64))
    with pytest.raises(CheckpointError, match="duplicate atom ids"):
        write(path, dup)
    with pytest.raises(CheckpointError, match="masses_by_species"):
        write(path, dict(sysd, masses_by_species=np.array([1.0])))
    assert not path.exists()


def test_missing_truncated_and_foreign_files(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(CheckpointError, match=r"nope\.h5: checkpoint file not found"):
        read_checkpoint(missing)
    (tmp_path / "nope.h5.tmp").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"only .*nope\.h5\.tmp' exists"):
        read_checkpoint(missing)

    good = tmp_path / "good.h5"
    write(good, system())
    raw = good.read_bytes()
    for cut in (100, len(raw) // 2, len(raw) - 50):
        trunc = tmp_path / f"trunc{cut}.h5"
        trunc.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match=rf"trunc{cut}\.h5: .*(truncated|damaged|unreadable)"):
            read_checkpoint(trunc)

    text = tmp_path / "text.h5"
    text.write_text("this is not HDF5\n")
    with pytest.raises(CheckpointError, match=r"text\.h5: not a readable HDF5 file"):
        read_checkpoint(text)

    foreign = tmp_path / "traj.h5"
    with h5py.File(foreign, "w") as f:
        f.create_group("h5md")
    with pytest.raises(CheckpointError, match=r"traj\.h5: not an acemd checkpoint"):
        read_checkpoint(foreign)

    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(raw)
    with h5py.File(damaged, "r+") as f:
        del f["system/velocities"]
    with pytest.raises(CheckpointError, match=r"damaged\.h5: damaged checkpoint: /system/velocities"):
        read_checkpoint(damaged)

    future = tmp_path / "future.h5"
    future.write_bytes(raw)
    with h5py.File(future, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        read_checkpoint(future)

    with pytest.raises(CheckpointError, match="is a directory"):
        read_checkpoint(tmp_path)
