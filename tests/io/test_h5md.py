"""H5MD trajectory writer: layout, values, order by id, units, append/restart, and
readability by MDAnalysis (an independent H5MD consumer)."""
import subprocess
import sys

import h5py
import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI

from acemd.io.h5md import FieldSpec, H5MDError, H5MDWriter
from acemd.parallel.gather import gather_by_id

COMM = MPI.COMM_SELF
EV_PER_A_IN_KJMOL_PER_A = 96.48533212331


def make_system(seed=0):
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat((2, 2, 1))
    rng = np.random.default_rng(seed)
    symbols = np.array(atoms.get_chemical_symbols())
    symbols[rng.choice(len(atoms), 5, replace=False)] = "Ag"
    atoms.set_chemical_symbols(symbols.tolist())
    atoms.rattle(0.05, seed=seed)
    return atoms


def frames(atoms, n_frames=3, seed=1):
    """Per-frame data in id order (id = ASE index); the cell changes (NPT-like)."""
    rng = np.random.default_rng(seed)
    n = len(atoms)
    species = np.array([0 if s == "Cu" else 1 for s in atoms.get_chemical_symbols()])
    out = []
    for k in range(n_frames):
        scale = 1.0 + 0.01 * k
        out.append({
            "step": 100 * k,
            "time": 0.1 * k,
            "cell": atoms.cell.array * scale,
            "position": atoms.positions * scale + 0.01 * k,
            "velocity": rng.normal(size=(n, 3)),
            "force": rng.normal(size=(n, 3)),
            "species": species,
            "image": rng.integers(-2, 3, size=(n, 3)),
            "energy": rng.normal(-3.5, 0.1, size=n),
            "obs": {"temperature": 300.0 + k, "potential_energy": -100.0 - k,
                    "kinetic_energy": 1.0 + k, "total_energy": -99.0, "pressure": 1.5e3 * k,
                    "volume": atoms.get_volume() * scale ** 3, "conserved": -99.0 + 1e-6 * k},
        })
    return out


def write_all(path, atoms, data, fields=("position", "velocity", "force", "species", "id"),
              perm=None, **kw):
    n = len(atoms)
    perm = np.random.default_rng(7).permutation(n) if perm is None else perm
    with H5MDWriter(path, COMM, n, ["Cu", "Ag"], fields=fields,
                    metadata={"input_text": "[md]\nsteps = 200  # Å\n",
                              "potential_sha256": "ab" * 32}, **kw) as w:
        for fr in data:
            # the rank holds its atoms in an arbitrary order
            local = {k: np.asarray(fr[k])[perm] for k in fields if k != "id"}
            local["unused_extra"] = np.zeros(n)
            w.write_frame(fr["step"], fr["time"], fr["cell"], perm, local, fr["obs"])
    return path


