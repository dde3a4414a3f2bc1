"""Compare acemd's fit basis (``acemd.fit.basis``) with the one pacemaker builds.

Two pythons run this script:

* **pacemaker's** (a Python 3.9 venv: ``python3.9 -m venv /work/venv39 &&
  /work/venv39/bin/pip install python-ace==0.2.8 "ruamel.yaml<0.18" pyyaml``;
  then ``/work/venv39/bin/python scripts/validate_fit_basis.py --reference``)
  builds the basis of every case below as pacemaker's fit does
  (``construct_bbasisconfiguration``, then ``GeneralACEFit``'s extension step when
  ``number_of_functions_per_element`` is set) and writes
  ``tests/data/fit/pacemaker_basis_counts.json``: each case's ``potential``
  section and, per block, the number of functions, the count per rank, the
  radial shape and a SHA-256 of the list of (elements, ns, ls, LS) in
  pacemaker's order (plus a short hash per (elements, ns) group).  Only integers
  and hashes are stored, never the function lists (they derive from
  pacemaker's coupling table, which is under a non-GPL licence).  The example
  inputs are read from pacemaker's examples in ``/tmp/pace/examples``.  ``--pyace-eval DIR`` (also pacemaker's
  python) evaluates the potentials that acemd wrote into DIR with pyace's
  calculator, for the writer check below.
* **acemd's** (``python scripts/validate_fit_basis.py``) builds the same bases
  with acemd, prints the counts, whether counts and hashes match, the fraction of
  identical (ls, LS) choices (by hash per (mus, ns) group: acemd cannot see
  pacemaker's lists) and the build times; then, with ``--pyace PYTHON``
  (default ``/work/venv39/bin/python`` when it exists), it writes B-basis files
  with random coefficients for a few cases, evaluates energies and forces of
  a few structures with acemd's ``ACECalculator`` and with pyace (through
  ``--pyace-eval`` in the other python) and prints the largest deviations.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "fit" / "pacemaker_basis_counts.json"
EXAMPLES = Path("/tmp/pace/examples")

NOTEBOOK = {
    "deltaSplineBins": 0.001,
    "elements": ["Cu"],
    "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
    "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 6.0, "dcut": 0.01,
                      "NameOfCutoffFunction": "cos"}},
    "functions": {"ALL": {"nradmax_by_orders": [8, 8, 4, 3, 2], "lmax_by_orders": [0, 4, 3, 2, 1]}},
}

# three elements, every keyword level, explicit pairs in both orders, core repulsion, inner cutoff
TERNARY_KEYWORDS = {
    "deltaSplineBins": 0.001,
    "elements": ["Ni", "Al", "Cu"],
    "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5],
                           "ndensity": 2},
                   "Cu": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1,
                          "rho_core_cut": 50000, "drho_core_cut": 200}},
    "bonds": {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01,
                      "NameOfCutoffFunction": "cos", "core-repulsion": [10.0, 5.0],
                      "r_in": 1.0, "delta_in": 0.5, "inner_cutoff_type": "distance"},
              "BINARY": {"radbase": "ChebPow", "radparameters": [2.0], "rcut": 4.5},
              "NiAl": {"radbase": "SBessel", "rcut": 4.8}},
    "functions": {"ALL": {"nradmax_by_orders": [5, 2, 1], "lmax_by_orders": [0, 1, 1]},
                  "UNARY": {"nradmax_by_orders": [6, 3, 2, 1], "lmax_by_orders": [0, 2, 1, 1]},
                  "BINARY": {"nradmax_by_orders": [4, 2, 2], "lmax_by_orders": [0, 2, 1]},
                  "AlNi": {"nradmax_by_orders": [5, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]},
                  "CuAlNi": {"nradmax_by_orders": [3, 2, 2], "lmax_by_orders": [0, 1, 2]}},
}


def _example(name):
    import yaml
    with open(EXAMPLES / name / "input.yaml") as fh:
        return yaml.safe_load(fh)["potential"]


def _with_cap(potential, number):
    out = json.loads(json.dumps(potential))
    out["functions"]["number_of_functions_per_element"] = number
    return out


def cases():
    """name -> pacemaker ``potential`` section (JSON-compatible)."""
    out = {"notebook_Cu_linear": NOTEBOOK,
           "notebook_Cu_linear_300": _with_cap(NOTEBOOK, 300),
           "ternary_keywords": TERNARY_KEYWORDS,
           "ternary_keywords_40": _with_cap(TERNARY_KEYWORDS, 40)}
    for name in ("Cu-I", "Cu-II", "HEA", "Ethanol"):
        out[name] = json.loads(json.dumps(_example(name)))
    out["Ethanol_120"] = _with_cap(out["Ethanol"], 120)
    out["Cu-II_500"] = _with_cap(out["Cu-II"], 500)
    return out


def function_list_hash(rows) -> str:
    """SHA-256 of the canonical list [[elements], [ns], [ls], [LS]] (LS = [] for rank <= 2)."""
    canon = [[list(map(str, e)), list(map(int, n)), list(map(int, l)),
              list(map(int, L)) if len(l) > 2 else []] for e, n, l, L in rows]
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()


def group_hashes(rows) -> dict:
    """Hash of the (ls, LS) list of every (elements, ns) group, keyed by 'elements|ns'."""
    groups: dict[str, list] = {}
    for e, n, l, L in rows:
        groups.setdefault(" ".join(e) + "|" + ",".join(map(str, n)), []).append(
            [list(map(int, l)), list(map(int, L)) if len(l) > 2 else []])
    return {k: hashlib.sha256(json.dumps(v, separators=(",", ":")).encode()).hexdigest()[:16]
            for k, v in groups.items()}


def block_record(name, rows, shape, groups=True):
    ranks: dict[str, int] = {}
    for row in rows:
        ranks[str(len(row[1]))] = ranks.get(str(len(row[1])), 0) + 1
    rec = {"block": name, "nfuncs": len(rows), "per_rank": ranks, "sha256": function_list_hash(rows)}
    if groups:
        rec["groups"] = group_hashes(rows)
    if shape is not None:
        rec["nradmax"], rec["lmax"], rec["nradbase"] = shape
    return rec


# --------------------------------------------------------------------------- pacemaker side

def _pyace_build(potential):
    """pacemaker's basis for a potential section, as pyace.generalfit.GeneralACEFit builds it."""
    from pyace.basis import ACEBBasisSet
    from pyace.basisextension import construct_bbasisconfiguration
    from pyace.generalfit import clean_bbasisconfig
    from pyace.multispecies_basisextension import extend_multispecies_basis
    conf = construct_bbasisconfiguration(json.loads(json.dumps(potential)))
    cap = potential.get("functions", {}).get("number_of_functions_per_element")
    if cap is not None:
        num_block = len(conf.funcspecs_blocks)
        ladder_step = cap * ACEBBasisSet(conf).nelements // num_block
        initial = conf.copy()
        clean_bbasisconfig(initial)
        conf = extend_multispecies_basis(initial, conf, "power_order", ladder_step)
    return conf


