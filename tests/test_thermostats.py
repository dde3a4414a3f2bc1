"""NVT ensembles: Langevin (BAOAB), stochastic velocity rescaling (CSVR), Nose-Hoover chains.

* Sampling: the kinetic energy of N atoms follows the canonical gamma distribution
  (shape Nf/2, scale kB T, Nf = 3N - 3).  The long statistical runs use a cheap
  anharmonic model (a shifted-force Morse pair potential for Cu, written here as a
  ForceTerm) so that tens of picoseconds take seconds; the mean and the second
  moment are compared with block averages (t test at 99.9 %), the distribution with
  a Kolmogorov-Smirnov test at 1 % on samples spaced by twice the integrated
  autocorrelation time.
* Each thermostat also runs briefly with an ACE potential through MDRun.
* Nose-Hoover: the fluctuation of its conserved quantity scales with dt^2.
* Restarts continue the same trajectory; input errors name their key.
"""
import io
import math

import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI
from scipy import stats

from acemd.config import ConfigError, load_config
from acemd.drivers.md import MDRun, initial_velocities
from acemd.engine import Engine
from acemd.forcefield import ACETerm, ForceField, ForceTerm, TermResult
from acemd.integrators import CSVR, INTEGRATORS, LangevinBAOAB, NoseHooverChain
from acemd.integrators.csvr import chi_square
from acemd.io.thermo import read_thermo
from acemd.rng import PURPOSE_THERMOSTAT
from acemd.state import State
from acemd.units import BOLTZMANN

from engine_helpers import POTENTIALS, assert_same_trajectory, write_input

NVT = ("nvt-langevin", "nvt-csvr", "nvt-nose-hoover")


# --------------------------------------------------------------------------- cheap model
class MorseTerm(ForceTerm):
    """Shifted-force Morse pair potential (Girifalco-Weizer copper), on the engine's full list."""

    name = "morse"

    def __init__(self, depth=0.3429, alpha=1.3588, r0=2.866, cutoff=5.0):
        self.depth, self.alpha, self.r0, self.cutoff = depth, alpha, r0, cutoff
        self.phi_c, self.dphi_c = self._phi(cutoff)

    def _phi(self, r):
        e = np.exp(-self.alpha * (r - self.r0))
        return self.depth * ((1.0 - e) ** 2 - 1.0), 2.0 * self.depth * self.alpha * (1.0 - e) * e

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        i = np.repeat(np.arange(n_local), np.diff(offsets))
        j = np.asarray(neighbors, dtype=np.int64)
        d = positions[j] - positions[i]
        r = np.sqrt((d * d).sum(1))
        keep = r < self.cutoff
        i, j, d, r = i[keep], j[keep], d[keep], r[keep]
        phi, dphi = self._phi(r)
        phi = phi - self.phi_c - (r - self.cutoff) * self.dphi_c       # energy and force -> 0 at rc
        dphi = dphi - self.dphi_c
        site = 0.5 * np.bincount(i, phi, minlength=n_local)            # each pair is listed twice
        f_j = (-0.5 * dphi / r)[:, None] * d
        n_ext = len(positions)
        forces = np.empty((n_ext, 3))
        for c in range(3):
            forces[:, c] = (np.bincount(j, f_j[:, c], minlength=n_ext)
                            - np.bincount(i, f_j[:, c], minlength=n_ext))
        return TermResult(site, forces, d.T @ f_j)


