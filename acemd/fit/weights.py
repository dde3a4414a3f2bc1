"""pacemaker's weighting of energies and forces (``fit.weighting``) for a list of Structures.

The loss of a fit sums ``w_E,s (E_s - E_s^ref)^2`` over structures and
``w_F,i |F_i - F_i^ref|^2`` over atoms.  pacemaker sets the weights, in this order:

1. the dataset's own ``w_energy`` and ``w_forces`` columns when every structure has
   both (unless ``data.ignore_weights``), else the policy of ``fit.weighting``:
   - ``UniformWeightingPolicy`` (the default, ``policy`` None): w_E = 1/n_structures,
     w_F = w_E of the atom's structure, so after normalisation every atom weighs the same;
   - ``EnergyBasedWeightingPolicy``: structures are selected by energy and weighted by
     ``1/(e + DE)^2`` (:func:`energy_based_weights`);
   - ``ExternalWeightingPolicy``: ``w_energy``/``w_forces`` from a separate pickle whose
     index labels are positions in the structure list (pacemaker: the row numbers of the
     concatenated dataset); structures it does not list are left out;
2. times the ``w_factor`` column, if any;
3. structures whose ``name`` starts with ``augmented`` get weights x ``aug_factor``
   (default 1e-4), the median of the other structures' weights when they had none;
4. normalisation: the energy weights sum to one, and so do all force weights together.

pacemaker weighs training and test structures together and normalises each set on its own:
:func:`compute_weights_train_test` does that.

A structure the policy leaves out (energy window, ``nfit``, ``reftype``, ``DFup``) gets
weight 0 for its energy and forces; ``weights > 0`` says which ones were selected.
Energy-only structures (no forces) get zero force weights.

Stresses are not fitted by pacemaker: :func:`stress_weights` defines acemd's default,
the energy weights of the structures that have a stress, normalised to sum one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["WeightingError", "compute_weights", "compute_weights_train_test", "normalize_weights",
           "energy_based_weights", "convex_hull_distance", "stress_weights",
           "ENERGY_BASED_DEFAULTS", "POLICY_TYPES"]

POLICY_TYPES = ("UniformWeightingPolicy", "EnergyBasedWeightingPolicy", "ExternalWeightingPolicy")

# EnergyBasedWeightingPolicy keys and pacemaker's defaults (energies in eV/atom, forces in eV/Å)
ENERGY_BASED_DEFAULTS = {
    "nfit": None,        # number of structures to select (default: all)
    "n_lower": None,     # alternatively: how many below DElow ...
    "n_upper": None,     # ... and how many between DElow and DEup
    "cutoff": None,      # accepted and ignored (as in pacemaker)
    "DElow": 1.0,        # eV/atom: structures below are taken first
    "DEup": 10.0,        # eV/atom: structures at or above are left out
    "DFup": None,        # eV/Å: structures with a larger force on any atom are left out
    "DE": 1.0,           # eV/atom: energy weight 1/(e + DE)^2
    "DF": 1.0,           # eV²/Å²: force weight 1/(|F|^2 + DF)
    "wlow": None,        # total energy weight of the structures below DElow
    "reftype": "all",    # all | bulk (periodic in 3D) | cluster (the others)
    "seed": None,        # random selection (numpy's legacy RandomState, as pacemaker)
    "energy": "convex_hull",  # convex_hull | cohesive: what e measures
}


class WeightingError(ValueError):
    """``fit.weighting`` or the dataset's weight columns cannot be used."""


def normalize_weights(energy_weights, force_weights):
    """Energy weights scaled to sum one, force weights scaled so all atoms sum to one.

    pacemaker normalises the training and test sets separately after weighting them
    together: call this on each part.
    """
    w_e = np.asarray(energy_weights, dtype=np.float64)
    total_e = w_e.sum()
    if not total_e > 0:
        raise WeightingError("all energy weights are zero: no structure left to fit; check "
                             "fit.weighting (DEup, nfit, reftype) and the w_energy column")
    total_f = float(sum(np.sum(w) for w in force_weights))
    scale_f = 1.0 / total_f if total_f > 0 else 0.0
    return w_e / total_e, [np.asarray(w, dtype=np.float64) * scale_f for w in force_weights]


def _has_forces(s) -> bool:
    return s.forces is not None


# ---------------------------------------------------------------------------
# energy reference frames
# ---------------------------------------------------------------------------


