#!/usr/bin/env python
"""Benchmark of `acemd fit` (linear ACE) on pacemaker's Cu-II data: assembly time per atom·function,
solve time and peak memory on 1 and 2 ranks, the 2-rank efficiency, and the same figures for ace-jax.

    python scripts/bench_fit.py --data Cu_df2_1k.pkl.gzip [--ranks 1 2] [--acejax-python PY]
    python scripts/bench_fit.py --nonlinear --data Cu_df2_1k.pkl.gzip [--ranks 1 2] [--structures N]

(The nonlinear fit's wall time to a given test error, beside pacemaker's: compare_pacemaker_nonlinear.py.)

The data file is pacemaker's example (python-ace repository, examples/Cu-II/Cu_df2_1k.pkl.gzip:
1000 Cu structures, 11309 atoms).  The basis is that of inputs/fit_cu_linear.yaml (pacemaker's
linear-fit notebook: SBessel, rcut 6 Å, nradmax_by_orders [8, 8, 4, 3, 2], lmax_by_orders
[0, 4, 3, 2, 1]: 822 functions), the split 950/50 from its seed.  Each rank count runs in its own `mpiexec -n R` process pinned to R cores;
ace-jax runs through scripts/compare_acejax_fit.py with the python of a venv that has ace-jax
(``--acejax-python``; skipped when not given).  Targets (issue 23): the whole fit <= 60 s on one core,
2-rank efficiency >= 85 %, memory independent of the number of structures (compare --limit runs).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

EXAMPLE = HERE.parent / "inputs" / "fit_cu_linear.yaml"     # the Cu-II input: its basis is used here


def fit_input(data, kappa, l2, solver) -> str:
    """The example input with this run's data and loss (split 95/5 from its seed)."""
    import yaml
    tree = yaml.safe_load(EXAMPLE.read_text())
    tree["data"] = {"filename": str(data), "test_size": 0.05}
    tree["fit"] = {"loss": {"kappa": float(kappa), "L2_coeffs": float(l2)} if solver == "ridge"
                   else {"kappa": float(kappa)}, "solver": solver}
    tree["output"] = {"folder": "out", "potential_file": "Cu_linear.yaml"}
    return yaml.safe_dump(tree, sort_keys=False)


def worker(args) -> int:
    """One fit under the current MPI job; rank 0 prints one JSON line of figures."""
    from mpi4py import MPI

    from acemd.fit.config import read_fit_input
    from acemd.fit.run import evaluate, fit, report, write_outputs
    comm = MPI.COMM_WORLD
    settings = read_fit_input(args.input)
    t0 = time.perf_counter()
    result = fit(settings, comm=comm)
    t_fit = time.perf_counter() - t0
    figures = None
    if comm.Get_rank() == 0:
        paths = write_outputs(result, lambda line: None)
    else:
        paths = None
    paths = comm.bcast(paths, root=0)
    records = evaluate(result, paths["potential"])
    if comm.Get_rank() == 0:
        metrics = report(result, records, paths, lambda line: None)
        natoms = sum(s.natoms for s in result.train)
        figures = {
            "ranks": comm.Get_size(), "functions": int(result.design.ncols),
            "train_structures": len(result.train), "train_atoms": natoms,
            "assembly_s": result.t_assembly, "solve_s": result.t_solve, "fit_s": t_fit,
            "assembly_cpu_s": result.t_assembly_cpu, "solve_cpu_s": result.t_solve_cpu,
            "rows_s": result.t_rows, "normal_equations_s": result.t_normal,
            "us_per_atom_function": 1e6 * result.t_assembly * comm.Get_size() / (natoms * result.design.ncols),
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "train": metrics["errors"]["train"]["all"], "test": metrics["errors"].get("test", {}).get("all"),
        }
    peak = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, root=0)
    if figures is not None:
        figures["peak_rss_MB_per_rank"] = peak
        print("BENCH " + json.dumps(figures), flush=True)
    return 0


