"""Clebsch-Gordan coupling, B-basis .yaml -> C-tilde conversion and the .yace writer."""
from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from acemd.potential.bbasis import read_bbasis_yaml
from acemd.potential.coupling import (check_lint, clebsch_gordan, compress_ms_combinations,
                                      coupling_tree, generalized_cg, half_basis_cg)
from acemd.potential.model import PotentialFileError
from acemd.potential.yace import load_yaml_tree, read_yace
from acemd.potential.yace_writer import convert_potential, write_yace

DATA = Path(__file__).resolve().parents[1] / "data" / "potentials"
PAIRS = ["Al-Ni_opt_all", "Cu-I", "DFT10B-AgCu", "ZBL_rep", "synth_NbTa_distance",
         "synth_W_SBessel_ZBL", "ternary_AlCuZn"]
E0_DIFFERS = {"synth_NbTa_distance", "synth_W_SBessel_ZBL"}   # E0 written into the .yace afterwards
CTILDE_RTOL = 1e-12


# --------------------------------------------------------------------------- helpers
def sph_harm(lmax, vecs):
    """Complex Y_lm (Condon-Shortley phase, Y_00 = 1, i.e. sqrt(4 pi) x standard).

    Returns Y[l, m + lmax, j] for unit-free direction vectors vecs (n, 3).
    """
    v = np.asarray(vecs, dtype=float)
    r = np.linalg.norm(v, axis=1)
    x = v[:, 2] / r
    phi = np.arctan2(v[:, 1], v[:, 0])
    s = np.sqrt(np.maximum(0.0, 1.0 - x * x))
    P = np.zeros((lmax + 1, lmax + 1, len(v)))       # P[l, m] with the (-1)^m phase
    for m in range(lmax + 1):
        pmm = np.full(len(v), (-1.0) ** m * float(np.prod(np.arange(1, 2 * m, 2))))
        pmm = pmm * s ** m
        P[m, m] = pmm
        if m < lmax:
            P[m + 1, m] = x * (2 * m + 1) * pmm
        for l in range(m + 2, lmax + 1):
            P[l, m] = ((2 * l - 1) * x * P[l - 1, m] - (l + m - 1) * P[l - 2, m]) / (l - m)
    Y = np.zeros((lmax + 1, 2 * lmax + 1, len(v)), dtype=complex)
    for l in range(lmax + 1):
        for m in range(0, l + 1):
            norm = math.sqrt((2 * l + 1) * math.factorial(l - m) / math.factorial(l + m))
            Y[l, lmax + m] = norm * P[l, m] * np.exp(1j * m * phi)
            if m:
                Y[l, lmax - m] = (-1) ** m * np.conj(Y[l, lmax + m])
    return Y