def convex_hull_distance(counts, energy_per_atom) -> np.ndarray:
    """Distance (eV/atom) of each structure above the lower convex hull of formation energies.

    ``counts`` (n, n_elements) atoms of each element.  The formation energy is taken
    against the lowest energy per atom of each pure element (0 when the data has no
    pure structure of it).  With a single composition the result is
    ``energy_per_atom - min(energy_per_atom)``.  This is pacemaker's effective energy
    for ``energy: convex_hull``.
    """
    from scipy.spatial import ConvexHull, QhullError

    counts = np.asarray(counts, dtype=np.float64)
    epa = np.asarray(energy_per_atom, dtype=np.float64)
    counts = counts[:, counts.sum(axis=0) > 0]
    conc = counts / counts.sum(axis=1, keepdims=True)
    if len(np.unique(np.round(conc, 12), axis=0)) <= 1:
        return epa - epa.min()
    pure_ref = np.zeros(conc.shape[1])
    for k in range(conc.shape[1]):
        pure = conc[:, k] == 1.0
        if pure.any():
            pure_ref[k] = epa[pure].min()
    e_form = epa - conc @ pure_ref
    points = np.column_stack([conc[:, :-1], e_form])
    try:
        hull = ConvexHull(points)
    except QhullError as exc:
        raise WeightingError("fit.weighting energy: convex_hull: the compositions and energies "
                             "do not span a convex hull (too few distinct points); use "
                             "energy: cohesive") from exc
    eq = hull.equations[hull.equations[:, -2] < 0]   # facets of the lower hull
    normal_c, normal_e, offset = eq[:, :-2], eq[:, -2], eq[:, -1]
    # plane value at each composition: n_c.c + n_e.e + b = 0
    planes = -(points[:, :-1] @ normal_c.T + offset[None, :]) / normal_e[None, :]
    below = planes < e_form[:, None] + 1e-15
    hull_e = np.where(below, planes, -np.inf).max(axis=1)
    return np.where(np.isfinite(hull_e), e_form - hull_e, 0.0)


def _effective_energy(structures, kind):
    from acemd.fit.dataset import _counts

    epa = np.array([s.energy / s.natoms for s in structures])
    if kind == "cohesive":
        return epa - epa.min()
    elements = sorted({sym for s in structures for sym in s.atoms.get_chemical_symbols()})
    return convex_hull_distance(_counts(structures, elements), epa)


# ---------------------------------------------------------------------------
# policies
# ---------------------------------------------------------------------------


def _uniform(structures):
    n = len(structures)
    w_e = np.full(n, 1.0 / n)
    w_f = [np.full(s.natoms, w_e[k]) if _has_forces(s) else np.zeros(s.natoms)
           for k, s in enumerate(structures)]
    return w_e, w_f


def _energy_based_options(spec):
    unknown = sorted(set(spec) - set(ENERGY_BASED_DEFAULTS))
    if unknown:
        raise WeightingError(f"fit.weighting: unknown key(s) {unknown} for EnergyBasedWeighting"
                             f"Policy; allowed: {sorted(ENERGY_BASED_DEFAULTS)}")
    opt = dict(ENERGY_BASED_DEFAULTS)
    opt.update(spec)
    for key in ("DElow", "DEup", "DE", "DF"):
        opt[key] = _number(opt[key], key)
    for key in ("DFup",):
        opt[key] = None if opt[key] is None else _number(opt[key], key)
    if isinstance(opt["wlow"], str) and opt["wlow"].strip().lower() == "none":
        opt["wlow"] = None
    if opt["wlow"] is not None:
        opt["wlow"] = _number(opt["wlow"], "wlow")
        if not 0.0 <= opt["wlow"] <= 1.0:
            raise WeightingError(f"fit.weighting.wlow = {opt['wlow']}: must lie in [0, 1]")
    for key in ("nfit", "n_lower", "n_upper", "seed"):
        if opt[key] is not None:
            if isinstance(opt[key], bool) or int(opt[key]) != opt[key] or int(opt[key]) < 0:
                raise WeightingError(f"fit.weighting.{key} = {opt[key]!r}: must be a "
                                     "non-negative integer")
            opt[key] = int(opt[key])
    if opt["reftype"] not in ("all", "bulk", "cluster"):
        raise WeightingError(f"fit.weighting.reftype = {opt['reftype']!r}: use all, bulk or "
                             "cluster")
    if opt["energy"] not in ("convex_hull", "cohesive"):
        raise WeightingError(f"fit.weighting.energy = {opt['energy']!r}: use convex_hull or "
                             "cohesive")
    return opt


