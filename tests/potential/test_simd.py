"""The four-lane vectors of ``acemd.potential.simd`` and the product-tree passes written with them,
against plain numpy: complex products along the tree, and the adjoints against central finite
differences of the quantity they differentiate."""
import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from acemd.potential.adjoint_kernel import _dual_tree_layout
from acemd.potential.simd import vload, vsplat, vstore
from acemd.potential.tree_batch import (BATCH, tree_backward, tree_backward_dual, tree_forward,
                                        tree_forward_dual)


@njit(cache=True)
def _lanewise(a, b, x, out):
    for k in range(a.shape[0] // 4):
        va = vload(a, 4 * k)
        vb = vload(b, np.uint64(4 * k))
        vstore(out, 4 * k, va * vb - vsplat(x) * va + vb)


@njit(cache=True)
def _rows(m, r):
    out = np.empty(4)
    vstore(out, 0, vload(m, r * 4))
    return out


def test_vector_operations_equal_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 36))
    out = np.zeros(36)
    _lanewise(a, b, 0.7, out)
    assert np.allclose(out, a * b - 0.7 * a + b, rtol=1e-14, atol=1e-15)
    m = rng.normal(size=(5, 4))
    assert np.array_equal(_rows(m, 3), m[3])


def test_non_contiguous_array_is_refused():
    @njit
    def strided(a):
        return vload(a[::2], 0)

    with pytest.raises(TypingError):
        strided(np.zeros(16))


def _random_tree(rng, nnodes, nA, nd):
    """Parents before children; about a third of the nodes are roots."""
    parent = np.array([-1 if q == 0 or rng.random() < 0.3 else rng.integers(0, q) for q in range(nnodes)])
    factor = rng.integers(0, nA, nnodes)
    coef = rng.normal(size=(nnodes, nd))
    return parent, factor, coef


def _values(parent, factor, A):
    """Complex node values (nnodes, lanes): v = v_parent A_factor."""
    v = np.zeros((len(parent), A.shape[1]), complex)
    for q in range(len(parent)):
        v[q] = A[factor[q]] * (v[parent[q]] if parent[q] >= 0 else 1.0)
    return v


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_engine_tree_against_numpy_and_finite_differences(nd):
    rng = np.random.default_rng(nd)
    nnodes, nA = 60, 7
    parent, factor, coef = _random_tree(rng, nnodes, nA, nd)
    A = (rng.normal(size=(nA, BATCH)) + 1j * rng.normal(size=(nA, BATCH))) * 0.8
    rows = max(nd, 2)
    rho = np.zeros((rows, BATCH))
    v_re = np.empty((nnodes, BATCH))
    v_im = np.empty((nnodes, BATCH))
    tree_forward(0, nnodes, nd, parent, factor, coef, A.real.copy(), A.imag.copy(), v_re, v_im, rho)
    v = _values(parent, factor, A)
    assert np.allclose(v_re + 1j * v_im, v, rtol=1e-13, atol=1e-14)
    assert np.allclose(rho[:nd], coef.T @ v.real, rtol=1e-12, atol=1e-13)

    dF = np.zeros((rows, BATCH))
    dF[:nd] = rng.normal(size=(nd, BATCH))
    W_re = np.zeros((nA, BATCH))
    W_im = np.zeros((nA, BATCH))
    tree_backward(0, nnodes, nd, parent, factor, coef, A.real.copy(), A.imag.copy(), v_re, v_im, dF,
                  np.empty((nnodes, BATCH)), np.empty((nnodes, BATCH)), W_re, W_im)

    def energy(A_):                           # E per lane = Σ_p dF_p rho_p
        return np.einsum("pb,kp,kb->b", dF[:nd], coef, _values(parent, factor, A_).real)

    h = 1e-6
    for a in range(nA):
        for part, W, sign in ((1.0, W_re, 1.0), (1j, W_im, -1.0)):    # δE = Re(W δA)
            dA = np.zeros_like(A)
            dA[a] = part * h
            fd = (energy(A + dA) - energy(A - dA)) / (2 * h)
            assert np.allclose(sign * W[a], fd, rtol=1e-6, atol=1e-8), (a, part)


