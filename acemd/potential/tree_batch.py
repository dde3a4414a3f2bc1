"""Product tree of a batch of BATCH = 4 atoms of one element, one vector per quantity.

The tree's passes are chains over ~10^3-10^4 nodes per element whose per-node work
(a complex product, an accumulation or two) is too small for a loop over atoms;
the four atoms of a batch are the four lanes of one vector (``simd``), so each
node costs one vector operation where scalar code needs four.

Engine passes (``kernel.ace_forces``): arrays with a lane axis are (rows, BATCH)
float64 in C order, row r at flat index r*BATCH: the atomic base A and dE/dA W by
flat A index, node values and adjoints by node (relative to the element's first
node n0), densities and dE/drho by density.

Fit passes (``adjoint_kernel.fit_gradient``): flat blocks of 16 numbers, the four
components (re, im, ṙe, i̇m) of four lanes, per factor (A4, adj4) or node (V, W).
"""
import numpy as np
from numba import njit

from .simd import LANES, vload, vsplat, vstore

BATCH = LANES
_BLOCK = np.uint64(4 * LANES)           # numbers per block of the fit passes
_IM = np.uint64(LANES)                  # offsets of a block's components
_DRE = np.uint64(2 * LANES)
_DIM = np.uint64(3 * LANES)


@njit(cache=True, fastmath=True, error_model='numpy')
def tree_forward(n0, n1, nd, node_parent, node_factor, node_coef, A_re, A_im, v_re, v_im, rho):
    """Node values v = (parent value) x A_factor and rho[p] += sum_nodes c_p Re(v).

    rho has at least two rows (nd == 2 keeps the densities in registers).
    """
    r0 = vload(rho, 0)
    r1 = vload(rho, BATCH)
    for q in range(n0, n1):
        par = node_parent[q]
        fa = node_factor[q] * BATCH
        ar = vload(A_re, fa)
        ai = vload(A_im, fa)
        if par < 0:
            x = ar
            y = ai
        else:
            pr = vload(v_re, (par - n0) * BATCH)
            pi = vload(v_im, (par - n0) * BATCH)
            x = pr * ar - pi * ai
            y = pr * ai + pi * ar
        vstore(v_re, (q - n0) * BATCH, x)
        vstore(v_im, (q - n0) * BATCH, y)
        if nd == 2:
            r0 = r0 + vsplat(node_coef[q, 0]) * x
            r1 = r1 + vsplat(node_coef[q, 1]) * x
        else:
            for p in range(nd):
                vstore(rho, p * BATCH, vload(rho, p * BATCH) + vsplat(node_coef[q, p]) * x)
    if nd == 2:
        vstore(rho, 0, r0)
        vstore(rho, BATCH, r1)


@njit(cache=True, fastmath=True, error_model='numpy')
def tree_backward(n0, n1, nd, node_parent, node_factor, node_coef, A_re, A_im, v_re, v_im, dF,
                  adj_re, adj_im, W_re, W_im):
    """W[factor] += dE/dA through the tree (added to W as given).

    dF has at least two rows.  A node's adjoint is its own coefficients (dF . c) plus what its
    children passed up (they come later in the breadth-first table); a run of siblings passes
    its sum to their parent once.
    """
    zero = vsplat(0.0)
    for qq in range(n1 - n0):
        vstore(adj_re, qq * BATCH, zero)
        vstore(adj_im, qq * BATCH, zero)
    d0 = vload(dF, 0)
    d1 = vload(dF, BATCH) if nd >= 2 else zero
    sr = zero
    si = zero
    cur = -1
    for q in range(n1 - 1, n0 - 1, -1):
        par = node_parent[q]
        if par != cur:
            if cur >= 0:
                cc = (cur - n0) * BATCH
                vstore(adj_re, cc, vload(adj_re, cc) + sr)
                vstore(adj_im, cc, vload(adj_im, cc) + si)
            sr = zero
            si = zero
            cur = par
        qo = (q - n0) * BATCH
        gr = vload(adj_re, qo)
        if nd <= 2:
            c1 = node_coef[q, 1] if nd == 2 else 0.0
            gr = gr + d0 * vsplat(node_coef[q, 0]) + d1 * vsplat(c1)
        else:
            for p in range(nd):
                gr = gr + vload(dF, p * BATCH) * vsplat(node_coef[q, p])
        gi = vload(adj_im, qo)
        fo = node_factor[q] * BATCH
        if par < 0:
            vstore(W_re, fo, vload(W_re, fo) + gr)
            vstore(W_im, fo, vload(W_im, fo) + gi)
        else:
            po = (par - n0) * BATCH
            vr = vload(v_re, po)
            vi = vload(v_im, po)
            ar = vload(A_re, fo)
            ai = vload(A_im, fo)
            vstore(W_re, fo, vload(W_re, fo) + gr * vr - gi * vi)
            vstore(W_im, fo, vload(W_im, fo) + gi * vr + gr * vi)
            sr = sr + gr * ar - gi * ai
            si = si + gr * ai + gi * ar
    if cur >= 0:
        cc = (cur - n0) * BATCH
        vstore(adj_re, cc, vload(adj_re, cc) + sr)
        vstore(adj_im, cc, vload(adj_im, cc) + si)


