"""Reversible scaling: F(T) over a temperature range from one nonequilibrium run
(de Koning, Antonelli and Yip, PRL 83, 3973 (1999)); ``mode = "temperature_sweep"``.

The potential is scaled, H_lambda = K + lambda U, and the thermostat stays at T0.  The
configurational integral of lambda U at T0 is that of U at T = T0 / lambda, so the
scaled system samples the configurations of the real one at T.  With the classical
momentum integral (thermal wavelength Lambda ~ T^(-1/2)) per atom:

    F(T) = (T / T0) [F(T0) + W(lambda)] + (3/2) kB T ln(lambda),   lambda = T0 / T,

W(lambda) = int_1^lambda <U>_lambda' dlambda' / N the reversible work of scaling (the
last term is the kinetic part: F_lambda(T0)/T0 and F(T)/T differ by 3 kB ln(Lambda(T) /
Lambda(T0)) per atom).  The exact harmonic crystal obeys it (tests/free_energy).

The run drives lambda from 1 to lambda_f = T0 / Tf (forward) and back (backward) with
T = T0 / lambda linear in time.  At lambda on the path, W_fw(lambda) = int_1^lambda U
dlambda' along the forward sweep and W_bw(lambda) = int_lambda^1 U dlambda' along the
backward one (the work to return from lambda to 1); their dissipative parts share the
sign of the work done, so

    W(lambda) = (W_fw(lambda) - W_bw(lambda)) / 2,   hysteresis Q(lambda) = (W_fw + W_bw) / 2,

as for the switching stages.  The sweep runs at the volume of T0 (NVT): F(T) is the
Helmholtz free energy at that fixed volume.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..units import BOLTZMANN
from .mixing import LambdaMixing


@dataclass
class SweepRecord:
    """One sweep: per step lambda and the unscaled potential energy U (eV, whole system)."""

    lam: np.ndarray
    energy: np.ndarray

    def cumulative_work(self) -> np.ndarray:
        """int_{lam[0]}^{lam[k]} U dlambda (eV) for every k (trapezoid rule)."""
        inc = 0.5 * (self.energy[1:] + self.energy[:-1]) * np.diff(self.lam)
        return np.concatenate([[0.0], np.cumsum(inc)])


def scaling_term(term, zero_term) -> LambdaMixing:
    """H = lambda U: linear mixing of nothing (A) and ``term`` (B); part B is the unscaled U."""
    return LambdaMixing(zero_term, term, switching="linear", lam=1.0, name="scale")


def lambda_path(t0, tf, n_steps, forward=True):
    """lambda_k = T0 / T_k with T_k linear in k from T0 to Tf (forward) or Tf to T0."""
    temps = np.linspace(t0, tf, n_steps + 1)
    if not forward:
        temps = temps[::-1].copy()
    return t0 / temps


def sweep(engine, integrator, mix: LambdaMixing, lam: np.ndarray, on_step=None) -> SweepRecord:
    """Run len(lam) - 1 MD steps with mix.lam = lam[k] before step k; returns the record (collective)."""
    mix.lam = float(lam[0])
    engine.compute_forces()
    u = np.empty(len(lam))
    u[0] = engine.term_energies[f"{mix.name}.B"]
    for k in range(1, len(lam)):
        mix.lam = float(lam[k])
        integrator.step(engine)
        u[k] = engine.term_energies[f"{mix.name}.B"]
        if on_step is not None:
            on_step(k)
    return SweepRecord(np.asarray(lam, float), u)


def sweep_works(forward: SweepRecord, backward: SweepRecord, lam_grid):
    """(W_fw, W_bw) (eV, whole system) at ``lam_grid``: 1 -> lambda forward, lambda -> 1 backward."""
    w_fw = forward.cumulative_work()
    w_bw_from_end = backward.cumulative_work()            # lambda_f -> lambda along the backward path
    w_bw = w_bw_from_end[-1] - w_bw_from_end              # lambda -> 1
    fw = _interp(lam_grid, forward.lam, w_fw)
    bw = _interp(lam_grid, backward.lam, w_bw)
    return fw, bw


def _interp(x, xp, fp):
    order = np.argsort(xp)
    return np.interp(x, xp[order], fp[order])


def free_energy_curve(f0_per_atom, t0, temperatures, work_per_atom):
    """F(T)/N (eV/atom) from F(T0)/N and the reversible scaling work W(lambda)/N at lambda = T0/T."""
    temperatures = np.asarray(temperatures, float)
    lam = t0 / temperatures
    return temperatures / t0 * (f0_per_atom + np.asarray(work_per_atom, float)) \
        + 1.5 * BOLTZMANN * temperatures * np.log(lam)


SWEEP_PARTS = ("eq_start", "forward", "eq_end", "backward")


def check_sweep(sec, input_path):
    """Input errors of ``mode = "temperature_sweep"`` (the schema checks signs and types)."""
    from ..simulation import InputError
    t0, tf = sec["temperature"], sec.get("temperature_final")
    if tf is None:
        raise InputError(f"{input_path}: [free_energy] mode = \"temperature_sweep\" needs temperature_final (K), "
                         "the other end of the sweep")
    if not t0 > 0 or not tf > 0:
        raise InputError(f"{input_path}: [free_energy] temperature = {t0} and temperature_final = {tf} must both "
                         "be positive (K)")
    if abs(tf - t0) < 1e-6 * t0:
        raise InputError(f"{input_path}: [free_energy] temperature_final = {tf} equals temperature = {t0}: a sweep "
                         "needs two different temperatures (for F at one temperature use mode = \"solid\")")
    if sec["sweep_steps"] < 10:
        raise InputError(f"{input_path}: [free_energy.sweep_steps] = {sec['sweep_steps']} is too few to integrate "
                         "the scaling work; use thousands (calphy's ts default is 50000)")
    if sec["sweep_points"] < 2:
        raise InputError(f"{input_path}: [free_energy.sweep_points] = {sec['sweep_points']}: the F(T) grid needs "
                         "at least 2 temperatures")


def _mean_err(rows):
    rows = np.asarray(rows, float)
    n = len(rows)
    err = rows.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(rows.shape[1], np.nan)
    return rows.mean(axis=0), err


def sweep_report(sec, n_atoms, f0_per_iteration, sweeps):
    """The F(T) curve (eV/atom) on the grid: mean and standard error over iterations (each pairs
    its own F(T0) with its own sweeps), the forward-only and backward-only curves, the hysteresis
    (T/T0) Q(lambda) and the entropy S = -dF/dT (kB/atom)."""
    t0, tf = sec["temperature"], sec["temperature_final"]
    temps = np.linspace(t0, tf, sec["sweep_points"])
    lam = t0 / temps
    rows = {"F": [], "fw": [], "bw": [], "hyst": []}
    for f0, (fw_rec, bw_rec) in zip(f0_per_iteration, sweeps):
        fw, bw = (w / n_atoms for w in sweep_works(fw_rec, bw_rec, lam))
        rows["F"].append(free_energy_curve(f0, t0, temps, 0.5 * (fw - bw)))
        rows["fw"].append(free_energy_curve(f0, t0, temps, fw))
        rows["bw"].append(free_energy_curve(f0, t0, temps, -bw))
        rows["hyst"].append(temps / t0 * 0.5 * (fw + bw))
    f, f_err = _mean_err(rows["F"])
    f_fw, _ = _mean_err(rows["fw"])
    f_bw, _ = _mean_err(rows["bw"])
    hyst, _ = _mean_err(rows["hyst"])
    entropy = -np.gradient(f, temps) / BOLTZMANN
    return {"temperature_K": temps.tolist(), "lambda": lam.tolist(), "free_energy": f.tolist(),
            "free_energy_error": f_err.tolist(), "free_energy_forward": f_fw.tolist(),
            "free_energy_backward": f_bw.tolist(), "hysteresis": hyst.tolist(), "entropy": entropy.tolist(),
            "unit": "K; eV/atom (Helmholtz at the volume of temperature); entropy kB/atom",
            "sweep_steps": sec["sweep_steps"], "temperature_final": float(tf)}


def print_sweep(say, curve):
    say("#")
    say("# temperature sweep (reversible scaling, fixed volume): F(T) in eV/atom, S in kB/atom")
    say("#   T(K)      F            +-          F_forward    F_backward   hysteresis   S")
    for row in zip(curve["temperature_K"], curve["free_energy"], curve["free_energy_error"],
                   curve["free_energy_forward"], curve["free_energy_backward"], curve["hysteresis"],
                   curve["entropy"]):
        say("  {:8.2f}  {:+.6f}  {:.6f}    {:+.6f}    {:+.6f}    {:+.6f}    {:.4f}".format(*row))
