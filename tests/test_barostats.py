"""NPT ensembles: MTK (iso, aniso, triclinic), stochastic cell rescaling (iso, aniso), Berendsen.

* Sampling, in the manner of physical_validation (Merz and Shirts, PLoS ONE 13,
  e0202764 (2018)): two runs at the same temperature and pressures P1 < P2 have
  volume distributions whose log-ratio is exactly linear,
  ln p1(V)/p2(V) = c - (P1 - P2) V / kT.  The slope is estimated by maximum
  likelihood (logistic regression of "which run produced this volume") and must
  equal (P2 - P1)/kT within 3 standard errors (inflated by the statistical
  inefficiency of the volume series).  The same runs give the compressibility
  twice, from the volume fluctuations (Var V / (kT <V>)) and from the change of
  <V> between the pressures; both must agree.  Berendsen coupling, which does not
  sample NPT, fails the same check.  The kinetic energy is checked against its
  canonical gamma distribution on the same runs.
* These long runs use the cheap Morse model term of tests/test_thermostats.py.
* MTK: the conserved quantity's error scales with dt^2 (ACE Cu-I).
* Every NPT ensemble runs with ACE through MDRun, reaches the target pressure and
  restarts onto the same trajectory (cell and barostat variables in the checkpoint).
"""
import math

import numpy as np
import pytest

from acemd.config import ConfigError, load_config
from acemd.drivers.md import InputError
from acemd.forcefield import ACETerm
from acemd.integrators import (INTEGRATORS, BerendsenEquilibration, MTKBarostat,
                               StochasticCellRescaling)
from acemd.io.thermo import read_thermo
from acemd.units import BOLTZMANN, EV_PER_A3_TO_BAR

from engine_helpers import POTENTIALS, assert_same_trajectory, write_input
from test_thermostats import _make_run, block_t_test, make_engine

NPT = ("npt-mtk", "npt-crescale", "berendsen-equilibration")
T_TARGET = 600.0
DT = 0.002
P_LOW, P_HIGH = -6000.0, 6000.0          # bar; <V> differs by ~1.5 standard deviations


# --------------------------------------------------------------------------- statistics
def _block_inefficiency(x, n_blocks):
    means = np.array([b.mean() for b in np.array_split(x, n_blocks)])
    return len(x) / n_blocks * means.var(ddof=1) / x.var()


def statistical_inefficiency(x, n_blocks=20):
    """g >= 1, the stride between independent samples: the larger of the block estimates for x
    and for (x - <x>)^2 (an oscillating volume decorrelates fast, its amplitude slowly)."""
    x = np.asarray(x, dtype=float)
    return max(1.0, _block_inefficiency(x, n_blocks), _block_inefficiency((x - x.mean()) ** 2, n_blocks))


def likelihood_slope(v1, v2, g1, g2):
    """Maximum-likelihood slope b of ln p1(V)/p2(V) = a + b V, and its standard error.

    Logistic regression of the label (1: sample from run 1) on V; the Fisher
    standard error is inflated by the statistical inefficiencies.
    """
    v = np.concatenate([v1, v2])
    y = np.concatenate([np.ones(len(v1)), np.zeros(len(v2))])
    centre, scale = v.mean(), v.std()
    x = np.column_stack([np.ones_like(v), (v - centre) / scale])
    w = np.zeros(2)
    w[0] = math.log(len(v1) / len(v2))
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -500, 500)))
        grad = x.T @ (y - p)
        hess = (x * (p * (1 - p))[:, None]).T @ x
        step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
        w += step
        if np.abs(step).max() < 1e-10 or abs(w[1]) > 1e3:
            break
    p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -500, 500)))
    cov = np.linalg.inv((x * (p * (1 - p))[:, None]).T @ x + 1e-12 * np.eye(2))
    g = 0.5 * (g1 + g2)
    return w[1] / scale, math.sqrt(cov[1, 1] * g) / scale