def _number(value, key):
    if isinstance(value, bool):
        raise WeightingError(f"fit.weighting.{key} = {value!r}: must be a number")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise WeightingError(f"fit.weighting.{key} = {value!r}: must be a number") from None
    if not np.isfinite(out):
        raise WeightingError(f"fit.weighting.{key} = {value!r}: must be finite")
    return out


def energy_based_weights(structures, **options):
    """pacemaker's EnergyBasedWeightingPolicy: (energy weights (n,), force weights per structure).

    Selection: keep ``reftype`` structures; e = distance above the convex hull
    (``energy: convex_hull``) or above the lowest energy per atom (``cohesive``), in
    eV/atom, using ``Structure.energy`` (after reference energies); drop structures
    whose largest force exceeds ``DFup`` and those with e >= ``DEup``; take all (or a
    random ``nfit``/``n_lower``) with e < ``DElow`` and fill up to ``nfit`` (or take
    ``n_upper``) at random from DElow <= e < DEup.  Weights: w_E ∝ 1/(e + |DE|)^2,
    normalised; with ``wlow`` the structures below DElow are rescaled to hold ``wlow``
    of the total (1.0 when nothing above DElow was selected);
    w_F,i ∝ w_E,s / (|F_i|^2 + |DF|), normalised over all atoms.  Left-out structures
    get zeros.  Random choices use ``numpy.random.RandomState(seed)`` in pacemaker's
    order, so the same seed selects the same structures as pacemaker.
    """
    opt = _energy_based_options(options)
    n = len(structures)
    nfit = opt["nfit"]
    if nfit is None:
        if opt["n_lower"] is None and opt["n_upper"] is None:
            nfit = n
        elif opt["n_lower"] is not None and opt["n_upper"] is not None:
            nfit = opt["n_lower"] + opt["n_upper"]
        else:
            raise WeightingError("fit.weighting: give both n_lower and n_upper, or nfit")
    elif opt["n_lower"] is not None or opt["n_upper"] is not None:
        raise WeightingError("fit.weighting: nfit excludes n_lower/n_upper; give one or the other")

    periodic = np.array([bool(np.all(s.atoms.pbc)) for s in structures])
    cand = np.arange(n)
    if opt["reftype"] == "bulk":
        cand = cand[periodic]
    elif opt["reftype"] == "cluster":
        cand = cand[~periodic]
    _nonempty(cand, f"reftype = {opt['reftype']}")
    e_eff = np.full(n, np.nan)
    e_eff[cand] = _effective_energy([structures[i] for i in cand], opt["energy"])
    if opt["DFup"] is not None:
        fmax = np.array([np.linalg.norm(structures[i].forces, axis=1).max()
                         if _has_forces(structures[i]) else 0.0 for i in cand])
        cand = cand[fmax <= opt["DFup"]]
        _nonempty(cand, f"DFup = {opt['DFup']} eV/Å")
    cand = cand[e_eff[cand] < opt["DEup"]]
    _nonempty(cand, f"DEup = {opt['DEup']} eV/atom")
    low = cand[e_eff[cand] < opt["DElow"]]
    up = cand[e_eff[cand] >= opt["DElow"]]

    rng = np.random.RandomState(opt["seed"])
    n_low_max = opt["n_lower"] if opt["n_lower"] is not None else nfit
    low_sel = low if len(low) <= n_low_max else rng.choice(low, n_low_max, replace=False)
    if opt["n_upper"] is not None:
        up_sel = rng.choice(up, opt["n_upper"], replace=False) if opt["n_upper"] < len(up) else up
    else:
        remain = nfit - len(low_sel)
        up_sel = rng.choice(up, remain, replace=False) if remain <= len(up) else up
    selected = np.concatenate([low_sel, up_sel]).astype(np.int64)
    _nonempty(selected, f"nfit = {nfit}")

    w_e = np.zeros(n)
    w_e[selected] = 1.0 / (e_eff[selected] + abs(opt["DE"])) ** 2
    w_e /= w_e.sum()
    wlow = opt["wlow"]
    if len(up_sel) == 0 and wlow is not None and wlow != 1.0:
        wlow = 1.0
    if wlow is not None:
        is_low = np.zeros(n, dtype=bool)
        is_low[low_sel] = True
        w_low_now = w_e[is_low].sum()
        if 0.0 < w_low_now < 1.0:
            w_e[is_low] *= wlow / w_low_now
            w_e[~is_low] *= (1.0 - wlow) / (1.0 - w_low_now)
    dF = abs(opt["DF"])
    w_f = []
    for k, s in enumerate(structures):
        if w_e[k] > 0 and _has_forces(s):
            w_f.append(w_e[k] / (np.sum(s.forces ** 2, axis=1) + dF))
        else:
            w_f.append(np.zeros(s.natoms))
    return normalize_weights(w_e, w_f)


