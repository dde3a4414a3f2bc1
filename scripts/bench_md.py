#!/usr/bin/env python
"""Benchmark the MD engine: fcc Cu with Cu-PBE-core-rep.ace (or Cu-I.yace), NVE at 600 K.

For each system size and rank count prints microseconds per atom per step, the
share of the time spent outside the force kernel (neighbour lists, ghost and
force communication, integration, output) and the parallel efficiency
t(1 rank) / (N * t(N ranks)).  Each configuration runs in its own
``mpiexec -n N`` job.

    python scripts/bench_md.py                       # 4000 and 32000 atoms, 1 and 2 ranks
    python scripts/bench_md.py --cells 10 --ranks 1 2 4 --steps 30
    python scripts/bench_md.py --potential Cu-I --cells 20       # the small potential
    python scripts/bench_md.py --compare [options]   # acemd vs pyace, phases: scripts/bench_compare.py
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POTENTIALS = {"Cu-PBE": ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace",
              "Cu-I": ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"}


def worker(cells, steps, thermo_every, potential):
    import io

    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.md import MDRun

    comm = MPI.COMM_WORLD
    folder = comm.bcast(tempfile.mkdtemp(prefix="acemd-bench-") if comm.rank == 0 else None)
    text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.615
repeat = [{cells}, {cells}, {cells}]
[potential]
file = "{potential.as_posix()}"
[velocities]
temperature = 600.0
[md]
timestep = 0.001
steps = {steps}
skin = 1.0
[thermo]
every = {thermo_every}
file = "bench.log"
[checkpoint]
file = "bench.ckpt.h5"
"""
    path = Path(folder) / "bench.toml"
    settings = parse_config(text, path)
    run = MDRun(settings, text, path, comm=comm, stream=io.StringIO())
    # warm-up: compile / load kernels, first neighbour list
    run.engine.compute_forces(force_rebuild=True)
    eng = run.engine
    for k in eng.timers:
        eng.timers[k] = 0.0
    comm.Barrier()
    t0 = MPI.Wtime()
    summary = run.run()
    comm.Barrier()
    wall = MPI.Wtime() - t0
    force = comm.allreduce(eng.timers["force"], op=MPI.MAX)
    neigh = comm.allreduce(eng.timers["neighbour"], op=MPI.MAX)
    comm_t = comm.allreduce(eng.timers["comm"], op=MPI.MAX)
    if comm.rank == 0:
        n = run.state.n_atoms_total
        print("RESULT " + json.dumps({
            "atoms": n, "ranks": comm.size, "steps": steps, "wall_s": wall,
            "us_per_atom_step": wall / (n * steps) * 1e6,
            "kernel_share_max_rank": force / wall, "neighbour_s": neigh, "comm_s": comm_t,
            "rebuilds": summary["rebuilds"]}), flush=True)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--compare" in argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_compare
        return bench_compare.main([a for a in argv if a != "--compare"])
    from acemd.analysis.cli import int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int_at_least(1, "fcc cells per edge"),
                    nargs="+", default=[10, 20], help="fcc cells per edge (10: 4000 atoms)")
    ap.add_argument("--ranks", type=int_at_least(1, "the number of ranks"), nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int_at_least(1, "the number of steps"), default=20)
    ap.add_argument("--potential", choices=list(POTENTIALS), default="Cu-PBE")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.cells[0], args.steps, thermo_every=args.steps, potential=POTENTIALS[args.potential])
        return 0
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    print(f"# bench_md: fcc Cu, {POTENTIALS[args.potential].name}, NVE 600 K, dt 1 fs, skin 1 A, {args.steps} steps "
          f"after a warm-up; machine: {os.cpu_count()} cores")
    print(f"{'atoms':>7} {'ranks':>5} {'us/atom/step':>13} {'outside kernel':>15} {'efficiency':>10} "
          f"{'wall s':>8} {'rebuilds':>8}")
    for cells in args.cells:
        base = None
        for nranks in args.ranks:
            cmd = [mpiexec, "-n", str(nranks), sys.executable, __file__, "--worker",
                   "--cells", str(cells), "--steps", str(args.steps), "--potential", args.potential]
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(f"{4 * cells ** 3:>7} {nranks:>5}  failed after {time.time() - t0:.0f} s:\n"
                      f"{proc.stderr[-2000:]}")
                continue
            r = json.loads(line[7:])
            per = r["us_per_atom_step"]
            if nranks == 1:
                base = per
            eff = f"{base / (per * nranks) * 100:9.1f}%" if base else f"{'-':>10}"
            print(f"{r['atoms']:>7} {nranks:>5} {per:>13.1f} {(1 - r['kernel_share_max_rank']) * 100:>14.1f}% "
                  f"{eff} {r['wall_s']:>8.1f} {r['rebuilds']:>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
