"""Block averages of correlated time series: mean, standard error, statistical inefficiency.

A series of n samples is cut into ``n_blocks`` equal consecutive blocks (a
trailing remainder is dropped); when a block is much longer than the
correlation time the block means are independent, so the standard error of
the mean is std(block means)/sqrt(n_blocks) (Flyvbjerg and Petersen, J. Chem.
Phys. 91, 461 (1989)).  The statistical inefficiency
s = L var(block means)/var(samples), L the samples per block, is the number of
consecutive samples that make one independent sample (Allen and Tildesley,
section 8.4).  Nonlinear estimators (a covariance) get their error by
jackknife over the same blocks.
"""
from __future__ import annotations

import numpy as np


def block_means(samples, n_blocks: int) -> np.ndarray:
    """(n_blocks, ...) means of equal consecutive blocks along axis 0."""
    x = np.asarray(samples, dtype=float)
    per = len(x) // n_blocks
    if per < 1:
        raise ValueError(f"{len(x)} samples cannot make {n_blocks} blocks")
    return x[:per * n_blocks].reshape((n_blocks, per) + x.shape[1:]).mean(axis=1)


def block_average(samples, n_blocks: int) -> dict:
    """Mean, standard error and statistical inefficiency (in samples) of each column of ``samples``."""
    x = np.asarray(samples, dtype=float)
    if n_blocks < 2:
        raise ValueError("an error needs at least 2 blocks")
    means = block_means(x, n_blocks)
    per = len(x) // n_blocks
    used = x[:per * n_blocks]
    var_blocks = means.var(axis=0, ddof=1)
    var_samples = used.var(axis=0, ddof=1) if len(used) > 1 else np.zeros(x.shape[1:])
    with np.errstate(invalid="ignore", divide="ignore"):
        ineff = np.where(var_samples > 0, per * var_blocks / var_samples, 1.0)
    return {"mean": used.mean(axis=0), "error": np.sqrt(var_blocks / n_blocks),
            "inefficiency": ineff, "n_blocks": n_blocks, "samples_per_block": per}


def jackknife(block_stats, estimator):
    """Estimate and jackknife standard error of ``estimator`` over blocks.

    ``block_stats``: a list of per-block arrays (equal-weight blocks), each of
    shape (n_blocks, ...); ``estimator(*means)`` maps their means over the
    blocks kept to the quantity of interest.
    """
    stats = [np.asarray(b, dtype=float) for b in block_stats]
    n = len(stats[0])
    full = np.asarray(estimator(*[b.mean(axis=0) for b in stats]))
    leave_out = np.array([estimator(*[(b.sum(axis=0) - b[k]) / (n - 1) for b in stats]) for k in range(n)])
    error = np.sqrt((n - 1) / n * ((leave_out - leave_out.mean(axis=0)) ** 2).sum(axis=0))
    return full, error
