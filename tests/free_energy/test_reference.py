"""Reference free energies against independent evaluations: SI constants from scipy,
numerical integration of the classical partition function, Sackur-Tetrode."""
import numpy as np
import pytest
from scipy import constants as C
from scipy import integrate

from acemd.free_energy.reference import (com_correction, einstein_free_energy, ideal_gas_free_energy,
                                         thermal_wavelength)

KB_EV = C.k / C.e


def _si_einstein(T, k_ev_a2, m_amu):
    """3 kB T ln(hbar omega / kB T) in SI units, converted to eV."""
    omega = np.sqrt(k_ev_a2 * C.e / 1e-20 / (m_amu * C.atomic_mass))
    return 3 * C.k * T * np.log(C.hbar * omega / (C.k * T)) / C.e


@pytest.mark.parametrize("T,k,m", [(300.0, 1.0, 63.546), (1000.0, 3.7, 58.6934), (50.0, 0.2, 1.008)])
def test_einstein_free_energy_si_units(T, k, m):
    ours = einstein_free_energy(T, [k], [m], [1])
    ref = _si_einstein(T, k, m)
    print(f"\nEinstein T={T} k={k} m={m}: {ours:.9f} vs SI {ref:.9f} eV/atom")
    assert ours == pytest.approx(ref, abs=1e-6)


def test_einstein_free_energy_by_numerical_partition_function():
    """-kB T ln of the numerically integrated 1D classical oscillator partition function, x 3."""
    T, k, m = 700.0, 2.3, 63.546
    kt = KB_EV * T
    h_ev_ps = C.h / C.e * 1e12
    m_ev = m * C.atomic_mass / C.e * 1e-20 * 1e24        # eV ps^2 / Å^2
    zq, _ = integrate.quad(lambda x: np.exp(-0.5 * k * x * x / kt), -np.inf, np.inf, epsabs=0, epsrel=1e-13)
    zp, _ = integrate.quad(lambda p: np.exp(-0.5 * p * p / (m_ev * kt)), -np.inf, np.inf, epsabs=0,
                           epsrel=1e-13)
    ref = -3 * kt * np.log(zq * zp / h_ev_ps)
    assert einstein_free_energy(T, [k], [m], [1]) == pytest.approx(ref, abs=1e-9)


def test_binary_einstein_is_the_concentration_weighted_sum():
    T = 900.0
    ours = einstein_free_energy(T, [1.5, 2.5], [63.546, 58.6934], [30, 70])
    assert ours == pytest.approx(0.3 * _si_einstein(T, 1.5, 63.546) + 0.7 * _si_einstein(T, 2.5, 58.6934),
                                 abs=1e-9)


def test_com_correction_one_species_is_freitas_formula_and_vanishes_per_atom():
    """kB T/N ln[(N/V)(2 pi kB T/(N k))^(3/2)] (Freitas et al. 2016) for one species; the binary
    value with equal masses and springs equals it."""
    T, k, n, v = 1000.0, 3.0, 500, 500 * 11.8
    kt = KB_EV * T
    ref = kt / n * np.log(n / v * (2 * np.pi * kt / (n * k)) ** 1.5)
    assert com_correction(T, [k], [63.546], [n], v) == pytest.approx(ref, rel=1e-13)
    assert com_correction(T, [k, k], [63.546, 63.546], [200, 300], v) == pytest.approx(ref, rel=1e-13)
    assert abs(com_correction(T, [k], [63.546], [10 * n], 10 * v)) < abs(ref)


def test_com_correction_binary_against_direct_gaussian_variance():
    """The variance of the mass-weighted mean displacement, sampled from independent Gaussian
    displacements, gives the same correction (independent of the closed form)."""
    T, v = 800.0, 1000.0
    k, m, counts = np.array([1.0, 4.0]), np.array([27.0, 197.0]), np.array([40, 60])
    kt = KB_EV * T
    ks, ms = np.repeat(k, counts), np.repeat(m, counts)
    rng = np.random.default_rng(1)
    u = rng.normal(0.0, np.sqrt(kt / ks), (200000, len(ks)))
    var = np.var(u @ ms / ms.sum())
    n = counts.sum()
    ref = kt / n * np.log(n / v * (2 * np.pi * var) ** 1.5)
    assert com_correction(T, k, m, counts, v) == pytest.approx(ref, abs=2e-6)


@pytest.mark.parametrize("T,rho,masses,counts", [(1000.0, 0.08, [63.546], [1]),
                                                 (1500.0, 0.07, [63.546, 58.6934], [3, 1]),
                                                 (300.0, 0.001, [39.948, 4.0026, 20.18], [1, 1, 2])])
def test_ideal_gas_against_sackur_tetrode(T, rho, masses, counts):
    """F = U - T S with U = 3/2 N kB T and the Sackur-Tetrode entropy of each species in its
    own partial volume, plus the ideal mixing entropy, all in SI units."""
    c = np.array(counts, float) / np.sum(counts)
    f = 0.0
    for ci, mi in zip(c, masses):
        lam = C.h / np.sqrt(2 * np.pi * mi * C.atomic_mass * C.k * T)            # m
        n_per_v = rho * ci * 1e30                                               # 1/m^3
        s = C.k * (np.log(1.0 / (n_per_v * lam ** 3)) + 2.5)                     # per atom of species
        f += ci * (1.5 * C.k * T - T * s)
    ref = f / C.e
    ours = ideal_gas_free_energy(T, rho, masses, counts)
    print(f"\nideal gas T={T} rho={rho}: {ours:.12f} vs Sackur-Tetrode {ref:.12f} eV/atom (diff {ours - ref:+.1e})")
    assert ours == pytest.approx(ref, abs=1e-9)      # CODATA 2018 (acemd) vs scipy's amu: ~2e-10
    assert thermal_wavelength(masses[0], T) == pytest.approx(
        C.h / np.sqrt(2 * np.pi * masses[0] * C.atomic_mass * C.k * T) * 1e10, rel=1e-9)