def test_sph_harm_helper_convention():
    """The test's Y_lm: Condon-Shortley phase, Y_00 = 1 (= sqrt(4 pi) x scipy's)."""
    special = pytest.importorskip("scipy.special")
    if not hasattr(special, "sph_harm_y"):
        pytest.skip("scipy.special.sph_harm_y not available")
    rng = np.random.default_rng(3)
    v = rng.normal(size=(5, 3))
    Y = sph_harm(6, v)
    theta = np.arccos(v[:, 2] / np.linalg.norm(v, axis=1))
    phi = np.arctan2(v[:, 1], v[:, 0])
    for l in range(7):
        for m in range(-l, l + 1):
            ref = math.sqrt(4 * math.pi) * special.sph_harm_y(l, m, theta, phi)
            np.testing.assert_allclose(Y[l, 6 + m], ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Y[0, 6], 1.0)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def assert_same_tables(a, b, rtol=0.0, check_E0=True):
    """Elements, embeddings, bonds and functions of two CTildePotentials agree.

    rtol = 0: bit-identical; otherwise ctildes to rtol relative (elementwise,
    with the function's largest |ctilde| as the floor for exact zeros).
    Returns the worst relative ctilde deviation.
    """
    assert a.elements == b.elements
    assert a.delta_spline_bins == b.delta_spline_bins
    if check_E0:
        assert np.array_equal(a.E0, b.E0)
    assert len(a.embeddings) == len(b.embeddings)
    for ea, eb in zip(a.embeddings, b.embeddings):
        assert ea == eb
    assert sorted(a.bonds) == sorted(b.bonds)
    for key in a.bonds:
        ba, bb = a.bonds[key].__dict__, b.bonds[key].__dict__
        for field in ba:
            if field == "radcoefficients":
                assert np.array_equal(ba[field], bb[field]), (key, field)
            else:
                assert ba[field] == bb[field], (key, field, ba[field], bb[field])
    worst = 0.0
    for mu, (fa, fb) in enumerate(zip(a.functions, b.functions, strict=True)):
        assert len(fa) == len(fb), f"element {mu}: {len(fa)} vs {len(fb)} functions"
        for i, (p, q) in enumerate(zip(fa, fb)):
            ident = (p.mu0, p.rank, tuple(p.mus), tuple(p.ns), tuple(p.ls))
            assert ident == (q.mu0, q.rank, tuple(q.mus), tuple(q.ns), tuple(q.ls)), (mu, i)
            assert np.array_equal(p.ms_combs, q.ms_combs), (mu, i, ident)
            assert p.ctildes.shape == q.ctildes.shape, (mu, i, ident)
            if rtol == 0.0:
                assert np.array_equal(p.ctildes, q.ctildes), (mu, i, ident)
            elif q.ctildes.size:
                floor = np.max(np.abs(q.ctildes)) * 1e-3
                rel = np.abs(p.ctildes - q.ctildes) / np.maximum(np.abs(q.ctildes), floor + 1e-300)
                worst = max(worst, float(rel.max()))
                assert rel.max() <= rtol, (mu, i, ident, float(rel.max()))
    return worst


# --------------------------------------------------------------------------- Clebsch-Gordan
def test_cg_matches_sympy_all_l_up_to_6():
    from sympy.physics.wigner import clebsch_gordan as sympy_cg
    worst = 0.0
    for l1, l2, L in itertools.product(range(7), repeat=3):
        for m1 in range(-l1, l1 + 1):
            for m2 in range(-l2, l2 + 1):
                M = m1 + m2
                if abs(M) > L:
                    assert clebsch_gordan(l1, m1, l2, m2, L, M) == 0.0
                    continue
                ref = float(sympy_cg(l1, l2, L, m1, m2, M))
                worst = max(worst, abs(clebsch_gordan(l1, m1, l2, m2, L, M) - ref))
    assert worst <= 2e-16


def test_cg_large_l_against_sympy():
    from sympy.physics.wigner import clebsch_gordan as sympy_cg
    for l1, m1, l2, m2, L in [(12, 3, 13, -5, 20), (12, -12, 12, 12, 0), (16, 7, 9, -2, 11),
                              (20, 0, 20, 0, 40), (15, 4, 15, -4, 1)]:
        ref = float(sympy_cg(l1, l2, L, m1, m2, m1 + m2))
        assert clebsch_gordan(l1, m1, l2, m2, L, m1 + m2) == pytest.approx(ref, rel=1e-15, abs=1e-17)


def test_cg_selection_rules():
    assert clebsch_gordan(1, 0, 1, 0, 1, 0) == 0.0          # parity-forbidden
    assert clebsch_gordan(1, 1, 1, 0, 0, 1) == 0.0          # |M| > L
    assert clebsch_gordan(1, 1, 1, 1, 1, 1) == 0.0          # m1 + m2 != M
    assert clebsch_gordan(1, 0, 1, 0, 3, 0) == 0.0          # triangle
    assert clebsch_gordan(2, 3, 2, -3, 0, 0) == 0.0         # |m| > l
    assert clebsch_gordan(0, 0, 0, 0, 0, 0) == 1.0


