"""Linear least squares on the normal equations: weighted ridge and Bayesian regression.

The fit never holds the design matrix: rows are added to the normal equations
G = AᵀWA, h = AᵀWb (and bᵀWb, the row count) as they are computed, so memory is
K² whatever the number of structures.  Both solvers work on the column-scaled
system (columns divided by sqrt(G_kk)), which keeps the ACE basis — whose columns
span many orders of magnitude — solvable in double precision; the penalty of the
ridge is still pacemaker's L2 on the raw coefficients.

Bayesian linear regression (MacKay's evidence approximation, as in
ACEpotentials.jl and ace-jax): prior c' ~ N(0, α⁻¹ I) on the scaled coefficients,
noise on the weighted rows ~ N(0, β⁻¹); α and β maximise the evidence.  The
posterior N(μ, Σ) gives a committee of coefficient vectors and predictive variances.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

__all__ = ["NormalEquations", "LinearSolution", "solve_ridge", "solve_bayesian", "SolverError"]


class SolverError(ValueError):
    """The linear system cannot be solved as asked (no data, NaN rows, singular without a penalty)."""


class NormalEquations:
    """Running sums G = AᵀWA, h = AᵀWb, bᵀWb and the number of weighted rows.

    Rows arrive in blocks of any size; they are staged in a buffer of
    ``buffer_rows`` rows and folded into G with one symmetric rank-k update (BLAS
    ``dsyrk``), which is much faster than one small product per structure.
    """

    def __init__(self, ncols: int, buffer_rows: int = 4096):
        self.ncols = int(ncols)
        self.gram = np.zeros((self.ncols, self.ncols), order="F")    # upper triangle filled
        self.rhs = np.zeros(self.ncols)
        self.target_sq = 0.0
        self.nrows = 0
        self._buf = np.zeros((max(int(buffer_rows), 1), self.ncols))
        self._buf_b = np.zeros(len(self._buf))
        self._fill = 0

    def add(self, rows, targets, weights):
        """Add rows (n, K) with targets (n,) and weights (n,) (rows of weight 0 are skipped)."""
        rows = np.asarray(rows, dtype=float).reshape(-1, self.ncols)
        targets = np.asarray(targets, dtype=float).reshape(-1)
        weights = np.broadcast_to(np.asarray(weights, dtype=float), targets.shape)
        keep = weights > 0
        if not keep.all():
            rows, targets, weights = rows[keep], targets[keep], weights[keep]
        if len(rows) == 0:
            return
        if not (np.isfinite(rows).all() and np.isfinite(targets).all()):
            raise SolverError("a design row or target is not finite (NaN or inf)")
        sw = np.sqrt(weights)
        start = 0
        while start < len(rows):
            take = min(len(rows) - start, len(self._buf) - self._fill)
            sl = slice(self._fill, self._fill + take)
            self._buf[sl] = rows[start:start + take] * sw[start:start + take, None]
            self._buf_b[sl] = targets[start:start + take] * sw[start:start + take]
            self._fill += take
            start += take
            if self._fill == len(self._buf):
                self._flush()
        self.nrows += len(rows)

    def _flush(self):
        if self._fill == 0:
            return
        a = self._buf[:self._fill]
        b = self._buf_b[:self._fill]
        self.gram = blas.dsyrk(1.0, a, beta=1.0, c=self.gram, trans=1, lower=0, overwrite_c=1)
        self.rhs += a.T @ b
        self.target_sq += float(b @ b)
        self._fill = 0

    def packed(self) -> np.ndarray:
        """Everything as one flat array (for a sum over MPI ranks)."""
        self._flush()
        return np.concatenate([np.triu(self.gram).ravel(), self.rhs, [self.target_sq, self.nrows]])

    @classmethod
    def from_packed(cls, ncols: int, flat) -> NormalEquations:
        ne = cls(ncols, buffer_rows=1)
        k2 = ncols * ncols
        upper = np.asarray(flat[:k2]).reshape(ncols, ncols)
        ne.gram = np.asfortranarray(upper)
        ne.rhs = np.array(flat[k2:k2 + ncols])
        ne.target_sq = float(flat[k2 + ncols])
        ne.nrows = int(round(flat[k2 + ncols + 1]))
        return ne

    def matrix(self) -> np.ndarray:
        """The full symmetric G."""
        self._flush()
        upper = np.triu(self.gram)
        return upper + np.triu(upper, 1).T


@dataclass
class LinearSolution:
    """Coefficients and what the solver knows about them."""

    coefficients: np.ndarray            # (K,)
    method: str                         # "ridge" | "bayesian"
    condition_number: float             # of the (scaled, penalised) system solved
    unused_columns: np.ndarray          # indices of columns without any data (coefficient 0)
    weighted_residual_sq: float         # (b - Ac)ᵀ W (b - Ac)
    nrows: int
    dropped_directions: int = 0         # ridge: eigen-directions below round-off, left out (minimum norm)
    # Bayesian only
    alpha: float | None = None          # prior precision on the scaled coefficients
    beta: float | None = None           # noise precision of the weighted rows
    effective_parameters: float | None = None   # γ = number of well-determined parameters
    log_evidence: float | None = None
    iterations: int = 0
    _scale: np.ndarray | None = None    # column scale d (c = c' / d)
    _evecs: np.ndarray | None = None
    _post_eig: np.ndarray | None = None  # eigenvalues of the posterior precision α + βλ

    def noise_sigma(self, row_weight: float) -> float:
        """Noise standard deviation of a row of weight ``row_weight`` (Bayesian): 1/sqrt(β w)."""
        if self.beta is None:
            raise SolverError("the noise estimate needs solver = 'bayesian'")
        return float(1.0 / np.sqrt(self.beta * row_weight))

    def covariance(self) -> np.ndarray:
        """Posterior covariance of the raw coefficients (Bayesian), (K, K) in coefficient units²."""
        if self._post_eig is None:
            raise SolverError("the posterior covariance needs solver = 'bayesian'")
        v = self._evecs / self._scale[:, None]
        return (v / self._post_eig) @ v.T

    def committee(self, size: int, seed: int) -> np.ndarray:
        """``size`` coefficient vectors drawn from the posterior (Bayesian), shape (size, K)."""
        if self._post_eig is None:
            raise SolverError("a committee needs solver = 'bayesian' (the posterior to sample)")
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((size, len(self._post_eig)))
        draws_scaled = (z / np.sqrt(self._post_eig)) @ self._evecs.T
        return self.coefficients[None, :] + draws_scaled / self._scale[None, :]


def _scaled(ne: NormalEquations):
    g = ne.matrix()
    diag = np.diag(g).copy()
    if not np.all(np.isfinite(g)):
        raise SolverError("the normal equations contain NaN or inf")
    unused = np.flatnonzero(diag <= 0.0)
    scale = np.sqrt(np.where(diag > 0.0, diag, 1.0))
    gs = g / scale[:, None] / scale[None, :]
    hs = ne.rhs / scale
    return g, gs, hs, scale, unused


def _residual_sq(ne, g, c):
    return float(max(ne.target_sq - 2.0 * c @ ne.rhs + c @ g @ c, 0.0))


def solve_ridge(ne: NormalEquations, l2: float) -> LinearSolution:
    """min (b - Ac)ᵀW(b - Ac) + l2 |c|²  (pacemaker's L2_coeffs on the raw coefficients).

    Solved by eigendecomposition of the column-scaled system, so a rank-deficient
    G with ``l2 = 0`` gives the minimum-norm solution (in scaled coefficients)
    instead of failing; the condition number is reported.
    """
    if ne.nrows == 0:
        raise SolverError("no weighted rows: nothing to fit (check the data and the weights)")
    g, gs, hs, scale, unused = _scaled(ne)
    penalty = np.where(np.diag(g) > 0, l2 / scale**2, max(l2, 1.0))
    m = gs + np.diag(penalty)
    evals, evecs = np.linalg.eigh(m)
    top = float(evals[-1])
    floor = top * len(evals) * np.finfo(float).eps
    good = evals > floor
    inv = np.where(good, 1.0 / np.where(good, evals, 1.0), 0.0)
    cs = evecs @ (inv * (evecs.T @ hs))
    c = cs / scale
    c[unused] = 0.0
    positive = evals[evals > 0]
    cond = top / float(positive.min()) if len(positive) else np.inf
    return LinearSolution(coefficients=c, method="ridge", condition_number=cond, unused_columns=unused,
                          weighted_residual_sq=_residual_sq(ne, g, c), nrows=ne.nrows,
                          dropped_directions=int((~good).sum()))


def solve_bayesian(ne: NormalEquations, max_iterations: int = 500, tolerance: float = 1e-10
                   ) -> LinearSolution:
    """Bayesian ridge with α (prior) and β (noise) from the evidence (MacKay's fixed point)."""
    if ne.nrows == 0:
        raise SolverError("no weighted rows: nothing to fit (check the data and the weights)")
    g, gs, hs, scale, unused = _scaled(ne)
    used = np.setdiff1d(np.arange(ne.ncols), unused)
    gu = gs[np.ix_(used, used)]
    hu = hs[used]
    lam, evecs = np.linalg.eigh(gu)
    lam = np.clip(lam, 0.0, None)
    hv = evecs.T @ hu
    n = float(ne.nrows)
    k = float(len(used))
    alpha = 1.0
    beta = n / max(ne.target_sq, np.finfo(float).tiny)
    it = 0
    for it in range(1, max_iterations + 1):
        post = alpha + beta * lam
        mu_v = beta * hv / post
        gamma = float(np.sum(beta * lam / post))
        mu_sq = float(mu_v @ mu_v)
        resid = max(ne.target_sq - 2.0 * mu_v @ hv + float(np.sum(lam * mu_v**2)), 1e-300)
        alpha_new = gamma / max(mu_sq, 1e-300)
        beta_new = max(n - gamma, 1e-12) / resid
        change = max(abs(np.log(alpha_new / alpha)), abs(np.log(beta_new / beta)))
        alpha, beta = alpha_new, beta_new
        if change < tolerance:
            break
    post = alpha + beta * lam
    mu_v = beta * hv / post
    gamma = float(np.sum(beta * lam / post))
    resid = max(ne.target_sq - 2.0 * mu_v @ hv + float(np.sum(lam * mu_v**2)), 0.0)
    log_ev = 0.5 * (k * np.log(alpha) + n * np.log(beta) - beta * resid - alpha * float(mu_v @ mu_v)
                    - float(np.sum(np.log(post))) - n * np.log(2 * np.pi))
    cs = np.zeros(ne.ncols)
    cs[used] = evecs @ mu_v
    c = cs / scale
    full_evecs = np.zeros((ne.ncols, len(used)))
    full_evecs[used] = evecs
    return LinearSolution(coefficients=c, method="bayesian",
                          condition_number=float(post.max() / post.min()), unused_columns=unused,
                          weighted_residual_sq=_residual_sq(ne, g, c), nrows=ne.nrows,
                          alpha=float(alpha), beta=float(beta), effective_parameters=gamma,
                          log_evidence=float(log_ev), iterations=it,
                          _scale=scale, _evecs=full_evecs, _post_eig=post)
