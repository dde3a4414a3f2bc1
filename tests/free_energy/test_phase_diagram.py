"""[free_energy] phase modes end to end (acemd.drivers.phase_diagram).

Two harmonic stand-ins for two solid phases, injected as "the potential" the way
test_solid_route.py does: centre-of-mass-free Einstein springs k_a, k_b plus constant
energies E_a < E_b per atom.  Their free energies are exact, F_i = E_i + F_E(k_i) + F_CM(k_i),
so the transition temperature is known: the stiffer, lower phase a is stable below T*.

* transition_temperature from a guess 200 K below T*: the first window has no crossing
  and says "above", the second brackets T*; the result equals the exact T* within its
  error, with the exact latent heat; SIGUSR1 inside a sub-run, --restart continues that
  sub-run; a second restart reads every sub-run back.
* attempts = 1 and the window below T*: a clear NoCrossingError, the curves written, no T.
* Bad input: missing phases, a window reaching below 0 K, unknown keys in a phase, keys the
  driver sets in its sub-runs (phase, sweep_ensemble) or of another mode (temperature_final,
  pressure_final).
* The sub-runs' settings: constant-pressure temperature sweeps (solid up from the window's low
  end, liquid down from its high end with phase = "liquid") that pass the sweep checks.
"""
import io
import json
import os
import signal

import h5py
import numpy as np
import pytest
import yaml
from ase.build import bulk
from mpi4py import MPI

from acemd.config import ConfigError
from acemd.drivers import driver_class
from acemd.drivers.phase_diagram import NoCrossingError, PhaseDiagramRun
from acemd.free_energy import EinsteinTerm
from acemd.free_energy.reference import com_correction, einstein_free_energy
from acemd.forcefield import TermResult
from acemd.simulation import InputError
from acemd.units import BOLTZMANN

from test_solid_route import _input

K = {"alpha": 2.0, "beta": 1.0}                 # eV/A^2
T_STAR_TARGET = 700.0
DS = 1.5 * BOLTZMANN * np.log(2.0)              # 3 kB ln(w_a / w_b) per atom, w ~ sqrt(k)
E = {"alpha": -3.5, "beta": -3.5 + T_STAR_TARGET * DS}

BODY = """
mode = "transition_temperature"
temperature = 500.0
window = 100.0
attempts = 3
phases = [{name = "alpha", route = "solid"}, {name = "beta", route = "solid"}]
npt = false
timestep = 0.002
damping = 0.05
spring_steps = 1000
n_iterations = 2
equilibration_steps = 200
switching_steps = 800
sweep_steps = 1200
sweep_points = 5
progress_every = 100000
"""


class OffsetEinstein(EinsteinTerm):
    """Einstein springs plus a constant energy per atom (a harmonic phase at energy e0)."""

    def __init__(self, k, sites, cell, e0):
        super().__init__([k], sites, cell, name="harmonic")
        self.e0 = e0

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        r = super().compute(positions, species, ids, n_local, offsets, neighbors)
        return TermResult(r.site_energy + self.e0, r.forces, r.virial)


def _sites():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    return atoms.positions.copy(), atoms.cell.array.copy()


def prepare(run, phase):
    """The perfect lattice as the sites (also for a sub-run restarted from a thermal checkpoint)."""
    sim = run.simulation
    sites, cell = _sites()
    term = OffsetEinstein(K[phase], sites, cell, E[phase])
    sim.term = term
    sim.set_terms([term])


def exact_g(phase, t, n, mass, volume):
    k = K[phase]
    return E[phase] + einstein_free_energy(t, [k], [mass], [n]) + com_correction(t, [k], [mass], [n], volume)


def exact_crossing(n, mass, volume):
    lo, hi = 300.0, 1500.0
    f = lambda t: exact_g("alpha", t, n, mass, volume) - exact_g("beta", t, n, mass, volume)  # noqa: E731
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def _driver(tmp_path, body=BODY, restart=None, stream=None):
    settings, text, path = _input(tmp_path, body, repeat=2)
    assert driver_class(settings) is PhaseDiagramRun
    return PhaseDiagramRun(settings, text, path, comm=MPI.COMM_SELF, restart=restart,
                           stream=stream if stream is not None else io.StringIO(), prepare=prepare)