@pytest.mark.parametrize("l1,l2", [(l1, l2) for l1 in range(9) for l2 in range(l1 + 1)] + [(12, 12), (14, 9)])
def test_cg_orthogonality(l1, l2):
    Ls = range(abs(l1 - l2), l1 + l2 + 1)
    # unitary matrix between |l1 m1> |l2 m2> and |L M>
    rows = [(m1, m2) for m1 in range(-l1, l1 + 1) for m2 in range(-l2, l2 + 1)]
    cols = [(L, M) for L in Ls for M in range(-L, L + 1)]
    U = np.zeros((len(rows), len(cols)))
    col_index = {c: k for k, c in enumerate(cols)}
    for i, (m1, m2) in enumerate(rows):
        for L in Ls:
            if abs(m1 + m2) <= L:
                U[i, col_index[(L, m1 + m2)]] = clebsch_gordan(l1, m1, l2, m2, L, m1 + m2)
    assert U.shape[0] == U.shape[1]
    np.testing.assert_allclose(U.T @ U, np.eye(len(cols)), atol=1e-14)
    np.testing.assert_allclose(U @ U.T, np.eye(len(rows)), atol=1e-14)
    # exchange symmetry <l2 m2 l1 m1|L M> = (-1)^(l1+l2-L) <l1 m1 l2 m2|L M>
    for (m1, m2), (L, M) in itertools.product(rows[:7], cols[:9]):
        assert clebsch_gordan(l2, m2, l1, m1, L, M) == (-1) ** (l1 + l2 - L) * clebsch_gordan(l1, m1, l2, m2, L, M)


# --------------------------------------------------------------------------- coupling tree
def test_coupling_tree_matches_pacemaker_convention():
    assert coupling_tree(1) == ()
    assert coupling_tree(2) == ((0, 1, -1),)
    assert coupling_tree(3) == ((0, 1, 3), (3, 2, -1))
    assert coupling_tree(4) == ((0, 1, 4), (2, 3, 5), (4, 5, -1))
    assert coupling_tree(5) == ((0, 1, 5), (2, 3, 6), (5, 6, 7), (7, 4, -1))
    assert coupling_tree(6) == ((0, 1, 6), (2, 3, 7), (4, 5, 8), (6, 7, 9), (8, 9, -1))
    for r in range(2, 11):
        nodes = coupling_tree(r)
        assert len(nodes) == r - 1
        used = [i for a, b, _ in nodes for i in (a, b)]
        assert sorted(used) == list(range(2 * r - 2))           # every leaf/intermediate once


def test_rank_1_and_2_coupling():
    assert generalized_cg([0]) == [((0,), 1.0)]
    for l in range(5):
        pairs = generalized_cg([l, l])
        assert [ms for ms, _ in pairs] == [(m, -m) for m in range(l, -l - 1, -1)]
        for (m1, m2), c in pairs:
            assert m1 + m2 == 0
            assert c == clebsch_gordan(l, m1, l, m2, 0, 0)
        assert len(pairs) == 2 * l + 1


def test_generalized_cg_enumeration_order_and_product():
    ls, LS = (2, 1, 1, 2), (1, 1)
    pairs = generalized_cg(ls, LS)
    keys = [tuple(reversed(ms)) for ms, _ in pairs]
    assert keys == sorted(keys)                         # m_1 fastest, m_r slowest
    for ms, c in pairs:
        assert sum(ms) == 0 and c != 0.0
        m01, m23 = ms[0] + ms[1], ms[2] + ms[3]
        expected = (clebsch_gordan(2, ms[0], 1, ms[1], 1, m01) * clebsch_gordan(1, ms[2], 2, ms[3], 1, m23)
                    * clebsch_gordan(1, m01, 1, m23, 0, 0))
        assert c == expected


@pytest.mark.parametrize("ls,lint,message", [
    ([1, 1, 2], [], "lint has 0 values, rank 3 needs 1"),
    ([1, 1, 2], [1], "lint[0] must equal nl[2]"),
    ([1, 1, 1, 1], [1, 2], "lint[0] must equal lint[1]"),
    ([1, 1, 1, 1, 2], [1, 1, 1], "lint[2] must equal nl[4]"),
    ([1, 1, 1, 1, 1, 1], [1, 1, 2, 1], "lint[2] must equal lint[3]"),
    ([1, 1, 1], [1], "must be even"),
    ([1, 1, 1, 1], [3, 3], "triangle"),
    ([1, 2], [], "rank 2 needs two equal values"),
    ([1], [], "rank 1 needs nl = [0]"),
])
def test_check_lint_errors(ls, lint, message):
    with pytest.raises(ValueError) as err:
        check_lint(ls, lint)
    assert message in str(err.value)


