#!/usr/bin/env python
"""Benchmark of the nonlinear `acemd fit`: one loss + gradient evaluation per atom, its parts, memory and
the 2-rank efficiency, for pacemaker's Cu-II example basis.

    python scripts/bench_fit_nonlinear.py --data Cu_df2_1k.pkl.gzip [--ranks 1 2] [--structures 300]

The basis is pacemaker's examples/Cu-II input (SBessel, rcut 7.5 Å, nradmax_by_orders
[15, 6, 4, 3, 2, 1], lmax_by_orders [0, 3, 3, 2, 2, 1], FinnisSinclairShiftedScaled [1, 1, 1, 0.5]:
two densities; 899 functions), every coefficient trained (basis and radial).  The data file is
pacemaker's Cu_df2_1k.pkl.gzip (python-ace repository; not shipped).  Each rank count runs in its own
``mpiexec -n R`` process.  Printed per rank count: wall time per evaluation, µs per atom (wall x ranks /
atoms: the cost on one core), the parts (the engine's forces; the gradient pass with basis coefficients
only and with radial ones), peak memory per rank, and the efficiency against one rank.
Target (issue 24): <= 100 µs/atom on one core, 2-rank efficiency >= 85 %, <= 1 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

POTENTIAL = {
    "deltaSplineBins": 0.001,
    "elements": ["Cu"],
    "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1, 1, 0.5], "ndensity": 2}},
    "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 7.5, "dcut": 0.01,
                      "NameOfCutoffFunction": "cos"}},
    "functions": {"UNARY": {"nradmax_by_orders": [15, 6, 4, 3, 2, 1], "lmax_by_orders": [0, 3, 3, 2, 2, 1]}},
}


def worker(args) -> int:
    import numpy as np
    from mpi4py import MPI

    from acemd.fit.assembly import auto_kappa, rank_shares
    from acemd.fit.basis import build_basis
    from acemd.fit.dataset import load_structures, split_train_test
    from acemd.fit.loss import DataLoss, LossTerms, Objective
    from acemd.fit.nonlinear_model import NonlinearModel
    from acemd.fit.weights import compute_weights
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    structures = load_structures([args.data], ["Cu"])
    train, _ = split_train_test(structures, 0.1, 42)
    if args.structures:
        train = train[:args.structures]
    if args.replicate > 1:        # a larger set for the memory and time scaling (copies of the structures)
        train = [s for _ in range(args.replicate) for s in train]
    ew, fw = compute_weights(train)
    spec = build_basis(POTENTIAL)
    rng = np.random.default_rng(0)
    model = NonlinearModel(spec)
    theta = model.pack()
    theta[:model.n_coef] = 1e-2 * rng.standard_normal(model.n_coef)      # a generic point, not zeros
    terms = LossTerms(kappa=auto_kappa(train), L1=1e-8, L2=1e-8, w0=1e-8, w1=1e-8, w2=1e-8)
    mine = rank_shares([s.natoms for s in train], size)[rank]
    t0 = time.perf_counter()
    share = DataLoss(model, [train[k] for k in mine], [ew[k] for k in mine], [fw[k] for k in mine],
                     [0.0] * len(mine), terms, batch_size=args.batch_size)
    t_setup = time.perf_counter() - t0
    mask = np.ones(len(theta), dtype=bool)
    obj = Objective(model, share, mask, theta, terms, comm, len(train), mine)
    obj(theta)                                           # compile / warm the caches
    walls, cpus = [], []
    for _ in range(args.repeats):
        comm.Barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        obj(theta * (1.0 + 1e-9 * len(walls)))           # a new θ each time: the tables are rebuilt
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    # parts on this rank (CPU time): forces (engine kernel), gradient basis-only, gradient with radial
    batch, _, a, phi, h = share.residuals(theta)[0]      # the parts on the first chunk
    parts = {}
    model.evaluate(batch, theta)                         # the tables of θ (rebuilt once per θ, timed in wall_s)
    for name, fn in (("forces", lambda: model.evaluate(batch, theta, virials=False)),   # no stresses here
                     ("gradient_basis", lambda: model.gradient(batch, a, phi, h, theta=theta, want_radial=False)),
                     ("gradient_all", lambda: model.gradient(batch, a, phi, h, theta=theta))):
        c0 = time.process_time()
        fn()
        parts[name] = 1e6 * (time.process_time() - c0) / max(batch.n_local, 1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    natoms = sum(s.natoms for s in train)
    gathered = comm.gather({"parts": parts, "peak_mb": peak_mb, "cpu": min(cpus)}, root=0)
    if rank == 0:
        print(json.dumps({"ranks": size, "structures": len(train), "atoms": natoms, "functions": spec.total,
                          "parameters": int(len(theta)), "wall_s": min(walls), "setup_s": t_setup,
                          "parts_rank0_us_per_atom": gathered[0]["parts"],
                          "peak_mb": max(g["peak_mb"] for g in gathered),
                          "cpu_s_per_rank": [g["cpu"] for g in gathered]}), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="Cu_df2_1k.pkl.gzip (pacemaker's examples/Cu-II)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--structures", type=int, default=0, help="use the first N training structures (0: all 900)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=100, help="structures per chunk (backend.batch_size)")
    ap.add_argument("--replicate", type=int, default=1, help="repeat the training set K times (10 000+ structures)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    if not args.data.is_file():
        sys.exit(f"{args.data}: no such file (pacemaker's examples/Cu-II/Cu_df2_1k.pkl.gzip)")
    mpiexec = shutil.which("mpiexec")
    rows = []
    for r in args.ranks:
        cmd = [mpiexec, "-n", str(r), sys.executable, __file__, "--worker", "--data", str(args.data),
               "--structures", str(args.structures), "--repeats", str(args.repeats),
               "--batch-size", str(args.batch_size), "--replicate", str(args.replicate)]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if out.returncode != 0:
            sys.exit(out.stdout + out.stderr)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"# nonlinear acemd fit: loss + gradient of pacemaker's Cu-II basis ({base['functions']} functions, "
          f"{base['parameters']} parameters, basis and radial), {base['structures']} structures, {base['atoms']} atoms")
    print(f"{'ranks':>5} {'wall s/eval':>11} {'µs/atom·core':>13} {'efficiency':>10} {'peak MB/rank':>12}   parts on rank 0 "
          f"(CPU µs/atom): forces | gradient basis only | gradient basis+radial")
    for row in rows:
        per_atom = 1e6 * row["wall_s"] * row["ranks"] / row["atoms"]
        eff = base["wall_s"] * base["ranks"] / (row["wall_s"] * row["ranks"])
        p = row["parts_rank0_us_per_atom"]
        print(f"{row['ranks']:5d} {row['wall_s']:11.3f} {per_atom:13.1f} {100 * eff:9.1f}% {row['peak_mb']:12.0f}   "
              f"{p['forces']:.1f} | {p['gradient_basis']:.1f} | {p['gradient_all']:.1f}")
    print("reference: pacemaker (TensorFlow, 1 thread) 1240-1400 µs/atom for this basis (issue 24); "
          "target <= 100 µs/atom, efficiency >= 85 %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
