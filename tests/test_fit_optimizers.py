"""The fit's optimizers against scipy.optimize.minimize, restarts against uninterrupted runs, Adam on a
stochastic least-squares problem, early stopping and the errors.  Every comparison prints its figures."""
import numpy as np
import pytest
import scipy.optimize as so

from acemd.fit.optimizers import (EarlyStopping, OptimizerError, OptimizerState, check_options, epoch_order,
                                  minimize)


def rosen(x):
    return so.rosen(x), so.rosen_der(x)


def quadratic(n=30, seed=1):
    """A random convex quadratic 0.5 x.A.x - b.x (condition number ~1e3) and its minimum A^-1 b."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(np.logspace(0, 3, n)) @ q.T
    b = rng.normal(size=n)
    return (lambda x: (0.5 * x @ a @ x - b @ x, a @ x - b)), np.linalg.solve(a, b)


def decay_fit(seed=2):
    """Least squares y ~ c0 exp(-c1 t) + c2 sin(c3 t), 40 noisy points; its minimum by scipy.least_squares."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4, 40)
    y = 2.0 * np.exp(-1.3 * t) + 0.5 * np.sin(2.1 * t) + 0.01 * rng.normal(size=t.size)

    def residual(c):
        return c[0] * np.exp(-c[1] * t) + c[2] * np.sin(c[3] * t) - y

    def jacobian(c):
        e = np.exp(-c[1] * t)
        return np.column_stack([e, -c[0] * t * e, np.sin(c[3] * t), c[2] * t * np.cos(c[3] * t)])

    def fun(c):
        r = residual(c)
        return 0.5 * r @ r, jacobian(c).T @ r

    x0 = np.array([1.0, 1.0, 1.0, 2.0])
    ref = so.least_squares(residual, x0, jac=jacobian, xtol=1e-15, ftol=1e-15, gtol=1e-15).x
    return fun, x0, ref


def _rosen_start(n):
    x0 = np.zeros(n)
    x0[0] = -1.2
    return x0