def _pyace_blocks(conf, groups=True):
    blocks = []
    for b in conf.funcspecs_blocks:
        rows = [(list(f.elements), list(f.ns), list(f.ls), list(f.LS)) for f in b.funcspecs]
        shape = (b.nradmaxi, b.lmaxi, b.nradbaseij) if len(b.elements_vec) <= 2 else None
        blocks.append(block_record(b.block_name, rows, shape, groups=groups))
    return blocks


def _pyace_reference():
    import warnings
    warnings.filterwarnings("ignore")
    import pyace
    out = {"generator": f"python-ace {getattr(pyace, '__version__', '0.2.8')} "
                        "construct_bbasisconfiguration + generalfit cap (scripts/validate_fit_basis.py --reference)",
           "cases": {}}
    for name, potential in cases().items():
        t0 = time.perf_counter()
        conf = _pyace_build(potential)
        elapsed = time.perf_counter() - t0
        # per-group hashes only for the smaller cases (HEA's would make the file large)
        blocks = _pyace_blocks(conf, groups=conf.total_number_of_functions < 10000)
        out["cases"][name] = {"potential": potential, "blocks": blocks,
                              "total": sum(b["nfuncs"] for b in blocks)}
        print(f"{name:28s} {out['cases'][name]['total']:6d} functions, "
              f"{len(blocks)} blocks, pyace {elapsed:.2f} s")
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    print("wrote", REFERENCE)


