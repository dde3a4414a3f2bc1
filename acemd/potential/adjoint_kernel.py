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
from .simd import vload, vsplat, vstore
from .tree_batch import BATCH, tree_backward_dual, tree_forward_dual

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
def _atom_tangents(i, nn, nel, nradmax, lmax, nradbase, nd, col_rnl, col_core, col_g, tangent, Hs,
                   nb_index, nb_r, nb_u, S, dS, Q, dQ, ph_re, ph_im, seg,
                   rdot, udot, y0_re, y0_im, yd_re, yd_im, dRr, Ad_re, Ad_im, A1, A1d, rhod, b):
    """Tangents of one atom (lane b): ṙ, u̇, Y and Ẏ per neighbour, Ȧ (all m), Ȧ1, the rank-1
    densities' ρ̇ and the returned ρ̇_core, along t_ij = tangent[i] - tangent[j] + H r_ij."""
    nlm = (lmax + 1) * (lmax + 1)
    nrl = nradmax * (lmax + 1)
    ux = nb_u[0]
    uy = nb_u[1]
    uz = nb_u[2]
    tix = tangent[i, 0]
    tiy = tangent[i, 1]
    tiz = tangent[i, 2]
    for jn in range(nn):
        j = nb_index[jn]
        r = nb_r[jn]
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
            dRr[q_, jn] = dS[col_rnl + q_, jn] * rdot[jn]
    for l in range(lmax + 1):
        for m in range(l + 1):
            h = l * (l + 1) // 2 + m
            for jn in range(nn):
                q = Q[h, jn]
                y0_re[h, jn] = q * ph_re[m, jn]
                y0_im[h, jn] = q * ph_im[m, jn]
                dzr = dQ[h, jn] * udot[2, jn]
                yr = dzr * ph_re[m, jn]
                yi = dzr * ph_im[m, jn]
                if m > 0:
                    mq = m * q
                    br = ph_re[m - 1, jn]
                    bi = ph_im[m - 1, jn]
                    vx = udot[0, jn]
                    vy = udot[1, jn]
                    yr += mq * (br * vx - bi * vy)
                    yi += mq * (br * vy + bi * vx)
                yd_re[h, jn] = yr
                yd_im[h, jn] = yi
    for mu in range(nel):
        s0 = seg[mu]
        s1 = seg[mu + 1]
        for l in range(lmax + 1):
            for m in range(l + 1):
                h = l * (l + 1) // 2 + m
                ns = s1 - s0        # zero-based loops over slices vectorise (see kernel._site_base)
                yr0 = y0_re[h, s0:s1]
                yi0 = y0_im[h, s0:s1]
                ydr = yd_re[h, s0:s1]
                ydi = yd_im[h, s0:s1]
                for n in range(nradmax):
                    q_ = n * (lmax + 1) + l
                    Rq = S[col_rnl + q_, s0:s1]
                    dRq = dRr[q_, s0:s1]
                    sr = 0.0
                    si = 0.0
                    for jn in range(ns):
                        sr += dRq[jn] * yr0[jn] + Rq[jn] * ydr[jn]
                        si += dRq[jn] * yi0[jn] + Rq[jn] * ydi[jn]
                    ctr = (mu * nradmax + n) * nlm + l * l + l
                    Ad_re[ctr + m, b] = sr
                    Ad_im[ctr + m, b] = si
                    if m > 0:
                        sign = -1.0 if m % 2 else 1.0
                        Ad_re[ctr - m, b] = sign * sr
                        Ad_im[ctr - m, b] = -sign * si
        rd_seg = rdot[s0:s1]
        for k in range(nradbase):
            gk = S[col_g + k, s0:s1]
            dgk = dS[col_g + k, s0:s1]
            sa = 0.0
            sd = 0.0
            for jn in range(s1 - s0):
                sa += gk[jn]
                sd += dgk[jn] * rd_seg[jn]
            A1[mu * nradbase + k, b] = sa
            A1d[mu * nradbase + k, b] = sd
    for p in range(nd):
        sd = 0.0
        for jn in range(nn):
            sd += dS[p, jn] * rdot[jn]
        rhod[p, b] = sd
    rho_core_dot = 0.0
    for jn in range(nn):
        rho_core_dot += dS[col_core, jn] * rdot[jn]
    return rho_core_dot


