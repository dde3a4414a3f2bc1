"""Independent angular couplings (ls, LS) of ACE B-functions, built by acemd itself.

A B-function of rank r couples r single-bond densities A_{mu n l m}.  For given
(mus, ns) the candidates are every ls (each l <= lmax, even sum of l: parity)
and every intermediate tuple LS the coupling tree allows
(:func:`acemd.potential.coupling.check_lint`).  Many candidates are the same
function or a combination of others: the A's commute, so factors with equal
(mu, n, l) can be permuted, and different coupling paths span the same
invariants.  Following pacemaker's construction (its precomputed list of
couplings is under a non-GPL licence and is not used), acemd keeps a maximal
linearly independent set:

1. positions with equal (mu, n) form *runs* (``(mus, ns)`` sorted pairwise, so
   runs are contiguous); only the run lengths matter;
2. candidates whose ls hold the same multiset of l in every run span one
   *space*; functions of different spaces are independent (different
   monomials);
3. a candidate's vector is its coupling sum_ms C^{ls,LS}(ms) prod A over the
   m-space, symmetrised over the permutations inside the runs: each
   m-combination is keyed by the sorted (l, m) pairs of every run;
4. candidates are taken in lexicographic order of (ls, LS) and kept when they
   raise the numerical rank of the space (Gram-Schmidt, tolerance 1e-8 on unit
   vectors).  This greedy order reproduces pacemaker's choices for every case
   of ``tests/data/fit/pacemaker_basis_counts.json``.

Results are cached per (run lengths, lmax) in memory (``functools.lru_cache``).
"""
from __future__ import annotations

from functools import lru_cache
from itertools import product

import numpy as np

from ..potential.coupling import _generalized_arrays, coupling_tree

__all__ = ["lint_options", "symmetrized_coupling", "coupling_spaces", "independent_couplings",
           "runs_of", "RANK_TOL"]

# a candidate is independent when its residual after projection exceeds this (unit vectors)
RANK_TOL = 1e-8


def runs_of(mus, ns) -> tuple[int, ...]:
    """Lengths of the runs of equal (mu, n) pairs in pairwise-sorted (mus, ns)."""
    pairs = list(zip(mus, ns))
    if pairs != sorted(pairs):
        raise ValueError(f"(mus, ns) = {tuple(mus)}, {tuple(ns)} must be sorted pairwise")
    runs = []
    for k, p in enumerate(pairs):
        if k and p == pairs[k - 1]:
            runs[-1] += 1
        else:
            runs.append(1)
    return tuple(runs)


@lru_cache(maxsize=None)
def lint_options(ls: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Every intermediate tuple LS allowed for ``ls`` by the coupling tree, in lexicographic order.

    Rank 1 needs l = 0, rank 2 two equal l (LS = ()); from rank 3 the r-2
    intermediates obey the triangle rule at every node and the two momenta
    meeting at the root must be equal.
    """
    ls = tuple(int(l) for l in ls)
    rank = len(ls)
    if rank == 1:
        return ((),) if ls == (0,) else ()
    if rank == 2:
        return ((),) if ls[0] == ls[1] else ()
    nodes = coupling_tree(rank)
    out = []

    def walk(k, values):
        if k == len(nodes):
            out.append(tuple(values[rank:]))
            return
        a, b, c = nodes[k]
        la, lb = values[a], values[b]
        if c == -1:
            if la == lb:
                walk(k + 1, values)
            return
        for lc in range(abs(la - lb), la + lb + 1):
            walk(k + 1, values + [lc])

    walk(0, list(ls))
    return tuple(out)


def symmetrized_coupling(ls, LS, runs) -> tuple[np.ndarray, np.ndarray]:
    """The coupling of (ls, LS) as a sparse vector over run-symmetrised monomials.

    Returns (keys, coefficients): one row of ``keys`` per distinct monomial,
    holding per position the code l*(l+1)+m sorted inside each run (the factors
    of a run commute), and the summed coupling coefficient of that monomial.
    """
    ms, coef = _generalized_arrays(tuple(ls), tuple(LS))
    codes = np.asarray(ls, dtype=np.int64)[None, :]
    codes = codes * (codes + 1) + ms
    start = 0
    for length in runs:
        if length > 1:
            codes[:, start:start + length] = np.sort(codes[:, start:start + length], axis=1)
        start += length
    keys, inverse = np.unique(codes, axis=0, return_inverse=True)
    summed = np.zeros(len(keys))
    np.add.at(summed, inverse.ravel(), coef)
    # terms that cancel by symmetry leave round-off: zero it (relative to the unsymmetrised size)
    summed[np.abs(summed) < RANK_TOL * np.abs(coef).max(initial=0.0)] = 0.0
    return keys, summed


def _space_key(ls, runs):
    out, start = [], 0
    for length in runs:
        out.append(tuple(sorted(ls[start:start + length])))
        start += length
    return tuple(out)


def coupling_spaces(runs: tuple[int, ...], lmax: int) -> dict:
    """Candidates (ls, LS) of every space, lexicographically ordered: {space key: [(ls, LS), ...]}."""
    rank = sum(runs)
    spaces: dict[tuple, list] = {}
    for ls in product(range(lmax + 1), repeat=rank):
        if sum(ls) % 2:
            continue
        for LS in lint_options(ls):
            spaces.setdefault(_space_key(ls, runs), []).append((ls, LS))
    return spaces


def _greedy_independent(candidates, runs):
    """Indices of the candidates kept by the greedy rank test, and the space's rank."""
    vectors = [symmetrized_coupling(ls, LS, runs) for ls, LS in candidates]
    all_keys = np.concatenate([k for k, _ in vectors], axis=0)
    _, inverse = np.unique(all_keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    ncols = int(inverse.max()) + 1 if len(inverse) else 0
    basis = np.zeros((0, ncols))
    kept = []
    start = 0
    for k, (keys, coef) in enumerate(vectors):
        v = np.zeros(ncols)
        v[inverse[start:start + len(keys)]] = coef
        start += len(keys)
        norm = np.linalg.norm(v)
        if norm == 0.0:
            continue
        v /= norm
        for _ in range(2):                       # Gram-Schmidt, twice for round-off
            v = v - basis.T @ (basis @ v)
        resid = np.linalg.norm(v)
        if resid > RANK_TOL:
            basis = np.vstack([basis, v / resid])
            kept.append(k)
    return kept


@lru_cache(maxsize=None)
def independent_couplings(runs: tuple[int, ...], lmax: int) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """The independent (ls, LS) of a (mus, ns) combination with run lengths ``runs``.

    All l <= ``lmax``; returned in lexicographic order of (ls, LS), which is the
    order of the functions in a block.  Cached.
    """
    runs = tuple(int(r) for r in runs)
    if any(r < 1 for r in runs) or not runs:
        raise ValueError(f"run lengths must be positive, got {runs}")
    chosen = []
    for candidates in coupling_spaces(runs, int(lmax)).values():
        for k in _greedy_independent(candidates, runs):
            chosen.append(candidates[k])
    return tuple(sorted(chosen))