def test_transition_temperature_of_two_harmonic_phases_window_move_and_restart(tmp_path):
    from acemd import signals
    # 1. SIGUSR1 during the second sub-run (beta's sweep back), then stop
    stream = io.StringIO()
    seen = {"n": 0}

    def prepare_and_interrupt(run, phase):
        prepare(run, phase)
        if phase == "beta":
            original = run._observe

            def observe(name):
                original(name)
                if name.startswith("sweep 1 600"):
                    seen["n"] += 1
                    if seen["n"] == 300:
                        os.kill(os.getpid(), signal.SIGUSR1)
            run._observe = observe
    settings, text, path = _input(tmp_path, BODY, repeat=2)
    stopped = PhaseDiagramRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream,
                              prepare=prepare_and_interrupt).run()
    signals._received = 0
    assert stopped["stopped_by"] == "signal" and "sub-run 2" in stopped["message"]
    assert "--restart" in stopped["message"]
    ckpt = str(tmp_path / "free_energy.ckpt.h5")
    # 2. restart: sub-run 1 is read back, sub-run 2 continues, the window moves, T* found
    stream = io.StringIO()
    report = _driver(tmp_path, restart=ckpt, stream=stream).run()
    out = stream.getvalue()
    assert "sub-run 1 of 2: finished before" in out
    assert "sub-run 2 of 2: continuing from" in out
    assert "sub-run 4 of 4" in out and "ETA" in out
    res = report["result"]
    hist = report["windows"]
    assert [h["window_K"] for h in hist] == [[400.0, 600.0], [600.0, 800.0]]
    assert hist[0]["outcome"] == "above" and hist[1]["outcome"] == "crossing"
    st_n, mass, volume = 32, 63.546, 3.61 ** 3 * 8
    t_exact = exact_crossing(st_n, mass, volume)
    dev = res["temperature_K"] - t_exact
    print("\n" + "\n".join(out.splitlines()[-7:]))
    ds_exact = (1.5 * np.log(2.0)) * (st_n - 1) / st_n       # per atom: N - 1 oscillators (fixed centre of mass)
    print(f"T* = {res['temperature_K']:.2f} +- {res['error_K']:.2f} K, exact {t_exact:.2f} K, deviation {dev:+.2f} K; "
          f"latent heat {res['latent_heat_eV_atom']:.5f} eV/atom, from the fits' H "
          f"{res['latent_heat_fit_eV_atom']:.5f} +- {res['latent_heat_fit_error_eV_atom']:.5f} "
          f"(exact {t_exact * ds_exact * BOLTZMANN:.5f})")
    assert abs(dev) < max(4 * res["error_K"], 3.0)
    assert res["error_K"] < 10.0
    assert res["stable_below"] == "alpha" and res["stable_above"] == "beta"
    assert res["delta_entropy_kB_atom"] == pytest.approx(ds_exact, abs=0.08)
    assert res["latent_heat_eV_atom"] == pytest.approx(t_exact * ds_exact * BOLTZMANN, rel=0.08)
    assert res["latent_heat_fit_eV_atom"] == pytest.approx(t_exact * ds_exact * BOLTZMANN, rel=0.08)
    # files: YAML with the result and curves, HDF5 with all four curves
    saved = yaml.safe_load((tmp_path / "fe.yaml").read_text())
    assert saved["result"]["temperature_K"] == pytest.approx(res["temperature_K"])
    assert set(saved["curves"]) == {"alpha", "beta"}
    with h5py.File(tmp_path / "fe.h5") as f:
        groups = sorted(f["curves"])
        assert len(groups) == 4 and groups[-1].endswith("beta")
        g = f["curves"][groups[-1]]
        assert g["temperature_K"][0] == 600.0 and g["temperature_K"][-1] == 800.0
        sub = yaml.safe_load((tmp_path / "fe_runs" / "beta_600-800K_0bar" / "free_energy.yaml").read_text())
        sweep = sub["temperature_sweep"]
        assert sweep["ensemble"] == "npt" and sweep["phase"] == "solid"      # G(T) at constant pressure
        assert g["G"][()] == pytest.approx(sweep["G"], abs=1e-12)
        assert g["volume"][()] == pytest.approx(sweep["V"], abs=1e-12)
        assert g["H"][()] == pytest.approx(sweep["H"], abs=1e-12)
        exact = [exact_g("beta", t, st_n, mass, volume) for t in g["temperature_K"][()]]
        # short sweeps of 32 atoms: both curves carry a similar few-meV bias that cancels in T*
        print("beta G - exact (eV/atom):", np.round(g["G"][()] - exact, 5))
        assert np.allclose(g["G"][()], exact, atol=3e-3)
    # 3. a second restart reads every sub-run back: the same T*, no MD
    stream = io.StringIO()
    again = _driver(tmp_path, restart=ckpt, stream=stream).run()
    assert stream.getvalue().count("finished before") == 4
    assert again["result"]["temperature_K"] == res["temperature_K"]


