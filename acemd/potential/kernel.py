"""Numba kernel: ACE site energies, forces and virial over a neighbour list.

Input is an *extended* atom set: ``n_local`` atoms whose energies are wanted,
followed by ghost atoms (periodic images or atoms of other MPI subdomains) that
only serve as neighbours.  The CSR neighbour list (``offsets``, ``neighbors``)
gives, for each local atom, indices into the extended set.  Forces are returned
on all extended atoms; the caller adds ghost forces to their owners.

Per atom i the kernel
  1. gathers the neighbours within their bond cutoff, sorted by element
     (``_gather_neighbours``), and (``_site_base``, shared with the active-set
     projections) interpolates the radial splines, computes the harmonics for all
     neighbours at once and the atomic base A_{mu n l m}, with every per-neighbour
     array laid out neighbour-last so the loops vectorise;
  2. with three more atoms of its element, runs the product tree forward
     (``tree_batch``) to the densities rho_p, then the embedding and the energy
     cutoffs (core-repulsion cutoff or ZBL switch);
  3. runs the tree backward to dE/dA, folds the -m half onto m >= 0, and
     (``_site_forces``) accumulates the pair gradients dE_i/dr_ij, forces and virial.
All work arrays are allocated once per call and reused for every atom.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .tree_batch import BATCH, tree_backward, tree_forward

# status codes returned by the kernel
OK = 0
TOO_CLOSE = 1


@njit(cache=True)
def max_row_length(offsets, nrows):
    """Longest row of a CSR table (neighbours of an atom, tree nodes of an element)."""
    longest = 0
    for i in range(nrows):
        c = offsets[i + 1] - offsets[i]
        if c > longest:
            longest = c
    return longest


@njit(cache=True, fastmath=False)
def _poly_switch(x, x_in, delta):
    """Quintic switch 1 -> 0 on (x_in - delta, x_in); returns (f, df/dx)."""
    if x <= x_in - delta:
        return 1.0, 0.0
    if x >= x_in:
        return 0.0, 0.0
    t = 1.0 - 2.0 * (1.0 + (x - x_in) / delta)
    t2 = t * t
    f = 0.5 + 7.5 / 2.0 * (t / 4.0 - t2 * t / 6.0 + t2 * t2 * t / 20.0)
    df = -7.5 / delta * (0.25 - t2 / 2.0 + t2 * t2 / 4.0)
    return f, df


@njit(cache=True)
def _embedding(kind, rho, m):
    """F(rho) and dF/drho of the Finnis-Sinclair embeddings pacemaker writes."""
    if kind == 0:  # FinnisSinclair: |rho|^m, linearised near rho = 0
        w = 1.0e6
        lam = (1.0 / w) ** (m - 1.0)
        if abs(rho) > 1e-10:
            a = abs(rho)
            am = a ** m
            w3x3 = (w * a) ** 3
            g = 0.0 if w3x3 > 30.0 else np.exp(-w3x3)
            sign = -1.0 if rho < 0.0 else 1.0
            omg = 1.0 - g
            F = sign * (omg * am + lam * g * a)
            dg = -3.0 * w * w * w * a * a * g
            dF = m * a ** (m - 1.0) * omg - am * dg + lam * dg * a + lam * g
            return F, dF
        return lam * rho, lam
    # FinnisSinclairShiftedScaled
    if abs(m - 1.0) < 1e-10:
        return rho, 1.0
    a = abs(rho)
    e = np.exp(-a)
    nx = 1.0 / m
    xoff = nx ** (nx / (1.0 - nx)) * e
    yoff = nx ** (1.0 / (1.0 - nx)) * e
    sign = -1.0 if rho < 0.0 else 1.0
    F = sign * ((xoff + a) ** m - yoff)
    dF = yoff + m * (1.0 - xoff) * (xoff + a) ** (m - 1.0)
    return F, dF


# stages of ``ace_forces``: the profiling mode stops each atom after one of them
STAGE_BASE = 1        # per-neighbour work: splines, harmonics, atomic base A
STAGE_FORWARD = 2     # + product tree forward, embedding, energy cutoffs
STAGE_BACKWARD = 3    # + product tree backward (dE/dA) and the -m fold
STAGE_ALL = 4         # + pair gradients, forces and virial (the normal kernel)




@njit(cache=True)
def site_buffers(batch, max_neigh, nfunc, nlm_half, lmax, nel):
    """Per-atom work arrays of the force kernel for a batch of atoms, neighbour
    index last so that the loops over an atom's neighbours run over contiguous
    memory (and vectorise): neighbour index, element, r, unit vector, spline
    values and derivatives (nfunc, max_neigh), Q_lm(z) and dQ/dz (nlm_half,
    max_neigh), (x + i y)^m as real and imaginary parts (lmax+1, max_neigh), and
    the species segments of the sorted neighbours."""
    return (np.empty((batch, max_neigh), np.int64), np.empty((batch, max_neigh), np.int64),
            np.empty((batch, max_neigh)), np.empty((batch, 3, max_neigh)),
            np.empty((batch, nfunc, max_neigh)), np.empty((batch, nfunc, max_neigh)),
            np.empty((batch, nlm_half, max_neigh)), np.empty((batch, nlm_half, max_neigh)),
            np.empty((batch, lmax + 1, max_neigh)), np.empty((batch, lmax + 1, max_neigh)),
            np.empty((batch, nel + 1), np.int64))


@njit(cache=True, fastmath=True, error_model='numpy')
def _gather_neighbours(i, positions, species, offsets, neighbors, nel, spline_scale, bond_rcut,
                       nb_index, nb_mu, nb_r, nb_u, scratch, segment):
    """The neighbours of atom i within their bond cutoff, sorted by element (stable).

    Fills nb_index, nb_mu, nb_r, nb_u (3, nn) and segment (the first position of
    each element, segment[nel] = nn).  Returns (nn, bad): bad is the neighbour
    closer than one spline bin (-1 if none).
    """
    mu_i = species[i]
    xi = positions[i, 0]
    yi = positions[i, 1]
    zi = positions[i, 2]
    segment[:] = 0
    nn = 0
    for jj in range(offsets[i], offsets[i + 1]):
        j = neighbors[jj]
        mu_j = species[j]
        bond = mu_i * nel + mu_j
        dx = positions[j, 0] - xi
        dy = positions[j, 1] - yi
        dz = positions[j, 2] - zi
        r = np.sqrt(dx * dx + dy * dy + dz * dz)
        if r >= bond_rcut[bond]:
            continue
        if r * spline_scale[bond] < 1.0:
            return nn, j
        inv_r = 1.0 / r
        nb_index[nn] = j
        nb_mu[nn] = mu_j
        nb_r[nn] = r
        nb_u[0, nn] = dx * inv_r
        nb_u[1, nn] = dy * inv_r
        nb_u[2, nn] = dz * inv_r
        segment[mu_j + 1] += 1
        nn += 1
    for mu in range(nel):
        segment[mu + 1] += segment[mu]
    if nel > 1:
        # stable counting sort by element through the scratch rows
        fill = segment[:nel].copy()
        for jn in range(nn):
            scratch[0, jn] = nb_r[jn]
            scratch[1, jn] = nb_u[0, jn]
            scratch[2, jn] = nb_u[1, jn]
            scratch[3, jn] = nb_u[2, jn]
        idx = nb_index[:nn].copy()
        mus = nb_mu[:nn].copy()
        for jn in range(nn):
            k = fill[mus[jn]]
            fill[mus[jn]] += 1
            nb_index[k] = idx[jn]
            nb_mu[k] = mus[jn]
            nb_r[k] = scratch[0, jn]
            nb_u[0, k] = scratch[1, jn]
            nb_u[1, k] = scratch[2, jn]
            nb_u[2, k] = scratch[3, jn]
    return nn, -1


@njit(cache=True, fastmath=True, error_model='numpy')
def _site_base(mu_i, nn, nel, nradmax, lmax, ndensity_max, force_tables, spline_nlut, spline_scale,
               ylm_a, ylm_b, nb_mu, nb_r, nb_u, S, dS, Q, dQ, ph_re, ph_im, segment,
               y_re, y_im, A_re, A_im, b, rho1):
    """Splines, harmonics and atomic base of one atom (its gathered neighbours).

    Writes A_{mu n l m} (all m) into column b of A_re/A_im and the rank-1 part of
    each density into rho1; returns the core-repulsion sum.
    """
    nlm = (lmax + 1) * (lmax + 1)
    nrl = nradmax * (lmax + 1)
    nfunc = force_tables.shape[2]
    col_rnl = ndensity_max
    col_core = ndensity_max + nrl
    ux = nb_u[0]
    uy = nb_u[1]
    uz = nb_u[2]
    # ---------- radial splines (cubic Hermite), one table row per pair
    for jn in range(nn):
        bond = mu_i * nel + nb_mu[jn]
        sc = spline_scale[bond]
        xs = nb_r[jn] * sc
        nl = int(xs)
        if nl < spline_nlut[bond]:
            w = xs - nl
            w2 = w * w
            w3 = w2 * w
            for f in range(nfunc):
                c0 = force_tables[bond, nl, f, 0]
                c1 = force_tables[bond, nl, f, 1]
                c2 = force_tables[bond, nl, f, 2]
                c3 = force_tables[bond, nl, f, 3]
                S[f, jn] = c0 + c1 * w + c2 * w2 + c3 * w3
                dS[f, jn] = (c1 + 2.0 * c2 * w + 3.0 * c3 * w2) * sc
        else:
            for f in range(nfunc):
                S[f, jn] = 0.0
                dS[f, jn] = 0.0
    # ---------- harmonics Y_lm = Q_lm(z) (x + i y)^m over all neighbours at once
    for jn in range(nn):
        Q[0, jn] = 1.0
        dQ[0, jn] = 0.0
        ph_re[0, jn] = 1.0
        ph_im[0, jn] = 0.0
    if lmax > 0:
        sqrt3 = np.sqrt(3.0)
        q11 = -np.sqrt(1.5)
        for jn in range(nn):
            Q[1, jn] = sqrt3 * uz[jn]
            dQ[1, jn] = sqrt3
            Q[2, jn] = q11
            dQ[2, jn] = 0.0
    for l in range(2, lmax + 1):
        hl = l * (l + 1) // 2
        h1 = (l - 1) * l // 2
        h2 = (l - 2) * (l - 1) // 2
        for m in range(0, l - 1):
            a = ylm_a[l, m]
            ab = a * ylm_b[l, m]
            for jn in range(nn):
                Q[hl + m, jn] = a * uz[jn] * Q[h1 + m, jn] - ab * Q[h2 + m, jn]
                dQ[hl + m, jn] = a * (Q[h1 + m, jn] + uz[jn] * dQ[h1 + m, jn]) - ab * dQ[h2 + m, jn]
        t = np.sqrt(2.0 * l + 1.0)
        s = -np.sqrt(1.0 + 0.5 / l)
        for jn in range(nn):
            qd = Q[h1 + l - 1, jn]
            Q[hl + l - 1, jn] = t * qd * uz[jn]
            dQ[hl + l - 1, jn] = t * qd
            Q[hl + l, jn] = s * qd
            dQ[hl + l, jn] = 0.0
    for m in range(1, lmax + 1):
        for jn in range(nn):
            pr = ph_re[m - 1, jn]
            pi = ph_im[m - 1, jn]
            ph_re[m, jn] = pr * ux[jn] - pi * uy[jn]
            ph_im[m, jn] = pr * uy[jn] + pi * ux[jn]
    # ---------- atomic base A_{mu n l m}, rank-1 densities, core
    for p in range(ndensity_max):
        s = 0.0
        Sp = S[p, :nn]
        for k in range(nn):
            s += Sp[k]
        rho1[p] = s
    rho_core = 0.0
    Sc = S[col_core, :nn]
    for k in range(nn):
        rho_core += Sc[k]
    for mu in range(nel):
        s0 = segment[mu]
        s1 = segment[mu + 1]
        ns = s1 - s0              # zero-based loops over slices: numba's negative-index
        for l in range(lmax + 1): # handling of s0 + k would stop the vectorisation
            for m in range(l + 1):
                h = l * (l + 1) // 2 + m
                Qh = Q[h, s0:s1]
                cre = ph_re[m, s0:s1]
                cim = ph_im[m, s0:s1]
                for k in range(ns):
                    y_re[k] = Qh[k] * cre[k]
                    y_im[k] = Qh[k] * cim[k]
                for n in range(nradmax):
                    Rq = S[col_rnl + n * (lmax + 1) + l, s0:s1]
                    sr = 0.0
                    si = 0.0
                    for k in range(ns):
                        sr += Rq[k] * y_re[k]
                        si += Rq[k] * y_im[k]
                    ctr = (mu * nradmax + n) * nlm + l * l + l
                    A_re[ctr + m, b] = sr
                    A_im[ctr + m, b] = si
                    if m > 0:
                        sign = -1.0 if m % 2 else 1.0
                        A_re[ctr - m, b] = sign * sr
                        A_im[ctr - m, b] = -sign * si
    return rho_core


@njit(cache=True, fastmath=True, error_model='numpy')
def _site_forces(i, nn, nel, nradmax, lmax, ndensity_max, nd, dF, dE_drho_core, jmin, dE_dfcut_nearest,
                 nb_index, nb_r, nb_u, S, dS, Q, dQ, ph_re, ph_im, segment, W_re, W_im, b,
                 rad, gx_, gy_, gz_, p_re, p_im, pd_re, pd_im,
                 forces, virial, site_virial, want_site_virial):
    """Pair gradients g_ij = dE_i/dr_ij of one atom, forces and virial.

    Radial part sum_h Re(PD_h Y_h) plus the rank-1 and core terms; tangential part
    (G - (u.G) u)/r with G = sum_h Re(P_h grad Y_h) of Y's polynomial extension,
    P_h = sum_n W_nh R_nl and PD_h = sum_n W_nh dR_nl (W folded to m >= 0).
    """
    nlm = (lmax + 1) * (lmax + 1)
    nrl = nradmax * (lmax + 1)
    col_rnl = ndensity_max
    col_core = ndensity_max + nrl
    ux = nb_u[0]
    uy = nb_u[1]
    uz = nb_u[2]
    dSc = dS[col_core, :nn]
    for k in range(nn):
        rad[k] = dE_drho_core * dSc[k]
        gx_[k] = 0.0
        gy_[k] = 0.0
        gz_[k] = 0.0
    for p in range(nd):
        dFp = dF[p, b]
        dSp = dS[p, :nn]
        for k in range(nn):
            rad[k] += dFp * dSp[k]
    if jmin >= 0:
        rad[jmin] += dE_dfcut_nearest
    for mu in range(nel):
        s0 = segment[mu]
        s1 = segment[mu + 1]
        ns = s1 - s0
        if ns == 0:
            continue
        rd = rad[s0:s1]
        gx_s = gx_[s0:s1]
        gy_s = gy_[s0:s1]
        gz_s = gz_[s0:s1]
        for l in range(lmax + 1):
            for m in range(l + 1):
                h = l * (l + 1) // 2 + m
                for k in range(ns):
                    p_re[k] = 0.0
                    p_im[k] = 0.0
                    pd_re[k] = 0.0
                    pd_im[k] = 0.0
                for n in range(nradmax):
                    idx = (mu * nradmax + n) * nlm + l * l + l + m
                    wr = W_re[idx, b]
                    wi = W_im[idx, b]
                    if wr == 0.0 and wi == 0.0:
                        continue
                    q = col_rnl + n * (lmax + 1) + l
                    Rq = S[q, s0:s1]
                    dRq = dS[q, s0:s1]
                    for k in range(ns):
                        p_re[k] += wr * Rq[k]
                        p_im[k] += wi * Rq[k]
                        pd_re[k] += wr * dRq[k]
                        pd_im[k] += wi * dRq[k]
                Qh = Q[h, s0:s1]
                dQh = dQ[h, s0:s1]
                cre = ph_re[m, s0:s1]
                cim = ph_im[m, s0:s1]
                if m > 0:
                    mm = float(m)
                    bre = ph_re[m - 1, s0:s1]
                    bim = ph_im[m - 1, s0:s1]
                    for k in range(ns):
                        qh = Qh[k]
                        cr = cre[k]
                        ci = cim[k]
                        rd[k] += qh * (pd_re[k] * cr - pd_im[k] * ci)
                        gz_s[k] += dQh[k] * (p_re[k] * cr - p_im[k] * ci)
                        mq = mm * qh
                        br = bre[k]
                        bi = bim[k]
                        gx_s[k] += mq * (p_re[k] * br - p_im[k] * bi)
                        gy_s[k] -= mq * (p_re[k] * bi + p_im[k] * br)
                else:
                    for k in range(ns):
                        rd[k] += Qh[k] * pd_re[k]
                        gz_s[k] += dQh[k] * p_re[k]
    for jn in range(nn):
        r = nb_r[jn]
        inv_r = 1.0 / r
        u0 = ux[jn]
        u1 = uy[jn]
        u2 = uz[jn]
        Gx = gx_[jn]
        Gy = gy_[jn]
        Gz = gz_[jn]
        uG = u0 * Gx + u1 * Gy + u2 * Gz
        rdj = rad[jn]
        gx = rdj * u0 + (Gx - uG * u0) * inv_r
        gy = rdj * u1 + (Gy - uG * u1) * inv_r
        gz = rdj * u2 + (Gz - uG * u2) * inv_r
        j = nb_index[jn]
        forces[i, 0] += gx
        forces[i, 1] += gy
        forces[i, 2] += gz
        forces[j, 0] -= gx
        forces[j, 1] -= gy
        forces[j, 2] -= gz
        r3 = (r * u0, r * u1, r * u2)
        g3 = (gx, gy, gz)
        for a_ in range(3):
            for b_ in range(3):
                virial[a_, b_] -= r3[a_] * g3[b_]
        if want_site_virial:
            for a_ in range(3):
                for b_ in range(3):
                    wab = -0.5 * r3[a_] * g3[b_]
                    site_virial[i, a_, b_] += wab
                    site_virial[j, a_, b_] += wab


@njit(cache=True, fastmath=True, error_model='numpy')
def ace_forces(positions, species, n_local, offsets, neighbors,
               nradmax, lmax, ndensity_max, is_zbl, cutoff_max,
               force_tables, spline_nlut, spline_scale,
               bond_rcut, bond_cut_in, bond_dcut_in,
               ndensity, embedding_kind, fs_parameters, rho_core_cut, drho_core_cut, E0,
               node_offsets, node_parent, node_factor, node_coef,
               ylm_a, ylm_b,
               site_energy, forces, virial, site_virial, want_site_virial, stop_after):
    """Fill site_energy[:n_local] (eV), add forces (eV/Å) and virial (eV).

    ``force_tables`` (nbonds, nlut+1, ndensity_max + nradmax*(lmax+1) + 1, 4)
    holds per bond the rank-1 part of each density as one radial function (the
    rank-1 coefficients folded into the spline coefficients: rank-1 functions are
    linear in A1), then R_nl, then the core repulsion.  Atoms of one element go
    through the product tree BATCH at a time.  ``virial`` (3, 3) accumulates
    W = sum_atoms x (x) f; ``site_virial`` (n_ext, 3, 3) gets each pair's share
    split half to each atom, as LAMMPS does, if ``want_site_virial`` (otherwise
    it is not touched and may be a dummy array: MD needs only the total).
    ``stop_after`` is STAGE_ALL except in the profiling mode
    (``acemd.potential.profile``), which stops after an earlier stage.  Returns
    (status, atom, neighbour): status TOO_CLOSE when a pair is closer than one
    spline bin.
    """
    nel = E0.shape[0]
    nlm = (lmax + 1) * (lmax + 1)
    nlm_half = (lmax + 1) * (lmax + 2) // 2
    nfunc = force_tables.shape[2]
    nA = nel * nradmax * nlm

    max_neigh = max_row_length(offsets, n_local)
    max_nodes = max_row_length(node_offsets, nel)
    (nb_index, nb_mu, nb_r, nb_u, S, dS, Q, dQ, ph_re, ph_im,
     segment) = site_buffers(BATCH, max_neigh, nfunc, nlm_half, lmax, nel)
    nn_of = np.zeros(BATCH, np.int64)
    jmin_of = np.zeros(BATCH, np.int64)
    dmin_of = np.zeros(BATCH)
    rho_core_of = np.zeros(BATCH)
    dE_drho_core_of = np.zeros(BATCH)      # after the embedding: dE/d(rho_core)
    dE_dnearest_of = np.zeros(BATCH)       # ZBL only: dE/d(nearest-neighbour distance)
    A_re = np.zeros((nA, BATCH))
    A_im = np.zeros((nA, BATCH))
    W_re = np.zeros((nA, BATCH))   # dE/dA, folded to m >= 0
    W_im = np.zeros((nA, BATCH))
    v_re = np.empty((max_nodes, BATCH))
    v_im = np.empty((max_nodes, BATCH))
    adj_re = np.empty((max_nodes, BATCH))
    adj_im = np.empty((max_nodes, BATCH))
    rho = np.zeros((max(ndensity_max, 2), BATCH))    # >= 2 rows: see tree_batch
    dF = np.zeros((max(ndensity_max, 2), BATCH))
    rho1 = np.zeros(ndensity_max)
    scratch = np.empty((4, max_neigh))
    y_re = np.empty(max_neigh)
    y_im = np.empty(max_neigh)
    acc = np.empty((8, max_neigh))
    batch_atoms = np.empty(BATCH, np.int64)
    # local atoms grouped by element: a batch shares one product tree
    order = np.argsort(species[:n_local], kind="mergesort")

    start = 0
    while start < n_local:
        mu_i = species[order[start]]
        nb = 0
        while nb < BATCH and start + nb < n_local and species[order[start + nb]] == mu_i:
            batch_atoms[nb] = order[start + nb]
            nb += 1
        start += nb
        nd = ndensity[mu_i]
        # ---------- per atom: neighbours, splines, harmonics, atomic base
        for b in range(BATCH):
            if b >= nb:       # unused columns of a short batch: zero A, no work
                for a in range(nA):
                    A_re[a, b] = 0.0
                    A_im[a, b] = 0.0
                continue
            i = batch_atoms[b]
            nn, jbad = _gather_neighbours(i, positions, species, offsets, neighbors, nel, spline_scale,
                                          bond_rcut, nb_index[b], nb_mu[b], nb_r[b], nb_u[b], scratch,
                                          segment[b])
            if jbad >= 0:
                return TOO_CLOSE, i, jbad
            nn_of[b] = nn
            rho_core_of[b] = _site_base(mu_i, nn, nel, nradmax, lmax, ndensity_max, force_tables,
                                        spline_nlut, spline_scale, ylm_a, ylm_b, nb_mu[b], nb_r[b],
                                        nb_u[b], S[b], dS[b], Q[b], dQ[b], ph_re[b], ph_im[b],
                                        segment[b], y_re, y_im, A_re, A_im, b, rho1)
            for p in range(ndensity_max):
                rho[p, b] = rho1[p]
            dmin = cutoff_max
            jmin = -1
            if is_zbl:
                for jn in range(nn):
                    bond = mu_i * nel + nb_mu[b, jn]
                    d = nb_r[b, jn] - (bond_cut_in[bond] - bond_dcut_in[bond])
                    if d < dmin:
                        dmin = d
                        jmin = jn
            dmin_of[b] = dmin
            jmin_of[b] = jmin
        if stop_after < STAGE_FORWARD:
            continue

        # ---------- densities: the product tree over the batch
        n0 = node_offsets[mu_i]
        n1 = node_offsets[mu_i + 1]
        tree_forward(n0, n1, nd, node_parent, node_factor, node_coef, A_re, A_im, v_re, v_im, rho)

        # ---------- embedding and energy cutoffs, per atom
        for b in range(nb):
            i = batch_atoms[b]
            rho_core = rho_core_of[b]
            evdwl = 0.0
            for p in range(nd):
                F, dFp = _embedding(embedding_kind[mu_i], rho[p, b], fs_parameters[mu_i, p, 1])
                evdwl += fs_parameters[mu_i, p, 0] * F
                dF[p, b] = fs_parameters[mu_i, p, 0] * dFp
            if is_zbl:
                jmin = jmin_of[b]
                if jmin >= 0:
                    bmin = mu_i * nel + nb_mu[b, jmin]
                    dcin = bond_dcut_in[bmin]
                    fcut, dfc = _poly_switch(dcin - dmin_of[b], dcin, dcin)
                    dfcut = -dfc
                else:
                    fcut = 1.0
                    dfcut = 0.0
                e_site = evdwl * fcut + rho_core * (1.0 - fcut)
                dE_drho_core_of[b] = 1.0 - fcut
                dE_dnearest_of[b] = (evdwl - rho_core) * dfcut
            else:
                rc = rho_core_cut[mu_i]
                drc = drho_core_cut[mu_i]
                if rho_core >= rc:
                    fcut = 0.0
                    dfcut = 0.0
                elif rho_core <= rc - drc:
                    fcut = 1.0
                    dfcut = 0.0
                else:
                    fcut, dfcut = _poly_switch(rho_core, rc, drc)
                e_site = evdwl * fcut + rho_core
                dE_drho_core_of[b] = evdwl * dfcut + 1.0
                dE_dnearest_of[b] = 0.0
            for p in range(nd):
                dF[p, b] *= fcut
            site_energy[i] = e_site + E0[mu_i]
        for b in range(nb, BATCH):
            for p in range(nd):
                dF[p, b] = 0.0
        for p in range(ndensity_max):
            for b in range(BATCH):
                rho[p, b] = 0.0
        if stop_after < STAGE_BACKWARD:
            continue

        # ---------- backward: dE/dA through the tree, then the -m fold
        W_re[:] = 0.0
        W_im[:] = 0.0
        tree_backward(n0, n1, nd, node_parent, node_factor, node_coef, A_re, A_im, v_re, v_im,
                      dF, adj_re, adj_im, W_re, W_im)
        # dE/dA_{l,-m} onto m > 0: A_{l,-m} = (-1)^m conj(A_{l,m})
        for mu in range(nel):
            for n in range(nradmax):
                base = (mu * nradmax + n) * nlm
                for l in range(1, lmax + 1):
                    ctr = base + l * l + l
                    sign = -1.0
                    for m in range(1, l + 1):
                        for b in range(BATCH):
                            W_re[ctr + m, b] += sign * W_re[ctr - m, b]
                            W_im[ctr + m, b] -= sign * W_im[ctr - m, b]
                        sign = -sign
        if stop_after < STAGE_ALL:
            continue

        # ---------- pair gradients, forces and virial, per atom
        for b in range(nb):
            jmin = jmin_of[b]
            if not is_zbl:
                jmin = -1
            _site_forces(batch_atoms[b], nn_of[b], nel, nradmax, lmax, ndensity_max, nd, dF,
                         dE_drho_core_of[b], jmin, dE_dnearest_of[b],
                         nb_index[b], nb_r[b], nb_u[b], S[b], dS[b], Q[b], dQ[b], ph_re[b], ph_im[b],
                         segment[b], W_re, W_im, b, acc[0], acc[1], acc[2], acc[3],
                         acc[4], acc[5], acc[6], acc[7], forces, virial, site_virial, want_site_virial)
    return OK, -1, -1
