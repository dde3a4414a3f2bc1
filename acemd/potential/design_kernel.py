"""Numba pass: design rows of a linear B-basis potential (energy, force and virial rows).

For a potential whose embedding is linear, E_i = s_i w Σ_k c_k B_k(i) + (terms free
of c), where w is the embedding weight and s_i the per-atom energy switch (the
core-repulsion cutoff on rho_core, or the ZBL switch on the nearest neighbour;
1 for most atoms).  The fit needs, per structure and per B-function k, the
energy row Σ_i s_i w B_k(i), the force rows -∂/∂x_oα of it on every atom o, and
the virial rows.

Per local atom i the pass reuses the force kernel's per-atom work
(``kernel._gather_neighbours``, ``kernel._site_base``) and then
  1. folds the pair derivatives of the atomic base, ∂A_{mu n l m}/∂r_ij for m >= 0,
     over the *owners* of the neighbours: the derivative of i's basis with respect
     to an atom o != i is the sum over o's images (one "slot" of 3 columns), and
     with respect to i itself minus the sum over the slots (translation
     invariance; i's own images drop out).  A small cell with a few atoms thus has
     a few slots however many images surround i.  Before the slots, the virial
     Σ_j r_ij ⊗ ∂A/∂r_ij (6 Voigt components) of every pair;
  2. runs the B-functions' products (sorted factor tuples, shared between
     functions) to get B_k(i) and the sparse gradient W_ka = ∂B_k/∂A_a, the
     -m factors folded onto m >= 0 through A_{l,-m} = (-1)^m conj(A_{l,m}), the
     duplicates per (k, a) merged into one entry;
  3. per function k, sums Re(W_ka D_a) over its few entries a, one pass over the
     slot columns, and adds the result to the force and virial rows of the
     owners.
Rank-1 functions B = Σ_j g_n(r_ij) have their own derivative channels (real).

Sign conventions are the force kernel's: ``force_rows`` hold -∂E/∂x (forces),
``virial_rows`` W = -Σ_pairs r_ij ⊗ ∂E/∂r_ij (kernel's virial, symmetrised),
so that the ASE stress is -W/V.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .kernel import OK, TOO_CLOSE, _gather_neighbours, _poly_switch, _site_base, max_row_length, site_buffers
from .tables import lm_of

__all__ = ["DesignTables", "build_design_tables", "design_rows_kernel"]


@dataclass
class DesignTables:
    """Flat tables of the design-row pass for one B-basis potential.

    Columns: all elements' B-functions in one space, element mu at
    ``col_offsets[mu]`` in the order of ``model.bbasis[mu]``.  Derivative
    channels: folded A (m >= 0) ``(mu_j*nradmax + n)*nlm_half + l(l+1)/2 + m``,
    then the rank-1 channels ``n_a_channels + mu_j*nradbase + n``.
    """

    ncols: int
    col_offsets: np.ndarray      # (nel+1,) first column of each element's functions
    n_a_channels: int            # nel * nradmax * nlm_half
    n_channels: int              # + nel * nradbase rank-1 channels
    max_rank: int
    wnz_offsets: np.ndarray      # (ncols+1,) CSR: the channels each function touches
    wnz_channel: np.ndarray
    r1_offsets: np.ndarray       # (nel+1,) rank-1 functions per element
    r1_col: np.ndarray           # global column
    r1_entry: np.ndarray         # its single W entry
    r1_a1: np.ndarray            # flat index mu_j * nradbase + n of A1 = Σ_j g_n
    prod_offsets: np.ndarray     # (nel+1,) distinct products per element
    fac_offsets: np.ndarray      # (nprod+1,) CSR factors of each product
    fac_index: np.ndarray        # flat full A index (mu_j*nradmax + n)*(lmax+1)^2 + l*l + l + m
    leaf_offsets: np.ndarray     # (ncols+1,) CSR per column: the products of B_k = sum c Re(P)
    leaf_prod: np.ndarray        # product index
    leaf_coef: np.ndarray        # coefficient c
    contrib_offsets: np.ndarray  # (n entries+1,) CSR per W entry: W = sum of coefficient x partial
    contrib_factor: np.ndarray   # flat factor position: the partial product without that factor
    contrib_re: np.ndarray       # coefficient of the partial product's real part
    contrib_im: np.ndarray       # ... and of its imaginary part (sign flips fold -m onto m; 0 for m = 0)

    def kernel_args(self):
        return (self.col_offsets, self.n_a_channels, self.n_channels, self.max_rank,
                self.wnz_offsets, self.wnz_channel, self.r1_offsets, self.r1_col, self.r1_entry,
                self.r1_a1, self.prod_offsets, self.fac_offsets, self.fac_index, self.leaf_offsets,
                self.leaf_prod, self.leaf_coef, self.contrib_offsets, self.contrib_factor,
                self.contrib_re, self.contrib_im)


def _decode(a: int, nlm: int, nlm_half: int) -> tuple[int, int]:
    """(folded channel, m) of a full flat A index."""
    block, off = divmod(a, nlm)
    l, m = lm_of(off)
    return block * nlm_half + l * (l + 1) // 2 + abs(m), m


def build_design_tables(model, tables) -> DesignTables:
    """Design-pass tables of a B-basis ``CTildePotential`` (``tables``: its KernelTables)."""
    if model.bbasis is None:
        raise ValueError(f"{model.source or 'the potential'} has no B-basis (C-tilde .yace/.ace): "
                         "design rows need pacemaker's B-basis .yaml")
    nel = model.nelements
    nradbase, nradmax, lmax = tables.nradbase, tables.nradmax, tables.lmax
    nlm = (lmax + 1) ** 2
    nlm_half = (lmax + 1) * (lmax + 2) // 2
    n_a = nel * nradmax * nlm_half
    n_ch = n_a + nel * nradbase
    col_offsets = np.zeros(nel + 1, dtype=np.int64)
    for mu in range(nel):
        col_offsets[mu + 1] = col_offsets[mu] + len(model.bbasis[mu])
    ncols = int(col_offsets[-1])

    wnz_offsets, wnz_channel = [0], []
    r1_offsets, r1_col, r1_entry, r1_a1 = [0], [], [], []
    prod_offsets, fac_offsets, fac_index = [0], [0], []
    leaf_list = []      # (column, product, coefficient)
    contrib_list = []   # (W entry, flat factor position, re coefficient, im coefficient)
    max_rank = 1
    for mu in range(nel):
        products: dict[tuple, dict[int, float]] = {}
        entry_of: dict[int, dict[int, int]] = {}
        for k, f in enumerate(model.bbasis[mu]):
            col = int(col_offsets[mu]) + k
            if f.rank == 1:
                ch = n_a + f.mus[0] * nradbase + f.ns[0] - 1
                r1_col.append(col)
                r1_entry.append(len(wnz_channel))
                r1_a1.append(f.mus[0] * nradbase + f.ns[0] - 1)
                wnz_channel.append(ch)
                wnz_offsets.append(len(wnz_channel))
                continue
            max_rank = max(max_rank, f.rank)
            base = [(f.mus[t] * nradmax + f.ns[t] - 1) * nlm + f.ls[t] * f.ls[t] + f.ls[t]
                    for t in range(f.rank)]
            channels = set()
            for ms, c in zip(f.ms_combs.tolist(), f.gen_cgs.tolist()):
                if c == 0.0:
                    continue
                key = tuple(sorted(base[t] + ms[t] for t in range(f.rank)))
                leaves = products.setdefault(key, {})
                leaves[col] = leaves.get(col, 0.0) + c
                channels.update(_decode(a, nlm, nlm_half)[0] for a in key)
            entry_of[col] = {}
            for ch in sorted(channels):
                entry_of[col][ch] = len(wnz_channel)
                wnz_channel.append(ch)
            wnz_offsets.append(len(wnz_channel))
        r1_offsets.append(len(r1_col))
        for key in sorted(products):
            p = len(fac_offsets) - 1
            f0 = len(fac_index)
            fac_index.extend(key)
            fac_offsets.append(len(fac_index))
            decoded = [_decode(a, nlm, nlm_half) for a in key]
            for col, c in sorted(products[key].items()):
                leaf_list.append((col, p, c))
                for t, (ch, m) in enumerate(decoded):
                    e = entry_of[col][ch]
                    if m < 0:       # Re(W dA_{l,-m}) = Re((-1)^m conj(W) dA_{l,m})
                        s = -1.0 if m % 2 else 1.0
                        contrib_list.append((e, f0 + t, c * s, -c * s))
                    else:           # m = 0: A and dA are real, Im W is never used
                        contrib_list.append((e, f0 + t, c, c if m > 0 else 0.0))
        prod_offsets.append(len(fac_offsets) - 1)
    i64 = np.int64
    # gather form: leaves grouped by column, contributions by W entry (no scattered updates)
    leaf_list.sort(key=lambda x: x[0])
    contrib_list.sort(key=lambda x: x[0])
    leaf_offsets = np.searchsorted(np.array([x[0] for x in leaf_list], i64), np.arange(ncols + 1))
    contrib_offsets = np.searchsorted(np.array([x[0] for x in contrib_list], i64),
                                      np.arange(len(wnz_channel) + 1))
    return DesignTables(
        ncols=ncols, col_offsets=col_offsets, n_a_channels=n_a, n_channels=n_ch, max_rank=max_rank,
        wnz_offsets=np.array(wnz_offsets, i64), wnz_channel=np.array(wnz_channel, i64),
        r1_offsets=np.array(r1_offsets, i64), r1_col=np.array(r1_col, i64),
        r1_entry=np.array(r1_entry, i64), r1_a1=np.array(r1_a1, i64),
        prod_offsets=np.array(prod_offsets, i64), fac_offsets=np.array(fac_offsets, i64),
        fac_index=np.array(fac_index, i64), leaf_offsets=leaf_offsets.astype(i64),
        leaf_prod=np.array([x[1] for x in leaf_list], i64), leaf_coef=np.array([x[2] for x in leaf_list], float),
        contrib_offsets=contrib_offsets.astype(i64),
        contrib_factor=np.array([x[1] for x in contrib_list], i64),
        contrib_re=np.array([x[2] for x in contrib_list], float),
        contrib_im=np.array([x[3] for x in contrib_list], float))


@njit(cache=True, fastmath=True, error_model='numpy')
def _add_pair(D, row, col, dx, dy, dz, rx, ry, rz):
    """Add one pair derivative (3 components) to the virial columns 0-5 of a channel's row
    (D[row:], flat) and, unless col < 0 (an image of the atom itself), to its slot's
    columns col..col+2."""
    D[row] += rx * dx
    D[row + 1] += ry * dy
    D[row + 2] += rz * dz
    D[row + 3] += 0.5 * (ry * dz + rz * dy)
    D[row + 4] += 0.5 * (rx * dz + rz * dx)
    D[row + 5] += 0.5 * (rx * dy + ry * dx)
    if col >= 0:
        D[row + col] += dx
        D[row + col + 1] += dy
        D[row + col + 2] += dz


@njit(cache=True, fastmath=True, error_model='numpy')
def design_rows_kernel(positions, species, n_local, offsets, neighbors, owner,
                       nradbase, nradmax, lmax, ndensity_max, is_zbl, cutoff_max,
                       force_tables, basis_tables, spline_nlut, spline_scale, bond_rcut,
                       bond_cut_in, bond_dcut_in, rho_core_cut, drho_core_cut, emb_weight,
                       ylm_a, ylm_b,
                       col_offsets, n_a_channels, n_channels, max_rank, wnz_offsets, wnz_channel,
                       r1_offsets, r1_col, r1_entry, r1_a1, prod_offsets, fac_offsets, fac_index,
                       leaf_offsets, leaf_prod, leaf_coef, contrib_offsets, contrib_factor,
                       contrib_re, contrib_im,
                       energy_rows, force_rows, virial_rows):
    """Add the local atoms' design rows: energy_rows (ncols,) eV, force_rows
    (3*n_out, ncols) eV/Å on row 3*owner[j] + alpha, virial_rows (6, ncols) eV
    (kernel convention, Voigt xx yy zz yz xz xy).

    ``owner`` maps every extended atom to its output atom (< n_out); the local
    atoms' rows must be zeroed by the caller.  Returns (status, atom, neighbour)
    like ``kernel.ace_forces``.
    """
    nel = emb_weight.shape[0]
    nlm = (lmax + 1) * (lmax + 1)
    nlm_half = (lmax + 1) * (lmax + 2) // 2
    nfunc = force_tables.shape[2]
    nrl = nradmax * (lmax + 1)
    col_rnl = ndensity_max
    col_core = ndensity_max + nrl
    n_out = force_rows.shape[0] // 3
    max_neigh = max_row_length(offsets, n_local)
    (nb_index, nb_mu, nb_r, nb_u, S, dS, Q, dQ, ph_re, ph_im,
     segment) = site_buffers(1, max_neigh, nfunc, nlm_half, lmax, nel)
    A_re = np.zeros((nel * nradmax * nlm, 1))
    A_im = np.zeros((nel * nradmax * nlm, 1))
    rho1 = np.zeros(max(ndensity_max, 1))
    scratch = np.empty((4, max_neigh))
    y_re = np.empty(max_neigh)
    y_im = np.empty(max_neigh)
    ncol_max = 3 * max_neigh + 6
    D_re = np.zeros(n_channels * ncol_max)     # per atom: rows of ncol columns, packed
    D_im = np.zeros(n_channels * ncol_max)
    D_sw = np.zeros(ncol_max)
    acc = np.zeros(ncol_max)
    nb_slot = np.empty(max_neigh, np.int64)
    slot_owner = np.empty(max(max_neigh, 1), np.int64)
    slot_of = np.full(n_out, -1, np.int64)
    sig = np.zeros(max_neigh)
    A1 = np.zeros(nel * nradbase)
    W_re = np.zeros(wnz_channel.shape[0])
    W_im = np.zeros(wnz_channel.shape[0])
    B = np.zeros(energy_rows.shape[0])
    pre_re = np.empty(max_rank + 1)
    pre_im = np.empty(max_rank + 1)
    suf_re = np.empty(max_rank + 1)
    suf_im = np.empty(max_rank + 1)
    part_re = np.zeros(fac_index.shape[0])      # partial products, per factor of each product
    part_im = np.zeros(fac_index.shape[0])
    value = np.zeros(fac_offsets.shape[0] - 1)  # Re of each product

    for i in range(n_local):
        mu_i = species[i]
        nn, jbad = _gather_neighbours(i, positions, species, offsets, neighbors, nel, spline_scale,
                                      bond_rcut, nb_index[0], nb_mu[0], nb_r[0], nb_u[0], scratch,
                                      segment[0])
        if jbad >= 0:
            return TOO_CLOSE, i, jbad
        rho_core = _site_base(mu_i, nn, nel, nradmax, lmax, ndensity_max, force_tables, spline_nlut,
                              spline_scale, ylm_a, ylm_b, nb_mu[0], nb_r[0], nb_u[0], S[0], dS[0],
                              Q[0], dQ[0], ph_re[0], ph_im[0], segment[0], y_re, y_im, A_re, A_im, 0,
                              rho1)
        Sa = S[0]
        dSa = dS[0]
        Qa = Q[0]
        dQa = dQ[0]
        pra = ph_re[0]
        pia = ph_im[0]
        ux = nb_u[0, 0]
        uy = nb_u[0, 1]
        uz = nb_u[0, 2]
        # ---------- columns: the virial (0-5), then 3 per slot, one slot per owner atom of the
        # neighbours other than i; i's own column is minus their sum (translation invariance)
        oi = owner[i]
        nslot = 0
        for jn in range(nn):
            o = owner[nb_index[0, jn]]
            if o == oi:
                nb_slot[jn] = -1
                continue
            if slot_of[o] < 0:
                slot_of[o] = nslot
                slot_owner[nslot] = o
                nslot += 1
            nb_slot[jn] = 6 + 3 * slot_of[o]
        for s in range(nslot):
            slot_of[slot_owner[s]] = -1
        ncol = 6 + 3 * nslot
        for ch in range(n_channels):
            for c in range(ncol):
                D_re[ch * ncol + c] = 0.0
                D_im[ch * ncol + c] = 0.0
        # ---------- energy switch s_i and its pair derivatives (radial, per neighbour)
        s_i = 1.0
        has_sw = False
        for jn in range(nn):
            sig[jn] = 0.0
        if is_zbl:
            dmin = cutoff_max
            jmin = -1
            for jn in range(nn):
                bond = mu_i * nel + nb_mu[0, jn]
                d = nb_r[0, jn] - (bond_cut_in[bond] - bond_dcut_in[bond])
                if d < dmin:
                    dmin = d
                    jmin = jn
            if jmin >= 0:
                dcin = bond_dcut_in[mu_i * nel + nb_mu[0, jmin]]
                fc, dfc = _poly_switch(dcin - dmin, dcin, dcin)
                s_i = fc
                if dfc != 0.0:
                    sig[jmin] = -dfc
                    has_sw = True
        else:
            rc = rho_core_cut[mu_i]
            drc = drho_core_cut[mu_i]
            if rho_core >= rc:
                s_i = 0.0
            elif rho_core > rc - drc:
                fc, dfc = _poly_switch(rho_core, rc, drc)
                s_i = fc
                if dfc != 0.0:
                    has_sw = True
                    for jn in range(nn):
                        sig[jn] = dfc * dSa[col_core, jn]
        # ---------- pair derivatives of the atomic base, folded onto slots + virial
        for k in range(nel * nradbase):
            A1[k] = 0.0
        for jn in range(nn):
            s = nb_slot[jn]
            mu_j = nb_mu[0, jn]
            r = nb_r[0, jn]
            inv_r = 1.0 / r
            u0 = ux[jn]
            u1 = uy[jn]
            u2 = uz[jn]
            rx = r * u0
            ry = r * u1
            rz = r * u2
            for l in range(lmax + 1):
                for m in range(l + 1):
                    h = l * (l + 1) // 2 + m
                    q = Qa[h, jn]
                    cr = pra[m, jn]
                    ci = pia[m, jn]
                    yr = q * cr
                    yi = q * ci
                    # gradient of the polynomial extension of Y, then its tangential part / r
                    if m > 0:
                        mq = m * q
                        br = pra[m - 1, jn]
                        bi = pia[m - 1, jn]
                        gxr = mq * br
                        gxi = mq * bi
                        gyr = -mq * bi
                        gyi = mq * br
                    else:
                        gxr = 0.0
                        gxi = 0.0
                        gyr = 0.0
                        gyi = 0.0
                    dq = dQa[h, jn]
                    gzr = dq * cr
                    gzi = dq * ci
                    ugr = u0 * gxr + u1 * gyr + u2 * gzr
                    ugi = u0 * gxi + u1 * gyi + u2 * gzi
                    txr = (gxr - ugr * u0) * inv_r
                    tyr = (gyr - ugr * u1) * inv_r
                    tzr = (gzr - ugr * u2) * inv_r
                    txi = (gxi - ugi * u0) * inv_r
                    tyi = (gyi - ugi * u1) * inv_r
                    tzi = (gzi - ugi * u2) * inv_r
                    for n in range(nradmax):
                        qn = col_rnl + n * (lmax + 1) + l
                        R = Sa[qn, jn]
                        dR = dSa[qn, jn]
                        ch = (mu_j * nradmax + n) * nlm_half + h
                        ar = dR * yr
                        _add_pair(D_re, ch * ncol, s, ar * u0 + R * txr, ar * u1 + R * tyr,
                                  ar * u2 + R * tzr, rx, ry, rz)
                        if m > 0:
                            ai = dR * yi
                            _add_pair(D_im, ch * ncol, s, ai * u0 + R * txi, ai * u1 + R * tyi,
                                      ai * u2 + R * tzi, rx, ry, rz)
            # rank-1 channels: g_n(r) into A1, g_n'(r) u into the derivatives
            bond = mu_i * nel + mu_j
            sc = spline_scale[bond]
            xs = r * sc
            nl = int(xs)
            if nl < spline_nlut[bond]:
                w = xs - nl
                for k in range(nradbase):
                    c0_ = basis_tables[bond, nl, k, 0]
                    c1_ = basis_tables[bond, nl, k, 1]
                    c2_ = basis_tables[bond, nl, k, 2]
                    c3_ = basis_tables[bond, nl, k, 3]
                    A1[mu_j * nradbase + k] += c0_ + w * (c1_ + w * (c2_ + w * c3_))
                    d = (c1_ + w * (2.0 * c2_ + 3.0 * w * c3_)) * sc
                    _add_pair(D_re, (n_a_channels + mu_j * nradbase + k) * ncol, s,
                              d * u0, d * u1, d * u2, rx, ry, rz)
        if has_sw:
            for c in range(ncol):
                D_sw[c] = 0.0
            for jn in range(nn):
                sg = sig[jn]
                if sg != 0.0:
                    r = nb_r[0, jn]
                    s = nb_slot[jn]
                    d0 = sg * ux[jn]
                    d1 = sg * uy[jn]
                    d2 = sg * uz[jn]
                    if s >= 0:
                        D_sw[s] += d0
                        D_sw[s + 1] += d1
                        D_sw[s + 2] += d2
                    rx = r * ux[jn]
                    ry = r * uy[jn]
                    rz = r * uz[jn]
                    D_sw[0] += rx * d0
                    D_sw[1] += ry * d1
                    D_sw[2] += rz * d2
                    D_sw[3] += 0.5 * (ry * d2 + rz * d1)
                    D_sw[4] += 0.5 * (rx * d2 + rz * d0)
                    D_sw[5] += 0.5 * (rx * d1 + ry * d0)

        # ---------- B_k(i) and W_ka = dB_k/dA_a (folded to m >= 0)
        c0 = col_offsets[mu_i]
        c1 = col_offsets[mu_i + 1]
        e0 = wnz_offsets[c0]
        e1 = wnz_offsets[c1]
        # partial products P / A_t of every product (rank >= 2; ranks 2-4 written out,
        # which halves this stage against the prefix/suffix loops), and Re P
        for p in range(prod_offsets[mu_i], prod_offsets[mu_i + 1]):
            f0 = fac_offsets[p]
            rank = fac_offsets[p + 1] - f0
            a = fac_index[f0]
            x0r = A_re[a, 0]
            x0i = A_im[a, 0]
            a = fac_index[f0 + 1]
            x1r = A_re[a, 0]
            x1i = A_im[a, 0]
            if rank == 2:
                part_re[f0] = x1r
                part_im[f0] = x1i
                part_re[f0 + 1] = x0r
                part_im[f0 + 1] = x0i
                value[p] = x0r * x1r - x0i * x1i
                continue
            a = fac_index[f0 + 2]
            x2r = A_re[a, 0]
            x2i = A_im[a, 0]
            p01r = x0r * x1r - x0i * x1i
            p01i = x0r * x1i + x0i * x1r
            if rank == 3:
                part_re[f0] = x1r * x2r - x1i * x2i
                part_im[f0] = x1r * x2i + x1i * x2r
                part_re[f0 + 1] = x0r * x2r - x0i * x2i
                part_im[f0 + 1] = x0r * x2i + x0i * x2r
                part_re[f0 + 2] = p01r
                part_im[f0 + 2] = p01i
                value[p] = p01r * x2r - p01i * x2i
                continue
            a = fac_index[f0 + 3]
            x3r = A_re[a, 0]
            x3i = A_im[a, 0]
            p23r = x2r * x3r - x2i * x3i
            p23i = x2r * x3i + x2i * x3r
            if rank == 4:
                part_re[f0] = x1r * p23r - x1i * p23i
                part_im[f0] = x1r * p23i + x1i * p23r
                part_re[f0 + 1] = x0r * p23r - x0i * p23i
                part_im[f0 + 1] = x0r * p23i + x0i * p23r
                part_re[f0 + 2] = p01r * x3r - p01i * x3i
                part_im[f0 + 2] = p01r * x3i + p01i * x3r
                part_re[f0 + 3] = p01r * x2r - p01i * x2i
                part_im[f0 + 3] = p01r * x2i + p01i * x2r
                value[p] = p01r * p23r - p01i * p23i
                continue
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
        for c in range(c0, c1):
            acc_b = 0.0
            for q in range(leaf_offsets[c], leaf_offsets[c + 1]):
                acc_b += leaf_coef[q] * value[leaf_prod[q]]
            B[c] = acc_b
        for f in range(r1_offsets[mu_i], r1_offsets[mu_i + 1]):
            B[r1_col[f]] += A1[r1_a1[f]]
        wgt = emb_weight[mu_i]
        scale = wgt * s_i
        for e in range(e0, e1):
            wr = 0.0
            wi = 0.0
            for q in range(contrib_offsets[e], contrib_offsets[e + 1]):
                f = contrib_factor[q]
                wr += contrib_re[q] * part_re[f]
                wi += contrib_im[q] * part_im[f]
            W_re[e] = wr * scale
            W_im[e] = wi * scale
        for f in range(r1_offsets[mu_i], r1_offsets[mu_i + 1]):
            W_re[r1_entry[f]] = scale

        # ---------- rows: per function, sum over its W entries, then scatter to owners
        for c in range(c0, c1):
            energy_rows[c] += scale * B[c]
            for k in range(ncol):
                acc[k] = 0.0
            for e in range(wnz_offsets[c], wnz_offsets[c + 1]):
                ch = wnz_channel[e]
                wr = W_re[e]
                wi = W_im[e]
                Dr = D_re[ch * ncol:(ch + 1) * ncol]
                if wi == 0.0:          # m = 0 and rank-1 channels are real
                    for k in range(ncol):
                        acc[k] += wr * Dr[k]
                else:
                    Di = D_im[ch * ncol:(ch + 1) * ncol]
                    for k in range(ncol):
                        acc[k] += wr * Dr[k] - wi * Di[k]
            if has_sw:
                bs = wgt * B[c]
                for k in range(ncol):
                    acc[k] += bs * D_sw[k]
            tx = 0.0
            ty = 0.0
            tz = 0.0
            for s in range(nslot):
                o = 3 * slot_owner[s]
                gx = acc[6 + 3 * s]
                gy = acc[7 + 3 * s]
                gz = acc[8 + 3 * s]
                force_rows[o, c] -= gx
                force_rows[o + 1, c] -= gy
                force_rows[o + 2, c] -= gz
                tx += gx
                ty += gy
                tz += gz
            force_rows[3 * oi, c] += tx
            force_rows[3 * oi + 1, c] += ty
            force_rows[3 * oi + 2, c] += tz
            for v in range(6):
                virial_rows[v, c] -= acc[v]
    return OK, -1, -1
