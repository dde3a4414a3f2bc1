"""Blow-up guards ([guards]): each guard stops a run at the first check step where an independent
measurement on an unguarded run of the same input crosses the limit, and the checkpoint holds
the last good state (equal to the unguarded run's frame at the previous check step).

Runs in-process on one rank (32 Cu atoms, Cu-I.yace); the exit status and the command-line
messages under mpiexec are checked at the end.
"""
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from mpi4py import MPI

from acemd.config import parse_config
from acemd.drivers.md import MDRun
from acemd.io.checkpoint import read_checkpoint
from acemd.io.thermo import read_thermo

from test_bad_inputs import POT, acemd, base_input, checksums

EVERY = 5          # guard check interval used here


def run(tmp, text, name):
    path = tmp / f"{name}.toml"
    path.write_text(text)
    settings = parse_config(text, path)
    md = MDRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    return md.run()


def reference(tmp, **sections):
    """The unguarded run: trajectory (every step) and log."""
    sections.setdefault("guards", {})["enabled"] = False
    text = base_input(trajectory={"every": 1, "file": "ref.h5", "fields": ["position", "velocity", "force", "image", "species", "id"]},
                      thermo={"every": 1, "file": "ref.log"}, checkpoint={"file": "ref_ck.h5"}, **sections)
    summary = run(tmp, text, "ref")
    assert summary["stopped_by"] is None
    with h5py.File(tmp / "ref.h5", "r") as f:
        p = f["particles/all"]
        frames = {"step": p["position/step"][()], "position": p["position/value"][()],
                  "force": p["force/value"][()], "velocity": p["velocity/value"][()],
                  "image": p["image/value"][()], "cell": p["box/edges/value"][()]}
    return frames, read_thermo(tmp / "ref.log")


def guarded(tmp, limits, **sections):
    sections["guards"] = {"every": EVERY, **limits}
    text = base_input(trajectory={"every": 0}, thermo={"every": 1000, "file": "g.log"},
                      checkpoint={"file": "g_ck.h5"}, **sections)
    return run(tmp, text, "g")


def first_crossing(steps, values, above):
    """First check step (multiple of EVERY, > 0) whose value crosses the limit."""
    for s, v in zip(steps, values):
        if s > 0 and s % EVERY == 0 and above(v):
            return int(s)
    pytest.fail("the reference run never crosses the limit: choose another limit")


def assert_stopped(tmp, summary, frames, stop_step, words):
    print(summary["message"])
    assert summary["stopped_by"] == "guard"
    assert f"stopped at step {stop_step}:" in summary["message"]
    for w in words:
        assert w in summary["message"]
    ck = read_checkpoint(tmp / "g_ck.h5")
    good = stop_step - EVERY
    assert ck["step"] == good, "the checkpoint is not the last good state"
    k = int(np.flatnonzero(frames["step"] == good)[0])
    ref_unwrapped = frames["position"][k] + frames["image"][k] @ frames["cell"][k]
    ck_unwrapped = ck["positions"] + ck["images"] @ ck["cell"]
    assert np.max(np.abs(ck_unwrapped - ref_unwrapped)) < 1e-9
    assert np.max(np.abs(ck["velocities"] - frames["velocity"][k])) < 1e-9


def test_max_force_guard(tmp_path):
    md = {"steps": 60, "timestep": 0.002}
    frames, _ = reference(tmp_path, md=md, velocities={"temperature": 900.0})
    fmax = np.linalg.norm(frames["force"], axis=2).max(axis=1)
    limit = 0.6 * fmax.max()
    stop = first_crossing(frames["step"], fmax, lambda v: v > limit)
    summary = guarded(tmp_path, {"max_force": limit}, md=md, velocities={"temperature": 900.0})
    assert_stopped(tmp_path, summary, frames, stop, ["force", "max_force"])


