"""[free_energy] mode = "temperature_sweep": reversible scaling.

* The closed form F(T) = (T/T0)[F(T0) + W] + (3/2) kB T ln(T0/T) against the exact
  harmonic crystal with the exact <U>, independently of any dynamics.
* A harmonic crystal (centre-of-mass-free springs k_h as "the potential") through the
  whole mode: the swept F(T) from 500 K to 1000 K equals the exact fixed-centre-of-mass
  Einstein free energy F_E(T) + F_CM(T) within its error, the forward-only and
  backward-only curves bracket it within the hysteresis, and the hysteresis falls as the
  sweep slows.
* Bad input: temperature_final = temperature, negative temperature_final, none.
* Restart: SIGUSR1 inside an NPT sweep and inside an NVT sweep, --restart, the same curve.
"""
import io

import h5py
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from acemd.config import ConfigError
from acemd.drivers.free_energy import FreeEnergyRun
from acemd.free_energy.reference import com_correction, einstein_free_energy
from acemd.free_energy.sweep import SweepRecord, free_energy_curve, lambda_path, sweep_works
from acemd.simulation import InputError
from acemd.units import BOLTZMANN

from test_solid_route import _harmonic_run, _input

T0, TF, K_H = 500.0, 1000.0, 2.0

SWEEP = f"""
mode = "temperature_sweep"
sweep_ensemble = "nvt"
temperature = {T0}
temperature_final = {TF}
npt = false
timestep = 0.002
damping = 0.05
spring_constants = {{Cu = {K_H}}}
n_iterations = 2
equilibration_steps = 300
switching_steps = 1000
sweep_steps = 3000
sweep_points = 6
progress_every = 100000
"""


def _exact(T, n, masses, volume, k=K_H):
    return einstein_free_energy(T, [k], masses, [n]) + com_correction(T, [k], masses, [n], volume)


def test_closed_form_reproduces_the_harmonic_crystal():
    """<U>_lambda = (3(N-1)/2) kB T0 / lambda for COM-free springs: W = (3(N-1)/2N) kB T0 ln lambda."""
    n, masses, volume = 108, [63.546], 1270.0
    temps = np.linspace(300.0, 1500.0, 7)
    lam = T0 / temps
    work = 1.5 * (n - 1) / n * BOLTZMANN * T0 * np.log(lam)
    got = free_energy_curve(_exact(T0, n, masses, volume), T0, temps, work)
    exact = [_exact(t, n, masses, volume) for t in temps]
    assert np.allclose(got, exact, atol=1e-12, rtol=0)


def test_sweep_works_of_a_reversible_path_cancel_the_hysteresis():
    """U = c / lambda on both paths (no lag): W_fw = -W_bw = c ln lambda, hysteresis 0."""
    c = 7.0
    fw_lam, bw_lam = lambda_path(T0, TF, 4000), lambda_path(T0, TF, 4000, forward=False)
    fw, bw = SweepRecord(fw_lam, c / fw_lam), SweepRecord(bw_lam, c / bw_lam)
    grid = T0 / np.linspace(T0, TF, 5)
    w_fw, w_bw = sweep_works(fw, bw, grid)
    assert np.allclose(w_fw, c * np.log(grid), atol=1e-6)
    assert np.allclose(w_bw, -c * np.log(grid), atol=1e-6)


def _sweep_run(tmp_path, body):
    run, stream = _harmonic_run(tmp_path, K_H, body)
    report = run.run()
    return run, report, stream.getvalue()


