#!/usr/bin/env python
"""Validation of the nonlinear `acemd fit` on pacemaker's Cu-II data (issue 24): at the same number of
functions, pacemaker's nonlinear model against part 1's linear fit, on the same train/test split.

    python scripts/validate_fit_nonlinear_cu.py --data Cu_df2_1k.pkl.gzip [--maxiter 300] [--ranks 2]
        [--functions 899] [--ladder-step 0] [--out runs/validate_fit_nonlinear_cu]

Both fits use pacemaker's examples/Cu-II basis (SBessel, rcut 7.5 Å, nradmax_by_orders
[15, 6, 4, 3, 2, 1], lmax_by_orders [0, 3, 3, 2, 2, 1]; 899 functions, or the first ``--functions`` of
them in pacemaker's power order), kappa auto, the data split 90/10 from seed 42:

- linear: the linear embedding (E_i = rho_i), fixed radial functions, solved exactly (ridge, L2 1e-8);
- nonlinear: the example's embedding (FinnisSinclairShiftedScaled [1, 1, 1, 0.5]: rho1 + sqrt-like
  rho2), basis and radial coefficients trained by BFGS from the linear start (``init: linear``), the
  example's regularisers (L1, L2, w0..w2 = 1e-8), ``--maxiter`` iterations (``--ladder-step`` > 0:
  pacemaker's ladder instead, that many functions per step).

Prints train/test RMSE of both (meV/atom, meV/Å) and the wall times.  With ``--pyace PYTHON`` (the python
of a venv with python-ace 0.2.8) the written nonlinear .yaml and .yace are evaluated by pyace on 12
training structures and compared with acemd.  The data file is pacemaker's Cu_df2_1k.pkl.gzip
(python-ace repository; not shipped).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml


def _input(data, linear, args) -> dict:
    pot = {
        "deltaSplineBins": 0.001,
        "elements": ["Cu"],
        "embeddings": {"ALL": ({"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}
                               if linear else
                               {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5],
                                "ndensity": 2})},
        "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 7.5, "dcut": 0.01,
                          "NameOfCutoffFunction": "cos"}},
        "functions": {"UNARY": {"nradmax_by_orders": [15, 6, 4, 3, 2, 1], "lmax_by_orders": [0, 3, 3, 2, 2, 1]}},
    }
    if args.functions:
        pot["functions"]["number_of_functions_per_element"] = int(args.functions)
    tree = {"cutoff": 7.5, "seed": 42, "potential": pot,
            "data": {"filename": str(Path(data).resolve()), "test_size": 0.1},
            "backend": {"display_step": max(1, args.maxiter // 20)},
            "output": {"folder": "out", "potential_file": "Cu.yaml"}}
    if linear:
        tree["fit"] = {"loss": {"kappa": "auto", "L2_coeffs": 1e-8}, "solver": "ridge"}
    else:
        fit = {"loss": {"kappa": "auto", "L1_coeffs": 1e-8, "L2_coeffs": 1e-8, "w0_rad": 1e-8, "w1_rad": 1e-8,
                        "w2_rad": 1e-8},
               "optimizer": "BFGS", "maxiter": int(args.maxiter), "init": "linear"}
        if args.ladder_step:
            fit["ladder_step"] = int(args.ladder_step)
            fit.pop("init")
        tree["fit"] = fit
    return tree


def _run(folder: Path, tree: dict, ranks: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "input.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    cmd = [sys.executable, "-m", "acemd.cli", "fit", "input.yaml"]
    if ranks > 1:
        cmd = [shutil.which("mpiexec"), "-n", str(ranks)] + cmd
    t0 = time.perf_counter()
    with open(folder / "fit.log", "w") as log:
        proc = subprocess.run(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"acemd fit failed in {folder} (exit {proc.returncode}); see {folder / 'fit.log'}")
    metrics = yaml.safe_load((folder / "out" / "metrics.yaml").read_text())
    out = {"wall_s": wall}
    for subset in ("train", "test"):
        a = metrics["errors"][subset]["all"]
        out[subset] = (a["energy_meV_per_atom"]["rmse"], a["force_component_meV_per_A"]["rmse"])
    out["functions"] = metrics["basis_functions"]
    return out


def pyace_check(python: str, folder: Path, structures):
    """pyace (pacemaker's evaluator, its own venv) and acemd on the written potential files of ``folder``."""
    import numpy as np
    from ase import Atoms

    from acemd.potential import ACEPotential
    from acemd.potential.calculator import ACECalculator
    work = folder / "pyace"
    work.mkdir(parents=True, exist_ok=True)
    for suffix in (".yaml", ".yace"):
        shutil.copy(folder / "out" / f"Cu{suffix}", work / f"Cu{suffix}")
    records = [{"symbols": a.get_chemical_symbols(), "positions": a.positions.tolist(),
                "cell": a.cell.array.tolist(), "pbc": [bool(x) for x in a.pbc]} for a in structures]
    (work / "structures.json").write_text(json.dumps(records))
    script = Path(__file__).resolve().parent / "validate_fit_basis.py"
    proc = subprocess.run([python, str(script), "--pyace-eval", str(work)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"# pyace check failed ({python}): {proc.stderr[-500:]}")
        return
    results = json.loads((work / "pyace_results.json").read_text())
    for name in ("Cu.yaml", "Cu.yace"):
        calc = ACECalculator(ACEPotential(work / name))
        de = df = 0.0
        for r, rec in zip(results[name], records):
            atoms = Atoms(rec["symbols"], positions=rec["positions"], cell=rec["cell"], pbc=rec["pbc"])
            atoms.calc = calc
            de = max(de, abs(atoms.get_potential_energy() - r["energy"]) / len(atoms))
            df = max(df, float(np.abs(atoms.get_forces() - np.array(r["forces"])).max()))
        print(f"# pyace vs acemd on the written nonlinear {name} ({len(records)} structures): max dE {de:.2e} "
              f"eV/atom, max dF {df:.2e} eV/Å")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="pacemaker's Cu_df2_1k.pkl.gzip")
    ap.add_argument("--out", type=Path, default=Path("runs/validate_fit_nonlinear_cu"))
    ap.add_argument("--maxiter", type=int, default=300)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--functions", type=int, default=0, help="cap the basis (0: all 899)")
    ap.add_argument("--ladder-step", type=int, default=0)
    ap.add_argument("--pyace", metavar="PYTHON", help="python of a venv with python-ace 0.2.8 (cross-check)")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        sys.exit(f"{args.data}: no such file (pacemaker's examples/Cu-II/Cu_df2_1k.pkl.gzip)")
    lin = _run(args.out / "linear", _input(args.data, True, args), args.ranks)
    non = _run(args.out / "nonlinear", _input(args.data, False, args), args.ranks)
    print(f"# Cu-II, {lin['functions']} functions, split 90/10 (seed 42), {args.ranks} rank(s); RMSE E meV/atom, "
          "F meV/Å (components)")
    print(f"{'model':<34} {'train E':>8} {'train F':>8} {'test E':>8} {'test F':>8} {'wall s':>8}")
    for name, r in (("linear (ridge, fixed radial)", lin),
                    (f"nonlinear (FS 2 densities, BFGS {args.maxiter})", non)):
        print(f"{name:<34} {r['train'][0]:8.3f} {r['train'][1]:8.2f} {r['test'][0]:8.3f} {r['test'][1]:8.2f} "
              f"{r['wall_s']:8.1f}")
    better = non["test"][0] < lin["test"][0] and non["test"][1] < lin["test"][1]
    print("nonlinear more accurate on the test set (E and F):", "yes" if better else "no")
    if args.pyace:
        from acemd.fit.dataset import load_structures
        pyace_check(args.pyace, args.out / "nonlinear", [s.atoms for s in load_structures([args.data], ["Cu"])[:12]])
    (args.out / "summary.json").write_text(json.dumps({"linear": lin, "nonlinear": non, "args": {
        "maxiter": args.maxiter, "ranks": args.ranks, "functions": args.functions}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
