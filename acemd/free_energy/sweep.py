"""Free-energy curves from one nonequilibrium path: G(T) and G(P) sweeps (docs/free-energy.md).

Every sweep drives one control variable x along a path from x0 to xf (forward) and
back (backward), records per step the unscaled potential energy U and the volume V,
and integrates an integrand y(x, U, V) with the trapezoid rule.  With the forward work
W_fw(x) = int_x0^x y dx' and the backward work W_bw(x) = int_x^x0 y dx' (the way home),
the dissipative parts share their sign, so the curve and the hysteresis are

    G(x) = (G_fw(x) + G_bw(x)) / 2,   hysteresis(x) = (G_fw(x) - G_bw(x)) / 2,

where G_fw and G_bw are the curve of each direction alone (W_bw -> -W_fw).

**Reversible scaling** (``sweep_method = "scaling"``, de Koning, Antonelli and Yip, PRL
83, 3973 (1999)), x = lambda.  The potential is scaled, H_lambda = K + lambda U, and the
thermostat stays at T0.  In NVT the configurational integral int exp(-beta0 lambda U) is
that of U at T = T0 / lambda.  In NPT the barostat target is lambda P: the
configurational integral at T0,

    Z_lambda = int dV int dr^N exp(-beta0 (lambda U + P' V)),   P' = lambda P,

equals int dV int dr^N exp(-beta (U + P V)) with beta = beta0 lambda, the NPT integral
of the real system at T = T0 / lambda and pressure P.  (The barostat sees it as well:
the scaled system's instantaneous pressure is (N kB T0 + lambda Virial)/V = lambda
P_real(T), so its force V (P_int - lambda P) + kB T0 = lambda [V (P_real - P) + kB T].)
dG_lambda/dlambda = <U + P V>_lambda, so with W = int_1^lambda <U + P V> dlambda' / N and
the classical momentum integral (Lambda ~ T^(-1/2), 3 kB ln(Lambda/Lambda0) per atom):

    G(T) = (T / T0) [G(T0) + W(lambda)] + (3/2) kB T ln(lambda),   lambda = T0 / T.

In NVT the same expression with P V -> 0 gives F(T) at the volume of T0.  T is linear
in time (lambda_k = T0 / T_k).

**Temperature ramp** (``sweep_method = "temperature_ramp"``, calphy's ``tscale``), x = T:
the potential is fixed and the thermostat (and barostat) temperature is ramped linearly
in time.  Gibbs-Helmholtz, d(G/T)/dT = -H/T^2 with H = <K + U + P V>; the kinetic part
is taken as its exact classical mean (3/2) N kB T (the momentum integral is Gaussian
whatever the thermostat does), so y = ((3/2) N kB T + U + P V) / T^2 and

    G(T) = T [G(T0) / T0 - W(T)],   W(T) = int_T0^T y dT' / N.

**Pressure sweep** (``mode = "pressure_sweep"``), x = P: NPT at fixed T with the barostat
target ramped linearly in time, dG/dP = <V>, G(P) = G(P0) + int_P0^P <V> dP' / N.

G(T0) (or G(P0)) is that of the solid or liquid route at T0 and P0: F + P V.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..units import BOLTZMANN, EV_PER_A3_TO_BAR

SWEEP_PARTS = ("eq_start", "forward", "eq_end", "backward")
METHODS = ("scaling", "temperature_ramp")
ENSEMBLES = ("npt", "nvt")


@dataclass
class SweepRecord:
    """One path: per step the control x (lambda, T in K or P in bar), the unscaled potential
    energy U (eV, whole system) and the volume V (Å^3; None = fixed)."""

    x: np.ndarray
    energy: np.ndarray
    volume: np.ndarray | None = None

    @property
    def lam(self):
        return self.x


def cumulative(x, y) -> np.ndarray:
    """int_{x[0]}^{x[k]} y dx for every k (trapezoid rule)."""
    inc = 0.5 * (y[1:] + y[:-1]) * np.diff(x)
    return np.concatenate([[0.0], np.cumsum(inc)])


def linear_path(x0, xf, n_steps, forward=True):
    """x_k linear in k from x0 to xf (forward) or xf to x0 (backward)."""
    xs = np.linspace(x0, xf, n_steps + 1)
    return xs if forward else xs[::-1].copy()


def lambda_path(t0, tf, n_steps, forward=True):
    """lambda_k = T0 / T_k with T_k linear in k from T0 to Tf (forward) or Tf to T0."""
    return t0 / linear_path(t0, tf, n_steps, forward)


def run_path(engine, integrator, xs, set_x, energy, on_step=None) -> SweepRecord:
    """len(xs) - 1 MD steps with ``set_x(xs[k])`` before step k; ``energy()`` reads U after each
    force call (collective)."""
    set_x(float(xs[0]))
    engine.compute_forces()
    n = len(xs)
    u, v = np.empty(n), np.empty(n)
    u[0], v[0] = energy(), engine.state.volume
    for k in range(1, n):
        set_x(float(xs[k]))
        integrator.step(engine)
        u[k], v[k] = energy(), engine.state.volume
        if on_step is not None:
            on_step(k)
    return SweepRecord(np.asarray(xs, float), u, v)


def sweep(engine, integrator, mix, lam, on_step=None) -> SweepRecord:
    """Reversible scaling at fixed volume: ``mix.lam = lam[k]`` before step k (``mix`` from
    :func:`scaling_term`)."""
    def set_lam(x):
        mix.lam = x
    return run_path(engine, integrator, lam, set_lam, lambda: engine.term_energies[f"{mix.name}.B"], on_step)


def scaling_term(term, zero_term):
    """H = lambda U: linear mixing of nothing (A) and ``term`` (B); part B is the unscaled U."""
    from .mixing import LambdaMixing
    return LambdaMixing(zero_term, term, switching="linear", lam=1.0, name="scale")


# ------------------------------------------------------------------ integrands and curves
def integrand(kind, rec: SweepRecord, n_atoms, pressure_bar=0.0):
    """y(x) of a path kind ("scaling", "temperature_ramp", "pressure"), eV per unit x (whole system)."""
    p = pressure_bar / EV_PER_A3_TO_BAR
    v = rec.volume if rec.volume is not None else np.zeros_like(rec.energy)
    if kind == "scaling":
        return rec.energy + p * v
    if kind == "temperature_ramp":
        t = rec.x
        return (1.5 * n_atoms * BOLTZMANN * t + rec.energy + p * v) / t ** 2
    if kind == "pressure":
        return v / EV_PER_A3_TO_BAR
    raise ValueError(f"unknown sweep kind {kind!r}")


def _interp(x, xp, fp):
    order = np.argsort(xp)
    return np.interp(x, xp[order], fp[order])


def path_works(forward: SweepRecord, backward: SweepRecord, grid, y_fw, y_bw):
    """(W_fw, W_bw) at ``grid``: x0 -> x along the forward path, x -> x0 along the backward one."""
    w_fw = cumulative(forward.x, y_fw)
    w_bw_from_end = cumulative(backward.x, y_bw)           # xf -> x along the backward path
    w_bw = w_bw_from_end[-1] - w_bw_from_end                # x -> x0
    return _interp(grid, forward.x, w_fw), _interp(grid, backward.x, w_bw)


def sweep_works(forward: SweepRecord, backward: SweepRecord, lam_grid):
    """(W_fw, W_bw) of U dlambda (eV, whole system) at ``lam_grid`` (fixed volume scaling)."""
    return path_works(forward, backward, lam_grid, forward.energy, backward.energy)


def free_energy_curve(f0_per_atom, t0, temperatures, work_per_atom):
    """F(T)/N (eV/atom) from F(T0)/N and the reversible scaling work W(lambda)/N at lambda = T0/T."""
    temperatures = np.asarray(temperatures, float)
    lam = t0 / temperatures
    return temperatures / t0 * (f0_per_atom + np.asarray(work_per_atom, float)) \
        + 1.5 * BOLTZMANN * temperatures * np.log(lam)


def direction_curves(kind, g0, x0, grid, w_fw, w_bw):
    """(G_fw, G_bw) per atom on ``grid`` (temperatures, or pressures for kind "pressure") from the
    works per atom; for "scaling" the grid is the temperature and the works are at lambda = T0/T."""
    if kind == "scaling":
        return free_energy_curve(g0, x0, grid, w_fw), free_energy_curve(g0, x0, grid, -w_bw)
    if kind == "temperature_ramp":
        return grid * (g0 / x0 - w_fw), grid * (g0 / x0 + w_bw)
    if kind == "pressure":
        return g0 + w_fw, g0 - w_bw
    raise ValueError(f"unknown sweep kind {kind!r}")


def path_grid(kind, x0, xf, points):
    """(the reported grid: T or P, the same grid in the path's control variable x)."""
    grid = np.linspace(x0, xf, points)
    return grid, (x0 / grid if kind == "scaling" else grid)


def window_mean(rec: SweepRecord, x_grid, values):
    """Mean of ``values`` over the steps whose x lies within half a grid spacing of each grid
    point (the volume at T or P along a path)."""
    half = 0.5 * abs(x_grid[1] - x_grid[0]) if len(x_grid) > 1 else np.inf
    out = np.empty(len(x_grid))
    for i, g in enumerate(x_grid):
        sel = np.abs(rec.x - g) <= half * (1 + 1e-9)
        out[i] = values[sel].mean() if sel.any() else np.nan
    return out


def _mean_err(rows):
    rows = np.asarray(rows, float)
    n = len(rows)
    err = rows.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(rows.shape[1:], np.nan)
    return rows.mean(axis=0), err


# ------------------------------------------------------------------ reports
def _record_temperatures(kind, t0, rec):
    return t0 / rec.x if kind == "scaling" else rec.x


def _volume_on_grid(fw, bw, fw_x, bw_x, grid, n_atoms):
    if fw.volume is None:
        return np.full(len(grid), np.nan)
    both = SweepRecord(np.concatenate([fw_x, bw_x]), np.concatenate([fw.energy, bw.energy]),
                       np.concatenate([fw.volume, bw.volume]))
    return window_mean(both, grid, both.volume) / n_atoms


def temperature_curve(sec, n_atoms, g0_per_iteration, sweeps, volume0, n_terms=None):
    """report["temperature_sweep"]: the curve on the grid temperature .. temperature_final (lists).

    ``g0_per_iteration``: each iteration's route result at T0 (G = F + P V in NPT, F in NVT),
    paired with its own (forward, backward) records.  Mean and standard error over the
    iterations; S, H, Cp from :mod:`.thermo_fit` of each iteration's curve.
    """
    from .thermo_fit import thermo_over_iterations
    kind, ensemble = sec["sweep_method"], sec["sweep_ensemble"]
    t0, tf, p = sec["temperature"], sec["temperature_final"], sec["pressure"]
    npt = ensemble == "npt"
    temps, xg = path_grid(kind, t0, tf, sec["sweep_points"])
    rows = {k: [] for k in ("curve", "fw", "bw", "V")}
    for g0, (fw, bw) in zip(g0_per_iteration, sweeps):
        y_fw, y_bw = (integrand(kind, r, n_atoms, p if npt else 0.0) for r in (fw, bw))
        w_fw, w_bw = (w / n_atoms for w in path_works(fw, bw, xg, y_fw, y_bw))
        g_fw, g_bw = direction_curves(kind, g0, t0, temps, w_fw, w_bw)
        rows["fw"].append(g_fw)
        rows["bw"].append(g_bw)
        rows["curve"].append(0.5 * (g_fw + g_bw))
        rows["V"].append(_volume_on_grid(fw, bw, _record_temperatures(kind, t0, fw),
                                         _record_temperatures(kind, t0, bw), temps, n_atoms) if npt
                         else np.full(len(temps), volume0 / n_atoms))
    curve, err = _mean_err(rows["curve"])
    c_fw, c_bw = _mean_err(rows["fw"])[0], _mean_err(rows["bw"])[0]
    volume = _mean_err(rows["V"])[0]
    pv = p / EV_PER_A3_TO_BAR * volume
    shift = 0.0 if npt else pv                 # the swept curve is G in NPT, F in NVT
    g, f = curve + shift, curve + shift - pv
    n_terms = sec.get("fit_terms", 4) if n_terms is None else n_terms
    out = {"temperature": temps.tolist(), "lambda": (t0 / temps).tolist(),
           "F": f.tolist(), "F_error": err.tolist(), "G": g.tolist(), "G_error": err.tolist(),
           "G_forward": (c_fw + shift).tolist(), "G_backward": (c_bw + shift).tolist(),
           "hysteresis": (0.5 * (c_fw - c_bw)).tolist(), "V": volume.tolist()}
    thermo = thermo_over_iterations(temps, rows["curve"], n_terms)
    if not npt:          # fixed volume: the fit of F gives S, E and Cv; H = E + P V
        thermo["H"] = (np.asarray(thermo["H"]) + pv).tolist()
    out.update(thermo)
    out.update({"method": kind, "ensemble": ensemble, "phase": sec.get("phase") or "solid",
                "pressure": float(p), "temperature_final": float(tf), "sweep_steps": sec["sweep_steps"],
                "fit_terms": int(n_terms), "units": CURVE_UNITS})
    return out


CURVE_UNITS = ("temperature K, pressure bar; F, G, hysteresis, H eV/atom; S, Cp kB/atom; V A^3/atom. "
               "ensemble npt: G(T) at pressure, F = G - P V; nvt: F(T) at the volume of temperature, "
               "G = F + P V, and S, H, Cp are S, E + P V, Cv at that volume")


def pressure_curve(sec, n_atoms, g0_per_iteration, sweeps):
    """report["pressure_sweep"]: G(P) on the grid pressure .. pressure_final (lists)."""
    p0, pf = sec["pressure"], sec["pressure_final"]
    grid, _ = path_grid("pressure", p0, pf, sec["sweep_points"])
    rows = {k: [] for k in ("curve", "fw", "bw", "V")}
    for g0, (fw, bw) in zip(g0_per_iteration, sweeps):
        y_fw, y_bw = (integrand("pressure", r, n_atoms) for r in (fw, bw))
        w_fw, w_bw = (w / n_atoms for w in path_works(fw, bw, grid, y_fw, y_bw))
        g_fw, g_bw = direction_curves("pressure", g0, p0, grid, w_fw, w_bw)
        rows["fw"].append(g_fw)
        rows["bw"].append(g_bw)
        rows["curve"].append(0.5 * (g_fw + g_bw))
        rows["V"].append(_volume_on_grid(fw, bw, fw.x, bw.x, grid, n_atoms))
    g, err = _mean_err(rows["curve"])
    c_fw, c_bw = _mean_err(rows["fw"])[0], _mean_err(rows["bw"])[0]
    volume, v_err = _mean_err(rows["V"])
    return {"pressure": grid.tolist(), "G": g.tolist(), "G_error": err.tolist(), "G_forward": c_fw.tolist(),
            "G_backward": c_bw.tolist(), "hysteresis": (0.5 * (c_fw - c_bw)).tolist(),
            "V": volume.tolist(), "V_error": v_err.tolist(),
            "F": (g - grid / EV_PER_A3_TO_BAR * volume).tolist(), "temperature": float(sec["temperature"]),
            "pressure_final": float(pf), "sweep_steps": sec["sweep_steps"], "phase": sec.get("phase") or "solid",
            "units": "pressure bar, temperature K; G, F = G - P V, hysteresis eV/atom; V A^3/atom"}


def print_temperature_curve(say, c):
    say("#")
    what = "G(T) at {:g} bar".format(c["pressure"]) if c["ensemble"] == "npt" else "F(T) at fixed volume"
    say(f"# temperature sweep ({c['method']}, {c['ensemble']}, {c['phase']}): {what}; eV/atom, S and Cp in kB/atom")
    say("#   T(K)      F            G            +-          hysteresis   V(A^3/at)  S         H            Cp")
    for row in zip(c["temperature"], c["F"], c["G"], c["G_error"], c["hysteresis"], c["V"], c["S"], c["H"], c["Cp"]):
        say("  {:8.2f}  {:+.6f}    {:+.6f}    {:.6f}    {:+.6f}    {:9.4f}  {:8.4f}  {:+.6f}    {:.4f}".format(*row))


def print_pressure_curve(say, c):
    say("#")
    say(f"# pressure sweep at {c['temperature']:g} K ({c['phase']}): G(P) in eV/atom")
    say("#   P(bar)        G            +-          hysteresis   V(A^3/at)")
    for row in zip(c["pressure"], c["G"], c["G_error"], c["hysteresis"], c["V"]):
        say("  {:12.1f}  {:+.6f}    {:.6f}    {:+.6f}    {:9.4f}".format(*row))


def check_sweep(sec, input_path):
    """Input errors of the sweep modes (the schema checks types and signs), before any work."""
    from ..simulation import InputError
    mode = sec["mode"]
    where = f"{input_path}: [free_energy]"
    for key, owner in (("phase", ("temperature_sweep", "pressure_sweep")), ("temperature_final", ("temperature_sweep",)),
                       ("pressure_final", ("pressure_sweep",))):
        if sec.get(key) is not None and mode not in owner:
            raise InputError(f"{where} {key} applies to mode = {' or '.join(repr(m) for m in owner)}, not "
                             f"mode = {mode!r}; remove it" + (" (mode = \"liquid\" is the liquid route)"
                                                             if key == "phase" else ""))
    if mode not in ("temperature_sweep", "pressure_sweep"):
        return
    t0 = sec["temperature"]
    if not t0 > 0:
        raise InputError(f"{where} temperature = {t0} must be positive (K)")
    if mode == "temperature_sweep":
        tf = sec.get("temperature_final")
        if tf is None:
            raise InputError(f"{where} mode = \"temperature_sweep\" needs temperature_final (K), the other end "
                             "of the sweep")
        if not tf > 0:
            raise InputError(f"{where} temperature_final = {tf} must be positive (K)")
        if abs(tf - t0) < 1e-6 * t0:
            raise InputError(f"{where} temperature_final = {tf} equals temperature = {t0}: a sweep needs two "
                             "different temperatures (for G at one temperature use mode = \"solid\" or \"liquid\")")
    else:
        p0, pf = sec["pressure"], sec.get("pressure_final")
        if pf is None:
            raise InputError(f"{where} mode = \"pressure_sweep\" needs pressure_final (bar), the other end of "
                             "the sweep")
        if abs(pf - p0) < 1e-3:
            raise InputError(f"{where} pressure_final = {pf} equals pressure = {p0}: a sweep needs two different "
                             "pressures (for G at one pressure use mode = \"solid\" or \"liquid\")")
        if sec["sweep_ensemble"] != "npt":
            raise InputError(f"{where} sweep_ensemble = \"{sec['sweep_ensemble']}\": a pressure sweep is NPT by "
                             "nature; remove sweep_ensemble or set it to \"npt\"")
        if sec["sweep_method"] != "scaling":
            raise InputError(f"{where} sweep_method = \"{sec['sweep_method']}\" applies to temperature_sweep; a "
                             "pressure sweep ramps the barostat target; remove sweep_method")
    if sec["sweep_steps"] < 10:
        raise InputError(f"{where} sweep_steps = {sec['sweep_steps']} is too few to integrate along the path; "
                         "use thousands (calphy's default is 50000)")
    if sec["sweep_points"] < 2:
        raise InputError(f"{where} sweep_points = {sec['sweep_points']}: the curve's grid needs at least 2 points")
    if mode == "temperature_sweep" and sec["sweep_points"] <= sec["fit_terms"]:
        raise InputError(f"{where} sweep_points = {sec['sweep_points']} cannot fit fit_terms = {sec['fit_terms']} "
                         f"terms for S, H and Cp; use sweep_points >= {sec['fit_terms'] + 1} (e.g. 21)")