def test_no_crossing_within_the_attempts_is_a_clear_error_with_the_curves(tmp_path):
    body = BODY.replace("attempts = 3", "attempts = 1").replace("sweep_steps = 1200", "sweep_steps = 300") \
        .replace("switching_steps = 800", "switching_steps = 300")
    run = _driver(tmp_path, body)
    with pytest.raises(NoCrossingError, match="no crossing") as exc:
        run.run()
    msg = str(exc.value)
    print("\n" + msg)
    assert "400-600 K (above)" in msg and "no transition temperature" in msg
    saved = yaml.safe_load((tmp_path / "fe.yaml").read_text())
    assert saved["result"]["status"] == "no crossing"
    assert "temperature_K" not in saved["result"]
    assert set(saved["curves"]) == {"alpha", "beta"}
    assert saved["windows"][0]["crossing"]["extrapolated"] > 600.0


def test_a_window_already_tried_is_not_run_again(tmp_path, monkeypatch):
    """Outcomes that point both ways (the crossing 'above' 500-700 K, but alpha changes phase in
    600-800 and 700-900 K): the next window, 600-800 K, was tried; the search stops there with a
    warning instead of repeating sub-runs, and says no crossing.  Sub-runs and crossings are
    stand-ins here: the window logic is what is tested."""
    from acemd.drivers import phase_diagram
    from acemd.free_energy.phase_boundary import Crossing
    run = _driver(tmp_path, BODY.replace("attempts = 3", "attempts = 8"))
    ran = []

    def phase_curve(phase, lo, hi, pressure, done, total):
        ran.append((phase["name"], lo, hi))
        if lo >= 600.0:
            raise phase_diagram.PhaseChanged(phase["name"], f"{phase['name']} melted at {lo + 50:g} K")
        return {"window": [lo, hi]}

    def crossing(a, b):
        return Crossing(a.name, b.name, "above", (a.t_min, a.t_max), stable_below=a.name, stable_above=b.name,
                        extrapolated=a.t_max + 50.0)
    monkeypatch.setattr(run, "_phase_curve", phase_curve)
    monkeypatch.setattr(phase_diagram, "_curve", lambda name, c: type("C", (), {
        "name": name, "t_min": c["window"][0], "t_max": c["window"][1]})())
    monkeypatch.setattr(phase_diagram, "crossing", crossing)
    result = run._bracket(0.0)
    windows = [(h["window_K"], h["outcome"]) for h in run.history]
    print("\n", windows, "\n", run.warnings[-1])
    assert windows == [([400.0, 600.0], "above"), ([600.0, 800.0], "rejected"), ([500.0, 700.0], "above"),
                       ([700.0, 900.0], "rejected")]
    assert result["status"] == "no crossing"
    assert "600 - 800 K at 0 bar was tried already (outcome 'rejected')" in run.warnings[-1]
    assert [w for w in ran if w[0] == "alpha"] == [("alpha", 400.0, 600.0), ("alpha", 600.0, 800.0),
                                                    ("alpha", 500.0, 700.0), ("alpha", 700.0, 900.0)]


