"""Radial distribution functions, total and per species pair, with running coordination
numbers, accumulated frame by frame with freud's ``density.RDF``.

g_ab(r) is the density of b atoms at distance r from an a atom divided by b's
mean density; n_ab(r) (freud's ``n_r``) the mean number of b atoms within r of
an a atom.  Both are averaged over the selected frames.  ``coordination_shells``
splits n(r) at the minima of g(r) between its peaks, giving each neighbour
shell's distance and coordination number (fcc: 12, 6, 24, 12, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import AnalysisInputError
from .neighbors import freud, freud_system, max_rdf_radius


#: default largest distance (Å): the first four fcc shells, two liquid shells; the cost grows as r_max^3
#: (freud, one core, 4000 atoms: ~30 ms per frame at 6 Å, ~60 at 8 Å, ~115 at 10 Å)
DEFAULT_R_MAX = 6.0


@dataclass
class RDFResult:
    r: np.ndarray                 # bin centres (Å)
    r_edges: np.ndarray           # bin edges (Å)
    g: dict = field(default_factory=dict)      # "total", "Cu-Ni", ... -> g(r)
    n: dict = field(default_factory=dict)      # "total", "Cu-Ni" (Ni around Cu), ... -> n(r) at r_edges[1:]
    n_frames: int = 0


class RDFAccumulator:
    """Adds frames to freud RDF histograms: the total and every ordered species pair."""

    def __init__(self, species: np.ndarray, species_names, r_max: float, bins: int, r_min: float = 0.0):
        fr = freud()
        self.species = np.asarray(species)
        present = sorted(set(self.species.tolist()))
        self.names = [species_names[k] if k < len(species_names) else f"X{k}" for k in present]
        self.index = {k: np.flatnonzero(self.species == k) for k in present}
        self.kinds = present
        make = lambda: fr.density.RDF(bins=bins, r_max=r_max, r_min=r_min)  # noqa: E731
        self.total = make()
        self.pairs = {}
        if len(present) > 1:
            for a in present:
                for b in present:
                    self.pairs[(a, b)] = make()
        self.n_frames = 0

    def add(self, cell, positions):
        fr = freud()
        box, pts = freud_system(cell, positions)
        self.total.compute((box, pts), reset=False)
        for (a, b), rdf in self.pairs.items():
            pb = pts[self.index[b]]
            if a == b:
                rdf.compute((box, pb), reset=False)
            else:
                rdf.compute(fr.locality.AABBQuery(box, pb), query_points=pts[self.index[a]], reset=False)
        self.n_frames += 1

    def result(self) -> RDFResult:
        res = RDFResult(np.asarray(self.total.bin_centers, float), np.asarray(self.total.bin_edges, float),
                        n_frames=self.n_frames)
        res.g["total"] = np.asarray(self.total.rdf, float)
        res.n["total"] = np.asarray(self.total.n_r, float)
        names = dict(zip(self.kinds, self.names))
        for (a, b), rdf in self.pairs.items():
            key = f"{names[a]}-{names[b]}"
            if a <= b:
                res.g[key] = np.asarray(rdf.rdf, float)
            res.n[key] = np.asarray(rdf.n_r, float)
        return res


def compute_rdf(traj, frames, r_max: float | None = None, bins: int = 200, r_min: float = 0.0) -> RDFResult:
    """RDFs over the selected frames of an open :class:`~acemd.analysis.trajectory.Trajectory`."""
    traj.require(["position", "species"], "the RDF")
    if not traj.pbc.all():
        raise AnalysisInputError(f"{traj.path}: the RDF needs a cell periodic along x, y and z")
    if bins < 1:
        raise AnalysisInputError(f"--bins {bins}: the RDF needs at least 1 bin")
    limit = min(max_rdf_radius(traj.cell(int(i))) for i in (frames[0], frames[-1]))
    if r_max is None:
        r_max = min(DEFAULT_R_MAX, 0.999 * limit)
    elif r_max > limit:
        raise AnalysisInputError(f"--r-max {r_max} Å exceeds half the cell width ({limit:.4g} Å) "
                                 f"of {traj.path}")
    if not 0.0 <= r_min < r_max:
        raise AnalysisInputError(f"--r-min {r_min} Å: must be at least 0 and below r_max = {r_max:.4g} Å "
                                 f"(for {traj.path}: half the cell width or {DEFAULT_R_MAX:g} Å unless --r-max)")
    acc = RDFAccumulator(traj.species(), traj.species_names, r_max, bins, r_min)
    for fr in traj.frames(["position"], frames):
        acc.add(fr.cell, fr["position"])
    return acc.result()


def coordination_shells(r, g, n, r_edges, max_shells: int = 4, min_height: float = 1.0):
    """Neighbour shells: ``[(r_peak, r_inner, r_outer, coordination number)]`` (Å, Å, Å, atoms).

    Peaks are maxima of g above ``min_height``; a shell ends at the deepest point of g
    between its peak and the next (the middle of a zero stretch for a perfect crystal).
    The last peak counts only if g falls back below 1 after it within the range.
    """
    from scipy.signal import find_peaks
    g = np.asarray(g, float)
    peaks, _ = find_peaks(np.concatenate([[0.0], g, [0.0]]), height=min_height, prominence=0.5)
    peaks = peaks - 1
    bounds = []
    for k, p in enumerate(peaks):
        stop = peaks[k + 1] if k + 1 < len(peaks) else len(g)
        seg = g[p:stop]
        if k + 1 == len(peaks) and not np.any(seg < 1.0):
            break
        low = np.flatnonzero(seg <= seg.min() + 1e-12)
        # a run of equal minima (zeros of a perfect crystal): take its middle
        bounds.append(p + (low[0] + low[-1]) // 2 if np.all(np.diff(low) == 1) else p + low[0])
    shells = []
    n_edges = np.asarray(n, float)
    inner_r, inner_n = 0.0, 0.0
    for p, b in zip(peaks, bounds):
        outer_r = r_edges[b + 1]
        outer_n = n_edges[b]
        shells.append((float(r[p]), inner_r, float(outer_r), float(outer_n - inner_n)))
        inner_r, inner_n = float(outer_r), float(outer_n)
        if len(shells) == max_shells:
            break
    return shells


def plot(res: RDFResult, shells, path, title=""):
    from .plotting import pyplot, save
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for key, g in res.g.items():
        ax.plot(res.r, g, lw=1.2 if key == "total" else 0.9, label=key)
    for s in shells:
        ax.axvline(s[2], color="0.6", ls=":", lw=0.7)
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set_ylabel("g(r)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    for key, n in res.n.items():
        ax2.plot(res.r_edges[1:], n, lw=1.0, label=key)
    ax2.set_ylabel("n(r) (neighbours within r)")
    ax2.set_xlabel("r [Å]")
    ax2.legend(fontsize=8)
    return save(fig, path)
