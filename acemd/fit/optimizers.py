"""The optimizers of the nonlinear fit: BFGS, L-BFGS-B and Adam, with checkpointable state.

pacemaker minimises its loss with ``scipy.optimize.minimize``, which cannot be stopped and
resumed mid-run; a fit of thousands of iterations must survive SIGTERM and continue to the same
result.  So the iterations are written out here, following scipy's algorithms (BFGS: the
inverse-Hessian update with scipy's Wolfe line searches and fallbacks; L-BFGS-B: the two-loop
recursion with L-BFGS-B's line-search constants, memory reset and stopping rules, no bounds), and
everything the next iteration needs lives in one :class:`OptimizerState` that round-trips through
plain numpy arrays (an ``.npz``).  A run continued from a restored state gives bit-identical
iterates.  Adam (mini-batches of structures drawn per epoch from a seeded generator) serves large
sets.  Early stopping follows pacemaker's keys.  Entry point: :func:`minimize`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import lru_cache

import numpy as np
from scipy.optimize import OptimizeResult
from scipy.optimize import line_search as _line_search_wolfe2   # public name of line_search_wolfe2

try:        # MINPACK's dcsrch: scipy's first choice in BFGS, and L-BFGS-B's own line search
    from scipy.optimize._linesearch import line_search_wolfe1 as _line_search_wolfe1
except ImportError:                                         # pragma: no cover - very old/new scipy
    _line_search_wolfe1 = None

from ..config import _suggest

METHODS = ("BFGS", "L-BFGS-B", "Adam")

# Options each method accepts (scipy's names and defaults for BFGS and L-BFGS-B).
DEFAULT_OPTIONS = {
    "BFGS": {"gtol": 1e-5, "norm": math.inf, "xrtol": 0.0, "c1": 1e-4, "c2": 0.9},
    "L-BFGS-B": {"gtol": 1e-5, "ftol": 2.220446049250313e-09, "maxcor": 10, "maxls": 20, "maxfun": 15000},
    "Adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "decay": 0.0, "gtol": 0.0},
}
# scipy options about printing and finite differences: accepted, without effect (exact gradients,
# the fit loop prints the progress).
IGNORED_OPTIONS = ("disp", "iprint", "eps", "finite_diff_rel_step", "return_all")

_TINY = 1e-300


class OptimizerError(ValueError):
    """Bad optimizer input: unknown method or option, non-finite start, a mismatched saved state."""


def normalize_method(method: str) -> str:
    """pacemaker's/scipy's method name (case-insensitive) -> its canonical spelling."""
    by_lower = {m.lower(): m for m in METHODS}
    name = by_lower.get(str(method).lower())
    if name is None:
        raise OptimizerError(f"fit.optimizer: unknown method {method!r}; use one of "
                             f"{', '.join(METHODS)}" + _suggest(str(method), METHODS))
    return name


def check_options(method: str, options: dict | None) -> dict:
    """The options of ``method`` with defaults filled in; an unknown or bad option is an error."""
    method = normalize_method(method)
    defaults = DEFAULT_OPTIONS[method]
    out = dict(defaults)
    for key, value in (options or {}).items():
        if key in IGNORED_OPTIONS or key == "maxiter":       # maxiter: checked by minimize()
            continue
        if key not in defaults:
            known = sorted(defaults) + ["maxiter"]
            raise OptimizerError(
                f"fit.options: unknown option {key!r} for {method}" + _suggest(key, known)
                + f"; {method} accepts {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
                or (math.isinf(value) and key != "norm"):
            raise OptimizerError(f"fit.options.{key}: must be a finite number, got {value!r}")
        out[key] = value
    for key in ("maxcor", "maxls", "maxfun"):
        if key in out and (int(out[key]) != out[key] or out[key] < 1):
            raise OptimizerError(f"fit.options.{key}: must be a positive integer, got {out[key]!r}")
    for key in ("gtol", "ftol", "xrtol", "decay"):
        if key in out and out[key] < 0:
            raise OptimizerError(f"fit.options.{key}: must be >= 0, got {out[key]!r}")
    if method == "BFGS" and not 0 < out["c1"] < out["c2"] < 1:
        raise OptimizerError(f"fit.options: BFGS needs 0 < c1 < c2 < 1, got c1={out['c1']}, c2={out['c2']}")
    if method == "Adam":
        if out["learning_rate"] <= 0 or out["eps"] <= 0:
            raise OptimizerError("fit.options: Adam needs learning_rate > 0 and eps > 0")
        if not (0 <= out["beta1"] < 1 and 0 <= out["beta2"] < 1):
            raise OptimizerError("fit.options: Adam needs 0 <= beta1 < 1 and 0 <= beta2 < 1")
    return out


@dataclass(frozen=True)
class EarlyStopping:
    """pacemaker's early stopping: stop when the loss stops falling fast enough.

    The relative change per iteration ``(L(t) - L(t-N)) / L(t-N) / N`` (N = 1 for the train loss,
    ``display_step`` for the test loss; an iteration of Adam is an epoch) must stay above
    ``-|min_relative_..._loss_per_iter|`` at every sample over the last ``patience`` iterations.
    """
    min_relative_train_loss_per_iter: float | None = None
    min_relative_test_loss_per_iter: float | None = None
    patience: int = 200

    KEYS = ("min_relative_train_loss_per_iter", "min_relative_test_loss_per_iter", "early_stopping_patience")

    @classmethod
    def from_fit_config(cls, fit: dict) -> "EarlyStopping | None":
        """From the keys of pacemaker's ``fit:`` section; None when neither threshold is set."""
        train = fit.get("min_relative_train_loss_per_iter")
        test = fit.get("min_relative_test_loss_per_iter")
        patience = fit.get("early_stopping_patience", 200)
        if not train and not test:
            return None
        if isinstance(patience, bool) or int(patience) != patience or patience < 1:
            raise OptimizerError(f"fit.early_stopping_patience: must be a positive integer, got {patience!r}")
        return cls(train or None, test or None, int(patience))