PROBLEMS = [("rosenbrock-2", rosen, _rosen_start(2), np.ones(2)),
            ("rosenbrock-5", rosen, _rosen_start(5), np.ones(5)),
            ("rosenbrock-10", rosen, _rosen_start(10), np.ones(10)),
            ("quadratic-30", *quadratic()[:1], np.zeros(30), quadratic()[1]),
            ("least-squares-4", *decay_fit())]


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B"])
@pytest.mark.parametrize("name,fun,x0,xstar", PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_quasi_newton_matches_scipy(method, name, fun, x0, xstar):
    ours = minimize(fun, x0, method, maxiter=5000)
    ref = so.minimize(fun, x0, jac=True, method=method, options={"maxiter": 5000})
    dx, dx_ref = np.abs(ours.x - xstar).max(), np.abs(ref.x - xstar).max()
    print(f"\n{method:8s} {name:16s} ours: nit {ours.nit:4d} nfev {ours.nfev:4d} f {ours.fun:.3e} "
          f"|x-x*| {dx:.1e} ({ours.status})   scipy: nit {ref.nit:4d} nfev {ref.nfev:4d} f {ref.fun:.3e} "
          f"|x-x*| {dx_ref:.1e}")
    assert ours.success, ours.message
    tol = 1e-3 if name.startswith("quadratic") and method == "L-BFGS-B" else 1e-4
    assert dx < tol
    assert abs(ours.fun - ref.fun) <= 1e-8 * max(1.0, abs(ref.fun))
    assert abs(ours.nit - ref.nit) <= max(3, 0.2 * ref.nit)
    assert len(ours.history) == ours.nit + 1 and ours.history[-1] == ours.fun
    assert np.all(np.diff(ours.history) <= 0)            # line searches with the Armijo condition descend


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B"])
def test_iterates_follow_scipy(method):
    """The same algorithm step by step: the first 15 iterates on 5-d Rosenbrock equal scipy's to round-off."""
    x0 = _rosen_start(5)
    ours, theirs = [], []
    minimize(rosen, x0, method, maxiter=15, callback=lambda st: ours.append(st.x.copy()))
    so.minimize(rosen, x0, jac=True, method=method, options={"maxiter": 15},
                callback=lambda intermediate_result: theirs.append(intermediate_result.x.copy()))
    dev = max(np.abs(a - b).max() for a, b in zip(ours, theirs))
    print(f"\n{method}: max |x_ours - x_scipy| over {len(ours)} iterates: {dev:.2e}")
    assert len(ours) == len(theirs) == 15
    assert dev < 1e-9


def test_lbfgs_memory_option():
    fun, xstar = quadratic(60, seed=3)
    for m in (2, 10, 40):
        ours = minimize(fun, np.zeros(60), "L-BFGS-B", maxiter=5000, options={"maxcor": m, "gtol": 1e-8, "ftol": 0})
        ref = so.minimize(fun, np.zeros(60), jac=True, method="L-BFGS-B",
                          options={"maxcor": m, "gtol": 1e-8, "ftol": 0, "maxiter": 5000})
        print(f"\nmaxcor {m:2d}: ours nit {ours.nit}, |x-x*| {np.abs(ours.x - xstar).max():.1e};"
              f" scipy nit {ref.nit}, |x-x*| {np.abs(ref.x - xstar).max():.1e}")
        assert np.abs(ours.x - xstar).max() < 1e-5
        assert abs(ours.nit - ref.nit) <= max(3, 0.25 * ref.nit)
        assert ours.state.s_history.shape[0] <= m


def stochastic_least_squares(n_structures=200, n=6, seed=4):
    """Linear least squares with one 'structure' per group of 3 rows; the loss of a batch is its mean
    squared residual, so the full-set minimum is the ordinary least-squares solution."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_structures, 3, n))
    x_true = rng.normal(size=n)
    y = a @ x_true + 0.05 * rng.normal(size=(n_structures, 3))
    xstar = np.linalg.lstsq(a.reshape(-1, n), y.ravel(), rcond=None)[0]

    def fun(x, batch=None):
        idx = np.arange(n_structures) if batch is None else batch
        r = a[idx] @ x - y[idx]
        return (r * r).sum() / r.size, 2.0 * np.einsum("sri,sr->i", a[idx], r) / r.size

    return fun, xstar


def test_adam_converges_and_is_seed_deterministic():
    fun, xstar = stochastic_least_squares()
    seen = []

    def spy(x, batch=None):
        seen.append(batch)
        return fun(x, batch)

    opts = {"learning_rate": 0.05, "decay": 0.01}
    run = lambda seed, f=fun: minimize(f, np.zeros(6), "Adam", maxiter=230, options=opts,
                                       n_structures=200, batch_size=16, seed=seed)
    a, b, c = run(7, spy), run(7), run(8)
    full = minimize(fun, np.zeros(6), "Adam", maxiter=3000, options=opts)
    f_star = fun(xstar)[0]
    print(f"\nAdam, 200 structures, batches of 16: |x-x*| {np.abs(a.x - xstar).max():.1e} (seed 7), "
          f"{np.abs(c.x - xstar).max():.1e} (seed 8); full batch {np.abs(full.x - xstar).max():.1e}; "
          f"loss {fun(a.x)[0]:.6e} vs minimum {f_star:.6e}; seed 7 vs 8 differ by {np.abs(a.x - c.x).max():.1e}")
    assert np.abs(a.x - xstar).max() < 5e-3 and np.abs(c.x - xstar).max() < 5e-3
    assert np.abs(full.x - xstar).max() < 1e-3
    assert fun(a.x)[0] < f_star * (1 + 1e-3)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.history, b.history)     # same seed: same run
    assert not np.array_equal(a.x, c.x)
    # every epoch visits each structure once, in sorted batches of 16 (the 13th holds the last 8)
    epoch = seen[:13]
    assert [len(bt) for bt in epoch] == [16] * 12 + [8]
    assert all(np.all(np.diff(bt) > 0) for bt in epoch)
    assert np.array_equal(np.sort(np.concatenate(epoch)), np.arange(200))
    assert np.array_equal(np.concatenate(epoch), np.concatenate(
        [np.sort(epoch_order(7, 0, 200)[i:i + 16]) for i in range(0, 200, 16)]))
    assert not np.array_equal(np.concatenate(seen[13:26]), np.concatenate(epoch))   # a new order per epoch
    assert a.nit == a.state.epoch == 230 and a.nfev == a.nsteps == 230 * 13 and len(a.history) == a.nsteps
    assert full.nit == full.nsteps == 3000


def _run_with_checkpoint(tmp_path, method, fun, x0, total, k, **kw):
    """Iterates of an uninterrupted run, and of a run stopped after k iterations, saved to an .npz,
    restored and continued."""
    whole = []
    ref = minimize(fun, x0, method, maxiter=total, callback=lambda st: whole.append(st.x.copy()), **kw)
    part = []

    def stop_at_k(st):
        part.append(st.x.copy())
        return "SIGTERM" if st.nit == k else False

    first = minimize(fun, x0, method, maxiter=total, callback=stop_at_k, **kw)
    assert first.stopped_by == "SIGTERM" and first.nsteps == k and first.status == "stopped"
    np.savez(tmp_path / "ckpt.npz", **first.state.to_arrays(prefix="opt_"), other=np.arange(3))
    with np.load(tmp_path / "ckpt.npz") as saved:
        state = OptimizerState.from_arrays(dict(saved), prefix="opt_")
    rest = minimize(fun, None, method, maxiter=total, state=state, callback=lambda st: part.append(st.x.copy()),
                    **kw)
    return ref, whole, rest, part


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B", "Adam"])
def test_restart_is_bit_identical(tmp_path, method):
    fun, x0, kw = rosen, _rosen_start(6), {}
    total, k = 40, 17
    if method == "Adam":
        fun, _ = stochastic_least_squares()
        x0, total, k = np.zeros(6), 8, 37             # 8 epochs of 13 batches; k steps: inside an epoch
        kw = dict(n_structures=200, batch_size=16, seed=3, options={"learning_rate": 0.05},
                  test_fun=lambda x: fun(x)[0], display_step=2,
                  early_stopping=EarlyStopping(min_relative_test_loss_per_iter=1e-9, patience=50))
    ref, whole, rest, part = _run_with_checkpoint(tmp_path, method, fun, x0, total, k, **kw)
    same = [np.array_equal(a, b) for a, b in zip(whole, part)]
    print(f"\n{method}: {len(whole)} steps uninterrupted, {len(part)} with a checkpoint after {k}: "
          f"{sum(same)} bit-identical iterates; nfev {ref.nfev} vs {rest.nfev}; final f {ref.fun!r} vs {rest.fun!r}")
    assert len(whole) == len(part) == ref.nsteps == rest.nsteps
    assert all(same)
    assert np.array_equal(ref.x, rest.x) and np.array_equal(ref.history, rest.history)
    assert ref.nfev == rest.nfev and ref.message == rest.message
    assert np.array_equal(ref.test_losses, rest.test_losses)


def test_continue_with_a_larger_maxiter():
    """A run that ended at maxiter continues from its state to the run with the larger maxiter."""
    x0 = _rosen_start(4)
    short = minimize(rosen, x0, "BFGS", maxiter=10)
    assert short.status == "maxiter" and not short.success
    longer = minimize(rosen, x0, "BFGS", maxiter=25, state=OptimizerState.from_arrays(short.state.to_arrays()))
    direct = minimize(rosen, x0, "BFGS", maxiter=25)
    assert np.array_equal(longer.x, direct.x) and longer.nit == 25
    done = minimize(rosen, x0, "L-BFGS-B", maxiter=500)
    again = minimize(rosen, None, "L-BFGS-B", maxiter=500, state=OptimizerState.from_arrays(done.state.to_arrays()))
    assert done.status == again.status == "converged" and again.nfev == done.nfev and again.nit == done.nit


def test_early_stopping_train_loss():
    """f = 1e6 + Rosenbrock: every iteration lowers f by far less than 1e-3 relative, so the train-loss
    criterion stops the run after exactly `patience` iterations; without the offset it converges."""
    x0 = _rosen_start(3)
    stop = EarlyStopping.from_fit_config({"min_relative_train_loss_per_iter": 1e-3, "early_stopping_patience": 5})
    shifted = minimize(lambda x: (1e6 + so.rosen(x), so.rosen_der(x)), x0, "L-BFGS-B", maxiter=500,
                       early_stopping=stop, options={"ftol": 0})
    plain = minimize(rosen, x0, "L-BFGS-B", maxiter=500,
                     early_stopping=EarlyStopping(min_relative_train_loss_per_iter=1e-6, patience=5))
    rel = np.diff(shifted.history) / shifted.history[:-1]
    print(f"\nearly stopping: nit {shifted.nit}, {shifted.stopped_by}; relative changes {rel}; "
          f"without offset: nit {plain.nit}, {plain.message}")
    assert shifted.status == "early_stopping" and shifted.nit == 5 and "train loss" in shifted.stopped_by
    assert shifted.success and np.all(rel > -1e-3)
    assert plain.status == "converged" and plain.stopped_by is None
    assert EarlyStopping.from_fit_config({"early_stopping_patience": 5}) is None
    # Adam: an iteration is an epoch, the record its mean batch loss (no record at x0): patience + 1 epochs
    fun, _ = stochastic_least_squares()
    adam = minimize(lambda x, b=None: (1e6 + fun(x, b)[0], fun(x, b)[1]), np.zeros(6), "Adam", maxiter=100,
                    n_structures=200, batch_size=16, early_stopping=stop)
    print(f"Adam: stopped after {adam.nit} epochs ({adam.nsteps} steps): {adam.stopped_by}")
    assert adam.status == "early_stopping" and adam.nit == 6 and adam.nsteps == 6 * 13


def test_early_stopping_test_loss_and_best_iterate():
    """The test loss is measured every display_step iterations; when it stops falling (here: its minimum
    is away from the train minimum, so it rises) the run stops, and best_test_x holds its best iterate."""
    fun, xstar = quadratic(20, seed=5)
    x_test = xstar + 0.3
    test_fun = lambda x: float(np.sum((x - x_test) ** 2)) + 1.0
    stop = EarlyStopping(min_relative_test_loss_per_iter=1e-4, patience=6)
    res = minimize(fun, np.zeros(20), "L-BFGS-B", maxiter=1000, options={"gtol": 1e-12, "ftol": 0},
                   test_fun=test_fun, display_step=2, early_stopping=stop)
    rates = np.diff(res.test_losses) / res.test_losses[:-1] / 2
    print(f"\ntest-loss stop: nit {res.nit}, tests at {res.test_iterations.tolist()}, relative rates "
          f"{np.array2string(rates, precision=2)}; best test loss {res.best_test_loss:.4f}")
    assert res.status == "early_stopping" and "test loss" in res.stopped_by
    assert np.array_equal(res.test_iterations, np.arange(0, res.nit + 1, 2))
    assert np.all(rates[-3:] > -1e-4) and not np.all(rates[-4:-1] > -1e-4)   # stopped at the first window
    assert res.best_test_loss == res.test_losses.min() == test_fun(res.best_test_x)


def test_callback_reason_and_options():
    res = minimize(rosen, _rosen_start(3), "bfgs", maxiter=100, callback=lambda st: st.nit >= 4,
                   options={"gtol": 1e-3, "disp": True})
    assert res.stopped_by == "callback" and res.nit == 4 and res.state.method == "BFGS"
    assert check_options("L-BFGS-B", {"maxcor": 100})["maxcor"] == 100
    assert check_options("BFGS", None)["gtol"] == 1e-5


@pytest.mark.parametrize("call,match", [
    (lambda: minimize(rosen, np.zeros(2), "BFSG", maxiter=5), "unknown method 'BFSG'.*did you mean 'BFGS'"),
    (lambda: minimize(rosen, np.zeros(2), "Nelder-Mead", maxiter=5), "use one of BFGS, L-BFGS-B, Adam"),
    (lambda: minimize(rosen, np.zeros(2), "BFGS", maxiter=5, options={"gtl": 1}),
     "unknown option 'gtl' for BFGS.*did you mean 'gtol'"),
    (lambda: minimize(rosen, np.zeros(2), "L-BFGS-B", maxiter=5, options={"maxcor": 0}), "maxcor: must be a positive"),
    (lambda: minimize(rosen, np.zeros(2), "BFGS", maxiter=5, options={"maxiter": 7}), "give it once"),
    (lambda: minimize(lambda x: (np.nan, x), np.zeros(2), "BFGS", maxiter=5), "loss at the starting.*not finite"),
    (lambda: minimize(lambda x: (1.0, x + np.inf), np.zeros(3), "L-BFGS-B", maxiter=5), "3 non-finite gradient"),
    (lambda: minimize(lambda x, b=None: (np.inf, x), np.zeros(3), "Adam", maxiter=5), "starting coefficients"),
    (lambda: minimize(rosen, np.zeros(2), "Adam", maxiter=5, batch_size=4), "needs n_structures"),
])
def test_errors(call, match):
    with pytest.raises(OptimizerError, match=match) as err:
        call()
    print("\n", err.value)


def test_restore_mismatch_errors():
    saved = minimize(rosen, np.zeros(3), "BFGS", maxiter=3).state.to_arrays()
    with pytest.raises(OptimizerError, match="state is for BFGS, the input asks for L-BFGS-B") as e1:
        minimize(rosen, np.zeros(3), "L-BFGS-B", maxiter=5, state=saved)
    with pytest.raises(OptimizerError, match="has 3 coefficients, the model has 4") as e2:
        minimize(rosen, np.zeros(4), "BFGS", maxiter=5, state=saved)
    with pytest.raises(OptimizerError, match="lacks x") as e3:
        OptimizerState.from_arrays({k: v for k, v in saved.items() if k != "x"})
    with pytest.raises(OptimizerError, match="no valid hess_inv") as e5:
        minimize(rosen, None, "BFGS", maxiter=5, state={k: v for k, v in saved.items() if k != "hess_inv"})
    fun, _ = stochastic_least_squares()
    adam = minimize(fun, np.zeros(6), "Adam", maxiter=3, n_structures=200, batch_size=16, seed=1).state
    with pytest.raises(OptimizerError, match="batch_size 16, seed 1") as e4:
        minimize(fun, None, "Adam", maxiter=5, state=adam, n_structures=200, batch_size=32, seed=1)
    for e in (e1, e2, e3, e4, e5):
        print("\n", e.value)
