"""The nonlinear ACE model of a fit: its parameters, tables and the two numba passes.

Parameters (pacemaker's model class):

- basis coefficients C[k, p] of every B-function k (of its central element) and
  density p, in the design tables' column order (``model.bbasis``, pyace's sort);
- radial coefficients crad[n, l, k] of R_nl = Σ_k crad g_k, one set per
  unordered element pair (a bond and its mirror share them, as pacemaker's
  files require).

The spline tables of R_nl and of the rank-1 densities, and the product tree's
node coefficients, are linear in the parameters, so each evaluation rebuilds
them from the fixed g_k splines and a sparse leaf matrix (milliseconds).
Energies, forces and virials then come from the engine's kernel itself
(``kernel.ace_forces``) and the gradient from ``acemd.potential.adjoint_kernel``,
which runs on the kernel's per-atom code.
The file written from the parameters (``to_potential``) goes through the
B-basis reader, and the tests check that the engine's evaluator of that file
equals these passes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..potential import ACEPotential, CloseContactError
from scipy import sparse

from ..potential.adjoint_kernel import fit_gradient
from ..potential.design_kernel import build_design_tables
from ..potential.kernel import STAGE_ALL, TOO_CLOSE, ace_forces
from ..potential.tables import _conjugation_sign, conjugate_index, product_tree

__all__ = ["NonlinearModel", "Evaluation"]

VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


@dataclass
class Evaluation:
    """Predictions of a batch: energies (nstructures,) eV, forces (n_local, 3) eV/Å and
    V·stress (nstructures, 6) eV, Voigt, ASE sign (NaN rows for non-periodic structures)."""

    energies: np.ndarray
    forces: np.ndarray
    virial_stress: np.ndarray


class NonlinearModel:
    """A B-basis (``acemd.fit.basis.BasisSpec``) with trainable C and crad.

    ``coeffs``: per element (nfuncs, ndensity) in spec order (None: zeros, pacemaker's
    default); ``crad``: dict unordered pair (sorted tuple of symbols) -> (nradmax, lmax+1,
    nradbase) (None: each bond's own, delta_nk unless set).
    """

    def __init__(self, spec, coeffs=None, crad=None):
        self.spec = spec
        self.elements = list(spec.elements)
        nel = len(self.elements)
        nd = spec.ndensity
        if coeffs is None:
            coeffs = [np.zeros((n, d)) for n, d in zip(spec.nfuncs, nd)]
        self._bond_blocks = {}             # unordered pair -> the BondSpecs of its blocks
        for b in spec.blocks:
            if b.bond is not None:
                pair = tuple(sorted((b.elements[0], b.elements[-1])))
                self._bond_blocks.setdefault(pair, []).append(b.bond)
        self.groups = sorted(self._bond_blocks)
        if crad is not None:
            for pair, c in crad.items():
                for bond in self._bond_blocks[tuple(sorted(pair))]:
                    bond.coefficients = np.array(c, dtype=float)
        self.potential = ACEPotential.from_model(spec.to_potential(coeffs), source=f"{spec.source} (model)")
        model = self.potential.model
        t = self.tables = self.potential.tables
        self.design = build_design_tables(model, t)
        self.ncols = self.design.ncols
        self.ndensity = np.array(nd, dtype=np.int64)
        self.ndensity_max = int(t.ndensity_max)
        self.nradbase, self.nradmax, self.lmax = t.nradbase, t.nradmax, t.lmax
        self.nrl = self.nradmax * (self.lmax + 1)
        # parameter layout: C entries (column-major by element: column k, density p < nd), then crad groups
        self.column_element = np.repeat(np.arange(nel), np.diff(self.design.col_offsets))
        self.coef_mask = np.zeros((self.ncols, self.ndensity_max), dtype=bool)
        for c, mu in enumerate(self.column_element):
            self.coef_mask[c, :nd[mu]] = True
        self.crad_shapes = {}
        self.bond_group = np.full(nel * nel, -1, dtype=np.int64)
        index = {el: i for i, el in enumerate(self.elements)}
        for g, pair in enumerate(self.groups):
            bond = self._bond_blocks[pair][0]
            self.crad_shapes[pair] = (bond.nradmax, bond.lmax + 1, bond.nradbase)
            a, b = index[pair[0]], index[pair[1]]
            self.bond_group[a * nel + b] = g
            self.bond_group[b * nel + a] = g
        self.n_coef = int(self.coef_mask.sum())
        self.n_crad = int(sum(np.prod(s) for s in self.crad_shapes.values()))
        # fixed splines: g_k and the core column per bond
        self._g_tables = np.ascontiguousarray(t.basis_tables)                 # (nbonds, nx, nradbase, 4)
        self._core_table = np.ascontiguousarray(t.force_tables[:, :, -1:, :])  # (nbonds, nx, 1, 4)
        d = self.design
        self._r1 = [(int(d.r1_col[f]), mu, *divmod(int(d.r1_a1[f]), self.nradbase))
                    for mu in range(nel) for f in range(d.r1_offsets[mu], d.r1_offsets[mu + 1])]
        self._build_tree()
        self._table_key = None
        self._table = None
        self.coef = self._coef_matrix(coeffs)
        self.crad = {pair: np.array(self._bond_blocks[pair][0].radcoefficients, dtype=float)
                     for pair in self.groups}

    def _build_tree(self):
        """The product tree of the B-functions (rank >= 2) and the leaf matrix L (nodes x columns):
        node_coef = L @ C.  Conjugate products merge as in the kernel's tables (Re P* = ±Re P)."""
        d = self.design
        nlm = (self.lmax + 1) ** 2
        parents, factors, rows, cols, vals = [], [], [], [], []
        node_offsets = [0]
        prod_leaves = {}
        for c in range(self.ncols):
            for q in range(d.leaf_offsets[c], d.leaf_offsets[c + 1]):
                prod_leaves.setdefault(int(d.leaf_prod[q]), []).append((c, float(d.leaf_coef[q])))
        for mu in range(len(self.elements)):
            keys = {}
            for p in range(d.prod_offsets[mu], d.prod_offsets[mu + 1]):
                keys[tuple(int(a) for a in d.fac_index[d.fac_offsets[p]:d.fac_offsets[p + 1]])] = p
            merged = {}                        # kept key -> [(column, coefficient)]
            for key, p in keys.items():
                ckey = tuple(sorted(conjugate_index(a, nlm) for a in key))
                keep = min(key, ckey) if ckey in keys else key
                sign = 1.0 if keep == key else _conjugation_sign(keep, nlm)
                merged.setdefault(keep, []).extend((c, sign * v) for c, v in prod_leaves.get(p, []))
            parent, factor, node_of = product_tree(list(merged), len(factors))
            parents += parent
            factors += factor
            for key, leaves in merged.items():
                for c, v in leaves:
                    rows.append(node_of[key])
                    cols.append(c)
                    vals.append(v)
            node_offsets.append(len(factors))
        n_nodes = len(factors)
        L = sparse.coo_matrix((vals, (rows, cols)), shape=(n_nodes, self.ncols)).tocsr()
        L.sum_duplicates()
        self.leaf_matrix = L
        by_col = L.tocsc()
        by_col.sort_indices()
        self.leaf_offsets = by_col.indptr.astype(np.int64)
        self.leaf_node = by_col.indices.astype(np.int64)
        self.leaf_coef = by_col.data.astype(float)
        self.node_offsets = np.array(node_offsets, np.int64)
        self.node_parent = np.array(parents, np.int64)
        self.node_factor = np.array(factors, np.int64)

    def node_coefficients(self, coef) -> np.ndarray:
        """(n_nodes, ndensity_max) tree coefficients of basis coefficients C."""
        return np.ascontiguousarray(self.leaf_matrix @ coef)

    # -- parameters -------------------------------------------------------------------------------
    def _coef_matrix(self, coeffs) -> np.ndarray:
        """(ncols, ndensity_max) in column order from per-element (nfuncs, nd) in spec order."""
        M = np.zeros((self.ncols, self.ndensity_max))
        for mu, block in enumerate(coeffs):
            block = np.asarray(block, dtype=float).reshape(self.spec.nfuncs[mu], -1)
            off = int(self.design.col_offsets[mu])
            order = self.spec.bbasis_order[mu]
            M[off:off + len(order), :block.shape[1]] = block[order]
        return M

    def spec_coefficients(self, coef=None) -> list[np.ndarray]:
        """Per element (nfuncs, nd) in spec order (what ``BasisSpec.to_tree`` takes)."""
        coef = self.coef if coef is None else coef
        out = []
        for mu in range(len(self.elements)):
            off = int(self.design.col_offsets[mu])
            order = self.spec.bbasis_order[mu]
            block = np.zeros((len(order), int(self.ndensity[mu])))
            block[order] = coef[off:off + len(order), :self.ndensity[mu]]
            out.append(block)
        return out

    def pack(self, coef=None, crad=None) -> np.ndarray:
        """The parameter vector θ: C entries (by column, density), then each pair's crad (C order)."""
        coef = self.coef if coef is None else coef
        crad = self.crad if crad is None else crad
        return np.concatenate([coef[self.coef_mask]] + [np.ravel(crad[p]) for p in self.groups])

    def unpack(self, theta):
        """(coef matrix, crad dict) of a parameter vector."""
        theta = np.asarray(theta, dtype=float)
        coef = np.zeros((self.ncols, self.ndensity_max))
        coef[self.coef_mask] = theta[:self.n_coef]
        crad, pos = {}, self.n_coef
        for p in self.groups:
            n = int(np.prod(self.crad_shapes[p]))
            crad[p] = theta[pos:pos + n].reshape(self.crad_shapes[p]).copy()
            pos += n
        return coef, crad

    def set_parameters(self, theta):
        self.coef, self.crad = self.unpack(theta)

    def parameter_kinds(self) -> np.ndarray:
        """Per entry of θ: 0 for a basis coefficient, 1 for a radial one."""
        return np.concatenate([np.zeros(self.n_coef, np.int64), np.ones(self.n_crad, np.int64)])

    def parameter_elements(self) -> list[tuple[str, ...]]:
        """Per entry of θ: the element (basis coefficient) or the pair (radial)."""
        out = [(self.elements[mu],) for mu, m in zip(self.column_element, self.coef_mask) for _ in range(m.sum())]
        for p in self.groups:
            out += [p] * int(np.prod(self.crad_shapes[p]))
        return out

    def to_potential(self, theta=None, source=None):
        """The CTildePotential (with B-basis) of parameters θ, by the B-basis reader's path."""
        coef, crad = (self.coef, self.crad) if theta is None else self.unpack(theta)
        for pair in self.groups:
            for bond in self._bond_blocks[pair]:
                bond.coefficients = crad[pair]
        pot = self.spec.to_potential(self.spec_coefficients(coef))
        if source:
            pot.source = source
        return pot

    def to_tree(self, theta=None, metadata=None) -> dict:
        coef, crad = (self.coef, self.crad) if theta is None else self.unpack(theta)
        for pair in self.groups:
            for bond in self._bond_blocks[pair]:
                bond.coefficients = crad[pair]
        return self.spec.to_tree(self.spec_coefficients(coef), metadata=metadata)

    # -- tables -----------------------------------------------------------------------------------
    def spline_table(self, coef, crad, with_g=True) -> np.ndarray:
        """Per bond [rank-1 part of each density, R_nl, core(, g_k)] spline columns (the last one built
        is cached: the forward and the gradient pass of one evaluation share it)."""
        key = (hashlib.sha1(np.ascontiguousarray(coef).tobytes()
                            + b"".join(np.ascontiguousarray(crad[p]).tobytes() for p in self.groups)).digest())
        if self._table_key != key:
            self._table = self._build_table(coef, crad)
            self._table_key = key
        if with_g:
            return self._table
        ncol = self.ndensity_max + self.nrl + 1
        return np.ascontiguousarray(self._table[:, :, :ncol, :])

    def _build_table(self, coef, crad) -> np.ndarray:
        nel = len(self.elements)
        nb, nx = self._g_tables.shape[:2]
        ndm = self.ndensity_max
        nk = self.nradbase
        tab = np.zeros((nb, nx, ndm + self.nrl + 1 + nk, 4))
        full = np.zeros((nk, self.nradmax, self.lmax + 1))
        for bond in range(nb):
            c = crad[self.groups[self.bond_group[bond]]]
            full[:] = 0.0
            full[:c.shape[2], :c.shape[0], :c.shape[1]] = np.transpose(c, (2, 0, 1))
            g = np.transpose(self._g_tables[bond], (0, 2, 1)).reshape(nx * 4, nk)     # (x, c) rows, k columns
            tab[bond, :, ndm:ndm + self.nrl, :] = (g @ full.reshape(nk, self.nrl)).reshape(nx, 4, self.nrl) \
                .transpose(0, 2, 1)
        tab[:, :, ndm + self.nrl, :] = self._core_table[:, :, 0, :]
        tab[:, :, ndm + self.nrl + 1:, :] = self._g_tables
        for col, mu_i, mu_j, k in self._r1:
            bond = mu_i * nel + mu_j
            tab[bond, :, :ndm, :] += self._g_tables[bond, :, k, None, :] * coef[col][None, :, None]
        return tab

    def _common_args(self):
        t = self.tables
        return (t.spline_nlut, t.spline_scale, t.bond_rcut, t.bond_cut_in, t.bond_dcut_in, self.ndensity,
                t.embedding_kind, t.fs_parameters, t.rho_core_cut, t.drho_core_cut, t.E0, t.ylm_a, t.ylm_b)

    def _check(self, status, i, j, batch):
        if status == TOO_CLOSE:
            d = np.linalg.norm(batch.positions[j] - batch.positions[i])
            s = int(batch.struct_of[i])
            raise CloseContactError(f"structure {s}: two atoms are {d:.3g} Å apart, closer than the radial "
                                    f"tabulation step ({self.potential.model.delta_spline_bins} Å)")

    # -- passes -----------------------------------------------------------------------------------
    def evaluate(self, batch, theta=None, virials=True) -> Evaluation:
        """Energies, forces and V·stress of a :class:`~acemd.fit.batch.StructureBatch` (the engine's kernel);
        ``virials=False`` skips the per-structure virials (V·stress NaN), which need per-atom ones."""
        coef, crad = (self.coef, self.crad) if theta is None else self.unpack(theta)
        t = self.tables
        tab = self.spline_table(coef, crad, with_g=False)
        site_energy = np.zeros(batch.n_local)
        forces = np.zeros((batch.n_ext, 3))
        virial = np.zeros((3, 3))
        site_virial = np.zeros((batch.n_ext, 3, 3) if virials else (1, 3, 3))
        status, i, j = ace_forces(
            batch.positions, batch.species, batch.n_local, batch.offsets, batch.neighbors,
            t.nradmax, t.lmax, t.ndensity_max, t.is_zbl, t.cutoff_max, tab, *self._common_args()[:11],
            self.node_offsets, self.node_parent, self.node_factor, self.node_coefficients(coef),
            t.ylm_a, t.ylm_b, site_energy, forces, virial, site_virial, bool(virials), STAGE_ALL)
        self._check(status, i, j, batch)
        vs = np.full((batch.nstructures, 6), np.nan)
        if not virials:
            return Evaluation(batch.structure_sum(site_energy), batch.fold_forces(forces), vs)
        per_structure = np.zeros((batch.nstructures, 9))
        structure_of_ext = batch.struct_of[batch.owner]
        for a in range(9):
            per_structure[:, a] = np.bincount(structure_of_ext, weights=site_virial.reshape(-1, 9)[:, a],
                                              minlength=batch.nstructures)
        w = per_structure.reshape(-1, 3, 3)
        sym = -0.5 * (w + np.transpose(w, (0, 2, 1)))
        for v, (a, b) in enumerate(VOIGT):
            vs[batch.periodic, v] = sym[batch.periodic, a, b]
        return Evaluation(batch.structure_sum(site_energy), batch.fold_forces(forces), vs)

    def gradient(self, batch, energy_adjoint, force_adjoint, stress_adjoint=None, theta=None,
                 want_coef=True, want_radial=True):
        """(G per structure, dG/dθ) for G = Σ_s a_s E_s + Σ φ·F + Σ h·(V σ) (Voigt h, eV-based).

        ``energy_adjoint`` (nstructures,), ``force_adjoint`` (n_local, 3), ``stress_adjoint``
        (nstructures, 6) or None.  With the loss's derivatives by E, F and Vσ this is dL/dθ.
        """
        coef, crad = (self.coef, self.crad) if theta is None else self.unpack(theta)
        t, d = self.tables, self.design
        tab = self.spline_table(coef, crad, with_g=True)
        tangent = np.ascontiguousarray(np.asarray(force_adjoint, float)[batch.owner])
        H = np.zeros((batch.nstructures, 3, 3))
        if stress_adjoint is not None:
            h = np.nan_to_num(np.asarray(stress_adjoint, dtype=float))
            for v, (a, b) in enumerate(VOIGT):
                if a == b:
                    H[:, a, a] += h[:, v]
                else:
                    H[:, a, b] += 0.5 * h[:, v]
                    H[:, b, a] += 0.5 * h[:, v]
        grad_coef = np.zeros((self.ncols, self.ndensity_max))
        nb = len(self.elements) ** 2
        grad_crad = np.zeros((nb, self.nradmax, self.lmax + 1, self.nradbase))
        g_value = np.zeros(batch.nstructures)
        status, i, j = fit_gradient(
            batch.positions, batch.species, batch.n_local, batch.offsets, batch.neighbors, batch.struct_of,
            tangent, H, np.ascontiguousarray(energy_adjoint, dtype=float),
            t.nradmax, t.lmax, t.ndensity_max, t.nradbase, t.is_zbl, t.cutoff_max, tab, *self._common_args(),
            self.node_offsets, self.node_parent, self.node_factor, self.node_coefficients(coef),
            d.col_offsets, self.leaf_offsets, self.leaf_node, self.leaf_coef,
            d.r1_offsets, d.r1_col, d.r1_a1, np.ascontiguousarray(coef),
            bool(want_coef), bool(want_radial), grad_coef, grad_crad, g_value)
        self._check(status, i, j, batch)
        parts = [grad_coef[self.coef_mask]]
        for g, pair in enumerate(self.groups):
            acc = np.zeros((self.nradmax, self.lmax + 1, self.nradbase))
            for bond in np.flatnonzero(self.bond_group == g):
                acc += grad_crad[bond]
            n, l, k = self.crad_shapes[pair]
            parts.append(acc[:n, :l, :k].ravel())
        return g_value, np.concatenate(parts)