def _min_distance(positions, cell):
    d = positions[:, None, :] - positions[None, :, :]
    frac = d @ np.linalg.inv(cell)
    d = (frac - np.round(frac)) @ cell            # minimum image (cubic cell, > 2 x distance)
    r = np.linalg.norm(d, axis=2)
    r[np.diag_indices(len(r))] = np.inf
    return r.min()


def test_min_distance_guard(tmp_path):
    md = {"steps": 60, "timestep": 0.002}
    frames, _ = reference(tmp_path, md=md, velocities={"temperature": 900.0})
    rmin = np.array([_min_distance(x, c) for x, c in zip(frames["position"], frames["cell"])])
    limit = 0.5 * (rmin[0] + rmin.min())
    stop = first_crossing(frames["step"], rmin, lambda v: v < limit)
    summary = guarded(tmp_path, {"min_distance": limit}, md=md, velocities={"temperature": 900.0})
    assert_stopped(tmp_path, summary, frames, stop, ["apart", "min_distance"])


def test_temperature_guard(tmp_path):
    """A rattled crystal started cold heats up; the limit is a fraction of the 300 K floor."""
    sec = {"md": {"steps": 60, "timestep": 0.002}, "velocities": {"temperature": 1.0},
           "structure": {"rattle": 0.15, "rattle_seed": 3}}
    frames, log = reference(tmp_path, **sec)
    t = np.asarray(log["Temp"])
    factor = 0.5 * t.max() / 300.0
    stop = first_crossing(np.asarray(log["Step"]), t, lambda v: v > factor * 300.0)
    summary = guarded(tmp_path, {"max_temperature_factor": factor}, **sec)
    assert_stopped(tmp_path, summary, frames, stop, ["temperature", "max_temperature_factor"])


def test_drift_guard(tmp_path):
    """NVE with a too long timestep: the conserved energy wanders."""
    sec = {"md": {"steps": 60, "timestep": 0.006}, "velocities": {"temperature": 600.0}}
    frames, log = reference(tmp_path, **sec)
    drift = np.abs(np.asarray(log["Conserved"]) - log["Conserved"][0]) / 32
    limit = 0.5 * drift.max()
    stop = first_crossing(np.asarray(log["Step"]), drift, lambda v: v > limit)
    summary = guarded(tmp_path, {"max_drift": limit}, **sec)
    assert_stopped(tmp_path, summary, frames, stop, ["conserved", "max_drift", "nve"])


def test_open_box_guard(tmp_path):
    """A non-periodic cluster whose box is its own bounding box: atoms on the faces move out.
    Unguarded, the engine refuses the atoms at a rebuild (AtomLeftBoxError) without a checkpoint;
    guarded, the run stops at the first check (or that failing step) with the last good state."""
    import ase.io
    from ase.build import bulk

    from acemd.parallel.halo import AtomLeftBoxError
    side = 7.2 - 1.8 + 1e-9                     # the faces through the outermost atoms
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.pbc = False
    atoms.cell = [side] * 3
    ase.io.write(tmp_path / "cluster.extxyz", atoms)
    sec = {"md": {"steps": 60, "timestep": 0.002}, "velocities": {"temperature": 900.0},
           "structure": {"lattice": None, "element": None, "a": None, "repeat": None,
                         "file": "cluster.extxyz"},
           # Cu-I.yace is not fitted for a 32-atom cluster (76 eV/Å on its corners): use the PBE one
           "potential": {"file": str(POT / "Cu-PBE-core-rep.ace")}}
    with pytest.raises(AtomLeftBoxError):
        reference(tmp_path, **sec)
    with h5py.File(tmp_path / "ref.h5", "r") as f:
        p = f["particles/all"]
        frames = {"step": p["position/step"][()], "position": p["position/value"][()],
                  "velocity": p["velocity/value"][()], "image": p["image/value"][()],
                  "cell": p["box/edges/value"][()]}
    outside = np.maximum(-frames["position"], frames["position"] - side).max(axis=(1, 2))
    crossed = [int(s) for s, v in zip(frames["step"], outside) if s > 0 and s % EVERY == 0 and v > 0]
    failing = int(frames["step"][-1]) + 1      # the step whose rebuild refused the atoms
    stop = crossed[0] if crossed else failing
    summary = guarded(tmp_path, {}, **sec)
    print(summary["message"])
    assert summary["stopped_by"] == "guard"
    assert f"stopped at step {stop}:" in summary["message"]
    assert "outside" in summary["message"] or "left the box" in summary["message"]
    ck = read_checkpoint(tmp_path / "g_ck.h5")
    good = (stop - 1) // EVERY * EVERY
    assert ck["step"] == good
    k = int(np.flatnonzero(frames["step"] == good)[0])
    assert np.max(np.abs(ck["positions"] + ck["images"] @ ck["cell"]
                         - frames["position"][k] - frames["image"][k] @ frames["cell"][k])) < 1e-9