@njit(cache=True)
def _fold_lane(W_re, W_im, b, nel, nradmax, lmax):
    """Adjoints of A_{l,-m} onto m > 0 in lane b: A_{l,-m} = (-1)^m conj(A_{l,m})."""
    nlm = (lmax + 1) * (lmax + 1)
    for mu in range(nel):
        for n in range(nradmax):
            base = (mu * nradmax + n) * nlm
            for l in range(1, lmax + 1):
                ctr = base + l * l + l
                sign = -1.0
                for m in range(1, l + 1):
                    W_re[ctr + m, b] += sign * W_re[ctr - m, b]
                    W_im[ctr + m, b] -= sign * W_im[ctr - m, b]
                    sign = -sign


@njit(cache=True, fastmath=True, error_model='numpy')
def _atom_radial_gradient(mu_i, nn, nel, nradmax, lmax, nradbase, col_g, S, dS, seg, rdot, y0_re, y0_im,
                          yd_re, yd_im, adjA_re, adjA_im, adjAd_re, adjAd_im, b, SR, SRd, grad_crad):
    """dG/dR_nl and dG/dṘ_nl per neighbour (rows q = n*(lmax+1) + l) from the folded adjoints of lane b,
    then onto crad through g_k and g_k' (one element segment = one bond)."""
    nlm = (lmax + 1) * (lmax + 1)
    nrl = nradmax * (lmax + 1)
    for q_ in range(nrl):
        for jn in range(nn):
            SR[q_, jn] = 0.0
            SRd[q_, jn] = 0.0
    for mu in range(nel):
        s0 = seg[mu]
        s1 = seg[mu + 1]
        if s1 == s0:
            continue
        ns = s1 - s0                # zero-based loops over slices vectorise (see kernel._site_base)
        for l in range(lmax + 1):
            for m in range(l + 1):
                h = l * (l + 1) // 2 + m
                yr0 = y0_re[h, s0:s1]
                yi0 = y0_im[h, s0:s1]
                ydr = yd_re[h, s0:s1]
                ydi = yd_im[h, s0:s1]
                for n in range(nradmax):
                    a = (mu * nradmax + n) * nlm + l * l + l + m
                    ar = adjA_re[a, b]
                    ai = adjA_im[a, b]
                    dr = adjAd_re[a, b]
                    di = adjAd_im[a, b]
                    if ar == 0.0 and ai == 0.0 and dr == 0.0 and di == 0.0:
                        continue
                    q_ = n * (lmax + 1) + l
                    row = SR[q_, s0:s1]
                    rowd = SRd[q_, s0:s1]
                    for jn in range(ns):
                        row[jn] += ar * yr0[jn] - ai * yi0[jn] + dr * ydr[jn] - di * ydi[jn]
                        rowd[jn] += dr * yr0[jn] - di * yi0[jn]
        bond = mu_i * nel + mu
        rd_seg = rdot[s0:s1]
        for q_ in range(nrl):
            n = q_ // (lmax + 1)
            l = q_ - n * (lmax + 1)
            row = SR[q_, s0:s1]
            rowd = SRd[q_, s0:s1]
            for jn in range(ns):
                rowd[jn] *= rd_seg[jn]
            for k in range(nradbase):
                gk = S[col_g + k, s0:s1]
                dgk = dS[col_g + k, s0:s1]
                acc = 0.0
                for jn in range(ns):
                    acc += row[jn] * gk[jn] + rowd[jn] * dgk[jn]
                grad_crad[bond, n, l, k] += acc