def _blocks(re, im, dre, dim):
    """(rows, lanes) components -> flat blocks of 16 (re, im, ṙe, i̇m x lane)."""
    return np.stack([re, im, dre, dim], axis=1).reshape(-1).copy()


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_dual_tree_against_numpy_and_finite_differences(nd):
    rng = np.random.default_rng(10 + nd)
    nnodes, nA = 50, 6
    parent, factor, coef = _random_tree(rng, nnodes, nA, nd)
    A = (rng.normal(size=(nA, BATCH)) + 1j * rng.normal(size=(nA, BATCH))) * 0.8
    Ad = (rng.normal(size=(nA, BATCH)) + 1j * rng.normal(size=(nA, BATCH))) * 0.5
    parent_block, leaf_nodes, leaf_start, inner_nodes, inner_start = _dual_tree_layout(
        np.array([0, nnodes]), parent)
    factor_block = factor.astype(np.uint64)
    V = np.zeros((nnodes + 1) * 16)
    V[:BATCH] = 1.0
    tree_forward_dual(nnodes, parent_block, factor_block, _blocks(A.real, A.imag, Ad.real, Ad.imag), V)

    def dual_values(A_, Ad_):
        v = np.zeros((nnodes, BATCH), complex)
        vd = np.zeros((nnodes, BATCH), complex)
        for q in range(nnodes):
            p = parent[q]
            vp, vdp = (v[p], vd[p]) if p >= 0 else (1.0, 0.0)
            v[q] = vp * A_[factor[q]]
            vd[q] = vdp * A_[factor[q]] + vp * Ad_[factor[q]]
        return v, vd

    v, vd = dual_values(A, Ad)
    blocks = V[16:].reshape(nnodes, 4, BATCH)
    assert np.allclose(blocks[:, 0] + 1j * blocks[:, 1], v, rtol=1e-13, atol=1e-14)
    assert np.allclose(blocks[:, 2] + 1j * blocks[:, 3], vd, rtol=1e-13, atol=1e-14)

    rows = max(nd, 2)
    g_rho = np.zeros((rows, BATCH))
    g_rhod = np.zeros((rows, BATCH))
    g_rho[:nd] = rng.normal(size=(nd, BATCH))
    g_rhod[:nd] = rng.normal(size=(nd, BATCH))
    adj4 = np.zeros(nA * 16)
    tree_backward_dual(nd, 0, parent_block, factor_block, leaf_nodes, inner_nodes, coef, g_rho, g_rhod,
                       _blocks(A.real, A.imag, Ad.real, Ad.imag), V, np.zeros((nnodes + 1) * 16), adj4)
    adj = adj4.reshape(nA, 4, BATCH)

    def G(A_, Ad_):                           # Σ_k (w_k Re v_k + ẇ_k Re v̇_k) per lane
        v_, vd_ = dual_values(A_, Ad_)
        return (np.einsum("pb,kp,kb->b", g_rho[:nd], coef, v_.real)
                + np.einsum("pb,kp,kb->b", g_rhod[:nd], coef, vd_.real))

    h = 1e-6
    for a in range(nA):
        for comp, (part, sign, dual) in enumerate(((1.0, 1.0, False), (1j, -1.0, False),
                                                    (1.0, 1.0, True), (1j, -1.0, True))):
            d = np.zeros_like(A)
            d[a] = part * h
            fd = ((G(A, Ad + d) - G(A, Ad - d)) if dual else (G(A + d, Ad) - G(A - d, Ad))) / (2 * h)
            assert np.allclose(sign * adj[a, comp], fd, rtol=1e-6, atol=1e-8), (a, comp)
