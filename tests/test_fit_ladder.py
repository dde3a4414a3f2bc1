"""The ladder schedule (acemd.fit.ladder) against pacemaker's steps, hand-checked cases and its properties.

``tests/data/fit/pacemaker_ladder_steps.json`` holds, per case and step, pacemaker's step size, number
of functions and per block the count, radial shape and a SHA-256 of its (elements, ns, ls, LS) list,
written by pyace 0.2.8 (``scripts/validate_fit_ladder.py --reference``); acemd's schedule must give the
same records.  The hand-checked cases follow pacemaker's rule written out in the module docstring.
"""
import copy
import json
from pathlib import Path

import numpy as np
import pytest

from acemd.fit.basis import FunctionSpec, build_basis
from acemd.fit.ladder import (LadderError, carry_coefficients, delta_crad, ladder_order, ladder_schedule,
                              ladder_step_size)

DATA = Path(__file__).resolve().parent / "data" / "fit"
ROOT = Path(__file__).resolve().parents[1]

EMB2 = {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}}
BOND = {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01}}


def cu_small():
    """12 functions: ranks 1 (n 1..4), 2 (n <= 2, l <= 1), 3 (n 1, l <= 1)."""
    return build_basis({"elements": ["Cu"], "embeddings": EMB2, "bonds": BOND,
                        "functions": {"ALL": {"nradmax_by_orders": [4, 2, 1], "lmax_by_orders": [0, 1, 1]}}})


def alni():
    return build_basis({"elements": ["Ni", "Al"], "embeddings": EMB2, "bonds": BOND,
                        "functions": {"UNARY": {"nradmax_by_orders": [5, 2, 1], "lmax_by_orders": [0, 1, 1]},
                                      "BINARY": {"nradmax_by_orders": [3, 2], "lmax_by_orders": [0, 1]}}})


def nl(funcs):
    return [(f.ns, f.ls) for f in funcs]


# -- pacemaker's own steps ----------------------------------------------------------------------