def test_nose_hoover_overflow_is_a_guard_stop(tmp_path, monkeypatch):
    """math.exp overflowing in the chain (a runaway) stops at the step with volume and temperature."""
    import acemd.integrators.nose_hoover as nh
    sec = {"md": {"steps": 40, "ensemble": "nvt-nose-hoover"}, "thermostat": {"temperature": 300.0}}
    frames, _ = reference(tmp_path, **sec)

    class Exp:                      # the real exp until step 23, then the overflow a runaway causes
        def __getattr__(self, name):
            return getattr(math, name)

        @staticmethod
        def exp(x):
            if state["step"] >= 22:
                raise OverflowError("math range error")
            return math.exp(x)

    state = {"step": 0}
    original = nh.NoseHooverChain.step

    def step(self, engine):
        state["step"] = engine.state.step
        return original(self, engine)

    monkeypatch.setattr(nh, "math", Exp())
    monkeypatch.setattr(nh.NoseHooverChain, "step", step)
    summary = guarded(tmp_path, {}, **sec)
    assert summary["stopped_by"] == "guard"
    assert "stopped at step 23:" in summary["message"]
    assert "OverflowError" in summary["message"] and "K, volume" in summary["message"]
    ck = read_checkpoint(tmp_path / "g_ck.h5")
    assert ck["step"] == 20          # the last check before the failure
    k = int(np.flatnonzero(frames["step"] == 20)[0])
    assert np.max(np.abs(ck["velocities"] - frames["velocity"][k])) < 1e-9


def test_guards_off_changes_nothing(tmp_path):
    """With the guards on and no limit crossed, the trajectory is the unguarded one."""
    md = {"steps": 20}
    frames, _ = reference(tmp_path, md=md)
    summary = guarded(tmp_path, {}, md=md)
    assert summary["stopped_by"] is None
    ck = read_checkpoint(tmp_path / "g_ck.h5")
    assert ck["step"] == 20
    assert np.max(np.abs(ck["velocities"] - frames["velocity"][-1])) < 1e-12


def test_timestep_of_one_ps_under_mpiexec(tmp_path):
    """The issue's case: timestep = 1 (ps, meant fs) on 2 ranks: a warning that says ps, a guard stop
    with exit status 4 naming the step and the cause, and a finite last-good checkpoint."""
    (tmp_path / "in.toml").write_text(base_input(md={"timestep": 1.0, "steps": 50}))
    rc, out, err = acemd(["in.toml"], tmp_path)
    print(err)
    assert rc == 4
    assert "[md.timestep] = 1.0 ps" in err and "unit is ps" in err
    assert "blow-up guard: stopped at step 10:" in err and "[guards." in err
    assert "Traceback" not in out + err and "Abort(" not in err
    ck = read_checkpoint(tmp_path / "checkpoint.h5")
    assert ck["step"] == 0 and np.all(np.isfinite(ck["velocities"]))
