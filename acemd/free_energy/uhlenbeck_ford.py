"""The Uhlenbeck-Ford model (UFM) liquid, the reference of the liquid free-energy route.

phi(r) = -epsilon ln(1 - exp(-(r/sigma)^2)),   epsilon = p kB T

(Paula Leite, Freitas, Azevedo and de Koning, J. Chem. Phys. 145, 194101 (2016)).
The energy scale is tied to the temperature T of the run, so the model's reduced
thermodynamics depends only on p and the reduced density x = rho b^3 with
b^3 = (pi sigma^2)^(3/2) / 2 (the second virial coefficient of p = 1).  phi is
ultrasoft (it diverges only logarithmically at r = 0) and purely repulsive.

Cutoff: phi(r) -> epsilon exp(-(r/sigma)^2) for r >> sigma; at the default
r_c = 5 sigma the pair energy is epsilon e^-25 = 1.4e-11 epsilon (6e-11 eV for p = 50
at 1000 K) and the force 10 epsilon/sigma e^-25.  The potential is truncated there
without a shift: the jump is below round-off of any energy that matters and the
neglected tail, 4 pi rho int_rc^inf r^2 phi dr, is < 1e-9 eV/atom at liquid densities.

The engine's neighbour list is full (every pair appears once from each side, possibly
on two ranks), so each appearance carries half the pair energy on its owned atom and
half the pair force on both atoms; ghost forces go home by reverse communication.
"""
from __future__ import annotations

import numba
import numpy as np

from ..forcefield import ForceTerm, TermResult
from ..units import BOLTZMANN
from .pair_force import add_pair_force


@numba.njit(cache=True)
def uf_pair_kernel(positions, n_local, offsets, neighbors, epsilon, sigma, cutoff,
                   site_energy, forces, virial):
    """Accumulate UF energies (owned atoms), forces (all extended atoms) and virial.

    Arrays are preallocated and zeroed by the caller; ``virial`` is (3, 3).
    """
    inv_s2 = 1.0 / (sigma * sigma)
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
            q = r2 * inv_s2
            site_energy[i] += -0.5 * epsilon * np.log(-np.expm1(-q))
            # dphi/dr / r = (2/sigma^2) dphi/dq = -(2/sigma^2) epsilon / (e^q - 1)
            g = -2.0 * inv_s2 * epsilon / np.expm1(q)
            add_pair_force(i, j, 0.5 * g, d0, d1, d2, forces, virial)


def uf_pair_energy(r, p, sigma, temperature):
    """phi(r) (eV) of the UF model at ``temperature`` (K), r in Å (vectorised, no cutoff)."""
    q = (np.asarray(r, dtype=float) / sigma) ** 2
    return -p * BOLTZMANN * temperature * np.log(-np.expm1(-q))


class UhlenbeckFordTerm(ForceTerm):
    """UF pair term: ``p`` (dimensionless), ``sigma`` (Å), ``temperature`` (K) sets epsilon = p kB T."""

    name = "uf"

    def __init__(self, temperature, p=50.0, sigma=1.5, cutoff_sigmas=5.0, name="uf"):
        if not temperature > 0.0:
            raise ValueError(f"Uhlenbeck-Ford temperature must be positive (K), got {temperature}")
        if not p > 0.0:
            raise ValueError(f"Uhlenbeck-Ford p must be positive, got {p}")
        if not sigma > 0.0:
            raise ValueError(f"Uhlenbeck-Ford sigma must be positive (Å), got {sigma}")
        self.name = name
        self.p, self.sigma, self.temperature = float(p), float(sigma), float(temperature)
        self.epsilon = self.p * BOLTZMANN * self.temperature        # eV
        self.cutoff = float(cutoff_sigmas) * self.sigma

    def compute(self, positions, species, ids, n_local, offsets, neighbors):
        n_ext = len(positions)
        site = np.zeros(n_local)
        forces = np.zeros((n_ext, 3))
        virial = np.zeros((3, 3))
        uf_pair_kernel(np.ascontiguousarray(positions, dtype=float), n_local,
                       np.ascontiguousarray(offsets, dtype=np.int64),
                       np.ascontiguousarray(neighbors, dtype=np.int64),
                       self.epsilon, self.sigma, self.cutoff, site, forces, virial)
        return TermResult(site, forces, virial)
