"""acemd.free_energy.phase_boundary on analytic curves.

* Two classical Einstein crystals G_i(T) = E_i + 3 kB T ln(hbar w_i / kB T): the crossing
  T* = (E_b - E_a) / (3 kB ln(w_a / w_b)), the entropy of transition 3 kB ln(w_a / w_b) and
  the latent heat E_b - E_a, exactly; the stable phase on each side.
* The error of T* by Monte Carlo of the input errors (rigid shifts of each curve, and
  independent errors per grid point) against sigma_T = sqrt(sa^2 + sb^2) / |dG_a/dT - dG_b/dT|.
* No crossing inside the grid: which side, and the window moved towards it.
* Clausius-Clapeyron on analytic coexistence lines (constant dV/dH: exponential; dH ~ T^2).
* Phase map of three Einstein crystals: stable phases and both transitions.
"""
import numpy as np
import pytest

from acemd.free_energy.phase_boundary import (Crossing, Curve, Table, coexistence_line, crossing, move_window,
                                              phase_map, stable_phase_grid)
from acemd.free_energy.reference import HBAR_EV_PS
from acemd.units import BOLTZMANN as KB, EV_PER_A3_TO_BAR


def einstein_g(t, e0, omega):
    """Classical Einstein crystal per atom (omega in rad/ps)."""
    t = np.asarray(t, float)
    return e0 + 3 * KB * t * np.log(HBAR_EV_PS * omega / (KB * t))


def exact_crossing(ea, wa, eb, wb):
    return (eb - ea) / (3 * KB * np.log(wa / wb))


EA, WA, EB, WB = -3.50, 40.0, -3.45, 30.0        # a: stiffer, lower energy -> stable at low T


def curves(lo=300.0, hi=1000.0, n=15, err=0.0):
    t = np.linspace(lo, hi, n)
    return Curve("a", t, einstein_g(t, EA, WA), err), Curve("b", t, einstein_g(t, EB, WB), err)


def test_two_einstein_crystals_cross_at_the_exact_temperature():
    a, b = curves()
    x = crossing(a, b)
    t_exact = exact_crossing(EA, WA, EB, WB)
    ds = 3 * KB * np.log(WA / WB)
    print(f"\nT* = {x.temperature:.6f} K (exact {t_exact:.6f}), dS = {x.delta_entropy / KB:.6f} kB "
          f"(exact {ds / KB:.6f}), L = {x.latent_heat:.6f} eV/atom (exact {EB - EA:.6f})")
    assert x.found and x.temperature == pytest.approx(t_exact, abs=0.02)
    assert x.delta_entropy == pytest.approx(ds, rel=1e-4)
    assert x.latent_heat == pytest.approx(EB - EA, rel=1e-4)
    assert x.stable_below == "a" and x.stable_above == "b"
    # slope difference dG_a/dT - dG_b/dT = S_b - S_a
    assert x.slope_difference == pytest.approx(ds, rel=1e-4)
    # swapped order: same T*, entropy and heat of the opposite sign, same stable phases
    y = crossing(b, a)
    assert y.temperature == pytest.approx(x.temperature, abs=1e-9)
    assert y.latent_heat == pytest.approx(-x.latent_heat, rel=1e-9)
    assert (y.stable_below, y.stable_above) == ("a", "b")


def test_grids_in_any_order_and_of_different_spacing():
    t1 = np.linspace(1000.0, 300.0, 8)                # descending, like a liquid sweep downwards
    t2 = np.linspace(250.0, 950.0, 31)
    x = crossing(Curve("a", t1, einstein_g(t1, EA, WA)), Curve("b", t2, einstein_g(t2, EB, WB)))
    assert x.t_range == (300.0, 950.0)
    assert x.temperature == pytest.approx(exact_crossing(EA, WA, EB, WB), abs=0.2)


def test_volume_difference_and_latent_heat_error():
    a, b = curves()
    a.volume = np.full(len(a.temperature), 11.8)
    b.volume = np.linspace(12.0, 13.0, len(b.temperature))
    a.entropy_error = b.entropy_error = np.full(len(a.temperature), 0.01 * KB)
    x = crossing(a, b)
    t = x.temperature
    assert x.delta_volume == pytest.approx(np.interp(t, b.temperature, b.volume) - 11.8, abs=1e-12)
    assert x.latent_heat_error == pytest.approx(t * np.sqrt(2) * 0.01 * KB, rel=1e-6)