def _stalled(values, spacing: int, threshold: float, patience: int) -> str | None:
    """The early-stopping verdict for one loss record (None while it still falls fast enough)."""
    depth = max(1, math.ceil(patience / spacing))
    if len(values) < depth + 1:
        return None
    tail = np.asarray(values[-(depth + 1):], dtype=float)
    rate = (tail[1:] - tail[:-1]) / np.maximum(np.abs(tail[:-1]), _TINY) / spacing
    limit = -abs(threshold)
    if np.all(rate > limit):
        return (f"relative change per iteration {rate.min():+.2e} (best) / {rate[-1]:+.2e} (last) above "
                f"{limit:+.2e} over the last {patience} iterations")
    return None


@dataclass
class OptimizerState:
    """Everything an optimizer needs to continue: saved with :meth:`to_arrays`, restored with
    :meth:`from_arrays`.

    ``x, f, g``: the current iterate with its loss and gradient (for Adam: the last mini-batch's loss
    and gradient, evaluated before the last update).  ``f_previous``: the loss before the last step
    (BFGS's initial step guess, L-BFGS-B's ``ftol`` test).  ``history``: the loss per iteration
    (BFGS/L-BFGS-B: f(x0) then f after each iteration; Adam: the batch loss of each step).
    ``train_record``: the losses early stopping watches (per iteration; per epoch mean for Adam).
    ``status``: ``"running"`` or a terminal failure (``"line_search_failed"``, ``"nonfinite"``).
    """
    method: str
    x: np.ndarray
    f: float
    g: np.ndarray
    nit: int = 0                                  # steps taken (Adam: mini-batch steps)
    nfev: int = 0
    f_previous: float = math.nan
    step_norm: float = math.inf
    status: str = "running"
    message: str = ""
    history: list = field(default_factory=list)
    train_record: list = field(default_factory=list)
    test_iterations: list = field(default_factory=list)
    test_losses: list = field(default_factory=list)
    best_x: np.ndarray | None = None
    best_f: float = math.inf
    best_test_x: np.ndarray | None = None
    best_test_loss: float = math.inf
    hess_inv: np.ndarray | None = None            # BFGS
    s_history: np.ndarray | None = None           # L-BFGS-B: steps, oldest first, (k, n)
    y_history: np.ndarray | None = None           # L-BFGS-B: gradient changes, (k, n)
    adam_m: np.ndarray | None = None              # Adam: first and second moments
    adam_v: np.ndarray | None = None
    epoch: int = 0                                # Adam: epoch and next batch within it
    batch_position: int = 0
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    seed: int = 0
    batch_size: int = 0                           # 0: the full set every step
    n_structures: int = 0

    _LISTS = ("history", "train_record", "test_iterations", "test_losses")

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def to_arrays(self, prefix: str = "") -> dict:
        """A plain dict of numpy arrays (no pickles) for ``np.savez``; a copy, safe to keep."""
        out = {}
        for fd in fields(self):
            value = getattr(self, fd.name)
            if value is None:
                continue
            if fd.name in self._LISTS:
                value = np.array(value, dtype=np.int64 if fd.name == "test_iterations" else float)
            out[prefix + fd.name] = np.array(value)      # str -> 0-d unicode array, numbers -> 0-d
        return out

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> "OptimizerState":
        """The state :meth:`to_arrays` saved (from the dict or an opened ``.npz``)."""
        kwargs = {}
        for fd in fields(cls):
            key = prefix + fd.name
            if key not in arrays:
                continue
            value = np.asarray(arrays[key])
            if fd.name in cls._LISTS:
                value = value.tolist()
            elif value.ndim > 0:
                value = value.copy()
            elif value.dtype.kind == "U":
                value = str(value)
            elif value.dtype.kind in "iu":
                value = int(value)
            else:
                value = float(value)
            kwargs[fd.name] = value
        missing = [k for k in ("method", "x", "f", "g") if k not in kwargs]
        if missing:
            raise OptimizerError(f"the saved optimizer state lacks {', '.join(prefix + m for m in missing)}: "
                                 "not an optimizer checkpoint, or written by another program")
        return cls(**kwargs)


