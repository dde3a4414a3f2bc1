"""lambda mixing of two force terms: H(lambda) = (1 - f(lambda)) U_A + f(lambda) U_B.

The switching path of thermodynamic integration.  The term reports U_A and U_B
(its ``parts``, global sums in ``engine.term_energies["<name>.A"]``/``".B"``) so that
the driver can accumulate dH/dlambda = f'(lambda) (U_B - U_A) every step.

Switching functions f (lambda in [0, 1]):
* ``"smooth"``: f = l^5 (70 l^4 - 315 l^3 + 540 l^2 - 420 l + 126), the polynomial of
  LAMMPS ``fix ti/spring ... function 2``: f(0) = 0, f(1) = 1, and f' = 630 l^4 (1-l)^4
  (with f'', f''', f'''' too) vanishes at both ends, so the system is switched
  gently where the integrand is steepest.
* ``"linear"``: f = lambda.
"""
from __future__ import annotations

import numpy as np

from ..forcefield import ForceTerm, TermResult

SWITCHING = ("smooth", "linear")


def _check(kind):
    if kind not in SWITCHING:
        raise ValueError(f"unknown switching function '{kind}'; choose one of {', '.join(SWITCHING)}")


def switching_value(lam, kind="smooth"):
    """f(lambda)."""
    _check(kind)
    lam = np.asarray(lam, dtype=float)
    if kind == "linear":
        return lam * 1.0
    return lam ** 5 * (70.0 * lam ** 4 - 315.0 * lam ** 3 + 540.0 * lam ** 2 - 420.0 * lam + 126.0)


def switching_derivative(lam, kind="smooth"):
    """df/dlambda."""
    _check(kind)
    lam = np.asarray(lam, dtype=float)
    if kind == "linear":
        return np.ones_like(lam)
    return 630.0 * (lam * (1.0 - lam)) ** 4


class LambdaMixing(ForceTerm):
    """(1 - f(lam)) term_a + f(lam) term_b; set ``lam`` between force calls."""

    def __init__(self, term_a: ForceTerm, term_b: ForceTerm, switching="smooth", lam=0.0, name="mix"):
        _check(switching)
        self.term_a, self.term_b = term_a, term_b
        self.switching = switching
        self.name = name
        self.cutoff = max(term_a.cutoff, term_b.cutoff)
        self.lam = float(lam)

    @property
    def weight(self) -> float:
        """f(lam), the weight of term_b."""
        return float(switching_value(self.lam, self.switching))

    @property
    def weight_derivative(self) -> float:
        return float(switching_derivative(self.lam, self.switching))

    def bind(self, state, comm):
        for t in (self.term_a, self.term_b):
            if hasattr(t, "bind"):
                t.bind(state, comm)

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        ra = self.term_a.compute(positions, species, ids, n_local, offsets, neighbors)
        rb = self.term_b.compute(positions, species, ids, n_local, offsets, neighbors)
        f = self.weight
        g = 1.0 - f
        parts = {"A": float(ra.site_energy.sum()), "B": float(rb.site_energy.sum())}
        forces = np.multiply(ra.forces, g)          # a new array: the terms may reuse their buffers
        forces += f * rb.forces
        return TermResult(g * ra.site_energy + f * rb.site_energy, forces,
                          g * ra.virial + f * rb.virial, parts=parts)
