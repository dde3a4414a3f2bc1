"""Numba kernel: ACE site energies, forces and virial over a neighbour list.

Input is an *extended* atom set: ``n_local`` atoms whose energies are wanted,
followed by ghost atoms (periodic images or atoms of other MPI subdomains) that
only serve as neighbours.  The CSR neighbour list (``offsets``, ``neighbors``)
gives, for each local atom, indices into the extended set.  Forces are returned
on all extended atoms; the caller adds ghost forces to their owners.

Per atom i the kernel
  1. (``atomic_base``, shared with the active-set projections) evaluates the splined radial functions and complex spherical harmonics of
     every neighbour within the bond cutoff and accumulates the atomic base
     A_{mu n l m} (and the rank-1 base A1_{mu k});
  2. runs the product tree forward to get the densities rho_p, applies the
     embedding, the core-repulsion energy cutoff (or the ZBL switch);
  3. runs the tree backward to get dE_i/dA, folds the -m half onto m >= 0 and
     sums per neighbour the pair gradient dE_i/dr_ij.
All work arrays are allocated once per call and reused for every atom.
"""
from __future__ import annotations

import numpy as np
from numba import njit

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


@njit(cache=True)
def neighbour_buffers(max_neigh, nradbase, nrl, nlm_half):
    """Per-neighbour caches of one atom: index, species, r, unit vector, g_k, dg_k,
    R_nl, dR_nl, d(core)/dr, Y_lm (m >= 0) and the x and z derivatives of the
    polynomial extension of Y_lm (the y derivative is i times the x one); the
    force pass projects their contraction on the sphere once per pair."""
    return (np.empty(max_neigh, np.int64), np.empty(max_neigh, np.int64), np.empty(max_neigh),
            np.empty((max_neigh, 3)), np.empty((max_neigh, nradbase)),
            np.empty((max_neigh, nradbase)), np.empty((max_neigh, nrl)),
            np.empty((max_neigh, nrl)), np.empty(max_neigh),
            np.empty((max_neigh, nlm_half), np.complex128),
            np.empty((max_neigh, nlm_half, 2), np.complex128))


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