class _LineSearchFailed(Exception):
    pass


class _Objective:
    """``fun_and_grad`` with the evaluation count and a cache of the current iteration's points
    (scipy's line searches ask for f and g separately at the same point)."""

    def __init__(self, fun_and_grad, state: OptimizerState):
        self.fun_and_grad = fun_and_grad
        self.state = state
        self.cache = {}
        self.limit = None          # most new evaluations allowed (L-BFGS-B's maxls), None: no limit

    def begin(self, limit=None):
        self.cache = {}
        self.limit = limit

    def __call__(self, x, batch=None):
        key = x.tobytes()
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if self.limit is not None:
            if self.limit <= 0:
                raise _LineSearchFailed
            self.limit -= 1
        f, g = self.fun_and_grad(x) if batch is None else self.fun_and_grad(x, batch)
        g = np.array(g, dtype=float)
        if g.shape != x.shape:
            raise OptimizerError(f"fun_and_grad returned a gradient of shape {g.shape} for {x.shape[0]} "
                                 "coefficients")
        self.state.nfev += 1
        self.cache[key] = (float(f), g)
        return self.cache[key]

    def f(self, x):
        return self(x)[0]

    def g(self, x):
        return self(x)[1]


def _finite(f, g) -> bool:
    return bool(np.isfinite(f) and np.all(np.isfinite(g)))


def _nonfinite_start(f, g) -> OptimizerError:
    bad = np.flatnonzero(~np.isfinite(g))
    what = f"loss {f}" if not np.isfinite(f) else ""
    if bad.size:
        what += (", " if what else "") + f"{bad.size} non-finite gradient entries (first at index {bad[0]})"
    return OptimizerError(
        f"the loss at the starting coefficients is not finite ({what}): check the initial potential's "
        "coefficients, the data (NaN or infinite energies, forces, stresses or weights), and that no "
        "structure has atoms closer than the inner cutoff")


# --- BFGS --------------------------------------------------------------------------------------------

