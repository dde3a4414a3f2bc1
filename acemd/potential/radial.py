"""Radial functions of PACE potentials and their spline tabulation.

The C++ evaluator behind LAMMPS ``pair_style pace`` never evaluates the radial
basis g_k(r), the radial functions R_nl(r) = sum_k c_nlk g_k(r) and the core
repulsion directly: it tabulates them with values and first derivatives on a
uniform grid of spacing ``deltaSplineBins`` and interpolates with cubic Hermite
polynomials.  acemd builds the same tables (same nodes, same interpolation), so
its numbers match that evaluator to round-off, and the kernel pays one cubic per
function and neighbour instead of Chebyshev recursions and exponentials.

All functions here are vectorised over an array of distances r (Å).
"""
from __future__ import annotations

import numpy as np

from .model import Bond, CTildePotential, PotentialFileError

# Coulomb constant e^2/(4 pi eps0) in eV·Å (value used by pacemaker's ZBL).
COULOMB_EV_ANGSTROM = 14.399645351950543
_ZBL_COEFS = np.array([0.18175, 0.50986, 0.28022, 0.02817])
_ZBL_EXPS = np.array([-3.19980, -0.94229, -0.40290, -0.20162])


def poly_switch(r, r_in, delta):
    """Quintic switch: 1 for r <= r_in - delta, 0 for r >= r_in; returns (f, df/dr)."""
    r = np.asarray(r, dtype=float)
    f = np.where(r <= r_in - delta, 1.0, 0.0)
    df = np.zeros_like(r)
    inside = (r > r_in - delta) & (r < r_in)
    if np.any(inside):
        x = 1.0 - 2.0 * (1.0 + (r[inside] - r_in) / delta)
        f[inside] = 0.5 + 7.5 / 2.0 * (x / 4.0 - x ** 3 / 6.0 + x ** 5 / 20.0)
        df[inside] = -7.5 / delta * (0.25 - x * x / 2.0 + x ** 4 / 4.0)
    return f, df


def _chebyshev(nmax, x):
    """T_0..T_nmax at x and their derivatives; arrays of shape (nmax+1, len(x))."""
    t = np.zeros((nmax + 1,) + x.shape)
    u = np.zeros((nmax + 1,) + x.shape)   # second kind, for dT_n = n U_{n-1}
    t[0] = 1.0
    u[0] = 1.0
    if nmax >= 1:
        t[1] = x
        u[1] = 2.0 * x
    for n in range(1, nmax):
        t[n + 1] = 2.0 * x * t[n] - t[n - 1]
        u[n + 1] = 2.0 * x * u[n] - u[n - 1]
    dt = np.zeros_like(t)
    for n in range(1, nmax + 1):
        dt[n] = n * u[n - 1]
    return t, dt


def _cheb_exp_cos(nradbase, lam, rc, dcut, r):
    y1 = np.exp(-lam * r / rc)
    y2 = np.exp(-lam)
    x = 1.0 - 2.0 * ((y1 - y2) / (1.0 - y2))
    dx = 2.0 * (lam / rc) * (y1 / (1.0 - y2))
    t, dt = _chebyshev(nradbase, x)
    g = np.empty((nradbase,) + r.shape)
    dg = np.empty_like(g)
    g[0] = t[0]
    dg[0] = dt[0] * dx
    for n in range(2, nradbase + 1):
        g[n - 1] = 0.5 - 0.5 * t[n - 1]
        dg[n - 1] = -0.5 * dt[n - 1] * dx
    env = 0.5 * (1.0 + np.cos(np.pi * r / rc))
    denv = -0.5 * np.sin(np.pi * r / rc) * np.pi / rc
    dg = g * denv + dg * env
    g = g * env
    r_on = rc - dcut
    outer = r > r_on
    if np.any(outer):
        fc = np.where(outer, 0.5 * (1.0 + np.cos(np.pi * (r - r_on) / dcut)), 1.0)
        dfc = np.where(outer, -0.5 * np.sin(np.pi * (r - r_on) / dcut) * np.pi / dcut, 0.0)
        dg = g * dfc + dg * fc
        g = g * fc
    return g, dg


def _cheb_pow(nradbase, lam, rc, r):
    y = 1.0 - r / rc
    ylm1 = y ** (lam - 1.0)
    dy = -lam / rc * ylm1
    x = 2.0 * (1.0 - ylm1 * y) - 1.0
    dx = -2.0 * dy
    t, dt = _chebyshev(nradbase, x)
    g = 0.5 - 0.5 * t[1:nradbase + 1]
    dg = -0.5 * dt[1:nradbase + 1] * dx
    return g, dg


def _cheb_linear(nradbase, rc, r):
    x = 1.0 - r / rc
    dx = -1.0 / rc
    t, dt = _chebyshev(nradbase, x)
    return 0.5 - 0.5 * t[1:nradbase + 1], -0.5 * dt[1:nradbase + 1] * dx


def _sinc(x):
    safe = np.where(x != 0.0, x, 1.0)
    return np.where(x != 0.0, np.sin(safe) / safe, 1.0)