def test_harmonic_crystal_sweep_equals_the_analytic_curve(tmp_path):
    run, report, out = _sweep_run(tmp_path, SWEEP)
    st = run.simulation.state
    n = st.n_atoms_total
    c = report["temperature_sweep"]
    temps = np.array(c["temperature"])
    f, err = np.array(c["F"]), np.array(c["F_error"])
    f_fw, f_bw, hyst = (np.array(c[k]) for k in ("G_forward", "G_backward", "hysteresis"))    # P = 0: G = F
    exact = np.array([_exact(t, n, st.masses_by_species, st.volume) for t in temps])
    print("\n" + "\n".join(out.splitlines()[-(len(temps) + 4):]))
    print("T (K), F - exact (eV/atom):", ", ".join(f"{t:.0f} {d:+.1e}" for t, d in zip(temps, f - exact)))
    assert temps[0] == T0 and temps[-1] == TF
    assert f[0] == pytest.approx(report["acemd"]["helmholtz_free_energy"], abs=1e-12)
    assert np.all(np.abs(f - exact) < np.maximum(4 * err, 3e-4))
    # forward and backward agree within the hysteresis (+ the statistical error)
    assert np.all(np.abs(f_fw - exact) <= 2 * np.abs(hyst) + np.maximum(4 * err, 3e-4))
    assert np.all(np.abs(f_bw - exact) <= 2 * np.abs(hyst) + np.maximum(4 * err, 3e-4))
    # entropy and heat capacity of the harmonic crystal (fixed centre of mass): S/kB = 3 ln(kB T / hbar
    # omega) + 3 + O(ln N / N), Cp = Cv = 3 - 3/(2N) kB per atom; derivatives of the exact F by differences
    h = 0.5

    def f_ex(t):
        return _exact(t, n, st.masses_by_species, st.volume)
    s_exact = np.array([-(f_ex(t + h) - f_ex(t - h)) / (2 * h) for t in temps]) / BOLTZMANN
    cv_exact = np.array([-t * (f_ex(t + h) - 2 * f_ex(t) + f_ex(t - h)) / h ** 2 for t in temps]) / BOLTZMANN
    print("S - exact (kB/atom):", np.round(np.array(c["S"]) - s_exact, 4), "+-", np.round(c["S_error"], 4))
    print("Cv - exact (kB/atom):", np.round(np.array(c["Cp"]) - cv_exact, 4), "+-", np.round(c["Cp_error"], 4))
    assert np.all(np.abs(np.array(c["S"]) - s_exact) < np.maximum(4 * np.array(c["S_error"]), 0.03))
    assert np.all(np.abs(np.array(c["Cp"]) - cv_exact) < np.maximum(4 * np.array(c["Cp_error"]), 0.1))
    assert np.allclose(c["H"], f + temps * np.array(c["S"]) * BOLTZMANN, atol=2e-3)      # E = F + T S (fit)
    # report and data file
    saved = yaml.safe_load((tmp_path / "fe.yaml").read_text())
    assert saved["temperature_sweep"]["F"] == pytest.approx(list(f))
    with h5py.File(tmp_path / "fe.h5") as h:
        fw = h["temperature_sweep/iteration_001/forward"]
        assert fw["temperature_K"][0] == pytest.approx(T0) and fw["temperature_K"][-1] == pytest.approx(TF)
        assert len(fw["U"]) == 3001
        assert np.allclose(h["temperature_sweep/curve/F"][()], f)


def test_hysteresis_falls_as_the_sweep_slows(tmp_path):
    fast_report = _sweep_run(tmp_path / "fast", SWEEP.replace("sweep_steps = 3000", "sweep_steps = 150")
                             .replace("damping = 0.05", "damping = 0.5"))[1]
    slow_report = _sweep_run(tmp_path / "slow", SWEEP.replace("damping = 0.05", "damping = 0.5"))[1]
    fast, slow = fast_report["temperature_sweep"], slow_report["temperature_sweep"]
    hf, hs = abs(fast["hysteresis"][-1]), abs(slow["hysteresis"][-1])
    print(f"\nhysteresis at {TF:g} K: 150-step sweep {hf:.2e}, 3000-step sweep {hs:.2e} eV/atom")
    assert hs < hf
    # above max_dissipation (5 meV/atom) the fast sweep is flagged, the slow one is not
    assert hf > 0.005 > hs
    assert any("sweep more slowly" in w for w in fast_report["acemd"]["warnings"])
    assert not any("sweep more slowly" in w for w in slow_report["acemd"]["warnings"])


@pytest.mark.parametrize("old, new, error, needle", [
    (f"temperature_final = {TF}", f"temperature_final = {T0}", InputError, "equals temperature"),
    (f"temperature_final = {TF}", "temperature_final = -100.0", ConfigError, "temperature_final"),
    (f"temperature_final = {TF}", "", InputError, "needs temperature_final"),
    ("sweep_points = 6", "sweep_points = 1", InputError, "sweep_points"),
    ("sweep_steps = 3000", "sweep_steps = 5", InputError, "sweep_steps"),
])
def test_bad_sweep_input_is_a_clear_error(tmp_path, old, new, error, needle):
    with pytest.raises(error, match=needle) as exc:
        settings, text, path = _input(tmp_path, SWEEP.replace(old, new))
        FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    assert "fe.toml" in str(exc.value)