def _bfgs_step(state: OptimizerState, obj: _Objective, opts: dict) -> None:
    """One BFGS iteration as scipy's ``_minimize_bfgs``: dcsrch line search, else line_search_wolfe2."""
    x, g, hess_inv = state.x, state.g, state.hess_inv
    p = -np.dot(hess_inv, g)
    obj.begin()
    alpha = None
    kw = dict(c1=opts["c1"], c2=opts["c2"])
    if _line_search_wolfe1 is not None:
        alpha = _line_search_wolfe1(obj.f, obj.g, x, p, g, state.f, state.f_previous,
                                    amin=1e-100, amax=1e100, **kw)[0]
    if alpha is None:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alpha = _line_search_wolfe2(obj.f, obj.g, x, p, g, state.f, state.f_previous, amax=1e100, **kw)[0]
    if alpha is None:
        state.status, state.message = "line_search_failed", \
            "Desired error not necessarily achieved due to precision loss (line search failed)"
        return
    s = alpha * p
    x_new = x + s
    f_new, g_new = obj(x_new)
    if not _finite(f_new, g_new):
        state.status, state.message = "nonfinite", f"non-finite loss or gradient after iteration {state.nit}"
        return
    y = g_new - g
    sy = float(np.dot(y, s))
    rho = 1000.0 if sy == 0.0 else 1.0 / sy           # scipy's guard
    # H+ = (I - rho s y^T) H (I - rho y s^T) + rho s s^T, written as an O(n^2) rank-2 update
    u = rho * np.dot(hess_inv, y)
    c = rho * float(np.dot(y, u)) + rho
    update = np.outer(s, u)                         # at most 3 n x n arrays alive (H included)
    update += update.T                              # exactly symmetric, so H stays symmetric
    ss = np.outer(s, s)
    ss *= c
    update -= ss
    del ss
    hess_inv -= update
    state.f_previous, state.f, state.g, state.x = state.f, f_new, g_new, x_new
    state.step_norm = float(np.linalg.norm(s))


# --- L-BFGS-B (no bounds) ----------------------------------------------------------------------------

def _lbfgs_direction(state: OptimizerState) -> np.ndarray:
    """-H g by the two-loop recursion over the stored (s, y) pairs, H0 = (s.y / y.y) I."""
    s_hist, y_hist = state.s_history, state.y_history
    q = state.g.copy()
    k = s_hist.shape[0]
    rho = np.array([1.0 / np.dot(y_hist[i], s_hist[i]) for i in range(k)])
    a = np.empty(k)
    for i in range(k - 1, -1, -1):
        a[i] = rho[i] * np.dot(s_hist[i], q)
        q -= a[i] * y_hist[i]
    q *= np.dot(s_hist[-1], y_hist[-1]) / np.dot(y_hist[-1], y_hist[-1])
    for i in range(k):
        b = rho[i] * np.dot(y_hist[i], q)
        q += (a[i] - b) * s_hist[i]
    return -q


def _lbfgs_step(state: OptimizerState, obj: _Objective, opts: dict) -> None:
    """One L-BFGS-B iteration without bounds: dcsrch with L-BFGS-B's constants (ftol 1e-3, gtol 0.9,
    xtol 0.1, at most ``maxls`` evaluations); a failed search resets the memory and retries along
    -g, as L-BFGS-B does."""
    x, g = state.x, state.g
    while True:
        if state.s_history.shape[0] == 0:
            p = -g / np.linalg.norm(g)                  # L-BFGS-B's first trial step 1/|g|
        else:
            p = _lbfgs_direction(state)
            if not np.dot(p, g) < 0:
                p = None
        alpha = None
        if p is not None:
            obj.begin(limit=int(opts["maxls"]))
            try:
                if _line_search_wolfe1 is not None:
                    alpha = _line_search_wolfe1(obj.f, obj.g, x, p, g, state.f, None, c1=1e-3, c2=0.9,
                                                amax=1e10, amin=0.0, xtol=0.1)[0]
                else:                                   # pragma: no cover
                    alpha = _line_search_wolfe2(obj.f, obj.g, x, p, g, state.f, None, c1=1e-3, c2=0.9,
                                                amax=1e10)[0]
            except _LineSearchFailed:
                alpha = None
            obj.limit = None
        if alpha is not None:
            break
        if state.s_history.shape[0] == 0:
            state.status, state.message = "line_search_failed", "ABNORMAL: line search failed along -g"
            return
        state.s_history = state.s_history[:0]
        state.y_history = state.y_history[:0]
    s = alpha * p
    x_new = x + s
    f_new, g_new = obj(x_new)
    if not _finite(f_new, g_new):
        state.status, state.message = "nonfinite", f"non-finite loss or gradient after iteration {state.nit}"
        return
    y = g_new - g
    # L-BFGS-B skips the pair unless s.y > eps * (-g.s): the curvature must be positive
    if np.dot(s, y) > np.finfo(float).eps * -np.dot(g, s):
        m = int(opts["maxcor"])
        state.s_history = np.vstack([state.s_history[-(m - 1):] if m > 1 else state.s_history[:0], s])
        state.y_history = np.vstack([state.y_history[-(m - 1):] if m > 1 else state.y_history[:0], y])
    state.f_previous, state.f, state.g, state.x = state.f, f_new, g_new, x_new
    state.step_norm = float(np.linalg.norm(s))


