"""Phase boundaries from free-energy curves (pure numpy; docs/phase-diagram.md).

* :func:`crossing`: where two G(T) curves, given on grids with standard errors, cross.
  T* solves G_a(T) = G_b(T) on local cubic interpolants of both curves; its error is

      sigma_T = sqrt(sigma_a(T*)^2 + sigma_b(T*)^2) / |dG_a/dT - dG_b/dT|,

  the first-order propagation of the curves' errors through the root (exact for an
  error that shifts a curve rigidly, the typical error of a reversible-scaling curve,
  which inherits the error of its F(T0)).  With S = -dG/dT and H = G + T S, at T*
  the enthalpy of transition is T* (S_b - S_a): the latent heat L, and the entropy of
  transition S_b - S_a.  No sign change inside the overlap of the grids gives a result
  that says on which side the crossing must lie (linear extrapolation of G_a - G_b
  from the nearer end), and :func:`move_window` shifts a window that way.
* :func:`coexistence_line`: Clausius-Clapeyron dT/dP = T dV / dH along a pressure
  grid by fourth-order Runge-Kutta, dV(T, P) and dH(T, P) callables, constants or
  :class:`Table` s.
* :func:`phase_map`: the stable phase (lowest G) of several phases along a T grid and
  the transition temperatures between consecutive stable phases; :func:`stable_phase_grid`
  the same on a (T, P) grid.

Units: K, bar, eV/atom, Å^3/atom; entropies in eV/K/atom here (the reports convert to kB).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..units import EV_PER_A3_TO_BAR


@dataclass
class Curve:
    """One phase's G(T) (eV/atom) on a temperature grid (K), with standard errors.

    ``volume`` (Å^3/atom) and ``entropy_error`` (eV/K/atom) are optional, per grid point
    or one number.  The grid may be given in any order; it is sorted here.
    """

    name: str
    temperature: np.ndarray
    g: np.ndarray
    g_err: np.ndarray | float = 0.0
    volume: np.ndarray | float | None = None
    entropy_error: np.ndarray | float | None = None

    def __post_init__(self):
        t = np.asarray(self.temperature, float)
        if t.ndim != 1 or len(t) < 2:
            raise ValueError(f"phase {self.name}: a curve needs at least 2 temperatures, got {t.tolist()}")
        order = np.argsort(t)
        self.temperature = t[order]
        if np.any(np.diff(self.temperature) <= 0):
            raise ValueError(f"phase {self.name}: repeated temperatures in the grid")
        self.g = _per_point(self.g, len(t), "g", self.name)[order]
        self.g_err = _per_point(self.g_err, len(t), "g_err", self.name)[order]
        if not np.all(np.isfinite(self.g)):
            raise ValueError(f"phase {self.name}: G is not finite on the whole grid")
        if self.volume is not None:
            self.volume = _per_point(self.volume, len(t), "volume", self.name)[order]
        if self.entropy_error is not None:
            self.entropy_error = _per_point(self.entropy_error, len(t), "entropy_error", self.name)[order]

    @property
    def t_min(self):
        return float(self.temperature[0])

    @property
    def t_max(self):
        return float(self.temperature[-1])

    def __call__(self, t):
        """G at t (local cubic through the 4 nearest grid points; exact for cubics)."""
        return _local_poly(self.temperature, self.g, t, 0)

    def slope(self, t):
        """dG/dT at t (= -S)."""
        return _local_poly(self.temperature, self.g, t, 1)

    def error(self, t):
        return float(np.interp(t, self.temperature, np.nan_to_num(self.g_err)))

    def volume_at(self, t):
        return None if self.volume is None else float(np.interp(t, self.temperature, self.volume))

    def entropy_error_at(self, t):
        return None if self.entropy_error is None else float(np.interp(t, self.temperature, self.entropy_error))


def _per_point(x, n, what, name):
    x = np.asarray(x, float)
    if x.ndim == 0:
        return np.full(n, float(x))
    if x.shape != (n,):
        raise ValueError(f"phase {name}: {what} has {x.size} values for {n} temperatures")
    return x.copy()


def _local_poly(xs, ys, x, deriv):
    """Value (deriv 0) or first derivative (deriv 1) at x of the Lagrange polynomial through
    the (up to) 4 grid points nearest to x."""
    n = len(xs)
    k = min(4, n)
    i = int(np.searchsorted(xs, x))
    lo = min(max(i - k // 2, 0), n - k)
    px, py = xs[lo:lo + k], ys[lo:lo + k]
    shift = px.mean()
    coef = np.polyfit(px - shift, py, k - 1)
    if deriv:
        coef = np.polyder(coef)
    return float(np.polyval(coef, x - shift))


@dataclass
class Crossing:
    """Where G_a = G_b: ``status`` is "crossing" (T* found inside the overlap of the grids),
    "below" or "above" (no sign change; the crossing lies below or above the overlap, at
    about ``extrapolated`` K by a linear extrapolation), or "none" (the curves do not
    approach each other on either side).  Entropies eV/K/atom, L eV/atom, dV Å^3/atom."""

    a: str
    b: str
    status: str
    t_range: tuple
    temperature: float = float("nan")
    error: float = float("nan")
    slope_difference: float = float("nan")        # dG_a/dT - dG_b/dT at T* (eV/K/atom)
    entropy_a: float = float("nan")
    entropy_b: float = float("nan")
    delta_entropy: float = float("nan")           # S_b - S_a
    latent_heat: float = float("nan")             # T* (S_b - S_a)
    latent_heat_error: float = float("nan")
    delta_volume: float | None = None             # V_b - V_a at T*
    stable_below: str = ""
    stable_above: str = ""
    extrapolated: float = float("nan")
    others: list = field(default_factory=list)    # further crossings inside the grid (T values)

    @property
    def found(self) -> bool:
        return self.status == "crossing"

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("a", "b", "status", "temperature", "error", "slope_difference",
                                             "entropy_a", "entropy_b", "delta_entropy", "latent_heat",
                                             "latent_heat_error", "delta_volume", "stable_below", "stable_above",
                                             "extrapolated")}
        out["t_range"] = [float(x) for x in self.t_range]
        out["other_crossings"] = [float(x) for x in self.others]
        return out


def _root(f, lo, hi, f_lo, f_hi, tol=1e-10):
    """A root of f in [lo, hi] with f_lo f_hi <= 0 (bisection polished by secant steps)."""
    if f_lo == 0.0:
        return lo
    if f_hi == 0.0:
        return hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        if f_mid == 0.0 or hi - lo < tol * max(1.0, abs(mid)):
            return mid
        if (f_mid < 0) == (f_lo < 0):
            lo, f_lo = mid, f_mid
        else:
            hi, f_hi = mid, f_mid
    return 0.5 * (lo + hi)


def crossing(a: Curve, b: Curve, t_range=None) -> Crossing:
    """Where G_a(T) = G_b(T) within the overlap of the two grids (or ``t_range`` inside it)."""
    lo, hi = max(a.t_min, b.t_min), min(a.t_max, b.t_max)
    if t_range is not None:
        lo, hi = max(lo, t_range[0]), min(hi, t_range[1])
    if not hi > lo:
        raise ValueError(f"the temperature grids of {a.name} ({a.t_min:g}-{a.t_max:g} K) and {b.name} "
                         f"({b.t_min:g}-{b.t_max:g} K) do not overlap")
    grid = np.unique(np.concatenate([[lo, hi], a.temperature, b.temperature]))
    grid = grid[(grid >= lo) & (grid <= hi)]

    def diff(t):
        return a(t) - b(t)

    d = np.array([diff(t) for t in grid])
    roots = []
    for i in range(len(grid) - 1):
        if d[i] == 0.0 and i > 0:
            continue                            # counted as the end of the previous interval
        if d[i] * d[i + 1] <= 0.0:
            roots.append(_root(diff, grid[i], grid[i + 1], d[i], d[i + 1]))
    result = Crossing(a.name, b.name, "crossing", (lo, hi))
    if not roots:
        return _no_crossing(result, a, b, lo, hi, d[0], d[-1])
    slopes = [a.slope(t) - b.slope(t) for t in roots]
    best = int(np.argmax(np.abs(slopes)))        # several sign changes: noise near a tangency
    t_star, dslope = roots[best], slopes[best]
    result.others = [t for k, t in enumerate(roots) if k != best]
    result.temperature = float(t_star)
    result.slope_difference = float(dslope)
    result.error = float(np.hypot(a.error(t_star), b.error(t_star)) / abs(dslope)) if dslope else float("inf")
    result.entropy_a, result.entropy_b = -a.slope(t_star), -b.slope(t_star)
    result.delta_entropy = result.entropy_b - result.entropy_a
    result.latent_heat = t_star * result.delta_entropy
    ea, eb = a.entropy_error_at(t_star), b.entropy_error_at(t_star)
    if ea is not None and eb is not None:
        result.latent_heat_error = float(np.hypot(t_star * np.hypot(ea, eb), result.error * result.delta_entropy))
    va, vb = a.volume_at(t_star), b.volume_at(t_star)
    if va is not None and vb is not None:
        result.delta_volume = vb - va
    # G_a - G_b rises through zero: a is below b (stable) before T*, b after
    below_is_a = dslope > 0
    result.stable_below, result.stable_above = (a.name, b.name) if below_is_a else (b.name, a.name)
    return result


def _no_crossing(result, a, b, lo, hi, d_lo, d_hi):
    """No sign change: extrapolate G_a - G_b linearly from each end; the side that reaches zero."""
    s_lo = a.slope(lo) - b.slope(lo)
    s_hi = a.slope(hi) - b.slope(hi)
    below = lo - d_lo / s_lo if s_lo else -np.inf
    above = hi - d_hi / s_hi if s_hi else np.inf
    ok_below, ok_above = below < lo, above > hi
    if ok_below and ok_above:                    # both ends approach zero outwards: the nearer one
        ok_below = (lo - below) <= (above - hi)
        ok_above = not ok_below
    if ok_below:
        result.status, result.extrapolated = "below", float(below)
    elif ok_above:
        result.status, result.extrapolated = "above", float(above)
    else:
        result.status = "none"
    lower = a.name if d_lo < 0 else b.name      # the phase with the lower G over the whole overlap
    result.stable_below = result.stable_above = lower
    return result


def move_window(lo, hi, side, t_min=1.0):
    """The next window: [lo, hi] shifted by its width towards ``side`` ("below"/"above");
    None when it cannot move (side "none", or below ``t_min`` K)."""
    width = hi - lo
    if side == "above":
        return lo + width, hi + width
    if side == "below":
        if lo - width < t_min:
            return None
        return lo - width, hi - width
    return None


# ---------------------------------------------------------------- Clausius-Clapeyron
class Table:
    """Values on a grid, linearly interpolated: ``Table(temperatures, None, v)`` (in T),
    ``Table(None, pressures, v)`` (in P) or ``Table(temperatures, pressures, v[iT, iP])``
    (bilinear).  Called as ``table(T, P)``; outside the grid the end values hold."""

    def __init__(self, temperatures, pressures, values):
        self.t = None if temperatures is None else np.asarray(temperatures, float)
        self.p = None if pressures is None else np.asarray(pressures, float)
        self.v = np.asarray(values, float)
        shape = tuple(len(x) for x in (self.t, self.p) if x is not None)
        if not shape or self.v.shape != shape:
            raise ValueError(f"table values of shape {self.v.shape} do not match the grid {shape}")

    def __call__(self, t, p):
        if self.t is None:
            return float(np.interp(p, self.p, self.v))
        if self.p is None:
            return float(np.interp(t, self.t, self.v))
        column = np.array([np.interp(t, self.t, self.v[:, j]) for j in range(len(self.p))])
        return float(np.interp(p, self.p, column))


def _as_function(x):
    if callable(x):
        return x
    value = float(x)
    return lambda t, p: value


def clapeyron_slope(t, p, delta_v, delta_h):
    """dT/dP (K/bar) = T dV / dH with dV in Å^3/atom and dH in eV/atom."""
    return t * delta_v(t, p) / (delta_h(t, p) * EV_PER_A3_TO_BAR)


def coexistence_line(t0, pressures, delta_v, delta_h, t0_error=0.0, substeps=1, slope_error=None):
    """T(P) (K) on ``pressures`` (bar; the first is the pressure of t0) by RK4 of dT/dP = T dV/dH.

    ``delta_v`` (Å^3/atom) and ``delta_h`` (eV/atom) are callables (T, P), constants or Tables,
    taken as (phase stable above) - (phase stable below).  Returns (T, error): the error is
    t0_error carried along the line (the half difference of the lines from t0 +- t0_error)
    combined in quadrature with, when ``slope_error(T, P)`` (K/bar) is given, the statistical
    error of the slopes: each RK4 stage adds its weight h w / 6 (w = 1, 2, 2, 1) times its
    slope's error, stages at the same (T, P) counted as one sample, to every later pressure
    (their feedback through T is second order and left out).
    """
    p = np.asarray(pressures, float)
    dv, dh = _as_function(delta_v), _as_function(delta_h)

    def line(start, weights=None):
        t = np.empty(len(p))
        t[0] = start
        for i in range(len(p) - 1):
            h = (p[i + 1] - p[i]) / substeps
            ti, pi = t[i], p[i]
            for _ in range(substeps):
                k1 = clapeyron_slope(ti, pi, dv, dh)
                t2 = ti + 0.5 * h * k1
                k2 = clapeyron_slope(t2, pi + 0.5 * h, dv, dh)
                t3 = ti + 0.5 * h * k2
                k3 = clapeyron_slope(t3, pi + 0.5 * h, dv, dh)
                t4 = ti + h * k3
                k4 = clapeyron_slope(t4, pi + h, dv, dh)
                if weights is not None:
                    for w, tk, pk in ((1, ti, pi), (2, t2, pi + 0.5 * h), (2, t3, pi + 0.5 * h), (1, t4, pi + h)):
                        key = (round(float(tk), 9), round(float(pk), 9))
                        weights[i][key] = weights[i].get(key, 0.0) + h * w / 6.0
                ti, pi = ti + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4), pi + h
            t[i + 1] = ti
        return t

    per_step = [dict() for _ in range(len(p) - 1)]
    t = line(float(t0), per_step if slope_error is not None else None)
    if t0_error and np.isfinite(t0_error):
        err = 0.5 * np.abs(line(t0 + t0_error) - line(t0 - t0_error))
    else:
        err = np.zeros(len(p))
    if slope_error is not None:
        total = {}
        noise = np.zeros(len(p))
        for i, step in enumerate(per_step):
            for key, weight in step.items():
                total[key] = total.get(key, 0.0) + weight
            noise[i + 1] = np.sqrt(sum((c * slope_error(*key)) ** 2 for key, c in total.items()))
        err = np.hypot(err, noise)
    return t, err


# ---------------------------------------------------------------- phase map
def phase_map(curves, temperatures=None):
    """The stable phase along T of several phases' G(T) curves.

    Returns {"temperature", "stable" (phase name per T), "segments" [(T_lo, T_hi, name)],
    "transitions" [Crossing between consecutive stable phases], "g" {name: G on the grid}}
    on ``temperatures`` (default: the union of the grids inside their common range).
    """
    curves = list(curves)
    if len(curves) < 2:
        raise ValueError("a phase map needs at least two phases")
    names = [c.name for c in curves]
    if len(set(names)) != len(names):
        raise ValueError(f"phase names must differ: {names}")
    lo, hi = max(c.t_min for c in curves), min(c.t_max for c in curves)
    if not hi > lo:
        raise ValueError("the phases' temperature grids have no common range")
    if temperatures is None:
        temperatures = np.unique(np.concatenate([c.temperature for c in curves]))
        temperatures = temperatures[(temperatures >= lo) & (temperatures <= hi)]
    t = np.asarray(temperatures, float)
    g = np.array([[c(x) for x in t] for c in curves])
    idx = np.argmin(g, axis=0)
    stable = [names[i] for i in idx]
    segments, transitions = [], []
    start = t[0]
    for k in range(1, len(t)):
        if idx[k] != idx[k - 1]:
            cross = crossing(curves[idx[k - 1]], curves[idx[k]], t_range=(t[k - 1], t[k]))
            t_x = cross.temperature if cross.found else 0.5 * (t[k - 1] + t[k])
            transitions.append(cross)
            segments.append((float(start), float(t_x), stable[k - 1]))
            start = t_x
    segments.append((float(start), float(t[-1]), stable[-1]))
    return {"temperature": t, "stable": stable, "segments": segments, "transitions": transitions,
            "g": {n: g[i] for i, n in enumerate(names)}}


def stable_phase_grid(names, g):
    """Stable phase index on a grid: ``g[phase, iT, iP]`` (eV/atom) -> (index array [iT, iP], names)."""
    g = np.asarray(g, float)
    if g.shape[0] != len(names):
        raise ValueError(f"{len(names)} phase names for {g.shape[0]} G arrays")
    return np.argmin(g, axis=0), list(names)
