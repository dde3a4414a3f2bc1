#!/usr/bin/env python
"""Interrupt runs at random moments, restart them as acemd says: the results equal an uninterrupted run's.

For each driver a tiny 2-rank run of 32 Cu atoms (Cu-I.yace) is interrupted ``--kills`` times at
random moments and restarted until it completes:

* ``md``: NVT (Langevin) with a trajectory, a checkpoint every 20 steps and a log; the final
  trajectory must equal the uninterrupted one (positions, images, velocities to 1e-10) and the
  log hold every row once (plus a row at each step where a SIGUSR1 stopped it).
* ``free_energy``: a Frenkel-Ladd solid (NPT, springs, 2 switching iterations; a checkpoint at the
  end of every stage); F, its error and the dissipation must equal the uninterrupted run's.
* ``elastic``: elastic constants at 300 K by the strain route (NPT, then 12 strained NVT runs; a
  checkpoint at every stop); the tensor and its errors must equal the uninterrupted run's.

Interruptions alternate: kill -9 (the whole mpiexec process group: nothing is printed, the run
continues from its own checkpoint if one was written, else starts again) and SIGUSR1 (what SLURM
sends before the wall time: the run exits 75 and prints ``to continue: acemd in.toml --restart
CKPT``, and exactly that command is run).  After every kill the checkpoint must still read.

    python scripts/kill_restart.py                        # every driver, 4 interruptions each (~5-10 min)
    python scripts/kill_restart.py --drivers md --kills 20 --seed 3
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
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

HEAD = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.62
repeat = [2, 2, 2]
[potential]
file = "{POTENTIAL.as_posix()}"
"""