@njit(cache=True, fastmath=True, error_model='numpy')
def _load_block(arr, start):
    """The four components (re, im, ṙe, i̇m) of the fit passes' block at arr[start:]."""
    return vload(arr, start), vload(arr, start + _IM), vload(arr, start + _DRE), vload(arr, start + _DIM)


@njit(cache=True, fastmath=True, error_model='numpy')
def tree_forward_dual(nnodes, parent_block, factor_block, A4, V):
    """Node values and tangents, v = v_parent A_f and v̇ = v̇_parent A_f + v_parent Ȧ_f, of nnodes nodes.

    A4[f*16:] is factor f's block, V[(k+1)*16:] node k's; V's block 0 is a virtual root (1, 0, 0,
    0) that roots name as parent (parent_block[k] = 0, else the parent's node + 1; np.uint64, as
    factor_block).
    """
    for q in range(nnodes):
        pb = parent_block[q] * _BLOCK
        fb = factor_block[q] * _BLOCK
        ob = (np.uint64(q) + np.uint64(1)) * _BLOCK
        ar, ai, dr, di = _load_block(A4, fb)
        pr, pi, qr, qi = _load_block(V, pb)
        _store_block(V, ob, pr * ar - pi * ai, pr * ai + pi * ar, qr * ar - qi * ai + pr * dr - pi * di,
                     qr * ai + qi * ar + pr * di + pi * dr)


@njit(cache=True, fastmath=True, error_model='numpy')
def _store_block(arr, start, re, im, dre, dim):
    """Store the four components of a block at arr[start:]."""
    vstore(arr, start, re)
    vstore(arr, start + _IM, im)
    vstore(arr, start + _DRE, dre)
    vstore(arr, start + _DIM, dim)


@njit(cache=True, fastmath=True, error_model='numpy')
def _pass_run(W, block, s0, s1, s2, s3):
    """W's block += a run of siblings' sums (what they pass to their parent); returns the sums reset."""
    cb = block * _BLOCK
    w0, w1, w2, w3 = _load_block(W, cb)
    _store_block(W, cb, w0 + s0, w1 + s1, w2 + s2, w3 + s3)
    zero = vsplat(0.0)
    return zero, zero, zero, zero


@njit(cache=True, fastmath=True, error_model='numpy')
def _own_adjoint(nd, coef_row, g0, g1, h0, h1, g_rho, g_rhod):
    """A node's adjoints from its own coefficients: (Σ_p c_p g_rho[p], Σ_p c_p g_rhod[p])."""
    c0 = vsplat(coef_row[0])
    c1 = vsplat(coef_row[1] if nd > 1 else 0.0)
    x = g0 * c0 + g1 * c1
    y = h0 * c0 + h1 * c1
    for p in range(2, nd):
        c = vsplat(coef_row[p])
        x = x + vload(g_rho, p * BATCH) * c
        y = y + vload(g_rhod, p * BATCH) * c
    return x, y


