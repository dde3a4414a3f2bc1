"""Compare acemd's ladder schedule (``acemd.fit.ladder``) with the steps pacemaker grows.

Two pythons run this script:

* **pacemaker's** (the Python 3.9 venv of scripts/validate_fit_basis.py, ``/work/venv39``):
  ``/work/venv39/bin/python scripts/validate_fit_ladder.py --reference`` grows every case below as
  pacemaker's ladder fit does (``get_actual_ladder_step`` and ``extend_multispecies_basis`` from an
  empty start, or from an initial potential built the same way and saved as a B-basis .yaml) and
  writes ``tests/data/fit/pacemaker_ladder_steps.json``: per step the step size, the number of
  functions and, per block, the count, the radial shape (nradmax, lmax, nradbase) and a SHA-256 of
  the list of (elements, ns, ls, LS) in pacemaker's order.  Only integers and hashes are stored,
  never the function lists (they derive from pacemaker's coupling table, non-GPL).
* **acemd's** (``python scripts/validate_fit_ladder.py``) builds the same schedules with acemd and
  prints, per case, the number of steps and whether every step's sizes, counts, shapes and hashes
  equal pacemaker's (tests/test_fit_ladder.py checks the same file).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "fit" / "pacemaker_ladder_steps.json"

_EMB2 = {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}}
_BOND = {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 5.0, "dcut": 0.01}}
CU = {"elements": ["Cu"], "embeddings": _EMB2, "bonds": _BOND,
      "functions": {"ALL": {"nradmax_by_orders": [6, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]}}}
ALNI = {"elements": ["Ni", "Al"], "embeddings": _EMB2, "bonds": _BOND,
        "functions": {"UNARY": {"nradmax_by_orders": [5, 2, 1], "lmax_by_orders": [0, 1, 1]},
                      "BINARY": {"nradmax_by_orders": [3, 2], "lmax_by_orders": [0, 1]}}}
ALCUNI = {"elements": ["Al", "Cu", "Ni"], "embeddings": _EMB2, "bonds": _BOND,
          "functions": {"ALL": {"nradmax_by_orders": [2, 1, 1], "lmax_by_orders": [0, 1, 0]}}}
CU_II = {"elements": ["Cu"], "embeddings": _EMB2,
         "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 7.5, "dcut": 0.01}},
         "functions": {"ALL": {"nradmax_by_orders": [15, 6, 4, 3, 2, 1], "lmax_by_orders": [0, 3, 3, 2, 2, 1]}}}

# name: (potential, ladder_step, ladder_type, initial: None or (ladder_step, ladder_type, steps) grown first)
CASES = {
    "Cu int body": (CU, 7, "body_order", None),
    "Cu int power": (CU, 7, "power_order", None),
    "Cu fraction body": (CU, 0.3, "body_order", None),
    "Cu both power": (CU, [3, 0.25], "power_order", None),
    "AlNi int body": (ALNI, 4, "body_order", None),
    "AlNi both power": (ALNI, [2, 0.2], "power_order", None),
    "AlCuNi int power": (ALCUNI, 5, "power_order", None),
    "AlCuNi fraction body": (ALCUNI, 0.5, "body_order", None),
    "Cu-II 200 power": (CU_II, 200, "power_order", None),
    "Cu from initial": (CU, 10, "body_order", (7, "power_order", 2)),
    "AlNi from initial, all at once": (ALNI, None, "body_order", (3, "body_order", 1)),
}


def _block_record(name, shape, funcs):
    text = json.dumps([[list(map(str, e)), list(map(int, n)), list(map(int, l)), list(map(int, L))]
                       for e, n, l, L in funcs])
    return {"name": name, "count": len(funcs), "shape": [int(s) for s in shape],
            "sha256": hashlib.sha256(text.encode()).hexdigest()}


# -- pacemaker's side ---------------------------------------------------------------------------

def _pyace_steps(potential, ladder_step, ladder_type, initial_spec, folder):
    import copy
    from pyace.basisextension import construct_bbasisconfiguration, get_actual_ladder_step
    from pyace.generalfit import clean_bbasisconfig
    from pyace.multispecies_basisextension import extend_multispecies_basis

    def grow(start, target, step, kind, nmax=None):
        cur, out = start, []
        total = target.total_number_of_functions
        while nmax is None or len(out) < nmax:
            size = get_actual_ladder_step(step, cur.total_number_of_functions, total)
            cur, extended = extend_multispecies_basis(cur, target, kind, size, return_is_extended=True)
            if not extended:
                break
            out.append((size, cur))
        return cur, out

    initial_file = None
    init = None
    if initial_spec is not None:
        target0 = construct_bbasisconfiguration(copy.deepcopy(potential))
        empty = target0.copy()
        clean_bbasisconfig(empty)
        init, _ = grow(empty, target0, initial_spec[0], initial_spec[1], initial_spec[2])
        initial_file = str(Path(folder) / "initial.yaml")
        init.save(initial_file)
        target = construct_bbasisconfiguration(copy.deepcopy(potential), initial_basisconfig=init)
        start = init.copy()
    else:
        target = construct_bbasisconfiguration(copy.deepcopy(potential))
        start = target.copy()
        clean_bbasisconfig(start)
    _, steps = grow(start, target, ladder_step, ladder_type)
    out = []
    for size, conf in steps:
        blocks = [_block_record(b.block_name, [b.nradmaxi, b.lmaxi, b.nradbaseij] if len(b.elements_vec) <= 2
                                else [0, 0, 0],
                                [(f.elements, f.ns, f.ls, f.LS) for f in b.funcspecs])
                  for b in conf.funcspecs_blocks]
        out.append({"size": int(size), "total": int(conf.total_number_of_functions), "blocks": blocks})
    return out, initial_file


def write_reference():
    cases = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, (pot, step, kind, init) in CASES.items():
            steps, initial_file = _pyace_steps(pot, step, kind, init, folder)
            record = {"potential": pot, "ladder_step": step, "ladder_type": kind, "initial": init, "steps": steps}
            if initial_file is not None:        # the initial potential as counts and hashes too
                from pyace.basis import BBasisConfiguration
                conf = BBasisConfiguration(initial_file)
                record["initial_blocks"] = [_block_record(b.block_name, [b.nradmaxi, b.lmaxi, b.nradbaseij],
                                                          [(f.elements, f.ns, f.ls, f.LS) for f in b.funcspecs])
                                            for b in conf.funcspecs_blocks]
            cases[name] = record
            print(f"{name}: {len(steps)} steps, {steps[-1]['total']} functions")
    import pyace
    REFERENCE.write_text(json.dumps({"pyace": getattr(pyace, "__version__", "?"), "cases": cases}, indent=1) + "\n")
    print(f"wrote {REFERENCE}")


# -- acemd's side -------------------------------------------------------------------------------

def acemd_steps(record):
    """acemd's schedule of a reference case as the same records (the initial potential is grown by
    acemd itself, as the reference grew it, and must match ``initial_blocks``)."""
    import copy
    from acemd.fit.basis import build_basis
    from acemd.fit.ladder import ladder_schedule

    full = build_basis(copy.deepcopy(record["potential"]))
    initial = None
    initial_blocks = None
    if record.get("initial"):
        step, kind, nsteps = record["initial"]
        grown = ladder_schedule(full, step, kind)
        initial = grown[nsteps - 1].spec
        initial_blocks = spec_records(initial)
    schedule = ladder_schedule(full, record["ladder_step"], record["ladder_type"], initial=initial)
    steps = [{"size": st.size, "total": st.nfunctions, "blocks": spec_records(st.spec)} for st in schedule]
    return steps, initial_blocks


def spec_records(spec):
    out = []
    for b in spec.blocks:
        shape = [b.bond.nradmax, b.bond.lmax, b.bond.nradbase] if b.bond is not None and len(b.elements) <= 2 \
            else [0, 0, 0]
        out.append(_block_record(b.name, shape, [(f.elements, f.ns, f.ls, f.LS) for f in b.functions]))
    return out


def compare():
    data = json.loads(REFERENCE.read_text())
    bad = 0
    for name, record in data["cases"].items():
        steps, initial_blocks = acemd_steps(record)
        ref = record["steps"]
        same = steps == ref and (initial_blocks is None or initial_blocks == record["initial_blocks"])
        first = next((k for k, (a, b) in enumerate(zip(steps, ref)) if a != b), None)
        print(f"{name:34s} steps acemd {len(steps):3d} pacemaker {len(ref):3d}  functions {steps[-1]['total']:4d}  "
              f"{'identical' if same else f'DIFFER (first at step {first})'}")
        bad += not same
    print(f"{len(data['cases']) - bad}/{len(data['cases'])} cases identical to pyace {data['pyace']}")
    return 1 if bad else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", action="store_true", help="write the reference with pyace (pacemaker's python)")
    args = p.parse_args(argv)
    if args.reference:
        write_reference()
        return 0
    return compare()


if __name__ == "__main__":
    sys.exit(main())