def _pyace_cases(path):
    """(pacemaker's python) block records of every potential in the JSON file path -> path + '.pyace'."""
    import warnings
    warnings.filterwarnings("ignore")
    out = {}
    for name, potential in json.loads(Path(path).read_text()).items():
        try:
            out[name] = _pyace_blocks(_pyace_build(potential), groups=False)
        except Exception as exc:          # pacemaker refuses the input: recorded, not fatal
            out[name] = f"error: {exc!r}"[:300]
    Path(str(path) + ".pyace").write_text(json.dumps(out))


def _pyace_eval(folder):
    """Energies and forces of folder/structures.json with every folder/*.yaml (B-basis) and *.yace
    (C-tilde), by pyace."""
    import warnings
    warnings.filterwarnings("ignore")
    import numpy as np
    from ase import Atoms
    from pyace import ACEBBasisSet, ACECTildeBasisSet, PyACECalculator
    structs = json.loads((Path(folder) / "structures.json").read_text())
    result = {}
    for pot in sorted(list(Path(folder).glob("*.yaml")) + list(Path(folder).glob("*.yace"))):
        basis = ACEBBasisSet(str(pot)) if pot.suffix == ".yaml" else ACECTildeBasisSet(str(pot))
        calc = PyACECalculator(basis)
        res = []
        for s in structs:
            atoms = Atoms(s["symbols"], positions=s["positions"], cell=s["cell"], pbc=s["pbc"])
            # PyACECalculator.calculate fails on ragged per-element projections (several elements):
            # evaluate through its evaluator directly
            calc.get_atomic_env(atoms)
            calc.ace.compute(calc.ae)
            res.append({"energy": float(np.asarray(calc.ace.energy)),
                        "forces": np.asarray(calc.ace.forces).tolist()})
        result[pot.name] = res
    (Path(folder) / "pyace_results.json").write_text(json.dumps(result))


# --------------------------------------------------------------------------- acemd side

def _acemd_compare():
    from acemd.fit.basis import build_basis
    ref = json.loads(REFERENCE.read_text())
    print(f"{'case':26s} {'block':12s} {'pacemaker':>9s} {'acemd':>7s}  per rank (acemd)"
          f"         counts hash  same (ls,LS)     build s")
    all_same = True
    for name, case in ref["cases"].items():
        t0 = time.perf_counter()
        spec = build_basis(case["potential"], source=name)
        elapsed = time.perf_counter() - t0
        mine = {b.name: b for b in spec.blocks}
        for rb in case["blocks"]:
            b = mine.get(rb["block"])
            if b is None:
                print(f"{name:26s} {rb['block']:12s} {rb['nfuncs']:9d}  missing in acemd")
                all_same = False
                continue
            rows = [(f.elements, f.ns, f.ls, f.LS) for f in b.functions]
            rec = block_record(b.name, rows, None)
            same_counts = rec["per_rank"] == rb["per_rank"]
            if "nradmax" in rb:
                same_counts &= (b.bond.nradmax, b.bond.lmax, b.bond.nradbase) == (
                    rb["nradmax"], rb["lmax"], rb["nradbase"])
            same_hash = rec["sha256"] == rb["sha256"]
            if "groups" in rb:
                groups = rb["groups"]
                same_groups = sum(1 for k, v in rec["groups"].items() if groups.get(k) == v)
                frac = f"{same_groups / max(len(groups), 1):7.1%} ({same_groups}/{len(groups)})"
            else:
                frac = f"{'100.0%' if same_hash else '-':>7s} (block hash)"
            all_same &= same_counts and same_hash
            per_rank = " ".join(f"{k}:{v}" for k, v in sorted(rec["per_rank"].items()))
            print(f"{name:26s} {b.name:12s} {rb['nfuncs']:9d} {rec['nfuncs']:7d}  {per_rank:30s} "
                  f"{'yes' if same_counts else 'NO':6s} {'yes' if same_hash else 'NO':5s} "
                  f"{frac:16s} {elapsed:6.2f}")
            elapsed = 0.0
    print("all counts and hashes equal pacemaker's:", "yes" if all_same else "NO")
    return all_same