def sample_npt(make_integrator, pressure_bar, n_equil=1500, n_sample=15000):
    """Volumes and kinetic energies of 32 Morse Cu atoms at T_TARGET and ``pressure_bar``."""
    engine = make_engine(temperature=T_TARGET)
    integ = make_integrator(pressure_bar)
    integ.setup(engine)
    for _ in range(n_equil):
        integ.step(engine)
    volume = np.empty(n_sample)
    kinetic = np.empty(n_sample)
    for k in range(n_sample):
        integ.step(engine)
        volume[k] = engine.state.volume
        kinetic[k] = 0.5 * np.trace(engine.kinetic_tensor())
    return volume, kinetic, engine


def _mtk(coupling="iso"):
    return lambda p: MTKBarostat(DT, T_TARGET, p, damping=0.05, barostat_damping=0.1, coupling=coupling)


def _crescale(coupling="iso"):
    return lambda p: StochasticCellRescaling(DT, T_TARGET, p, damping=0.05, barostat_damping=0.1,
                                             coupling=coupling, compressibility_per_bar=2.5e-6, seed=17)


def _berendsen(p):
    return BerendsenEquilibration(DT, T_TARGET, p, damping=0.05, barostat_damping=0.1,
                                  compressibility_per_bar=2.5e-6, seed=17)


def volume_check(make_integrator, label, n_sample=15000):
    """Run P_LOW and P_HIGH; return the figures of the physical_validation-style check."""
    kt = BOLTZMANN * T_TARGET
    v1, k1, eng = sample_npt(make_integrator, P_LOW, n_sample=n_sample)
    v2, k2, _ = sample_npt(make_integrator, P_HIGH, n_sample=n_sample)
    g1, g2 = statistical_inefficiency(v1), statistical_inefficiency(v2)
    slope, se = likelihood_slope(v1, v2, g1, g2)
    dp = (P_HIGH - P_LOW) / EV_PER_A3_TO_BAR                      # eV/Å^3
    expected = dp / kt
    # compressibility from the fluctuations (mean of both runs) and from the two means
    beta_fluct = 0.5 * (v1.var() / v1.mean() + v2.var() / v2.mean()) / kt
    beta_means = (v1.mean() - v2.mean()) / (0.5 * (v1.mean() + v2.mean())) / dp
    se_means = math.sqrt(v1.var() * g1 / len(v1) + v2.var() * g2 / len(v2)) / (0.5 * (v1.mean() + v2.mean())) / dp
    # the relative error of a variance from n_eff samples is sqrt(2 / n_eff)
    se_fluct = beta_fluct * math.sqrt(2.0 / (len(v1) / g1 + len(v2) / g2))
    dof = eng.degrees_of_freedom()
    ke = np.concatenate([k1, k2])
    ke_mean, _, ke_tol = block_t_test(ke, 0.5 * dof * kt)
    out = {"slope": slope, "se": se, "expected": expected, "sigmas": (slope - expected) / se,
           "beta_fluct": beta_fluct, "se_fluct": se_fluct, "beta_means": beta_means, "se_means": se_means,
           "ke_ratio": ke_mean / (0.5 * dof * kt), "ke_tol": ke_tol / (0.5 * dof * kt),
           "g": (g1, g2), "v_mean": (v1.mean(), v2.mean()), "v_std": (v1.std(), v2.std())}
    print(f"\n{label}: 32 atoms, {T_TARGET:.0f} K, P = {P_LOW:.0f} / {P_HIGH:.0f} bar, "
          f"{n_sample} steps each: <V> = {out['v_mean'][0]:.2f} / {out['v_mean'][1]:.2f} A^3, "
          f"std {out['v_std'][0]:.2f} / {out['v_std'][1]:.2f}, g = {g1:.0f} / {g2:.0f} steps\n"
          f"  ML slope of ln p1/p2: {slope:.4f} +- {se:.4f} 1/A^3, expected dP/kT = {expected:.4f} "
          f"({out['sigmas']:+.2f} sigma)\n"
          f"  compressibility: fluctuations {beta_fluct / EV_PER_A3_TO_BAR * 1e6:.3f} +- "
          f"{se_fluct / EV_PER_A3_TO_BAR * 1e6:.3f}, two pressures {beta_means / EV_PER_A3_TO_BAR * 1e6:.3f} "
          f"+- {se_means / EV_PER_A3_TO_BAR * 1e6:.3f} (1e-6/bar)\n"
          f"  <K>/<K>_canonical = {out['ke_ratio']:.4f} (+-{out['ke_tol']:.4f} at 99.9%)")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("label,factory", [("npt-mtk iso", _mtk()), ("npt-crescale iso", _crescale())])