def test_check_lint_accepts_valid():
    assert check_lint([0], []) == ()
    assert check_lint([2, 2], []) == ()
    assert check_lint([1, 1, 2], [2]) == (2,)
    assert check_lint([1, 1, 2, 2], [2, 2]) == (2, 2)
    assert check_lint([1, 1, 1, 1, 2], [2, 0, 2]) == (2, 0, 2)
    assert check_lint([1, 1, 1, 1, 2, 2], [2, 0, 2, 2]) == (2, 0, 2, 2)


# --------------------------------------------------------------------------- rotation invariance
def _valid_couplings(rank, lmax):
    """All (ls, LS) with l <= lmax passing check_lint (sorted ls to keep it small)."""
    out = []
    sorted_ls = list(itertools.combinations_with_replacement(range(lmax + 1), rank))
    for ls in sorted_ls + [ls[::-1] for ls in sorted_ls if ls[::-1] != ls]:   # ascending and descending
        if sum(ls) % 2:
            continue
        for LS in itertools.product(range(2 * lmax + 1), repeat=max(rank - 2, 0)):
            try:
                check_lint(ls, LS)
            except ValueError:
                continue
            out.append((ls, LS))
    return out


def _A(Y, weights):
    """A[t][l, m] = sum_j w_t[j] Y_lm(r_j) for each factor t."""
    return [np.einsum("j,lmj->lm", w, Y) for w in weights]


@pytest.mark.parametrize("rank,lmax", [(1, 0), (2, 4), (3, 3), (4, 2), (5, 2), (6, 1), (7, 1)])
def test_generalized_coupling_is_rotation_invariant(rank, lmax):
    rng = np.random.default_rng(100 + rank)
    nnb = 7
    vecs = rng.normal(size=(nnb, 3)) * rng.uniform(1.5, 4.0, size=(nnb, 1))
    R = random_rotation(rng)
    Y0 = sph_harm(lmax, vecs)
    Y1 = sph_harm(lmax, vecs @ R.T)
    weights = rng.normal(size=(rank, nnb))           # a random radial value per factor and neighbour
    A0, A1 = _A(Y0, weights), _A(Y1, weights)
    couplings = _valid_couplings(rank, lmax)
    assert couplings
    for ls, LS in couplings:
        pairs = generalized_cg(ls, LS)
        vals = []
        for A in (A0, A1):
            terms = [c * np.prod([A[t][ls[t], lmax + ms[t]] for t in range(rank)]) for ms, c in pairs]
            vals.append(sum(terms))
            if A is A0:
                scale = sum(abs(x) for x in terms)      # size of the rounding errors of the sum
        assert abs(vals[0].imag) <= 1e-12 * scale and abs(vals[1].imag) <= 1e-12 * scale
        assert abs(vals[0] - vals[1]) <= 1e-12 * scale, (ls, LS, vals)
        # the half basis (conjugates folded in) gives the same real value
        ms_h, c_h = half_basis_cg(ls, LS)
        half = sum(c * np.prod([A0[t][ls[t], lmax + m[t]] for t in range(rank)]).real
                   for m, c in zip(ms_h.tolist(), c_h))
        assert abs(half - vals[0].real) <= 1e-12 * scale
        if rank > 1 and max(ls) > 0:
            # sanity: a single m-combination is not invariant
            ms, _ = max(pairs, key=lambda p: sum(abs(m) for m in p[0]))
            t0 = np.prod([A0[t][ls[t], lmax + ms[t]] for t in range(rank)])
            t1 = np.prod([A1[t][ls[t], lmax + ms[t]] for t in range(rank)])
            if max(abs(m) for m in ms) > 0:
                assert abs(t0 - t1) > 1e-8 * (abs(t0) + abs(t1))