@njit(cache=True, fastmath=True, error_model='numpy')
def tree_backward_dual(nd, n0, parent_block, factor_block, leaf_nodes, inner_nodes, node_coef, g_rho, g_rhod,
                       A4, V, W, adj4):
    """Adjoints of A and Ȧ, added to adj4 (blocks as A4), of G = Σ_k (w_k Re v_k + ẇ_k Re v̇_k) with
    w_k = Σ_p node_coef[n0 + k, p] g_rho[p] (ẇ: g_rhod), back through the tree of tree_forward_dual.

    Nodes without children first (leaf_nodes, ascending): their adjoint is real, (w, ẇ), half the
    work of a complex one; then the nodes with children (inner_nodes, ascending) from the last, each
    after all its children.  A run of siblings passes its sum to their parent once; W (blocks as V)
    holds what the children passed (block 0, the virtual root's, collects the roots' and is
    ignored).  g_rho and g_rhod are (rows >= 2, BATCH).
    """
    zero = vsplat(0.0)
    _store_block(W, np.uint64(0), zero, zero, zero, zero)
    for t in range(inner_nodes.shape[0]):
        _store_block(W, (np.uint64(inner_nodes[t]) + np.uint64(1)) * _BLOCK, zero, zero, zero, zero)
    g0 = vload(g_rho, 0) if nd > 0 else zero
    g1 = vload(g_rho, BATCH) if nd > 1 else zero
    h0 = vload(g_rhod, 0) if nd > 0 else zero
    h1 = vload(g_rhod, BATCH) if nd > 1 else zero
    s0 = zero
    s1 = zero
    s2 = zero
    s3 = zero
    cur = np.uint64(0)
    nleaf = leaf_nodes.shape[0]
    for t in range(nleaf):
        q = leaf_nodes[nleaf - 1 - t]
        par = parent_block[q]
        if par != cur:
            s0, s1, s2, s3 = _pass_run(W, cur, s0, s1, s2, s3)
            cur = par
        fb = factor_block[q] * _BLOCK
        pb = par * _BLOCK
        xr, yr = _own_adjoint(nd, node_coef[n0 + q], g0, g1, h0, h1, g_rho, g_rhod)
        pr, pi, qr, qi = _load_block(V, pb)
        ar, ai, dr, di = _load_block(A4, fb)
        j0, j1, j2, j3 = _load_block(adj4, fb)
        _store_block(adj4, fb, j0 + xr * pr + yr * qr, j1 + xr * pi + yr * qi, j2 + yr * pr, j3 + yr * pi)
        s0 = s0 + xr * ar + yr * dr
        s1 = s1 + xr * ai + yr * di
        s2 = s2 + yr * ar
        s3 = s3 + yr * ai
    s0, s1, s2, s3 = _pass_run(W, cur, s0, s1, s2, s3)
    cur = np.uint64(0)
    ninner = inner_nodes.shape[0]
    for t in range(ninner):
        q = inner_nodes[ninner - 1 - t]
        par = parent_block[q]
        if par != cur:
            s0, s1, s2, s3 = _pass_run(W, cur, s0, s1, s2, s3)
            cur = par
        fb = factor_block[q] * _BLOCK
        pb = par * _BLOCK
        kb = (np.uint64(q) + np.uint64(1)) * _BLOCK
        x_own, y_own = _own_adjoint(nd, node_coef[n0 + q], g0, g1, h0, h1, g_rho, g_rhod)
        xr, xi, yr, yi = _load_block(W, kb)
        xr = xr + x_own
        yr = yr + y_own
        pr, pi, qr, qi = _load_block(V, pb)
        ar, ai, dr, di = _load_block(A4, fb)
        j0, j1, j2, j3 = _load_block(adj4, fb)
        _store_block(adj4, fb, j0 + xr * pr - xi * pi + yr * qr - yi * qi,
                     j1 + xr * pi + xi * pr + yr * qi + yi * qr, j2 + yr * pr - yi * pi, j3 + yr * pi + yi * pr)
        s0 = s0 + xr * ar - xi * ai + yr * dr - yi * di
        s1 = s1 + xr * ai + xi * ar + yr * di + yi * dr
        s2 = s2 + yr * ar - yi * ai
        s3 = s3 + yr * ai + yi * ar
    _pass_run(W, cur, s0, s1, s2, s3)
