"""Entropy, enthalpy and heat capacity from a G(T) curve (docs/free-energy.md).

Differentiating a swept G(T) point by point amplifies its noise; instead each
iteration's curve is fitted by least squares with the CALPHAD (SGTE) form

    G(T) = a + b T + c T ln T + d T^2 + e T^3      (the first ``n_terms`` of these)

and differentiated analytically:

    S = -dG/dT = -(b + c (ln T + 1) + 2 d T + 3 e T^2)
    H = G + T S = a - c T - d T^2 - 2 e T^3
    Cp = dH/dT = -T d^2G/dT^2 = -c - 2 d T - 6 e T^2.

The classical harmonic crystal, G = U0 - 3 kB T ln(kB T / hbar omega), is the
3-term form exactly (Cp = 3 kB); anharmonicity adds the T^2 and T^3 terms.  Errors
are the standard errors of S, H, Cp over the iterations' fits (their spread), as for
G itself.  T is scaled by the first grid temperature inside the fit (conditioning).
For a fixed-volume sweep (F(T)) the same expressions give S, the energy E = F + T S
and Cv.
"""
from __future__ import annotations

import numpy as np

from ..units import BOLTZMANN

MIN_TERMS, MAX_TERMS = 3, 5


def _basis(u, n_terms):
    """Columns f_j(u), f_j'(u), f_j''(u) of 1, u, u ln u, u^2, u^3."""
    lu = np.log(u)
    f = [np.ones_like(u), u, u * lu, u ** 2, u ** 3]
    d1 = [np.zeros_like(u), np.ones_like(u), lu + 1.0, 2 * u, 3 * u ** 2]
    d2 = [np.zeros_like(u), np.zeros_like(u), 1.0 / u, np.full_like(u, 2.0), 6 * u]
    return (np.stack(c[:n_terms], axis=1) for c in (f, d1, d2))


def fit_thermo(temperatures, g, n_terms=4):
    """(G_fit, S in kB/atom, H in eV/atom, Cp in kB/atom) on ``temperatures`` from one G(T) curve."""
    if not MIN_TERMS <= n_terms <= MAX_TERMS:
        raise ValueError(f"n_terms must be {MIN_TERMS}..{MAX_TERMS}, got {n_terms}")
    t = np.asarray(temperatures, float)
    if len(t) <= n_terms:
        raise ValueError(f"{len(t)} temperatures cannot fit {n_terms} terms")
    scale = t[0]
    f, d1, d2 = _basis(t / scale, n_terms)
    coef, *_ = np.linalg.lstsq(f, np.asarray(g, float), rcond=None)
    g_fit = f @ coef
    dg = d1 @ coef / scale
    d2g = d2 @ coef / scale ** 2
    s = -dg
    return g_fit, s / BOLTZMANN, g_fit + t * s, -t * d2g / BOLTZMANN


def thermo_over_iterations(temperatures, curves, n_terms=4):
    """{S, S_error, H, H_error, Cp, Cp_error} (lists) from per-iteration G(T) curves."""
    fits = [fit_thermo(temperatures, g, n_terms) for g in curves]
    out = {}
    for i, key in ((1, "S"), (2, "H"), (3, "Cp")):
        rows = np.array([f[i] for f in fits])
        n = len(rows)
        out[key] = rows.mean(axis=0).tolist()
        out[f"{key}_error"] = (rows.std(axis=0, ddof=1) / np.sqrt(n) if n > 1
                               else np.full(rows.shape[1], np.nan)).tolist()
    return out