@pytest.mark.parametrize("name", ["Cu-I", "synth_NbTa_distance", "ternary_AlCuZn"])
def test_converted_ctilde_densities_are_rotation_invariant(name):
    pot = read_bbasis_yaml(DATA / f"{name}.yaml")
    rng = np.random.default_rng(7)
    lmax = max(b.lmax for b in pot.bonds.values())
    nmax = max(max(b.nradmax, b.nradbase) for b in pot.bonds.values())
    nnb = 9
    vecs = rng.normal(size=(nnb, 3)) * 2.5
    species = rng.integers(0, pot.nelements, size=nnb)
    R = random_rotation(rng)
    for mu0 in range(pot.nelements):
        # random radial values R[mu, n, l, j] (only neighbours of species mu contribute)
        rad = rng.normal(size=(pot.nelements, nmax + 1, lmax + 1, nnb))
        rad *= (species[None, None, None, :] == np.arange(pot.nelements)[:, None, None, None])
        rho = []
        for rot in (np.eye(3), R):
            Y = sph_harm(lmax, vecs @ rot.T)
            A = np.einsum("unlj,lmj->unlm", rad, Y)           # A[mu, n, l, m + lmax]
            dens, scale = 0.0, 0.0
            for f in pot.functions[mu0]:
                prod = np.ones(len(f.ms_combs), dtype=complex)
                for t in range(f.rank):
                    prod *= A[f.mus[t], f.ns[t], f.ls[t], lmax + f.ms_combs[:, t]]
                contrib = f.ctildes * prod.real[:, None]
                dens = dens + contrib.sum(axis=0)
                scale += np.abs(contrib).sum()
            rho.append((dens, scale))
        (d0, s0), (d1, _) = rho
        assert np.all(np.abs(d0 - d1) <= 1e-12 * s0), (name, mu0, d0, d1)


# --------------------------------------------------------------------------- .yaml -> C-tilde
@pytest.fixture(scope="module")
def converted():
    return {name: read_bbasis_yaml(DATA / f"{name}.yaml") for name in PAIRS}


@pytest.mark.parametrize("name", PAIRS)
def test_bbasis_conversion_matches_reference_yace(name, converted):
    pot = converted[name]
    ref = read_yace(DATA / f"{name}.yace")
    worst = assert_same_tables(pot, ref, rtol=CTILDE_RTOL, check_E0=False)
    assert worst <= CTILDE_RTOL
    assert np.all(pot.E0 == 0.0)
    if name not in E0_DIFFERS:
        assert np.array_equal(pot.E0, ref.E0)


def test_compression_merges_permutations():
    # four equal factors with l = 1 (the rank-4 Al function of Al-Ni_opt_all has lint [2, 2])
    ms, c = half_basis_cg((1, 1, 1, 1), (2, 2))
    assert len(ms) == 10
    mus, ns, ls, ms2, c2 = compress_ms_combinations((0, 0, 0, 0), (1, 1, 1, 1), (1, 1, 1, 1), ms, c)
    assert ms2.tolist() == [[-1, -1, 1, 1], [-1, 0, 0, 1], [0, 0, 0, 0]]
    # with L = 1 intermediates the coupling is antisymmetric in equal factors: everything cancels
    ms, c = half_basis_cg((1, 1, 1, 1), (1, 1))
    assert len(ms) == 6
    assert len(compress_ms_combinations((0,) * 4, (1,) * 4, (1,) * 4, ms, c)[3]) == 0
    # mixed species: factors sorted by (mu, n, l), m-combinations merged and sorted
    ms, c = half_basis_cg((1, 1, 1, 1), (2, 2))
    mus, ns, ls, ms3, c3 = compress_ms_combinations((1, 0, 1, 0), (1, 1, 1, 1), (1, 1, 1, 1), ms, c)
    assert mus == (0, 0, 1, 1)
    rows = [tuple(r) for r in ms3.tolist()]
    assert rows == sorted(rows) and len(rows) < len(ms)
    # nothing to merge: returned unchanged (unsorted mus/ns/ls kept, as pacemaker does)
    mus4, ns4, ls4, ms4, c4 = compress_ms_combinations((1, 0), (2, 1), (1, 1), *half_basis_cg((1, 1)))
    assert (mus4, ns4, ls4) == ((1, 0), (2, 1), (1, 1))