def _row(f):
    te = f["test"] or {}
    e = te.get("energy_meV_per_atom") or {}
    fc = te.get("force_component_meV_per_A") or {}
    return (f"{f['ranks']:5d} {f['functions']:6d} {f['train_atoms']:7d} {f['assembly_s']:9.2f} "
            f"{f['rows_s']:7.2f} {f['normal_equations_s']:7.2f} {f['assembly_cpu_s']:8.2f} "
            f"{f['us_per_atom_function']:9.3f} {f['solve_s']:7.2f} {f['fit_s']:7.2f} "
            f"{max(f['peak_rss_MB_per_rank']):8.0f} {e.get('rmse', float('nan')):8.3f} "
            f"{fc.get('rmse', float('nan')):8.2f}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--nonlinear" in argv:           # the nonlinear fit's loss + gradient: bench_fit_nonlinear.py
        sys.path.insert(0, str(HERE))
        import bench_fit_nonlinear
        return bench_fit_nonlinear.main([a for a in argv if a != "--nonlinear"])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nonlinear", action="store_true",
                    help="benchmark the nonlinear fit instead (scripts/bench_fit_nonlinear.py; its options)")
    ap.add_argument("--data", type=Path, help="Cu_df2_1k.pkl.gzip (pacemaker's examples/Cu-II)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--solver", choices=["ridge", "bayesian"], default="ridge")
    ap.add_argument("--kappa", default="0.92", help="force share of the loss (default: the notebook's "
                    "unweighted rows, 10880 force atoms vs 950 energies)")
    ap.add_argument("--l2", type=float, default=1e-10)
    ap.add_argument("--memory-check", action="store_true",
                    help="also fit the first 250 structures on 1 rank: peak memory against the full set")
    ap.add_argument("--acejax-python", default=None, help="python of a venv with ace-jax")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.data is None or not args.data.is_file():
        ap.error(f"--data {args.data}: give pacemaker's Cu_df2_1k.pkl.gzip (git -C <python-ace checkout> "
                 "show HEAD:examples/Cu-II/Cu_df2_1k.pkl.gzip > Cu_df2_1k.pkl.gzip)")
    if any(r < 1 for r in args.ranks):
        ap.error("--ranks: rank counts must be >= 1")
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                            os.environ.get("PATH", "")]))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(r, args.data.resolve()) for r in args.ranks]
        if args.memory_check:
            from acemd.fit.dataset import read_pickled_dataframe
            subset = Path(tmp) / "first250.pkl.gzip"
            read_pickled_dataframe(args.data).iloc[:250].to_pickle(subset, compression="gzip")
            runs.append((1, subset))
        for r, data in runs:
            inp = Path(tmp) / f"input_{r}_{data.stem}.yaml"
            inp.write_text(fit_input(data, args.kappa, args.l2, args.solver))
            cmd = [mpiexec, "-n", str(r), "taskset", "-c", ",".join(str(k) for k in range(r)),
                   sys.executable, str(Path(__file__).resolve()), "--worker", "--input", str(inp)]
            env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env)
            line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
            if proc.returncode != 0 or not line:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                sys.exit(f"bench_fit.py: the {r}-rank fit failed (exit {proc.returncode})")
            results.append(json.loads(line[0][6:]))
    print("# acemd fit, Cu-II linear ACE (times in s, memory in MB, errors on the test set)")
    print("# assembly = design rows + normal equations (wall, rank 0); cpu = assembly CPU over all ranks;")
    print("# us/(at*fn) = assembly wall x ranks per atom and function; fit = data .. solve; errors on the test set")
    print("# ranks funcs   atoms  assembly    rows  normal      cpu us/at*fn   solve     fit  peak_MB   E_meV  F_meV/A")
    for f in results:
        print(_row(f))
    full = [f for f in results if f["train_structures"] > 250]
    small = [f for f in results if f["train_structures"] <= 250]
    if full and small:
        print(f"# peak memory: {small[0]['train_structures']} structures {max(small[0]['peak_rss_MB_per_rank']):.0f} MB,"
              f" {full[0]['train_structures']} structures {max(full[0]['peak_rss_MB_per_rank']):.0f} MB (1 rank)")
    one = next((f for f in full if f["ranks"] == 1), None)
    for f in full:
        if one and f["ranks"] > 1:
            eff = one["assembly_s"] / (f["ranks"] * f["assembly_s"])
            eff_fit = one["fit_s"] / (f["ranks"] * f["fit_s"])
            print(f"# parallel efficiency on {f['ranks']} ranks: assembly {100 * eff:.1f} %, whole fit "
                  f"{100 * eff_fit:.1f} %")
    if args.acejax_python:
        cmd = [args.acejax_python, str(HERE / "compare_acejax_fit.py"), "--json-only", "--data", str(args.data)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [x for x in proc.stdout.splitlines() if x.strip().startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"# ace-jax run failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        else:
            print("# ace-jax: " + lines[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