@pytest.mark.parametrize("model", ["shift", "per_point"])
def test_error_of_the_crossing_by_monte_carlo(model):
    sa, sb = 0.002, 0.003
    a, b = curves(err=0.0)
    a.g_err, b.g_err = np.full(15, sa), np.full(15, sb)
    x = crossing(a, b)
    rng = np.random.default_rng(7)
    temps = []
    for _ in range(800):
        if model == "shift":
            na, nb = rng.normal(0, sa), rng.normal(0, sb)
        else:
            na, nb = rng.normal(0, sa, 15), rng.normal(0, sb, 15)
        y = crossing(Curve("a", a.temperature, a.g + na), Curve("b", b.temperature, b.g + nb))
        assert y.found
        temps.append(y.temperature)
    mc = float(np.std(temps, ddof=1))
    print(f"\n{model}: sigma_T formula {x.error:.3f} K, Monte Carlo {mc:.3f} K, mean shift "
          f"{np.mean(temps) - x.temperature:+.3f} K")
    if model == "shift":
        assert mc == pytest.approx(x.error, rel=0.08)
    else:
        # interpolation between independent points averages part of the noise: the formula bounds it
        assert 0.4 * x.error < mc < 1.1 * x.error
    assert abs(np.mean(temps) - x.temperature) < 4 * mc / np.sqrt(800) + 0.05