def _script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("validate_fit_ladder", ROOT / "scripts" / "validate_fit_ladder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schedule_equals_pacemakers_steps():
    """Every case of the reference (1-3 elements, int / fraction / both, body and power order, Cu-II's
    899 functions, from an initial potential): same steps, sizes, per-block lists and radial shapes."""
    script = _script()
    data = json.loads((DATA / "pacemaker_ladder_steps.json").read_text())
    assert len(data["cases"]) >= 10
    for name, record in data["cases"].items():
        steps, initial_blocks = script.acemd_steps(copy.deepcopy(record))
        ref = record["steps"]
        print(f"{name}: {len(steps)} steps (pacemaker {len(ref)}), sizes {[s['size'] for s in steps]}, "
              f"functions {[s['total'] for s in steps]}")
        assert [s["size"] for s in steps] == [s["size"] for s in ref], name
        assert [s["total"] for s in steps] == [s["total"] for s in ref], name
        for k, (mine, theirs) in enumerate(zip(steps, ref)):
            assert mine["blocks"] == theirs["blocks"], f"{name}: step {k}"
        if initial_blocks is not None:
            assert initial_blocks == record["initial_blocks"], name


# -- the rule by hand ----------------------------------------------------------------------------

@pytest.mark.parametrize("step, current, final, expected", [
    (10, 0, 100, 10), (10, 95, 100, 5), (10, 100, 100, 0),
    (0.02, 0, 1000, 1),                 # round(0) -> at least 1
    (0.02, 500, 1000, 10), (0.25, 10, 100, 2),   # round(2.5) = 2 (Python's round, as pacemaker)
    (0.25, 14, 100, 4),                 # round(3.5) = 4
    ([10, 0.02], 100, 1000, 10), ([10, 0.02], 1000, 2000, 20), ((15, 0.0), 30, 100, 15), ((0, 0.5), 30, 100, 15),
    (None, 30, 100, 70),
])
def test_step_size_by_hand(step, current, final, expected):
    assert ladder_step_size(step, current, final) == expected


@pytest.mark.parametrize("bad", [0, -3, 1.5, 10.0, [10, 20], [0.1, 0.2], [1, 0.1, 2], "10", True, []])
def test_bad_step_is_refused(bad):
    with pytest.raises(LadderError, match="ladder_step"):
        ladder_step_size(bad, 0, 10)


def test_power_order_steps_by_hand():
    """Power p = rank + sum ns + sum ls of the 12 functions: 2 (1), 3 (2), 4 (3), (11;00), 5 (4), (12;00),
    6 (11;11), (22;00), (111;000), 7 (12;11), 8 (22;11), (111;011); steps of 3 take them in that order
    (ties in the basis' order) and list each step's functions in body order; the radial shape follows."""
    spec = cu_small()
    steps = ladder_schedule(spec, 3, "power_order")
    added = [nl(s.added[0]) for s in steps]
    assert added == [[((1,), (0,)), ((2,), (0,)), ((3,), (0,))],
                     [((1, 1), (0, 0)), ((4,), (0,)), ((1, 2), (0, 0))],
                     [((1, 1), (1, 1)), ((2, 2), (0, 0)), ((1, 1, 1), (0, 0, 0))],
                     [((1, 2), (1, 1)), ((2, 2), (1, 1)), ((1, 1, 1), (0, 1, 1))]]
    assert nl(steps[1].spec.blocks[0].functions) == [((1,), (0,)), ((2,), (0,)), ((3,), (0,)), ((4,), (0,)),
                                                     ((1, 1), (0, 0)), ((1, 2), (0, 0))]
    shapes = [(s.spec.blocks[0].bond.nradmax, s.spec.blocks[0].bond.lmax, s.spec.blocks[0].bond.nradbase)
              for s in steps]
    assert shapes == [(0, 0, 3), (2, 0, 4), (2, 1, 4), (2, 1, 4)]


def test_body_order_steps_by_hand():
    """Body order (rank, ns, ls, LS): the four rank-1 functions first, then rank 2 by ns, ls."""
    steps = ladder_schedule(cu_small(), 5, "body_order")
    assert [nl(s.added[0]) for s in steps] == [
        [((1,), (0,)), ((2,), (0,)), ((3,), (0,)), ((4,), (0,)), ((1, 1), (0, 0))],
        [((1, 1), (1, 1)), ((1, 2), (0, 0)), ((1, 2), (1, 1)), ((2, 2), (0, 0)), ((2, 2), (1, 1))],
        [((1, 1, 1), (0, 0, 0)), ((1, 1, 1), (0, 1, 1))]]
    assert [s.size for s in steps] == [5, 5, 2]          # the last step cut to what is left


def test_fraction_grows_with_the_basis():
    """0.5 of the current size, at least 1: from 0, 1, 2, 3, 5, 7, 11 functions round(0.5 * n) = 0, 0, 1,
    2, 2 (Python rounds 2.5 to even), 4, and the last step cut to the 1 left (12 in all)."""
    steps = ladder_schedule(cu_small(), 0.5, "body_order")
    assert [s.size for s in steps] == [1, 1, 1, 2, 2, 4, 1]
    assert [s.nfunctions for s in steps] == [1, 2, 3, 5, 7, 11, 12]


def test_a_step_adds_up_to_its_size_in_every_block():
    """pacemaker's step counts per block: 2 blocks per element in AlNi, a step of 4 adds 4 to each."""
    steps = ladder_schedule(alni(), 4, "body_order")
    first = steps[0]
    assert [b.name for b in first.spec.blocks] == ["Al", "Ni", "Al Ni", "Ni Al"]
    assert [len(a) for a in first.added] == [4, 4, 4, 4] and first.nfunctions == 16


# -- properties ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make, step, kind", [(cu_small, 2, "power_order"), (alni, [3, 0.3], "body_order"),
                                              (alni, 0.2, "power_order")])
def test_schedule_properties(make, step, kind):
    """Monotone growth, at most ``size`` new per block in ladder order, every list in body order, the
    last step the whole basis, bond shapes just what the functions need."""
    full = make()
    steps = ladder_schedule(full, step, kind)
    prev = [set() for _ in full.blocks]
    total = 0
    for st in steps:
        assert st.nfunctions > total and st.nadded == st.nfunctions - total
        total = st.nfunctions
        for k, (block, target) in enumerate(zip(st.spec.blocks, full.blocks)):
            have = set(block.functions)
            assert prev[k] <= have and len(have - prev[k]) <= st.size
            assert list(st.added[k]) == [f for f in block.functions if f not in prev[k]] or \
                set(st.added[k]) == have - prev[k]
            remaining = [target.functions[i] for i in ladder_order(target.functions, kind)
                         if target.functions[i] not in prev[k]]
            assert list(st.added[k]) == remaining[:st.size]          # first come, first added
            keys = [(f.rank, f.ns, f.ls, f.LS, f.elements) for f in block.functions]
            assert keys == sorted(keys)
            prev[k] = have
    assert [set(b.functions) for b in steps[-1].spec.blocks] == [set(b.functions) for b in full.blocks]
    assert steps[-1].nfunctions == full.total
    for b, target in zip(steps[-1].spec.blocks, full.blocks):       # the final shape: the basis' (built from funcs)
        if b.bond is not None:
            assert (b.bond.nradmax, b.bond.lmax, b.bond.nradbase) == (target.bond.nradmax, target.bond.lmax,
                                                                       target.bond.nradbase)