@njit(cache=True, fastmath=True, error_model='numpy')
def atomic_base(i, positions, species, offsets, neighbors, nel,
                nradbase, nradmax, lmax, is_zbl, cutoff_max,
                spline_tables, spline_nlut, spline_scale,
                bond_rcut, bond_cut_in, bond_dcut_in, ylm_a, ylm_b,
                nb_index, nb_mu, nb_r, nb_hat, nb_g, nb_dg, nb_R, nb_dR, nb_dcore, nb_Y, nb_dY,
                A, A1, Q, dQ, phase, spl, dspl):
    """Atomic base of atom i: fills A (all m) and A1, and the per-neighbour caches.

    Shared by the force kernel and the active-set projections
    (``acemd.potential.extrapolation``).  For each neighbour within its bond
    cutoff (nn of them, in list order) it stores the index, element, distance,
    unit vector, radial functions g_k, R_nl and their derivatives, the core
    repulsion derivative, and the harmonics Y_lm (m >= 0) with their gradients.
    Returns (status, bad_neighbour, nn, rho_core, dmin, jmin): status TOO_CLOSE
    (with the neighbour) when a pair is closer than one spline bin; dmin/jmin
    locate the nearest neighbour relative to its ZBL switch (is_zbl only).
    """
    nlm = (lmax + 1) * (lmax + 1)
    nrl = nradmax * (lmax + 1)
    nfunc = spline_tables.shape[2]
    col_rnl = nradbase
    col_core = nradbase + nrl
    sqrt3 = np.sqrt(3.0)
    mu_i = species[i]
    xi = positions[i, 0]
    yi = positions[i, 1]
    zi = positions[i, 2]
    A[:] = 0.0
    A1[:] = 0.0
    rho_core = 0.0
    dmin = cutoff_max
    jmin = -1
    nn = 0
    # ---------- neighbours: radial splines, harmonics, atomic base
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
        xs = r * spline_scale[bond]
        nl = int(np.floor(xs))
        if nl <= 0:
            return TOO_CLOSE, j, 0, 0.0, 0.0, -1
        if is_zbl:
            d = r - (bond_cut_in[bond] - bond_dcut_in[bond])
            if d < dmin:
                dmin = d
                jmin = nn
        inv_r = 1.0 / r
        ux = dx * inv_r
        uy = dy * inv_r
        uz = dz * inv_r
        nb_index[nn] = j
        nb_mu[nn] = mu_j
        nb_r[nn] = r
        nb_hat[nn, 0] = ux
        nb_hat[nn, 1] = uy
        nb_hat[nn, 2] = uz
        # cubic Hermite interpolation of all radial functions
        if nl < spline_nlut[bond]:
            w = xs - nl
            w2 = w * w
            w3 = w2 * w
            sc = spline_scale[bond]
            for f in range(nfunc):
                c0 = spline_tables[bond, nl, f, 0]
                c1 = spline_tables[bond, nl, f, 1]
                c2 = spline_tables[bond, nl, f, 2]
                c3 = spline_tables[bond, nl, f, 3]
                spl[f] = c0 + c1 * w + c2 * w2 + c3 * w3
                dspl[f] = (c1 + 2.0 * c2 * w + 3.0 * c3 * w2) * sc
        else:
            spl[:] = 0.0
            dspl[:] = 0.0
        for k in range(nradbase):
            nb_g[nn, k] = spl[k]
            nb_dg[nn, k] = dspl[k]
            A1[mu_j * nradbase + k] += spl[k]
        for q in range(nrl):
            nb_R[nn, q] = spl[col_rnl + q]
            nb_dR[nn, q] = dspl[col_rnl + q]
        rho_core += spl[col_core]
        nb_dcore[nn] = dspl[col_core]
        # complex harmonics Y_lm = Q_lm(z) (x + i y)^m, Y_00 = 1
        Q[0, 0] = 1.0
        dQ[0, 0] = 0.0
        if lmax > 0:
            Q[1, 0] = sqrt3 * uz
            dQ[1, 0] = sqrt3
            Q[1, 1] = -np.sqrt(1.5)
            dQ[1, 1] = 0.0
        for l in range(2, lmax + 1):
            for m in range(0, l - 1):
                a = ylm_a[l, m]
                b = ylm_b[l, m]
                Q[l, m] = a * (uz * Q[l - 1, m] - b * Q[l - 2, m])
                dQ[l, m] = a * (Q[l - 1, m] + uz * dQ[l - 1, m] - b * dQ[l - 2, m])
            t = np.sqrt(2.0 * l + 1.0) * Q[l - 1, l - 1]
            Q[l, l - 1] = t * uz
            dQ[l, l - 1] = t
            Q[l, l] = -np.sqrt(1.0 + 0.5 / l) * Q[l - 1, l - 1]
            dQ[l, l] = 0.0
        phase[0] = 1.0
        xy = complex(ux, uy)
        for m in range(1, lmax + 1):
            phase[m] = phase[m - 1] * xy
        for l in range(lmax + 1):
            for m in range(l + 1):
                h = l * (l + 1) // 2 + m
                Y = Q[l, m] * phase[m]
                nb_Y[nn, h] = Y
                # gradient of the polynomial extension: d/dx, (d/dy = i d/dx), d/dz;
                # the force pass projects it on the sphere after contracting
                if m > 0:
                    nb_dY[nn, h, 0] = Q[l, m] * m * phase[m - 1]
                else:
                    nb_dY[nn, h, 0] = 0.0 + 0.0j
                nb_dY[nn, h, 1] = dQ[l, m] * phase[m]
        for n in range(nradmax):
            base = (mu_j * nradmax + n) * nlm
            for l in range(lmax + 1):
                R = nb_R[nn, n * (lmax + 1) + l]
                if R == 0.0:
                    continue
                ctr = base + l * l + l
                h0 = l * (l + 1) // 2
                for m in range(l + 1):
                    A[ctr + m] += R * nb_Y[nn, h0 + m]
        nn += 1
    # negative m from the conjugation symmetry of the harmonics
    for mu in range(nel):
        for n in range(nradmax):
            base = (mu * nradmax + n) * nlm
            for l in range(1, lmax + 1):
                ctr = base + l * l + l
                sign = -1.0
                for m in range(1, l + 1):
                    A[ctr - m] = sign * A[ctr + m].conjugate()
                    sign = -sign
    return OK, -1, nn, rho_core, dmin, jmin