def _fuzz_cases(n, seed):
    """n random potential sections: 1-3 of four elements, random keyword/explicit blocks, bonds, caps."""
    import random
    rng = random.Random(seed)

    def functions():
        r = rng.randint(1, 4)
        nr = [rng.randint(1, 6)] + [rng.randint(0, 3) for _ in range(r - 1)]
        lm = [0] + [rng.randint(0, 3 if k < 2 else 2) for k in range(r - 1)]
        if r == 4:
            nr[3], lm[3] = min(nr[3], 2), min(lm[3], 1)
        return {"nradmax_by_orders": nr, "lmax_by_orders": lm}

    out = {}
    for i in range(n):
        els = rng.sample(["Al", "Cu", "Ni", "Fe"], rng.randint(1, 3))
        funcs = {"ALL": functions()}
        for kw, size in (("UNARY", 1), ("BINARY", 2), ("TERNARY", 3)):
            if len(els) >= size and rng.random() < 0.5:
                funcs[kw] = functions()
        if len(els) > 1 and rng.random() < 0.6:
            a, b = rng.sample(els, 2)
            funcs[a + b] = functions()
        if rng.random() < 0.5:
            el = rng.choice(els)
            if rng.random() < 0.5:
                funcs[el] = functions()
            else:        # only lmax_by_orders: merged with ALL's nradmax_by_orders
                funcs[el] = {"lmax_by_orders": [0] + [rng.randint(0, 2) for _ in funcs["ALL"]["lmax_by_orders"][1:]]}
        bonds = {"ALL": {"radbase": "ChebExpCos", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01}}
        if len(els) > 1 and rng.random() < 0.5:
            a, b = rng.sample(els, 2)
            bonds[a + b] = {"rcut": 4.0, "radbase": "SBessel"}
        if rng.random() < 0.3:
            bonds["UNARY"] = {"nradbase": 8}
        pot = {"elements": els, "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled",
                                                       "fs_parameters": [1, 1], "ndensity": 1}},
               "bonds": bonds, "functions": funcs}
        if rng.random() < 0.4:
            funcs["number_of_functions_per_element"] = rng.choice([5, 20, 60, 200])
        out[f"fuzz{i}"] = pot
    return out


def _fuzz(n, pyace_python, seed=5):
    """Random potential sections built by acemd and by pyace: how many give identical blocks."""
    import tempfile

    from acemd.fit.basis import BasisSpecError, build_basis
    potentials = _fuzz_cases(n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cases.json"
        path.write_text(json.dumps(potentials))
        subprocess.run([pyace_python, str(Path(__file__).resolve()), "--pyace-cases", str(path)],
                       check=True, stderr=subprocess.DEVNULL)
        theirs = json.loads(Path(str(path) + ".pyace").read_text())
    same = refused = 0
    for name, pot in potentials.items():
        try:
            spec = build_basis(pot, source=name)
        except BasisSpecError as exc:
            refused += 1
            print(f"fuzz {name}: acemd refuses: {exc}" + (f" (pacemaker: {theirs[name][:60]})"
                                                         if isinstance(theirs[name], str) else
                                                         " (pacemaker builds it)"))
            continue
        mine = [block_record(b.name, [(f.elements, f.ns, f.ls, f.LS) for f in b.functions],
                             (b.bond.nradmax, b.bond.lmax, b.bond.nradbase) if b.bond else None, groups=False)
                for b in spec.blocks]
        if mine == theirs[name]:
            same += 1
        else:
            print(f"fuzz {name}: DIFFERS from pacemaker: {json.dumps(pot['functions'])}")
    print(f"fuzz: {n} random potential sections (seed {seed}): {same} identical to pacemaker "
          f"(blocks, counts, shapes, hashes), {refused} refused by acemd, {n - same - refused} differ")


def _timings():
    """Build times with an empty coupling cache (the first build of a session)."""
    from acemd.fit.basis import build_basis
    from acemd.fit.couplings import independent_couplings, lint_options
    from acemd.potential import coupling
    ref = json.loads(REFERENCE.read_text())
    for name in ("notebook_Cu_linear", "Cu-II", "HEA"):
        for cached in (independent_couplings, lint_options, coupling._generalized_arrays,
                       coupling._cg_table, coupling.clebsch_gordan, coupling._cg_exact):
            cached.cache_clear()
        t0 = time.perf_counter()
        spec = build_basis(ref["cases"][name]["potential"], source=name)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_basis(ref["cases"][name]["potential"], source=name)
        warm = time.perf_counter() - t0
        print(f"build time {name:20s} {spec.total:6d} functions: {cold:.2f} s (empty cache), {warm:.2f} s (cached)")


def _random_structures(elements, rng):
    """A few small periodic cells with random displacements (fcc-like, mixed species)."""
    import numpy as np
    from ase.build import bulk
    out = []
    for k, a in enumerate((3.6, 3.8, 4.1)):
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 1))
        atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
        atoms.set_chemical_symbols([elements[i % len(elements)] for i in rng.permutation(len(atoms))])
        out.append(atoms)
    return out


