"""pacemaker's regularisation terms (acemd.fit.regularization): values by hand, gradients against
central finite differences (relative 1e-7), the grid's second derivatives against differences of g, the
bond weights as pacemaker's average over ordered pairs, and the three forms of crad."""
import numpy as np
import pytest

from acemd.fit.basis import BondSpec
from acemd.fit.regularization import (GRID_END_GAP, GRID_POINTS, GRID_START, SmoothnessGrid, _as_model_bond,
                                      coefficient_penalty, radial_smoothness, smoothness_grids, smoothness_terms)
from acemd.potential.radial import radial_basis


def bond(radbase="SBessel", par=(5.25,), rcut=5.0, nradmax=3, lmax=2, nradbase=5):
    return BondSpec(radbase=radbase, radparameters=list(par), rcut=rcut, dcut=0.01, nradmax=nradmax, lmax=lmax,
                    nradbase=nradbase)


def central_difference(f, x, h):
    """d f / d x_i by central differences, every entry of x (an array)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


# -- L1 / L2 -------------------------------------------------------------------------------------

def test_coefficient_penalty_by_hand():
    c = np.array([[1.0, -2.0], [0.0, 0.5]])
    value, grad = coefficient_penalty(c, 0.1, 0.01)
    assert value == pytest.approx(0.1 * 3.5 + 0.01 * 5.25, rel=1e-15)
    assert np.allclose(grad, [[0.1 + 0.02, -0.1 - 0.04], [0.0, 0.1 + 0.01]], rtol=1e-15, atol=0)
    assert coefficient_penalty(c, 0, 0) == (0.0, pytest.approx(np.zeros((2, 2))))


def test_coefficient_penalty_gradient_against_differences():
    rng = np.random.default_rng(1)
    c = rng.normal(size=(40, 2))
    _, grad = coefficient_penalty(c, 3e-3, 7e-2)
    fd = central_difference(lambda x: coefficient_penalty(x, 3e-3, 7e-2)[0], c, 1e-6)
    print(f"L1+L2 gradient vs central differences: relative {rel(grad, fd):.1e}")
    assert rel(grad, fd) < 1e-7


# -- the grid -------------------------------------------------------------------------------------

def test_grid_is_pacemakers_and_derivatives_are_derivatives():
    """100 points from 1e-10 to rcut_max - 1e-5; dg the analytic derivative; d2g against Richardson-
    extrapolated second differences of g (h 2e-3 and 1e-3) for every radial basis."""
    for radbase, par in (("SBessel", [5.25]), ("ChebExpCos", [5.25]), ("ChebPow", [2.0])):
        b = bond(radbase, par, rcut=4.5)
        grids = smoothness_grids({("Cu", "Cu"): b, ("Cu", "Ni"): bond(rcut=5.5), ("Ni", "Ni"): bond(rcut=5.0)})
        g = grids[("Cu", "Cu")]
        assert len(g.r) == GRID_POINTS and g.r[0] == GRID_START and g.r[-1] == pytest.approx(5.5 - GRID_END_GAP)
        assert g.dr == pytest.approx((5.5 - GRID_END_GAP - GRID_START) / 99)
        mb = _as_model_bond(b)
        val, der = radial_basis(mb, 5, "density", g.r)
        assert np.array_equal(g.g[0], val.T) and np.array_equal(g.g[1], der.T)
        h = 2e-3
        inside = (g.r > 2 * h) & (g.r < 4.5 - 2 * h)
        r = g.r[inside]

        def second(step):
            return (radial_basis(mb, 5, "density", r + step)[0] - 2 * radial_basis(mb, 5, "density", r)[0]
                    + radial_basis(mb, 5, "density", r - step)[0]) / step ** 2
        richardson = (4 * second(h / 2) - second(h)) / 3              # O(h^4): ~1e-9
        err = rel(g.g[2][inside], richardson.T)
        print(f"{radbase}: d2g vs Richardson second differences of g: relative {err:.1e}")
        assert err < 1e-7
        assert np.all(g.g[:, g.r >= 4.5] == 0)                    # beyond this bond's cutoff


def test_value_by_hand_on_a_grid_of_known_functions():
    """g_0 = 1, g_1 = r (so R = c0 + c1 r, R' = c1, R'' = 0) on r_j = j dr, scale s: P0 = s sum r^2 |c0 + c1 r|,
    P1 = s |c1| sum r^2, P2 = 0."""
    r = np.arange(5) * 0.5
    g = np.zeros((3, 5, 2))
    g[0, :, 0], g[0, :, 1], g[1, :, 1] = 1.0, r, 1.0
    grid = SmoothnessGrid(r=r, dr=0.5, g=g, scale=0.25)
    c = np.array([[[2.0, -3.0]]])                                # R = 2 - 3r: 2, 0.5, -1, -2.5, -4
    P, _ = smoothness_terms([c], [grid])
    by_hand_p0 = 0.25 * (0 * 2 + 0.25 * 0.5 + 1 * 1 + 2.25 * 2.5 + 4 * 4)
    by_hand_p1 = 0.25 * 3 * (0 + 0.25 + 1 + 2.25 + 4)
    assert P == pytest.approx([by_hand_p0, by_hand_p1, 0.0], rel=1e-15)
    value, _ = radial_smoothness([c], 1.0, 2.0, 3.0, [grid])
    assert value == pytest.approx(by_hand_p0 + 2 * by_hand_p1, rel=1e-15)


def test_pair_weights_are_pacemakers_average_over_ordered_pairs():
    """AlNi: 4 ordered bonds Al-Al, Al-Ni, Ni-Al, Ni-Ni, the mixed pair's coefficients shared: P equals
    the mean over the 4 of each ordered bond's own term dr/rcut^2 sum r^2 sum|R|."""
    rng = np.random.default_rng(3)
    bonds = {("Al", "Al"): bond(rcut=4.0), ("Al", "Ni"): bond("ChebExpCos", rcut=5.0), ("Ni", "Ni"): bond(rcut=4.5)}
    crad = {p: rng.normal(size=(3, 3, 5)) for p in bonds}
    grids = smoothness_grids(bonds)
    P, _ = smoothness_terms(crad, grids)
    one = {}
    for p, b in bonds.items():
        g = grids[p]
        R = np.einsum("dpk,nlk->dpnl", g.g, crad[p])
        one[p] = g.dr / b.rcut ** 2 * np.einsum("p,dpnl->d", g.r ** 2, np.abs(R))
    mean = (one[("Al", "Al")] + 2 * one[("Al", "Ni")] + one[("Ni", "Ni")]) / 4
    assert P == pytest.approx(mean, rel=1e-13)


# -- gradients -------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["dict", "list", "array"])
def test_radial_smoothness_gradient_against_differences(form):
    rng = np.random.default_rng(7)
    if form == "array":      # equal shapes: one array (nbonds, nradmax, lmax+1, nradbase)
        bonds = {("Al", "Al"): bond(), ("Al", "Ni"): bond("ChebPow", (2.0,), rcut=5.5), ("Ni", "Ni"): bond(rcut=4.2)}
    else:
        bonds = {("Al", "Al"): bond(nradmax=2, lmax=1, nradbase=4),
                 ("Al", "Ni"): bond("ChebExpCos", rcut=5.5, nradmax=3, lmax=2, nradbase=6),
                 ("Ni", "Ni"): bond("ChebPow", (2.0,), rcut=4.2, nradmax=1, lmax=3, nradbase=3)}
    grids = smoothness_grids(bonds)
    shapes = [(b.nradmax, b.lmax + 1, b.nradbase) for b in bonds.values()]
    arrays = [rng.normal(size=s) for s in shapes]
    w = (1e-2, 3e-3, 2e-4)
    flat = np.concatenate([a.ravel() for a in arrays])

    def split(x):
        out, pos = [], 0
        for s in shapes:
            n = int(np.prod(s))
            out.append(x[pos:pos + n].reshape(s))
            pos += n
        if form == "dict":
            return dict(zip(bonds, out))
        return np.stack(out) if form == "array" else out

    def loss(x):
        return radial_smoothness(split(x), *w, grids if form == "dict" else list(grids.values()))[0]

    value, grad = radial_smoothness(split(flat), *w, grids if form == "dict" else list(grids.values()))
    flat_grad = np.concatenate([np.ravel(grad[k]) for k in bonds] if form == "dict" else [np.ravel(a) for a in grad])
    fd = central_difference(loss, flat, 1e-6)
    print(f"{form}: value {value:.6e}, gradient vs central differences: relative {rel(flat_grad, fd):.1e}")
    assert value > 0 and rel(flat_grad, fd) < 1e-7
    assert isinstance(grad, dict if form == "dict" else (np.ndarray if form == "array" else list))


def test_delta_start_and_zero_weights():
    """pacemaker's start c = delta_nk: R_nl = g_n; zero weights: 0 and zero gradients of crad's form."""
    b = bond(nradmax=2, lmax=0, nradbase=3)
    grids = smoothness_grids({("Cu", "Cu"): b})
    c = np.zeros((2, 1, 3))
    c[0, 0, 0] = c[1, 0, 1] = 1.0
    P, _ = smoothness_terms({("Cu", "Cu"): c}, grids)
    g = grids[("Cu", "Cu")]
    expected = g.scale * np.einsum("p,dpk->d", g.r ** 2, np.abs(g.g[:, :, :2]))
    assert P == pytest.approx(expected, rel=1e-14)
    value, grad = radial_smoothness({("Cu", "Cu"): c}, 0, 0, 0, grids)
    assert value == 0.0 and np.all(grad[("Cu", "Cu")] == 0) and grad[("Cu", "Cu")].shape == c.shape


def test_mismatched_inputs_are_refused():
    grids = smoothness_grids({("Cu", "Cu"): bond(nradbase=5)})
    with pytest.raises(ValueError, match="same bonds"):
        radial_smoothness({("Cu", "Ni"): np.zeros((3, 3, 5))}, 1, 0, 0, grids)
    with pytest.raises(ValueError, match="expected shape"):
        radial_smoothness({("Cu", "Cu"): np.zeros((3, 3, 4))}, 1, 0, 0, grids)


# -- pacemaker's TensorFlow model -----------------------------------------------------------------

def test_equal_to_tensorpotential_on_the_reference_potentials():
    """P0..P2, sum|c| and sum c^2 of every B-basis potential of tests/data/potentials (1-3 elements,
    ChebExpCos, ChebPow, SBessel, fitted radial coefficients) against TensorPotential's own terms
    (tests/data/fit/tensorpotential_regularization.json, scripts/validate_fit_regularization.py)."""
    import json
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("validate_fit_regularization",
                                                  root / "scripts" / "validate_fit_regularization.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = json.loads((root / "tests" / "data" / "fit" / "tensorpotential_regularization.json").read_text())
    assert len(data["potentials"]) >= 6
    for name, ref in data["potentials"].items():
        P, l1, l2 = script.acemd_terms(root / "tests" / "data" / "potentials" / name)
        dev = [abs(a - b) / abs(b) if b else abs(a - b) for a, b in zip(P, ref["P"])]
        print(f"{name}: P relative deviation {dev[0]:.1e} {dev[1]:.1e} {dev[2]:.1e}")
        assert max(dev) < 1e-8, name
        assert l1 == pytest.approx(ref["l1"], rel=1e-13, abs=1e-30)       # TensorPotential stores 0 as 1e-32
        assert l2 == pytest.approx(ref["l2"], rel=1e-13, abs=1e-30)
