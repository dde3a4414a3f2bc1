"""Stages of thermodynamic switching over an Engine and an integrator.

A switch drives ``LambdaMixing.lam`` from 0 to 1 (forward) or 1 to 0 (backward) in
``n_steps`` equal increments, one per MD step: before step k the mixing parameter is set
to lambda_k, so the step's force call (and its second half kick) sees H(lambda_k).
After each step U_A and U_B (global sums reported by the mixing term) are recorded.
The work is W = int (U_B - U_A) df over the recorded path (trapezoid rule in
f = f(lambda), as calphy integrates LAMMPS' ti/spring output), i.e. int dH/dlambda
dlambda.  With W_fw (0 -> 1) and W_bw (1 -> 0): Delta F = (W_fw - W_bw)/2 and the
dissipated energy Q = (W_fw + W_bw)/2 (Freitas et al. 2016, de Koning 2005).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mixing import LambdaMixing, switching_derivative, switching_value

MIN_SWITCHING_STEPS = 10


@dataclass
class SwitchRecord:
    """One switch: per recorded step lambda, f(lambda), U_A, U_B (eV, global) and the work."""

    lam: np.ndarray
    weight: np.ndarray
    energy_a: np.ndarray
    energy_b: np.ndarray
    switching: str = "smooth"

    @property
    def dh_dlambda(self) -> np.ndarray:
        """dH/dlambda = f'(lambda) (U_B - U_A) (eV) at each recorded step."""
        return switching_derivative(self.lam, self.switching) * (self.energy_b - self.energy_a)

    @property
    def work(self) -> float:
        """int (U_B - U_A) df (eV, whole system)."""
        du = self.energy_b - self.energy_a
        return float(np.sum(0.5 * (du[1:] + du[:-1]) * np.diff(self.weight)))


def _record(engine, mix):
    te = engine.term_energies
    return te[f"{mix.name}.A"], te[f"{mix.name}.B"]


def switch(engine, integrator, mix: LambdaMixing, n_steps: int, forward: bool = True,
           on_step=None) -> SwitchRecord:
    """Run one switch of ``n_steps`` MD steps; returns its record (collective)."""
    if n_steps < MIN_SWITCHING_STEPS:
        raise ValueError(f"a switch needs at least {MIN_SWITCHING_STEPS} steps to integrate dH/dlambda "
                         f"(got {n_steps}); use switching_steps of thousands for converged work")
    lam = np.linspace(0.0, 1.0, n_steps + 1)
    if not forward:
        lam = lam[::-1].copy()
    mix.lam = float(lam[0])
    engine.compute_forces()
    ua, ub = np.empty(n_steps + 1), np.empty(n_steps + 1)
    ua[0], ub[0] = _record(engine, mix)
    for k in range(1, n_steps + 1):
        mix.lam = float(lam[k])
        integrator.step(engine)
        ua[k], ub[k] = _record(engine, mix)
        if on_step is not None:
            on_step(k)
    return SwitchRecord(lam, switching_value(lam, mix.switching), ua, ub, mix.switching)


def run_at_fixed_lambda(engine, integrator, mix: LambdaMixing, lam: float, n_steps: int, on_step=None):
    """Equilibrate ``n_steps`` at a fixed lambda (collective)."""
    mix.lam = float(lam)
    engine.compute_forces()
    for k in range(n_steps):
        integrator.step(engine)
        if on_step is not None:
            on_step(k + 1)


def free_energy_difference(forward: SwitchRecord, backward: SwitchRecord):
    """(Delta F, dissipation) = ((W_fw - W_bw)/2, (W_fw + W_bw)/2) in eV (whole system)."""
    wf, wb = forward.work, backward.work
    return 0.5 * (wf - wb), 0.5 * (wf + wb)
