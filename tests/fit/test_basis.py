"""The fit basis (acemd.fit.basis, acemd.fit.couplings) against pacemaker and against first principles.

- counts per block and rank, radial shapes and the hash of the (elements, ns, ls, LS) list equal
  the numbers pacemaker (python-ace 0.2.8) gives for its example inputs and the linear-fit notebook
  (tests/data/fit/pacemaker_basis_counts.json, made by scripts/validate_fit_basis.py --reference);
- keyword precedence (ALL < UNARY/BINARY < explicit) on three elements, checked by hand;
- spec -> .yaml -> read_bbasis_yaml gives the same potential as spec.to_potential;
- independence: the B-functions evaluated on random environments (A's from random neighbours and
  random radial values, full complex coupling) have full rank, and every rejected coupling
  candidate lies in the span of the kept ones (the construction is complete and non-redundant).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import sph_harm_y

from acemd.fit.basis import BasisSpecError, build_basis, format_bbasis_yaml
from acemd.fit.couplings import coupling_spaces, independent_couplings, invariant_dimension, runs_of
from acemd.potential.bbasis import read_bbasis_yaml
from acemd.potential.coupling import generalized_cg

DATA = Path(__file__).resolve().parent.parent / "data" / "fit" / "pacemaker_basis_counts.json"
REFERENCE = json.loads(DATA.read_text())


def _hash(functions):
    canon = [[list(f.elements), list(f.ns), list(f.ls), list(f.LS) if f.rank > 2 else []] for f in functions]
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()


@pytest.mark.parametrize("case", sorted(REFERENCE["cases"]))
def test_counts_and_hashes_equal_pacemaker(case):
    ref = REFERENCE["cases"][case]
    spec = build_basis(ref["potential"], source=case)
    assert [b.name for b in spec.blocks] == [b["block"] for b in ref["blocks"]]
    bad = []
    for b, rb in zip(spec.blocks, ref["blocks"]):
        per_rank = {}
        for f in b.functions:
            per_rank[str(f.rank)] = per_rank.get(str(f.rank), 0) + 1
        shape = (b.bond.nradmax, b.bond.lmax, b.bond.nradbase) if b.bond else None
        ref_shape = (rb["nradmax"], rb["lmax"], rb["nradbase"]) if "nradmax" in rb else None
        if per_rank != rb["per_rank"] or shape != ref_shape or _hash(b.functions) != rb["sha256"]:
            bad.append(f"{b.name}: acemd {per_rank} {shape}, pacemaker {rb['per_rank']} {ref_shape}")
    print(f"{case}: {spec.total} functions in {len(spec.blocks)} blocks (pacemaker {ref['total']}), "
          f"{len(bad)} blocks differ")
    assert not bad, "\n".join(bad)
    assert spec.total == ref["total"]


# ------------------------------------------------------------------------------ keywords

def _ternary(functions=None, bonds=None):
    pot = {
        "elements": ["Ni", "Al", "Cu"],
        "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1},
                       "Cu": {"fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
        "bonds": bonds or {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01},
                           "BINARY": {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 4.5},
                           "NiAl": {"radbase": "SBessel", "rcut": 4.8}},
        "functions": functions or {"ALL": {"nradmax_by_orders": [4, 2, 1], "lmax_by_orders": [0, 1, 1]},
                                   "UNARY": {"nradmax_by_orders": [6, 3, 2], "lmax_by_orders": [0, 2, 1]},
                                   "AlNi": {"nradmax_by_orders": [5, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]}},
    }
    return pot


def _max(functions, rank, what):
    vals = [max(getattr(f, what)) for f in functions if f.rank == rank]
    return max(vals) if vals else None


def test_keyword_precedence_by_hand():
    spec = build_basis(_ternary())
    assert spec.elements == ["Al", "Cu", "Ni"]
    blocks = {b.name: b for b in spec.blocks}
    # ALL: 3 unary, 6 binary, 3 ternary blocks, in pacemaker's order
    assert list(blocks) == ["Al", "Cu", "Ni", "Al Cu", "Al Ni", "Cu Al", "Cu Ni", "Ni Al", "Ni Cu",
                            "Al Cu Ni", "Cu Al Ni", "Ni Al Cu"]
    # UNARY beats ALL in the unary blocks: ranks 1-3 with nradmax [6, 3, 2], lmax [0, 2, 1]
    for el in ("Al", "Cu", "Ni"):
        f = blocks[el].functions
        assert (_max(f, 1, "ns"), _max(f, 2, "ns"), _max(f, 3, "ns")) == (6, 3, 2)
        assert (_max(f, 2, "ls"), _max(f, 3, "ls"), _max(f, 4, "ns")) == (2, 1, None)
    # the explicit AlNi block (rank 4) beats ALL; its mirror Ni Al keeps ALL's
    assert (_max(blocks["Al Ni"].functions, 1, "ns"), _max(blocks["Al Ni"].functions, 4, "ns")) == (5, 1)
    assert _max(blocks["Al Ni"].functions, 3, "ls") == 2
    assert (_max(blocks["Ni Al"].functions, 1, "ns"), _max(blocks["Ni Al"].functions, 3, "ns")) == (4, 1)
    assert _max(blocks["Ni Al"].functions, 4, "ns") is None
    # every function of a block uses all of the block's elements, the central one first
    for b in spec.blocks:
        for f in b.functions:
            assert f.elements[0] == b.central and set(f.elements) == set(b.elements)
    # bonds: ALL < BINARY < explicit pair (both orders); unary bonds keep ALL
    assert (blocks["Al"].bond.radbase, blocks["Al"].bond.rcut) == ("ChebExpCos", 5.0)
    assert (blocks["Al Cu"].bond.radbase, blocks["Al Cu"].bond.rcut) == ("ChebPow", 4.5)
    for name in ("Al Ni", "Ni Al"):
        bond = blocks[name].bond
        assert (bond.radbase, bond.rcut, bond.radparameters, bond.dcut) == ("SBessel", 4.8, [2.0], 0.01)
    # radial shape of Al-Ni: nradbase from the first order of the explicit block, symmetric in the pair
    assert (blocks["Al Ni"].bond.nradbase, blocks["Ni Al"].bond.nradbase) == (5, 5)
    assert (blocks["Al Ni"].bond.nradmax, blocks["Al Ni"].bond.lmax) == (3, 2)
    assert blocks["Al Cu Ni"].bond is None
    # embeddings: element beats ALL, missing keys merged from ALL
    assert blocks["Cu"].embedding.ndensity == 2 and blocks["Cu"].embedding.npot == "FinnisSinclairShiftedScaled"
    assert blocks["Al"].embedding.fs_parameters == [1.0, 1.0]
    assert spec.ndensity == [1, 2, 1]


@pytest.mark.parametrize("key", ["AlNi", "Al Ni", "(Al, Ni)", ("Al", "Ni"), ["Al", "Ni"]])
def test_explicit_keys_in_every_spelling_and_position(key):
    ref = build_basis(_ternary())
    funcs = _ternary()["functions"]
    explicit = funcs.pop("AlNi")
    # the explicit key first in the mapping still wins over ALL and UNARY (pacemaker merges in order)
    funcs = {(tuple(key) if isinstance(key, list) else key): explicit, **funcs}
    spec = build_basis(_ternary(functions=funcs))
    assert [(b.name, b.functions) for b in spec.blocks] == [(b.name, b.functions) for b in ref.blocks]


def test_explicit_key_merges_with_keywords():
    """A block given only lmax_by_orders takes nradmax_by_orders from ALL (dict update, as pacemaker)."""
    funcs = {"ALL": {"nradmax_by_orders": [3, 2, 1], "lmax_by_orders": [0, 1, 1]},
             "Cu": {"lmax_by_orders": [0, 2, 0]}}
    spec = build_basis(_ternary(functions=funcs))
    cu = next(b for b in spec.blocks if b.name == "Cu")
    al = next(b for b in spec.blocks if b.name == "Al")
    assert (_max(cu.functions, 2, "ls"), _max(cu.functions, 3, "ls"), _max(cu.functions, 2, "ns")) == (2, 0, 2)
    assert (_max(al.functions, 2, "ls"), _max(al.functions, 3, "ls")) == (1, 1)


def test_orders_of_unequal_length_as_pacemaker():
    """Merged lists of unequal length: functions up to the shorter, radial shape from the whole lists."""
    funcs = {"ALL": {"nradmax_by_orders": [4, 3, 2, 2], "lmax_by_orders": [0, 1, 1, 1]},
             "UNARY": {"lmax_by_orders": [0, 2]}}
    spec = build_basis(_ternary(functions=funcs))
    al = next(b for b in spec.blocks if b.name == "Al")
    assert max(f.rank for f in al.functions) == 2 and _max(al.functions, 2, "ls") == 2
    assert (al.bond.nradbase, al.bond.nradmax, al.bond.lmax) == (4, 3, 2)


def test_cap_keeps_power_order_per_block():
    pot = _ternary()
    full = build_basis(pot)
    pot["functions"]["number_of_functions_per_element"] = 20
    capped = build_basis(pot)
    per_block = 20 * 3 // 12
    for fb, cb in zip(full.blocks, capped.blocks):
        kept = set(cb.functions)
        assert len(cb.functions) == min(per_block, len(fb.functions)) and kept <= set(fb.functions)
        power = [f.rank + sum(f.ns) + sum(f.ls) for f in fb.functions]
        if len(fb.functions) > per_block:      # nothing dropped has a lower power order than what is kept
            kept_power = max(p for f, p in zip(fb.functions, power) if f in kept)
            assert all(p >= kept_power for f, p in zip(fb.functions, power) if f not in kept)
        keys = [(f.rank, f.ns, f.ls, f.LS, f.elements) for f in cb.functions]
        assert keys == sorted(keys)


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("change, where", [
    (lambda p: p["functions"].update({"AlFe": {"nradmax_by_orders": [2], "lmax_by_orders": [0]}}),
     "potential.functions.AlFe: element Fe is not in potential.elements"),
    (lambda p: p["functions"]["UNARY"].pop("lmax_by_orders") and p["functions"].pop("ALL"),
     "block 'Al' has no lmax_by_orders"),
    (lambda p: p["bonds"]["ALL"].update(nradmax=1), "bonds (Al-Al).nradmax: 1 is less than 3"),
    (lambda p: p["bonds"]["ALL"].update(rcutt=5), "potential.bonds.ALL.rcutt: unknown key"),
    (lambda p: p["bonds"]["ALL"].pop("rcut") and p["bonds"].pop("BINARY") and p["bonds"].pop("NiAl"),
     "no rcut"),
    (lambda p: p["functions"].pop("ALL"), "no block 'Al Cu'"),
    (lambda p: p["embeddings"].update(Fe={"ndensity": 1}), "potential.embeddings.Fe"),
    (lambda p: p["embeddings"]["ALL"].update(fs_parameters=[1, 1, 1]), "has 3 values, ndensity 1 needs 2"),
    (lambda p: p.update(elements=["Al", "Al"]), "names an element twice"),
    (lambda p: p["functions"].update({"AlAl": {"nradmax_by_orders": [2], "lmax_by_orders": [0]}}),
     "an element is named twice"),
    (lambda p: p["functions"].update(number_of_functions_per_element=0), "expected a positive integer"),
    (lambda p: p["functions"].update(number_of_functions_per_element=3), "leaves no function in the 12 blocks"),
    (lambda p: p.update(elements=["Al", "Cu", "Xx"]), "'Xx' is not a chemical element symbol"),
])
def test_bad_input_names_key(change, where):
    pot = _ternary()
    change(pot)
    with pytest.raises(BasisSpecError) as err:
        build_basis(pot, source="in.yaml")
    print(err.value)
    assert str(err.value).startswith("in.yaml: ") and where in str(err.value)


# ------------------------------------------------------------------------------ model and writer

def _random_coeffs(spec, seed=3):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, nd)) for n, nd in zip(spec.nfuncs, spec.ndensity)]


def test_round_trip_yaml_equals_to_potential(tmp_path):
    spec = build_basis(_ternary(bonds={
        "ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01,
                "core-repulsion": [10.0, 5.0], "r_in": 1.0, "delta_in": 0.5},
        "BINARY": {"radbase": "SBessel", "radparameters": [2.0], "rcut": 4.5}}))
    coeffs = _random_coeffs(spec)
    path = tmp_path / "p.yaml"
    path.write_text(format_bbasis_yaml(spec, coeffs, metadata={"user": "me: test", "note": "two\nlines, 'quoted' #"}))
    read = read_bbasis_yaml(path)
    direct = spec.to_potential(coeffs, E0={"Cu": -1.5})
    assert read.elements == direct.elements == spec.elements
    assert list(direct.E0) == [0.0, -1.5, 0.0] and read.metadata == {"user": "me: test", "note": "two\nlines, 'quoted' #"}
    for mu, el in enumerate(spec.elements):
        assert len(read.bbasis[mu]) == len(direct.bbasis[mu]) == spec.nfuncs[mu]
        order = spec.bbasis_order[mu]
        for k, (a, b) in enumerate(zip(read.bbasis[mu], direct.bbasis[mu])):
            f = spec.functions[mu][order[k]]
            mus = tuple(spec.elements.index(e) for e in f.elements[1:])
            assert (a.mus, a.ns, a.ls, a.LS) == (b.mus, b.ns, b.ls, b.LS) == (mus, f.ns, f.ls, f.LS)
            assert np.array_equal(a.coeffs, b.coeffs) and np.array_equal(a.coeffs, coeffs[mu][order[k]])
        assert len(read.functions[mu]) == len(direct.functions[mu])
        for a, b in zip(read.functions[mu], direct.functions[mu]):
            assert np.array_equal(a.ms_combs, b.ms_combs) and np.array_equal(a.ctildes, b.ctildes)
    for key, bond in direct.bonds.items():
        other = read.bonds[key]
        assert np.array_equal(bond.radcoefficients, other.radcoefficients)
        assert (bond.rcut, bond.prehc, bond.lambdahc, bond.rcut_in, bond.dcut_in, bond.inner_cutoff_type) == (
            other.rcut, other.prehc, other.lambdahc, other.rcut_in, other.dcut_in, other.inner_cutoff_type)
    al_cu = direct.bonds[(0, 1)]
    assert (al_cu.radbasename, al_cu.prehc, al_cu.rcut_in) == ("SBessel", 10.0, 1.0)
    c = al_cu.radcoefficients        # delta_nk
    assert np.array_equal(c, np.stack([np.stack([np.eye(c.shape[2])[n]] * c.shape[1]) for n in range(c.shape[0])]))


def test_coefficient_blocks_map_columns():
    pot = _ternary(functions={"ALL": {"nradmax_by_orders": [3, 2, 1], "lmax_by_orders": [0, 1, 1]}})
    pot["embeddings"].pop("Cu")                   # ndensity 1 everywhere: one column per function
    spec = build_basis(pot)
    cols = np.arange(spec.ncolumns, dtype=float)
    assert list(spec.column_offsets) == [0, spec.nfuncs[0], spec.nfuncs[0] + spec.nfuncs[1]]
    blocks = spec.coefficient_blocks(cols, order="bbasis")
    pot = spec.to_potential(blocks)
    for mu in range(3):     # column offset+k is the coefficient of the potential's k-th B-function
        assert [b.coeffs[0] for b in pot.bbasis[mu]] == list(cols[spec.column_offsets[mu]:][:spec.nfuncs[mu]])
    same = spec.coefficient_blocks(cols, order="spec")
    assert np.array_equal(same[1].ravel(), cols[spec.column_offsets[1]:][:spec.nfuncs[1]])
    with pytest.raises(BasisSpecError, match="coefficients"):
        spec.coefficient_blocks(cols[:-1])


# ------------------------------------------------------------------------------ independence

def _environment_A(rng, nenv, nspecies, nmax, lmax):
    """A[env, mu, n-1, l, m+l] = sum_j g_n(j) Y_lm(r_j) over random neighbours of species mu."""
    A = np.zeros((nenv, nspecies, nmax, lmax + 1, 2 * lmax + 1), dtype=complex)
    for e in range(nenv):
        for mu in range(nspecies):
            nb = rng.integers(4, 9)
            v = rng.normal(size=(nb, 3))
            theta = np.arccos(v[:, 2] / np.linalg.norm(v, axis=1))
            phi = np.arctan2(v[:, 1], v[:, 0])
            g = rng.uniform(-1, 1, size=(nb, nmax))
            for l in range(lmax + 1):
                for m in range(-l, l + 1):
                    A[e, mu, :, l, m + l] = g.T @ sph_harm_y(l, m, theta, phi)
    return A


def _evaluate(A, mus, ns, ls, LS):
    """B = sum_ms C(ms) prod_t A_{mu_t n_t l_t m_t}: the coupling over the full m-space."""
    out = np.zeros(A.shape[0], dtype=complex)
    for ms, c in generalized_cg(ls, LS):
        term = np.full(A.shape[0], c, dtype=complex)
        for mu, n, l, m in zip(mus, ns, ls, ms):
            term = term * A[:, mu, n - 1, l, m + l]
        out += term
    return out


def _rank(M):
    M = M / np.maximum(np.linalg.norm(M, axis=0), 1e-300)
    s = np.linalg.svd(M, compute_uv=False)
    return int(np.sum(s > 1e-9 * s[0])), s


@pytest.mark.parametrize("potential", [
    {"elements": ["Cu"], "functions": {"ALL": {"nradmax_by_orders": [2, 2, 2, 1, 1], "lmax_by_orders": [0, 2, 2, 2, 1]}}},
    {"elements": ["Al", "Ni"], "functions": {"ALL": {"nradmax_by_orders": [1, 2, 1, 1], "lmax_by_orders": [0, 1, 2, 1]}}},
], ids=["Cu-rank5", "AlNi-rank4"])
def test_functions_independent_and_complete_on_random_environments(potential):
    pot = dict(potential, embeddings={"ALL": {"npot": "linear"}},
               bonds={"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01}})
    spec = build_basis(pot)
    rng = np.random.default_rng(11)
    nspecies = len(spec.elements)
    A = _environment_A(rng, 400, nspecies, 2, 2)
    index = {el: i for i, el in enumerate(spec.elements)}
    rotated = None
    for mu, funcs in enumerate(spec.functions):
        cols, groups = [], {}
        for f in funcs:
            mus = tuple(index[e] for e in f.elements[1:])
            cols.append(_evaluate(A, mus, f.ns, f.ls, f.LS))
            groups.setdefault((mus, f.ns), []).append((f.ls, f.LS))
        M = np.array(cols).T
        assert np.abs(M.imag).max() < 1e-10 * np.abs(M.real).max()     # real invariants
        rank, s = _rank(M.real)
        print(f"{spec.elements[mu]}: {len(funcs)} functions, rank {rank} on 400 random environments, "
              f"smallest/largest singular value {s[-1] / s[0]:.2e}")
        assert rank == len(funcs)
        # every rejected candidate of a (mus, ns) group lies in the span of the group's kept functions
        nrejected = 0
        for (mus, ns), kept in groups.items():
            lmax = max(max(ls) for ls, _ in kept)
            runs = runs_of(mus, ns)
            candidates = [c for space in coupling_spaces(runs, lmax).values() for c in space]
            Mk = np.array([_evaluate(A, mus, ns, *c).real for c in kept]).T
            rejected = [c for c in candidates if c not in kept]
            nrejected += len(rejected)
            Mall = np.concatenate([Mk, np.array([_evaluate(A, mus, ns, *c).real for c in rejected]).T], axis=1) \
                if rejected else Mk
            # zero columns (couplings that vanish by symmetry) drop out of the rank test
            Mall = Mall[:, np.linalg.norm(Mall, axis=0) > 1e-12 * np.abs(Mk).max()]
            assert _rank(Mall)[0] == len(kept), (mus, ns)
        print(f"{spec.elements[mu]}: {nrejected} rejected candidates, each in the span of the kept ones")
        # rotation invariance of the kept functions (the couplings are right, not only independent)
        if rotated is None:
            rotated = True
            q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
            dev = _rotation_deviation(spec.functions[mu][:40], index, q, rng)
            print(f"max relative change under a random rotation: {dev:.2e}")
            assert dev < 1e-10


def _rotation_deviation(funcs, index, q, rng):
    nb = 7
    v = rng.normal(size=(nb, 3))
    species = rng.integers(0, len(index), size=nb)
    g = rng.uniform(-1, 1, size=(nb, 2))
    vals = []
    for vec in (v, v @ q.T):
        theta = np.arccos(vec[:, 2] / np.linalg.norm(vec, axis=1))
        phi = np.arctan2(vec[:, 1], vec[:, 0])
        A = np.zeros((1, len(index), 2, 3, 5), dtype=complex)
        for mu in range(len(index)):
            sel = species == mu
            for l in range(3):
                for m in range(-l, l + 1):
                    A[0, mu, :, l, m + l] = g[sel].T @ sph_harm_y(l, m, theta[sel], phi[sel])
        vals.append(np.array([_evaluate(A, tuple(index[e] for e in f.elements[1:]), f.ns, f.ls, f.LS)[0].real
                              for f in funcs]))
    return float(np.abs(vals[0] - vals[1]).max() / np.abs(vals[0]).max())


def test_couplings_reject_symmetry_zeros():
    """Two equal l=1 factors coupled to L=1 vanish (antisymmetric CG): never chosen; l=2 triples give 1."""
    four = independent_couplings((4,), 2)
    assert ((1, 1, 2, 2), (1, 1)) not in four and ((1, 1, 2, 2), (0, 0)) in four
    # Sym^3 of l=2 holds L=2 once: one invariant with a distinct l=2 factor
    split = [c for c in independent_couplings((1, 3), 2) if c[0] == (2, 2, 2, 2)]
    assert split == [((2, 2, 2, 2), (0, 0))]
    # all distinct factors: the number of couplings of l=1,1,1,1 is the number of L12 = L34 in 0..2
    assert len([c for c in independent_couplings((1, 1, 1, 1), 1) if c[0] == (1, 1, 1, 1)]) == 3


@pytest.mark.parametrize("space, count", [
    (((1, 1),), 1),                  # v.v
    (((1, 1, 1),), 0),               # no cubic invariant of one vector
    (((1, 1, 1, 1),), 1),            # (v.v)^2
    (((1,), (1,), (1,), (1,)), 3),   # four different vectors: (ab)(cd), (ac)(bd), (ad)(bc)
    (((2, 2, 2),), 1),               # traceless symmetric M: tr M^3
    (((2, 2, 2, 2),), 1),            # (tr M^2)^2
    (((2, 2, 2, 2, 2, 2),), 2),      # (tr M^2)^3, (tr M^3)^2
    (((2,), (2, 2, 2)), 1),          # Sym^3(V_2) holds L = 2 once
    (((0, 1, 1),), 1),
])
def test_invariant_dimension_known_counts(space, count):
    """The count the greedy construction stops at, against classical invariant theory."""
    assert invariant_dimension(space) == count