def test_volume_distribution_is_isothermal_isobaric(label, factory):
    out = volume_check(factory, label)
    assert abs(out["sigmas"]) < 3.0
    diff = out["beta_fluct"] - out["beta_means"]
    assert abs(diff) < 3.0 * math.hypot(out["se_fluct"], out["se_means"])
    assert abs(out["ke_ratio"] - 1.0) < out["ke_tol"]


def _pressure(engine):
    return np.trace(engine.kinetic_tensor() + engine.virial) / 3.0 / engine.state.volume      # eV/A^3


def test_crescale_pressure_relaxes_in_barostat_damping_times_compressibility_ratio():
    """Stochastic cell rescaling is first order: d ln V/dt = (beta/tau_p)(P - P0), so with
    P - P_eq = -B ln(V/V_eq) the pressure relaxes as exp(-t/tau) with tau = tau_p / (beta B).
    32 Morse atoms at 0.01 K (the volume noise, sqrt(kT beta / V), is then 0.6 % of the 1 % step),
    target 1 % of B above the start pressure; B from finite differences of the pressure;
    beta = 1/B and 2/B give tau_p and tau_p/2."""
    tau_p = 0.1
    temperature = 0.01
    engine = make_engine(temperature=temperature, rattle=0.0)
    st = engine.state
    cell0, pos0 = st.cell.copy(), st.positions.copy()
    p = []
    for d in (1e-3, -1e-3):
        s = (1.0 + d) ** (1.0 / 3.0)
        st.positions = pos0 * s
        engine.set_cell(cell0 * s)
        engine.compute_forces(force_rebuild=True)
        p.append(_pressure(engine))
    bulk = -(p[0] - p[1]) / 2e-3                                          # eV/A^3
    for ratio in (1.0, 2.0):
        engine = make_engine(temperature=temperature, rattle=0.0)
        target = _pressure(engine) + 0.01 * bulk
        integ = StochasticCellRescaling(DT, temperature, target * EV_PER_A3_TO_BAR, damping=0.05, barostat_damping=tau_p,
                                        coupling="iso", compressibility_per_bar=ratio / (bulk * EV_PER_A3_TO_BAR),
                                        seed=3)
        integ.setup(engine)
        excess = []
        for _ in range(int(round(2.0 * tau_p / ratio / DT))):
            integ.step(engine)
            excess.append(_pressure(engine) - target)
        t = DT * np.arange(1, len(excess) + 1)
        keep = t > 0.3 * tau_p / ratio
        slope = np.polyfit(t[keep], np.log(np.abs(excess)[keep]), 1)[0]
        print(f"\nnpt-crescale, beta B = {ratio:g}: pressure relaxation time {-1e3 / slope:.1f} fs, predicted "
              f"{1e3 * tau_p / ratio:.1f} fs (B = {bulk * EV_PER_A3_TO_BAR / 1e4:.1f} GPa)")
        assert -1.0 / slope == pytest.approx(tau_p / ratio, rel=0.1)


