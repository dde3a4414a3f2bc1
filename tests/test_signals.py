"""Stop signals (SIGTERM/SIGUSR1, what SLURM sends before the wall time) are never lost: not
before the run loop starts, not during MPI_Init (whose mpich handler takes SIGUSR1), and a
stopped run exits with EXIT_STOPPED and continues to the same final state with --restart."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from acemd import signals
from acemd.cli import EXIT_STOPPED, main
from acemd.io.checkpoint import read_checkpoint

from engine_helpers import write_input
from test_mpi_suites import _env, mpiexec


@pytest.fixture
def early_handlers():
    signals.install_early()
    yield
    signals.uninstall_early()


def test_early_handler_records_and_stop_request_starts_from_it(early_handlers):
    assert signals.received() == 0
    os.kill(os.getpid(), signal.SIGUSR1)        # would terminate the process without a handler
    time.sleep(0.05)                            # Python runs handlers between bytecodes
    assert signals.received() == signal.SIGUSR1
    stop = signals.StopRequested()
    assert stop.signum == signal.SIGUSR1        # a run loop created later still sees it
    stop.install()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)
    assert signals.received() == signal.SIGTERM  # recorded process-wide while the run loop is on
    stop.uninstall()
    # handled by this run loop: a later one in the same process starts clean
    assert stop.signum == signal.SIGTERM and signals.received() == 0
    assert signals.StopRequested().signum == 0


def test_uninstall_restores_previous_handlers():
    before = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    signals.install_early()
    assert all(signal.getsignal(s) is not before[s] for s in signals.STOP_SIGNALS)
    signals.uninstall_early()
    assert {s: signal.getsignal(s) for s in signals.STOP_SIGNALS} == before
    assert signals.received() == 0


def test_command_ignores_stop_signals_once_its_outcome_is_decided(tmp_path, monkeypatch):
    """Python resets handled signals to 'terminate' at exit, before MPI_Finalize: a USR1 there
    would kill a finished run, so the command ends with the stop signals ignored."""
    path = write_input(tmp_path, steps=5, thermo_every=5)
    monkeypatch.setattr(sys, "argv", ["acemd", str(path)])
    before = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    try:
        assert main() == 0
        assert all(signal.getsignal(s) == signal.SIG_IGN for s in signals.STOP_SIGNALS)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        signals.uninstall_early()


def test_signal_before_the_run_loop_stops_after_one_step(tmp_path, early_handlers):
    """A USR1 received while the run is being set up: one step, checkpoint, status 75."""
    path = write_input(tmp_path, steps=50, thermo_every=10)
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.05)
    assert main([str(path)]) == EXIT_STOPPED
    assert int(read_checkpoint(tmp_path / "run.ckpt.h5")["step"]) == 1


def unwrapped(ckpt):
    """Unwrapped positions ordered by atom id."""
    order = np.argsort(ckpt["ids"])
    return (ckpt["positions"] + ckpt["images"] @ ckpt["cell"])[order]


def _run(args, cwd, signal_after_s=None, timeout=300):
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    if signal_after_s is not None:
        time.sleep(signal_after_s)
        proc.send_signal(signal.SIGUSR1)        # hydra's mpiexec forwards USR1 to every rank
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_usr1_half_a_second_after_start_under_mpiexec(tmp_path):
    """USR1 0.5 s after `mpiexec -n 2 acemd` starts (interpreter start-up, imports, MPI_Init):
    honoured with a checkpoint and status 75; --restart then ends where an uninterrupted run ends."""
    steps = 60
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "acemd.cli", "run.toml"]
    write_input(tmp_path / "stopped", steps=steps, thermo_every=10)
    write_input(tmp_path / "direct", steps=steps, thermo_every=10)
    t0 = time.perf_counter()
    rc, out, err = _run(cmd, tmp_path / "stopped", signal_after_s=0.5)
    print(f"\nsignalled run: exit {rc} after {time.perf_counter() - t0:.1f} s; {err.strip()[-200:]}")
    assert rc == EXIT_STOPPED, out[-2000:] + err[-3000:]
    assert "stopped by SIGUSR1" in out
    stopped = read_checkpoint(tmp_path / "stopped" / "run.ckpt.h5")
    assert 1 <= int(stopped["step"]) < steps
    rc, out, err = _run(cmd + ["--restart", "run.ckpt.h5"], tmp_path / "stopped")
    assert rc == 0, err[-3000:]
    rc, out, err = _run(cmd, tmp_path / "direct")
    assert rc == 0, err[-3000:]
    a = read_checkpoint(tmp_path / "stopped" / "run.ckpt.h5")
    b = read_checkpoint(tmp_path / "direct" / "run.ckpt.h5")
    assert int(a["step"]) == int(b["step"]) == steps
    dx = np.abs(unwrapped(a) - unwrapped(b)).max()
    oa, ob = np.argsort(a["ids"]), np.argsort(b["ids"])
    dv = np.abs(a["velocities"][oa] - b["velocities"][ob]).max()
    print(f"stopped at step {int(stopped['step'])} + restart vs uninterrupted: max |dx| {dx:.1e} Å, "
          f"max |dv| {dv:.1e} Å/ps")
    assert dx < 1e-9 and dv < 1e-9
