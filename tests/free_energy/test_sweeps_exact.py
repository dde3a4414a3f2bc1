"""Sweeps at constant pressure against an exactly solvable system.

"The potential" is a harmonic crystal (centre-of-mass-free springs k_h to sites that
deform with the cell) plus a pure volume term E(V) = N B/(2 v0) (V/N - v0)^2.  Its
configurational integral at volume V is c(T) V exp(-E(V)/kT) (the springs' integral does
not depend on V; the centre of mass roams the box: the factor V), so

    G(T, P) = A(T) - kB T ln int dV V exp(-(E(V) + P V)/kB T),

A(T) = the fixed-volume harmonic part (3(N-1) oscillators, 3N momenta).  The volume
integral is done by quadrature.  The solid route's G(T0) = F(<V>) + P <V> differs from
the exact G(T0) by O(kB T ln N / N), a convention, so the tests compare what the sweeps
compute: G(T) - (T/T0) G(T0) (temperature) and G(P) - G(P0) (pressure), with the exact
increments.  A barostat that targeted P instead of lambda P would move <V> by
P/B (1/lambda - 1) = 2.5 % at lambda = 1/2 and miss by ~4 meV/atom.
"""
import numpy as np
import pytest
from mpi4py import MPI

from acemd.forcefield import ForceTerm, TermResult
from acemd.free_energy import EinsteinTerm
from acemd.free_energy.reference import com_correction, einstein_free_energy
from acemd.units import BOLTZMANN, EV_PER_A3_TO_BAR

from test_solid_route import _input

K_H, B, A0 = 2.0, 0.5, 3.61            # eV/Å^2, eV/Å^3 (80 GPa), Å
V0 = A0 ** 3 / 4                        # Å^3/atom
T0, TF, P0 = 500.0, 1000.0, 20000.0     # K, K, bar


class SpringsAndVolume(ForceTerm):
    """Centre-of-mass-free springs + E(V) = N B/(2 v0) (V/N - v0)^2."""

    name = "springs_volume"
    cutoff = 0.0

    def __init__(self, springs, bulk_modulus, v0):
        self.springs, self.b, self.v0 = springs, bulk_modulus, v0

    def bind(self, state, comm):
        self.springs.bind(state, comm)
        self.state = state

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        r = self.springs.compute(positions, species, ids, n_local, offsets, neighbors)
        n = self.state.n_atoms_total
        v = self.state.volume / n
        share = n_local / n                               # every rank adds its share of the global terms
        energy = n * self.b / (2 * self.v0) * (v - self.v0) ** 2
        virial = -self.state.volume * self.b / self.v0 * (v - self.v0) * np.eye(3)   # -V dE/dV
        return TermResult(r.site_energy + energy / n, r.forces, r.virial + share * virial)


def volume_free_energy(t, p_bar, n):
    """-kB T ln int dV V exp(-(E(V) + P V)/kB T) per atom (V in Å^3; the unit volume cancels)."""
    kt = BOLTZMANN * t
    p = p_bar / EV_PER_A3_TO_BAR
    vmin = (1 - p / B) * V0
    v = np.linspace(vmin - 0.2 * V0, vmin + 0.2 * V0, 200001) * n
    e = B / (2 * V0 * n) * (v - n * V0) ** 2 + p * v
    x = -(e - e.min()) / kt + np.log(v)
    log_int = x.max() + np.log(np.trapezoid(np.exp(x - x.max()), v))
    return (e.min() - kt * log_int) / n


def exact_g(t, p_bar, n, masses):
    """G per atom up to a T-linear convention constant (cancels in the increments)."""
    harmonic = einstein_free_energy(t, [K_H], masses, [n]) + com_correction(t, [K_H], masses, [n], 1.0)
    return harmonic + volume_free_energy(t, p_bar, n)


def _run(tmp_path, body):
    from acemd.drivers.free_energy import FreeEnergyRun
    import io
    settings, text, path = _input(tmp_path, body)
    stream = io.StringIO()
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream)
    sim = run.simulation
    springs = EinsteinTerm.at_current_positions(MPI.COMM_SELF, sim.state, [K_H], name="harmonic")
    sim.term = SpringsAndVolume(springs, B, V0)
    sim.set_terms([sim.term])
    return run, run.run(), stream.getvalue()