# stages of ``ace_forces``: the profiling mode stops each atom after one of them
STAGE_BASE = 1        # per-neighbour work: splines, harmonics, atomic base A
STAGE_FORWARD = 2     # + product tree forward, embedding, energy cutoffs
STAGE_BACKWARD = 3    # + product tree backward (dE/dA) and the -m fold
STAGE_ALL = 4         # + pair gradients, forces and virial (the normal kernel)


@njit(cache=True, fastmath=True, error_model='numpy')
def ace_forces(positions, species, n_local, offsets, neighbors,
               nradbase, nradmax, lmax, ndensity_max, is_zbl, cutoff_max,
               spline_tables, spline_nlut, spline_scale,
               bond_rcut, bond_cut_in, bond_dcut_in,
               ndensity, embedding_kind, fs_parameters, rho_core_cut, drho_core_cut, E0,
               rank1_offsets, rank1_index, rank1_coef,
               node_offsets, node_parent, node_factor, node_coef,
               ylm_a, ylm_b,
               site_energy, forces, virial, site_virial, want_site_virial, stop_after):
    """Fill site_energy[:n_local] (eV), add forces (eV/Å) and virial (eV).

    ``virial`` (3, 3) accumulates W = sum_atoms x (x) f; ``site_virial``
    (n_ext, 3, 3) gets each pair's share split half to each atom, as LAMMPS
    does, if ``want_site_virial`` (otherwise it is not touched and may be a
    dummy array: MD needs only the total).  ``stop_after`` is STAGE_ALL except
    in the profiling mode (``acemd.potential.profile``), which stops every atom
    after an earlier stage and takes each stage's cost from the differences of
    the cumulative times.  Returns (status, atom, neighbour): status TOO_CLOSE
    when a pair is closer than one spline bin.
    """
    nel = E0.shape[0]
    nlm = (lmax + 1) * (lmax + 1)
    nlm_half = (lmax + 1) * (lmax + 2) // 2
    nrl = nradmax * (lmax + 1)
    nfunc = spline_tables.shape[2]

    max_neigh = max_row_length(offsets, n_local)
    max_nodes = max_row_length(node_offsets, nel)

    # per-neighbour caches
    (nb_index, nb_mu, nb_r, nb_hat, nb_g, nb_dg, nb_R, nb_dR, nb_dcore, nb_Y,
     nb_dY) = neighbour_buffers(max_neigh, nradbase, nrl, nlm_half)
    # per-atom work arrays
    A = np.zeros(nel * nradmax * nlm, np.complex128)
    A1 = np.zeros(nel * nradbase)
    W = np.zeros(nel * nradmax * nlm, np.complex128)   # dE/dA, folded to m >= 0
    W1 = np.zeros(nel * nradbase)
    node_val = np.empty(max_nodes, np.complex128)
    node_adj = np.empty(max_nodes, np.complex128)
    rho = np.zeros(ndensity_max)
    dF = np.zeros(ndensity_max)
    Q = np.zeros((lmax + 1, lmax + 1))
    dQ = np.zeros((lmax + 1, lmax + 1))
    phase = np.zeros(lmax + 1, np.complex128)
    spl = np.zeros(nfunc)
    dspl = np.zeros(nfunc)
    P = np.zeros(nlm_half, np.complex128)
    PD = np.zeros(nlm_half, np.complex128)

    for i in range(n_local):
        mu_i = species[i]
        status, jbad, nn, rho_core, dmin, jmin = atomic_base(
            i, positions, species, offsets, neighbors, nel,
            nradbase, nradmax, lmax, is_zbl, cutoff_max,
            spline_tables, spline_nlut, spline_scale,
            bond_rcut, bond_cut_in, bond_dcut_in, ylm_a, ylm_b,
            nb_index, nb_mu, nb_r, nb_hat, nb_g, nb_dg, nb_R, nb_dR, nb_dcore, nb_Y, nb_dY,
            A, A1, Q, dQ, phase, spl, dspl)
        if status != OK:
            return status, i, jbad
        if stop_after < STAGE_FORWARD:
            continue

        # ---------- densities: rank 1 and the product tree
        nd = ndensity[mu_i]
        rho[:] = 0.0
        for f in range(rank1_offsets[mu_i], rank1_offsets[mu_i + 1]):
            a1 = A1[rank1_index[f]]
            for p in range(nd):
                rho[p] += rank1_coef[f, p] * a1
        n0 = node_offsets[mu_i]
        n1 = node_offsets[mu_i + 1]
        if nd == 2:
            # densities in registers: an array element would chain every node
            # through a store and a load
            r0 = rho[0]
            r1 = rho[1]
            for q in range(n0, n1):
                par = node_parent[q]
                if par < 0:
                    v = A[node_factor[q]]
                else:
                    v = node_val[par - n0] * A[node_factor[q]]
                node_val[q - n0] = v
                vr = v.real
                r0 += node_coef[q, 0] * vr
                r1 += node_coef[q, 1] * vr
            rho[0] = r0
            rho[1] = r1
        else:
            for q in range(n0, n1):
                par = node_parent[q]
                if par < 0:
                    v = A[node_factor[q]]
                else:
                    v = node_val[par - n0] * A[node_factor[q]]
                node_val[q - n0] = v
                vr = v.real
                for p in range(nd):
                    rho[p] += node_coef[q, p] * vr

        # ---------- embedding and energy cutoffs
        evdwl = 0.0
        for p in range(nd):
            F, dFp = _embedding(embedding_kind[mu_i], rho[p], fs_parameters[mu_i, p, 1])
            evdwl += fs_parameters[mu_i, p, 0] * F
            dF[p] = fs_parameters[mu_i, p, 0] * dFp
        dE_dfcut_nearest = 0.0
        if is_zbl:
            if jmin >= 0:
                bmin = mu_i * nel + nb_mu[jmin]
                dcin = bond_dcut_in[bmin]
                fcut, dfc = _poly_switch(dcin - dmin, dcin, dcin)
                dfcut = -dfc
            else:
                fcut = 1.0
                dfcut = 0.0
            e_site = evdwl * fcut + rho_core * (1.0 - fcut)
            dE_drho_core = 1.0 - fcut
            dE_dfcut_nearest = (evdwl - rho_core) * dfcut
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
            dE_drho_core = evdwl * dfcut + 1.0
        for p in range(nd):
            dF[p] *= fcut
        site_energy[i] = e_site + E0[mu_i]
        if stop_after < STAGE_BACKWARD:
            continue

        # ---------- backward: dE/dA through the tree
        W[:] = 0.0
        W1[:] = 0.0
        for f in range(rank1_offsets[mu_i], rank1_offsets[mu_i + 1]):
            s = 0.0
            for p in range(nd):
                s += dF[p] * rank1_coef[f, p]
            W1[rank1_index[f]] += s
        # node adjoints: the node's own coefficients (added as it is reached)
        # plus what its children passed up (they come later in the table)
        node_adj[:n1 - n0] = 0.0
        dF0 = dF[0]
        dF1 = dF[1] if nd >= 2 else 0.0
        pending = 0.0 + 0.0j       # adjoint passed up by the current run of siblings
        cur = -1                   # their parent (siblings are consecutive in the table)
        for q in range(n1 - 1, n0 - 1, -1):
            par = node_parent[q]
            if par != cur:
                if cur >= 0:
                    node_adj[cur - n0] += pending
                pending = 0.0 + 0.0j
                cur = par
            if nd == 2:
                s = dF0 * node_coef[q, 0] + dF1 * node_coef[q, 1]
            else:
                s = 0.0
                for p in range(nd):
                    s += dF[p] * node_coef[q, p]
            g = node_adj[q - n0] + s
            if g == 0.0:
                continue
            fa = node_factor[q]
            if par < 0:
                W[fa] += g
            else:
                W[fa] += g * node_val[par - n0]
                pending += g * A[fa]
        if cur >= 0:
            node_adj[cur - n0] += pending
        # fold dE/dA_{l,-m} onto m > 0: A_{l,-m} = (-1)^m conj(A_{l,m})
        for mu in range(nel):
            for n in range(nradmax):
                base = (mu * nradmax + n) * nlm
                for l in range(1, lmax + 1):
                    ctr = base + l * l + l
                    sign = -1.0
                    for m in range(1, l + 1):
                        W[ctr + m] += sign * W[ctr - m].conjugate()
                        sign = -sign
        if stop_after < STAGE_ALL:
            continue

        # ---------- pair gradients g_ij = dE_i / dr_ij
        for jn in range(nn):
            mu_j = nb_mu[jn]
            r = nb_r[jn]
            inv_r = 1.0 / r
            ux = nb_hat[jn, 0]
            uy = nb_hat[jn, 1]
            uz = nb_hat[jn, 2]
            radial_part = 0.0
            for k in range(nradbase):
                radial_part += W1[mu_j * nradbase + k] * nb_dg[jn, k]
            radial_part += dE_drho_core * nb_dcore[jn]
            if is_zbl and jn == jmin:
                radial_part += dE_dfcut_nearest
            P[:] = 0.0
            PD[:] = 0.0
            for n in range(nradmax):
                base = (mu_j * nradmax + n) * nlm
                for l in range(lmax + 1):
                    R = nb_R[jn, n * (lmax + 1) + l]
                    dR = nb_dR[jn, n * (lmax + 1) + l]
                    ctr = base + l * l + l
                    h0 = l * (l + 1) // 2
                    for m in range(l + 1):
                        wv = W[ctr + m]
                        P[h0 + m] += wv * R
                        PD[h0 + m] += wv * dR
            # sum_h Re(PD_h Y_h) along u, plus the tangential part: with g_h the
            # gradient of Y_h's polynomial extension, sum_h Re(P_h (g_h - (u.g_h) u)) / r
            # = (G - (u.G) u) / r for G = sum_h Re(P_h g_h), G_y = -sum_h Im(P_h g_x,h)
            rad = radial_part
            Gx = 0.0
            Gy = 0.0
            Gz = 0.0
            for h in range(nlm_half):
                y = nb_Y[jn, h]
                pd = PD[h]
                pp = P[h]
                d0 = nb_dY[jn, h, 0]
                d2 = nb_dY[jn, h, 1]
                rad += pd.real * y.real - pd.imag * y.imag
                Gx += pp.real * d0.real - pp.imag * d0.imag
                Gy -= pp.real * d0.imag + pp.imag * d0.real
                Gz += pp.real * d2.real - pp.imag * d2.imag
            uG = ux * Gx + uy * Gy + uz * Gz
            gx = rad * ux + (Gx - uG * ux) * inv_r
            gy = rad * uy + (Gy - uG * uy) * inv_r
            gz = rad * uz + (Gz - uG * uz) * inv_r
            j = nb_index[jn]
            forces[i, 0] += gx
            forces[i, 1] += gy
            forces[i, 2] += gz
            forces[j, 0] -= gx
            forces[j, 1] -= gy
            forces[j, 2] -= gz
            rvec0 = r * ux
            rvec1 = r * uy
            rvec2 = r * uz
            g3 = (gx, gy, gz)
            r3 = (rvec0, rvec1, rvec2)
            for a_ in range(3):
                for b_ in range(3):
                    wab = -r3[a_] * g3[b_]
                    virial[a_, b_] += wab
            if want_site_virial:
                for a_ in range(3):
                    for b_ in range(3):
                        wab = -r3[a_] * g3[b_]
                        site_virial[i, a_, b_] += 0.5 * wab
                        site_virial[j, a_, b_] += 0.5 * wab
    return OK, -1, -1
