"""Active sets and the per-atom extrapolation grade gamma (pacemaker/ML-PACE convention).

pacemaker's active-set file (``.asi``) is a numpy ``.npz`` with one square matrix
per element symbol: the pseudo-inverse A^-1 of the element's active set.  For
an atom i of that element with B-basis projections b_i,

    gamma_i = max_k | sum_j b_ij (A^-1)_jk |.

The projections are the values of the element's B-basis functions at atom i,
rank-1 functions first, then the higher ranks, in pacemaker's sorted order
(rank, mus, ns, ls, number and list of m-combinations; kept by
:func:`acemd.potential.bbasis.read_bbasis_yaml` as ``CTildePotential.bbasis``).
A B-function is sum_ms C(ms) Re prod_t A_{mu_t n_t l_t m_t} (half basis), with
the A's built exactly as for the energy (``kernel._site_base``).

Two active-set kinds exist, told apart by the matrix size like pyace does:
"linear" (size = number of B-functions n: b is the projection itself, also for
ndensity > 1) and "full" (size n * ndensity: b = dE/dc, i.e. the projections
times dF/drho_p of each density p, density-major).

The projections run in a numba kernel over a product tree like the energy's
(:mod:`acemd.potential.tables`), except that each tree node carries a sparse
list of (B-function, coefficient) leaves instead of one coefficient per density.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import zipfile

import numpy as np
from numba import njit

from .kernel import OK, TOO_CLOSE, _embedding, _gather_neighbours, _site_base, max_row_length, site_buffers
from .model import CTildePotential

__all__ = ["ActiveSetError", "read_active_set", "projection_order", "ProjectionTables",
           "build_projection_tables", "ExtrapolationGrade", "gamma_from_projections"]


class ActiveSetError(ValueError):
    """An active-set file is missing, malformed, or does not fit the potential."""


def _bbasis_of(potential, where="") -> tuple[list[str], list]:
    """(elements, B-functions per element) of a CTildePotential, ACEPotential or dict."""
    model = getattr(potential, "model", potential)
    if isinstance(model, CTildePotential):
        if model.bbasis is None:
            src = model.source or "the potential"
            raise ActiveSetError(
                f"{where}{src} is a C-tilde potential (.yace/.ace) and has no B-basis; "
                "active sets (extrapolation grade) need the pacemaker B-basis .yaml the "
                "active set was built for")
        return list(model.elements), model.bbasis
    if isinstance(model, dict):
        return list(model), [model[el] for el in model]
    raise TypeError("expected a CTildePotential (from a .yaml), an ACEPotential or "
                    f"a dict element -> B-functions, got {type(potential).__name__}")


def projection_order(potential) -> dict[str, list[dict]]:
    """The B-functions behind each projection, per element (as pacemaker lists them).

    Each entry has ``elements`` (central element first), ``ns``, ``ls`` and ``LS``.
    """
    elements, bbasis = _bbasis_of(potential)
    return {el: [dict(elements=[el] + [elements[m] for m in f.mus], ns=list(f.ns),
                      ls=list(f.ls), LS=list(f.LS)) for f in bbasis[mu]]
            for mu, el in enumerate(elements)}


def read_active_set(path, potential) -> dict[str, np.ndarray]:
    """Read a pacemaker ``.asi`` file: {element: (n, n) float64 matrix}.

    ``potential`` is the B-basis potential (``CTildePotential`` read from a
    ``.yaml``, or an ``ACEPotential`` on one).  Raises :class:`ActiveSetError`
    naming the file when it is missing or not an npz, when its elements differ
    from the potential's, or when a matrix is not square with the size of the
    element's B-basis (linear) or B-basis x ndensity (full).
    """
    path = Path(path)
    elements, bbasis = _bbasis_of(potential, where=f"active set {path}: ")
    model = getattr(potential, "model", potential)
    ndens = ([e.ndensity for e in model.embeddings] if isinstance(model, CTildePotential)
             else [None] * len(elements))
    if not path.exists():
        raise ActiveSetError(f"active set {path}: file not found")
    if path.is_dir():
        raise ActiveSetError(f"active set {path}: is a directory, expected a pacemaker .asi file")
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ActiveSetError(f"active set {path}: a single numpy array, not an .npz archive "
                                 "(pacemaker's .asi holds one matrix per element symbol)")
        with npz:
            data = {k: np.asarray(npz[k]) for k in npz.files}
    except ActiveSetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ActiveSetError(f"active set {path}: cannot be read as an .npz archive ({exc})") from None
    missing = [el for el in elements if el not in data]
    extra = [k for k in data if k not in elements]
    pot_name = getattr(model, "source", "") or "the potential"
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no matrix for element(s) {', '.join(missing)}")
        if extra:
            parts.append(f"element(s) {', '.join(extra)} not in the potential")
        raise ActiveSetError(f"active set {path}: {'; '.join(parts)} (file has {', '.join(data) or 'nothing'}, "
                             f"{pot_name} has {', '.join(elements)}); was it built for this potential?")
    out = {}
    kinds = {}
    for mu, el in enumerate(elements):
        m = data[el]
        n = len(bbasis[mu])
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ActiveSetError(f"active set {path}: matrix of {el} has shape {m.shape}, expected square")
        if not np.issubdtype(m.dtype, np.number) or np.iscomplexobj(m):
            raise ActiveSetError(f"active set {path}: matrix of {el} has dtype {m.dtype}, expected real numbers")
        size = m.shape[0]
        nd = ndens[mu]
        if size == n:
            kinds[el] = "linear"
        elif nd is not None and nd > 1 and size == n * nd:
            kinds[el] = "full"
        else:
            full = f" or {n * nd} (full, x ndensity {nd})" if nd and nd > 1 else ""
            raise ActiveSetError(f"active set {path}: matrix of {el} is {size} x {size}, but {pot_name} "
                                 f"has {n} B-functions for {el}: expected {n} (linear){full}; "
                                 "was it built for this potential?")
        out[el] = np.ascontiguousarray(m, dtype=np.float64)
    if len(set(kinds.values())) > 1:
        raise ActiveSetError(f"active set {path}: mixes linear and full matrices "
                             f"({', '.join(f'{k}: {v}' for k, v in kinds.items())})")
    return out


# ---------------------------------------------------------------------------
# projection tables
# ---------------------------------------------------------------------------

@dataclass
class ProjectionTables:
    """Flat tables of the projection kernel (A-construction tables come from KernelTables)."""

    nfuncs: np.ndarray           # (nel,) number of B-functions per element
    r1_offsets: np.ndarray       # (nel+1,) CSR of rank-1 functions
    r1_func: np.ndarray          # B-function index (within the element)
    r1_index: np.ndarray         # flat A1 index mu_j * nradbase + n - 1
    node_offsets: np.ndarray     # (nel+1,) product tree, parents precede children
    node_parent: np.ndarray      # global node index, -1 for a first factor
    node_factor: np.ndarray      # flat A index, as in KernelTables
    leaf_offsets: np.ndarray     # (n_nodes+1,) CSR of the (function, coefficient) leaves per node
    leaf_func: np.ndarray
    leaf_coef: np.ndarray
    coeffs: list                 # per element (nfuncs, ndensity) B-basis coefficients

    def kernel_args(self):
        return (self.r1_offsets, self.r1_func, self.r1_index, self.node_offsets, self.node_parent,
                self.node_factor, self.leaf_offsets, self.leaf_func, self.leaf_coef)


def build_projection_tables(model: CTildePotential, tables) -> ProjectionTables:
    """Product-tree tables whose leaves are B-functions (``tables``: the model's KernelTables)."""
    elements, bbasis = _bbasis_of(model)
    nradbase, nradmax, lmax = tables.nradbase, tables.nradmax, tables.lmax
    nlm = (lmax + 1) ** 2
    r1_offsets, r1_func, r1_index = [0], [], []
    node_offsets, parents, factors = [0], [], []
    leaf_offsets, leaf_func, leaf_coef = [0], [], []
    nfuncs, coeffs = [], []
    for mu in range(len(elements)):
        funcs = bbasis[mu]
        nfuncs.append(len(funcs))
        coeffs.append(np.array([f.coeffs for f in funcs], dtype=float).reshape(len(funcs), -1))
        products: dict[tuple, dict[int, float]] = {}
        for k, f in enumerate(funcs):
            if f.rank == 1:
                r1_func.append(k)
                r1_index.append(f.mus[0] * nradbase + f.ns[0] - 1)
                continue
            base = [(f.mus[t] * nradmax + f.ns[t] - 1) * nlm + f.ls[t] * f.ls[t] + f.ls[t]
                    for t in range(f.rank)]
            for ms, c in zip(f.ms_combs.tolist(), f.gen_cgs.tolist()):
                key = tuple(sorted(base[t] + ms[t] for t in range(f.rank)))
                leaves = products.setdefault(key, {})
                leaves[k] = leaves.get(k, 0.0) + c
        r1_offsets.append(len(r1_func))
        prefixes = set()
        for key in products:
            for t in range(1, len(key) + 1):
                prefixes.add(key[:t])
        node_of: dict[tuple, int] = {}
        for key in sorted(prefixes):
            node_of[key] = len(factors)
            parents.append(node_of[key[:-1]] if len(key) > 1 else -1)
            factors.append(key[-1])
            for k, c in sorted(products.get(key, {}).items()):
                leaf_func.append(k)
                leaf_coef.append(c)
            leaf_offsets.append(len(leaf_func))
        node_offsets.append(len(factors))
    i64 = np.int64
    return ProjectionTables(
        nfuncs=np.array(nfuncs, dtype=i64),
        r1_offsets=np.array(r1_offsets, dtype=i64), r1_func=np.array(r1_func, dtype=i64),
        r1_index=np.array(r1_index, dtype=i64),
        node_offsets=np.array(node_offsets, dtype=i64), node_parent=np.array(parents, dtype=i64),
        node_factor=np.array(factors, dtype=i64), leaf_offsets=np.array(leaf_offsets, dtype=i64),
        leaf_func=np.array(leaf_func, dtype=i64), leaf_coef=np.array(leaf_coef, dtype=float),
        coeffs=coeffs)


@njit(cache=True, fastmath=True, error_model='numpy')
def ace_projections(positions, species, n_local, offsets, neighbors,
                    nradbase, nradmax, lmax, ndensity_max, force_tables, basis_tables,
                    spline_nlut, spline_scale, bond_rcut, ylm_a, ylm_b, nel,
                    r1_offsets, r1_func, r1_index, node_offsets, node_parent, node_factor,
                    leaf_offsets, leaf_func, leaf_coef,
                    proj):
    """Fill proj[i, :nfuncs(mu_i)] with the B-basis projections of the local atoms.

    The atomic base comes from the force kernel's own per-atom pass
    (``kernel._gather_neighbours``, ``kernel._site_base``); the rank-1 functions
    need every g_k, interpolated here from ``basis_tables``.  Returns (status,
    atom, neighbour) like ``kernel.ace_forces``.
    """
    nlm = (lmax + 1) * (lmax + 1)
    nlm_half = (lmax + 1) * (lmax + 2) // 2
    nfunc = force_tables.shape[2]
    max_neigh = max_row_length(offsets, n_local)
    max_nodes = max_row_length(node_offsets, nel)
    (nb_index, nb_mu, nb_r, nb_u, S, dS, Q, dQ, ph_re, ph_im,
     segment) = site_buffers(1, max_neigh, nfunc, nlm_half, lmax, nel)
    A_re = np.zeros((nel * nradmax * nlm, 1))
    A_im = np.zeros((nel * nradmax * nlm, 1))
    A1 = np.zeros(nel * nradbase)
    rho1 = np.zeros(ndensity_max)
    scratch = np.empty((4, max_neigh))
    y_re = np.empty(max_neigh)
    y_im = np.empty(max_neigh)
    node_val = np.empty(max_nodes, np.complex128)

    for i in range(n_local):
        mu_i = species[i]
        nn, jbad = _gather_neighbours(i, positions, species, offsets, neighbors, nel, spline_scale,
                                      bond_rcut, nb_index[0], nb_mu[0], nb_r[0], nb_u[0], scratch,
                                      segment[0])
        if jbad >= 0:
            return TOO_CLOSE, i, jbad
        _site_base(mu_i, nn, nel, nradmax, lmax, ndensity_max, force_tables, spline_nlut, spline_scale,
                   ylm_a, ylm_b, nb_mu[0], nb_r[0], nb_u[0], S[0], dS[0], Q[0], dQ[0], ph_re[0],
                   ph_im[0], segment[0], y_re, y_im, A_re, A_im, 0, rho1)
        # rank-1 basis A1_{mu_j k} = sum_j g_k(r_ij)
        A1[:] = 0.0
        for jn in range(nn):
            mu_j = nb_mu[0, jn]
            bond = mu_i * nel + mu_j
            xs = nb_r[0, jn] * spline_scale[bond]
            nl = int(xs)
            if nl < spline_nlut[bond]:
                w = xs - nl
                for k in range(nradbase):
                    A1[mu_j * nradbase + k] += (basis_tables[bond, nl, k, 0] + w * (basis_tables[bond, nl, k, 1]
                                                + w * (basis_tables[bond, nl, k, 2] + w * basis_tables[bond, nl, k, 3])))
        proj[i, :] = 0.0
        for f in range(r1_offsets[mu_i], r1_offsets[mu_i + 1]):
            proj[i, r1_func[f]] += A1[r1_index[f]]
        n0 = node_offsets[mu_i]
        n1 = node_offsets[mu_i + 1]
        for q in range(n0, n1):
            par = node_parent[q]
            fa = node_factor[q]
            if par < 0:
                v = complex(A_re[fa, 0], A_im[fa, 0])
            else:
                v = node_val[par - n0] * complex(A_re[fa, 0], A_im[fa, 0])
            node_val[q - n0] = v
            vr = v.real
            for e in range(leaf_offsets[q], leaf_offsets[q + 1]):
                proj[i, leaf_func[e]] += leaf_coef[e] * vr
    return OK, -1, -1


def gamma_from_projections(b, inv) -> np.ndarray:
    """gamma per row of ``b`` (n_atoms, n): max_k |sum_j b_j inv_jk|."""
    b = np.atleast_2d(np.asarray(b, dtype=float))
    if len(b) == 0:
        return np.zeros(0)
    return np.abs(b @ inv).max(axis=1)


class ExtrapolationGrade:
    """Per-atom projections and extrapolation grades of a B-basis ACEPotential.

    ``potential`` is an :class:`acemd.potential.ACEPotential` on a pacemaker
    ``.yaml``; ``active_set`` the ``.asi`` path (or None: projections only).
    """

    def __init__(self, potential, active_set=None):
        _bbasis_of(potential.model)                # clear error for C-tilde files
        self.potential = potential
        self.model = potential.model
        self.elements = list(self.model.elements)
        self.ptables = build_projection_tables(self.model, potential.tables)
        self.active_set_path = None if active_set is None else Path(active_set)
        self.matrices = None
        self.kind = None
        if active_set is not None:
            self.matrices = read_active_set(active_set, self.model)
            n_el = {el: int(self.ptables.nfuncs[mu]) for mu, el in enumerate(self.elements)}
            self.kind = ("linear" if all(m.shape[0] == n_el[el] for el, m in self.matrices.items())
                         else "full")

    def projections(self, positions, species, n_local, offsets, neighbors, atom_ids=None):
        """(n_local, max nfuncs) projections; row i is valid up to nfuncs[species[i]]."""
        from . import CloseContactError
        from .kernel import TOO_CLOSE
        t = self.potential.tables
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        species = np.ascontiguousarray(species, dtype=np.int64)
        proj = np.zeros((n_local, int(self.ptables.nfuncs.max(initial=0))))
        status, i, j = ace_projections(
            positions, species, n_local, np.ascontiguousarray(offsets, dtype=np.int64),
            np.ascontiguousarray(neighbors, dtype=np.int64),
            t.nradbase, t.nradmax, t.lmax, t.ndensity_max, t.force_tables, t.basis_tables,
            t.spline_nlut, t.spline_scale, t.bond_rcut, t.ylm_a, t.ylm_b, t.nelements,
            *self.ptables.kernel_args(), proj)
        if status == TOO_CLOSE:
            d = np.linalg.norm(positions[j] - positions[i])
            if atom_ids is not None:
                i, j = int(atom_ids[i]), int(atom_ids[j])
            raise CloseContactError(f"atoms {i} and {j} are {d:.3g} Å apart, closer than the radial "
                                    f"tabulation step of {self.potential.path}")
        return proj

    def asi_vectors(self, proj, species, kind=None):
        """The vectors multiplied with A^-1, per atom: projections (``kind`` "linear") or dE/dc
        ("full"); ``kind`` defaults to that of the loaded active set."""
        if (kind or self.kind) != "full":
            return proj
        out = []
        for i, mu in enumerate(species):
            n = int(self.ptables.nfuncs[mu])
            b = proj[i, :n]
            emb = self.model.embeddings[mu]
            rho = b @ self.ptables.coeffs[mu]
            w = np.reshape(emb.fs_parameters, (emb.ndensity, 2))
            kind = 0 if emb.npoti == "FinnisSinclair" else 1
            dF = np.array([w[p, 0] * _embedding(kind, rho[p], w[p, 1])[1] for p in range(emb.ndensity)])
            out.append((dF[:, None] * b[None, :]).ravel())
        return out

    def gamma(self, proj, species) -> np.ndarray:
        """Per-atom gamma from projections (``projections()`` output) and element indices."""
        if self.matrices is None:
            raise ValueError("no active set loaded")
        species = np.asarray(species, dtype=np.int64)
        gamma = np.zeros(len(species))
        vecs = self.asi_vectors(proj, species)
        for mu, el in enumerate(self.elements):
            idx = np.flatnonzero(species == mu)
            if len(idx) == 0:
                continue
            inv = self.matrices[el]
            if isinstance(vecs, np.ndarray):        # linear: the projections, one row per atom
                b = vecs[idx, :inv.shape[0]]
            else:
                b = np.array([vecs[i][:inv.shape[0]] for i in idx])
            gamma[idx] = gamma_from_projections(b, inv)
        return gamma