BODY = f"""
temperature = {T0}
pressure = {P0}
timestep = 0.002
damping = 0.05
barostat_damping = 0.1
compressibility = {1 / (B * EV_PER_A3_TO_BAR)}
npt_steps = 400
npt_max_blocks = 1
pressure_tolerance = 1e9
spring_constants = {{Cu = {K_H}}}
n_iterations = 2
equilibration_steps = 300
switching_steps = 200
sweep_steps = 3000
progress_every = 1000000
"""


def test_exact_volume_integral_is_the_saddle_point_plus_small_terms():
    """Sanity of the quadrature: G_V ~ min(E + P V)/N - (kT/N) ln(...) -> the saddle point as N grows."""
    p = P0 / EV_PER_A3_TO_BAR
    saddle = p * V0 - p ** 2 * V0 / (2 * B)
    assert volume_free_energy(T0, P0, 10 ** 6) == pytest.approx(saddle, abs=1e-4)


@pytest.mark.parametrize("method", ["scaling", "temperature_ramp"])
def test_npt_temperature_sweep_equals_the_exact_curve(tmp_path, method):
    body = BODY + (f'mode = "temperature_sweep"\ntemperature_final = {TF}\nsweep_points = 6\n'
                   f'sweep_method = "{method}"\n')
    run, report, out = _run(tmp_path, body)
    st = run.simulation.state
    n = st.n_atoms_total
    c = report["temperature_sweep"]
    t = np.array(c["temperature"])
    g, err, hyst = np.array(c["G"]), np.array(c["G_error"]), np.array(c["hysteresis"])
    inc = g - t / T0 * g[0]
    exact = np.array([exact_g(x, P0, n, st.masses_by_species) for x in t])
    exact_inc = exact - t / T0 * exact[0]
    v_exact = (1 - P0 / EV_PER_A3_TO_BAR / B) * V0
    print("\n" + "\n".join(out.splitlines()[-(len(t) + 3):-1]))
    print(f"{method}: G(T) - (T/T0) G(T0) - exact (eV/atom):",
          ", ".join(f"{x:.0f} {d:+.1e}" for x, d in zip(t, inc - exact_inc)), f"(error {err.max():.1e}, "
          f"hysteresis {np.abs(hyst).max():.1e}); V {np.mean(c['V']):.4f} (saddle {v_exact:.4f}) A^3/atom")
    assert c["ensemble"] == "npt" and c["method"] == method
    assert np.all(np.abs(inc - exact_inc) < np.maximum(4 * err, 4e-4))
    assert np.allclose(c["V"], v_exact, rtol=6e-3)
    assert np.allclose(c["F"], g - P0 / EV_PER_A3_TO_BAR * np.array(c["V"]), atol=1e-12)
    # the classical harmonic crystal with a T-independent volume: Cp = 3 kB - O(1/N)
    assert np.all(np.abs(np.array(c["Cp"]) - 3.0) < np.maximum(4 * np.array(c["Cp_error"]), 0.12))
    # per-step records: the barostat target follows lambda P (scaling) or stays P (ramp)
    import h5py
    with h5py.File(tmp_path / "fe.h5") as h:
        fw = h["temperature_sweep/iteration_002/forward"]
        temps, p_bar, u, v, y = (fw[k][()] for k in ("temperature_K", "pressure_bar", "U", "V", "integrand"))
        assert len(u) == 3001 and temps[0] == pytest.approx(T0) and temps[-1] == pytest.approx(TF)
        assert np.allclose(p_bar, P0 * T0 / temps if method == "scaling" else P0)
        p = P0 / EV_PER_A3_TO_BAR
        expect = u + p * v if method == "scaling" else (1.5 * n * BOLTZMANN * temps + u + p * v) / temps ** 2
        assert np.allclose(y, expect)
        assert np.allclose(h["temperature_sweep/curve/G"][()], g)
        assert h["temperature_sweep/curve"].attrs["method"] == method


