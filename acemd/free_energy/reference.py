"""Reference free energies in closed form (metal units: eV, K, Å, amu).

All functions return Helmholtz free energies per atom (eV/atom) of classical systems,
momentum part included (the thermal wavelength), so that F_solid = F_Einstein +
F_CM + W and F_liquid = F_ideal-gas + F_excess + W are absolute free energies.

* Einstein crystal, 3N independent classical oscillators of omega_s = sqrt(k_s/m_s):
  F/N = 3 kB T sum_s c_s ln(hbar omega_s / kB T)   (momentum and position integrals
  together: Lambda_s^3 (k_s / 2 pi kB T)^(3/2) = (hbar omega_s / kB T)^3).
* Centre-of-mass correction of Frenkel-Ladd with a fixed centre of mass
  (Polson et al., J. Chem. Phys. 112, 5339 (2000); Freitas et al., Comput. Mater.
  Sci. 112, 333 (2016), eq. 23 for one species).  With the mass-weighted mean
  displacement D Gaussian in the free Einstein crystal of variance
  s^2 = kB T sum_i m_i^2 / (M^2 k_i) per axis, fixing D = 0 removes the factor
  (2 pi s^2)^(-3/2) from the configurational integral, and the crystal's
  translations over the volume V (N lattice translations map it onto itself with
  atoms relabelled) give back V / N:
  F_CM / N = (kB T / N) ln[(N / V) (2 pi s^2)^(3/2)].
  For one species s^2 = kB T / (N k): Freitas' formula.  calphy sums this expression
  per species for alloys; here D is the one mass-weighted centre of mass that the
  dynamics fixes, which is exact for that constraint (both are O(ln N / N)).
* Ideal gas of several species (Stirling's large-N form, as calphy):
  F/N = kB T sum_s c_s [ln(rho c_s Lambda_s^3) - 1], which contains the ideal
  mixing entropy kB T sum_s c_s ln c_s.
"""
from __future__ import annotations

import numpy as np

from ..units import BOLTZMANN, FORCE_TO_ACCEL, MVV_TO_EV

HBAR_EV_PS = 6.582119569e-4           # eV ps (CODATA 2018: 6.582119569e-16 eV s)
PLANCK_EV_PS = 2.0 * np.pi * HBAR_EV_PS


def _fractions(counts):
    counts = np.asarray(counts, dtype=float)
    if np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError(f"species counts must be non-negative with a positive total: {counts}")
    return counts / counts.sum()


def thermal_wavelength(mass_amu, temperature):
    """de Broglie wavelength Lambda = h / sqrt(2 pi m kB T) (Å)."""
    m = np.asarray(mass_amu, dtype=float) * MVV_TO_EV            # eV ps^2 / Å^2
    return PLANCK_EV_PS / np.sqrt(2.0 * np.pi * m * BOLTZMANN * temperature)


def einstein_frequency(spring_constant, mass_amu):
    """omega = sqrt(k / m) (rad/ps) for k in eV/Å^2 and m in amu."""
    return np.sqrt(np.asarray(spring_constant, dtype=float) * FORCE_TO_ACCEL / np.asarray(mass_amu, dtype=float))


def einstein_free_energy(temperature, spring_constants, masses, counts):
    """F/N (eV/atom) of the classical Einstein crystal, species weighted by ``counts``."""
    c = _fractions(counts)
    kt = BOLTZMANN * temperature
    omega = einstein_frequency(spring_constants, masses)
    present = c > 0
    return float(3.0 * kt * np.sum(c[present] * np.log(HBAR_EV_PS * omega[present] / kt)))


def com_correction(temperature, spring_constants, masses, counts, volume):
    """F_CM/N (eV/atom): fixed-centre-of-mass correction of Frenkel-Ladd (``volume`` in Å^3)."""
    counts = np.asarray(counts, dtype=float)
    k = np.asarray(spring_constants, dtype=float)
    m = np.asarray(masses, dtype=float)
    n = counts.sum()
    present = counts > 0
    total_mass = float(np.sum(counts * m))
    kt = BOLTZMANN * temperature
    variance = kt * float(np.sum(counts[present] * m[present] ** 2 / k[present])) / total_mass ** 2
    return float(kt / n * np.log(n / volume * (2.0 * np.pi * variance) ** 1.5))


def ideal_gas_free_energy(temperature, density, masses, counts):
    """F/N (eV/atom) of an ideal-gas mixture at number density ``density`` (1/Å^3)."""
    c = _fractions(counts)
    kt = BOLTZMANN * temperature
    lam = thermal_wavelength(masses, temperature)
    present = c > 0
    return float(kt * np.sum(c[present] * (np.log(density * c[present] * lam[present] ** 3) - 1.0)))


def fixed_com_einstein_switch(temperature, n_atoms, k_from, k_to):
    """Exact F(k_to) - F(k_from) per atom of N equal-mass atoms on springs with the centre of
    mass fixed: 3(N - 1) internal harmonic coordinates, (3(N-1)/2N) kB T ln(k_to/k_from)."""
    return 1.5 * (n_atoms - 1) / n_atoms * BOLTZMANN * temperature * np.log(k_to / k_from)