@pytest.mark.slow
def test_berendsen_fails_the_volume_check():
    """The check can fail: Berendsen's volume fluctuations are far too small (the two volume
    distributions hardly overlap, so the likelihood slope runs away as well)."""
    out = volume_check(_berendsen, "berendsen-equilibration", n_sample=6000)
    assert out["beta_fluct"] < 0.5 * out["beta_means"]
    assert abs(out["beta_fluct"] - out["beta_means"]) > 5.0 * math.hypot(out["se_fluct"], out["se_means"])
    assert out["slope"] > 2.0 * out["expected"]


@pytest.mark.slow
@pytest.mark.parametrize("label,factory", [("npt-mtk aniso", _mtk("aniso")), ("npt-mtk triclinic", _mtk("triclinic")),
                                           ("npt-crescale aniso", _crescale("aniso"))])
def test_anisotropic_coupling_balances_every_stress_component(label, factory):
    """ACE Cu-I, 32 atoms, 600 K, 0 bar: the time-averaged pressure tensor equals the target in every
    coupled component (the generalized virial theorem of the NPT/NsT ensemble), the cell changes
    shape, and the MTK barostat's kinetic energy is k_B T / 2 per degree of freedom."""
    engine = make_engine(ACETerm(POTENTIALS / "Cu-I.yace"), temperature=T_TARGET)
    integ = factory(0.0)
    integ.setup(engine)
    for _ in range(1000):
        integ.step(engine)
    n = 5000
    pressure = np.empty((n, 3, 3))
    cells = np.empty((n, 3, 3))
    barostat_ke = np.empty(n)
    for k in range(n):
        integ.step(engine)
        pressure[k] = engine.thermo()["pressure_tensor"]
        cells[k] = engine.state.cell
        if isinstance(integ, MTKBarostat):
            barostat_ke[k] = 0.5 * integ.barostat_mass(engine) * (integ.g ** 2).sum()
    blocks = np.array(np.array_split(pressure, 10))
    means = np.array([b.mean(0) for b in blocks])
    mean, se = means.mean(0), means.std(0, ddof=1) / math.sqrt(10)
    coupled = [(0, 0), (1, 1), (2, 2)] + ([(0, 1), (0, 2), (1, 2)] if "triclinic" in label else [])
    print(f"\n{label} (ACE Cu-I, 32 atoms, {T_TARGET:.0f} K, 0 bar, {n} steps): mean pressure tensor (bar)\n"
          f"{np.round(mean, 0)}\n+-\n{np.round(se, 0)}")
    for a, b in coupled:
        assert abs(mean[a, b]) < max(3.5 * se[a, b], 300.0), (a, b)
    shear = np.abs(cells * (1.0 - np.eye(3))).max(axis=(1, 2))
    if "triclinic" in label:
        assert shear.max() > 1e-3                                      # the shape moved ...
        assert shear.max() < 0.5                                       # ... and stayed fcc
        dof = 6
    else:
        assert shear.max() == 0.0
        assert np.ptp(cells[:, 0, 0] - cells[:, 1, 1]) > 1e-3         # axes move independently
        dof = 3
    if isinstance(integ, MTKBarostat):
        ratio = barostat_ke.mean() / (0.5 * dof * BOLTZMANN * T_TARGET)
        print(f"barostat kinetic energy / (dof kT / 2) = {ratio:.3f}")
        assert abs(ratio - 1.0) < 0.2


# --------------------------------------------------------------------------- MTK integration error
def test_mtk_conserved_quantity_error_scales_with_dt_squared():
    """ACE Cu-I, 32 atoms, 600 K, 0 bar, 0.4 ps after 0.1 ps: RMS of H(t) - H(0) grows 4x from 1 to 2 fs."""
    term = ACETerm(POTENTIALS / "Cu-I.yace")
    rms = {}
    for dt in (0.001, 0.002):
        engine = make_engine(term, temperature=600.0)
        integ = MTKBarostat(dt, 600.0, 0.0, damping=0.05, barostat_damping=0.1, coupling="triclinic")
        integ.setup(engine)
        h = []
        v0 = engine.state.volume
        for k in range(int(round(0.5 / dt))):
            integ.step(engine)
            if k * dt >= 0.1:
                th = engine.thermo()
                h.append(th["total_energy"] + integ.conserved_extra(engine))
        h = np.array(h)
        rms[dt] = float(np.sqrt(np.mean((h - h[0]) ** 2)))
        assert abs(engine.state.volume - v0) > 1e-3 * v0            # the cell did move
    ratio = rms[0.002] / rms[0.001]
    print(f"\nMTK (triclinic) conserved quantity RMS error: {rms[0.001]:.2e} eV (1 fs), {rms[0.002]:.2e} eV "
          f"(2 fs), ratio {ratio:.2f} (dt^2: 4)")
    assert 3.2 < ratio < 4.8
    assert rms[0.001] < 2e-3


