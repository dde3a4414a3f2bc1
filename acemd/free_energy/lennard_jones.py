"""Lennard-Jones pair term, truncated and shifted: a cheap potential with a stable solid and
liquid for validating the phase protocols (docs/phase-diagram.md, "Validation on Lennard-Jones").

phi(r) = 4 epsilon [(sigma/r)^12 - (sigma/r)^6] - phi_LJ(r_c)   for r < r_c,  0 beyond.

The shift makes the energy continuous at the cutoff (the force jumps by phi'(r_c), 0.039
epsilon/sigma at r_c = 2.5 sigma), so MD conserves energy and samples exp(-U/kT) of this
Hamiltonian; no long-range tail correction is added: the model is the "truncated and
shifted" LJ (LJTS) of the literature, whose phase diagram depends on r_c.  Not a user-facing
[potential]: tests and scripts inject it in place of the ACE term (as the harmonic stand-ins).

Argon-like parameters (``ARGON``): epsilon/kB = 119.8 K, sigma = 3.405 Å, m = 39.948 amu, so
temperatures come out in K (T* = kB T / epsilon) and pressures in bar (P* = P sigma^3/epsilon,
1 P* = 419.4 bar).

Like the Uhlenbeck-Ford term it uses the engine's full neighbour list: each appearance of a
pair carries half the pair energy on its owned atom and half the pair force on both atoms.
"""
from __future__ import annotations

import numba
import numpy as np

from ..forcefield import ForceTerm, TermResult
from ..units import BOLTZMANN, EV_PER_A3_TO_BAR
from .pair_force import add_pair_force

#: epsilon (eV), sigma (Å), mass (amu) of the argon-like model.
ARGON = {"epsilon": 119.8 * BOLTZMANN, "sigma": 3.405, "mass": 39.948}


@numba.njit(cache=True)
def lj_pair_kernel(positions, n_local, offsets, neighbors, epsilon, sigma, cutoff, shift,
                   site_energy, forces, virial):
    """Accumulate LJTS energies (owned atoms), forces (all extended atoms) and virial (3, 3).

    Arrays are preallocated and zeroed by the caller; ``shift`` = phi_LJ(cutoff) (eV).
    """
    s2 = sigma * sigma
    rc2 = cutoff * cutoff
    for i in range(n_local):
        xi0 = positions[i, 0]
        xi1 = positions[i, 1]
        xi2 = positions[i, 2]
        for p in range(offsets[i], offsets[i + 1]):
            j = neighbors[p]
            d0 = positions[j, 0] - xi0
            d1 = positions[j, 1] - xi1
            d2 = positions[j, 2] - xi2
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            if r2 >= rc2:
                continue
            q = s2 / r2
            s6 = q * q * q
            s12 = s6 * s6
            site_energy[i] += 0.5 * (4.0 * epsilon * (s12 - s6) - shift)
            # dphi/dr / r = -(24 epsilon / r^2) (2 s12 - s6); F_i = (dphi/dr / r) d
            g = -24.0 * epsilon * (2.0 * s12 - s6) / r2
            add_pair_force(i, j, 0.5 * g, d0, d1, d2, forces, virial)


def lj_pair_energy(r, epsilon, sigma, cutoff):
    """phi(r) (eV) of the truncated and shifted LJ, r in Å (vectorised)."""
    r = np.asarray(r, dtype=float)
    full = lambda x: 4.0 * epsilon * ((sigma / x) ** 12 - (sigma / x) ** 6)  # noqa: E731
    return np.where(r < cutoff, full(r) - full(cutoff), 0.0)


class LennardJonesTerm(ForceTerm):
    """Truncated and shifted LJ: ``epsilon`` (eV), ``sigma`` (Å), cutoff ``cutoff_sigmas`` x sigma."""

    name = "lj"

    def __init__(self, epsilon=ARGON["epsilon"], sigma=ARGON["sigma"], cutoff_sigmas=2.5, name="lj"):
        if not epsilon > 0.0:
            raise ValueError(f"Lennard-Jones epsilon must be positive (eV), got {epsilon}")
        if not sigma > 0.0:
            raise ValueError(f"Lennard-Jones sigma must be positive (Å), got {sigma}")
        if not cutoff_sigmas > 1.0:
            raise ValueError(f"Lennard-Jones cutoff must exceed sigma, got {cutoff_sigmas} sigma")
        self.name = name
        self.epsilon, self.sigma = float(epsilon), float(sigma)
        self.cutoff = float(cutoff_sigmas) * self.sigma
        x6 = (1.0 / cutoff_sigmas) ** 6
        self.shift = 4.0 * self.epsilon * (x6 * x6 - x6)

    @property
    def pressure_unit_bar(self) -> float:
        """epsilon / sigma^3 in bar (P* = 1)."""
        return self.epsilon / self.sigma ** 3 * EV_PER_A3_TO_BAR

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        n_ext = len(positions)
        site = np.zeros(n_local)
        forces = np.zeros((n_ext, 3))
        virial = np.zeros((3, 3))
        lj_pair_kernel(np.ascontiguousarray(positions, dtype=float), n_local,
                       np.ascontiguousarray(offsets, dtype=np.int64),
                       np.ascontiguousarray(neighbors, dtype=np.int64),
                       self.epsilon, self.sigma, self.cutoff, self.shift, site, forces, virial)
        return TermResult(site, forces, virial)


def injector(**term_args):
    """A ``prepare(run, phase)`` callback for :class:`acemd.drivers.phase_diagram.PhaseDiagramRun`
    (and anything with ``.simulation``): replaces the potential of every sub-run by
    ``LennardJonesTerm(**term_args)``, the way the tests inject their harmonic phases."""
    def prepare(run, phase):
        sim = run.simulation
        term = LennardJonesTerm(**term_args)
        sim.term = term
        sim.set_terms([term])
    return prepare
