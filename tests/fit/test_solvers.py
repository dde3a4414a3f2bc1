"""Ridge and Bayesian solvers on synthetic linear problems with known answers."""
import numpy as np
import pytest

from acemd.fit.solvers import NormalEquations, SolverError, solve_bayesian, solve_ridge


def _problem(seed, nrows=3000, ncols=40, spread=6.0):
    """A design matrix whose columns span ``spread`` decades (as ACE's do) and true coefficients."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((nrows, ncols)) * np.logspace(0, -spread, ncols)[None, :]
    c_true = rng.standard_normal(ncols) / np.logspace(0, -spread, ncols)
    return rng, a, c_true


def _equations(a, b, w, chunk=37, buffer_rows=256):
    ne = NormalEquations(a.shape[1], buffer_rows=buffer_rows)
    for s in range(0, len(a), chunk):
        ne.add(a[s:s + chunk], b[s:s + chunk], w[s:s + chunk])
    return ne


def test_normal_equations_match_dense_products():
    rng, a, _ = _problem(1, nrows=500, ncols=12, spread=2)
    b = rng.standard_normal(500)
    w = rng.uniform(0.1, 2.0, 500)
    w[::7] = 0.0                          # zero-weight rows are skipped
    ne = _equations(a, b, w)
    g = ne.matrix()
    dev = np.abs(g - (a.T * w) @ a).max() / np.abs(g).max()
    print(f"G relative deviation {dev:.2e}")
    assert dev < 1e-13
    assert np.allclose(ne.rhs, (a.T * w) @ b, rtol=1e-12, atol=1e-14)
    assert ne.target_sq == pytest.approx(float(b @ (w * b)), rel=1e-12)
    assert ne.nrows == int((w > 0).sum())
    back = NormalEquations.from_packed(12, ne.packed())
    assert np.array_equal(back.matrix(), g) and back.nrows == ne.nrows


def test_ridge_recovers_exact_coefficients_over_six_decades():
    _, a, c_true = _problem(2)
    b = a @ c_true
    sol = solve_ridge(_equations(a, b, np.ones(len(b))), l2=0.0)
    rel = np.abs(sol.coefficients - c_true).max() / np.abs(c_true).max()
    print(f"ridge teacher-student: max relative coefficient error {rel:.2e}, cond {sol.condition_number:.2e}")
    assert rel < 1e-8
    assert sol.weighted_residual_sq < 1e-16 * float(b @ b)


def test_ridge_penalty_matches_closed_form():
    rng, a, c_true = _problem(3, spread=1)
    b = a @ c_true + 0.1 * rng.standard_normal(len(a))
    w = rng.uniform(0.5, 1.5, len(b))
    lam = 3.0
    sol = solve_ridge(_equations(a, b, w), l2=lam)
    ref = np.linalg.solve((a.T * w) @ a + lam * np.eye(a.shape[1]), (a.T * w) @ b)
    dev = np.abs(sol.coefficients - ref).max()
    print(f"ridge with L2 = {lam}: max deviation from the closed form {dev:.2e}")
    assert dev < 1e-10


def test_bayesian_noise_estimate_within_ten_percent():
    rng, a, c_true = _problem(4, nrows=6000, ncols=60)
    sigma = 0.05
    b = a @ c_true + sigma * rng.standard_normal(len(a))
    w = np.full(len(b), 0.25)             # weights scale the rows: sigma of a row = 1/sqrt(beta w)
    sol = solve_bayesian(_equations(a, b, w))
    est = sol.noise_sigma(0.25)
    print(f"Bayesian: noise {est:.5f} vs true {sigma}, alpha {sol.alpha:.3g}, "
          f"gamma {sol.effective_parameters:.2f} of {a.shape[1]}, {sol.iterations} iterations")
    assert abs(est / sigma - 1.0) < 0.10
    # the posterior covariance is the inverse of the regularised precision
    cov = sol.covariance()
    assert np.allclose(cov, cov.T, rtol=1e-10, atol=1e-300)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_committee_samples_the_posterior():
    rng, a, c_true = _problem(5, nrows=2000, ncols=10, spread=1)
    b = a @ c_true + 0.2 * rng.standard_normal(len(a))
    sol = solve_bayesian(_equations(a, b, np.ones(len(b))))
    draws = sol.committee(4000, seed=7)
    again = sol.committee(4000, seed=7)
    assert np.array_equal(draws, again)
    mean_dev = np.abs(draws.mean(axis=0) - sol.coefficients).max() / np.sqrt(np.diag(sol.covariance())).max()
    cov_dev = np.abs(np.cov(draws.T) - sol.covariance()).max() / np.abs(sol.covariance()).max()
    print(f"committee of 4000: mean off by {mean_dev:.3f} sigma, covariance relative deviation {cov_dev:.3f}")
    assert mean_dev < 0.1 and cov_dev < 0.1


def test_unused_columns_get_zero_and_no_rows_is_an_error():
    rng, a, c_true = _problem(6, nrows=300, ncols=8, spread=1)
    a[:, 3] = 0.0
    b = a @ c_true
    for solve in (lambda ne: solve_ridge(ne, 1e-8), solve_bayesian):
        sol = solve(_equations(a, b, np.ones(len(b))))
        assert list(sol.unused_columns) == [3] and sol.coefficients[3] == 0.0
    with pytest.raises(SolverError, match="no weighted rows"):
        solve_ridge(NormalEquations(4), 0.0)
    with pytest.raises(SolverError, match="not finite"):
        NormalEquations(2).add([[np.nan, 1.0]], [1.0], [1.0])


def test_auto_kappa_by_hand():
    """kappa: auto on two structures worked by hand (pacemaker: ddof 1 for energies, 0 for force norms)."""
    from types import SimpleNamespace
    from acemd.fit.assembly import auto_kappa
    a = SimpleNamespace(energy=-6.0, natoms=2, forces=np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]))
    b = SimpleNamespace(energy=-2.0, natoms=1, forces=np.array([[0.0, 0.0, 2.0]]))
    # energies per atom -3, -2: sample variance 0.5; force norms 5, 1, 2: population variance 26/9
    assert auto_kappa([a, b]) == pytest.approx(0.5 / (0.5 + 26 / 9), rel=1e-14)
