"""Every driver stopped by a signal prints how to continue, and exactly that command completes the run.

Each case starts ``mpiexec -n 2 acemd in.toml`` on a tiny input, sends SIGUSR1 (what SLURM sends
before the wall time; hydra's mpiexec forwards it to every rank) once the run is under way, expects
exit status 75 and a message ending in ``to continue: acemd in.toml --restart CKPT``, then runs that
command (same launcher) in place: the checkpoint it reads is also the one it replaces.  The
continued run must exit 0 and its result must equal an uninterrupted run's (to round-off).
"""
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_bad_inputs import POT, TIMEOUT_S, _env, toml_value
from test_mpi_suites import mpiexec

FCC32 = {"lattice": "fcc", "element": "Cu", "a": 3.62, "repeat": [2, 2, 2]}


def _input(sections):
    """TOML of 32 fcc Cu atoms with Cu-I.yace plus ``sections`` ({name: {key: value}})."""
    s = {"structure": {**FCC32, **sections.pop("structure", {})},
         "potential": {"file": (POT / "Cu-I.yace").as_posix()}, **sections}
    return "\n".join(f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())
                     for name, keys in s.items())


def _start(folder, args):
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "acemd.cli", *args]
    return subprocess.Popen(cmd, cwd=folder, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _run(folder, args):
    proc = _start(folder, args)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, out, err


def _stop_when(folder, marker):
    """Start the run, send SIGUSR1 after the first stdout line containing ``marker``; (status, stderr)."""
    proc = _start(folder, ["in.toml"])
    sent = False
    for line in proc.stdout:
        if not sent and marker in line:
            proc.send_signal(signal.SIGUSR1)
            sent = True
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert sent, f"the marker {marker!r} never appeared:\n{err}"
    return proc.returncode, err


# (id, input sections, the stdout marker after which to stop, the result to compare: folder -> array)
def _md_result(folder):
    import h5py
    with h5py.File(folder / "trajectory.h5", "r") as f:
        p = f["particles/all"]
        return np.concatenate([p["position/step"][()].ravel().astype(float), p["position/value"][()].ravel()])


def _fe_result(folder):
    import yaml
    report = yaml.safe_load((folder / "free_energy.yaml").read_text())
    return np.array([report["results"]["free_energy"]])


def _elastic_result(folder):
    return np.array(json.loads((folder / "elastic.json").read_text())["C_GPa"]).ravel()


def _minimize_result(folder):
    """Minimum-image displacements need the cell: fractional positions (the cell is fixed) times its
    edge, so that a difference of one period is taken out in the comparison."""
    import ase.io
    atoms = ase.io.read(folder / "relaxed.extxyz")
    return atoms.get_scaled_positions(wrap=True).ravel(), float(atoms.cell.lengths()[0])


def _difference(a, b):
    """Largest |a - b| (for the minimiser: the minimum-image distance in Å)."""
    if isinstance(a, tuple):
        d = a[0] - b[0]
        return float(np.max(np.abs(d - np.round(d)))) * a[1]
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a))))


# Å for the minimiser (its checkpoint keeps FIRE's velocities and step size: the same path), relative
# for the others
TOLERANCE = {"minimize": 1e-9}


CASES = [
    ("md", {"velocities": {"temperature": 600.0, "seed": 3},
            "md": {"steps": 500, "timestep": 0.002, "ensemble": "nvt-langevin"},
            "thermostat": {"temperature": 600.0, "damping": 0.05},
            "thermo": {"every": 50}, "trajectory": {"every": 50}, "checkpoint": {"every": 100}},
     "     100 ", _md_result),
    ("minimize", {"structure": {"repeat": [3, 3, 3], "rattle": 0.15, "rattle_seed": 2}, "thermo": {"every": 1},
                  "minimize": {"fmax": 1e-4, "max_steps": 20000, "cell": "fixed"}},
     "      20 ", _minimize_result),
    ("elastic-0K", {"elastic": {"report": "elastic.json", "data": "elastic.h5", "strains": [0.005]}},
     "e_xx", _elastic_result),
    ("elastic-300K", {"elastic": {"temperature": 300.0, "method": "fluctuation", "report": "elastic.json",
                                  "data": "elastic.h5", "npt_steps": 200, "barostat": "npt-crescale",
                                  "barostat_damping": 0.1, "coupling": "iso", "equilibration_steps": 50,
                                  "production_steps": 200, "block_steps": 50, "born_every": 50}},
     "stage 2/2", _elastic_result),
    ("free-energy", {"free_energy": {"mode": "solid", "temperature": 600.0, "timestep": 0.002,
                                     "npt_steps": 100, "npt_max_blocks": 1, "pressure_tolerance": 1e9,
                                     "spring_steps": 50, "n_iterations": 2, "equilibration_steps": 20,
                                     "switching_steps": 150, "progress_every": 50}},
     "switch ACE->Einstein", _fe_result),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_the_printed_restart_command_completes_the_run(case, tmp_path):
    name, sections, marker, result = case
    text = _input(dict(sections))
    whole, split = tmp_path / "whole", tmp_path / "split"
    for d in (whole, split):
        d.mkdir()
        (d / "in.toml").write_text(text)
    rc, out, err = _run(whole, ["in.toml"])
    assert rc == 0, err
    t0 = time.perf_counter()
    rc, err = _stop_when(split, marker)
    print(f"\n{name}: stopped with status {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    assert rc == 75, err
    assert "Traceback" not in err
    printed = re.search(r"to continue: (acemd .*--restart \S+?)\)?$", err.strip().splitlines()[-1])
    assert printed, f"no restart command in:\n{err}"
    assert err.count("--restart") == 1, f"the restart command is given once, not:\n{err}"
    args = shlex.split(printed.group(1))[1:]
    assert args[0] == "in.toml" and Path(split / args[-1]).is_file()
    rc, out, err = _run(split, args)                  # exactly the printed command, in place
    assert rc == 0, err
    assert "Traceback" not in err
    dev = _difference(result(whole), result(split))
    print(f"{name}: restarted as printed ({' '.join(args)}), exit 0 after {time.perf_counter() - t0:.1f} s; "
          f"max |uninterrupted - restarted| = {dev:.3g}" + (" A" if name == "minimize" else " (relative)"))
    assert dev <= TOLERANCE.get(name, 1e-9)


def test_the_restart_command_names_only_a_checkpoint_of_this_run(tmp_path):
    """A checkpoint left by an earlier run (older than this run's start) is never offered: the message
    says to start again; one this run wrote, or the --restart file it continued, is."""
    import os

    from acemd.config import parse_config
    from acemd.restarts import restart_command
    text = _input({"free_energy": {"mode": "solid", "temperature": 300.0}})
    settings = parse_config(text, tmp_path / "in.toml")
    ckpt = Path(settings["free_energy"]["checkpoint"])
    assert "no checkpoint was written yet" in restart_command(settings, "in.toml", since=time.time())
    ckpt.write_bytes(b"stand-in")
    os.utime(ckpt, (time.time() - 100, time.time() - 100))           # an earlier run's file
    since = time.time() - 10
    stale = restart_command(settings, "in.toml", since=since)
    assert stale == f"no checkpoint was written yet ({ckpt}): start again with: acemd in.toml"
    assert restart_command(settings, "in.toml", since=since, restart=str(ckpt)) == \
        f"to continue: acemd in.toml --restart {ckpt}"
    os.utime(ckpt)                                                     # written by this run
    assert restart_command(settings, "in.toml", since=since) == f"to continue: acemd in.toml --restart {ckpt}"
