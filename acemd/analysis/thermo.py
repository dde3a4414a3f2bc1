"""Thermodynamic averages of a run: means with block-averaged standard errors, the
statistical inefficiency and the equilibration time.

Input is the thermo log (:func:`acemd.io.thermo.read_thermo`) or the
``/observables`` of an H5MD trajectory.  The statistical inefficiency g (number
of correlated samples per independent one) and the automatic equilibration time
come from pymbar's ``timeseries`` module (Chodera 2016: the start t0 that
maximises the number of uncorrelated samples (N - t0)/g); the standard error is
the block average's: the series after t0 is cut into ``n_blocks`` equal blocks
and SE = std(block means, ddof=1)/sqrt(n_blocks).
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AnalysisInputError
from .trajectory import Trajectory, is_hdf5

#: thermo columns shown by default (when present), in this order
DEFAULT_COLUMNS = ("Temp", "Press", "PotEng", "TotEng", "Volume", "Conserved", "MaxGamma")

#: H5MD observable -> thermo column name
OBSERVABLE_COLUMNS = {"temperature": "Temp", "pressure": "Press", "potential_energy": "PotEng",
                      "kinetic_energy": "KinEng", "total_energy": "TotEng", "volume": "Volume",
                      "conserved_energy": "Conserved", "max_gamma": "MaxGamma"}
_UNIT_NAMES = {"Angstrom+3": "A^3"}


def _timeseries():
    """pymbar.timeseries, imported without its banners (it prints when JAX is absent)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pymbar import timeseries
    except ImportError:
        raise AnalysisInputError("pymbar is not installed: pip install 'acemd[plot]'") from None
    return timeseries


def _quiet(func, *args, **kwargs):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def load_series(path):
    """``(columns, units)`` of a thermo log or of an H5MD file's observables; ``Time`` in ps."""
    path = Path(path)
    if not path.exists():
        raise AnalysisInputError(f"{path}: file not found")
    if is_hdf5(path):
        with Trajectory(path) as traj:
            names = traj.observables()
            if not names:
                raise AnalysisInputError(f"{path}: trajectory has no /observables to average")
            data, units = {}, {}
            for name in names:
                t, v, unit = traj.observable(name)
                if v.ndim != 1:
                    continue
                col = OBSERVABLE_COLUMNS.get(name, name)
                data[col], units[col] = v, _UNIT_NAMES.get(unit, unit or "")
                data["Time"], units["Time"] = t, "ps"
        return data, units
    from ..io.thermo import read_thermo
    try:
        data, units = read_thermo(path, with_units=True)
    except UnicodeDecodeError:
        raise AnalysisInputError(f"{path}: not a text file, so not an acemd thermo log") from None
    except ValueError as exc:
        from .trajectory import _what_else
        raise AnalysisInputError(f"{exc} (not an acemd thermo log?){_what_else(path)}") from None
    if "Time" not in data:
        raise AnalysisInputError(f"{path}: thermo log has no Time column (the log of a [minimize] or 0 K "
                                 "[elastic] run counts relaxation steps: no time series to average)")
    return data, units


def block_standard_error(x, n_blocks: int = 5) -> float:
    """Standard error of the mean from ``n_blocks`` equal consecutive blocks (trailing rest dropped)."""
    x = np.asarray(x, float)
    size = len(x) // n_blocks
    if n_blocks < 2 or size < 1:
        return float("nan")
    means = x[: size * n_blocks].reshape(n_blocks, size).mean(axis=1)
    return float(means.std(ddof=1) / np.sqrt(n_blocks))


def statistical_inefficiency(x) -> float:
    """g = 1 + 2 sum_t (1 - t/N) C(t) (pymbar); 1 for uncorrelated samples."""
    x = np.asarray(x, float)
    if len(x) < 3 or np.ptp(x) == 0.0:
        return 1.0
    return float(_quiet(_timeseries().statistical_inefficiency, x))


