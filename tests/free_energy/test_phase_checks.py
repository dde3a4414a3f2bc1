"""Checks before hours of work: a phase protocol first runs each phase through the stages before
switching (a liquid: melt, then a short quench and NPT; a solid: a short NPT and NVT) and stops
within minutes when one does not exist.  Cu-I.yace has no stable liquid: the protocol used to
switch and sweep the solid for an hour before learning that."""
import io
import time

import pytest
import yaml
from mpi4py import MPI

from acemd.drivers.free_energy import NoStableLiquidError
from acemd.drivers.phase_diagram import PhaseDiagramRun

from test_solid_route import _input

CU_I_MELTING = """
mode = "melting_temperature"
temperature = 1300.0
window = 100.0
timestep = 0.002
npt_steps = 2000
spring_steps = 2000
n_iterations = 2
equilibration_steps = 500
switching_steps = 2000
sweep_steps = 2000
melt_temperature = 3600.0
melt_steps = 1500
quench_steps = 3000
phase_check_steps = 400
progress_every = 1000000
"""


def test_cu_i_melting_point_stops_in_the_liquid_check(tmp_path):
    settings, text, path = _input(tmp_path, CU_I_MELTING, repeat=2, a=3.62)
    stream = io.StringIO()
    start = time.perf_counter()
    with pytest.raises(NoStableLiquidError) as exc:
        PhaseDiagramRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream).run()
    wall = time.perf_counter() - start
    msg = str(exc.value)
    out = stream.getvalue()
    print(f"\nstopped after {wall:.1f} s: {msg[:400]}")
    assert "phase check of liquid" in msg and "without a melting temperature" in msg
    assert "# phase check 1 of 2: liquid (liquid) at 1400 K" in out
    assert "phase check 2 of 2" not in out                   # the liquid goes first; the solid never ran
    assert "collapsed" in msg or "crystallised" in msg
    assert "iteration 1" not in out                          # no switching, no sweep
    report = yaml.safe_load((tmp_path / "fe.yaml").read_text())
    assert report["result"]["status"] == "no stable liquid"
    assert not (tmp_path / "fe_runs" / "solid_1200-1400K_0bar").exists()


def test_phase_check_false_skips_it(tmp_path):
    body = CU_I_MELTING.replace("phase_check_steps = 400", "phase_check = false")
    settings, text, path = _input(tmp_path, body, repeat=2, a=3.62)
    stream = io.StringIO()
    run = PhaseDiagramRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream)
    run._check_phases_exist()
    assert "phase check" not in stream.getvalue() and not (tmp_path / "fe_runs").exists()


def test_coexistence_state_point_runs_under_the_guards(tmp_path):
    """The NPT state points of a coexistence line are guarded like every other stage: a force limit
    below the harmonic stand-ins' thermal forces stops the first state point at step 10 (exit 4
    through the command line), naming the stage."""
    from test_phase_diagram import BODY, _driver
    body = (BODY.replace('mode = "transition_temperature"', 'mode = "coexistence_line"')
            .replace("attempts = 3", "attempts = 3\npressure = 1000.0\npressure_final = 11000.0\n"
                                     "pressure_steps = 2\nstart_temperature = 612.5\nnpt_steps = 200")
            + "\n[guards]\nmax_force = 0.01\n")
    summary = _driver(tmp_path, body).run()
    print(summary["message"])
    assert summary["stopped_by"] == "guard"
    assert "stage 'alpha NPT 612 K 1000 bar'" in summary["message"]
    assert "[guards.max_force] = 0.01" in summary["message"] and "stopped at step 10" in summary["message"]