@pytest.mark.parametrize("old, new, error, needle", [
    ('phases = [{name = "alpha", route = "solid"}, {name = "beta", route = "solid"}]\n', "", InputError,
     "needs phases"),
    ("window = 100.0", "window = 600.0", InputError, "above 0 K"),
    ('{name = "beta", route = "solid"}', '{name = "beta", route = "solid", lattise = "bcc"}', InputError,
     "unknown key 'lattise'"),
    ('{name = "beta", route = "solid"}', '{name = "beta", route = "gas"}', ConfigError, "route must be one of"),
    ('{name = "beta", route = "solid"}', '{name = "alpha", route = "solid"}', ConfigError, "must differ"),
    ('{name = "beta", route = "solid"}', '{name = "beta", lattice = "bcc", element = "Cu"}', InputError,
     "required with structure.lattice"),
    ('mode = "transition_temperature"', 'mode = "coexistence_line"', InputError, "needs pressure_final"),
    ('mode = "transition_temperature"', 'mode = "phase_map"', InputError, "temperature_final > temperature"),
    ('mode = "transition_temperature"', 'mode = "melting_temperature"', InputError, "one solid and one liquid"),
    ("sweep_steps = 1200", "sweep_steps = 5", InputError, "sweep_steps"),
    # keys the driver sets in its sub-runs, or of another mode
    ("window = 100.0", 'window = 100.0\nphase = "liquid"', InputError, "each entry of phases has its own route"),
    ("window = 100.0", 'window = 100.0\nsweep_ensemble = "nvt"', InputError, "their sweeps are NPT"),
    ("window = 100.0", "window = 100.0\ntemperature_final = 900.0", InputError,
     "temperature_final applies to mode = \"phase_map\""),
    ("window = 100.0", "window = 100.0\npressure_final = 1e4", InputError,
     "pressure_final applies to mode = \"coexistence_line\""),
    ("window = 100.0", "window = 100.0\nstart_temperature = 650.0", InputError,
     "start_temperature applies to mode = \"coexistence_line\""),
    ("window = 100.0", "window = 100.0\nstart_temperature = -650.0", ConfigError, "start_temperature"),
])
def test_bad_phase_input_is_a_clear_error(tmp_path, old, new, error, needle):
    assert old in BODY
    with pytest.raises(error, match=needle):
        _driver(tmp_path, BODY.replace(old, new))


def test_sub_runs_are_constant_pressure_sweeps_that_pass_the_free_energy_checks(tmp_path):
    """melting_temperature: the solid swept up from the window's low end, the liquid down from its
    high end (phase = "liquid"), both NPT at the phase's pressure; coexistence_line keeps its own
    pressure_final out of the sub-runs (pressure_final there would mean a pressure_sweep)."""
    from acemd.free_energy.sweep import check_sweep
    body = BODY.replace('mode = "transition_temperature"', 'mode = "coexistence_line"') \
        .replace('phases = [{name = "alpha", route = "solid"}, {name = "beta", route = "solid"}]',
                 'phases = [{name = "fcc", route = "solid"}, {name = "melt", route = "liquid"}]') \
        .replace("attempts = 3", "attempts = 3\npressure = 1000.0\npressure_final = 20000.0")
    run = _driver(tmp_path, body)
    seen = {}
    for phase in run.phases:
        (label, folder, sub), = run._sub_runs_for(phase, 400.0, 600.0, 1000.0)
        fe = sub["free_energy"]
        check_sweep(fe, "sub-run")                          # the [free_energy] driver's own check
        seen[phase["route"]] = (label, fe["mode"], fe["phase"], fe["sweep_ensemble"], fe["temperature"],
                                fe["temperature_final"], fe["pressure"])
        for key in ("pressure_final", "pressure_steps", "window", "attempts", "phases"):
            assert key not in fe
        assert folder == tmp_path / "fe_runs" / label
    assert seen == {"solid": ("fcc_400-600K_1000bar", "temperature_sweep", "solid", "npt", 400.0, 600.0, 1000.0),
                    "liquid": ("melt_600-400K_1000bar", "temperature_sweep", "liquid", "npt", 600.0, 400.0, 1000.0)}