def _writer_check(pyace_python):
    import tempfile

    import numpy as np

    from acemd.fit.basis import build_basis
    from acemd.fit.bbasis_writer import format_bbasis_yaml
    from acemd.potential import ACEPotential
    from acemd.potential.calculator import ACECalculator
    ref = json.loads(REFERENCE.read_text())
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        structures = {}
        for name in ("notebook_Cu_linear", "ternary_keywords", "Ethanol_120"):
            spec = build_basis(ref["cases"][name]["potential"], source=name)
            coeffs = [rng.normal(scale=0.05, size=(n, nd)) for n, nd in zip(spec.nfuncs, spec.ndensity)]
            (folder / f"{name}.yaml").write_text(format_bbasis_yaml(spec, coeffs))
            structures[name] = spec.elements
        # one folder per case: its potential and structures of its elements
        results = {}
        for name, els in structures.items():
            sub = folder / name
            sub.mkdir()
            (sub / f"{name}.yaml").write_text((folder / f"{name}.yaml").read_text())
            atoms_list = _random_structures(els, rng)
            (sub / "structures.json").write_text(json.dumps([
                {"symbols": a.get_chemical_symbols(), "positions": a.positions.tolist(),
                 "cell": np.asarray(a.cell).tolist(), "pbc": [bool(p) for p in a.pbc]}
                for a in atoms_list]))
            subprocess.run([pyace_python, str(Path(__file__).resolve()), "--pyace-eval", str(sub)],
                           check=True, stderr=subprocess.DEVNULL)
            theirs = json.loads((sub / "pyace_results.json").read_text())[f"{name}.yaml"]
            pot = ACEPotential(str(sub / f"{name}.yaml"))
            de, df, emax, fmax = 0.0, 0.0, 0.0, 0.0
            for atoms, th in zip(atoms_list, theirs):
                atoms.calc = ACECalculator(pot)
                e = atoms.get_potential_energy()
                f = atoms.get_forces()
                de = max(de, abs(e - th["energy"]) / len(atoms))
                df = max(df, float(np.abs(f - np.array(th["forces"])).max()))
                emax, fmax = max(emax, abs(e) / len(atoms)), max(fmax, float(np.abs(f).max()))
            results[name] = (de, df)
            print(f"writer check {name:22s} acemd vs pyace on the written .yaml: "
                  f"max |dE| {de:.2e} eV/atom, max |dF| {df:.2e} eV/A ({len(atoms_list)} structures, "
                  f"|E| up to {emax:.3g} eV/atom, |F| up to {fmax:.3g} eV/A)")
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", action="store_true", help="(pacemaker's python) regenerate the JSON")
    p.add_argument("--pyace-eval", metavar="DIR", help="(pacemaker's python) evaluate DIR/*.yaml")
    p.add_argument("--pyace-cases", metavar="JSON", help="(pacemaker's python) block records of the "
                   "potential sections in JSON -> JSON.pyace")
    p.add_argument("--fuzz", type=int, default=0, metavar="N",
                   help="also compare N random potential sections with pyace (needs --pyace)")
    default_py = "/work/venv39/bin/python" if os.path.exists("/work/venv39/bin/python") else None
    p.add_argument("--pyace", default=default_py, metavar="PYTHON",
                   help="pacemaker's python for the writer check (default: %(default)s)")
    args = p.parse_args(argv)
    if args.reference:
        _pyace_reference()
        return 0
    if args.pyace_eval:
        _pyace_eval(args.pyace_eval)
        return 0
    if args.pyace_cases:
        _pyace_cases(args.pyace_cases)
        return 0
    ok = _acemd_compare()
    _timings()
    if args.pyace:
        _writer_check(args.pyace)
        if args.fuzz:
            _fuzz(args.fuzz, args.pyace)
    else:
        print("writer check skipped: no pacemaker python (--pyace)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