def make_engine(term=None, repeat=2, temperature=300.0, seed=2, rattle=0.02):
    """An Engine on MPI.COMM_SELF for fcc Cu (4 repeat^3 atoms) with Maxwell-Boltzmann velocities."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    atoms.rattle(rattle, seed=seed)
    n = len(atoms)
    st = State(cell=atoms.cell.array.copy(), pbc=np.array([True, True, True]),
               ids=np.arange(n, dtype=np.int64), species=np.zeros(n, dtype=np.int64),
               positions=atoms.positions.copy(), velocities=np.zeros((n, 3)),
               images=np.zeros((n, 3), dtype=np.int64), species_names=["Cu"],
               masses_by_species=np.array([63.546]), n_atoms_total=n)
    engine = Engine(MPI.COMM_SELF, st, ForceField([term or MorseTerm()]), skin=1.0)
    st.velocities = initial_velocities(MPI.COMM_SELF, st, temperature, seed, True)
    engine.compute_forces(force_rebuild=True)
    return engine


def integrated_autocorrelation_time(x):
    """tau_int = 1/2 + sum_k rho(k), summed until k >= 5 tau (Sokal's window), in samples."""
    x = np.asarray(x) - np.mean(x)
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    acf /= acf[0]
    tau = 0.5
    for k in range(1, n):
        tau += acf[k]
        if k >= 5 * tau:
            break
    return max(tau, 0.5)


def block_t_test(values, expected, n_blocks=20, confidence=0.999):
    """(mean, standard error from block means, allowed deviation at ``confidence``)."""
    blocks = np.array_split(np.asarray(values), n_blocks)
    means = np.array([b.mean() for b in blocks])
    se = means.std(ddof=1) / math.sqrt(n_blocks)
    t = stats.t.ppf(0.5 + 0.5 * confidence, n_blocks - 1)
    return float(np.mean(values)), se, t * se


# --------------------------------------------------------------------------- sampling
T_TARGET = 600.0
DT = 0.002


def _thermostat(name, dt=DT, damping=0.05, seed=11):
    if name == "nvt-langevin":
        return LangevinBAOAB(dt, T_TARGET, damping, seed=seed)
    if name == "nvt-csvr":
        return CSVR(dt, T_TARGET, damping, seed=seed)
    return NoseHooverChain(dt, T_TARGET, damping, chain_length=3, loops=1, yoshida_order=3)


@pytest.mark.parametrize("name", NVT)
def test_kinetic_energy_is_canonical(name):
    """32 Cu atoms (Morse), 600 K, 2 fs, damping 0.05 ps: 2 ps equilibration from 300 K, 30 ps sampling."""
    engine = make_engine(temperature=300.0)
    integ = _thermostat(name)
    integ.setup(engine)
    dof = engine.degrees_of_freedom()
    kt = BOLTZMANN * T_TARGET
    for _ in range(1000):
        integ.step(engine)
    ke = np.empty(15000)
    for k in range(len(ke)):
        integ.step(engine)
        ke[k] = 0.5 * np.trace(engine.kinetic_tensor())
    momentum = (engine.state.masses[:, None] * engine.state.velocities).sum(0)
    np.testing.assert_allclose(momentum, 0.0, atol=1e-8)

    mean_exp, var_exp = 0.5 * dof * kt, 0.5 * dof * kt * kt       # gamma(dof/2, kT)
    mean, se_mean, tol_mean = block_t_test(ke, mean_exp)
    m2, se_m2, tol_m2 = block_t_test((ke - mean_exp) ** 2, var_exp)
    tau = integrated_autocorrelation_time(ke)
    stride = max(20, int(math.ceil(2.0 * tau)))
    sample = ke[::stride]
    canonical = stats.gamma(0.5 * dof, scale=kt)
    p = stats.kstest(sample, canonical.cdf).pvalue
    p_hot = stats.kstest(sample, stats.gamma(0.5 * dof, scale=1.05 * kt).cdf).pvalue
    print(f"\n{name}: N={engine.state.n_atoms_total}, <K>/<K>_exp = {mean / mean_exp:.4f} "
          f"(+-{tol_mean / mean_exp:.4f} at 99.9%), Var/Var_exp = {m2 / var_exp:.3f} "
          f"(+-{tol_m2 / var_exp:.3f}), tau_int = {tau:.1f} steps, KS on {len(sample)} samples "
          f"(every {stride}) p = {p:.3f}; against 1.05 T p = {p_hot:.1e}")
    assert abs(mean - mean_exp) < tol_mean
    assert abs(m2 - var_exp) < tol_m2
    assert p > 0.01
    assert p_hot < 0.01          # the test can tell a 5 % temperature error


@pytest.mark.parametrize("k", [5, 93, 320])
def test_chi_square_draws_follow_the_distribution(k):
    """The CSVR chi-square (sum of squares below 16 dof, Marsaglia-Tsang gamma above)."""
    draws = np.array([chi_square(k, 99, PURPOSE_THERMOSTAT, key) for key in range(3000)])
    p = stats.kstest(draws, stats.chi2(k).cdf).pvalue
    print(f"\nchi2({k}): mean {draws.mean():.2f}, var {draws.var():.1f} (exp {2 * k}), KS p = {p:.3f}")
    assert p > 0.01
    assert chi_square(k, 99, PURPOSE_THERMOSTAT, 7) == chi_square(k, 99, PURPOSE_THERMOSTAT, 7)


# --------------------------------------------------------------------------- Nose-Hoover
def test_nose_hoover_conserved_quantity_error_scales_with_dt_squared():
    """ACE Cu-I, 32 atoms, 0.5 ps at dt = 1 and 2 fs: RMS of H(t) - H(0) grows 4x."""
    term = ACETerm(POTENTIALS / "Cu-I.yace")
    rms = {}
    for dt in (0.001, 0.002):
        engine = make_engine(term, temperature=600.0)
        integ = NoseHooverChain(dt, 900.0, 0.05)
        integ.setup(engine)
        h = []
        for _ in range(int(round(0.5 / dt))):
            integ.step(engine)
            th = engine.thermo()
            h.append(th["total_energy"] + integ.conserved_extra(engine))
        h = np.array(h)
        rms[dt] = float(np.sqrt(np.mean((h - h[0]) ** 2)))
        assert engine.thermo()["temperature"] > 650.0          # it heated towards 900 K
    ratio = rms[0.002] / rms[0.001]
    print(f"\nNose-Hoover conserved quantity RMS error: {rms[0.001]:.2e} eV (1 fs), {rms[0.002]:.2e} eV "
          f"(2 fs), ratio {ratio:.2f} (dt^2: 4)")
    assert 3.4 < ratio < 4.6
    assert rms[0.001] < 2e-3


# --------------------------------------------------------------------------- with ACE, via MDRun
def _nvt_input(folder, ensemble, *, temperature=300.0, target=600.0, damping=0.05, steps=40,
               thermo_every=5, extra_thermostat="", **kwargs):
    path = write_input(folder, temperature=temperature, steps=steps, thermo_every=thermo_every,
                       extra=f"[thermostat]\ntemperature = {target}\ndamping = {damping}\n"
                             f"{extra_thermostat}", **kwargs)
    path.write_text(path.read_text().replace("[md]\n", f'[md]\nensemble = "{ensemble}"\n'))
    return path


def _make_run(path, restart=None):
    settings, text = load_config(path)
    return MDRun(settings, text, path, comm=MPI.COMM_SELF, restart=restart, stream=io.StringIO())


@pytest.mark.parametrize("ensemble", NVT)
def test_ace_run_reaches_the_target_temperature(tmp_path, ensemble):
    """32 Cu atoms with Cu-I.yace, 300 K -> 600 K, 0.6 ps: mean T of the last 0.3 ps within 15 %."""
    path = _nvt_input(tmp_path, ensemble, repeat=(2, 2, 2), steps=600, thermo_every=10)
    run = _make_run(path)
    run.run()
    table = read_thermo(tmp_path / "run.log")
    last = table["Step"] > 300
    mean_t = table["Temp"][last].mean()
    conserved_spread = np.ptp(table["Conserved"])
    energy_change = np.ptp(table["TotEng"])
    print(f"\n{ensemble} (ACE): mean T {mean_t:.0f} K (target 600), total energy changed "
          f"{energy_change:.3f} eV, conserved quantity spread {conserved_spread:.1e} eV")
    assert abs(mean_t - 600.0) < 90.0
    assert conserved_spread < 0.02 * energy_change
    momentum = (run.state.masses[:, None] * run.state.velocities).sum(0)
    np.testing.assert_allclose(momentum, 0.0, atol=1e-8)


@pytest.mark.parametrize("ensemble", NVT)
def test_restart_continues_the_same_trajectory(tmp_path, ensemble):
    straight = _nvt_input(tmp_path / "a", ensemble, steps=40)
    run_a = _make_run(straight)
    run_a.run()
    half = _nvt_input(tmp_path / "b", ensemble, steps=20)
    _make_run(half).run()
    full = _nvt_input(tmp_path / "b", ensemble, steps=40)
    run_c = _make_run(full, restart=str(tmp_path / "b" / "run.ckpt.h5"))
    assert run_c.state.step == 20
    run_c.run()
    assert_same_trajectory(run_a.state, run_c.state)
    extra_a = run_a.integrator.conserved_extra(run_a.engine)
    extra_c = run_c.integrator.conserved_extra(run_c.engine)
    assert extra_a != 0.0
    assert extra_c == pytest.approx(extra_a, abs=1e-9)
    assert run_c.engine.potential_energy == pytest.approx(run_a.engine.potential_energy, abs=1e-9)


def test_restart_with_another_chain_length_is_an_input_error(tmp_path):
    from acemd.drivers.md import InputError
    _make_run(_nvt_input(tmp_path, "nvt-nose-hoover", steps=5)).run()
    longer = _nvt_input(tmp_path, "nvt-nose-hoover", steps=10, extra_thermostat="chain_length = 4\n")
    with pytest.raises(InputError, match="chain_length"):
        _make_run(longer, restart=str(tmp_path / "run.ckpt.h5"))


# --------------------------------------------------------------------------- input
def test_registered_ensembles():
    assert set(NVT) <= set(INTEGRATORS)
    for name in NVT:
        assert INTEGRATORS[name].name == name


@pytest.mark.parametrize("ensemble", NVT)
def test_nvt_without_temperature_names_the_key(tmp_path, ensemble):
    path = write_input(tmp_path)
    path.write_text(path.read_text().replace("[md]\n", f'[md]\nensemble = "{ensemble}"\n'))
    with pytest.raises(ConfigError, match=r"thermostat\.temperature.*required"):
        load_config(path)


def test_thermostat_defaults_and_unknown_keys(tmp_path):
    settings, _ = load_config(_nvt_input(tmp_path, "nvt-csvr"))
    th = settings["thermostat"]
    assert th["temperature"] == 600.0 and th["seed"] == 7           # seed from [velocities]
    assert th["chain_length"] == 3 and th["chain_loops"] == 1 and th["yoshida_order"] == 3
    path = _nvt_input(tmp_path, "nvt-csvr", extra_thermostat="tdamp = 0.1\n")
    with pytest.raises(ConfigError, match=r"thermostat\.tdamp.*unknown key"):
        load_config(path)
    path = _nvt_input(tmp_path, "nvt-nose-hoover", extra_thermostat="yoshida_order = 4\n")
    with pytest.raises(ConfigError, match=r"thermostat\.yoshida_order"):
        load_config(path)


def test_thermostat_section_with_nve_is_rejected(tmp_path):
    path = _nvt_input(tmp_path, "nve")
    with pytest.raises(ConfigError, match=r"\[thermostat\].*nve"):
        load_config(path)


def test_csvr_leaves_atoms_at_rest_to_the_forces():
    """Zero velocities cannot be rescaled; after the first kick the thermostat takes over."""
    engine = make_engine(temperature=0.0, rattle=0.05)
    integ = CSVR(DT, T_TARGET, 0.05, seed=1)
    integ.setup(engine)
    for _ in range(50):
        integ.step(engine)
    assert np.all(np.isfinite(engine.state.velocities))
    assert engine.thermo()["temperature"] > 100.0


def test_nvt_equilibration_continues_in_nve(tmp_path):
    """A checkpoint of an NVT run restarts in NVE: state carries over, thermostat variables do not."""
    nvt = _nvt_input(tmp_path, "nvt-langevin", steps=20)
    settings, text = load_config(nvt)
    MDRun(settings, text, nvt, comm=MPI.COMM_SELF, stream=io.StringIO()).run()
    nve = write_input(tmp_path, steps=40, thermo_every=5)
    settings, text = load_config(nve)
    run = MDRun(settings, text, nve, comm=MPI.COMM_SELF, restart=str(tmp_path / "run.ckpt.h5"),
                stream=io.StringIO())
    assert run.state.step == 20 and "start fresh" in run.restart_note
    run.run()
    assert run.state.step == 40