def test_initial_potential_functions_are_kept():
    """Start from 5 functions of the basis plus one the basis lacks (rank 2, n = 3): kept from the start,
    counted in the final size (acemd's rule: the whole basis is still added), radial shape at least the
    initial potential's."""
    full = cu_small()
    start = ladder_schedule(full, 5, "body_order")[0].spec
    extra = FunctionSpec(elements=("Cu", "Cu", "Cu"), ns=(1, 3), ls=(0, 0), LS=())
    start.blocks[0].functions.append(extra)
    start = type(start)(elements=start.elements, delta_spline_bins=start.delta_spline_bins, blocks=start.blocks)
    start.blocks[0].bond.nradmax = 3
    steps = ladder_schedule(full, 4, "body_order", initial=start)
    assert steps.initial.total == 6 and steps.final_total == full.total + 1
    assert [s.nfunctions for s in steps] == [10, 13]
    for s in steps:
        assert extra in s.spec.blocks[0].functions and s.spec.blocks[0].bond.nradmax == 3
    assert set(full.blocks[0].functions) <= set(steps[-1].spec.blocks[0].functions)


def test_bad_type_and_foreign_initial_potential():
    with pytest.raises(LadderError, match="ladder_type"):
        ladder_schedule(cu_small(), 3, "rank_order")
    with pytest.raises(LadderError, match="element Al"):
        ladder_schedule(cu_small(), 3, initial=ladder_schedule(alni(), 3)[0].spec)


# -- coefficients from step to step ---------------------------------------------------------------

def test_carry_keeps_fitted_values_and_starts_new_ones_at_pacemakers_values():
    rng = np.random.default_rng(5)
    steps = ladder_schedule(alni(), 3, "power_order")
    a, b = steps[0].spec, steps[1].spec
    coeffs = [rng.normal(size=(n, 2)) for n in a.nfuncs]
    crad = {("Al", "Al"): rng.normal(size=(0, 1, 3)), ("Al", "Ni"): rng.normal(size=(1, 2, 2)),
            ("Ni", "Ni"): rng.normal(size=(0, 1, 3))}
    new_c, new_crad = carry_coefficients(a, coeffs, crad, b)
    for mu in range(2):
        old = dict(zip(a.functions[mu], coeffs[mu]))
        for f, row in zip(b.functions[mu], new_c[mu]):
            assert np.array_equal(row, old[f]) if f in old else np.all(row == 0)
        assert new_c[mu].shape == (b.nfuncs[mu], 2)
    for pair, c in new_crad.items():
        bond = next(x.bond for x in b.blocks if tuple(sorted((x.elements[0], x.elements[-1]))) == pair)
        assert c.shape == (bond.nradmax, bond.lmax + 1, bond.nradbase)
        o = crad[pair]
        n, l, k = (min(x, y) for x, y in zip(o.shape, c.shape))
        expected = delta_crad(bond.nradmax, bond.lmax, bond.nradbase)
        expected[:n, :l, :k] = o[:n, :l, :k]
        assert np.array_equal(c, expected)
    print("shapes", {p: c.shape for p, c in new_crad.items()})
    assert any(c.shape != crad[p].shape for p, c in new_crad.items())       # the step grew a radial shape


def test_carry_from_a_potential_of_fewer_elements_and_with_a_fallback():
    """An initial potential of Al only onto the AlNi step: Al's values kept, Ni's from the fallback
    (pacemaker's target coefficients) where it has them, else 0."""
    full = alni()
    al = build_basis({"elements": ["Al"], "embeddings": EMB2, "bonds": BOND,
                      "functions": {"ALL": {"nradmax_by_orders": [2], "lmax_by_orders": [0]}}})
    nxt = ladder_schedule(full, 2, "body_order")[0].spec
    fallback_c = [np.full((n, 2), 7.0) for n in full.nfuncs]
    c, crad = carry_coefficients(al, [np.array([[1.0, 2.0], [3.0, 4.0]])], {}, nxt, fallback=(full, fallback_c))
    assert np.array_equal(c[0][:2], [[1.0, 2.0], [3.0, 4.0]])
    assert np.all(c[1] == 7.0) and np.all(c[0][2:] == 7.0)
    assert all(np.array_equal(v, delta_crad(*v.shape[:1], v.shape[1] - 1, v.shape[2])) for v in crad.values())
