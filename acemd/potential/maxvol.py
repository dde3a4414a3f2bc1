"""MaxVol row selection (Goreinov, Oseledets, Savostyanov, Tyrtyshnikov, Zamarashkin 2010).

For a tall matrix A (m x n, m >= n) MaxVol picks n rows whose square submatrix
S has a locally maximal |det|: every row a of A satisfies max |a S^-1| <= 1 + tol.
Swapping a selected row for a row with a coefficient |c| > 1 multiplies |det S|
by |c|, so repeated swaps of the largest coefficient terminate.  The start is a
pivoted-QR selection (greedy largest residual), which usually leaves few swaps.
In floating point, with nearly dependent columns, coefficients carry round-off;
swaps are kept only while log|det S| really grows, so round-off cannot cycle.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["MaxVolError", "initial_rows", "coefficients", "log_volume", "maxvol"]


class MaxVolError(ValueError):
    """The rows cannot give a nonsingular square submatrix, or the swaps do not converge."""


def initial_rows(matrix, count=None) -> np.ndarray:
    """``count`` (default n) row indices of ``matrix`` (m x n), by QR with column pivoting of its transpose.

    The greedy order: each row has the largest residual after projecting out the rows before it.
    """
    from scipy.linalg import qr     # scipy comes with ase
    matrix = np.asarray(matrix)
    _, pivots = qr(matrix.T, mode="r", pivoting=True, check_finite=False)
    return np.ascontiguousarray(pivots[:matrix.shape[1] if count is None else count], dtype=np.int64)


def coefficients(matrix, rows) -> np.ndarray:
    """C = A S^-1 with S = A[rows] (the same arithmetic as gamma = |b A^-1|); selected rows are unit vectors."""
    try:
        inverse = np.linalg.inv(matrix[rows])
    except np.linalg.LinAlgError:
        raise MaxVolError("the selected rows form a singular matrix") from None
    coef = np.ascontiguousarray(matrix @ inverse)
    if not np.all(np.isfinite(coef)):
        raise MaxVolError("the selected rows form a numerically singular matrix")
    coef[rows] = np.eye(len(rows))
    return coef


def log_volume(matrix, rows) -> float:
    """log |det A[rows]|."""
    sign, logdet = np.linalg.slogdet(matrix[rows])
    return logdet if sign != 0 else -np.inf


@njit(cache=True)
def _swap_rows(coef, rows, threshold, max_swaps):
    """Swap the row with the largest |coefficient| into ``rows`` while it exceeds ``threshold``.

    ``coef`` (m, n) = A S^-1 is updated in place by the rank-1 Sherman-Morrison
    step; returns (swaps done, largest |coefficient| left).
    """
    m, n = coef.shape
    best, bi, bj = 0.0, 0, 0
    for r in range(m):
        for k in range(n):
            a = abs(coef[r, k])
            if a > best:
                best, bi, bj = a, r, k
    update = np.empty(n)
    column = np.empty(m)
    swaps = 0
    while best > threshold and swaps < max_swaps:
        i, j = bi, bj
        pivot = coef[i, j]
        for k in range(n):
            update[k] = coef[i, k] / pivot
        update[j] -= 1.0 / pivot
        for r in range(m):
            column[r] = coef[r, j]
        best = 0.0
        for r in range(m):
            f = column[r]
            if r == i:                       # the new selected row: exactly the unit vector e_j
                for k in range(n):
                    coef[r, k] = 0.0
                coef[r, j] = 1.0
                f = 0.0
            if f != 0.0:
                for k in range(n):
                    coef[r, k] -= f * update[k]
            for k in range(n):
                a = abs(coef[r, k])
                if a > best:
                    best, bi, bj = a, r, k
        rows[j] = i
        swaps += 1
    return swaps, best


def maxvol(matrix, tolerance, rows=None, max_swaps=None):
    """Select n rows of ``matrix`` (m x n) with all |coefficients| <= 1 + ``tolerance``.

    ``rows``: starting selection (default: pivoted QR).  Returns (rows, swaps,
    largest |coefficient|), the coefficients recomputed from scratch for the
    returned rows.  Swaps are kept only while log|det| grows by at least half
    a swap's worth (log(1 + tolerance) / 2): when the projections are nearly
    dependent, coefficients above the bound can be round-off, and swapping on
    them would cycle; the largest coefficient returned may then exceed the bound.
    Raises :class:`MaxVolError` when the selection is singular or the swaps
    exceed ``max_swaps`` (default 100 n + 1000).
    """
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    m, n = matrix.shape
    if m < n:
        raise MaxVolError(f"{m} rows cannot select a {n} x {n} submatrix")
    rows = initial_rows(matrix) if rows is None else np.array(rows, dtype=np.int64)
    max_swaps = 100 * n + 1000 if max_swaps is None else max_swaps
    threshold = 1.0 + tolerance
    min_gain = 0.5 * np.log(threshold)
    swaps = 0
    coef = coefficients(matrix, rows)
    volume = log_volume(matrix, rows)
    while True:
        largest = float(np.abs(coef).max())
        if largest <= threshold:
            return rows, swaps, largest
        trial = rows.copy()
        done, _ = _swap_rows(coef, trial, threshold, min(n + 10, max_swaps - swaps))   # then refresh C
        trial_volume = log_volume(matrix, trial)
        if not trial_volume >= volume + min_gain:
            return rows, swaps, largest          # no real gain left: round-off
        rows, volume, swaps = trial, trial_volume, swaps + done
        if swaps >= max_swaps:
            raise MaxVolError(f"no convergence after {swaps} row swaps: the matrix is numerically degenerate")
        coef = coefficients(matrix, rows)
