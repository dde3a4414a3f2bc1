"""[properties] on 2 MPI ranks equals 1 rank, and a run stopped by SIGUSR1 continues, with the printed
command, to the report of the uninterrupted run.

The 31- and 32-atom cells are relaxed by domain decomposition over both ranks (parallel_min_atoms = 16);
the smaller ones whole, one per rank.  A reference (EMT) runs alongside."""
import re
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml

from test_bad_inputs import TIMEOUT_S, _env
from test_mpi_suites import mpiexec
from test_properties_eos import _text

SECTIONS = {"properties": {
    "compute": ["eos", "vacancy", "surfaces", "stacking_fault"], "parallel_min_atoms": 16, "fmax": 1e-5,
    "eos": {"points": 5}, "vacancy": {"sizes": [1, 2]},
    "surfaces": {"miller": [[1, 1, 1], [1, 0, 0]], "layers": 3, "vacuum": 8.0},
    "stacking_fault": {"layers": 6, "points": [0.0, 0.5]}}}
REFERENCE = '[properties.reference]\ncalculator = "ase.calculators.emt:EMT"\n'


def _start(folder, nranks, args):
    return subprocess.Popen([mpiexec(), "-n", str(nranks), sys.executable, "-m", "acemd.cli", *args], cwd=folder,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(folder, nranks, args=("in.toml",)):
    proc = _start(folder, nranks, list(args))
    out, err = proc.communicate(timeout=2 * TIMEOUT_S)
    assert proc.returncode == 0, err
    return out


def _values(folder):
    report = yaml.safe_load((folder / "properties.yaml").read_text())
    return {e["name"]: (e["value"], e["reference"]) for p in report["properties"].values() for e in p["entries"]}


def _max_difference(a, b):
    assert a.keys() == b.keys()
    worst, where = 0.0, None
    for k in a:
        for x, y in zip(a[k], b[k]):
            if x is None and y is None:
                continue
            d = abs(x - y) / max(1.0, abs(x))
            if d >= worst:
                worst, where = d, k
    return worst, where


def _folders(tmp_path, *names):
    out = []
    for n in names:
        d = tmp_path / n
        d.mkdir()
        (d / "in.toml").write_text(_text(SECTIONS) + REFERENCE)
        out.append(d)
    return out


@pytest.mark.slow          # four MPI runs, about 100 s on 2 busy cores
def test_two_ranks_equal_one_and_restart_after_a_signal(tmp_path):
    one, two, split = _folders(tmp_path, "one", "two", "split")
    _run(one, 1)
    out = _run(two, 2)
    assert "surface (111)" in out
    dev, where = _max_difference(_values(one), _values(two))
    print(f"\n2 ranks vs 1 rank: max relative difference {dev:.3g} ({where}), {len(_values(one))} entries")
    assert dev < 1e-7

    proc = _start(split, 2, ["in.toml"])
    sent = False
    for line in proc.stdout:
        if not sent and "# surfaces (acemd)" in line:
            proc.send_signal(signal.SIGUSR1)
            sent = True
    out, err = proc.communicate(timeout=2 * TIMEOUT_S)
    assert sent
    last = err.strip().splitlines()[-1]
    print(f"stopped: status {proc.returncode}: {last}")
    assert proc.returncode == 75 and "Traceback" not in err
    printed = re.search(r"to continue: (acemd .*--restart \S+?)\)?$", last)
    assert printed and err.count("--restart") == 1
    assert not (split / "properties.yaml").exists()
    out = _run(split, 2, shlex.split(printed.group(1))[1:])
    assert "restart: " in out and "# eos (acemd)" not in out        # done properties are not redone
    dev, where = _max_difference(_values(two), _values(split))
    print(f"restarted as printed: max relative difference to the uninterrupted run {dev:.3g} ({where})")
    assert dev < 1e-9
    assert np.isfinite(_values(split)["vacancy.E_f"][0])


def test_elastic_on_two_ranks_equals_one(tmp_path):
    """[properties] elastic on 2 ranks: the phase file is written by rank 0 alone (ASE's write, left
    to itself, broadcasts over MPI and the ranks' collectives went out of step: an error at the first
    [elastic] stage), and the constants equal 1 rank's."""
    sections = {"properties": {"compute": ["elastic"], "fmax": 1e-5, "elastic": {"strains": [0.005]}}}
    folders = []
    for n in ("one", "two"):
        d = tmp_path / n
        d.mkdir()
        (d / "in.toml").write_text(_text(sections))
        folders.append(d)
    _run(folders[0], 1)
    _run(folders[1], 2)
    a, b = _values(folders[0]), _values(folders[1])
    worst, where = _max_difference(a, b)
    print(f"\n[properties] elastic, 2 ranks vs 1: worst relative difference {worst:.2e} ({where}); "
          f"C11 {a['elastic.C11'][0]:.4f} GPa")
    assert worst < 1e-8
