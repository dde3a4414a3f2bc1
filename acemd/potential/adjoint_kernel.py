"""Numba passes of a B-basis model with trainable coefficients: forces, and the exact loss gradient.

The nonlinear fit (``acemd.fit.nonlinear``) trains the basis coefficients C[k, p]
(function k, density p) and the radial coefficients crad[bond, n, l, k] of
R_nl(r) = Σ_k crad g_k(r).  Both passes run on the force kernel's per-atom work
(``kernel._gather_neighbours``, ``kernel._site_base``) and on the design pass's
products (``design_kernel.build_design_tables``: every B-function as a sum of
Re Π A over sorted factor tuples), so the model is the evaluator's.

``fit_forward`` gives site energies, forces and per-structure virials for the
current coefficients (kernel.``_site_forces`` does the pair gradients).

``fit_gradient`` gives the gradient of a loss without second-order tensors.  A
loss L(E_s, F, Vσ) has dL/dθ = Σ_s a_s ∂E_s/∂θ + Σ_o φ_o·∂F_o/∂θ + Σ_s Σ_ab
H_ab ∂(Vσ_ab)/∂θ with the residual weights a = ∂L/∂E, φ = ∂L/∂F, H = ∂L/∂(Vσ)
held fixed.  Since F = -∂E/∂x and Vσ = ∂E/∂ε, the last two terms are the
θ-derivative of one directional derivative of E: the tangent t_ij = φ_i - φ_j
+ H r_ij of every pair vector.  So per atom the pass carries each quantity with
its tangent (value, dot) forward: splines, harmonics, A, the products, B,
densities, the embedding, and G_i = a E_i + Ė_i; then it runs the adjoint of
G_i back to the coefficients.  dL/dθ = Σ_i ∂G_i/∂θ exactly; the cost is a few
force evaluations, independent of the number of coefficients.

Conventions as in the kernel: A and its adjoints are complex, split into re/im
arrays over the full flat index (mu_j*nradmax + n)*(lmax+1)^2 + l*l + l + m; an
adjoint ``adj`` means δG = Re(adj · δA).  The spline table ``ftab`` holds per bond
the columns [rank-1 part of each density (ndmax), R_nl (nradmax*(lmax+1)), core,
g_k (nradbase)], built by ``acemd.fit.nonlinear_model`` from the coefficients.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .kernel import OK, TOO_CLOSE, _gather_neighbours, _poly_switch, _site_base, _site_forces, \
    max_row_length, site_buffers

__all__ = ["embedding_derivatives", "fit_forward", "fit_gradient"]


@njit(cache=True)
def embedding_derivatives(kind, rho, m):
    """F(rho), F'(rho), F''(rho) of the Finnis-Sinclair embeddings (kernel._embedding's F)."""
    if kind == 0:  # FinnisSinclair: |rho|^m, linearised near rho = 0
        w = 1.0e6
        lam = (1.0 / w) ** (m - 1.0)
        a = abs(rho)
        if a <= 1e-10:
            return lam * rho, lam, 0.0
        sign = -1.0 if rho < 0.0 else 1.0
        am = a ** m
        w3 = w * w * w
        w3x3 = w3 * a * a * a
        g = 0.0 if w3x3 > 30.0 else np.exp(-w3x3)
        dg = -3.0 * w3 * a * a * g
        d2g = (-6.0 * w3 * a + 9.0 * w3 * w3 * a * a * a * a) * g
        omg = 1.0 - g
        f = omg * am + lam * g * a
        df = m * a ** (m - 1.0) * omg - am * dg + lam * dg * a + lam * g
        d2f = (m * (m - 1.0) * a ** (m - 2.0) * omg - 2.0 * m * a ** (m - 1.0) * dg - am * d2g
               + lam * d2g * a + 2.0 * lam * dg)
        return sign * f, df, sign * d2f
    # FinnisSinclairShiftedScaled
    if abs(m - 1.0) < 1e-10:
        return rho, 1.0, 0.0
    a = abs(rho)
    e = np.exp(-a)
    nx = 1.0 / m
    xoff = nx ** (nx / (1.0 - nx)) * e
    yoff = nx ** (1.0 / (1.0 - nx)) * e
    sign = -1.0 if rho < 0.0 else 1.0
    xa = xoff + a
    f = xa ** m - yoff
    df = yoff + m * (1.0 - xoff) * xa ** (m - 1.0)
    d2f = m * (m - 1.0) * xa ** (m - 2.0) * (1.0 - xoff) ** 2 + m * xa ** (m - 1.0) * xoff - yoff
    return sign * f, df, sign * d2f


@njit(cache=True, fastmath=True, error_model='numpy')
def _products(p0, p1, fac_offsets, fac_index, A_re, A_im, value, part_re, part_im, pre_re, pre_im,
              suf_re, suf_im):
    """Re P and the partial products P / A_f of the products p0..p1 (prefix/suffix sweeps)."""
    for p in range(p0, p1):
        f0 = fac_offsets[p]
        rank = fac_offsets[p + 1] - f0
        pre_re[0] = 1.0
        pre_im[0] = 0.0
        suf_re[rank] = 1.0
        suf_im[rank] = 0.0
        for t in range(rank):
            a = fac_index[f0 + t]
            xr = A_re[a, 0]
            xi = A_im[a, 0]
            pre_re[t + 1] = pre_re[t] * xr - pre_im[t] * xi
            pre_im[t + 1] = pre_re[t] * xi + pre_im[t] * xr
        for t in range(rank - 1, -1, -1):
            a = fac_index[f0 + t]
            xr = A_re[a, 0]
            xi = A_im[a, 0]
            suf_re[t] = suf_re[t + 1] * xr - suf_im[t + 1] * xi
            suf_im[t] = suf_re[t + 1] * xi + suf_im[t + 1] * xr
        for t in range(rank):
            part_re[f0 + t] = pre_re[t] * suf_re[t + 1] - pre_im[t] * suf_im[t + 1]
            part_im[f0 + t] = pre_re[t] * suf_im[t + 1] + pre_im[t] * suf_re[t + 1]
        value[p] = pre_re[rank]


@njit(cache=True, fastmath=True, error_model='numpy')
def _dual_products(p0, p1, fac_offsets, fac_index, A_re, A_im, Ad_re, Ad_im, value, dvalue,
                   part_re, part_im, dpart_re, dpart_im, pre, suf, want_dparts):
    """Re P, Re Ṗ, P / A_f and (if want_dparts) its tangent, of the products p0..p1.

    ``pre``/``suf`` are (4, max_rank+1) scratch rows: value re, im, tangent re, im.
    """
    for p in range(p0, p1):
        f0 = fac_offsets[p]
        rank = fac_offsets[p + 1] - f0
        pre[0, 0] = 1.0
        pre[1, 0] = 0.0
        pre[2, 0] = 0.0
        pre[3, 0] = 0.0
        suf[0, rank] = 1.0
        suf[1, rank] = 0.0
        suf[2, rank] = 0.0
        suf[3, rank] = 0.0
        for t in range(rank):
            a = fac_index[f0 + t]
            xr = A_re[a, 0]
            xi = A_im[a, 0]
            dr = Ad_re[a]
            di = Ad_im[a]
            vr = pre[0, t]
            vi = pre[1, t]
            wr = pre[2, t]
            wi = pre[3, t]
            pre[0, t + 1] = vr * xr - vi * xi
            pre[1, t + 1] = vr * xi + vi * xr
            pre[2, t + 1] = wr * xr - wi * xi + vr * dr - vi * di
            pre[3, t + 1] = wr * xi + wi * xr + vr * di + vi * dr
        for t in range(rank - 1, -1, -1):
            a = fac_index[f0 + t]
            xr = A_re[a, 0]
            xi = A_im[a, 0]
            dr = Ad_re[a]
            di = Ad_im[a]
            vr = suf[0, t + 1]
            vi = suf[1, t + 1]
            wr = suf[2, t + 1]
            wi = suf[3, t + 1]
            suf[0, t] = vr * xr - vi * xi
            suf[1, t] = vr * xi + vi * xr
            suf[2, t] = wr * xr - wi * xi + vr * dr - vi * di
            suf[3, t] = wr * xi + wi * xr + vr * di + vi * dr
        for t in range(rank):
            ar = pre[0, t]
            ai = pre[1, t]
            br = suf[0, t + 1]
            bi = suf[1, t + 1]
            part_re[f0 + t] = ar * br - ai * bi
            part_im[f0 + t] = ar * bi + ai * br
            if want_dparts:
                dar = pre[2, t]
                dai = pre[3, t]
                dbr = suf[2, t + 1]
                dbi = suf[3, t + 1]
                dpart_re[f0 + t] = dar * br - dai * bi + ar * dbr - ai * dbi
                dpart_im[f0 + t] = dar * bi + dai * br + ar * dbi + ai * dbr
        value[p] = pre[0, rank]
        dvalue[p] = pre[2, rank]


@njit(cache=True)
def _fold_minus_m_flat(W_re, W_im, nel, nradmax, lmax):
    """Adjoints of A_{l,-m} onto m > 0: A_{l,-m} = (-1)^m conj(A_{l,m})."""
    nlm = (lmax + 1) * (lmax + 1)
    for mu in range(nel):
        for n in range(nradmax):
            base = (mu * nradmax + n) * nlm
            for l in range(1, lmax + 1):
                ctr = base + l * l + l
                sign = -1.0
                for m in range(1, l + 1):
                    W_re[ctr + m] += sign * W_re[ctr - m]
                    W_im[ctr + m] -= sign * W_im[ctr - m]
                    sign = -sign


@njit(cache=True)
def _energy_switch(is_zbl, mu_i, nel, nn, nb_mu, nb_r, cutoff_max, bond_cut_in, bond_dcut_in,
                   rho_core, rho_core_cut, drho_core_cut):
    """(s, ds, jmin): the site-energy switch s_i, its derivative (by rho_core, or by the
    nearest-neighbour distance for ZBL) and that neighbour (-1 if none / not ZBL)."""
    if is_zbl:
        dmin = cutoff_max
        jmin = -1
        for jn in range(nn):
            bond = mu_i * nel + nb_mu[jn]
            d = nb_r[jn] - (bond_cut_in[bond] - bond_dcut_in[bond])
            if d < dmin:
                dmin = d
                jmin = jn
        if jmin < 0:
            return 1.0, 0.0, -1
        dcin = bond_dcut_in[mu_i * nel + nb_mu[jmin]]
        fc, dfc = _poly_switch(dcin - dmin, dcin, dcin)
        return fc, -dfc, jmin
    rc = rho_core_cut[mu_i]
    drc = drho_core_cut[mu_i]
    if rho_core >= rc:
        return 0.0, 0.0, -1
    if rho_core <= rc - drc:
        return 1.0, 0.0, -1
    fc, dfc = _poly_switch(rho_core, rc, drc)
    return fc, dfc, -1


@njit(cache=True, fastmath=True, error_model='numpy')
def fit_forward(positions, species, n_local, offsets, neighbors, struct_of,
                nradmax, lmax, ndensity_max, is_zbl, cutoff_max, ftab, spline_nlut, spline_scale,
                bond_rcut, bond_cut_in, bond_dcut_in, ndensity, embedding_kind, fs_parameters,
                rho_core_cut, drho_core_cut, E0, ylm_a, ylm_b,
                col_offsets, prod_offsets, fac_offsets, fac_index, leaf_offsets, leaf_prod, leaf_coef,
                r1_offsets, r1_col, coef,
                site_energy, forces, virial):
    """Site energies (eV, n_local), forces on the extended atoms (eV/Å, added) and the kernel
    virial of each structure (eV, ``virial[struct_of[i]]``, added) for coefficients ``coef``
    (ncols, ndensity_max).  ``ftab`` columns: [rank-1 part per density, R_nl, core(, g_k)].
    Returns (status, atom, neighbour) like ``kernel.ace_forces``."""
    nel = E0.shape[0]
    nlm = (lmax + 1) * (lmax + 1)
    nlm_half = (lmax + 1) * (lmax + 2) // 2
    nfunc = ftab.shape[2]
    nA = nel * nradmax * nlm
    max_neigh = max_row_length(offsets, n_local)
    (nb_index, nb_mu, nb_r, nb_u, S, dS, Q, dQ, ph_re, ph_im,
     segment) = site_buffers(1, max_neigh, nfunc, nlm_half, lmax, nel)
    A_re = np.zeros((nA, 1))
    A_im = np.zeros((nA, 1))
    W_re = np.zeros((nA, 1))
    W_im = np.zeros((nA, 1))
    ndm = max(ndensity_max, 2)
    dF = np.zeros((ndm, 1))
    rho1 = np.zeros(ndm)
    rho = np.zeros(ndm)
    scratch = np.empty((4, max_neigh))
    y_re = np.empty(max_neigh)
    y_im = np.empty(max_neigh)
    acc = np.empty((8, max_neigh))
    ncols = coef.shape[0]
    B = np.zeros(ncols)
    beta = np.zeros(ncols)
    nprod = fac_offsets.shape[0] - 1
    value = np.zeros(nprod)
    pbar = np.zeros(nprod)
    part_re = np.zeros(fac_index.shape[0])
    part_im = np.zeros(fac_index.shape[0])
    max_rank = max_row_length(fac_offsets, nprod) if nprod > 0 else 1
    pre_re = np.empty(max_rank + 1)
    pre_im = np.empty(max_rank + 1)
    suf_re = np.empty(max_rank + 1)
    suf_im = np.empty(max_rank + 1)
    dummy_sv = np.zeros((1, 3, 3))
    for i in range(n_local):
        mu_i = species[i]
        nd = ndensity[mu_i]
        nn, jbad = _gather_neighbours(i, positions, species, offsets, neighbors, nel, spline_scale,
                                      bond_rcut, nb_index[0], nb_mu[0], nb_r[0], nb_u[0], scratch,
                                      segment[0])
        if jbad >= 0:
            return TOO_CLOSE, i, jbad
        rho_core = _site_base(mu_i, nn, nel, nradmax, lmax, ndensity_max, ftab, spline_nlut, spline_scale,
                              ylm_a, ylm_b, nb_mu[0], nb_r[0], nb_u[0], S[0], dS[0], Q[0], dQ[0],
                              ph_re[0], ph_im[0], segment[0], y_re, y_im, A_re, A_im, 0, rho1)
        c0 = col_offsets[mu_i]
        c1 = col_offsets[mu_i + 1]
        q0 = prod_offsets[mu_i]
        q1 = prod_offsets[mu_i + 1]
        _products(q0, q1, fac_offsets, fac_index, A_re, A_im, value, part_re, part_im,
                  pre_re, pre_im, suf_re, suf_im)
        for p in range(nd):
            rho[p] = rho1[p]
        for c in range(c0, c1):
            b = 0.0
            for q in range(leaf_offsets[c], leaf_offsets[c + 1]):
                b += leaf_coef[q] * value[leaf_prod[q]]
            B[c] = b
            for p in range(nd):
                rho[p] += coef[c, p] * b
        s, ds, jmin = _energy_switch(is_zbl, mu_i, nel, nn, nb_mu[0], nb_r[0], cutoff_max, bond_cut_in,
                                     bond_dcut_in, rho_core, rho_core_cut, drho_core_cut)
        X = 0.0
        for p in range(nd):
            F, dFp, _ = embedding_derivatives(embedding_kind[mu_i], rho[p], fs_parameters[mu_i, p, 1])
            X += fs_parameters[mu_i, p, 0] * F
            dF[p, 0] = s * fs_parameters[mu_i, p, 0] * dFp
        if is_zbl:
            site_energy[i] = X * s + rho_core * (1.0 - s) + E0[mu_i]
            dE_drho_core = 1.0 - s
            dE_dnearest = (X - rho_core) * ds
        else:
            site_energy[i] = X * s + rho_core + E0[mu_i]
            dE_drho_core = X * ds + 1.0
            dE_dnearest = 0.0
            jmin = -1
        # dE/dB_k, then dE/dA through the products
        for c in range(c0, c1):
            bt = 0.0
            for p in range(nd):
                bt += coef[c, p] * dF[p, 0]
            beta[c] = bt
        for q in range(q0, q1):
            pbar[q] = 0.0
        for c in range(c0, c1):
            bt = beta[c]
            for q in range(leaf_offsets[c], leaf_offsets[c + 1]):
                pbar[leaf_prod[q]] += leaf_coef[q] * bt
        for a in range(nA):
            W_re[a, 0] = 0.0
            W_im[a, 0] = 0.0
        for q in range(q0, q1):
            pb = pbar[q]
            if pb == 0.0:
                continue
            for f in range(fac_offsets[q], fac_offsets[q + 1]):
                a = fac_index[f]
                W_re[a, 0] += pb * part_re[f]
                W_im[a, 0] += pb * part_im[f]
        _fold_minus_m_flat(W_re[:, 0], W_im[:, 0], nel, nradmax, lmax)
        _site_forces(i, nn, nel, nradmax, lmax, ndensity_max, nd, dF, dE_drho_core, jmin, dE_dnearest,
                     nb_index[0], nb_r[0], nb_u[0], S[0], dS[0], Q[0], dQ[0], ph_re[0], ph_im[0],
                     segment[0], W_re, W_im, 0, acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6],
                     acc[7], forces, virial[struct_of[i]], dummy_sv, False)
    return OK, -1, -1


@njit(cache=True, fastmath=True, error_model='numpy')
def fit_gradient(positions, species, n_local, offsets, neighbors, struct_of, tangent, strain_tangent,
                 energy_adjoint,
                 nradmax, lmax, ndensity_max, nradbase, is_zbl, cutoff_max, ftab, spline_nlut, spline_scale,
                 bond_rcut, bond_cut_in, bond_dcut_in, ndensity, embedding_kind, fs_parameters,
                 rho_core_cut, drho_core_cut, E0, ylm_a, ylm_b,
                 col_offsets, prod_offsets, fac_offsets, fac_index, leaf_offsets, leaf_prod, leaf_coef,
                 r1_offsets, r1_col, r1_a1, coef, want_coef, want_radial,
                 grad_coef, grad_crad, g_value):
    """Add dG/dC to ``grad_coef`` (ncols, ndensity_max) and dG/dcrad to ``grad_crad``
    (nbonds, nradmax, lmax+1, nradbase), and G_s to ``g_value[s]``, where
    G = Σ_i a_s E_i + Σ_ij ∂E_i/∂r_ij · t_ij with t_ij = tangent[i] - tangent[j] +
    strain_tangent[s] r_ij (s = struct_of[i]; ``energy_adjoint[s]`` = a_s).

    ``tangent`` (n_ext, 3) is φ of each atom's owner; see the module docstring.
    """
    nel = E0.shape[0]
    nlm = (lmax + 1) * (lmax + 1)
    nlm_half = (lmax + 1) * (lmax + 2) // 2
    nrl = nradmax * (lmax + 1)
    nfunc = ftab.shape[2]
    col_rnl = ndensity_max
    col_core = ndensity_max + nrl
    col_g = col_core + 1
    nA = nel * nradmax * nlm
    max_neigh = max_row_length(offsets, n_local)
    (nb_index, nb_mu, nb_r, nb_u, S, dS, Q, dQ, ph_re, ph_im,
     segment) = site_buffers(1, max_neigh, nfunc, nlm_half, lmax, nel)
    A_re = np.zeros((nA, 1))
    A_im = np.zeros((nA, 1))
    Ad_re = np.zeros(nA)
    Ad_im = np.zeros(nA)
    adjA_re = np.zeros(nA)
    adjA_im = np.zeros(nA)
    adjAd_re = np.zeros(nA)
    adjAd_im = np.zeros(nA)
    ndm = max(ndensity_max, 2)
    rho1 = np.zeros(ndm)
    rho = np.zeros(ndm)
    rhod = np.zeros(ndm)
    g_rho = np.zeros(ndm)
    g_rhod = np.zeros(ndm)
    scratch = np.empty((4, max_neigh))
    y_re = np.empty(max_neigh)
    y_im = np.empty(max_neigh)
    rdot = np.zeros(max_neigh)
    udot = np.zeros((3, max_neigh))
    yd_re = np.zeros((nlm_half, max_neigh))
    yd_im = np.zeros((nlm_half, max_neigh))
    A1 = np.zeros(nel * nradbase)
    A1d = np.zeros(nel * nradbase)
    ncols = coef.shape[0]
    B = np.zeros(ncols)
    Bd = np.zeros(ncols)
    beta = np.zeros(ncols)
    betad = np.zeros(ncols)
    nprod = fac_offsets.shape[0] - 1
    value = np.zeros(nprod)
    dvalue = np.zeros(nprod)
    pbar = np.zeros(nprod)
    pbard = np.zeros(nprod)
    part_re = np.zeros(fac_index.shape[0])
    part_im = np.zeros(fac_index.shape[0])
    dpart_re = np.zeros(fac_index.shape[0])
    dpart_im = np.zeros(fac_index.shape[0])
    max_rank = max_row_length(fac_offsets, nprod) if nprod > 0 else 1
    pre = np.empty((4, max_rank + 1))
    suf = np.empty((4, max_rank + 1))
    for i in range(n_local):
        mu_i = species[i]
        nd = ndensity[mu_i]
        st = struct_of[i]
        a_e = energy_adjoint[st]
        Hs = strain_tangent[st]
        nn, jbad = _gather_neighbours(i, positions, species, offsets, neighbors, nel, spline_scale,
                                      bond_rcut, nb_index[0], nb_mu[0], nb_r[0], nb_u[0], scratch,
                                      segment[0])
        if jbad >= 0:
            return TOO_CLOSE, i, jbad
        rho_core = _site_base(mu_i, nn, nel, nradmax, lmax, ndensity_max, ftab, spline_nlut, spline_scale,
                              ylm_a, ylm_b, nb_mu[0], nb_r[0], nb_u[0], S[0], dS[0], Q[0], dQ[0],
                              ph_re[0], ph_im[0], segment[0], y_re, y_im, A_re, A_im, 0, rho1)
        Sa = S[0]
        dSa = dS[0]
        Qa = Q[0]
        dQa = dQ[0]
        pra = ph_re[0]
        pia = ph_im[0]
        ux = nb_u[0, 0]
        uy = nb_u[0, 1]
        uz = nb_u[0, 2]
        seg = segment[0]
        # ---------- tangents of r, u and Y per neighbour
        tix = tangent[i, 0]
        tiy = tangent[i, 1]
        tiz = tangent[i, 2]
        for jn in range(nn):
            j = nb_index[0, jn]
            r = nb_r[0, jn]
            rx = r * ux[jn]
            ry = r * uy[jn]
            rz = r * uz[jn]
            tx = tix - tangent[j, 0] + Hs[0, 0] * rx + Hs[0, 1] * ry + Hs[0, 2] * rz
            ty = tiy - tangent[j, 1] + Hs[1, 0] * rx + Hs[1, 1] * ry + Hs[1, 2] * rz
            tz = tiz - tangent[j, 2] + Hs[2, 0] * rx + Hs[2, 1] * ry + Hs[2, 2] * rz
            rd = ux[jn] * tx + uy[jn] * ty + uz[jn] * tz
            rdot[jn] = rd
            inv_r = 1.0 / r
            udot[0, jn] = (tx - rd * ux[jn]) * inv_r
            udot[1, jn] = (ty - rd * uy[jn]) * inv_r
            udot[2, jn] = (tz - rd * uz[jn]) * inv_r
        for l in range(lmax + 1):
            for m in range(l + 1):
                h = l * (l + 1) // 2 + m
                for jn in range(nn):
                    q = Qa[h, jn]
                    dzr = dQa[h, jn] * udot[2, jn]
                    yr = dzr * pra[m, jn]
                    yi = dzr * pia[m, jn]
                    if m > 0:
                        mq = m * q
                        br = pra[m - 1, jn]
                        bi = pia[m - 1, jn]
                        vx = udot[0, jn]
                        vy = udot[1, jn]
                        yr += mq * (br * vx - bi * vy)
                        yi += mq * (br * vy + bi * vx)
                    yd_re[h, jn] = yr
                    yd_im[h, jn] = yi
        # ---------- tangents of A (all m), rank-1 A1, the rank-1 densities and rho_core
        for mu in range(nel):
            s0 = seg[mu]
            s1 = seg[mu + 1]
            for l in range(lmax + 1):
                for m in range(l + 1):
                    h = l * (l + 1) // 2 + m
                    for n in range(nradmax):
                        qn = col_rnl + n * (lmax + 1) + l
                        sr = 0.0
                        si = 0.0
                        for jn in range(s0, s1):
                            R = Sa[qn, jn]
                            dRr = dSa[qn, jn] * rdot[jn]
                            yr0 = Qa[h, jn] * pra[m, jn]
                            yi0 = Qa[h, jn] * pia[m, jn]
                            sr += dRr * yr0 + R * yd_re[h, jn]
                            si += dRr * yi0 + R * yd_im[h, jn]
                        ctr = (mu * nradmax + n) * nlm + l * l + l
                        Ad_re[ctr + m] = sr
                        Ad_im[ctr + m] = si
                        if m > 0:
                            sign = -1.0 if m % 2 else 1.0
                            Ad_re[ctr - m] = sign * sr
                            Ad_im[ctr - m] = -sign * si
            for k in range(nradbase):
                sa = 0.0
                sd = 0.0
                for jn in range(s0, s1):
                    sa += Sa[col_g + k, jn]
                    sd += dSa[col_g + k, jn] * rdot[jn]
                A1[mu * nradbase + k] = sa
                A1d[mu * nradbase + k] = sd
        for p in range(nd):
            sd = 0.0
            for jn in range(nn):
                sd += dSa[p, jn] * rdot[jn]
            rho[p] = rho1[p]
            rhod[p] = sd
        rho_core_dot = 0.0
        for jn in range(nn):
            rho_core_dot += dSa[col_core, jn] * rdot[jn]
        # ---------- products, B and densities with tangents
        c0 = col_offsets[mu_i]
        c1 = col_offsets[mu_i + 1]
        q0 = prod_offsets[mu_i]
        q1 = prod_offsets[mu_i + 1]
        _dual_products(q0, q1, fac_offsets, fac_index, A_re, A_im, Ad_re, Ad_im, value, dvalue,
                       part_re, part_im, dpart_re, dpart_im, pre, suf, want_radial)
        for c in range(c0, c1):
            b = 0.0
            bd = 0.0
            for q in range(leaf_offsets[c], leaf_offsets[c + 1]):
                b += leaf_coef[q] * value[leaf_prod[q]]
                bd += leaf_coef[q] * dvalue[leaf_prod[q]]
            B[c] = b
            Bd[c] = bd
            for p in range(nd):
                rho[p] += coef[c, p] * b
                rhod[p] += coef[c, p] * bd
        for f in range(r1_offsets[mu_i], r1_offsets[mu_i + 1]):
            c = r1_col[f]
            B[c] = A1[r1_a1[f]]
            Bd[c] = A1d[r1_a1[f]]
        # ---------- energy, its tangent, and the adjoints of the densities
        s, ds, jmin = _energy_switch(is_zbl, mu_i, nel, nn, nb_mu[0], nb_r[0], cutoff_max, bond_cut_in,
                                     bond_dcut_in, rho_core, rho_core_cut, drho_core_cut)
        if is_zbl:
            sdot = ds * rdot[jmin] if jmin >= 0 else 0.0
        else:
            sdot = ds * rho_core_dot
        X = 0.0
        Xd = 0.0
        for p in range(nd):
            wp = fs_parameters[mu_i, p, 0]
            F, F1, F2 = embedding_derivatives(embedding_kind[mu_i], rho[p], fs_parameters[mu_i, p, 1])
            X += wp * F
            Xd += wp * F1 * rhod[p]
            g_rho[p] = wp * ((a_e * s + sdot) * F1 + s * F2 * rhod[p])
            g_rhod[p] = wp * s * F1
        if is_zbl:
            e_site = X * s + rho_core * (1.0 - s) + E0[mu_i]
            e_dot = sdot * X + s * Xd + rho_core_dot * (1.0 - s) - rho_core * sdot
        else:
            e_site = X * s + rho_core + E0[mu_i]
            e_dot = sdot * X + s * Xd + rho_core_dot
        g_value[st] += a_e * e_site + e_dot
        if want_coef:
            for c in range(c0, c1):
                b = B[c]
                bd = Bd[c]
                for p in range(nd):
                    grad_coef[c, p] += g_rho[p] * b + g_rhod[p] * bd
        if not want_radial:
            continue
        # ---------- adjoints of A and Ȧ through the products (rank >= 2 only: rank 1 has no crad)
        for c in range(c0, c1):
            bt = 0.0
            btd = 0.0
            for p in range(nd):
                bt += coef[c, p] * g_rho[p]
                btd += coef[c, p] * g_rhod[p]
            beta[c] = bt
            betad[c] = btd
        for q in range(q0, q1):
            pbar[q] = 0.0
            pbard[q] = 0.0
        for c in range(c0, c1):
            bt = beta[c]
            btd = betad[c]
            for q in range(leaf_offsets[c], leaf_offsets[c + 1]):
                pbar[leaf_prod[q]] += leaf_coef[q] * bt
                pbard[leaf_prod[q]] += leaf_coef[q] * btd
        for a in range(nA):
            adjA_re[a] = 0.0
            adjA_im[a] = 0.0
            adjAd_re[a] = 0.0
            adjAd_im[a] = 0.0
        for q in range(q0, q1):
            pb = pbar[q]
            pbd = pbard[q]
            for f in range(fac_offsets[q], fac_offsets[q + 1]):
                a = fac_index[f]
                adjA_re[a] += pb * part_re[f] + pbd * dpart_re[f]
                adjA_im[a] += pb * part_im[f] + pbd * dpart_im[f]
                adjAd_re[a] += pbd * part_re[f]
                adjAd_im[a] += pbd * part_im[f]
        _fold_minus_m_flat(adjA_re, adjA_im, nel, nradmax, lmax)
        _fold_minus_m_flat(adjAd_re, adjAd_im, nel, nradmax, lmax)
        # ---------- per neighbour: dG/dR_nl and dG/dṘ_nl, then onto crad through g_k and g_k'
        for jn in range(nn):
            mu_j = nb_mu[0, jn]
            bond = mu_i * nel + mu_j
            rd = rdot[jn]
            for n in range(nradmax):
                for l in range(lmax + 1):
                    ctr = (mu_j * nradmax + n) * nlm + l * l + l
                    sR = 0.0
                    sRd = 0.0
                    for m in range(l + 1):
                        h = l * (l + 1) // 2 + m
                        q = Qa[h, jn]
                        yr = q * pra[m, jn]
                        yi = q * pia[m, jn]
                        ar = adjA_re[ctr + m]
                        ai = adjA_im[ctr + m]
                        dr = adjAd_re[ctr + m]
                        di = adjAd_im[ctr + m]
                        sR += ar * yr - ai * yi + dr * yd_re[h, jn] - di * yd_im[h, jn]
                        sRd += dr * yr - di * yi
                    if sR == 0.0 and sRd == 0.0:
                        continue
                    sRd *= rd
                    for k in range(nradbase):
                        grad_crad[bond, n, l, k] += sR * Sa[col_g + k, jn] + sRd * dSa[col_g + k, jn]
    return OK, -1, -1
