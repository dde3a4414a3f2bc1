"""Velocity autocorrelation and vibrational density of states (VDOS).

C(t) = sum_i m_i <v_i(t0) . v_i(t0 + t)>_t0 (eV), averaged over all time origins
of the selected frames (FFT correlation with zero padding, unbiased: each lag
divided by its number of origins), up to ``max_lag`` frames.  The VDOS is

    g(nu) = (2 / kB T) * dt * [C(0) + 2 sum_{j>=1} w_j C(j dt) cos(2 pi nu j dt)],  nu >= 0,

w a Hann window over the lags (w_0 = 1), on the grid nu_k = k / (2 M dt),
k = 0..M (M = max_lag), up to the Nyquist frequency 1/(2 dt).  Its trapezoidal
integral equals C(0)/(kB T) exactly, which is the number of degrees of freedom,
3N - 3, when T is the kinetic temperature of the same velocities (how acemd
defines T); with the temperature of the thermo log it checks both.  g(0) is
12 sum_i m_i D_i / (kB T): zero for a crystal, proportional to diffusion in a liquid.
Velocities are read in blocks of atoms over all frames (about 100 MB of spectrum per block).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..units import BOLTZMANN, MVV_TO_EV
from .errors import AnalysisInputError
from .msd import _uniform_dt


@dataclass
class VDOSResult:
    lag_time: np.ndarray      # ps
    vacf: np.ndarray          # eV: sum_i m_i <v_i(0).v_i(t)>
    frequency: np.ndarray     # THz (1/ps)
    vdos: np.ndarray          # 1/THz, integrates to C(0)/(kB T)
    temperature: float        # K used in the normalisation
    kinetic_temperature: float  # K from C(0) and 3N - 3 degrees of freedom
    n_atoms: int
    n_frames: int
    warnings: list = field(default_factory=list)     # about resolution and aliasing


def integral(res: "VDOSResult") -> float:
    """Trapezoidal integral of g(nu) over the frequency grid (degrees of freedom)."""
    trapezoid = getattr(np, "trapezoid", None) or np.trapz       # numpy < 2 has only trapz
    return float(trapezoid(res.vdos, res.frequency))


def _autocorrelation(v: np.ndarray, max_lag: int) -> np.ndarray:
    """sum over atoms and xyz of sum_t0 v(t0) v(t0 + lag), lags 0..max_lag; v: (n_frames, n, 3)."""
    nf = v.shape[0]
    nfft = 1 << int(np.ceil(np.log2(2 * nf)))
    spec = np.fft.rfft(v, n=nfft, axis=0)
    power = (spec.real ** 2 + spec.imag ** 2).sum(axis=(1, 2))
    return np.fft.irfft(power, n=nfft)[: max_lag + 1]


def compute_vdos(traj, frames, max_lag: int | None = None, temperature: float | None = None,
                 atoms_per_block: int | None = None) -> VDOSResult:
    """VACF and VDOS of the selected (evenly spaced) frames of an open trajectory."""
    traj.require(["velocity", "species"], "the VACF/VDOS")
    frames = np.asarray(frames)
    nf = len(frames)
    dt = _uniform_dt(traj.times()[frames], traj.path, "the VACF/VDOS")
    max_lag = nf // 2 if max_lag is None else int(max_lag)
    if not 1 <= max_lag < nf:
        raise AnalysisInputError(f"--max-lag {max_lag}: must be between 1 and {nf - 1} frames "
                                 f"({nf} frames selected from {traj.path})")
    if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
        raise AnalysisInputError(f"--temperature {temperature}: must be a temperature above 0 K "
                                 "(or leave it out for the kinetic temperature of the frames)")
    masses = traj.masses_by_species()[traj.species()]
    n = traj.n_atoms
    nfft = 1 << int(np.ceil(np.log2(2 * nf)))
    block = atoms_per_block or max(1, int(4e6 // nfft))      # spectrum of a block <= ~100 MB
    corr = np.zeros(max_lag + 1)
    for a0 in range(0, n, block):
        sl = slice(a0, min(n, a0 + block))
        v = traj.read_atoms("velocity", frames, sl).astype(float)
        v *= np.sqrt(masses[sl])[None, :, None]
        corr += _autocorrelation(v, max_lag)
    vacf = corr / (nf - np.arange(max_lag + 1)) * MVV_TO_EV          # eV
    dof = 3 * n - 3
    if dof == 0 and temperature is None:
        raise AnalysisInputError(f"{traj.path}: one atom has no kinetic temperature (3N - 3 = 0 degrees of "
                                 "freedom once the centre of mass is fixed); give --temperature")
    t_kin = float(vacf[0] / (dof * BOLTZMANN)) if dof else float("nan")
    if not (t_kin > 0 or (dof == 0 and vacf[0] > 0)):
        raise AnalysisInputError(f"{traj.path}: the velocities of the selected frames are all zero (a "
                                 "minimisation or a 0 K run?): no vibrations to analyse")
    temp = t_kin if temperature is None else float(temperature)
    lags = np.arange(max_lag + 1)
    window = 0.5 * (1.0 + np.cos(np.pi * lags / (max_lag + 1)))
    freq = np.arange(max_lag + 1) / (2.0 * max_lag * dt)
    weights = vacf * window
    weights[1:] *= 2.0
    g = (2.0 * dt / (BOLTZMANN * temp)) * (np.cos(2.0 * np.pi * np.outer(freq, lags) * dt) @ weights)
    res = VDOSResult(lags * dt, vacf, freq, g, temp, t_kin, n, nf)
    res.warnings = resolution_warnings(res, dt)
    return res


#: fewer frequency points than this make a VDOS too coarse to show phonon peaks
MIN_FREQUENCIES = 20
#: g(nu) at the Nyquist frequency above this fraction of its maximum: frames too far apart (aliasing)
ALIASING_FRACTION = 0.05


def resolution_warnings(res: VDOSResult, dt: float) -> list[str]:
    """Warnings about a spectrum too coarse to read (few frames) or cut off at the Nyquist frequency."""
    out = []
    n_freq = len(res.frequency)
    if n_freq < MIN_FREQUENCIES:
        out.append(f"the VDOS has only {n_freq} frequencies (from {res.n_frames} frames, max lag "
                   f"{n_freq - 1}), 0..{res.frequency[-1]:.4g} THz in steps of {res.frequency[1]:.4g} THz: "
                   f"too coarse for phonon peaks; use at least {2 * MIN_FREQUENCIES} frames (a longer run, "
                   "or the velocity written more often)")
    peak = float(np.max(np.abs(res.vdos)))
    if n_freq >= 3 and peak > 0 and abs(res.vdos[-1]) > ALIASING_FRACTION * peak:
        out.append(f"g(nu) at the Nyquist frequency 1/(2 dt) = {res.frequency[-1]:.4g} THz is "
                   f"{100 * abs(res.vdos[-1]) / peak:.0f} % of its peak: the frames ({dt:g} ps apart) are too "
                   "far apart for the fastest vibrations, which fold back (aliasing); write the velocity "
                   "more often")
    return out


def plot(res: VDOSResult, path, title=""):
    from .plotting import pyplot, save
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7, 6))
    ax.plot(res.lag_time, res.vacf / res.vacf[0])
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("lag time [ps]")
    ax.set_ylabel("C(t)/C(0)")
    ax.set_title(title, fontsize=9)
    ax2.plot(res.frequency, res.vdos)
    ax2.set_xlabel("frequency [THz]")
    ax2.set_ylabel("g(ν) [1/THz]")
    ax2.set_title(f"∫g dν = {integral(res):.4g} (3N-3 = {3 * res.n_atoms - 3}), T = {res.temperature:.4g} K",
                  fontsize=9)
    return save(fig, path)