def _dsinc(x):
    safe = np.where(x != 0.0, x, 1.0)
    return np.where(x != 0.0, (np.cos(safe) * safe - np.sin(safe)) / (safe * safe), 0.0)


def _sbessel_aux(r, rc, n):
    """Simplified spherical Bessel function f_n (Kocer et al.) and its derivative."""
    pre = (-1.0) ** n * np.sqrt(2.0) * np.pi / rc ** 1.5 * (n + 1) * (n + 2) / np.sqrt(
        (n + 1) ** 2 + (n + 2) ** 2)
    k1, k2 = (n + 1) * np.pi / rc, (n + 2) * np.pi / rc
    return (pre * (_sinc(r * k1) + _sinc(r * k2)),
            pre * (_dsinc(r * k1) * k1 + _dsinc(r * k2) * k2))


def _sbessel(nradbase, rc, r):
    g = np.zeros((nradbase,) + r.shape)
    dg = np.zeros_like(g)
    inside = r < rc
    f0, df0 = _sbessel_aux(r, rc, 0)
    g[0], dg[0] = f0, df0
    d_prev = 1.0
    for n in range(1, nradbase):
        en = n ** 2 * (n + 2) ** 2 / (4.0 * (n + 1) ** 4 + 1.0)
        dn = 1.0 - en / d_prev
        fn, dfn = _sbessel_aux(r, rc, n)
        g[n] = (fn + np.sqrt(en / d_prev) * g[n - 1]) / np.sqrt(dn)
        dg[n] = (dfn + np.sqrt(en / d_prev) * dg[n - 1]) / np.sqrt(dn)
        d_prev = dn
    return g * inside, dg * inside


def radial_basis(bond: Bond, nradbase: int, inner_cutoff_type: str, r):
    """g_k(r) and dg_k/dr for k < nradbase; arrays of shape (nradbase, len(r))."""
    r = np.atleast_1d(np.asarray(r, dtype=float))
    lam, rc, dcut = bond.radparameters[0], bond.rcut, bond.dcut
    cut_in, dcut_in = bond.rcut_in, bond.dcut_in
    if inner_cutoff_type == "zbl":
        # pacemaker's convention: with ZBL the basis is not cut at r_in (the
        # ACE-to-ZBL switch acts on the site energy instead).
        cut_in = 1.0 if dcut_in == 0 else 0.0
    active = (r > cut_in - dcut_in) & (r < rc)
    g = np.zeros((nradbase,) + r.shape)
    dg = np.zeros_like(g)
    if not np.any(active) or nradbase == 0:
        return g, dg
    ra = r[active]
    name = bond.radbasename
    if name == "ChebExpCos":
        ga, dga = _cheb_exp_cos(nradbase, lam, rc, dcut, ra)
    elif name == "ChebPow":
        ga, dga = _cheb_pow(nradbase, lam, rc, ra)
    elif name == "ChebLinear":
        ga, dga = _cheb_linear(nradbase, rc, ra)
    elif name == "SBessel":
        ga, dga = _sbessel(nradbase, rc, ra)
    else:
        raise ValueError(f"unknown radial basis {name!r}")
    if inner_cutoff_type in ("distance", "zbl"):
        fc, dfc = poly_switch(ra, cut_in, dcut_in)
        fc, dfc = 1.0 - fc, -dfc
        dga = dga * fc + ga * dfc
        ga = ga * fc
    g[:, active] = ga
    dg[:, active] = dga
    return g, dg


