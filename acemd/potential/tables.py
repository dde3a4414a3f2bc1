"""Flat kernel tables built from a :class:`CTildePotential`.

The C-tilde basis is a sum over products of atomic-base components A_{mu n l m}.
Products that share leading factors share work: every product (the factors
sorted by their flat A index) is a path in a prefix tree, each tree node holds
the product of the factors on its path, and a node costs one complex
multiplication forward and two backward.  Identical products from different
functions (or m-combinations) merge into one node whose coefficients add up.
This is the "recursive" evaluation of Lysogorskiy et al. (2021) in its simplest
form; it needs no special case for ranks or densities.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .model import CTildePotential
from .radial import tabulate_bond

EMBEDDING_CODES = {"FinnisSinclair": 0, "FinnisSinclairShiftedScaled": 1}


@dataclass
class KernelTables:
    """Everything the numba kernel reads, as contiguous arrays (see kernel.py)."""

    nelements: int
    nradbase: int
    nradmax: int
    lmax: int
    ndensity_max: int
    is_zbl: bool
    cutoff_max: float                # Å
    # radial splines, per bond b = mu_i * nelements + mu_j
    force_tables: np.ndarray         # (nbonds, nlut_max+1, ndensity_max + nrl + 1, 4): rank-1 part
                                     # of each density as one function, R_nl, core (the force kernel's)
    basis_tables: np.ndarray         # (nbonds, nlut_max+1, nradbase, 4): every g_k (the active-set projections)
    spline_nlut: np.ndarray          # (nbonds,) int64
    spline_scale: np.ndarray         # (nbonds,) 1/Å
    bond_rcut: np.ndarray            # (nbonds,) Å
    bond_cut_in: np.ndarray          # (nbonds,) Å, ZBL switch window start + width
    bond_dcut_in: np.ndarray         # (nbonds,) Å
    # embedding per element
    ndensity: np.ndarray             # (nel,) int64
    embedding_kind: np.ndarray       # (nel,) int64, EMBEDDING_CODES
    fs_parameters: np.ndarray        # (nel, ndensity_max, 2): weight, exponent
    rho_core_cut: np.ndarray         # (nel,)
    drho_core_cut: np.ndarray        # (nel,)
    E0: np.ndarray                   # (nel,) eV
    # rank-1 functions, CSR over central elements
    rank1_offsets: np.ndarray        # (nel+1,)
    rank1_index: np.ndarray          # flat index mu_j * nradbase + k
    rank1_coef: np.ndarray           # (n_rank1, ndensity_max)
    # product tree, CSR over central elements; breadth-first: parents precede children,
    # siblings are consecutive
    node_offsets: np.ndarray         # (nel+1,)
    node_parent: np.ndarray          # global node index, -1 for a first factor
    node_factor: np.ndarray          # flat A index (mu_j*nradmax + n)*(lmax+1)^2 + l*l + l + m
    node_coef: np.ndarray            # (n_nodes, ndensity_max)
    # spherical-harmonic recursion coefficients
    ylm_a: np.ndarray                # (lmax+1, lmax+1)
    ylm_b: np.ndarray                # (lmax+1, lmax+1)

    @property
    def n_a_full(self) -> int:
        return self.nelements * self.nradmax * (self.lmax + 1) ** 2

    def kernel_args(self):
        """The table arguments of ``kernel.ace_forces`` in order."""
        return (self.nradmax, self.lmax, self.ndensity_max, self.is_zbl,
                self.cutoff_max, self.force_tables, self.spline_nlut, self.spline_scale,
                self.bond_rcut, self.bond_cut_in, self.bond_dcut_in, self.ndensity,
                self.embedding_kind, self.fs_parameters, self.rho_core_cut, self.drho_core_cut,
                self.E0, self.node_offsets, self.node_parent, self.node_factor, self.node_coef,
                self.ylm_a, self.ylm_b)


def ylm_recursion_coefficients(lmax):
    """Coefficients of Q_lm = a_lm (z Q_{l-1,m} - b_lm Q_{l-2,m}) for sqrt(4pi)-normalised Y_lm."""
    a = np.zeros((lmax + 1, lmax + 1))
    b = np.zeros((lmax + 1, lmax + 1))
    for l in range(2, lmax + 1):
        for m in range(0, l - 1):
            a[l, m] = np.sqrt((4.0 * l * l - 1.0) / (l * l - m * m))
            b[l, m] = np.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1.0) ** 2 - 1.0))
    return a, b


def lm_of(offset: int) -> tuple[int, int]:
    """(l, m) of the flat harmonic index offset = l*l + l + m."""
    l = int(np.sqrt(offset))
    while l * l > offset:
        l -= 1
    while (l + 1) * (l + 1) <= offset:
        l += 1
    return l, offset - l * l - l


def conjugate_index(a: int, nlm: int) -> int:
    """Flat A index of A_{mu n l -m} given that of A_{mu n l m}."""
    _, m = lm_of(a % nlm)
    return a - 2 * m


def merge_conjugate_products(products: dict, nlm: int) -> dict:
    """Keep one product of each conjugate pair, with the pair's coefficients combined.

    A_{l,-m} = (-1)^m conj(A_{l,m}), so the product P* of the factors of P with
    all m negated is (-1)^{sum m} conj(P) and Re P* = (-1)^{sum m} Re P: the energy
    only needs Re, so c Re P + c* Re P* = (c + (-1)^{sum m} c*) Re P.  C-tilde
    bases list both members of (almost) every pair, so this halves the leaves
    of the product tree and shrinks its inner nodes; the numbers change only by
    round-off (the order of multiplications and sums).
    """
    out: dict[tuple, np.ndarray] = {}
    done = set()
    for key, coef in products.items():
        if key in done:
            continue
        ckey = tuple(sorted(conjugate_index(a, nlm) for a in key))
        if ckey == key or ckey not in products:
            out[key] = coef
            done.add(key)
            continue
        keep, other = (key, ckey) if key < ckey else (ckey, key)
        sign = _conjugation_sign(keep, nlm)
        out[keep] = products[keep] + sign * products[other]
        done.add(key)
        done.add(ckey)
    return out


def _conjugation_sign(key, nlm) -> float:
    """(-1)^{sum of m} over the factors of a product."""
    total = 0
    for a in key:
        total += (a - conjugate_index(a, nlm)) // 2
    return -1.0 if total % 2 else 1.0


def fold_rank1_splines(spline_tables, nel, nradbase, ndmax, r1_offsets, r1_index, r1_coef):
    """The force kernel's spline tables: per bond (mu_i, mu_j) the rank-1 part of each
    density, sum_k c_kp g_k(r), as one function, then the R_nl and core columns.

    Rank-1 functions are linear in A1_k = sum_j g_k(r_ij), so density p gets
    sum_j phi_p(r_ij) with phi_p = sum_k c_kp g_k; cubic Hermite interpolation is
    linear in the node values and slopes, so the spline of phi_p is the same sum
    of the g_k splines (equal to round-off) and the kernel interpolates ndensity
    functions per pair instead of nradbase.
    """
    nbonds, nrows, nfunc, _ = spline_tables.shape
    out = np.zeros((nbonds, nrows, ndmax + nfunc - nradbase, 4))
    out[:, :, ndmax:, :] = spline_tables[:, :, nradbase:, :]
    for mu_i in range(nel):
        for f in range(r1_offsets[mu_i], r1_offsets[mu_i + 1]):
            mu_j, k = divmod(int(r1_index[f]), nradbase)
            bond = mu_i * nel + mu_j
            out[bond, :, :ndmax, :] += spline_tables[bond, :, k, None, :] * r1_coef[f][None, :, None]
    return out


def product_tree(keys, first_node: int = 0):
    """The prefix tree of a set of products (sorted tuples of flat A indices).

    Factors ordered by how many products use them (most used first) share longer
    prefixes; nodes are breadth first (by depth, then in prefix order), so the
    children of a node are consecutive (the backward pass sums their adjoints in
    a register) and parents precede children.  Returns (parent, factor, node_of):
    parent/factor per node (global indices from ``first_node``; parent -1 for a
    first factor) and the node of each input key.
    """
    usage = Counter(a for key in keys for a in key)
    ordered = {key: tuple(sorted(key, key=lambda a: (-usage[a], a))) for key in keys}
    prefixes = set()
    for key in ordered.values():
        for k in range(1, len(key) + 1):
            prefixes.add(key[:k])
    node_of_prefix: dict[tuple, int] = {}
    parent, factor = [], []
    for key in sorted(prefixes, key=lambda k: (len(k), [(-usage[a], a) for a in k])):
        node_of_prefix[key] = first_node + len(factor)
        parent.append(node_of_prefix[key[:-1]] if len(key) > 1 else -1)
        factor.append(key[-1])
    return parent, factor, {key: node_of_prefix[o] for key, o in ordered.items()}


def build_tables(pot: CTildePotential, merge_conjugates: bool = True) -> KernelTables:
    nel = pot.nelements
    bonds = pot.bonds
    nradbase = max(b.nradbase for b in bonds.values())
    nradmax = max(b.nradmax for b in bonds.values())
    lmax = max(b.lmax for b in bonds.values())
    for funcs in pot.functions:           # functions may use l beyond a bond's lmax only if padded
        for f in funcs:
            if f.rank > 1:
                lmax = max(lmax, max(f.ls))
    nlm = (lmax + 1) ** 2
    ndmax = max(e.ndensity for e in pot.embeddings)

    tabs = [tabulate_bond(pot, i, j, nradbase, nradmax, lmax) for i in range(nel) for j in range(nel)]
    nlut_max = max(t[0] for t in tabs)
    nfunc = tabs[0][2].shape[1]
    spline_tables = np.zeros((nel * nel, nlut_max + 1, nfunc, 4))
    for b, (nlut, _, table) in enumerate(tabs):
        spline_tables[b, :nlut + 1] = table
    spline_nlut = np.array([t[0] for t in tabs], dtype=np.int64)
    spline_scale = np.array([t[1] for t in tabs])
    bond_list = [bonds[(i, j)] for i in range(nel) for j in range(nel)]

    fs = np.zeros((nel, ndmax, 2))
    for mu, emb in enumerate(pot.embeddings):
        fs[mu, :emb.ndensity] = np.reshape(emb.fs_parameters, (emb.ndensity, 2))

    r1_offsets = [0]
    r1_index, r1_coef = [], []
    node_offsets = [0]
    parents, factors, coefs = [], [], []
    for mu in range(nel):
        nd = pot.embeddings[mu].ndensity
        products: dict[tuple, np.ndarray] = {}
        for f in pot.functions[mu]:
            if f.rank == 1:
                c = np.zeros(ndmax)
                c[:nd] = f.ctildes[0]
                r1_index.append(f.mus[0] * nradbase + f.ns[0] - 1)
                r1_coef.append(c)
                continue
            base = [(f.mus[t] * nradmax + f.ns[t] - 1) * nlm + f.ls[t] * f.ls[t] + f.ls[t]
                    for t in range(f.rank)]
            for ms, ct in zip(f.ms_combs, f.ctildes):
                key = tuple(sorted(base[t] + int(ms[t]) for t in range(f.rank)))
                acc = products.get(key)
                if acc is None:
                    acc = products[key] = np.zeros(ndmax)
                acc[:nd] += ct
        r1_offsets.append(len(r1_index))
        if merge_conjugates:
            products = merge_conjugate_products(products, nlm)
        tree_parent, tree_factor, node_of = product_tree(products, len(factors))
        parents.extend(tree_parent)
        factors.extend(tree_factor)
        zero = np.zeros(ndmax)
        coefs.extend([zero] * len(tree_factor))
        for key, c in products.items():
            coefs[node_of[key]] = c
        node_offsets.append(len(factors))

    rank1_index = np.array(r1_index, dtype=np.int64)
    rank1_coef = np.array(r1_coef, dtype=float).reshape(-1, ndmax)
    force_tables = fold_rank1_splines(spline_tables, nel, nradbase, ndmax,
                                      np.array(r1_offsets, dtype=np.int64), rank1_index, rank1_coef)
    a, b = ylm_recursion_coefficients(lmax)
    return KernelTables(
        nelements=nel, nradbase=nradbase, nradmax=nradmax, lmax=lmax, ndensity_max=ndmax,
        is_zbl=pot.inner_cutoff_type == "zbl", cutoff_max=pot.cutoff_max,
        force_tables=force_tables,
        basis_tables=np.ascontiguousarray(spline_tables[:, :, :nradbase, :]), spline_nlut=spline_nlut, spline_scale=spline_scale,
        bond_rcut=np.array([bd.rcut for bd in bond_list]),
        bond_cut_in=np.array([bd.rcut_in for bd in bond_list]),
        bond_dcut_in=np.array([bd.dcut_in for bd in bond_list]),
        ndensity=np.array([e.ndensity for e in pot.embeddings], dtype=np.int64),
        embedding_kind=np.array([EMBEDDING_CODES[e.npoti] for e in pot.embeddings], dtype=np.int64),
        fs_parameters=fs,
        rho_core_cut=np.array([e.rho_core_cutoff for e in pot.embeddings]),
        drho_core_cut=np.array([e.drho_core_cutoff for e in pot.embeddings]),
        E0=np.asarray(pot.E0, dtype=float),
        rank1_offsets=np.array(r1_offsets, dtype=np.int64),
        rank1_index=rank1_index,
        rank1_coef=rank1_coef,
        node_offsets=np.array(node_offsets, dtype=np.int64),
        node_parent=np.array(parents, dtype=np.int64),
        node_factor=np.array(factors, dtype=np.int64),
        node_coef=np.array(coefs, dtype=float).reshape(-1, ndmax),
        ylm_a=a, ylm_b=b,
    )