def test_neighbour_list_follows_the_cell():
    """After a cell deformation the engine's forces equal those of a fresh rebuild; small
    deformations keep the list, large ones (images moving by more than the skin) rebuild it."""
    engine = make_engine(repeat=3, temperature=300.0)
    rng = np.random.default_rng(5)
    rebuilt = {}
    for strain in (0.005, 0.03, 0.12):
        deform = np.eye(3) + strain * rng.uniform(-1, 1, (3, 3))
        deform = 0.5 * (deform + deform.T)
        st = engine.state
        st.positions = st.positions @ deform
        rebuilds = engine.n_rebuilds
        engine.set_cell(st.cell @ deform)
        engine.compute_forces()
        rebuilt[strain] = engine.n_rebuilds > rebuilds
        forces = engine.forces[np.argsort(st.ids)]
        energy = engine.potential_energy
        engine.compute_forces(force_rebuild=True)
        fresh = engine.forces[np.argsort(engine.state.ids)]
        print(f"strain {strain}: rebuilt {rebuilt[strain]}, |dF| {np.abs(fresh - forces).max():.1e} eV/A")
        assert energy == pytest.approx(engine.potential_energy, abs=1e-10)
        np.testing.assert_allclose(forces, fresh, atol=1e-10)
    assert not rebuilt[0.005] and rebuilt[0.12]


# --------------------------------------------------------------------------- with ACE, via MDRun
def _npt_input(folder, ensemble, *, pressure=0.0, coupling="iso", steps=40, thermo_every=5,
               barostat_damping=0.1, extra_barostat="", a=3.6, **kwargs):
    path = write_input(folder, temperature=300.0, steps=steps, thermo_every=thermo_every, a=a,
                       extra=f"[thermostat]\ntemperature = 300.0\ndamping = 0.05\n"
                             f"[barostat]\npressure = {pressure}\ndamping = {barostat_damping}\n"
                             f'coupling = "{coupling}"\n{extra_barostat}', **kwargs)
    path.write_text(path.read_text().replace("[md]\n", f'[md]\nensemble = "{ensemble}"\n'))
    return path


@pytest.mark.parametrize("ensemble,coupling", [("npt-mtk", "iso"), ("npt-crescale", "aniso"),
                                               ("berendsen-equilibration", "iso")])
def test_ace_run_relaxes_to_the_target_pressure(tmp_path, ensemble, coupling):
    """32 Cu atoms with Cu-I.yace started 3 % compressed: 1 ps at 300 K and 0 bar, then <P> ~ 0."""
    path = _npt_input(tmp_path, ensemble, coupling=coupling, repeat=(2, 2, 2), steps=1000,
                      thermo_every=10, a=3.55, barostat_damping=0.1)
    run = _make_run(path)
    run.run()
    table = read_thermo(tmp_path / "run.log")
    start_p = table["Press"][0]
    last = table["Step"] > 500
    mean_p = table["Press"][last].mean()
    se_p = table["Press"][last].std() / math.sqrt(last.sum() / 5)
    log = (tmp_path / "run.log").read_text()
    print(f"\n{ensemble} {coupling} (ACE): P {start_p:.0f} bar at the start, mean {mean_p:.0f} +- {se_p:.0f} bar "
          f"over the last 0.5 ps; volume {table['Volume'][0]:.2f} -> {table['Volume'][last].mean():.2f} A^3")
    assert start_p > 20000.0
    assert table["Volume"][last].mean() > 1.05 * table["Volume"][0]
    assert abs(mean_p) < max(3.0 * se_p, 1500.0)
    assert ("does not sample" in log) == (ensemble == "berendsen-equilibration")