# --- Adam --------------------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def epoch_order(seed: int, epoch: int, n_structures: int) -> np.ndarray:
    """The order of the structures in one epoch: a permutation from a generator keyed by (seed, epoch),
    so a restored run draws the same batches without saving a generator's internal state."""
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n_structures)
    order.flags.writeable = False
    return order


def iterations(state: OptimizerState) -> int:
    """Completed iterations in the user's sense: steps for BFGS/L-BFGS-B, epochs for Adam."""
    return state.epoch if state.method == "Adam" else state.nit


def batches_per_epoch(state: OptimizerState) -> int:
    if state.batch_size <= 0:
        return 1
    return -(-state.n_structures // state.batch_size)


def next_batch(state: OptimizerState) -> np.ndarray | None:
    """The sorted structure indices of the next mini-batch (None: the full set)."""
    if state.batch_size <= 0:
        return None
    order = epoch_order(state.seed, state.epoch, state.n_structures)
    start = state.batch_position * state.batch_size
    return np.sort(order[start:start + state.batch_size])


def _adam_step(state: OptimizerState, obj: _Objective, opts: dict) -> None:
    """One Adam step (Kingma and Ba 2015, bias-corrected moments, eps outside the root) on the next batch;
    the learning rate decays as lr / (1 + decay * step)."""
    obj.begin()
    f, g = obj(state.x, next_batch(state))
    if not _finite(f, g):
        if state.nit == 0:
            raise _nonfinite_start(f, g)
        state.status, state.message = "nonfinite", f"non-finite loss or gradient at step {state.nit + 1}"
        return
    b1, b2 = opts["beta1"], opts["beta2"]
    t = state.nit + 1
    state.adam_m = b1 * state.adam_m + (1.0 - b1) * g
    state.adam_v = b2 * state.adam_v + (1.0 - b2) * (g * g)
    m_hat = state.adam_m / (1.0 - b1 ** t)
    v_hat = state.adam_v / (1.0 - b2 ** t)
    lr = opts["learning_rate"] / (1.0 + opts["decay"] * (t - 1))
    step = lr * m_hat / (np.sqrt(v_hat) + opts["eps"])
    state.x = state.x - step
    state.step_norm = float(np.linalg.norm(step))
    state.f_previous, state.f, state.g = state.f, f, g
    state.history.append(f)
    state.epoch_loss_sum += f
    state.epoch_batches += 1
    state.batch_position += 1
    if state.batch_position >= batches_per_epoch(state):
        state.epoch += 1
        state.batch_position = 0


# --- the loop ----------------------------------------------------------------------------------------

def _new_state(method, fun_and_grad, x0, n_structures, batch_size, seed) -> OptimizerState:
    x0 = np.array(x0, dtype=float).ravel()
    if x0.size == 0:
        raise OptimizerError("no trainable coefficients: x0 is empty")
    state = OptimizerState(method=method, x=x0, f=math.nan, g=np.zeros_like(x0), seed=int(seed))
    if method == "Adam":
        if batch_size is not None:
            if n_structures is None or n_structures < 1:
                raise OptimizerError("Adam with batch_size needs n_structures, the number of training structures")
            if int(batch_size) != batch_size or batch_size < 1:
                raise OptimizerError(f"fit.batch_size: must be a positive integer, got {batch_size!r}")
            if batch_size < n_structures:
                state.batch_size, state.n_structures = int(batch_size), int(n_structures)
        if state.seed < 0:
            raise OptimizerError(f"seed must be >= 0, got {seed}")
        state.adam_m = np.zeros_like(x0)
        state.adam_v = np.zeros_like(x0)
        return state
    obj = _Objective(fun_and_grad, state)
    f, g = obj(x0)
    if not _finite(f, g):
        raise _nonfinite_start(f, g)
    state.f, state.g = f, g
    state.history.append(f)
    state.train_record.append(f)
    state.best_x, state.best_f = x0.copy(), f
    if method == "BFGS":
        state.hess_inv = np.eye(x0.size)
        state.f_previous = f + np.linalg.norm(g) / 2       # scipy: the first trial step ~ 1/|g|
    else:
        state.s_history = np.zeros((0, x0.size))
        state.y_history = np.zeros((0, x0.size))
    return state


def _check_restored(state, method, x0, n_structures, batch_size, seed) -> OptimizerState:
    """The saved state (object, dict or opened .npz), checked against this run."""
    if not isinstance(state, OptimizerState):
        state = OptimizerState.from_arrays(state)
    if state.method != method:
        raise OptimizerError(f"the saved optimizer state is for {state.method}, the input asks for {method}: "
                             f"set fit.optimizer: {state.method} to continue it, or start without --restart")
    n = state.n
    need = {"BFGS": {"hess_inv": (n, n)}, "L-BFGS-B": {"s_history": (None, n), "y_history": (None, n)},
            "Adam": {"adam_m": (n,), "adam_v": (n,)}}[method]
    for name, shape in need.items():
        value = getattr(state, name)
        if value is None or value.ndim != len(shape) or state.g.shape != (n,) \
                or any(d is not None and d != v for d, v in zip(shape, value.shape)):
            raise OptimizerError(f"the saved {method} state has no valid {name}: the checkpoint is damaged "
                                 "or was written by another program; start without --restart")
    if x0 is not None and np.size(x0) != n:
        raise OptimizerError(f"the saved optimizer state has {state.n} coefficients, the model has "
                             f"{np.size(x0)}: it belongs to another basis (or another ladder step)")
    if method == "Adam":
        want = int(batch_size) if batch_size is not None and n_structures is not None \
            and batch_size < n_structures else 0
        if want != state.batch_size or (want and (int(n_structures), int(seed)) != (state.n_structures,
                                                                                     state.seed)):
            raise OptimizerError(
                f"the saved Adam state used batch_size {state.batch_size or 'full'}, seed {state.seed}, "
                f"{state.n_structures or n_structures} structures; the input gives batch_size "
                f"{batch_size or 'full'}, seed {seed}, {n_structures} structures: keep them to continue")
    return state


def _termination(state, method, opts, maxiter, early_stopping) -> tuple[str, str, bool] | None:
    """(status, message, success) when the run is over, else None."""
    if state.status != "running":
        return state.status, state.message, False
    gnorm = float(np.linalg.norm(state.g, ord=opts.get("norm", math.inf))) if state.nit or method != "Adam" \
        else math.inf
    if method != "Adam" or (state.batch_size == 0 and opts["gtol"] > 0):
        if gnorm <= opts["gtol"]:
            return "converged", "Optimization terminated successfully (gradient norm <= gtol).", True
    if method == "BFGS" and state.nit and state.step_norm <= opts["xrtol"] * (opts["xrtol"] + np.linalg.norm(state.x)):
        return "converged", "Optimization terminated successfully (step <= xrtol).", True
    if method == "L-BFGS-B" and state.nit:
        fp, f = state.f_previous, state.f
        if fp - f <= opts["ftol"] * max(abs(fp), abs(f), 1.0):
            return "converged", "CONVERGENCE: relative reduction of f <= ftol", True
    if early_stopping is not None:
        if early_stopping.min_relative_train_loss_per_iter:
            why = _stalled(state.train_record, 1, early_stopping.min_relative_train_loss_per_iter,
                           early_stopping.patience)
            if why:
                return "early_stopping", "EARLY STOPPING (train loss): " + why, True
        if early_stopping.min_relative_test_loss_per_iter and len(state.test_iterations) > 1:
            spacing = state.test_iterations[-1] - state.test_iterations[-2]
            why = _stalled(state.test_losses, max(spacing, 1), early_stopping.min_relative_test_loss_per_iter,
                           early_stopping.patience)
            if why:
                return "early_stopping", "EARLY STOPPING (test loss): " + why, True
    if iterations(state) >= maxiter:
        return "maxiter", "Maximum number of iterations has been exceeded.", False
    if method == "L-BFGS-B" and state.nfev >= opts["maxfun"]:
        return "maxfun", "Maximum number of function evaluations has been exceeded.", False
    return None


def _record(state: OptimizerState, method: str) -> bool:
    """After a successful step: the loss history, the early-stopping record, the best iterate; True when
    the step completed an iteration (always for BFGS/L-BFGS-B, at the end of an epoch for Adam)."""
    if method == "Adam":
        if state.batch_position == 0:           # an epoch ended: its mean batch loss
            value = state.epoch_loss_sum / state.epoch_batches
            state.epoch_loss_sum, state.epoch_batches = 0.0, 0
        else:
            return False
    else:
        state.history.append(state.f)
        value = state.f
    state.train_record.append(value)
    if value < state.best_f:
        state.best_f, state.best_x = value, state.x.copy()
    return True


def _test(state: OptimizerState, test_fun) -> None:
    loss = float(test_fun(state.x))
    state.test_iterations.append(iterations(state))
    state.test_losses.append(loss)
    if loss < state.best_test_loss:
        state.best_test_loss, state.best_test_x = loss, state.x.copy()


_STEPS = {"BFGS": _bfgs_step, "L-BFGS-B": _lbfgs_step, "Adam": _adam_step}


def minimize(fun_and_grad, x0, method: str = "BFGS", *, maxiter: int, options: dict | None = None,
             state: OptimizerState | dict | None = None, callback=None, n_structures: int | None = None,
             batch_size: int | None = None, seed: int = 0, test_fun=None, display_step: int = 20,
             early_stopping: EarlyStopping | None = None) -> OptimizeResult:
    """Minimise ``fun_and_grad(x) -> (f, g)`` from ``x0`` (or continue ``state``) by ``method``.

    An iteration is one step for BFGS/L-BFGS-B and one epoch (a pass over the training set) for Adam;
    ``maxiter``, ``display_step`` and the early-stopping patience count iterations, of the whole run (a
    restored state's included).  Adam with ``batch_size`` calls ``fun_and_grad(x, batch)`` with the sorted
    indices of ``batch_size`` of the ``n_structures`` structures, a new order each epoch from ``seed``.
    ``test_fun(x) -> loss`` is evaluated at the start and every ``display_step`` iterations.
    ``callback(state)`` runs after every step (Adam: every mini-batch); a truthy return (a string: the
    reason) stops the run with ``stopped_by`` set and ``state`` ready to save and continue.
    The result has x, fun, jac, jac_norm, nit (iterations), nsteps, nfev, success, status, message, stopped_by, state,
    history (loss per iteration), test_iterations/test_losses, best_x/best_fun, best_test_x/best_test_loss.
    """
    method = normalize_method(method)
    opts = check_options(method, options)
    if options and "maxiter" in options and options["maxiter"] != maxiter:
        raise OptimizerError(f"fit.options.maxiter ({options['maxiter']}) differs from fit.maxiter ({maxiter}): "
                             "give it once")
    if isinstance(maxiter, bool) or int(maxiter) != maxiter or maxiter < 0:
        raise OptimizerError(f"fit.maxiter: must be a non-negative integer, got {maxiter!r}")
    if int(display_step) != display_step or display_step < 1:
        raise OptimizerError(f"display_step: must be a positive integer, got {display_step!r}")
    if state is None:
        state = _new_state(method, fun_and_grad, x0, n_structures, batch_size, seed)
        if test_fun is not None:
            _test(state, test_fun)
    else:
        state = _check_restored(state, method, x0, n_structures, batch_size, seed)
    obj = _Objective(fun_and_grad, state)
    step = _STEPS[method]
    stopped_by = None
    while True:
        done = _termination(state, method, opts, maxiter, early_stopping)
        if done or stopped_by:
            break
        step(state, obj, opts)
        if state.status != "running":
            continue
        state.nit += 1
        if _record(state, method) and test_fun is not None and iterations(state) % display_step == 0:
            _test(state, test_fun)
        if callback is not None:
            asked = callback(state)
            if asked:
                stopped_by = asked if isinstance(asked, str) else "callback"
    obj.begin()
    if done:        # a stop request on the iteration that ended the run anyway is moot
        status, message, success = done
        stopped_by = message if status == "early_stopping" else None
    else:
        status, message, success = "stopped", f"stopped at iteration {iterations(state)}: {stopped_by}", False
    return OptimizeResult(
        x=state.x.copy(), fun=state.f, jac=state.g.copy(),
        jac_norm=float(np.max(np.abs(state.g))) if state.g.size else 0.0,
        nit=iterations(state), nsteps=state.nit, nfev=state.nfev, success=success, status=status, message=message,
        stopped_by=stopped_by, state=state, history=np.array(state.history),
        test_iterations=np.array(state.test_iterations, dtype=np.int64), test_losses=np.array(state.test_losses),
        best_x=None if state.best_x is None else state.best_x.copy(), best_fun=state.best_f,
        best_test_x=None if state.best_test_x is None else state.best_test_x.copy(),
        best_test_loss=state.best_test_loss)