def _nonempty(indices, after):
    if len(indices) == 0:
        raise WeightingError(f"fit.weighting: no structure is left after {after}; relax that "
                             "setting")


def _external(structures, spec):
    from acemd.fit.dataset import read_pickled_dataframe

    unknown = sorted(set(spec) - {"filename"})
    if unknown or "filename" not in spec:
        raise WeightingError("fit.weighting: ExternalWeightingPolicy takes one key, filename (a "
                             f"pickle with w_energy and w_forces columns); got {sorted(spec)}")
    path = Path(spec["filename"])
    df = read_pickled_dataframe(path)
    for col in ("w_energy", "w_forces"):
        if col not in df.columns:
            raise WeightingError(f"{path}: no {col!r} column; the external weights need "
                                 "w_energy and w_forces")
    n = len(structures)
    w_e = np.zeros(n)
    w_f = [np.zeros(s.natoms) for s in structures]
    for label, we, wf in zip(df.index, df["w_energy"], df["w_forces"]):
        if not isinstance(label, (int, np.integer)) or not 0 <= label < n:
            raise WeightingError(f"{path}: row label {label!r} is not a structure position "
                                 f"0..{n - 1} of the dataset")
        s = structures[label]
        wf = np.asarray(wf, dtype=np.float64)
        if wf.shape != (s.natoms,):
            raise WeightingError(f"{path}: row {label}: w_forces has shape {wf.shape} but "
                                 f"structure {s.source} has {s.natoms} atoms")
        w_e[label] = float(we)
        w_f[label] = wf if _has_forces(s) else np.zeros(s.natoms)
    return w_e, w_f


def _from_columns(structures):
    """The dataset's w_energy/w_forces, or None when the columns are absent."""
    have_e = [s.energy_weight is not None for s in structures]
    have_f = [s.force_weights is not None for s in structures]
    if not any(have_e) or not any(have_f):
        return None
    lacking = [s for s, e, f in zip(structures, have_e, have_f)
               if not (e and f) and not s.name.startswith("augmented")]
    if lacking:
        names = ", ".join(s.source for s in lacking[:10])
        raise WeightingError(f"{len(lacking)} structure(s) lack w_energy/w_forces while others "
                             f"have them ({names}{', ...' if len(lacking) > 10 else ''}); give "
                             "weights for all structures or set data.ignore_weights")
    w_e = np.array([s.energy_weight if s.energy_weight is not None else np.nan
                    for s in structures])
    w_f = [(np.asarray(s.force_weights, dtype=np.float64) if _has_forces(s)
            else np.zeros(s.natoms)) if s.force_weights is not None else np.full(s.natoms, np.nan)
           for s in structures]
    return w_e, w_f


def _policy_type(policy):
    if policy is None:
        return "UniformWeightingPolicy", {}
    if not isinstance(policy, dict):
        raise WeightingError(f"fit.weighting must be a mapping with a 'type' key, got "
                             f"{type(policy).__name__}")
    spec = dict(policy)
    kind = spec.pop("type", None)
    if kind is None:
        raise WeightingError(f"fit.weighting: no 'type'; use one of {list(POLICY_TYPES)}")
    if kind not in POLICY_TYPES:
        raise WeightingError(f"fit.weighting.type = {kind!r}: unknown; use one of "
                             f"{list(POLICY_TYPES)}")
    if kind == "UniformWeightingPolicy" and spec:
        raise WeightingError(f"fit.weighting: UniformWeightingPolicy takes no keys, got "
                             f"{sorted(spec)}")
    return kind, spec