def test_layout_values_order_and_units(tmp_path):
    atoms = make_system()
    data = frames(atoms)
    fields = ("position", "velocity", "force", "image", "species", "id", "energy")
    path = write_all(tmp_path / "traj.h5md", atoms, data, fields=fields)
    n = len(atoms)
    with h5py.File(path, "r") as f:
        h = f["h5md"]
        assert list(h.attrs["version"]) == [1, 1]
        assert h["creator"].attrs["name"] == b"acemd"
        assert h["creator"].attrs["version"]
        assert "name" in h["author"].attrs
        part = f["particles/all"]
        box = part["box"]
        assert box.attrs["dimension"] == 3
        assert [b.decode() for b in box.attrs["boundary"]] == ["periodic"] * 3
        edges = box["edges"]
        assert edges["value"].shape == (3, 3, 3)
        assert edges["value"].attrs["unit"] == "Angstrom"
        np.testing.assert_allclose(edges["value"][:], [fr["cell"] for fr in data])
        np.testing.assert_array_equal(edges["step"][:], [0, 100, 200])
        np.testing.assert_allclose(edges["time"][:], [0.0, 0.1, 0.2])
        assert edges["time"].attrs["unit"] == "ps"
        units = {"position": "Angstrom", "velocity": "Angstrom ps-1", "force": "eV Angstrom-1",
                 "energy": "eV"}
        for name in fields:
            el = part[name]
            assert el["value"].shape[:2] == (3, n)
            assert el["value"].maxshape[0] is None and el["value"].chunks is not None
            # one sampling for all elements: hard links to box/edges step and time
            assert el["step"] == edges["step"] and el["time"] == edges["time"]
            assert el["time"].attrs["unit"] == "ps"
            if name in units:
                assert el["value"].attrs["unit"] == units[name]
            else:
                assert "unit" not in el["value"].attrs
            if name == "id":
                np.testing.assert_array_equal(el["value"][:], np.tile(np.arange(n), (3, 1)))
            else:
                np.testing.assert_array_equal(el["value"][:], [fr[name] for fr in data])
        assert part["species"]["value"].dtype.kind == "i"
        assert list(part["species"].attrs["species_names"]) == ["Cu", "Ag"]
        assert "unused_extra" not in part
        obs_units = {"temperature": "K", "potential_energy": "eV", "kinetic_energy": "eV",
                     "total_energy": "eV", "pressure": "bar", "volume": "Angstrom+3",
                     "conserved": "eV"}
        for name, unit in obs_units.items():
            el = f["observables"][name]
            assert el["value"].attrs["unit"] == unit
            assert el["step"] == edges["step"]
            np.testing.assert_allclose(el["value"][:], [fr["obs"][name] for fr in data])
        p = f["parameters/acemd"]
        assert p["input_text"][()].decode() == "[md]\nsteps = 200  # Å\n"
        assert p["potential_sha256"][()].decode() == "ab" * 32
        assert [s.decode() for s in p["species_names"][()]] == ["Cu", "Ag"]
        assert p["acemd_version"][()].decode()
        assert "metal" in p["units"][()].decode()