def core_repulsion(bond: Bond, inner_cutoff_type: str, z_i: int, z_j: int, r):
    """Pair core term c(r) and dc/dr (eV, eV/Å) of one bond.

    ``density``/``distance``: |pre| exp(-|lambda| r^2)/r with a cosine envelope
    (and, for ``distance``, switched on only inside r_in).  ``zbl``: the ZBL
    universal screened Coulomb pair energy, shifted so that it and its first two
    derivatives vanish at rcut and switched off over [rcut - dcut, rcut].
    """
    r = np.atleast_1d(np.asarray(r, dtype=float))
    if inner_cutoff_type in ("density", "distance"):
        pre, lam = abs(bond.prehc), abs(bond.lambdahc)
        lr2 = lam * r * r
        ok = lr2 < 50.0
        y = np.exp(-np.where(ok, lr2, 0.0))
        c = np.where(ok, pre * y / r, 0.0)
        dc = np.where(ok, -pre * y * (2.0 * lr2 + 1.0) / (r * r), 0.0)
        env = 0.5 * (1.0 + np.cos(np.pi * r / bond.rcut))
        denv = -0.5 * np.sin(np.pi * r / bond.rcut) * np.pi / bond.rcut
        c, dc = c * env, c * denv + dc * env
        if inner_cutoff_type == "distance":
            fc, dfc = poly_switch(r, bond.rcut_in, bond.dcut_in)
            c, dc = c * fc, dc * fc + c * dfc
        return c, dc
    # ZBL
    cut_out, cut_in = bond.rcut, bond.rcut - bond.dcut
    a = 0.46850 / (z_i ** 0.23 + z_j ** 0.23)

    def screened(x):
        e = _ZBL_COEFS[:, None] * np.exp(_ZBL_EXPS[:, None] * (x / a)[None, :])
        phi = e.sum(0)
        dphi = (e * _ZBL_EXPS[:, None]).sum(0)
        d2phi = (e * _ZBL_EXPS[:, None] ** 2).sum(0)
        val = phi / x
        dval = -phi / x ** 2 + dphi / (a * x)
        d2val = 2.0 * phi / x ** 3 - 2.0 * dphi / (a * x ** 2) + d2phi / (a * a * x)
        return val, dval, d2val

    e_r, de_r, _ = screened(r)
    ec, dec, d2ec = (v[0] for v in screened(np.array([cut_out])))
    w = cut_out - cut_in
    A = (-3.0 * dec + w * d2ec) / (w * w)
    B = (2.0 * dec - w * d2ec) / (w ** 3)
    C = -ec + 0.5 * w * dec - w * w * d2ec / 12.0
    s = np.where(r <= cut_in, C, A / 3.0 * (r - cut_in) ** 3 + B / 4.0 * (r - cut_in) ** 4 + C)
    s = np.where(r >= cut_out, 0.0, s)
    ds = np.where((r > cut_in) & (r < cut_out), A * (r - cut_in) ** 2 + B * (r - cut_in) ** 3, 0.0)
    pre = bond.prehc * COULOMB_EV_ANGSTROM / 2.0 * z_i * z_j
    c, dc = pre * (e_r + s), pre * (de_r + ds)
    fc, dfc = poly_switch(r, cut_out, w)
    c, dc = c * fc, dc * fc + c * dfc
    outside = r >= cut_out
    return np.where(outside, 0.0, c), np.where(outside, 0.0, dc)


def hermite_table(values, derivs, invscale):
    """Cubic Hermite coefficients per grid interval.

    ``values``/``derivs`` have shape (nlut, nfunc) at nodes 1..nlut; interval n
    (from node n to n+1) gets c0 + c1 w + c2 w^2 + c3 w^3 with w in [0, 1), and
    the node past the last one holds zeros, as the reference evaluator assumes.
    Returns an array of shape (nlut + 1, nfunc, 4); row 0 is unused.
    """
    nlut, nfunc = values.shape
    f0 = values
    d0 = derivs * invscale
    f1 = np.vstack([values[1:], np.zeros((1, nfunc))])
    d1 = np.vstack([d0[1:], np.zeros((1, nfunc))])
    table = np.zeros((nlut + 1, nfunc, 4))
    table[1:, :, 0] = f0
    table[1:, :, 1] = d0
    table[1:, :, 2] = 3.0 * (f1 - f0) - d1 - 2.0 * d0
    table[1:, :, 3] = -2.0 * (f1 - f0) + d1 + d0
    return table


def spline_grid(rcut, delta):
    """Number of intervals, scale (1/Å) and node positions (Å) of a bond's grid."""
    nlut = int(rcut / delta)
    scale = float(nlut) / rcut
    inv = 1.0 / scale
    nodes = inv * np.arange(1, nlut + 1, dtype=float)
    return nlut, scale, inv, nodes


def atomic_number(symbol: str, path="") -> int:
    from ase.data import atomic_numbers
    if symbol not in atomic_numbers or atomic_numbers[symbol] == 0:
        raise PotentialFileError(path, "elements", f"'{symbol}' is not a chemical element (needed for ZBL)")
    return atomic_numbers[symbol]


def tabulate_bond(pot: CTildePotential, mu_i: int, mu_j: int, nradbase: int, nradmax: int, lmax: int):
    """Spline tables of one bond: g_k, R_nl (flattened n*(lmax+1)+l) and core.

    Returns (nlut, scale, table) with table of shape (nlut+1, nradbase +
    nradmax*(lmax+1) + 1, 4): the g_k columns first, then R_nl, then core.
    """
    bond = pot.bonds[(mu_i, mu_j)]
    ctype = pot.inner_cutoff_type
    nlut, scale, inv, r = spline_grid(bond.rcut, pot.delta_spline_bins)
    g, dg = radial_basis(bond, nradbase, ctype, r)
    crad = np.zeros((nradmax, lmax + 1, nradbase))
    cb = bond.radcoefficients
    crad[:cb.shape[0], :cb.shape[1], :cb.shape[2]] = cb
    rnl = np.einsum("nlk,kr->rnl", crad, g).reshape(len(r), -1)
    drnl = np.einsum("nlk,kr->rnl", crad, dg).reshape(len(r), -1)
    zi = zj = 0
    if ctype == "zbl":
        zi = atomic_number(pot.elements[mu_i], pot.source)
        zj = atomic_number(pot.elements[mu_j], pot.source)
    c, dc = core_repulsion(bond, ctype, zi, zj, r)
    values = np.hstack([g.T, rnl, c[:, None]])
    derivs = np.hstack([dg.T, drnl, dc[:, None]])
    return nlut, scale, hermite_table(values, derivs, inv)