@pytest.mark.slow
def test_cu_i_has_no_stable_liquid_melting_temperature_ends_with_the_solid_curve(tmp_path):
    """Cu-I.yace (issue 9): the liquid collapses; the protocol stops with the message and what it computed
    (phase_check = false: with the check it stops before the solid's sweep, test_phase_checks.py)."""
    from acemd.drivers.free_energy import NoStableLiquidError
    body = """
mode = "melting_temperature"
temperature = 1300.0
window = 100.0
timestep = 0.002
npt_steps = 100
npt_max_blocks = 1
pressure_tolerance = 1e9
spring_steps = 100
n_iterations = 2
equilibration_steps = 50
switching_steps = 150
sweep_steps = 150
sweep_points = 5
melt_temperature = 3600.0
melt_steps = 3000
quench_steps = 500
attempts = 1
progress_every = 1000000
phase_check = false
"""
    settings, text, path = _input(tmp_path, body, repeat=2, a=3.62)
    stream = io.StringIO()
    with pytest.raises(NoStableLiquidError, match="no stable liquid") as exc:
        PhaseDiagramRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream).run()
    msg = str(exc.value)
    print("\n" + msg)
    assert "without a melting temperature" in msg and "fe.yaml" in msg
    saved = yaml.safe_load((tmp_path / "fe.yaml").read_text())
    assert saved["result"]["status"] == "no stable liquid"
    assert "temperature_K" not in saved["result"]
    solid = saved["curves"]["solid"]
    assert solid["temperature_K"] == [1200.0, 1250.0, 1300.0, 1350.0, 1400.0]
    assert all(-4.5 < g < -3.5 for g in solid["G"])
    with h5py.File(tmp_path / "fe.h5") as f:
        assert list(f["curves"]) == ["001_solid"]


def test_phase_map_and_coexistence_line_of_two_harmonic_phases(tmp_path):
    """phase_map over 500-900 K: alpha then beta with the transition at the exact T*;
    coexistence_line from T* with analytic state points (constant dV, dH): T(P) = T* exp(dV P / dH)."""
    from acemd.units import EV_PER_A3_TO_BAR
    short = BODY.replace("sweep_steps = 1200", "sweep_steps = 800")
    t_exact = exact_crossing(32, 63.546, 3.61 ** 3 * 8)
    m = _driver(tmp_path / "map", short.replace('mode = "transition_temperature"', 'mode = "phase_map"')
                .replace("temperature = 500.0", "temperature = 500.0\ntemperature_final = 900.0")
                .replace("sweep_points = 5", "sweep_points = 9")).run()
    res = m["result"]
    print(f"\nphase map segments {[(round(s['from_K']), round(s['to_K']), s['phase']) for s in res['segments']]}, "
          f"exact T* {t_exact:.1f} K")
    assert [s["phase"] for s in res["segments"]] == ["alpha", "beta"]
    assert res["transitions"][0]["temperature_K"] == pytest.approx(t_exact, abs=max(4 * res["transitions"][0]["error_K"], 3))
    with h5py.File(tmp_path / "map" / "fe.h5") as f:
        assert list(f["phase_map"].attrs["phases"]) == ["alpha", "beta"]
        assert f["phase_map/stable_index"][0] == 0 and f["phase_map/stable_index"][-1] == 1
    dv, dh = 0.5, 0.06
    run = _driver(tmp_path / "line", short.replace('mode = "transition_temperature"', 'mode = "coexistence_line"')
                  .replace("temperature = 500.0", "temperature = 700.0")
                  .replace("attempts = 3", "attempts = 1\npressure_final = 20000.0\npressure_steps = 2"))
    run._state_point = lambda name, T, P: {"volume": 10.0 + (dv if name == "beta" else 0.0),
                                           "enthalpy": -3.0 + (dh if name == "beta" else 0.0),
                                           "volume_error": 0.0, "enthalpy_error": 0.0}
    line = run.run()["result"]["coexistence_line"]
    t0 = line["temperature_K"][0]
    exact = t0 * np.exp(dv * np.array(line["pressure_bar"]) / (dh * EV_PER_A3_TO_BAR))
    print(f"coexistence line: {list(zip(line['pressure_bar'], np.round(line['temperature_K'], 3)))}")
    assert line["pressure_bar"] == [0.0, 10000.0, 20000.0]
    assert np.allclose(line["temperature_K"], exact, rtol=1e-7)
    assert len(line["state_points"]) == 2 * 4                # four RK4 stages per step
    with h5py.File(tmp_path / "line" / "fe.h5") as f:
        assert np.allclose(f["coexistence_line/temperature_K"][()], line["temperature_K"])


