"""Histogram of the extrapolation grade gamma over a run.

Sources: the per-atom ``gamma`` field of an H5MD trajectory (every atom of
every frame, streamed), its ``/observables/max_gamma``, or the ``MaxGamma``
column of a thermo log (the largest gamma of each evaluation).  gamma <= 1 is
interpolation; pacemaker's recipe dumps structures above ~5 and stops above
~25 (acemd's ``[extrapolation]`` defaults).  Because gamma spans decades, the
bins are logarithmic by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AnalysisInputError
from .trajectory import Trajectory, is_hdf5


@dataclass
class GammaHistogram:
    edges: np.ndarray
    counts: np.ndarray          # per bin
    n_values: int
    maximum: float
    what: str                   # "per-atom gamma" or "max gamma per frame/evaluation"
    above: dict                 # threshold -> fraction of values above it


def _edges(lo, hi, bins, log):
    if log:
        lo = max(lo, 1e-6)
        hi = max(hi, lo * 10)
        return np.logspace(np.log10(lo), np.log10(hi) + 1e-12, bins + 1)
    return np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)


def histogram_values(values_iter_factory, bins: int, log: bool, thresholds, what) -> GammaHistogram:
    """Two passes over the chunks yielded by ``values_iter_factory()``: range, then counts."""
    lo, hi, n = np.inf, -np.inf, 0
    for chunk in values_iter_factory():
        chunk = chunk[np.isfinite(chunk)]
        if chunk.size:
            pos = chunk[chunk > 0] if log else chunk
            if pos.size:
                lo = min(lo, float(pos.min()))
            hi = max(hi, float(chunk.max()))
            n += chunk.size
    if n == 0:
        raise AnalysisInputError("no finite gamma value to histogram")
    edges = _edges(lo if np.isfinite(lo) else 1e-6, hi, bins, log)
    counts = np.zeros(bins, dtype=np.int64)
    above = {float(t): 0 for t in thresholds}
    for chunk in values_iter_factory():
        chunk = chunk[np.isfinite(chunk)]
        clipped = np.clip(chunk, edges[0], edges[-1])
        counts += np.histogram(clipped, edges)[0]
        for t in above:
            above[t] += int((chunk > t).sum())
    return GammaHistogram(edges, counts, n, hi, what, {t: c / n for t, c in above.items()})


def gamma_histogram(path, frames=None, bins: int = 50, log: bool = True, thresholds=(1.0, 5.0, 25.0),
                    source: str = "auto") -> GammaHistogram:
    """Histogram from a trajectory (``source`` 'atoms' or 'max', auto: atoms if present) or a thermo log."""
    path = Path(path)
    if not path.exists():
        raise AnalysisInputError(f"{path}: file not found")
    if is_hdf5(path):
        traj = Trajectory(path)
        try:
            if source in ("auto", "atoms") and "gamma" in traj.fields:
                idx = np.arange(traj.n_frames) if frames is None else frames

                def per_atom():
                    for i in idx:
                        yield np.asarray(traj.read("gamma", int(i)), float)
                return histogram_values(per_atom, bins, log, thresholds, "per-atom gamma")
            if source in ("auto", "max") and "max_gamma" in traj.observables():
                _, v, _ = traj.observable("max_gamma")
                v = v if frames is None else v[frames]
                return histogram_values(lambda: iter([v]), bins, log, thresholds, "max gamma per frame")
            raise AnalysisInputError(
                f"{path}: trajectory has no 'gamma' field (/particles/all/gamma) and no "
                "/observables/max_gamma; run with [extrapolation] and \"gamma\" in [trajectory].fields")
        finally:
            traj.close()
    from .thermo import load_series
    data, _ = load_series(path)
    if "MaxGamma" not in data:
        raise AnalysisInputError(f"{path}: thermo log has no MaxGamma column (the run had no [extrapolation])")
    v = np.asarray(data["MaxGamma"], float)
    return histogram_values(lambda: iter([v]), bins, log, thresholds, "max gamma per thermo row")


def plot(h: GammaHistogram, path, title=""):
    from .plotting import pyplot, save
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.stairs(h.counts, h.edges, fill=True, alpha=0.7)
    for k, t in enumerate(h.above):
        ax.axvline(t, color=f"C{k + 1}", ls="--", lw=0.8, label=f"γ = {t:g}: {100 * h.above[t]:.3g} % above")
    if h.edges[0] > 0 and h.edges[-1] / h.edges[0] > 50:
        ax.set_xscale("log")
    ax.set_xlabel("extrapolation grade γ")
    ax.set_ylabel(f"count ({h.what})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, path)
