#!/usr/bin/env python
"""kill -9 at random moments, restart to completion: the trajectory equals an uninterrupted run's.

A 2-rank NVT (Langevin) run of 32 Cu atoms (Cu-I.yace) writing a trajectory, a checkpoint
and a log is killed with SIGKILL (the whole mpiexec process group) at ``--kills`` random
moments; after every kill the trajectory must still open and read, and the run is restarted
from its checkpoint (or from scratch when none was written yet) until it completes.  The
final trajectory must equal that of an uninterrupted run: same steps, positions
(always wrapped, plus images) to 1e-10 Å, same velocities; the log must have every step once.

    python scripts/kill_restart.py                  # 20 kills, about 2-4 minutes on 2 cores
    python scripts/kill_restart.py --kills 5 --seed 3
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"

INPUT = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.6
repeat = [2, 2, 2]
[potential]
file = "{POTENTIAL.as_posix()}"
[velocities]
temperature = 900.0
seed = 11
[md]
ensemble = "nvt-langevin"
steps = {{steps}}
timestep = 0.002
[thermostat]
temperature = 900.0
damping = 0.05
[thermo]
every = 10
file = "run.log"
[trajectory]
every = 5
file = "traj.h5"
[checkpoint]
every = 20
file = "ck.h5"
"""


def acemd(folder, args, env):
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                            os.environ.get("PATH", "")]))
    return subprocess.Popen([mpiexec, "-n", "2", sys.executable, "-m", "acemd.cli", "in.toml", *args],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def read_frames(path):
    import h5py
    with h5py.File(path, "r", locking=False) as f:
        p = f["particles/all"]
        return {"step": p["position/step"][()], "position": p["position/value"][()],
                "image": p["image/value"][()], "velocity": p["velocity/value"][()]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [os.environ.get("PYTHONPATH", "")]),
               PYTHONUNBUFFERED="1")
    rng = np.random.default_rng(args.seed)
    base = Path(tempfile.mkdtemp(prefix="acemd-kill-"))
    ref, test = base / "reference", base / "killed"
    for d in (ref, test):
        d.mkdir()
        (d / "in.toml").write_text(INPUT.format(steps=args.steps))
    t0 = time.perf_counter()
    proc = acemd(ref, [], env)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    duration = time.perf_counter() - t0
    print(f"# uninterrupted run: {duration:.1f} s wall (start-up included)")

    kills = 0
    attempts = 0
    def complete():
        from acemd.io.checkpoint import read_checkpoint
        return (test / "ck.h5").exists() and read_checkpoint(test / "ck.h5")["step"] == args.steps

    def start_over():
        for name in ("ck.h5", "traj.h5", "run.log"):
            (test / name).unlink(missing_ok=True)

    while kills < args.kills:
        attempts += 1
        if complete():         # killed after its last checkpoint: nothing left to restart
            print("# the killed run had written its final checkpoint; starting over", flush=True)
            start_over()
        restart = ["--restart", "ck.h5"] if (test / "ck.h5").exists() else []
        proc = acemd(test, restart, env)
        delay = rng.uniform(0.5, duration)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            state = "none yet"
            if (test / "traj.h5").exists():
                frames = read_frames(test / "traj.h5")      # must open and read after every kill
                state = f"{len(frames['step'])} frames, last step {frames['step'][-1] if len(frames['step']) else '-'}"
            print(f"kill {kills:2d} after {delay:5.2f} s: trajectory {state}", flush=True)
            continue
        err = proc.stderr.read()
        if proc.returncode == 0:
            # finished before the kill: start over so that every kill interrupts a run
            print(f"# run finished before the kill at {delay:.2f} s; starting over", flush=True)
            start_over()
            continue
        raise SystemExit(f"restart failed with status {proc.returncode}:\n{err}")
    # the last restart to completion (unless the last kill came after the final checkpoint)
    if not complete():
        restart = ["--restart", "ck.h5"] if (test / "ck.h5").exists() else []
        proc = acemd(test, restart, env)
        _, err = proc.communicate()
        assert proc.returncode == 0, err
    a, b = read_frames(ref / "traj.h5"), read_frames(test / "traj.h5")
    assert np.array_equal(a["step"], b["step"]), (a["step"], b["step"])
    dx = float(np.max(np.abs(a["position"] - b["position"])))
    dv = float(np.max(np.abs(a["velocity"] - b["velocity"])))
    same_images = bool(np.array_equal(a["image"], b["image"]))
    steps = np.loadtxt(test / "run.log", comments="#", ndmin=2)[:, 0].astype(int)
    print(f"# {kills} kills in {attempts} attempts; final trajectory {len(b['step'])} frames: "
          f"max |dx| = {dx:.3g} A, max |dv| = {dv:.3g} A/ps, images equal: {same_images}; "
          f"log rows {len(steps)}, each step once: {len(set(steps)) == len(steps)}")
    assert dx < 1e-10 and dv < 1e-10 and same_images
    assert list(steps) == list(range(0, args.steps + 1, 10))
    assert not list(test.glob(".*.lock"))
    shutil.rmtree(base)
    print("OK")


if __name__ == "__main__":
    main()