MD = HEAD + """
[velocities]
temperature = 900.0
seed = 11
[md]
ensemble = "nvt-langevin"
steps = 400
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

FREE_ENERGY = HEAD + """
[free_energy]
mode = "solid"
temperature = 600.0
timestep = 0.002
npt_steps = 300
npt_max_blocks = 1
pressure_tolerance = 1e9
spring_steps = 200
n_iterations = 2
equilibration_steps = 100
switching_steps = 600
progress_every = 100
"""

ELASTIC = HEAD + """
[elastic]
temperature = 300.0
method = "strain"
strains = [0.01]
npt_steps = 200
barostat = "npt-crescale"
barostat_damping = 0.1
coupling = "iso"
equilibration_steps = 50
production_steps = 200
block_steps = 50
born_every = 50
report = "elastic.json"
data = "elastic.h5"
[checkpoint]
file = "ck.h5"
"""


def _md_result(folder):
    import h5py
    with h5py.File(folder / "traj.h5", "r", locking=False) as f:
        p = f["particles/all"]
        frames = {"step": p["position/step"][()], "position": p["position/value"][()],
                  "image": p["image/value"][()], "velocity": p["velocity/value"][()]}
    rows = np.loadtxt(folder / "run.log", comments="#", ndmin=2)[:, 0].astype(int)
    return frames, rows


def _md_compare(ref, test, steps=400):
    (a, _), (b, rows) = _md_result(ref), _md_result(test)
    assert np.array_equal(a["step"], b["step"]), (a["step"], b["step"])
    dx = float(np.max(np.abs(a["position"] - b["position"])))
    dv = float(np.max(np.abs(a["velocity"] - b["velocity"])))
    same_images = bool(np.array_equal(a["image"], b["image"]))
    # every 10th step once, plus a row at each step a SIGUSR1 stopped the run (by design)
    once = list(rows) == sorted(set(rows)) and set(range(0, steps + 1, 10)) <= set(rows)
    print(f"  md: {len(b['step'])} frames: max |dx| = {dx:.3g} A, max |dv| = {dv:.3g} A/ps, images equal: "
          f"{same_images}; log rows {len(rows)}, each step once: {once}")
    return dx < 1e-10 and dv < 1e-10 and same_images and once


def _fe_compare(ref, test):
    import yaml

    def numbers(folder):
        report = yaml.safe_load((folder / "free_energy.yaml").read_text())
        r = report["results"]
        return {"F": r["free_energy"], "error": r["error"], "work": r["work"],
                "dissipation": report["acemd"]["dissipation"]}
    a, b = numbers(ref), numbers(test)
    dev = max(abs(a[k] - b[k]) for k in a)
    print("  free_energy: " + ", ".join(f"{k} {a[k]:.12f} vs {b[k]:.12f}" for k in a)
          + f" eV/atom; max |difference| = {dev:.3g}")
    return dev <= 1e-9


def _elastic_compare(ref, test):
    a = json.loads((ref / "elastic.json").read_text())
    b = json.loads((test / "elastic.json").read_text())
    ca, cb = np.array(a["C_GPa"]), np.array(b["C_GPa"])
    ea, eb = np.array(a["C_error_GPa"]), np.array(b["C_error_GPa"])
    dev = float(max(np.max(np.abs(ca - cb)), np.max(np.abs(ea - eb))))
    print(f"  elastic: C11 {ca[0, 0]:.9f} vs {cb[0, 0]:.9f}, C12 {ca[0, 1]:.9f} vs {cb[0, 1]:.9f}, C44 "
          f"{ca[3, 3]:.9f} vs {cb[3, 3]:.9f} GPa; max |difference| of C and its errors = {dev:.3g} GPa")
    return dev <= 1e-9 * max(1.0, float(np.max(np.abs(ca))))


# driver: (input, its checkpoint, the comparison)
DRIVERS = {"md": (MD, "ck.h5", _md_compare),
           "free_energy": (FREE_ENERGY, "free_energy.ckpt.h5", _fe_compare),
           "elastic": (ELASTIC, "ck.h5", _elastic_compare)}


def acemd(folder, args, env):
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                            os.environ.get("PATH", "")]))
    return subprocess.Popen([mpiexec, "-n", "2", sys.executable, "-m", "acemd.cli", *args],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def printed_command(err):
    """The arguments of 'to continue: acemd ARGS' (or 'start again with: acemd ARGS') in a stop message."""
    found = re.search(r"(?:to continue|start again with): acemd (.*?)\)?$", err.strip().splitlines()[-1])
    if not found:
        raise SystemExit(f"no restart command in the stop message:\n{err}")
    return shlex.split(found.group(1))


def run_driver(name, kills_wanted, rng, env, base):
    text, ckpt, compare = DRIVERS[name]
    ref, test = base / name / "reference", base / name / "interrupted"
    for d in (ref, test):
        d.mkdir(parents=True)
        (d / "in.toml").write_text(text)
    t0 = time.perf_counter()
    proc = acemd(ref, ["in.toml"], env)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    duration = time.perf_counter() - t0
    t0 = time.perf_counter()                    # start-up: MPI, imports, input and potential read
    proc = acemd(ref, ["in.toml", "--check"], env)
    proc.communicate()
    startup = min(time.perf_counter() - t0, 0.5 * duration)
    print(f"# {name}: uninterrupted run {duration:.1f} s wall (start-up about {startup:.1f} s)", flush=True)

    from acemd.io.checkpoint import read_checkpoint
    kills = usr1 = attempts = 0
    args = ["in.toml"]
    while True:
        attempts += 1
        proc = acemd(test, args, env)
        # after the start-up; a restart has less left to do than the whole run: the first 60 % of the work,
        # so that several interruptions hit one chain of restarts
        delay = (startup + rng.uniform(0.0, 0.6) * (duration - startup)) if kills + usr1 < kills_wanted else None
        err = None
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            if (kills + usr1) % 2 == 0:          # kill -9: nothing printed; its own checkpoint if any
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                state = "none yet"
                if (test / ckpt).exists():
                    step = read_checkpoint(test / ckpt)["step"]                # must read after every kill
                    state = f"step {step}"
                    if name == "md" and step == 400:     # killed after its last checkpoint: nothing to continue
                        for f in ("ck.h5", "traj.h5", "run.log"):
                            (test / f).unlink()
                        state += " (complete: starting over)"
                args = ["in.toml", "--restart", ckpt] if (test / ckpt).exists() else ["in.toml"]
                print(f"  kill -9 after {delay:5.2f} s: checkpoint {state}; next: acemd {' '.join(args)}",
                      flush=True)
                continue
            os.killpg(proc.pid, signal.SIGUSR1)
            _, err = proc.communicate()
            if proc.returncode == 75:
                usr1 += 1
                args = printed_command(err)
                print(f"  SIGUSR1 after {delay:5.2f} s: exit 75; printed: acemd {' '.join(args)}", flush=True)
                continue
            if proc.returncode != 0:       # the signal came before acemd could catch it: as a kill
                kills += 1
                args = ["in.toml", "--restart", ckpt] if (test / ckpt).exists() else ["in.toml"]
                print(f"  SIGUSR1 after {delay:5.2f} s ended the run with status {proc.returncode} before acemd "
                      f"caught it; next: acemd {' '.join(args)}", flush=True)
                continue
        if err is None:
            err = proc.stderr.read()
        if proc.returncode != 0:
            raise SystemExit(f"{name}: run 'acemd {' '.join(args)}' failed with status {proc.returncode}:\n{err}")
        if kills + usr1 < kills_wanted:         # finished before the interruption: again, so that each one counts
            print(f"  finished before the interruption at {delay:.2f} s; starting over", flush=True)
            for f in test.iterdir():
                if f.name != "in.toml":
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
            args = ["in.toml"]
            continue
        break                                   # completed
    ok = compare(ref, test)
    locks = list(test.glob(".*.lock"))
    print(f"# {name}: {kills} kill -9 and {usr1} SIGUSR1 in {attempts} runs; equal to the uninterrupted "
          f"run: {ok}; lock files left: {len(locks)}", flush=True)
    return ok and not locks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drivers", default="md,free_energy,elastic",
                    help="comma-separated: md, free_energy, elastic (default: all)")
    ap.add_argument("--kills", type=int, default=4, help="interruptions per driver (default 4)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    names = [n.strip() for n in args.drivers.split(",") if n.strip()]
    unknown = [n for n in names if n not in DRIVERS]
    if unknown or not names:
        ap.error(f"--drivers: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(DRIVERS)}")
    if args.kills < 0:
        ap.error(f"--kills {args.kills}: must be >= 0")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [os.environ.get("PYTHONPATH", "")]),
               PYTHONUNBUFFERED="1")
    rng = np.random.default_rng(args.seed)
    base = Path(tempfile.mkdtemp(prefix="acemd-kill-"))
    results = {name: run_driver(name, args.kills, rng, env, base) for name in names}
    if not all(results.values()):
        raise SystemExit(f"FAILED: {[n for n, ok in results.items() if not ok]} (files kept in {base})")
    shutil.rmtree(base)
    print("OK")


if __name__ == "__main__":
    main()
