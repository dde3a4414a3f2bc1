"""Virial coefficients of the Uhlenbeck-Ford model, exactly, and why the series is not
the liquid route's UF excess free energy.

For integer p the Mayer function of phi(r) = -p kB T ln(1 - exp(-r^2/sigma^2)) is a
finite sum of Gaussians, f(r) = (1 - e^{-r^2/sigma^2})^p - 1 = sum_k a_k e^{-k r^2/sigma^2}
with a_k = (-1)^k C(p, k), k = 1..p, so every cluster integral is a sum of Gaussian
integrals (Uhlenbeck and Ford; Paula Leite et al., J. Chem. Phys. 145, 194101 (2016)).
In reduced form (x = rho b^3, b^3 = (pi sigma^2)^(3/2) / 2, B~_n = B_n / b^(3(n-1))):

    B~_2 = -sum_k a_k k^(-3/2)
    B~_3 = -(4/3) sum_{i,j,k} a_i a_j a_k (ij + jk + ki)^(-3/2)
    beta P / rho = 1 + sum_n B~_n x^(n-1),   beta F_ex / N = sum_n B~_n x^(n-1) / (n - 1).

The alternating binomials cancel catastrophically (C(50, 25)^3 ~ 2e42 for B_3 at p = 50),
so the sums run in the standard library's ``decimal`` arithmetic at enough digits.

Published values (Paula Leite et al. 2016, Table I, as quoted on SklogWiki "Uhlenbeck-Ford
model") exist for p = 1, 2, 10 only; :data:`PUBLISHED` holds those checked by the tests.
At the liquid route's state (p = 50, x ~ 0.6-0.7 for liquid Cu with sigma = 1.5 Å) the
series does not converge usefully: B~_2 x = 5.17 and B~_3 x^2 / 2 = 7.52 (x = 0.7), the
second term larger than the first, while beta F_ex/N ~ 18 there; B~_3 / B~_2^2 = 0.5625 is
close to the hard-sphere 0.625 and rho B_2 / 4 = 1.3 is an "effective packing fraction"
beyond close packing.  A truncated series is as good as its first neglected term: to
reach 1e-6 eV/atom (~1e-5 kB T at 1000 K) even the B_3 term x^2 B~_3 / 2 must be that small,
i.e. x < 8e-4 (a dilute gas).  The liquid route
therefore switches UF -> ideal gas (docs/free-energy.md); :func:`series_excess` is the
low-density check of that switch.
"""
from __future__ import annotations

from decimal import Decimal, localcontext
from math import comb

# (p, n) -> published reduced virial coefficient B~_n (Paula Leite et al. 2016, Table I)
PUBLISHED = {
    (1, 2): 1.0, (2, 2): 1.64644660940, (10, 2): 4.01438397540,
    (1, 3): 0.25660011963983367311, (2, 3): 0.94319582715, (10, 3): 8.03162517036,
    (1, 4): -0.12545995705504467834, (2, 4): -0.33498518088, (10, 4): 5.79111386879,
}


def _coefficients(p):
    if int(p) != p or p < 1:
        raise ValueError(f"the exact UF virial coefficients need an integer p >= 1, got {p}")
    p = int(p)
    return p, [(-1) ** k * comb(p, k) for k in range(p + 1)]


def _digits(p, power):
    return 30 + power * len(str(comb(p, p // 2)))


def reduced_b2(p) -> float:
    """B~_2 = B_2 / b^3 of the UF model with integer ``p`` (exact sum)."""
    p, a = _coefficients(p)
    with localcontext() as ctx:
        ctx.prec = _digits(p, 1)
        s = sum(Decimal(a[k]) / (Decimal(k) * Decimal(k).sqrt()) for k in range(1, p + 1))
        return float(-s)


def reduced_b3(p) -> float:
    """B~_3 = B_3 / b^6 of the UF model with integer ``p`` (exact sum over i <= j <= k)."""
    p, a = _coefficients(p)
    with localcontext() as ctx:
        ctx.prec = _digits(p, 3)
        s = Decimal(0)
        for i in range(1, p + 1):
            for j in range(i, p + 1):
                for k in range(j, p + 1):
                    mult = 1 if i == k else (3 if i == j or j == k else 6)
                    d = Decimal(i * j + j * k + k * i)
                    s += Decimal(mult * a[i] * a[j] * a[k]) / (d * d.sqrt())
        return float(-Decimal(4) / Decimal(3) * s)


def reduced_density(rho, sigma) -> float:
    """x = rho b^3, b^3 = (pi sigma^2)^(3/2) / 2 (rho in 1/Å^3, sigma in Å)."""
    from math import pi
    return rho * 0.5 * (pi * sigma * sigma) ** 1.5


def series_terms(x, p):
    """The terms B~_2 x and B~_3 x^2 / 2 of beta F_ex / N (dimensionless)."""
    return reduced_b2(p) * x, reduced_b3(p) * x * x / 2.0


def series_excess(x, p, temperature):
    """kB T (B~_2 x + B~_3 x^2 / 2) (eV/atom): the UF excess free energy to O(x^3), a dilute-gas check."""
    from ..units import BOLTZMANN
    return BOLTZMANN * temperature * sum(series_terms(x, p))