@njit(cache=True)
def _dual_tree_layout(node_offsets, node_parent):
    """The tree passes' view of the product tree, per element and relative to its first node:
    each node's parent block (parent + 1; 0, the virtual root, for roots; np.uint64), and its nodes
    without children and with children (ascending), as (nodes, start per element) pairs."""
    nnodes = node_parent.shape[0]
    nel = node_offsets.shape[0] - 1
    has_children = np.zeros(nnodes, np.bool_)
    for q in range(nnodes):
        if node_parent[q] >= 0:
            has_children[node_parent[q]] = True
    n_inner = 0
    for q in range(nnodes):
        if has_children[q]:
            n_inner += 1
    parent_block = np.zeros(nnodes, np.uint64)
    leaf_nodes = np.zeros(nnodes - n_inner, np.int64)
    inner_nodes = np.zeros(n_inner, np.int64)
    leaf_start = np.zeros(nel + 1, np.int64)
    inner_start = np.zeros(nel + 1, np.int64)
    for mu in range(nel):
        m0 = node_offsets[mu]
        nl = leaf_start[mu]
        ni = inner_start[mu]
        for q in range(m0, node_offsets[mu + 1]):
            if node_parent[q] >= 0:
                parent_block[q] = node_parent[q] - m0 + 1
            if has_children[q]:
                inner_nodes[ni] = q - m0
                ni += 1
            else:
                leaf_nodes[nl] = q - m0
                nl += 1
        leaf_start[mu + 1] = nl
        inner_start[mu + 1] = ni
    return parent_block, leaf_nodes, leaf_start, inner_nodes, inner_start


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
    ``node_coef`` = Σ over the node's leaves of leaf coefficient x C), BATCH atoms of one
    element at a time; column k's B-function is Σ leaf_coef Re(node value) over its leaves
    ``leaf_offsets[k]:[k+1]``.
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
     segment) = site_buffers(BATCH, max_neigh, nfunc, nlm_half, lmax, nel)
    A_re = np.zeros((nA, BATCH))
    A_im = np.zeros((nA, BATCH))
    Ad_re = np.zeros((nA, BATCH))
    Ad_im = np.zeros((nA, BATCH))
    adjA_re = np.zeros((nA, BATCH))
    adjA_im = np.zeros((nA, BATCH))
    adjAd_re = np.zeros((nA, BATCH))
    adjAd_im = np.zeros((nA, BATCH))
    ndm = max(ndensity_max, 2)
    rho1 = np.zeros(ndm)
    rho = np.zeros((ndm, BATCH))
    rhod = np.zeros((ndm, BATCH))
    g_rho = np.zeros((ndm, BATCH))
    g_rhod = np.zeros((ndm, BATCH))
    scratch = np.empty((4, max_neigh))
    y_re = np.empty(max_neigh)
    y_im = np.empty(max_neigh)
    rdot = np.zeros((BATCH, max_neigh))
    udot = np.zeros((3, max_neigh))
    yd_re = np.zeros((BATCH, nlm_half, max_neigh))
    yd_im = np.zeros((BATCH, nlm_half, max_neigh))
    y0_re = np.zeros((BATCH, nlm_half, max_neigh))
    y0_im = np.zeros((BATCH, nlm_half, max_neigh))
    dRr = np.zeros((nrl, max_neigh))
    SR = np.zeros((nrl, max_neigh))
    SRd = np.zeros((nrl, max_neigh))
    A1 = np.zeros((nel * nradbase, BATCH))
    A1d = np.zeros((nel * nradbase, BATCH))
    ncols = coef.shape[0]
    B = np.zeros((ncols, BATCH))
    Bd = np.zeros((ncols, BATCH))
    max_nodes = max_row_length(node_offsets, nel)
    blk = 4 * BATCH                 # the tree passes' flat blocks: (re, im, ṙe, i̇m) x lane
    A4 = np.zeros(nA * blk)
    adj4 = np.zeros(nA * blk)
    V4 = np.zeros((max_nodes + 1) * blk)
    W4 = np.zeros((max_nodes + 1) * blk)
    for b in range(BATCH):
        V4[b] = 1.0                 # the virtual root
    parent_block, leaf_nodes, leaf_start, inner_nodes, inner_start = _dual_tree_layout(node_offsets, node_parent)
    factor_block = node_factor.astype(np.uint64)
    nn_of = np.zeros(BATCH, np.int64)
    rho_core_of = np.zeros(BATCH)
    rho_core_dot_of = np.zeros(BATCH)
    batch_atoms = np.empty(BATCH, np.int64)
    order = np.argsort(species[:n_local], kind="mergesort")
    start = 0
    while start < n_local:
        mu_i = species[order[start]]
        nd = ndensity[mu_i]
        nb = 0
        while nb < BATCH and start + nb < n_local and species[order[start + nb]] == mu_i:
            batch_atoms[nb] = order[start + nb]
            nb += 1
        start += nb
        # ---------- per atom: neighbours, base, tangents (unused lanes: zero A and Ȧ)
        for b in range(BATCH):
            if b >= nb:
                for a in range(nA):
                    A_re[a, b] = 0.0
                    A_im[a, b] = 0.0
                    Ad_re[a, b] = 0.0
                    Ad_im[a, b] = 0.0
                for p in range(ndm):
                    rho[p, b] = 0.0
                    rhod[p, b] = 0.0
                    g_rho[p, b] = 0.0
                    g_rhod[p, b] = 0.0
                continue
            i = batch_atoms[b]
            nn, jbad = _gather_neighbours(i, positions, species, offsets, neighbors, nel, spline_scale,
                                          bond_rcut, nb_index[b], nb_mu[b], nb_r[b], nb_u[b], scratch,
                                          segment[b])
            if jbad >= 0:
                return TOO_CLOSE, i, jbad
            nn_of[b] = nn
            rho_core = _site_base(mu_i, nn, nel, nradmax, lmax, ndensity_max, ftab, spline_nlut, spline_scale,
                                  ylm_a, ylm_b, nb_mu[b], nb_r[b], nb_u[b], S[b], dS[b], Q[b], dQ[b],
                                  ph_re[b], ph_im[b], segment[b], y_re, y_im, A_re, A_im, b, rho1)
            for p in range(nd):
                rho[p, b] = rho1[p]
            rho_core_dot = _atom_tangents(i, nn, nel, nradmax, lmax, nradbase, nd, col_rnl, col_core, col_g,
                                          tangent, strain_tangent[struct_of[i]], nb_index[b], nb_r[b], nb_u[b],
                                          S[b], dS[b], Q[b], dQ[b], ph_re[b], ph_im[b], segment[b], rdot[b],
                                          udot, y0_re[b], y0_im[b], yd_re[b], yd_im[b], dRr, Ad_re, Ad_im,
                                          A1, A1d, rhod, b)
            rho_core_of[b] = rho_core
            rho_core_dot_of[b] = rho_core_dot
        # ---------- node values and tangents, all lanes
        n0 = node_offsets[mu_i]
        n1 = node_offsets[mu_i + 1]
        for a in range(nA):
            vstore(A4, a * blk, vload(A_re, a * BATCH))
            vstore(A4, a * blk + BATCH, vload(A_im, a * BATCH))
            vstore(A4, a * blk + 2 * BATCH, vload(Ad_re, a * BATCH))
            vstore(A4, a * blk + 3 * BATCH, vload(Ad_im, a * BATCH))
        tree_forward_dual(n1 - n0, parent_block[n0:n1], factor_block[n0:n1], A4, V4)
        c0 = col_offsets[mu_i]
        c1 = col_offsets[mu_i + 1]
        # ---------- B and Ḃ of every column, all lanes in one sweep of the leaves
        for c in range(c0, c1):
            bv = vsplat(0.0)
            bd = vsplat(0.0)
            for q in range(leaf_offsets[c], leaf_offsets[c + 1]):
                kb = (leaf_node[q] - n0 + 1) * blk
                lc = vsplat(leaf_coef[q])
                bv = bv + lc * vload(V4, kb)
                bd = bd + lc * vload(V4, kb + 2 * BATCH)
            vstore(B, c * BATCH, bv)
            vstore(Bd, c * BATCH, bd)
        # ---------- per atom: densities, energy, adjoints of the densities, dG/dC
        for b in range(nb):
            i = batch_atoms[b]
            st = struct_of[i]
            a_e = energy_adjoint[st]
            rho_core = rho_core_of[b]
            rho_core_dot = rho_core_dot_of[b]
            for c in range(c0, c1):
                bv = B[c, b]
                bd = Bd[c, b]
                for p in range(nd):
                    rho[p, b] += coef[c, p] * bv
                    rhod[p, b] += coef[c, p] * bd
            for f in range(r1_offsets[mu_i], r1_offsets[mu_i + 1]):
                c = r1_col[f]
                B[c, b] = A1[r1_a1[f], b]
                Bd[c, b] = A1d[r1_a1[f], b]
            nn = nn_of[b]
            s, ds, jmin = _energy_switch(is_zbl, mu_i, nel, nn, nb_mu[b], nb_r[b], cutoff_max, bond_cut_in,
                                         bond_dcut_in, rho_core, rho_core_cut, drho_core_cut)
            if is_zbl:
                sdot = ds * rdot[b, jmin] if jmin >= 0 else 0.0
            else:
                sdot = ds * rho_core_dot
            X = 0.0
            Xd = 0.0
            for p in range(nd):
                wp = fs_parameters[mu_i, p, 0]
                F, F1, F2 = embedding_derivatives(embedding_kind[mu_i], rho[p, b], fs_parameters[mu_i, p, 1])
                X += wp * F
                Xd += wp * F1 * rhod[p, b]
                g_rho[p, b] = wp * ((a_e * s + sdot) * F1 + s * F2 * rhod[p, b])
                g_rhod[p, b] = wp * s * F1
            for p in range(nd, ndm):
                g_rho[p, b] = 0.0
                g_rhod[p, b] = 0.0
            if is_zbl:
                e_site = X * s + rho_core * (1.0 - s) + E0[mu_i]
                e_dot = sdot * X + s * Xd + rho_core_dot * (1.0 - s) - rho_core * sdot
            else:
                e_site = X * s + rho_core + E0[mu_i]
                e_dot = sdot * X + s * Xd + rho_core_dot
            g_value[st] += a_e * e_site + e_dot
            if want_coef:
                for c in range(c0, c1):
                    bv = B[c, b]
                    bd = Bd[c, b]
                    for p in range(nd):
                        grad_coef[c, p] += g_rho[p, b] * bv + g_rhod[p, b] * bd
        if not want_radial:
            continue
        # ---------- adjoints of A and Ȧ back through the tree, all lanes (rank 1 has no crad)
        adj4[:] = 0.0
        tree_backward_dual(nd, n0, parent_block[n0:n1], factor_block[n0:n1],
                           leaf_nodes[leaf_start[mu_i]:leaf_start[mu_i + 1]],
                           inner_nodes[inner_start[mu_i]:inner_start[mu_i + 1]], node_coef, g_rho, g_rhod,
                           A4, V4, W4[:(n1 - n0 + 1) * blk], adj4)
        for a in range(nA):
            vstore(adjA_re, a * BATCH, vload(adj4, a * blk))
            vstore(adjA_im, a * BATCH, vload(adj4, a * blk + BATCH))
            vstore(adjAd_re, a * BATCH, vload(adj4, a * blk + 2 * BATCH))
            vstore(adjAd_im, a * BATCH, vload(adj4, a * blk + 3 * BATCH))
        # ---------- per atom: onto the radial coefficients
        for b in range(nb):
            _fold_lane(adjA_re, adjA_im, b, nel, nradmax, lmax)
            _fold_lane(adjAd_re, adjAd_im, b, nel, nradmax, lmax)
            _atom_radial_gradient(mu_i, nn_of[b], nel, nradmax, lmax, nradbase, col_g, S[b], dS[b], segment[b],
                                  rdot[b], y0_re[b], y0_im[b], yd_re[b], yd_im[b], adjA_re, adjA_im,
                                  adjAd_re, adjAd_im, b, SR, SRd, grad_crad)
    return OK, -1, -1
