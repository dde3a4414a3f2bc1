"""Clebsch-Gordan coefficients and the generalized coupling of ACE B-functions.

A B-basis function of rank r couples r single-bond densities A_{l_t m_t}
to a rotation invariant

    B = sum_{m_1..m_r} C^{ls, LS}_{m_1..m_r} prod_t A_{l_t m_t},

with a *generalized* Clebsch-Gordan coefficient C that is the product of
ordinary Clebsch-Gordan coefficients along a coupling tree.  This module
reproduces the tree, the intermediate angular momenta ("lint" in pacemaker's
``.yaml``) and the m-enumeration of pacemaker/ML-PACE, so that a B-basis file
converts to exactly the C-tilde tables pacemaker writes.

Coupling tree (what pacemaker builds for rank r):

* the leaves l_1..l_r are first coupled in neighbouring pairs,
  (l_1,l_2) -> L_1, (l_3,l_4) -> L_2, ...;
* the intermediate values are then coupled pairwise in first-in-first-out
  order (each new value joins the end of the queue);
* when r is odd, the last leaf l_r is coupled last, with the final
  intermediate value;
* the root has L = 0, M = 0, i.e. the last node is C(a m_a, b m_b | 0 0),
  which needs a == b.

``lint`` lists the r-2 intermediate values in the order they are created
(rank 3: [L(12)] with L(12) = l_3; rank 4: [L(12), L(34)] with L(12) = L(34);
rank 5: [L(12), L(34), L(12,34)] with L(12,34) = l_5; rank 6: [L(12), L(34),
L(56), L(12,34)] with L(56) = L(12,34)).  Rank 2 is C(l_1 m_1, l_2 m_2 | 0 0)
(l_1 = l_2) and rank 1 has the single coefficient 1 for m = 0 (l = 0).
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import isqrt

import numpy as np

__all__ = [
    "clebsch_gordan",
    "coupling_tree",
    "check_lint",
    "generalized_cg",
    "half_basis_cg",
    "compress_ms_combinations",
    "COMPRESS_DROP_TOL",
]

# pacemaker drops merged m-combinations whose coefficient is below this (absolute)
COMPRESS_DROP_TOL = 1e-15


# ---------------------------------------------------------------------------
# Ordinary Clebsch-Gordan coefficients
# ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _factorial(n: int) -> int:
    return 1 if n < 2 else n * _factorial(n - 1)


@lru_cache(maxsize=None)
def _cg_exact(l1: int, m1: int, l2: int, m2: int, L: int, M: int) -> tuple[int, Fraction]:
    """<l1 m1 l2 m2 | L M> = sign * sqrt(square), exact (Racah's formula)."""
    if (m1 + m2 != M or abs(m1) > l1 or abs(m2) > l2 or abs(M) > L
            or L < abs(l1 - l2) or L > l1 + l2 or min(l1, l2, L) < 0):
        return 0, Fraction(0)
    f = _factorial
    pref = Fraction((2 * L + 1) * f(l1 + l2 - L) * f(l1 - l2 + L) * f(-l1 + l2 + L),
                    f(l1 + l2 + L + 1))
    pref *= f(L + M) * f(L - M) * f(l1 + m1) * f(l1 - m1) * f(l2 + m2) * f(l2 - m2)
    zmin = max(0, l2 - L - m1, l1 - L + m2)
    zmax = min(l1 + l2 - L, l1 - m1, l2 + m2)
    k1, k2, k3, k4, k5 = l1 + l2 - L, l1 - m1, l2 + m2, L - l2 + m1, L - l1 - m2
    # sum_z (-1)^z / [z! (k1-z)! (k2-z)! (k3-z)! (k4+z)! (k5+z)!], as an integer over P
    P = f(zmax) * f(k1 - zmin) * f(k2 - zmin) * f(k3 - zmin) * f(k4 + zmax) * f(k5 + zmax)
    s = 0
    for z in range(zmin, zmax + 1):
        term = P // (f(z) * f(k1 - z) * f(k2 - z) * f(k3 - z) * f(k4 + z) * f(k5 + z))
        s += -term if z % 2 else term
    if s == 0:
        return 0, Fraction(0)
    return (1 if s > 0 else -1), pref * Fraction(s * s, P * P)


def _sqrt_fraction(x: Fraction) -> float:
    """sqrt of a non-negative rational, rounded to double precision (error << 1 ulp)."""
    if x == 0:
        return 0.0
    bits = 128
    # scale so the integer square root carries ~bits significant bits
    shift = max(0, 2 * bits - (x.numerator.bit_length() - x.denominator.bit_length()))
    shift += shift % 2
    root = isqrt((x.numerator << shift) // x.denominator)
    return float(Fraction(root, 1 << (shift // 2)))


@lru_cache(maxsize=None)
def clebsch_gordan(l1: int, m1: int, l2: int, m2: int, L: int, M: int) -> float:
    """Clebsch-Gordan coefficient <l1 m1 l2 m2 | L M> (Condon-Shortley convention).

    Computed exactly (Racah's formula with integer factorials) and rounded once
    to double precision; zero for any forbidden combination.  Valid for any l.
    """
    sign, square = _cg_exact(int(l1), int(m1), int(l2), int(m2), int(L), int(M))
    return sign * _sqrt_fraction(square) if sign else 0.0


@lru_cache(maxsize=None)
def _cg_table(l1: int, l2: int, L: int) -> np.ndarray:
    """T[m1 + l1, m2 + l2] = <l1 m1 l2 m2 | L m1+m2> (0 where |m1+m2| > L)."""
    t = np.zeros((2 * l1 + 1, 2 * l2 + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            if abs(m1 + m2) <= L:
                t[m1 + l1, m2 + l2] = clebsch_gordan(l1, m1, l2, m2, L, m1 + m2)
    t.setflags(write=False)
    return t


# ---------------------------------------------------------------------------
# Coupling tree and intermediate angular momenta
# ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def coupling_tree(rank: int) -> tuple[tuple[int, int, int], ...]:
    """The coupling nodes (a, b, c) of pacemaker's tree for ``rank``.

    Indices 0..rank-1 are the leaves (l_1..l_r), rank..2*rank-3 the
    intermediate values in ``lint`` order, and -1 the root (L = 0).  Each node
    couples a and b to c; the nodes are listed in evaluation order.
    """
    if rank < 2:
        return ()
    leaves = list(range(rank))
    fresh = list(range(rank, 2 * rank - 2))          # intermediate slots, in lint order
    nodes = []
    pending = []                                      # FIFO of intermediates awaiting coupling

    def next_slot():
        return fresh.pop(0) if fresh else -1

    for _ in range(rank // 2):
        a, b = leaves.pop(0), leaves.pop(0)
        c = next_slot()
        nodes.append((a, b, c))
        pending.append(c)
    while len(pending) > 1 and nodes[-1][2] != -1:
        a, b = pending.pop(0), pending.pop(0)
        c = next_slot()
        nodes.append((a, b, c))
        pending.append(c)
    if nodes[-1][2] != -1:                            # odd rank: the last leaf joins at the root
        nodes.append((pending.pop(0), leaves.pop(0), -1))
    if len(nodes) != rank - 1 or leaves or fresh:
        raise ValueError(f"cannot build a coupling tree for rank {rank}")
    return tuple(nodes)


def _root_constraint(rank: int) -> tuple[int, int]:
    """Indices (in ls + lint) of the two momenta the root couples to L = 0."""
    a, b, _ = coupling_tree(rank)[-1]
    return a, b


def check_lint(ls, lint) -> tuple[int, ...]:
    """Check ``lint`` (the intermediate momenta of a B-function) against ``ls``.

    Returns ``lint`` as a tuple of ints.  Rules (as pacemaker applies them to a
    ``.yaml`` file): rank 1 needs nl = [0], rank 2 two equal l (lint is ignored
    for rank <= 2); rank r >= 3 needs exactly r-2 values; the two momenta that
    meet at the root must be equal (rank 3: lint[0] = nl[2]; rank 4:
    lint[0] = lint[1]; rank 5: lint[2] = nl[4]; rank 6: lint[2] = lint[3]);
    sum(nl) must be even; every node must obey the triangle rule.
    Raises ``ValueError`` with a readable message otherwise.
    """
    ls = tuple(int(l) for l in ls)
    lint = tuple(int(l) for l in (lint or ()))
    rank = len(ls)
    if rank == 0:
        raise ValueError("a function needs at least one neighbour (rank >= 1)")
    if any(l < 0 for l in ls):
        raise ValueError(f"nl = {list(ls)} has negative values")
    if rank == 1:
        if ls != (0,):
            raise ValueError(f"nl = {list(ls)}: rank 1 needs nl = [0]")
        return ()
    if rank == 2:
        if ls[0] != ls[1]:
            raise ValueError(f"nl = {list(ls)}: rank 2 needs two equal values")
        return ()
    need = rank - 2
    if len(lint) != need:
        raise ValueError(f"lint has {len(lint)} values, rank {rank} needs {need}")
    if any(l < 0 for l in lint):
        raise ValueError(f"lint = {list(lint)} has negative values")
    if sum(ls) % 2:
        raise ValueError(f"nl = {list(ls)}: the sum of l must be even (parity)")
    lsLS = ls + lint
    a, b = _root_constraint(rank)
    if lsLS[a] != lsLS[b]:
        what = {3: "lint[0] must equal nl[2]", 4: "lint[0] must equal lint[1]",
                5: "lint[2] must equal nl[4]", 6: "lint[2] must equal lint[3]"}.get(
            rank, "the two momenta coupled at the root must be equal")
        raise ValueError(f"nl = {list(ls)}, lint = {list(lint)}: {what}")
    for a, b, c in coupling_tree(rank):
        if c == -1:
            continue
        la, lb, lc = lsLS[a], lsLS[b], lsLS[c]
        if not abs(la - lb) <= lc <= la + lb:
            raise ValueError(f"nl = {list(ls)}, lint = {list(lint)}: intermediate "
                             f"L = {lc} cannot couple {la} and {lb} (triangle rule)")
    return lint


# ---------------------------------------------------------------------------
# Generalized Clebsch-Gordan coefficients
# ---------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _generalized_arrays(ls: tuple[int, ...], LS: tuple[int, ...]):
    """All ms (sum 0) with nonzero coefficient, in pacemaker's enumeration order.

    pacemaker walks the m-space with m_1 varying fastest and m_r slowest; the
    coefficient is the product of the node Clebsch-Gordan coefficients taken in
    tree order (double precision, as in ML-PACE).
    """
    rank = len(ls)
    if rank == 1:
        ms = np.zeros((1, 1), dtype=np.int64) if ls[0] == 0 else np.zeros((0, 1), dtype=np.int64)
        cg = np.ones(len(ms))
        return ms, cg
    # enumerate m_1..m_{r-1}; m_r = -sum is then fixed
    axes = [np.arange(-l, l + 1) for l in ls[:-1]]
    grids = np.meshgrid(*axes, indexing="ij")
    ms = np.stack([g.ravel() for g in grids] + [np.zeros(grids[0].size, dtype=np.int64)], axis=1)
    ms = ms.astype(np.int64)
    ms[:, -1] = -ms[:, :-1].sum(axis=1)
    ms = ms[np.abs(ms[:, -1]) <= ls[-1]]
    # pacemaker order: lexicographic in (m_r, m_{r-1}, ..., m_1)
    order = np.lexsort([ms[:, t] for t in range(rank)])
    ms = ms[order]

    lsLS = list(ls) + list(LS) + [0]
    nslot = 2 * rank - 1
    mM = np.zeros((len(ms), nslot), dtype=np.int64)
    mM[:, :rank] = ms
    coef = np.ones(len(ms))
    valid = np.ones(len(ms), dtype=bool)
    for a, b, c in coupling_tree(rank):
        c = nslot - 1 if c == -1 else c
        mM[:, c] = mM[:, a] + mM[:, b]
        la, lb, lc = lsLS[a], lsLS[b], lsLS[c]
        ok = (np.abs(mM[:, a]) <= la) & (np.abs(mM[:, b]) <= lb) & (np.abs(mM[:, c]) <= lc)
        valid &= ok
        table = _cg_table(la, lb, lc)
        ia = np.clip(mM[:, a] + la, 0, 2 * la)
        ib = np.clip(mM[:, b] + lb, 0, 2 * lb)
        coef = coef * np.where(ok, table[ia, ib], 0.0)
    keep = valid & (coef != 0.0)
    ms, coef = ms[keep], coef[keep]
    ms.setflags(write=False)
    coef.setflags(write=False)
    return ms, coef


def generalized_cg(ls, LS=()) -> list[tuple[tuple[int, ...], float]]:
    """Generalized Clebsch-Gordan coupling of ``ls`` via intermediates ``LS``.

    Returns ``[(ms, C), ...]`` for every m-combination with sum(ms) = 0 and a
    nonzero coefficient, in pacemaker's enumeration order (m_1 fastest).  The
    coupled function sum_ms C(ms) prod_t A_{l_t m_t} is rotation invariant.
    ``LS`` holds the rank-2 intermediate values (see :func:`check_lint`).
    """
    ls = tuple(int(l) for l in ls)
    LS = tuple(int(l) for l in LS)
    if len(ls) > 2 and len(LS) != len(ls) - 2:
        raise ValueError(f"rank {len(ls)} needs {len(ls) - 2} intermediate values, got {len(LS)}")
    ms, coef = _generalized_arrays(ls, LS)
    return [(tuple(int(m) for m in row), float(c)) for row, c in zip(ms, coef)]


def half_basis_cg(ls, LS=()) -> tuple[np.ndarray, np.ndarray]:
    """pacemaker's "half basis": the conjugate partner of each combination folded in.

    Keeps the combinations whose first nonzero m is positive (coefficient
    doubled) and the all-zero combination (coefficient unchanged); drops those
    whose first nonzero m is negative.  For real coupled functions this is exact:
    prod A_{l,-m} = (-1)^{sum m} conj(prod A_{l,m}) and C(-ms) = C(ms) for even
    sum(ls), so sum_ms C prod A = sum_half C' Re(prod A).
    Returns (ms array (n, rank), coefficients (n,)) in enumeration order.
    """
    ls = tuple(int(l) for l in ls)
    LS = tuple(int(l) for l in LS)
    ms, coef = _generalized_arrays(ls, LS)
    if len(ms) == 0:
        return ms.copy(), coef.copy()
    nz = ms != 0
    first = np.argmax(nz, axis=1)
    sign = np.where(nz.any(axis=1), np.sign(ms[np.arange(len(ms)), first]), 0)
    keep = sign >= 0
    out = coef[keep] * np.where(sign[keep] > 0, 2.0, 1.0)
    return ms[keep].copy(), out


def compress_ms_combinations(mus, ns, ls, ms, coef):
    """pacemaker's compression of a B-function by permutation symmetry of the A's.

    For each m-combination the factors (mu_t, n_t, l_t, m_t) are sorted; equal
    sorted combinations are merged (coefficients summed in enumeration order)
    and merged sums with |C| < 1e-15 are dropped.  If this reduces the number of
    combinations, the function takes the sorted (mus, ns, ls) and the merged
    combinations in lexicographic order; otherwise it is returned unchanged.
    Returns (mus, ns, ls, ms, coef).
    """
    mus, ns, ls = tuple(mus), tuple(ns), tuple(ls)
    rank = len(ls)
    if len(ms) == 0:
        return mus, ns, ls, ms, coef
    merged: dict[tuple[int, ...], float] = {}
    new_key = None
    for row, c in zip(ms.tolist(), coef.tolist()):
        v = sorted(zip(mus, ns, ls, row, range(rank)))
        if new_key is None:
            new_key = tuple((t[0], t[1], t[2]) for t in v)
        sm = tuple(t[3] for t in v)
        merged[sm] = merged.get(sm, 0.0) + c
    merged = {k: v for k, v in merged.items() if abs(v) >= COMPRESS_DROP_TOL}
    if len(ms) - len(merged) <= 0:
        return mus, ns, ls, ms, coef
    keys = sorted(merged)
    new_ms = np.array(keys, dtype=np.int64).reshape(len(keys), rank)
    new_coef = np.array([merged[k] for k in keys], dtype=float)
    return (tuple(k[0] for k in new_key), tuple(k[1] for k in new_key),
            tuple(k[2] for k in new_key), new_ms, new_coef)