def _policy_weights(structures, policy, ignore_weights):
    """Steps 1-2 of the module docstring plus w_factor, before normalisation."""
    kind, spec = _policy_type(policy)
    columns = None if ignore_weights else _from_columns(structures)
    if columns is not None:
        w_e, w_f = columns
    elif kind == "UniformWeightingPolicy":
        w_e, w_f = _uniform(structures)
    elif kind == "EnergyBasedWeightingPolicy":
        w_e, w_f = energy_based_weights(structures, **spec)
    else:
        w_e, w_f = _external(structures, spec)
    w_e = np.array(w_e, dtype=np.float64)
    w_f = [np.array(w, dtype=np.float64) for w in w_f]
    for k, s in enumerate(structures):
        if s.weight_factor is not None:
            w_e[k] *= s.weight_factor
            w_f[k] *= s.weight_factor
    return w_e, w_f


def compute_weights(structures: Sequence, policy: dict | None = None, *, ignore_weights=False,
                    aug_factor=1e-4) -> tuple[np.ndarray, list[np.ndarray]]:
    """Normalised (energy weights (n,), force weights [(N_s,)]) as pacemaker sets them.

    ``policy`` is the parsed ``fit.weighting`` mapping (None: uniform);
    ``ignore_weights`` and ``aug_factor`` are ``data.ignore_weights`` and
    ``data.aug_factor``.  The steps are listed in the module docstring.
    """
    structures = list(structures)
    if not structures:
        raise WeightingError("no structures to weight")
    w_e, w_f = _policy_weights(structures, policy, ignore_weights)
    _augmented(structures, w_e, w_f, aug_factor)
    return normalize_weights(w_e, w_f)


def compute_weights_train_test(train: Sequence, test: Sequence, policy: dict | None = None, *,
                               ignore_weights=False, aug_factor=1e-4):
    """((w_E, w_F) of train, (w_E, w_F) of test), weighted together as pacemaker does.

    pacemaker applies the policy to the training and test structures together (train
    first: positions for ExternalWeightingPolicy count in that order, and an
    EnergyBased selection and its energies see both), then adjusts augmented
    structures and normalises each part on its own.  A test part that the policy
    leaves out entirely gets zero weights.
    """
    train, test = list(train), list(test)
    if not train:
        raise WeightingError("no training structures to weight")
    w_e, w_f = _policy_weights(train + test, policy, ignore_weights)
    out = []
    for lo, hi in ((0, len(train)), (len(train), len(train) + len(test))):
        part_e, part_f = w_e[lo:hi].copy(), [w.copy() for w in w_f[lo:hi]]
        _augmented((train + test)[lo:hi], part_e, part_f, aug_factor)
        if hi > lo and (lo == 0 or part_e.sum() > 0):
            out.append(normalize_weights(part_e, part_f))
        else:
            out.append((np.zeros(hi - lo), [np.zeros_like(w) for w in part_f]))
    return out[0], out[1]


def _augmented(structures, w_e, w_f, aug_factor):
    """pacemaker's down-weighting of structures named ``augmented...`` (in place)."""
    aug = np.array([s.name.startswith("augmented") for s in structures])
    if not aug.any():
        return
    missing = np.isnan(w_e[aug]).any() or any(np.isnan(w_f[k]).any() for k in np.flatnonzero(aug))
    if missing:
        real = np.flatnonzero(~aug)
        if len(real) == 0:
            raise WeightingError("only augmented structures, without weights: nothing to take "
                                 "their weights from")
        we_median = float(np.median(w_e[real]))
        wf_median = float(np.median(np.concatenate([w_f[k] for k in real])))
        for k in np.flatnonzero(aug):
            w_e[k] = we_median
            w_f[k] = np.full(structures[k].natoms, wf_median) \
                if _has_forces(structures[k]) else np.zeros(structures[k].natoms)
    for k in np.flatnonzero(aug):
        w_e[k] *= aug_factor
        w_f[k] *= aug_factor


def stress_weights(structures: Sequence, energy_weights) -> np.ndarray:
    """Per-structure stress weights: the energy weights of structures with a stress, sum one.

    pacemaker fits no stresses; acemd weighs each stress (6 components, eV/Å³) like its
    structure's energy.  All zeros when no structure has a stress.
    """
    w = np.asarray(energy_weights, dtype=np.float64).copy()
    has = np.array([s.stress is not None for s in structures])
    if w.shape != has.shape:
        raise WeightingError(f"{len(w)} energy weights for {len(has)} structures")
    w[~has] = 0.0
    total = w.sum()
    return w / total if total > 0 else w