def test_negative_temperature_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="temperature"):
        _input(tmp_path, SWEEP.replace(f"temperature = {T0}", "temperature = -5.0"))


@pytest.mark.parametrize("ensemble,stage,at_step", [("npt", "sweep 1 800 K -> 1000 K", 60),
                                                    ("npt", "sweep 2 1000 K -> 800 K", 30),
                                                    ("nvt", "sweep 1 1000 K -> 800 K", 70),
                                                    ("nvt", "sweep 2 800 K -> 1000 K", 40)])
def test_sweep_interrupted_and_restarted_equals_the_uninterrupted_one(tmp_path, ensemble, stage, at_step):
    """Cu-I.yace, 32 atoms, NPT sweep (G(T)) and NVT sweep (F(T) at the start's volume): SIGUSR1
    inside a sweep, --restart, the same curve to 1e-10."""
    from test_solid_route import RESTART_BODY, _run_with_signal
    body = RESTART_BODY + (f'mode = "temperature_sweep"\nsweep_ensemble = "{ensemble}"\n'
                           'temperature_final = 1000.0\nsweep_steps = 120\nsweep_points = 5\n')
    straight = _run_with_signal(tmp_path / "straight", None, 0, body=body)
    stopped = _run_with_signal(tmp_path / "split", stage, at_step, body=body)
    assert stopped["stopped_by"] == "signal" and stopped["stage"] == stage
    resumed = _run_with_signal(tmp_path / "split", None, 0, restart=str(tmp_path / "split" / "free_energy.ckpt.h5"),
                               body=body)
    a, b = straight["temperature_sweep"], resumed["temperature_sweep"]
    key = "G" if ensemble == "npt" else "F"
    print(f"\n{ensemble} sweep, SIGUSR1 in '{stage}': {key}(1000 K) straight {a[key][-1]:.12f}, "
          f"restarted {b[key][-1]:.12f} eV/atom")
    assert a["ensemble"] == b["ensemble"] == ensemble
    assert b[key] == pytest.approx(a[key], abs=1e-10)
    assert b["hysteresis"] == pytest.approx(a["hysteresis"], abs=1e-10)


def test_thermo_fit_is_exact_for_the_classical_harmonic_crystal_and_calphad_curves():
    """G = U0 - 3 kB T ln(kB T / hbar omega) is the 3-term CALPHAD form: S, H, Cp exact; a 5-term
    curve is recovered by the 5-term fit (S, H, Cp against the analytic derivatives)."""
    from acemd.free_energy.thermo_fit import fit_thermo, thermo_over_iterations
    k = BOLTZMANN
    t = np.linspace(300.0, 1500.0, 13)
    g = -3.5 - 3 * k * t * np.log(k * t / 0.03)
    for n_terms in (3, 4, 5):
        g_fit, s, h, cp = fit_thermo(t, g, n_terms)
        assert np.allclose(g_fit, g, atol=1e-10)
        assert np.allclose(s, 3 * np.log(k * t / 0.03) + 3, atol=1e-6)
        assert np.allclose(h, -3.5 + 3 * k * t, atol=1e-8)
        assert np.allclose(cp, 3.0, atol=1e-5)
    a, b, c, d, e = -4.0, 2e-3, -3e-4, -1e-7, 2e-11
    g = a + b * t + c * t * np.log(t) + d * t ** 2 + e * t ** 3
    _, s, h, cp = fit_thermo(t, g, 5)
    assert np.allclose(s * k, -(b + c * (np.log(t) + 1) + 2 * d * t + 3 * e * t ** 2), atol=1e-9)
    assert np.allclose(h, a - c * t - d * t ** 2 - 2 * e * t ** 3, atol=1e-8)
    assert np.allclose(cp * k, -c - 2 * d * t - 6 * e * t ** 2, atol=1e-9)
    # errors from the spread over iterations: two curves offset by +-delta T give S +- delta
    delta = 1e-5
    out = thermo_over_iterations(t, [g + delta * t, g - delta * t], 5)
    assert np.allclose(out["S"], s, atol=1e-6) and np.allclose(out["S_error"], delta / k, rtol=1e-6)