def test_frames_complete_while_open(tmp_path):
    """After each write_frame the file is flushed: another process sees whole frames."""
    atoms = make_system()
    data = frames(atoms, 2)
    n = len(atoms)
    path = tmp_path / "live.h5md"
    w = H5MDWriter(path, COMM, n, ["Cu", "Ag"], observables=["temperature"])
    for fr in data:
        w.write_frame(fr["step"], fr["time"], fr["cell"], np.arange(n),
                      {key: fr[key] for key in ("position", "velocity", "force", "species")},
                      {"temperature": fr["obs"]["temperature"]})
    reader = (
        "import sys, h5py\n"
        "with h5py.File(sys.argv[1], 'r', locking=False) as f:\n"
        "    p = f['particles/all']\n"
        "    print(len(p['box/edges/step']), *[p[k + '/value'].shape[0] for k in\n"
        "          ('position', 'velocity', 'force', 'species', 'id')],\n"
        "          f['observables/temperature/value'][-1], p['position/value'][-1, 0, 0])\n")
    out = subprocess.run([sys.executable, "-c", reader, str(path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    w.close()
    assert [int(x) for x in out[:6]] == [2] * 6
    assert float(out[6]) == data[1]["obs"]["temperature"]
    assert float(out[7]) == pytest.approx(data[1]["position"][0, 0])
    w.close()     # idempotent


def test_non_periodic_boundary_and_gzip(tmp_path):
    atoms = make_system()
    data = frames(atoms, 1)
    path = write_all(tmp_path / "np.h5md", atoms, data, pbc=(True, True, False),
                     compression="gzip", compression_opts=4)
    with h5py.File(path, "r") as f:
        assert [b.decode() for b in f["particles/all/box"].attrs["boundary"]] == \
            ["periodic", "periodic", "none"]
        assert f["particles/all/position/value"].compression == "gzip"
        np.testing.assert_allclose(f["particles/all/position/value"][0], data[0]["position"])


def test_extra_field_via_field_spec(tmp_path):
    n = 4
    path = tmp_path / "extra.h5md"
    spec = {"dipole": FieldSpec((3,), "f4", "e Angstrom"), "gamma": FieldSpec((), "f8", None)}
    with H5MDWriter(path, COMM, n, ["Cu"], fields=("position", "gamma", "dipole"),
                    field_specs=spec, observables=[("stress", (3, 3)), "max_gamma"]) as w:
        w.write_frame(0, 0.0, np.eye(3) * 10, np.array([3, 1, 2, 0]),
                      {"position": np.zeros((n, 3)), "gamma": np.array([3.0, 1.0, 2.0, 0.0]),
                       "dipole": np.ones((n, 3))},
                      {"stress": np.arange(9.0).reshape(3, 3), "max_gamma": 3.0})
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["particles/all/gamma/value"][0], [0.0, 1.0, 2.0, 3.0])
        assert "unit" not in f["particles/all/gamma/value"].attrs
        assert f["particles/all/dipole/value"].dtype == np.float32
        assert f["particles/all/dipole/value"].attrs["unit"] == "e Angstrom"
        assert f["observables/stress/value"].shape == (1, 3, 3)
        assert f["observables/stress/value"].attrs["unit"] == "bar"


def test_errors_are_clear(tmp_path):
    n = 3
    with pytest.raises(H5MDError, match="unknown per-atom field 'spin'"):
        H5MDWriter(tmp_path / "a.h5md", COMM, n, ["Cu"], fields=("position", "spin"))
    with pytest.raises(H5MDError, match="observable 'weird' has no known unit"):
        H5MDWriter(tmp_path / "b.h5md", COMM, n, ["Cu"], observables=["weird"])
    w = H5MDWriter(tmp_path / "c.h5md", COMM, n, ["Cu"], fields=("position", "velocity", "id"),
                   observables=["temperature"])
    ids = np.arange(n)
    pos = np.zeros((n, 3))
    with pytest.raises(H5MDError, match="'velocity' is missing"):
        w.write_frame(0, 0.0, np.eye(3), ids, {"position": pos}, {"temperature": 1.0})
    with pytest.raises(H5MDError, match="'velocity' has shape"):
        w.write_frame(0, 0.0, np.eye(3), ids, {"position": pos, "velocity": np.zeros((n, 2))},
                      {"temperature": 1.0})
    with pytest.raises(H5MDError, match="owned twice"):
        w.write_frame(0, 0.0, np.eye(3), np.array([0, 1, 1]), {"position": pos, "velocity": pos},
                      {"temperature": 1.0})
    with pytest.raises(H5MDError, match="expected 3"):
        w.write_frame(0, 0.0, np.eye(3), ids[:2], {"position": pos[:2], "velocity": pos[:2]},
                      {"temperature": 1.0})
    with pytest.raises(H5MDError, match="observable 'temperature' missing"):
        w.write_frame(0, 0.0, np.eye(3), ids, {"position": pos, "velocity": pos}, {})
    with pytest.raises(H5MDError, match="cell must be 3x3"):
        w.write_frame(0, 0.0, np.eye(2), ids, {"position": pos, "velocity": pos},
                      {"temperature": 1.0})
    w.write_frame(5, 0.005, np.eye(3), ids, {"position": pos, "velocity": pos}, {"temperature": 1.0})
    with pytest.raises(H5MDError, match="not after the last stored step 5"):
        w.write_frame(5, 0.005, np.eye(3), ids, {"position": pos, "velocity": pos},
                      {"temperature": 1.0})
    w.close()
    with h5py.File(tmp_path / "c.h5md", "r") as f:      # failed frames left no trace
        assert f["particles/all/position/value"].shape[0] == 1
        assert list(f["particles/all/box/edges/step"][:]) == [5]
    with pytest.raises(H5MDError, match="after close"):
        w.write_frame(6, 0.006, np.eye(3), ids, {"position": pos, "velocity": pos},
                      {"temperature": 1.0})


def _write_steps(path, steps, n=4, append=False, restart_step=None, obs=("temperature",)):
    with H5MDWriter(path, COMM, n, ["Cu"], fields=("position", "id"), observables=list(obs),
                    append=append, restart_step=restart_step,
                    metadata={"input_text": f"run from {restart_step}"}) as w:
        for s in steps:
            w.write_frame(s, 0.001 * s, np.eye(3) * 5, np.arange(n), {"position": np.full((n, 3), s)},
                          {o: float(s) for o in obs})
        return w.n_frames, w.last_step


def test_append_truncates_frames_after_restart_step(tmp_path):
    path = tmp_path / "traj.h5md"
    assert _write_steps(path, [0, 10, 20, 30]) == (4, 30)
    # the run was killed after frame 30 and restarts from the checkpoint at step 20
    assert _write_steps(path, [30, 40], append=True, restart_step=20) == (5, 40)
    with h5py.File(path, "r") as f:
        steps = f["particles/all/box/edges/step"][:]
        np.testing.assert_array_equal(steps, [0, 10, 20, 30, 40])
        np.testing.assert_allclose(f["particles/all/position/value"][:, 0, 0], steps)
        np.testing.assert_allclose(f["observables/temperature/value"][:], steps)
        np.testing.assert_allclose(f["particles/all/box/edges/time"][:], steps * 0.001)
        seg = f["parameters/acemd/restart_1"]
        assert seg.attrs["first_frame"] == 3 and seg.attrs["restart_step"] == 20
        assert seg["input_text"][()].decode() == "run from 20"


def test_append_creates_missing_file_and_new_observable(tmp_path):
    path = tmp_path / "new.h5md"
    assert _write_steps(path, [0, 1], append=True, restart_step=0) == (2, 1)
    _write_steps(path, [2], append=True, restart_step=1, obs=("temperature", "pressure"))
    with h5py.File(path, "r") as f:
        p = f["observables/pressure/value"][:]
        assert np.isnan(p[:2]).all() and p[2] == 2.0


def test_append_repairs_half_written_frame(tmp_path):
    path = tmp_path / "crash.h5md"
    _write_steps(path, [0, 10])
    with h5py.File(path, "r+") as f:      # a kill after the values grew, before step did
        f["particles/all/position/value"].resize(3, axis=0)
        f["observables/temperature/value"].resize(3, axis=0)
    assert _write_steps(path, [20], append=True) == (3, 20)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["particles/all/box/edges/step"][:], [0, 10, 20])
        np.testing.assert_allclose(f["particles/all/position/value"][:, 0, 0], [0, 10, 20])


def test_append_rejects_incompatible_file(tmp_path):
    path = tmp_path / "t.h5md"
    _write_steps(path, [0])
    with pytest.raises(H5MDError, match="per-frame shape"):
        H5MDWriter(path, COMM, 5, ["Cu"], fields=("position",), append=True)
    with pytest.raises(H5MDError, match="no per-atom field 'velocity'"):
        H5MDWriter(path, COMM, 4, ["Cu"], fields=("position", "velocity"), append=True)
    with pytest.raises(H5MDError, match="species"):
        H5MDWriter(path, COMM, 4, ["Ag"], fields=("position",), append=True)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(H5MDError, match="not an acemd H5MD trajectory"):
        H5MDWriter(other, COMM, 4, ["Cu"], append=True)
    junk = tmp_path / "junk.h5md"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(H5MDError, match="cannot open trajectory"):
        H5MDWriter(junk, COMM, 4, ["Cu"], append=True)


def test_gather_by_id_single_rank():
    ids = np.array([4, 0, 3, 1, 2])
    a = np.arange(5.0)[:, None] * np.ones((1, 3))
    sorted_ids, out = gather_by_id(COMM, ids, {"a": a, "k": ids * 10})
    np.testing.assert_array_equal(sorted_ids, np.arange(5))
    np.testing.assert_array_equal(out["a"][:, 0], [1, 3, 4, 2, 0])
    np.testing.assert_array_equal(out["k"], np.arange(5) * 10)
    assert out["k"].dtype == np.int64 and out["a"].dtype == np.float64


# --------------------------------------------------------------------------- MDAnalysis
@pytest.fixture
def mda():
    return pytest.importorskip("MDAnalysis")


def _universe(mda, path, n, **kw):
    # MDAnalysis needs a topology: its topology-less path looks for /particles/trajectory,
    # acemd writes the conventional /particles/all.  An empty topology suffices.
    u = mda.Universe.empty(n, trajectory=False)
    u.load_new(str(path), format="H5MD", **kw)
    return u


def test_mdanalysis_reads_positions_velocities_box_time(tmp_path, mda):
    atoms = make_system()
    data = frames(atoms)
    n = len(atoms)
    path = write_all(tmp_path / "traj.h5md", atoms, data, fields=("position", "velocity", "species", "id"))
    u = _universe(mda, path, n)          # convert_units=True: our unit strings are understood
    assert u.trajectory.units == {"time": "ps", "length": "Angstrom", "velocity": "Angstrom/ps",
                                  "force": None}
    assert u.trajectory.n_frames == 3
    for ts, fr in zip(u.trajectory, data):
        np.testing.assert_allclose(ts.positions, fr["position"], atol=1e-5)
        np.testing.assert_allclose(ts.velocities, fr["velocity"], atol=1e-5)
        cellpar = np.concatenate([np.linalg.norm(fr["cell"], axis=1), [90, 90, 90]])
        np.testing.assert_allclose(ts.dimensions, cellpar, rtol=1e-6)
        assert ts.time == pytest.approx(fr["time"])
        assert ts.data["step"] == fr["step"]
        assert ts.data["temperature"] == pytest.approx(fr["obs"]["temperature"])
        assert ts.data["volume"] == pytest.approx(fr["obs"]["volume"])


def test_mdanalysis_reads_forces_in_ev_per_angstrom(tmp_path, mda, monkeypatch):
    """MDAnalysis (<= 2.11) has no eV-based force unit, so it refuses 'eV Angstrom-1'
    (the correct H5MD unit string).  Teaching it the unit shows the file is right."""
    from MDAnalysis import units as mda_units
    from MDAnalysis.coordinates.H5MD import H5MDReader

    atoms = make_system()
    data = frames(atoms, 2)
    n = len(atoms)
    path = write_all(tmp_path / "f.h5md", atoms, data)
    if "eV Angstrom-1" not in H5MDReader._unit_translation["force"]:
        monkeypatch.setitem(H5MDReader._unit_translation["force"], "eV Angstrom-1", "eV/Angstrom")
        monkeypatch.setitem(mda_units.forceUnit_factor, "eV/Angstrom", 1.0 / EV_PER_A_IN_KJMOL_PER_A)
        monkeypatch.setitem(mda_units.unit_types, "eV/Angstrom", "force")
    raw = _universe(mda, path, n, convert_units=False)
    for ts, fr in zip(raw.trajectory, data):
        np.testing.assert_allclose(ts.forces, fr["force"], atol=1e-5)
        np.testing.assert_allclose(ts.positions, fr["position"], atol=1e-5)
    conv = _universe(mda, path, n)
    for ts, fr in zip(conv.trajectory, data):       # MDAnalysis base unit kJ/(mol Angstrom)
        np.testing.assert_allclose(ts.forces, fr["force"] * EV_PER_A_IN_KJMOL_PER_A, rtol=1e-5,
                                   atol=1e-4)