# --------------------------------------------------------------------------- errors
def _yaml_with(tmp_path, mutate, base="Al-Ni_opt_all"):
    tree = yaml.safe_load((DATA / f"{base}.yaml").read_text())
    mutate(tree)
    p = tmp_path / "pot.yaml"
    p.write_text(yaml.safe_dump(tree, sort_keys=False))
    return p


def _set_fn(block, k, **kv):
    def mutate(tree):
        tree["species"][block]["nbody"][k].update(kv)
    return mutate


def test_error_names_function_and_key_path(tmp_path):
    tree = yaml.safe_load((DATA / "Al-Ni_opt_all.yaml").read_text())
    k = next(i for i, f in enumerate(tree["species"][0]["nbody"]) if len(f["type"].split()) == 4)
    p = _yaml_with(tmp_path, _set_fn(0, k, lint=[]))
    with pytest.raises(PotentialFileError) as err:
        read_bbasis_yaml(p)
    t = tree["species"][0]["nbody"][k]["type"]
    assert f"species[0].nbody[{k}] (type: {t})" in str(err.value)
    assert "lint has 0 values, rank 3 needs 1" in str(err.value)


@pytest.mark.parametrize("mutate,where,problem", [
    (lambda t: t["species"][0].update(radbase="Gaussian"), "species[0].radbase", "unsupported radial basis"),
    (lambda t: t["species"][0].update(npoti="Tanh"), "species[0].npoti", "unsupported embedding"),
    (lambda t: t["species"][0].update(parameters=[1, 1, 2]), "species[0].parameters", "needs 2"),
    (lambda t: t["species"][0].pop("nradbaseij"), "species[0].nradbaseij", "missing key"),
    (lambda t: t["species"][0].update(inner_cutoff_type="distance"), "inner_cutoff_type", "must be the same"),
    (lambda t: t["species"][0]["nbody"][0].update(c=[1, 2]), "species[0].nbody[0]", "ndensity 1"),
    (lambda t: t["species"][0]["nbody"][0].update(nr=[99]), "species[0].nbody[0]", "exceeds nradbaseij"),
    (lambda t: t["species"][0]["nbody"][0].update(type="Ni Al"), "species[0].nbody[0]", "central element"),
    (lambda t: t.pop("global"), "global", "missing"),
    (lambda t: [t["species"].pop(i) for i in (3, 1)], "species", "no radial basis for the pair"),
    (lambda t: t["species"].pop(0), "species", "embedding of Al undefined"),
])
def test_malformed_yaml_errors(tmp_path, mutate, where, problem):
    p = _yaml_with(tmp_path, mutate)
    with pytest.raises(PotentialFileError) as err:
        read_bbasis_yaml(p)
    assert where in str(err.value) and problem in str(err.value), str(err.value)
    assert str(p) in str(err.value)


