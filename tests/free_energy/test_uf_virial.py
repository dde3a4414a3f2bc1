"""Uhlenbeck-Ford virial coefficients: published values (Paula Leite et al., J. Chem. Phys.
145, 194101 (2016), Table I, as quoted on SklogWiki "Uhlenbeck-Ford model") against our
own numerical integrals of the Mayer function and against acemd's exact Gaussian sums;
and the term sizes that rule the series out at liquid densities (docs/free-energy.md)."""
import numpy as np
import pytest
from scipy import integrate

from acemd.free_energy.uf_virial import PUBLISHED, reduced_b2, reduced_b3, reduced_density, series_terms

SIGMA = 1.5
B3_UNIT = 0.5 * (np.pi * SIGMA ** 2) ** 1.5          # b^3 (Å^3)


def _mayer(r, p):
    return (-np.expm1(-(r / SIGMA) ** 2)) ** p - 1.0


def _b2_quad(p):
    """B_2 / b^3 = -(2 pi / b^3) int f(r) r^2 dr by adaptive quadrature (no series, no cancellation)."""
    val, _ = integrate.quad(lambda r: -_mayer(r, p) * r * r, 0.0, 20 * SIGMA, epsabs=0, epsrel=1e-13, limit=400)
    return 2.0 * np.pi * val / B3_UNIT


def _b3_quad(p, n=160, n_angle=96, r_max=10.0):
    """B_3 / b^6 = -(8 pi^2 / 3 b^6) int int int r^2 s^2 f(r) f(s) f(|r - s|) dr ds dcos (Gauss-Legendre)."""
    x, w = np.polynomial.legendre.leggauss(n)
    r, wr = 0.5 * r_max * (x + 1.0), 0.5 * r_max * w
    c, wc = np.polynomial.legendre.leggauss(n_angle)
    rr, ss, cc = np.meshgrid(r, r, c, indexing="ij")
    inner = (_mayer(np.sqrt(np.maximum(rr ** 2 + ss ** 2 - 2.0 * rr * ss * cc, 0.0)), p) * wc).sum(-1)
    g = wr * r ** 2 * _mayer(r, p)
    return -(8.0 * np.pi ** 2 / 3.0) * float(g @ inner @ g) / B3_UNIT ** 2


@pytest.mark.parametrize("p", [1, 2, 10])
def test_published_b2_against_numerical_integral(p):
    published = PUBLISHED[(p, 2)]
    quad, exact = _b2_quad(p), reduced_b2(p)
    print(f"\nUF p={p}: B2/b^3 published {published:.11f}, quadrature {quad:.13f} (diff {quad - published:+.1e}), "
          f"Gaussian sum {exact:.13f}")
    assert quad == pytest.approx(published, abs=1e-10)
    assert exact == pytest.approx(quad, abs=1e-12)


@pytest.mark.parametrize("p", [1, 2, 10])
def test_published_b3_against_exact_sum_and_quadrature(p):
    published = PUBLISHED[(p, 3)]
    quad, exact = _b3_quad(p), reduced_b3(p)
    print(f"\nUF p={p}: B3/b^6 published {published:.11f}, Gaussian sum {exact:.13f} (diff {exact - published:+.1e}), "
          f"quadrature {quad:.13f}")
    assert exact == pytest.approx(published, abs=1e-10)
    assert quad == pytest.approx(exact, abs=1e-10)


def test_p50_coefficients_by_sum_and_quadrature():
    """p = 50 (the default, no published table): the exact sums (80-digit decimal arithmetic)
    against quadrature, which has no cancellation."""
    b2, b3 = reduced_b2(50), reduced_b3(50)
    print(f"\nUF p=50: B2/b^3 = {b2:.12f}, B3/b^6 = {b3:.12f}, B3/B2^2 = {b3 / b2 ** 2:.5f}")
    assert b2 == pytest.approx(_b2_quad(50), abs=1e-11)
    assert b3 == pytest.approx(_b3_quad(50), abs=1e-9)


def test_the_series_does_not_converge_at_liquid_densities():
    """Liquid Cu (13-15 Å^3/atom) with sigma = 1.5 Å is x = 0.63-0.72; there the B3 term
    already exceeds the B2 term, so a truncated series cannot give F_ex to 1e-6 eV/atom."""
    for volume in (13.0, 15.0):
        x = reduced_density(1.0 / volume, SIGMA)
        t2, t3 = series_terms(x, 50)
        print(f"\nV = {volume} A^3/atom: x = {x:.3f}, beta F_ex/N terms: B2 x = {t2:.3f}, B3 x^2/2 = {t3:.3f}")
        assert 0.6 < x < 0.75 and t3 > t2
    # dilute: the B3 term is 1e-5 kB T only below x ~ 8e-4
    assert series_terms(8e-4, 50)[1] < 1.1e-5
