"""acemd.fit.weights: pacemaker's weighting policies, by hand and against pacemaker's numbers."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from acemd.fit.dataset import Structure, load_structures
from acemd.fit.weights import (WeightingError, compute_weights, compute_weights_train_test,
                               convex_hull_distance, normalize_weights, stress_weights)

DATA = Path(__file__).resolve().parents[1] / "data" / "fit"
ENERGY_BASED = "EnergyBasedWeightingPolicy"


def _structure(symbols, energy_per_atom, forces=None, pbc=True, name="", stress=None, **extra):
    n = len(Atoms(symbols))
    atoms = Atoms(symbols, positions=np.arange(n)[:, None] * np.array([2.5, 0.0, 0.0]),
                  cell=np.diag([2.5 * n + 6.0, 8.0, 8.0]) if pbc else None, pbc=pbc)
    f = np.zeros((n, 3)) if forces is None else np.asarray(forces, dtype=float)
    return Structure(atoms=atoms, energy=energy_per_atom * n, forces=f, name=name, stress=stress,
                     source=f"test {symbols} {energy_per_atom}", **extra)


def test_uniform_every_atom_weighs_the_same():
    structures = [_structure("Cu", -3.0), _structure("Cu2", -3.0), _structure("Cu4", -3.0)]
    w_e, w_f = compute_weights(structures, None)
    np.testing.assert_allclose(w_e, [1 / 3] * 3, rtol=1e-15)
    for w in w_f:
        np.testing.assert_allclose(w, 1 / 7, rtol=1e-15)
    energy_only = structures + [Structure(atoms=Atoms("Cu3", positions=np.eye(3) * 2.5),
                                          energy=-9.0, forces=None)]
    w_e, w_f = compute_weights(energy_only, {"type": "UniformWeightingPolicy"})
    np.testing.assert_allclose(w_e, 0.25)
    np.testing.assert_array_equal(w_f[3], np.zeros(3))
    np.testing.assert_allclose(np.concatenate(w_f[:3]), 1 / 7)


def _hand_case():
    """Cohesive energies e = [0, 0.1, 0.5, 2.0] eV/atom, forces with |F|^2 = 1 | 0, 9 | 2 | 0."""
    return [
        _structure("Cu", -3.0, [[1.0, 0.0, 0.0]]),
        _structure("Cu2", -2.9, [[0.0, 0.0, 0.0], [0.0, 3.0, 0.0]]),
        _structure("Cu", -2.5, [[0.0, 1.0, 1.0]]),
        _structure("Cu2", -1.0, [[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
    ]


def test_energy_based_worked_by_hand():
    policy = {"type": ENERGY_BASED, "energy": "cohesive", "DElow": 0.3, "DEup": 1.0,
              "DE": 0.1, "DF": 1.0, "wlow": 0.9, "seed": 5}
    w_e, w_f = compute_weights(_hand_case(), policy)
    # 1/(e+DE)^2 = 100, 25, 2.78 (e = 2.0 >= DEup: left out); below DElow rescaled to hold 0.9:
    # 0.9 * [100, 25]/125 = [0.72, 0.18]; above: 0.1
    np.testing.assert_allclose(w_e, [0.72, 0.18, 0.1, 0.0], rtol=1e-13, atol=1e-16)
    # w_E/(|F|^2 + DF): 0.72/2, 0.18/1, 0.18/10, 0.1/3, then normalised over all atoms
    raw = [[0.36], [0.18, 0.018], [0.1 / 3], [0.0, 0.0]]
    total = 0.36 + 0.18 + 0.018 + 0.1 / 3
    for got, want in zip(w_f, raw):
        np.testing.assert_allclose(got, np.array(want) / total, rtol=1e-13, atol=1e-16)
    # without wlow: the plain 1/(e+DE)^2 shares
    del policy["wlow"]
    w_e, _ = compute_weights(_hand_case(), policy)
    np.testing.assert_allclose(w_e, np.array([100, 25, 1 / 0.36, 0]) / (125 + 1 / 0.36),
                               rtol=1e-13)


def test_energy_based_dfup_and_reftype():
    structures = _hand_case()
    policy = {"type": ENERGY_BASED, "energy": "cohesive", "DEup": 10.0, "DFup": 2.0}
    w_e, _ = compute_weights(structures, policy)
    assert list(w_e > 0) == [True, False, True, False]   # |F|max 3 and 5 eV/Å > DFup
    mixed = structures[:2] + [_structure("Cu", -2.95, pbc=False),
                              _structure("Cu2", -2.7, pbc=False)]
    w_bulk, _ = compute_weights(mixed, {"type": ENERGY_BASED, "energy": "cohesive",
                                        "reftype": "bulk"})
    w_clus, _ = compute_weights(mixed, {"type": ENERGY_BASED, "energy": "cohesive",
                                        "reftype": "cluster", "DE": 0.1})
    assert list(w_bulk > 0) == [True, True, False, False]
    # clusters on their own energy scale: e = [0, 0.25]
    np.testing.assert_allclose(w_clus[2:], np.array([100, 1 / 0.35 ** 2]) / (100 + 1 / 0.35 ** 2))


def test_energy_based_selection_counts_and_seed():
    rng = np.random.default_rng(3)
    epa = -3.0 + np.concatenate([rng.uniform(0, 0.5, 30), rng.uniform(0.5, 4.0, 40)])
    structures = [_structure("Cu", e) for e in epa]
    policy = {"type": ENERGY_BASED, "energy": "cohesive", "DElow": 0.5, "DEup": 3.0, "nfit": 45,
              "seed": 17}
    w_e, _ = compute_weights(structures, policy)
    e = epa - epa.min()
    assert (w_e > 0).sum() == 45
    assert np.all(w_e[e < 0.5] > 0)                 # every low structure is taken first
    assert np.all(w_e[e >= 3.0] == 0)
    again, _ = compute_weights(structures, policy)
    np.testing.assert_array_equal(again, w_e)
    other, _ = compute_weights(structures, {**policy, "seed": 18})
    assert set(np.flatnonzero(other)) != set(np.flatnonzero(w_e))
    split, _ = compute_weights(structures, {"type": ENERGY_BASED, "energy": "cohesive",
                                            "DElow": 0.5, "DEup": 3.0, "n_lower": 10,
                                            "n_upper": 5, "seed": 1})
    assert (split[e < 0.5] > 0).sum() == 10 and (split[e >= 0.5] > 0).sum() == 5


def test_convex_hull_distance_by_hand():
    # (Al, Ni) counts and energies per atom; hull: Al -1, AlNi formation -0.5, Ni -2
    rows = [((1, 0), -1.0), ((0, 1), -2.0), ((1, 1), -2.0), ((1, 1), -1.8), ((3, 1), -1.35),
            ((1, 0), -0.9), ((0, 2), -1.95)]
    counts = np.array([r[0] for r in rows])
    epa = np.array([r[1] for r in rows])
    dist = convex_hull_distance(counts, epa)
    np.testing.assert_allclose(dist, [0, 0, 0, 0.2, 0.15, 0.1, 0.05], atol=1e-12)
    # invariant under per-element reference energies (they cancel in formation energies)
    conc = counts / counts.sum(axis=1, keepdims=True)
    shifted = convex_hull_distance(counts, epa + conc @ np.array([7.0, -3.0]))
    np.testing.assert_allclose(shifted, dist, atol=1e-12)
    # one composition: energies above the lowest
    np.testing.assert_allclose(convex_hull_distance([[2, 2], [1, 1]], [-1.0, -0.7]), [0, 0.3])


def test_convex_hull_policy_uses_the_hull():
    structures = [_structure("Al", -1.0), _structure("Ni", -2.0), _structure("AlNi", -2.0),
                  _structure("AlNi", -1.8), _structure("Al3Ni", -1.35)]
    w_e, _ = compute_weights(structures, {"type": ENERGY_BASED, "DE": 0.05})
    raw = 1 / (np.array([0, 0, 0, 0.2, 0.15]) + 0.05) ** 2
    np.testing.assert_allclose(w_e, raw / raw.sum(), rtol=1e-10)


PACEMAKER = "pacemaker_weights_CuNiAl_emt.json"   # pacemaker's code on CuNiAl_emt.pckl.gzip


@pytest.mark.parametrize("case", [0, 1, 2])
def test_energy_based_matches_pacemaker(case):
    ref = json.loads((DATA / PACEMAKER).read_text())["policies"][case]
    structures = load_structures(DATA / "CuNiAl_emt.pckl.gzip", ["Al", "Cu", "Ni"])
    w_e, w_f = compute_weights(structures, ref["policy"])
    selected = np.flatnonzero(w_e > 0)
    assert selected.tolist() == ref["selected"]
    assert 0 < len(selected) < len(structures)          # a real selection, not all or nothing
    dev_e = np.abs(w_e[selected] - ref["w_energy"]).max() / max(ref["w_energy"])
    dev_f = max(np.abs(w_f[i] - np.array(wf)).max() for i, wf in zip(selected, ref["w_forces"]))
    dev_f /= max(max(wf) for wf in ref["w_forces"])
    print(f"policy {case}: {len(selected)} of {len(structures)} selected as pacemaker; max "
          f"relative deviation w_E {dev_e:.1e}, w_F {dev_f:.1e}")
    assert dev_e < 1e-10 and dev_f < 1e-10
    left_out = np.setdiff1d(np.arange(len(structures)), selected)
    assert all(not w_f[i].any() for i in left_out)


def test_weight_columns_of_a_dataset_file():
    """C2H6O_emt has w_energy/w_forces: they win over any policy, normalised."""
    structures = load_structures(DATA / "C2H6O_emt_pandas1.pckl.gzip", ["C", "H", "O"])
    w_e, w_f = compute_weights(structures, {"type": ENERGY_BASED, "energy": "cohesive",
                                            "nfit": 3})
    col_e = np.array([s.energy_weight for s in structures])
    col_f = [s.force_weights for s in structures]
    total_f = sum(w.sum() for w in col_f)
    np.testing.assert_allclose(w_e, col_e / col_e.sum(), rtol=1e-14)
    for got, want in zip(w_f, col_f):
        np.testing.assert_allclose(got, want / total_f, rtol=1e-14)
    w_e, _ = compute_weights(structures, None, ignore_weights=True)
    np.testing.assert_allclose(w_e, 1 / len(structures))


def _with_columns(tmp_path, names=None, w_energy=None, w_forces=None, w_factor=None):
    atoms = [Atoms("Cu", cell=[3, 3, 3], pbc=True), Atoms("Cu2", positions=[[0, 0, 0], [1.8, 0, 0]],
                                                        cell=[3.6, 4, 4], pbc=True),
             Atoms("Cu", cell=[3.1, 3.1, 3.1], pbc=True)]
    df = pd.DataFrame({"ase_atoms": atoms, "energy_corrected": [-3.0, -6.5, -2.9],
                       "forces": [np.zeros((len(a), 3)) for a in atoms]})
    for key, value in (("name", names), ("w_energy", w_energy), ("w_forces", w_forces),
                       ("w_factor", w_factor)):
        if value is not None:
            df[key] = value
    path = tmp_path / "weighted.pckl.gzip"
    df.to_pickle(path)
    return load_structures(path, ["Cu"])


def test_dataset_weight_columns(tmp_path):
    w_forces = [np.array([2.0]), np.array([1.0, 3.0]), np.array([4.0])]
    structures = _with_columns(tmp_path, w_energy=[1.0, 2.0, 5.0], w_forces=w_forces)
    w_e, w_f = compute_weights(structures, {"type": ENERGY_BASED, "energy": "cohesive"})
    np.testing.assert_allclose(w_e, [0.125, 0.25, 0.625])      # the columns win over the policy
    np.testing.assert_allclose(np.concatenate(w_f), np.array([2, 1, 3, 4]) / 10)
    w_e, w_f = compute_weights(structures, None, ignore_weights=True)
    np.testing.assert_allclose(w_e, 1 / 3)
    np.testing.assert_allclose(np.concatenate(w_f), 0.25)
    factor = _with_columns(tmp_path, w_energy=[1.0, 2.0, 5.0], w_forces=w_forces,
                           w_factor=[1.0, 0.5, 0.0])
    w_e, w_f = compute_weights(factor, None)
    np.testing.assert_allclose(w_e, [0.5, 0.5, 0.0])
    np.testing.assert_allclose(np.concatenate(w_f), np.array([2, 0.5, 1.5, 0]) / 4)


def test_augmented_structures(tmp_path):
    names = ["real0", "real1", "augmented_dimer"]
    plain = _with_columns(tmp_path, names=names)
    w_e, w_f = compute_weights(plain, None, aug_factor=0.01)
    np.testing.assert_allclose(w_e, np.array([1, 1, 0.01]) / 2.01)
    np.testing.assert_allclose(np.concatenate(w_f), np.array([1, 1, 1, 0.01]) / 3.01)
    # weights given for real data only: augmented ones take the medians, times aug_factor
    w_forces = [np.array([2.0]), np.array([1.0, 3.0]), None]
    partial = _with_columns(tmp_path, names=names, w_energy=[1.0, 3.0, None], w_forces=w_forces)
    w_e, w_f = compute_weights(partial, None, aug_factor=0.5)
    np.testing.assert_allclose(w_e, np.array([1, 3, 0.5 * 2]) / 5)
    np.testing.assert_allclose(np.concatenate(w_f), np.array([2, 1, 3, 0.5 * 2]) / 7)
    missing = _with_columns(tmp_path, w_energy=[1.0, 3.0, None], w_forces=w_forces)
    with pytest.raises(WeightingError, match=r"1 structure\(s\) lack w_energy/w_forces.*row 2"):
        compute_weights(missing, None)


def test_external_weighting_policy(tmp_path):
    structures = _with_columns(tmp_path)
    weights = pd.DataFrame({"w_energy": [2.0, 6.0],
                            "w_forces": [np.array([1.0]), np.array([3.0])]}, index=[0, 2])
    path = tmp_path / "w.pckl.gzip"
    weights.to_pickle(path)
    w_e, w_f = compute_weights(structures, {"type": "ExternalWeightingPolicy",
                                            "filename": str(path)})
    np.testing.assert_allclose(w_e, [0.25, 0.0, 0.75])
    np.testing.assert_allclose(np.concatenate(w_f), [0.25, 0, 0, 0.75])
    weights.index = [0, 5]
    weights.to_pickle(path)
    with pytest.raises(WeightingError, match="row label 5"):
        compute_weights(structures, {"type": "ExternalWeightingPolicy", "filename": str(path)})


@pytest.mark.parametrize("policy,pattern", [
    ({"type": "Fancy"}, "type = 'Fancy': unknown"),
    ({"nfit": 3}, "no 'type'"),
    ("EnergyBasedWeightingPolicy", "must be a mapping"),
    ({"type": ENERGY_BASED, "DElo": 1.0}, r"unknown key\(s\) \['DElo'\]"),
    ({"type": ENERGY_BASED, "reftype": "slab"}, "reftype = 'slab'"),
    ({"type": ENERGY_BASED, "energy": "formation"}, "energy = 'formation'"),
    ({"type": ENERGY_BASED, "wlow": 1.5}, r"wlow = 1.5: must lie in \[0, 1\]"),
    ({"type": ENERGY_BASED, "DE": "big"}, "DE = 'big': must be a number"),
    ({"type": ENERGY_BASED, "nfit": 2.5}, "nfit = 2.5"),
    ({"type": ENERGY_BASED, "nfit": 2, "n_lower": 1}, "nfit excludes n_lower"),
    ({"type": ENERGY_BASED, "n_lower": 1}, "both n_lower and n_upper"),
    ({"type": ENERGY_BASED, "energy": "cohesive", "DEup": -1.0}, "no structure is left after DEup"),
    ({"type": ENERGY_BASED, "reftype": "cluster"}, "no structure is left after reftype"),
    ({"type": "UniformWeightingPolicy", "nfit": 3}, "takes no keys"),
    ({"type": "ExternalWeightingPolicy"}, "takes one key, filename"),
])
def test_bad_policies(policy, pattern):
    with pytest.raises(WeightingError, match=pattern):
        compute_weights(_hand_case(), policy)


def test_train_and_test_weighted_together_normalised_apart():
    """pacemaker: the policy sees train + test; each part is normalised on its own."""
    train = _hand_case()[1:]                      # e = 0.1, 0.5, 2.0 above the test's minimum
    test = [_hand_case()[0], _structure("Cu", -2.0)]   # e = 0 and 1.0
    policy = {"type": ENERGY_BASED, "energy": "cohesive", "DElow": 0.3, "DEup": 1.5, "DE": 0.1}
    (tr_e, tr_f), (te_e, te_f) = compute_weights_train_test(train, test, policy)
    raw_train = np.array([1 / 0.2 ** 2, 1 / 0.6 ** 2, 0.0])   # e measured from the test's -3.0
    np.testing.assert_allclose(tr_e, raw_train / raw_train.sum(), rtol=1e-13)
    raw_test = np.array([1 / 0.1 ** 2, 1 / 1.1 ** 2])
    np.testing.assert_allclose(te_e, raw_test / raw_test.sum(), rtol=1e-13)
    assert sum(w.sum() for w in tr_f) == pytest.approx(1.0)
    assert sum(w.sum() for w in te_f) == pytest.approx(1.0)
    alone, _ = compute_weights(train, policy)          # train alone: e from its own minimum
    assert not np.allclose(alone, tr_e)
    (u_e, _), (v_e, v_f) = compute_weights_train_test(train, test, None)
    np.testing.assert_allclose(u_e, 1 / 3)
    np.testing.assert_allclose(v_e, 1 / 2)
    clusters = [_structure("Cu", -3.0, pbc=False), _structure("Cu2", -2.8, pbc=False)]
    (b_e, _), (z_e, _) = compute_weights_train_test(train, clusters, {**policy, "reftype": "bulk"})
    np.testing.assert_array_equal(z_e, [0.0, 0.0])    # the test part left out entirely
    np.testing.assert_allclose(b_e, alone, rtol=1e-13)


def test_stress_weights_and_normalisation():
    structures = [_structure("Cu", -3.0, stress=np.zeros(6)), _structure("Cu", -2.9),
                  _structure("Cu2", -2.8, stress=np.ones(6) * 0.01)]
    w_s = stress_weights(structures, [0.5, 0.3, 0.2])
    np.testing.assert_allclose(w_s, [0.5 / 0.7, 0.0, 0.2 / 0.7])
    np.testing.assert_array_equal(stress_weights(structures[1:2], [1.0]), [0.0])
    w_e, w_f = normalize_weights([2.0, 6.0], [np.array([1.0, 1.0]), np.array([2.0])])
    np.testing.assert_allclose(w_e, [0.25, 0.75])
    np.testing.assert_allclose(np.concatenate(w_f), [0.25, 0.25, 0.5])
    with pytest.raises(WeightingError, match="all energy weights are zero"):
        normalize_weights([0.0, 0.0], [np.zeros(1), np.zeros(1)])