def test_invalid_yaml_syntax(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("global: {DeltaSplineBins: 0.001\nspecies: [\n")
    with pytest.raises(PotentialFileError, match="invalid YAML"):
        read_bbasis_yaml(p)


def test_yace_given_to_bbasis_reader_gives_hint():
    with pytest.raises(PotentialFileError, match="read_yace"):
        read_bbasis_yaml(DATA / "Cu-I.yace")


def test_old_flat_radcoefficients(tmp_path, converted):
    def flatten(tree):
        for block in tree["species"]:
            if "radcoefficients" in block:
                c = np.array(block["radcoefficients"], dtype=float)    # [n][l][k]
                block["radcoefficients"] = c.transpose(2, 0, 1).ravel().tolist()   # k outer, n, l inner
    p = _yaml_with(tmp_path, flatten)
    assert_same_tables(read_bbasis_yaml(p), converted["Al-Ni_opt_all"])


def test_mirror_block_and_skip(tmp_path, converted):
    # a 2-species block without radial settings takes them from its mirror block
    def strip(tree):
        blk = next(b for b in tree["species"] if b["speciesblock"] == "Ni Al")
        for key in ("nradmaxi", "lmaxi", "rcutij", "dcutij", "nradbaseij", "radbase", "radparameters",
                    "radcoefficients", "core-repulsion"):
            blk.pop(key, None)
    assert_same_tables(read_bbasis_yaml(_yaml_with(tmp_path, strip)), converted["Al-Ni_opt_all"])
    # skipped functions are left out
    p = _yaml_with(tmp_path, _set_fn(0, 0, skip=True))
    pot = read_bbasis_yaml(p)
    assert len(pot.functions[0]) == len(converted["Al-Ni_opt_all"].functions[0]) - 1


# --------------------------------------------------------------------------- writer
@pytest.mark.parametrize("name", PAIRS + ["Cu-PBE-core-rep"])
def test_write_yace_round_trip_is_exact(name, tmp_path):
    pot = read_yace(DATA / f"{name}.yace")
    out = write_yace(pot, tmp_path / "out.yace")
    assert_same_tables(read_yace(out), pot, rtol=0.0)
    assert sorted(os.listdir(tmp_path)) == ["out.yace"]          # no temporary file left


@pytest.mark.parametrize("name", PAIRS)
def test_yaml_to_yace_file_matches_reference(name, tmp_path, converted):
    out = tmp_path / f"{name}.yace"
    pot = convert_potential(DATA / f"{name}.yaml", out)
    back = read_yace(out)
    assert_same_tables(back, pot, rtol=0.0)
    assert_same_tables(back, read_yace(DATA / f"{name}.yace"), rtol=CTILDE_RTOL, check_E0=False)


def test_written_layout_follows_pacemaker(tmp_path, converted):
    ref_path = DATA / "ternary_AlCuZn.yace"
    out = write_yace(converted["ternary_AlCuZn"], tmp_path / "t.yace")
    ref_text, text = ref_path.read_text(), out.read_text()
    ref, new = load_yaml_tree(ref_path), load_yaml_tree(out)
    assert list(new) == list(ref) == ["elements", "E0", "deltaSplineBins", "embeddings", "bonds", "functions"]
    assert list(new["embeddings"]) == list(ref["embeddings"])
    assert list(new["embeddings"][0]) == list(ref["embeddings"][0])
    assert list(new["bonds"]) == list(ref["bonds"])                  # [i, j] keys, same order
    assert list(new["bonds"][(0, 1)]) == list(ref["bonds"][(0, 1)])
    assert list(new["functions"][0][0]) == list(ref["functions"][0][0])
    # one flow-style line per embedding, bond and function, as pacemaker writes them
    for prefix in ("  0: {", "  [0, 1]: {", "    - {mu0: "):
        assert sum(ln.startswith(prefix) for ln in text.splitlines()) == \
            sum(ln.startswith(prefix) for ln in ref_text.splitlines())
    assert len(text.splitlines()) == len(ref_text.splitlines())


def test_float_formatting_round_trips(tmp_path):
    pot = read_bbasis_yaml(DATA / "Cu-I.yaml")
    idx = max(range(len(pot.functions[0])), key=lambda i: pot.functions[0][i].ctildes.size)
    f = pot.functions[0][idx]
    special = np.array([1e-05, 1e16, -2.5e-300, 5e-324, 0.1 + 0.2, 1.0, -0.0, 123456789.125])
    assert f.ctildes.size >= special.size
    f.ctildes.ravel()[: special.size] = special
    pot.E0 = np.array([-4.57])
    back = read_yace(write_yace(pot, tmp_path / "x.yace"))
    assert_same_tables(back, pot, rtol=0.0)
    got = back.functions[0][idx].ctildes.ravel()[: special.size]
    assert np.array_equal(got, special) and np.signbit(got[6])


def test_convert_ace(tmp_path):
    pytest.importorskip("acemd.potential.ace_format")
    out = tmp_path / "cu.yace"
    convert_potential(DATA / "Cu-PBE-core-rep.ace", out)
    assert_same_tables(read_yace(out), read_yace(DATA / "Cu-PBE-core-rep.yace"), rtol=CTILDE_RTOL)


def test_convert_unknown_suffix(tmp_path):
    p = tmp_path / "pot.txt"
    p.write_text("x")
    with pytest.raises(PotentialFileError, match="unknown potential format"):
        convert_potential(p, tmp_path / "out.yace")
