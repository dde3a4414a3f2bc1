"""``acemd learn`` stopped by SIGTERM in the middle of labelling, fitting and exploring, then continued
with ``--restart``, ends with the same final potential as the loop that was never stopped (bit for bit
after a stop in labelling or fitting; to the 8 decimals of the dumped frames after a stop inside an
MD exploration); and the loop stops exactly when no exploration exceeds gamma_lower.

The loop: EMT copper, 8 starting cells of 32 atoms, a 52-function linear ACE, explorations at 300 K
and 1500 K (32 atoms); about 7 iterations, ~10 s each loop."""
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml

from acemd import signals
from acemd.learn import read_learn_input, run_learn
from learn_helpers import SignallingEMT, final_coefficients, learn_input

MAX_ITERATIONS = 12


@pytest.fixture
def signal_handlers():
    signals.install_early()
    yield
    signals.uninstall_early()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted loop."""
    folder = tmp_path_factory.mktemp("learn_reference")
    path = learn_input(folder, max_iterations=MAX_ITERATIONS)
    lines = []
    assert run_learn(read_learn_input(path), say=lines.append) == 0
    return folder / "run", lines


def test_stops_when_no_exploration_exceeds_gamma_lower(reference):
    run, lines = reference
    report = yaml.safe_load((run / "report.yaml").read_text())
    hist = report["history"]
    for h in hist:
        print(f"iteration {h['iteration']}: dataset {h['dataset_structures']}, max gamma "
              + ", ".join(f"{e['name']} {e['max_gamma']:.3f} ({e['steps']}/{e['steps_asked']} steps)"
                          for e in h["explorations"]) + f"; selected {h['selected']}")
    assert report["converged"], report["stop_reason"]
    assert len(hist) < MAX_ITERATIONS
    # every iteration before the last had an exploration above gamma_lower; the last had none
    for h in hist[:-1]:
        assert max(e["max_gamma"] for e in h["explorations"]) > report["gamma_lower"]
        assert h["selected"] >= 1
    assert max(e["max_gamma"] for e in hist[-1]["explorations"]) <= report["gamma_lower"]
    assert all(e["steps"] == e["steps_asked"] for e in hist[-1]["explorations"])
    assert not (run / f"iter_{len(hist):03d}").exists()
    # the hot run stopped above gamma_upper at first, then got further each time it was stopped
    hot = [next(e for e in h["explorations"] if e["name"] == "nvt1500") for h in hist]
    assert hot[0]["stopped_by"] == "extrapolation" and hot[0]["max_gamma"] > report["gamma_upper"]
    # the dataset grew by the labelled selection of the iteration before
    for a, b in zip(hist, hist[1:]):
        assert b["dataset_structures"] == a["dataset_structures"] + a["selected"]
    assert (Path(report["final_potential"]).with_suffix(".asi")).exists()


def _stop_and_restart(path, lines):
    status = run_learn(read_learn_input(path), say=lines.append)
    assert status == 75, lines[-3:]
    stop_line = next(line for line in lines if line.startswith("acemd learn: stopped by SIGTERM"))
    assert f"to continue: acemd learn {path.resolve()} --restart" in stop_line
    assert run_learn(read_learn_input(path), restart=True, say=lines.append) == 0
    return stop_line


def _same_potential(reference_run, run, relative=0.0):
    """The final coefficients equal the uninterrupted loop's: exactly, or to ``relative`` x the largest."""
    ref = final_coefficients(reference_run)
    got = final_coefficients(run)
    assert got.shape == ref.shape
    dev = np.max(np.abs(got - ref))
    print(f"final potential vs the uninterrupted loop: {len(ref)} coefficients, max |difference| {dev:.3g} "
          f"(largest coefficient {np.max(np.abs(ref)):.3g})")
    assert dev <= relative * np.max(np.abs(ref))
    a = yaml.safe_load((reference_run / "report.yaml").read_text())
    b = yaml.safe_load((run / "report.yaml").read_text())
    assert [h["dataset_structures"] for h in a["history"]] == [h["dataset_structures"] for h in b["history"]]


def test_sigterm_while_labelling(tmp_path, reference, signal_handlers):
    SignallingEMT.calls = 0        # the 12th structure: in the middle of iteration 3's four
    path = learn_input(tmp_path, max_iterations=MAX_ITERATIONS,
                       labeller='calculator = "learn_helpers:SignallingEMT"\nkwargs = {after = 12}')
    lines = []
    stop = _stop_and_restart(path, lines)
    print(stop)
    assert "stage label" in stop and "iteration 3" in stop
    _same_potential(reference[0], tmp_path / "run")


def test_sigterm_while_fitting(tmp_path, reference, signal_handlers, monkeypatch):
    import acemd.fit.run as fit_run
    original = fit_run.run_fit
    calls = []

    def run_fit(*args, **kw):
        calls.append(1)
        if len(calls) == 3:          # the third fit (iteration 2) receives SIGTERM while it runs
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kw)

    monkeypatch.setattr(fit_run, "run_fit", run_fit)
    path = learn_input(tmp_path, max_iterations=MAX_ITERATIONS)
    lines = []
    stop = _stop_and_restart(path, lines)
    print(stop)
    assert "iteration 2" in stop and "stage explore" in stop     # the fit finished, nothing explored yet
    _same_potential(reference[0], tmp_path / "run")


def test_sigterm_while_exploring(tmp_path, reference, signal_handlers, monkeypatch):
    from acemd.extrapolation_monitor import ExtrapolationMonitor
    original = ExtrapolationMonitor.check
    seen = []

    def check(self, engine):
        if engine.state.step == 150:
            seen.append(1)
            if len(seen) == 4:       # iteration 2, the 1500 K run, 20 steps before it extrapolates
                os.kill(os.getpid(), signal.SIGTERM)
        return original(self, engine)

    monkeypatch.setattr(ExtrapolationMonitor, "check", check)
    path = learn_input(tmp_path, max_iterations=MAX_ITERATIONS)
    lines = []
    stop = _stop_and_restart(path, lines)
    print(next(line for line in lines if "stopped by SIGTERM at step" in line))
    assert "iteration 2" in stop and "stage explore" in stop
    assert (tmp_path / "run" / "iter_002" / "explore" / "nvt1500" / "checkpoint.h5").exists()
    # acemd's MD restart continues the trajectory to round-off (~1e-15 Å after 150 steps, not bit for
    # bit), and the dump keeps 8 decimals: a coordinate may round the other way (1e-8 Å), which moves
    # the fitted coefficients by ~1e-8 relative; seen: 0 and 1.4e-8
    _same_potential(reference[0], tmp_path / "run", relative=1e-6)
