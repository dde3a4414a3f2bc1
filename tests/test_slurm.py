"""The batch scripts in slurm/ against a real scheduler: a single-node SLURM (slurmctld + slurmd,
Debian's slurm-wlm, installed with apt-get when absent) started in a temporary folder.

single_node with 2 ranks equals a direct `mpiexec -n 2` run; a requeue chain with --time=1 needs
several links and ends where an uninterrupted run ends; a chain stopped by the extrapolation
grade ends with status 3 and is not requeued; a 2-task job array runs each value in its own
folder; multi_node passes `sbatch --test-only` and runs on one node.  Every daemon is stopped
by PID when the module ends, also after a failure.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from acemd.cli import EXIT_EXTRAPOLATION, EXIT_STOPPED
from acemd.io.checkpoint import read_checkpoint
from acemd.io.thermo import read_thermo

from engine_helpers import write_input
from slurm_helpers import MiniSlurm, install_slurm
from test_extrapolation_md import extrapolation_input
from test_mpi_suites import mpiexec

pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).resolve().parent.parent / "slurm"
CHAIN_WORK_S = 60.0          # compute time of the chained run: longer than any 1-minute link can do


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = install_slurm()
    if reason is not None:
        pytest.skip(reason)
    c = MiniSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        t0 = time.perf_counter()
        c.start()
        print(f"\nSLURM up in {time.perf_counter() - t0:.1f} s ({c.cpus} CPUs on node {c.node})")
        # the jobs run this interpreter and this acemd (PYTHONPATH is exported by sbatch)
        c.env["ACEMD"] = f"{sys.executable} -m acemd.cli"
        c.env["ACEMD_PYTHON"] = sys.executable
        c.env["PATH"] = os.pathsep.join([str(Path(mpiexec()).parent), c.env.get("PATH", "")])
        c.env["PYTHONUNBUFFERED"] = "1"
        yield c
    finally:
        c.stop()
        assert all(p.poll() is not None for p in c.procs)


def direct(nranks, input_path, *extra):
    """acemd without SLURM (also warms the numba cache the jobs use); returns (status, stdout)."""
    proc = subprocess.run([mpiexec(), "-n", str(nranks), sys.executable, "-m", "acemd.cli",
                           str(input_path), *extra], cwd=Path(input_path).parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, EXIT_STOPPED, EXIT_EXTRAPOLATION), proc.stderr[-3000:]
    return proc.returncode, proc.stdout


def unwrapped(ckpt):
    order = np.argsort(ckpt["ids"])
    return (ckpt["positions"] + ckpt["images"] @ ckpt["cell"])[order], ckpt["velocities"][order]


def assert_same_final_state(a_path, b_path, atol=1e-9):
    a, b = read_checkpoint(a_path), read_checkpoint(b_path)
    assert int(a["step"]) == int(b["step"])
    (xa, va), (xb, vb) = unwrapped(a), unwrapped(b)
    dx, dv = np.abs(xa - xb).max(), np.abs(va - vb).max()
    print(f"final state vs reference at step {int(a['step'])}: max |dx| {dx:.1e} Å, max |dv| {dv:.1e} Å/ps")
    assert dx < atol and dv < atol


def job_record(cluster, job_id, timeout_s):
    t0 = time.perf_counter()
    records = cluster.wait(job_id, timeout_s)
    assert records, f"job {job_id} vanished from scontrol"
    for r in records:
        print(f"job {r['JobId']}: {r['JobState']} exit {r['ExitCode']} restarts {r['Restarts']} "
              f"(waited {time.perf_counter() - t0:.0f} s)")
    return records


@pytest.fixture(scope="module")
def reference_2ranks(tmp_path_factory):
    """200 steps of 108 Cu atoms with `mpiexec -n 2`, no SLURM."""
    folder = tmp_path_factory.mktemp("direct2")
    path = write_input(folder, steps=200, thermo_every=50, traj_every=100)
    status, _ = direct(2, path)
    assert status == 0
    return folder


@pytest.mark.parametrize("launcher", ["srun", "mpiexec"])
def test_single_node_two_ranks_equals_direct_mpiexec(cluster, reference_2ranks, tmp_path, launcher):
    path = write_input(tmp_path, steps=200, thermo_every=50, traj_every=100)
    env = dict(cluster.env, ACEMD_LAUNCHER=launcher)
    job = cluster.sbatch(["--ntasks=2", "--time=5", "--signal=B:USR1@60", "--output=job.out",
                          SCRIPTS / "single_node.sbatch", path.name], cwd=tmp_path, env=env)
    [rec] = job_record(cluster, job, 240)
    out = (tmp_path / "job.out").read_text()
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", out[-3000:]
    if launcher == "srun":
        assert "srun --mpi=pmi2 --ntasks=2" in out       # one 2-rank job, not two 1-rank runs
    assert "ranks: 2" in (tmp_path / "run.log").read_text()
    assert_same_final_state(tmp_path / "run.ckpt.h5", reference_2ranks / "run.ckpt.h5", atol=1e-10)
    mine, ref = read_thermo(tmp_path / "run.log"), read_thermo(reference_2ranks / "run.log")
    np.testing.assert_allclose(mine["TotEng"], ref["TotEng"], rtol=0, atol=1e-8)


def _rate_steps_per_s(stdout):
    return float(re.search(r"\| ([0-9.]+) steps/s", stdout).group(1))


def test_requeue_chain_continues_to_the_uninterrupted_result(cluster, tmp_path):
    """--time=1 with USR1 50 s before the limit: every link checkpoints and exits 75, the job is
    requeued with the same options until the run is done; ends where a direct run ends."""
    warm = write_input(tmp_path / "warm", steps=400, thermo_every=400)
    _, out = direct(1, warm)
    rate = _rate_steps_per_s(out)
    steps = int(rate * CHAIN_WORK_S)
    print(f"\n1 rank: {rate:.0f} steps/s (noisy, shared machine) -> chain of {steps} steps")
    path = write_input(tmp_path / "chain", steps=steps, thermo_every=max(steps // 10, 1))
    ref = write_input(tmp_path / "ref", steps=steps, thermo_every=max(steps // 10, 1))
    t0 = time.perf_counter()
    job = cluster.sbatch(["--ntasks=1", "--time=1", "--signal=B:USR1@50", "--output=chain.out",
                          SCRIPTS / "requeue_chain.sbatch", path.name], cwd=path.parent)
    # the uninterrupted reference on the other CPU meanwhile (not through SLURM)
    reference = subprocess.Popen([sys.executable, "-m", "acemd.cli", str(ref)], cwd=ref.parent,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        [rec] = job_record(cluster, job, 330)
    finally:
        _, err = reference.communicate(timeout=600)
    out = (path.parent / "chain.out").read_text()
    print(f"chain took {time.perf_counter() - t0:.0f} s")
    print("\n".join(line for line in out.splitlines() if line.startswith("acemd-chain")))
    assert reference.returncode == 0, err[-3000:]
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", out[-3000:]
    links = len(re.findall(r"acemd-chain: link \d+ of job", out))
    assert links >= 2 and int(rec["Restarts"]) == links - 1, out[-3000:]
    # every link ran with the command-line options, not the script's #SBATCH defaults
    assert rec["TimeLimit"] == "00:01:00" and rec["NumTasks"] == "1"
    assert out.count("srun --mpi=pmi2 --ntasks=1 ") == links
    assert out.count(f"exit status {EXIT_STOPPED}") == links - 1       # every link but the last
    assert f"link {links} finished the run" in out
    assert_same_final_state(path.parent / "run.ckpt.h5", ref.parent / "run.ckpt.h5")


def test_chain_stopped_by_extrapolation_is_not_requeued(cluster, tmp_path):
    """A thermal crystal has gamma ~1e6 on Cu-I.asi: stop_threshold = 10 stops at step 0, exit 3."""
    path = extrapolation_input(tmp_path, stop=10.0, steps=1000, every=5)
    job = cluster.sbatch(["--ntasks=1", "--time=1", "--signal=B:USR1@50", "--output=chain.out",
                          SCRIPTS / "requeue_chain.sbatch", path.name], cwd=tmp_path)
    [rec] = job_record(cluster, job, 120)
    out = (tmp_path / "chain.out").read_text()
    assert rec["JobState"] == "FAILED" and rec["ExitCode"] == f"{EXIT_EXTRAPOLATION}:0", out[-3000:]
    assert rec["Restarts"] == "0" and "not resubmitted" in out and len(re.findall(r"acemd-chain: link \d+ of job", out)) == 1
    assert int(read_checkpoint(tmp_path / "run.ckpt.h5")["step"]) == 0


def test_job_array_sweeps_temperature_in_own_folders(cluster, tmp_path):
    path = write_input(tmp_path, steps=20, thermo_every=10)
    env = dict(cluster.env, ACEMD_SWEEP_DIR="sweep")
    job = cluster.sbatch(["--array=0-1", "--time=5", "--signal=B:USR1@60", "--output=sweep-%a.out",
                          SCRIPTS / "sweep_array.sbatch", path.name, "velocities.temperature", "300", "900"],
                         cwd=tmp_path, env=env)
    records = job_record(cluster, job, 180)
    assert sorted(r["ArrayTaskId"] for r in records) == ["0", "1"]
    for r in records:
        out = (tmp_path / f"sweep-{r['ArrayTaskId']}.out").read_text()
        assert r["JobState"] == "COMPLETED" and r["ExitCode"] == "0:0", out[-3000:]
    for task, temperature in ((0, 300.0), (1, 900.0)):
        folder = tmp_path / "sweep" / f"{task}_{temperature:g}"
        log = read_thermo(folder / "run.log")
        # initial velocities are scaled to exactly the swept temperature
        assert log["Temp"][0] == pytest.approx(temperature, abs=1e-3)
        assert int(read_checkpoint(folder / "run.ckpt.h5")["step"]) == 20
    assert not (tmp_path / "run.log").exists()            # nothing written next to the template


def test_multi_node_script(cluster, reference_2ranks, tmp_path):
    path = write_input(tmp_path, steps=200, thermo_every=50, traj_every=100)
    test_only = cluster.run(["sbatch", "--test-only", "--nodes=1", "--exclusive",
                             SCRIPTS / "multi_node.sbatch", path.name], cwd=tmp_path, check=False)
    assert test_only.returncode == 0 and "to start at" in test_only.stderr, test_only.stderr
    too_many = cluster.run(["sbatch", "--test-only", SCRIPTS / "multi_node.sbatch", path.name],
                           cwd=tmp_path, check=False)     # the default asks for 2 nodes: refused here
    assert too_many.returncode != 0
    job = cluster.sbatch(["--nodes=1", "--exclusive", "--time=5", "--signal=B:USR1@60", "--output=job.out",
                          SCRIPTS / "multi_node.sbatch", path.name], cwd=tmp_path)
    [rec] = job_record(cluster, job, 240)
    out = (tmp_path / "job.out").read_text()
    assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", out[-3000:]
    assert f"--ntasks-per-node={cluster.cpus}" in out               # one rank per CPU by default
    if cluster.cpus == 2:
        assert_same_final_state(tmp_path / "run.ckpt.h5", reference_2ranks / "run.ckpt.h5", atol=1e-10)


def test_warning_signal_at_job_start_is_honoured(cluster, tmp_path):
    """USR1 to the batch shell just after the job starts (what a --signal lead longer than the
    limit can do): acemd is either not started or stops with a checkpoint; the job ends with 75.
    (A signal before the script's first line, i.e. before its trap, kills the shell: 0.5 s later.)"""
    path = write_input(tmp_path, steps=1_000_000, thermo_every=1000)
    job = cluster.sbatch(["--ntasks=1", "--time=2", "--signal=B:USR1@60", "--output=job.out",
                          SCRIPTS / "single_node.sbatch", path.name], cwd=tmp_path)
    deadline = time.monotonic() + 120
    while cluster.run(["squeue", "-h", "-j", str(job), "-o", "%T"]).stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.1)
    time.sleep(0.5)
    cluster.run(["scancel", "--batch", "--signal=USR1", str(job)])
    [rec] = job_record(cluster, job, 100)
    out = (tmp_path / "job.out").read_text()
    assert rec["JobState"] == "FAILED" and rec["ExitCode"] == f"{EXIT_STOPPED}:0", out[-3000:]
    print("\n".join(line for line in out.splitlines() if line.startswith("acemd")))
    if "acemd not started" not in out:
        assert "stopped by SIGUSR1" in out
        assert 1 <= int(read_checkpoint(tmp_path / "run.ckpt.h5")["step"]) < 1_000_000