def detect_equilibration(x) -> int:
    """Index t0 after which the series is taken as equilibrated (pymbar's detectEquilibration)."""
    x = np.asarray(x, float)
    if len(x) < 4 or np.ptp(x) == 0.0:
        return 0
    t0, _, _ = _quiet(_timeseries().detect_equilibration, x)
    return int(t0)


@dataclass
class ColumnStats:
    name: str
    unit: str
    mean: float
    std: float
    sem_block: float
    g: float
    n_samples: int
    n_independent: float


def column_stats(name, unit, x, n_blocks=5) -> ColumnStats:
    x = np.asarray(x, float)
    g = statistical_inefficiency(x)
    return ColumnStats(name, unit, float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0,
                       block_standard_error(x, n_blocks), g, len(x), len(x) / g)


def equilibration_time(data, equilibration: str | float | None = "auto", detect_column="PotEng"):
    """The equilibration time (ps): a number as given, or ``auto`` (detected on ``detect_column``)."""
    t = np.asarray(data["Time"], float)
    if equilibration is None:
        return float(t[0]), "start of the series"
    if str(equilibration).strip().lower() == "auto":
        if detect_column not in data:
            raise AnalysisInputError(f"--detect-column {detect_column!r}: no such column "
                                     f"(have {', '.join(data)})")
        t0 = detect_equilibration(data[detect_column])
        return float(t[t0]), f"detected on {detect_column} (pymbar detectEquilibration)"
    try:
        value = float(equilibration)
    except ValueError:
        raise AnalysisInputError(f"--equilibration {equilibration!r}: a time in ps or 'auto'") from None
    if not np.isfinite(value):
        raise AnalysisInputError(f"--equilibration {equilibration!r}: a finite time in ps or 'auto'")
    if value > t[-1]:
        raise AnalysisInputError(f"--equilibration {value} ps is after the last sample ({t[-1]} ps)")
    return value, "given"


def summarize(data, units, columns=None, equilibration="auto", detect_column="PotEng", n_blocks=5):
    """Statistics of every column after the equilibration time: ``(t_eq_ps, how, [ColumnStats])``."""
    columns = [c for c in (columns or DEFAULT_COLUMNS) if c in data]
    if not columns:
        raise AnalysisInputError(f"none of the requested columns is present (have {', '.join(data)})")
    if n_blocks < 2:
        raise AnalysisInputError(f"--blocks {n_blocks}: the block standard error needs at least 2 blocks")
    t_eq, how = equilibration_time(data, equilibration, detect_column)
    keep = np.asarray(data["Time"], float) >= t_eq
    n_kept = int(keep.sum())
    if n_kept < n_blocks:
        raise AnalysisInputError(f"--blocks {n_blocks}: only {n_kept} samples after the equilibration time "
                                 f"{t_eq:g} ps; use at most {max(n_kept, 2)} blocks, an earlier "
                                 "--equilibration, or a longer run")
    stats = [column_stats(c, units.get(c, ""), np.asarray(data[c], float)[keep], n_blocks) for c in columns]
    return t_eq, how, stats, columns


def plot(data, units, columns, t_eq, stats, path):
    from .plotting import pyplot, save
    plt = pyplot()
    n = len(columns)
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.9 * n + 0.6), sharex=True, squeeze=False)
    t = np.asarray(data["Time"], float)
    for ax, c, s in zip(axes[:, 0], columns, stats):
        ax.plot(t, data[c], lw=0.8)
        ax.axvline(t_eq, color="k", ls=":", lw=0.8)
        ax.axhline(s.mean, color="C3", lw=0.8)
        ax.axhspan(s.mean - s.sem_block, s.mean + s.sem_block, color="C3", alpha=0.2)
        ax.set_ylabel(f"{c} [{s.unit}]" if s.unit else c)
    axes[-1, 0].set_xlabel("time [ps]")
    axes[0, 0].set_title(f"mean ± block SE after t = {t_eq:g} ps (dotted)", fontsize=9)
    return save(fig, path)
