"""Mean-square displacement per species and the self-diffusion coefficient, streamed.

Positions are unwrapped with the trajectory's ``image`` flags (r + n·h, h the
frame's cell rows).  Time origins are taken every ``origin_every`` selected
frames; each origin's unwrapped positions are kept only until the largest lag
is reached, so memory is (max_lag/origin_every) frames whatever the
trajectory's length.  The origins are grouped into ``n_blocks`` consecutive
blocks of the run, each with its own MSD; D is the slope of MSD = 6 D t + c
fitted over the fit window, on the average MSD, and its standard error is that
of the blocks' D (std(D_b, ddof=1)/sqrt(n_blocks)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AnalysisInputError

A2_PER_PS_TO_CM2_PER_S = 1e-4     # 1 Å²/ps = 1e-16 cm² / 1e-12 s


@dataclass
class MSDResult:
    lag_time: np.ndarray          # ps
    msd: dict                     # species name or "all" -> Å²
    counts: np.ndarray            # origins averaged per lag
    block_msd: dict               # name -> (n_blocks, n_lags)
    block_counts: np.ndarray      # (n_blocks, n_lags)


def _uniform_dt(times, path, what="the MSD"):
    dts = np.diff(times)
    if len(dts) == 0:
        raise AnalysisInputError(f"{path}: {what} needs at least 2 frames, {len(times)} selected; select more "
                                 "with --frames/--every or write frames more often ([trajectory].every)")
    dt = float(np.median(dts))
    if dt <= 0 or np.any(np.abs(dts - dt) > 1e-6 * max(dt, 1e-12) + 1e-9):
        raise AnalysisInputError(f"{path}: the selected frames are not evenly spaced in time "
                                 f"(spacings {dts.min():g}..{dts.max():g} ps); select evenly spaced frames "
                                 "with --frames/--every")
    return dt


def compute_msd(traj, frames, max_lag: int | None = None, origin_every: int | None = None,
                n_blocks: int = 5) -> MSDResult:
    """MSD per species over the selected frames of an open trajectory (``image`` required)."""
    traj.require(["position", "image", "species"], "the MSD (unwrapping)")
    frames = np.asarray(frames)
    nf = len(frames)
    times = traj.times()[frames]
    dt = _uniform_dt(times, traj.path)
    max_lag = nf // 2 if max_lag is None else int(max_lag)
    if not 1 <= max_lag < nf:
        raise AnalysisInputError(f"--max-lag {max_lag}: must be between 1 and {nf - 1} frames")
    origin_every = max(1, int(np.ceil(max_lag / 50))) if origin_every is None else int(origin_every)
    if origin_every < 1:
        raise AnalysisInputError(f"--origin-every {origin_every}: must be at least 1 frame")
    if n_blocks < 1:
        raise AnalysisInputError(f"--blocks {n_blocks}: must be at least 1")
    n_blocks = min(int(n_blocks), nf)
    species = traj.species()
    kinds = sorted(set(species.tolist()))
    names = [traj.species_names[k] if k < len(traj.species_names) else f"X{k}" for k in kinds]
    onehot = np.zeros((len(species), len(kinds) + 1))
    for j, k in enumerate(kinds):
        onehot[species == k, j] = 1.0
    onehot[:, -1] = 1.0
    n_per = onehot.sum(axis=0)

    sums = np.zeros((n_blocks, max_lag + 1, len(kinds) + 1))
    counts = np.zeros((n_blocks, max_lag + 1))
    origins: list[tuple[int, int, np.ndarray]] = []      # (position in selection, block, unwrapped)
    for j, fr in enumerate(traj.frames(["position", "image"], frames)):
        u = fr["position"] + fr["image"].astype(float) @ fr.cell
        origins = [o for o in origins if j - o[0] <= max_lag]
        if j % origin_every == 0 and j + 1 < nf:
            origins.append((j, min(n_blocks - 1, j * n_blocks // nf), u.copy()))
        if not origins:
            continue
        start = np.array([o[0] for o in origins])
        block = np.array([o[1] for o in origins])
        ref = np.stack([o[2] for o in origins])
        d2 = np.square(u[None] - ref).sum(axis=2)                    # (n_origins, n_atoms)
        np.add.at(sums, (block, j - start), d2 @ onehot)
        np.add.at(counts, (block, j - start), 1.0)
    total = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums.sum(axis=0) / (total[:, None] * n_per[None, :])
        per_block = sums / (counts[:, :, None] * n_per[None, None, :])
    keys = names + ["all"] if len(names) > 1 else names     # "all" only when it differs
    return MSDResult(np.arange(max_lag + 1) * dt, {k: mean[:, i] for i, k in enumerate(keys)}, total,
                     {k: per_block[:, :, i] for i, k in enumerate(keys)}, counts)


def fit_diffusion(t, msd, t_min: float, t_max: float):
    """Slope/6 of a least-squares line through MSD(t) on [t_min, t_max] (Å²/ps); NaN if < 2 points."""
    t = np.asarray(t)
    msd = np.asarray(msd)
    sel = (t >= t_min) & (t <= t_max) & np.isfinite(msd)
    if sel.sum() < 2:
        return float("nan"), float("nan")
    slope, icpt = np.polyfit(t[sel], msd[sel], 1)
    return float(slope / 6.0), float(icpt)


def fit_window(res: MSDResult, fit_range=None):
    """``(t0, t1)`` in ps: ``fit_range``, or 20-80 % of the largest lag."""
    t = res.lag_time
    return tuple(fit_range) if fit_range is not None else (0.2 * t[-1], 0.8 * t[-1])


def check_fit_window(res: MSDResult, fit_range=None):
    """Raise a clear error when the fit window holds fewer than 2 lag times (D would be NaN)."""
    t = res.lag_time
    t_min, t_max = fit_window(res, fit_range)
    inside = int(((t >= t_min) & (t <= t_max)).sum())
    if inside < 2:
        what = f"--fit-range {t_min:g},{t_max:g} ps" if fit_range is not None else \
            f"the default fit window ({t_min:g}..{t_max:g} ps)"
        raise AnalysisInputError(f"{what} holds {inside} lag time(s) of the MSD (0..{t[-1]:g} ps, every "
                                 f"{t[1] - t[0] if len(t) > 1 else 0:g} ps); the fit needs at least 2: choose a "
                                 "window inside the lags, a larger --max-lag, or more frames")


def diffusion(res: MSDResult, fit_range=None):
    """``{name: (D, D_err, intercept)}`` in Å²/ps, fitted on ``fit_range`` (ps; default 20-80 % of max lag)."""
    t = res.lag_time
    t_min, t_max = fit_window(res, fit_range)
    out = {}
    for name, m in res.msd.items():
        d, c = fit_diffusion(t, m, t_min, t_max)
        blocks = [fit_diffusion(t, mb, t_min, t_max)[0] for mb in res.block_msd[name]]
        blocks = np.array([b for b in blocks if np.isfinite(b)])
        err = float(blocks.std(ddof=1) / np.sqrt(len(blocks))) if len(blocks) > 1 else float("nan")
        out[name] = (d, err, c)
    return out, (t_min, t_max)


def plot(res: MSDResult, fits, fit_range, path, title=""):
    from .plotting import pyplot, save
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, m) in enumerate(res.msd.items()):
        d, err, c = fits[name]
        ax.plot(res.lag_time, m, color=f"C{i}", label=f"{name}: D = {d:.4g} ± {err:.2g} Å²/ps")
        tt = np.array(fit_range)
        ax.plot(tt, 6 * d * tt + c, color=f"C{i}", ls="--", lw=0.8)
    ax.axvspan(*fit_range, color="0.9", zorder=0)
    ax.set_xlabel("lag time [ps]")
    ax.set_ylabel("MSD [Å²]")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, path)