def test_coexistence_line_from_a_given_start_temperature(tmp_path):
    """start_temperature: no window is swept; the first state point says which phase is stable
    above (here alpha, the higher enthalpy), and the line is T(P) = T0 exp(dV P / dH) with dV, dH of
    alpha - beta; the start's error is carried as T(P)/T0 times it."""
    from acemd.units import BOLTZMANN, EV_PER_A3_TO_BAR
    dv, dh, t0, t0_err = 0.4, 0.05, 612.5, 3.0
    run = _driver(tmp_path, BODY.replace('mode = "transition_temperature"', 'mode = "coexistence_line"')
                  .replace("attempts = 3", f"attempts = 3\npressure = 1000.0\npressure_final = 11000.0\n"
                                           f"pressure_steps = 2\nstart_temperature = {t0}\n"
                                           f"start_temperature_error = {t0_err}"))
    seen = []

    def state_point(name, T, P):
        seen.append((name, T, P))
        return {"volume": 10.0 + (dv if name == "alpha" else 0.0), "enthalpy": -3.0 + (dh if name == "alpha" else 0.0),
                "volume_error": 0.0, "enthalpy_error": 0.0}
    run._state_point = state_point
    run._phase_curve = lambda *a, **k: pytest.fail("a window was swept although start_temperature was given")
    report = run.run()
    res = report["result"]
    line = res["coexistence_line"]
    exact = t0 * np.exp(dv * (np.array(line["pressure_bar"]) - 1000.0) / (dh * EV_PER_A3_TO_BAR))
    print(f"\ngiven start: {list(zip(line['pressure_bar'], np.round(line['temperature_K'], 3)))}")
    assert (res["status"], res["stable_below"], res["stable_above"]) == ("given", "beta", "alpha")
    assert seen[:2] == [("alpha", t0, 1000.0), ("beta", t0, 1000.0)]
    assert line["pressure_bar"] == [1000.0, 6000.0, 11000.0]
    assert np.allclose(line["temperature_K"], exact, rtol=1e-7)
    assert np.allclose(line["error_K"], t0_err * exact / t0)
    assert res["latent_heat_eV_atom"] == pytest.approx(dh)
    assert res["delta_volume_A3_atom"] == pytest.approx(dv)
    assert res["delta_entropy_kB_atom"] == pytest.approx(dh / (t0 * BOLTZMANN))
    assert report["windows"] == []
    saved = yaml.safe_load((tmp_path / "fe.yaml").read_text())
    assert saved["result"]["temperature_K"] == t0 and saved["result"]["status"] == "given"
    with h5py.File(tmp_path / "fe.h5") as f:
        assert np.allclose(f["coexistence_line/temperature_K"][()], line["temperature_K"])


def test_restart_signature_tolerates_a_newer_default_key_and_refuses_a_changed_value(tmp_path):
    """A checkpoint written before a [free_energy] key existed restarts when the key holds its default;
    any changed value (or a new key away from its default) is refused."""
    from acemd.drivers.phase_diagram import _same_settings
    run = _driver(tmp_path)
    current = run.signature
    sig = json.loads(current)
    older = dict(sig, free_energy={k: v for k, v in sig["free_energy"].items()
                                   if k not in ("start_temperature", "start_temperature_error")})
    assert "start_temperature_error" in sig["free_energy"]
    assert _same_settings(json.dumps(older), current)
    changed = dict(sig, free_energy=dict(sig["free_energy"], window=50.0))
    assert not _same_settings(json.dumps(changed), current)
    off_default = dict(sig, free_energy=dict(sig["free_energy"], start_temperature_error=2.0))
    assert not _same_settings(json.dumps(older), json.dumps(off_default))
    other_phases = dict(sig, phases=sig["phases"][:1])
    assert not _same_settings(json.dumps(other_phases), current)
    # the driver refuses a checkpoint whose settings differ
    ckpt = tmp_path / "old.ckpt.h5"
    with h5py.File(ckpt, "w") as f:
        f.attrs["phase_protocol"] = json.dumps({"signature": json.dumps(changed), "history": [], "version": "0"})
    with pytest.raises(InputError, match="differ from the run that wrote it"):
        _driver(tmp_path, restart=str(ckpt))
