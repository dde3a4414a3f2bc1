#!/usr/bin/env python
"""Validation of [elastic] at temperature > 0 (fcc Cu, Cu-I.yace): both routes at each temperature.

Prints C11, C12, C44 with standard errors from the strain-stress and the stress-fluctuation
routes at each temperature, the largest |difference| of the two routes in combined standard
errors (statistical: both routes share the mean cell), the stress left at the NPT mean cell and
the mean cell's share of C's error, and the softening from the first to the last temperature.
The NPT stage uses npt-mtk (default; --barostat npt-crescale for the first-order barostat,
whose mean cell converges more slowly: docs/minimize-elastic.md).

    python scripts/validate_elastic_t.py                          # 108 atoms, 300 and 900 K
    python scripts/validate_elastic_t.py --repeat 5 --production 20000 --temperatures 300 900
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"


def run(folder, temperature, args, comm):
    from acemd.config import parse_config
    from acemd.drivers.elastic import ElasticRun
    text = f"""
[potential]
file = "{POTENTIAL.as_posix()}"
[structure]
lattice = "fcc"
element = "Cu"
a = 3.63
repeat = [{args.repeat}, {args.repeat}, {args.repeat}]
[elastic]
temperature = {temperature}
method = "both"
strains = [{args.strain}]
coupling = "iso"
barostat = "{args.barostat}"
barostat_damping = {args.barostat_damping}
npt_steps = {args.npt}
equilibration_steps = {args.equilibration}
production_steps = {args.production}
block_steps = {args.block}
born_every = {args.born_every}
report = "el_{temperature}.json"
data = "el_{temperature}.h5"
[checkpoint]
file = "ck_{temperature}.h5"
"""
    path = folder / f"el_{temperature}.toml"
    if comm.rank == 0:
        path.write_text(text)
    comm.Barrier()
    return ElasticRun(parse_config(text, path), text, path, comm=comm, stream=io.StringIO()).run()


def main():
    from mpi4py import MPI
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int_at_least(1, "the repeat count"),
                   default=3, help="fcc cubic cells per edge (3: 108 atoms)")
    p.add_argument("--temperatures", type=float_above(0.0, "a temperature in K"), nargs="+", default=[300.0, 900.0])
    p.add_argument("--strain", type=float_above(0.0, "the strain magnitude"), default=0.01)
    p.add_argument("--barostat", default="npt-mtk", choices=["npt-mtk", "npt-crescale"])
    p.add_argument("--barostat-damping", type=float_above(0.0, "the barostat damping in ps"), default=1.0, help="ps")
    p.add_argument("--npt", type=int_at_least(1, "the NPT steps"), default=4000)
    p.add_argument("--equilibration", type=int_at_least(0, "the equilibration steps"), default=1000)
    p.add_argument("--production", type=int_at_least(1, "the production steps"), default=8000)
    p.add_argument("--block", type=int_at_least(1, "the block length in steps"), default=1000)
    p.add_argument("--born-every", type=int_at_least(1, "the steps between Born terms"), default=50)
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    folder = Path(comm.bcast(tempfile.mkdtemp(prefix="acemd-elastic-t-") if comm.rank == 0 else None))
    results = {}
    for t in args.temperatures:
        t0 = time.perf_counter()
        r = run(folder, t, args, comm)
        results[t] = r
        if comm.rank != 0:
            continue
        print(f"{t:6.0f} K, {r['n_atoms']} atoms, V = {r['volume_A3'] / r['n_atoms']:.4f} ± "
              f"{r['volume_error_A3'] / r['n_atoms']:.4f} A^3/atom, {time.perf_counter() - t0:.0f} s, "
              f"{args.barostat}", flush=True)
        ref = r["reference_stress_GPa"]
        cell_part = np.array(r["cell_error_propagation"]["C_cell_error_GPa"])
        print(f"    stress at the mean cell {np.mean(ref[:3]):+.3f} GPa (target {-r['pressure_bar'] / 1e4:+.3f}); "
              f"mean cell's part of the errors of C11, C12, C44: {cell_part[0, 0]:.2f}, {cell_part[0, 1]:.2f}, "
              f"{cell_part[3, 3]:.2f} GPa", flush=True)
        for name, route in r["routes"].items():
            c, e = route["independent_constants_GPa"], route["independent_constants_error_GPa"]
            cs, es = np.array(route["C_symmetrized_GPa"]), np.array(route["C_symmetrized_error_GPa"])
            # cubic averages even if the noisy tensor is not classified cubic
            vals = {"C11": (np.mean(np.diag(cs)[:3]), np.sqrt(np.sum(np.diag(es)[:3] ** 2)) / 3),
                    "C12": (np.mean(cs[[0, 0, 1], [1, 2, 2]]), np.sqrt(np.sum(es[[0, 0, 1], [1, 2, 2]] ** 2)) / 3),
                    "C44": (np.mean(np.diag(cs)[3:]), np.sqrt(np.sum(np.diag(es)[3:] ** 2)) / 3)}
            if c:
                vals = {k: (c[k], e[k]) for k in ("C11", "C12", "C44")}
            print(f"    {name:12s} " + "  ".join(f"{k} {v:7.2f} ± {s:4.2f}" for k, (v, s) in vals.items())
                  + f" GPa  ({route['crystal_class']})", flush=True)
        print(f"    routes differ by at most {np.max(r['routes_difference_in_errors']):.2f} combined standard "
              f"errors (all 21 entries)", flush=True)
    if comm.rank == 0 and len(args.temperatures) > 1:
        lo, hi = results[args.temperatures[0]], results[args.temperatures[-1]]
        for k, (i, j) in {"C11": (0, 0), "C12": (0, 1), "C44": (3, 3)}.items():
            a = np.array(lo["routes"]["strain"]["C_symmetrized_GPa"])
            b = np.array(hi["routes"]["strain"]["C_symmetrized_GPa"])
            ea = np.array(lo["routes"]["strain"]["C_symmetrized_error_GPa"])
            eb = np.array(hi["routes"]["strain"]["C_symmetrized_error_GPa"])
            print(f"softening {k} (strain route): {a[i, j]:.2f} -> {b[i, j]:.2f} GPa "
                  f"({(b[i, j] - a[i, j]) / np.hypot(ea[i, j], eb[i, j]):+.1f} combined errors)")
    print(f"files in {folder}") if comm.rank == 0 else None


if __name__ == "__main__":
    main()