@pytest.mark.parametrize("ensemble,coupling", [("npt-mtk", "triclinic"), ("npt-mtk", "aniso"),
                                               ("npt-crescale", "iso"), ("berendsen-equilibration", "aniso")])
def test_restart_continues_the_same_npt_trajectory(tmp_path, ensemble, coupling):
    kwargs = dict(coupling=coupling, pressure=2000.0, rattle=0.05)
    run_a = _make_run(_npt_input(tmp_path / "a", ensemble, steps=40, **kwargs))
    run_a.run()
    _make_run(_npt_input(tmp_path / "b", ensemble, steps=20, **kwargs)).run()
    run_c = _make_run(_npt_input(tmp_path / "b", ensemble, steps=40, **kwargs),
                      restart=str(tmp_path / "b" / "run.ckpt.h5"))
    assert run_c.state.step == 20
    run_c.run()
    assert np.abs(run_a.state.cell - np.diag([10.8] * 3)).max() > 1e-3     # the cell moved
    np.testing.assert_allclose(run_c.state.cell, run_a.state.cell, atol=1e-10)
    assert_same_trajectory(run_a.state, run_c.state)
    extra_a = run_a.integrator.conserved_extra(run_a.engine)
    assert extra_a != 0.0
    assert run_c.integrator.conserved_extra(run_c.engine) == pytest.approx(extra_a, abs=1e-8)


# --------------------------------------------------------------------------- input
def test_registered_ensembles():
    for name in NPT:
        assert INTEGRATORS[name].name == name


def test_barostat_input_errors(tmp_path):
    settings, _ = load_config(_npt_input(tmp_path, "npt-mtk"))
    assert settings["barostat"] == {"pressure": 0.0, "damping": 0.1, "coupling": "iso",
                                    "compressibility": 1e-6}
    with pytest.raises(ConfigError, match=r"barostat\.coupling.*npt-mtk"):
        load_config(_npt_input(tmp_path, "npt-crescale", coupling="triclinic"))
    with pytest.raises(ConfigError, match=r"barostat\.pdamp.*unknown key"):
        load_config(_npt_input(tmp_path, "npt-mtk", extra_barostat="pdamp = 1.0\n"))
    with pytest.raises(ConfigError, match=r"barostat\.coupling"):
        load_config(_npt_input(tmp_path, "npt-mtk", coupling="xyz"))
    nvt = _npt_input(tmp_path, "nvt-csvr")
    with pytest.raises(ConfigError, match=r"\[barostat\].*keeps the volume fixed"):
        load_config(nvt)
    no_thermostat = write_input(tmp_path, extra="[barostat]\npressure = 1.0\n")
    no_thermostat.write_text(no_thermostat.read_text().replace("[md]\n", '[md]\nensemble = "npt-mtk"\n'))
    with pytest.raises(ConfigError, match=r"thermostat\.temperature.*required"):
        load_config(no_thermostat)


def test_iso_coupling_of_a_slab_is_an_input_error(tmp_path):
    from ase.build import fcc111
    from ase.io import write
    slab = fcc111("Cu", (2, 2, 4), a=3.6, vacuum=5.0)
    write(tmp_path / "slab.extxyz", slab)
    path = _npt_input(tmp_path, "npt-mtk")
    text = path.read_text()
    start = text.index("[structure]")
    end = text.index("[potential]")
    path.write_text(text[:start] + f'[structure]\nfile = "{(tmp_path / "slab.extxyz").as_posix()}"\n\n'
                    + text[end:])
    with pytest.raises(InputError, match="coupling = 'aniso'"):
        _make_run(path).run()