def test_pressure_sweep_equals_the_exact_curve(tmp_path):
    pf = 2 * P0
    body = BODY + f'mode = "pressure_sweep"\npressure_final = {pf}\nsweep_points = 5\n'
    run, report, out = _run(tmp_path, body)
    n = run.simulation.state.n_atoms_total
    c = report["pressure_sweep"]
    p = np.array(c["pressure"])
    g, err, hyst = np.array(c["G"]), np.array(c["G_error"]), np.array(c["hysteresis"])
    exact = np.array([volume_free_energy(T0, x, n) for x in p])
    v_exact = (1 - p / EV_PER_A3_TO_BAR / B) * V0
    print("\n" + "\n".join(out.splitlines()[-(len(p) + 3):-1]))
    print("G(P) - G(P0) - exact (eV/atom):", ", ".join(f"{x:.0f} {d:+.1e}" for x, d in
                                                       zip(p, g - g[0] - (exact - exact[0]))),
          f"(error {err.max():.1e}, hysteresis {np.abs(hyst).max():.1e})")
    assert p[0] == P0 and p[-1] == pf
    assert g[0] == pytest.approx(report["acemd"]["gibbs_free_energy"], abs=1e-12)
    assert np.all(np.abs(g - g[0] - (exact - exact[0])) < np.maximum(4 * err, 4e-4))
    assert np.allclose(c["V"], v_exact, rtol=6e-3)
    import h5py
    with h5py.File(tmp_path / "fe.h5") as h:
        bw = h["pressure_sweep/iteration_001/backward"]
        assert bw["pressure_bar"][0] == pytest.approx(pf) and bw["pressure_bar"][-1] == pytest.approx(P0)
        assert np.allclose(bw["integrand"][()], bw["V"][()] / EV_PER_A3_TO_BAR)
        assert np.allclose(h["pressure_sweep/curve/G"][()], g)


@pytest.mark.slow
def test_cu_npt_sweep_equals_the_direct_solid_route(tmp_path):
    """Cu-I.yace, 108 atoms, 0 bar: G(Tf) from the solid route at T0 + the NPT sweep equals the
    solid route run directly at Tf within the combined errors (short runs: a consistency check)."""
    import io
    from acemd.drivers.free_energy import FreeEnergyRun
    t0, tf = 500.0, 800.0
    common = """
pressure = 0.0
timestep = 0.002
npt_steps = 600
npt_max_blocks = 1
pressure_tolerance = 1e9
barostat_damping = 0.2
spring_steps = 500
n_iterations = 2
equilibration_steps = 100
switching_steps = 700
progress_every = 1000000
"""
    reports = {}
    for name, body in (("sweep", f'mode = "temperature_sweep"\ntemperature = {t0}\ntemperature_final = {tf}\n'
                                 "sweep_steps = 1200\nsweep_points = 7\n"),
                       ("direct", f"temperature = {tf}\n")):
        settings, text, path = _input(tmp_path / name, common + body, a=3.63)
        reports[name] = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO()).run()
    c = reports["sweep"]["temperature_sweep"]
    d = reports["direct"]["acemd"]
    g_sweep, e_sweep = c["G"][-1], c["G_error"][-1]
    g_direct, e_direct = d["gibbs_free_energy"], d["gibbs_free_energy_error"]
    combined = float(np.hypot(e_sweep, e_direct))
    hyst = abs(c["hysteresis"][-1])
    print(f"\nCu-I 108 atoms: G({tf:g} K) solid route at {t0:g} K + NPT sweep {g_sweep:.5f} +- {e_sweep:.1e}, "
          f"direct solid route {g_direct:.5f} +- {e_direct:.1e}: deviation {g_sweep - g_direct:+.1e} eV/atom "
          f"(combined error {combined:.1e}, hysteresis {hyst:.1e}); forward {c['G_forward'][-1]:.5f}, backward "
          f"{c['G_backward'][-1]:.5f}; V {c['V'][0]:.3f} -> {c['V'][-1]:.3f} A^3/atom (direct route "
          f"{reports['direct']['average']['vol_atom']:.3f}); Cp {c['Cp'][-1]:.2f} kB")
    assert abs(g_sweep - g_direct) < max(4 * combined, 2e-3)
    # each direction alone agrees with the direct route within the hysteresis (+ the errors)
    for one_way in (c["G_forward"][-1], c["G_backward"][-1]):
        assert abs(one_way - g_direct) <= hyst + max(4 * combined, 2e-3)
    assert c["V"][-1] == pytest.approx(reports["direct"]["average"]["vol_atom"], rel=5e-3)