def test_no_crossing_says_which_side_and_the_window_moves_there():
    t_exact = exact_crossing(EA, WA, EB, WB)
    lo, hi = 300.0, 500.0
    a, b = curves(lo, hi, 7)
    x = crossing(a, b)
    assert x.status == "above" and not x.found
    assert x.stable_below == x.stable_above == "a"
    assert hi < x.extrapolated
    # the window moves up by its width until it brackets the crossing
    window, moves = (lo, hi), 0
    while not crossing(*curves(*window, 7)).found:
        window = move_window(*window, crossing(*curves(*window, 7)).status)
        moves += 1
    assert window[0] <= t_exact <= window[1] and moves == int((t_exact - lo) // (hi - lo))
    # from above, it moves down
    y = crossing(*curves(t_exact + 50, t_exact + 250, 7))
    assert y.status == "below" and y.extrapolated < t_exact + 50
    assert y.stable_below == y.stable_above == "b"
    assert move_window(600.0, 800.0, "below") == (400.0, 600.0)
    assert move_window(100.0, 300.0, "below") is None          # not below 0 K
    assert move_window(100.0, 300.0, "none") is None


def test_curves_that_diverge_both_ways_have_no_side():
    t = np.linspace(100, 200, 5)
    x = crossing(Curve("a", t, (t - 150) ** 2 * 1e-4 + 0.01), Curve("b", t, np.zeros(5)))
    assert x.status == "none" and move_window(100, 200, x.status) is None


def test_curve_input_errors():
    with pytest.raises(ValueError, match="at least 2"):
        Curve("a", [300.0], [1.0])
    with pytest.raises(ValueError, match="3 values for 2"):
        Curve("a", [300.0, 400.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="do not overlap"):
        crossing(Curve("a", [1, 2], [0, 0]), Curve("b", [3, 4], [0, 0]))


def test_clausius_clapeyron_constant_dv_dh_is_exponential():
    """dT/dP = T dV/dH with constant dV, dH: T(P) = T0 exp(dV (P - P0) / dH)."""
    t0, dv, dh = 1300.0, 0.6, 0.13              # A^3/atom, eV/atom (Cu-like melting)
    p = np.linspace(0.0, 1e5, 11)                # 0 .. 100 kbar, 10 kbar steps
    t, err = coexistence_line(t0, p, dv, dh, t0_error=10.0)
    exact = t0 * np.exp(dv * p / (dh * EV_PER_A3_TO_BAR))
    print(f"\nT(100 kbar) = {t[-1]:.6f} K, exact {exact[-1]:.6f} K, carried error {err[-1]:.3f} K")
    assert np.allclose(t, exact, rtol=1e-8, atol=0)          # RK4, 10 kbar steps
    # an error in T0 scales with T along this line
    assert err == pytest.approx(10.0 * exact / t0, rel=1e-6)


def test_clausius_clapeyron_error_from_noisy_state_points_matches_monte_carlo():
    """slope_error: the propagated error of T(P) equals the spread of lines whose every state point
    draws its own dV with that relative error (2000 lines: the spread's own sampling error is 1.6 %;
    the tolerance, 8 %, also covers the noise's feedback through T, which the propagation leaves out)."""
    t0, dv, dh, rel = 1300.0, 0.6, 0.13, 0.05
    p = np.linspace(0.0, 3e4, 4)

    def slope_error(T, P):
        return T * dv / (dh * EV_PER_A3_TO_BAR) * rel
    t, err = coexistence_line(t0, p, dv, dh, t0_error=0.0, slope_error=slope_error)
    rng = np.random.default_rng(5)
    lines = []
    for _ in range(2000):
        drawn = {}

        def noisy_dv(T, P):
            return drawn.setdefault((round(T, 9), round(P, 9)), dv * (1.0 + rel * rng.standard_normal()))
        lines.append(coexistence_line(t0, p, noisy_dv, dh)[0])
    spread = np.std(lines, axis=0, ddof=1)
    print(f"\npropagated {np.round(err, 3)} K, Monte Carlo {np.round(spread, 3)} K")
    assert err[0] == 0.0 and spread[0] == 0.0
    assert np.allclose(err[1:], spread[1:], rtol=0.08)
    # with a start error too: the two add in quadrature
    _, both = coexistence_line(t0, p, dv, dh, t0_error=10.0, slope_error=slope_error)
    carried = 10.0 * t / t0
    assert np.allclose(both, np.hypot(carried, err), rtol=1e-9)


def test_clausius_clapeyron_temperature_dependent_heat_and_table():
    """dH = alpha T^2, dV = c: dT/dP = c / (alpha T) -> T^2 = T0^2 + 2 c (P - P0) / alpha."""
    t0, c, alpha = 900.0, 0.4, 1e-7
    p = np.linspace(1e4, -2e4, 7)                 # any direction from P0
    t, _ = coexistence_line(t0, p, lambda T, P: c, lambda T, P: alpha * T * T)
    exact = np.sqrt(t0 ** 2 + 2 * c * (p - p[0]) / (alpha * EV_PER_A3_TO_BAR))
    assert np.allclose(t, exact, rtol=1e-8)
    # the same heat as a table in T (linear interpolation: close, not exact)
    tt = np.linspace(700, 1100, 401)
    t_tab, _ = coexistence_line(t0, p, Table(None, [-1e9, 1e9], [c, c]), Table(tt, None, alpha * tt ** 2))
    assert np.allclose(t_tab, exact, rtol=1e-5)


def test_table_bilinear():
    tab = Table([1.0, 2.0], [10.0, 20.0], [[1.0, 2.0], [3.0, 4.0]])
    assert tab(1.5, 15.0) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="do not match"):
        Table([1.0, 2.0], [10.0], [[1.0, 2.0]])


def test_phase_map_of_three_einstein_crystals():
    t = np.linspace(200.0, 2000.0, 37)
    phases = [("alpha", -3.50, 40.0), ("beta", -3.45, 30.0), ("gamma", -3.30, 18.0)]
    cs = [Curve(n, t, einstein_g(t, e, w), 1e-3) for n, e, w in phases]
    m = phase_map(cs)
    t_ab = exact_crossing(-3.50, 40.0, -3.45, 30.0)
    t_bg = exact_crossing(-3.45, 30.0, -3.30, 18.0)
    print(f"\nsegments {[(round(a), round(b), n) for a, b, n in m['segments']]}, exact {t_ab:.1f}, {t_bg:.1f} K")
    assert [s[2] for s in m["segments"]] == ["alpha", "beta", "gamma"]
    assert [x.temperature for x in m["transitions"]] == pytest.approx([t_ab, t_bg], abs=0.5)
    assert all(isinstance(x, Crossing) and x.latent_heat > 0 for x in m["transitions"])
    assert m["stable"][0] == "alpha" and m["stable"][-1] == "gamma"
    # on a (T, P) grid: G_i + P V_i with the largest-volume phase losing at high pressure
    pressures = np.array([0.0, 5e5])
    vols = np.array([10.0, 11.0, 13.0]) / EV_PER_A3_TO_BAR
    g = np.array([[c(x) + pressures * v for x in t] for c, v in zip(cs, vols)])
    idx, names = stable_phase_grid([c.name for c in cs], g)
    assert idx.shape == (37, 2)
    assert names[idx[-1, 0]] == "gamma" and names[idx[-1, 1]] != "gamma"
    with pytest.raises(ValueError, match="at least two"):
        phase_map(cs[:1])
