"""Numba pass: the exact gradient of a fit's loss with respect to every trainable coefficient.

The nonlinear fit (``acemd.fit.nonlinear``) trains the basis coefficients C[k, p]
(function k, density p) and the radial coefficients crad[bond, n, l, k] of
R_nl(r) = Σ_k crad g_k(r).  Energies and forces come from the engine's own
kernel (``kernel.ace_forces``) with tables rebuilt from the coefficients; this
pass runs on the same per-atom work (``kernel._gather_neighbours``,
``kernel._site_base``) and on a product tree of the same kind (nodes hold
products of A's; each B-function is a sum of leaf coefficient x Re(node)).

A loss L(E_s, F, Vσ) has dL/dθ = Σ_s a_s ∂E_s/∂θ + Σ_o φ_o·∂F_o/∂θ + Σ_s Σ_ab
H_ab ∂(Vσ_ab)/∂θ with the residual weights a = ∂L/∂E, φ = ∂L/∂F, H = ∂L/∂(Vσ)
held fixed.  Since F = -∂E/∂x and Vσ = ∂E/∂ε, the last two terms are the
θ-derivative of one directional derivative of E: the tangent t_ij = φ_i - φ_j
+ H r_ij of every pair vector.  So per atom the pass carries each quantity with
its tangent (value, dot) forward: splines, harmonics, A, the tree's products, B,
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

from .kernel import OK, TOO_CLOSE, _gather_neighbours, _poly_switch, _site_base, max_row_length, site_buffers

__all__ = ["embedding_derivatives", "fit_gradient"]


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
def fit_gradient(positions, species, n_local, offsets, neighbors, struct_of, tangent, strain_tangent,
                 energy_adjoint,
                 nradmax, lmax, ndensity_max, nradbase, is_zbl, cutoff_max, ftab, spline_nlut, spline_scale,
                 bond_rcut, bond_cut_in, bond_dcut_in, ndensity, embedding_kind, fs_parameters,
                 rho_core_cut, drho_core_cut, E0, ylm_a, ylm_b,
                 node_offsets, node_parent, node_factor, node_coef, col_offsets, leaf_offsets, leaf_node,
                 leaf_coef, r1_offsets, r1_col, r1_a1, coef, want_coef, want_radial,
                 grad_coef, grad_crad, g_value):
    """Add dG/dC to ``grad_coef`` (ncols, ndensity_max) and dG/dcrad to ``grad_crad``
    (nbonds, nradmax, lmax+1, nradbase), and G_s to ``g_value[s]``, where
    G = Σ_i a_s E_i + Σ_ij ∂E_i/∂r_ij · t_ij with t_ij = tangent[i] - tangent[j] +
    strain_tangent[s] r_ij (s = struct_of[i]; ``energy_adjoint[s]`` = a_s).

    ``tangent`` (n_ext, 3) is φ of each atom's owner; see the module docstring.  The
    densities' products run on a prefix tree (``node_*``, as the kernel's, with
    ``node_coef`` = Σ over the node's leaves of leaf coefficient x C); column k's
    B-function is Σ leaf_coef Re(node value) over its leaves ``leaf_offsets[k]:[k+1]``.
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
    y0_re = np.zeros((nlm_half, max_neigh))
    y0_im = np.zeros((nlm_half, max_neigh))
    dRr = np.zeros((nrl, max_neigh))
    SR = np.zeros((nrl, max_neigh))
    SRd = np.zeros((nrl, max_neigh))
    A1 = np.zeros(nel * nradbase)
    A1d = np.zeros(nel * nradbase)
    ncols = coef.shape[0]
    B = np.zeros(ncols)
    Bd = np.zeros(ncols)
    max_nodes = max_row_length(node_offsets, nel)
    v_re = np.zeros(max_nodes)
    v_im = np.zeros(max_nodes)
    vd_re = np.zeros(max_nodes)
    vd_im = np.zeros(max_nodes)
    w_re = np.zeros(max_nodes)
    w_im = np.zeros(max_nodes)
    wd_re = np.zeros(max_nodes)
    wd_im = np.zeros(max_nodes)
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
        for q_ in range(nrl):
            for jn in range(nn):
                dRr[q_, jn] = dSa[col_rnl + q_, jn] * rdot[jn]
        for l in range(lmax + 1):
            for m in range(l + 1):
                h = l * (l + 1) // 2 + m
                for jn in range(nn):
                    q = Qa[h, jn]
                    y0_re[h, jn] = q * pra[m, jn]
                    y0_im[h, jn] = q * pia[m, jn]
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
                    yr0 = y0_re[h]
                    yi0 = y0_im[h]
                    ydr = yd_re[h]
                    ydi = yd_im[h]
                    for n in range(nradmax):
                        q_ = n * (lmax + 1) + l
                        Rq = Sa[col_rnl + q_]
                        dRq = dRr[q_]
                        sr = 0.0
                        si = 0.0
                        for jn in range(s0, s1):
                            sr += dRq[jn] * yr0[jn] + Rq[jn] * ydr[jn]
                            si += dRq[jn] * yi0[jn] + Rq[jn] * ydi[jn]
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
        n0 = node_offsets[mu_i]
        n1 = node_offsets[mu_i + 1]
        for q in range(n0, n1):          # node values and tangents: v = v_parent A_f
            f = node_factor[q]
            ar = A_re[f, 0]
            ai = A_im[f, 0]
            dr = Ad_re[f]
            di = Ad_im[f]
            par = node_parent[q]
            k = q - n0
            if par < 0:
                v_re[k] = ar
                v_im[k] = ai
                vd_re[k] = dr
                vd_im[k] = di
            else:
                pp = par - n0
                pr = v_re[pp]
                pi = v_im[pp]
                qr = vd_re[pp]
                qi = vd_im[pp]
                v_re[k] = pr * ar - pi * ai
                v_im[k] = pr * ai + pi * ar
                vd_re[k] = qr * ar - qi * ai + pr * dr - pi * di
                vd_im[k] = qr * ai + qi * ar + pr * di + pi * dr
        for c in range(c0, c1):
            b = 0.0
            bd = 0.0
            for q in range(leaf_offsets[c], leaf_offsets[c + 1]):
                k = leaf_node[q] - n0
                b += leaf_coef[q] * v_re[k]
                bd += leaf_coef[q] * vd_re[k]
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
        # ---------- adjoints of A and Ȧ back through the tree (rank 1 has no crad)
        for q in range(n0, n1):
            k = q - n0
            wr = 0.0
            wdr = 0.0
            for p in range(nd):
                wr += node_coef[q, p] * g_rho[p]
                wdr += node_coef[q, p] * g_rhod[p]
            w_re[k] = wr
            w_im[k] = 0.0
            wd_re[k] = wdr
            wd_im[k] = 0.0
        for a in range(nA):
            adjA_re[a] = 0.0
            adjA_im[a] = 0.0
            adjAd_re[a] = 0.0
            adjAd_im[a] = 0.0
        for q in range(n1 - 1, n0 - 1, -1):
            k = q - n0
            f = node_factor[q]
            par = node_parent[q]
            xr = w_re[k]
            xi = w_im[k]
            yr = wd_re[k]
            yi = wd_im[k]
            if par < 0:
                adjA_re[f] += xr
                adjA_im[f] += xi
                adjAd_re[f] += yr
                adjAd_im[f] += yi
                continue
            pp = par - n0
            pr = v_re[pp]
            pi = v_im[pp]
            qr = vd_re[pp]
            qi = vd_im[pp]
            adjA_re[f] += xr * pr - xi * pi + yr * qr - yi * qi
            adjA_im[f] += xr * pi + xi * pr + yr * qi + yi * qr
            adjAd_re[f] += yr * pr - yi * pi
            adjAd_im[f] += yr * pi + yi * pr
            ar = A_re[f, 0]
            ai = A_im[f, 0]
            dr = Ad_re[f]
            di = Ad_im[f]
            w_re[pp] += xr * ar - xi * ai + yr * dr - yi * di
            w_im[pp] += xr * ai + xi * ar + yr * di + yi * dr
            wd_re[pp] += yr * ar - yi * ai
            wd_im[pp] += yr * ai + yi * ar
        _fold_minus_m_flat(adjA_re, adjA_im, nel, nradmax, lmax)
        _fold_minus_m_flat(adjAd_re, adjAd_im, nel, nradmax, lmax)
        # ---------- per neighbour: dG/dR_nl and dG/dṘ_nl (rows q = n*(lmax+1) + l), then onto crad
        # through g_k and g_k' (per element segment: one bond)
        for q_ in range(nrl):
            for jn in range(nn):
                SR[q_, jn] = 0.0
                SRd[q_, jn] = 0.0
        for mu in range(nel):
            s0 = seg[mu]
            s1 = seg[mu + 1]
            if s1 == s0:
                continue
            for l in range(lmax + 1):
                for m in range(l + 1):
                    h = l * (l + 1) // 2 + m
                    yr0 = y0_re[h]
                    yi0 = y0_im[h]
                    ydr = yd_re[h]
                    ydi = yd_im[h]
                    for n in range(nradmax):
                        a = (mu * nradmax + n) * nlm + l * l + l + m
                        ar = adjA_re[a]
                        ai = adjA_im[a]
                        dr = adjAd_re[a]
                        di = adjAd_im[a]
                        if ar == 0.0 and ai == 0.0 and dr == 0.0 and di == 0.0:
                            continue
                        q_ = n * (lmax + 1) + l
                        row = SR[q_]
                        rowd = SRd[q_]
                        for jn in range(s0, s1):
                            row[jn] += ar * yr0[jn] - ai * yi0[jn] + dr * ydr[jn] - di * ydi[jn]
                            rowd[jn] += dr * yr0[jn] - di * yi0[jn]
            for jn in range(s0, s1):
                rd = rdot[jn]
                for q_ in range(nrl):
                    SRd[q_, jn] *= rd
            bond = mu_i * nel + mu
            for q_ in range(nrl):
                n = q_ // (lmax + 1)
                l = q_ - n * (lmax + 1)
                row = SR[q_]
                rowd = SRd[q_]
                for k in range(nradbase):
                    gk = Sa[col_g + k]
                    dgk = dSa[col_g + k]
                    acc = 0.0
                    for jn in range(s0, s1):
                        acc += row[jn] * gk[jn] + rowd[jn] * dgk[jn]
                    grad_crad[bond, n, l, k] += acc
    return OK, -1, -1
