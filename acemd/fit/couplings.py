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

__all__ = ["lint_options", "symmetrized_coupling", "coupling_spaces", "invariant_dimension",
           "independent_couplings", "runs_of", "RANK_TOL"]

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


def _encode(codes, base):
    """One int64 per row: sum_t codes[:, t] * base**t."""
    weights = base ** np.arange(codes.shape[1], dtype=np.int64)
    return codes @ weights


def _sort_runs(codes, runs):
    start = 0
    for length in runs:
        if length > 1:
            codes[:, start:start + length] = np.sort(codes[:, start:start + length], axis=1)
        start += length
    return codes


def symmetrized_coupling(ls, LS, runs, base=None) -> tuple[np.ndarray, np.ndarray]:
    """The coupling of (ls, LS) as a sparse vector over run-symmetrised monomials.

    Each m-combination becomes the codes l*(l+1)+m of its factors, sorted inside
    every run (the factors of a run commute), encoded as one integer (digits in
    ``base``, default (max(ls)+1)^2).  Returns (sorted unique keys, summed
    coupling coefficients); sums that cancel by symmetry are set to zero.
    """
    ms, coef = _generalized_arrays(tuple(ls), tuple(LS))
    base = (max(ls) + 1) ** 2 if base is None else base
    ls_arr = np.asarray(ls, dtype=np.int64)[None, :]
    codes = _sort_runs(ls_arr * (ls_arr + 1) + ms, runs)
    keys, inverse = np.unique(_encode(codes, base), return_inverse=True)
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


def invariant_dimension(space) -> int:
    """Number of independent rotation invariants of a space (tuple of per-run sorted l's).

    The space is the tensor product over runs and over the distinct l of a run
    of Sym^a(V_l) (a: how often l occurs in the run); its invariants are counted
    by Weyl's integral (1/2pi) int (1 - cos t) chi(t) dt, with the character of
    Sym^a from the power sums p_k(t) = chi_l(k t) (Newton's identities).  The
    integrand is a trigonometric polynomial, so a uniform grid integrates it
    exactly.
    """
    degree = sum(sum(run) for run in space) + 1
    npts = 2 * degree + 8
    t = 2.0 * np.pi * np.arange(npts) / npts
    chi = np.ones(npts)
    for run in space:
        for l in sorted(set(run)):
            a = run.count(l)
            p = [None] + [1.0 + 2.0 * sum(np.cos(k * m * t) for m in range(1, l + 1)) for k in range(1, a + 1)]
            h = [np.ones(npts)]
            for j in range(1, a + 1):
                h.append(sum(p[k] * h[j - k] for k in range(1, j + 1)) / j)
            chi = chi * h[a]
    return int(round(float(np.mean((1.0 - np.cos(t)) * chi))))


def _space_monomials(space, runs, base):
    """Sorted keys of every run-symmetrised monomial of the space with sum(m) = 0."""
    ls = [l for run in space for l in run]
    grids = np.meshgrid(*[np.arange(-l, l + 1) for l in ls], indexing="ij")
    ms = np.stack([g.ravel() for g in grids], axis=1).astype(np.int64)
    ms = ms[ms.sum(axis=1) == 0]
    ls_arr = np.asarray(ls, dtype=np.int64)[None, :]
    return np.unique(_encode(_sort_runs(ls_arr * (ls_arr + 1) + ms, runs), base))


def _greedy_independent(space, candidates, runs):
    """Indices of the candidates kept by the greedy rank test (stops at the space's dimension)."""
    target = invariant_dimension(space)
    if target == 0:
        return []
    base = (max(max(run) for run in space) + 1) ** 2
    columns = _space_monomials(space, runs, base)
    basis = np.zeros((0, len(columns)))
    kept = []
    for k, (ls, LS) in enumerate(candidates):
        keys, coef = symmetrized_coupling(ls, LS, runs, base)
        v = np.zeros(len(columns))
        v[np.searchsorted(columns, keys)] = coef
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
            if len(kept) == target:
                return kept
    raise RuntimeError(f"couplings of runs {runs}, l's {space}: rank {len(kept)} of the candidates is "
                       f"below the number of invariants {target} (a bug in acemd.fit.couplings)")


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
    for space, candidates in coupling_spaces(runs, int(lmax)).items():
        for k in _greedy_independent(space, candidates, runs):
            chosen.append(candidates[k])
    return tuple(sorted(chosen))
