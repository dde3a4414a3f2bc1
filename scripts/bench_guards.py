#!/usr/bin/env python
"""Cost of the blow-up guards ([guards]): the same NVE run without guards, with the default
check interval (every = 10) and checking every step; and a FIRE minimisation of the rattled
crystal (the minimiser checks every step).

Prints the wall time per step of each run (best of ``--repeat``), the time the guards
themselves spent (measured inside acemd.guards: checks, the collective call, the
snapshot of the last good state) per step, and that as a share of a step.  The share
measured inside is the figure to read: the difference of wall times is noise on a
shared machine.

    python scripts/bench_guards.py                  # 4000 fcc Cu atoms, Cu-I.yace, 20 steps, 1 rank
    python scripts/bench_guards.py --cells 6 --potential tests/data/potentials/Cu-PBE-core-rep.ace
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_once(folder, cells, steps, potential, guards):
    from mpi4py import MPI

    import acemd.guards
    from acemd.config import parse_config
    from acemd.drivers.md import MDRun

    seen = []
    original = acemd.guards.Guards.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    acemd.guards.Guards.__init__ = init
    try:
        text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.62
repeat = [{cells}, {cells}, {cells}]
[potential]
file = "{potential}"
[velocities]
temperature = 600.0
[md]
steps = {steps}
[thermo]
every = {steps}
file = "{folder}/bench.log"
[checkpoint]
file = "{folder}/bench.ckpt.h5"
[guards]
{guards}
"""
        path = Path(folder) / "bench.toml"
        path.write_text(text)
        run = MDRun(parse_config(text, path), text, path, comm=MPI.COMM_WORLD, stream=io.StringIO())
        run.engine.compute_forces(force_rebuild=True)      # warm up (numba, first rebuild)
        t0 = time.perf_counter()
        run.run()
        wall = time.perf_counter() - t0
    finally:
        acemd.guards.Guards.__init__ = original
    g = seen[-1]
    return wall / steps, g.seconds / steps, run.state.n_atoms_total


def run_minimize_once(folder, cells, steps, potential):
    """A FIRE minimisation of the rattled crystal for ``steps`` steps: (s per step, guards' s per step, atoms)."""
    from mpi4py import MPI

    import acemd.guards
    from acemd.config import parse_config
    from acemd.drivers.minimize import MinimizeRun, NotConvergedError

    seen = []
    original = acemd.guards.Guards.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    acemd.guards.Guards.__init__ = init
    try:
        text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.62
repeat = [{cells}, {cells}, {cells}]
rattle = 0.05
[potential]
file = "{potential}"
[minimize]
fmax = 1e-12
max_steps = {steps}
structure_file = "{folder}/bench.extxyz"
[thermo]
every = {steps}
file = "{folder}/bench.log"
[checkpoint]
file = "{folder}/bench.ckpt.h5"
"""
        path = Path(folder) / "bench_min.toml"
        path.write_text(text)
        run = MinimizeRun(parse_config(text, path), text, path, comm=MPI.COMM_WORLD, stream=io.StringIO())
        run.simulation.compute(force_rebuild=True)       # warm up (numba, first rebuild)
        t0 = time.perf_counter()
        try:
            run.run()
        except NotConvergedError:                         # max_steps by design
            pass
        wall = time.perf_counter() - t0
    finally:
        acemd.guards.Guards.__init__ = original
    return wall / steps, seen[-1].seconds / steps, run.simulation.state.n_atoms_total


def main():
    from acemd.analysis.cli import int_at_least   # option checks: exit 2, no traceback
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int_at_least(1, "fcc cells per edge"),
                   default=10, help="fcc cells per side (4 atoms each)")
    p.add_argument("--steps", type=int_at_least(1, "the number of steps"), default=20)
    p.add_argument("--repeat", type=int_at_least(1, "the repeat count"), default=2)
    p.add_argument("--potential", default=str(ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"))
    args = p.parse_args()
    variants = [("guards off", "enabled = false"), ("every = 10 (default)", "every = 10"),
                ("every = 1", "every = 1")]
    with tempfile.TemporaryDirectory(prefix="acemd-bench-guards-") as folder:
        results = {}
        for _ in range(args.repeat):
            for name, guards in variants:
                step_s, guard_s, n = run_once(folder, args.cells, args.steps, args.potential, guards)
                best = results.get(name)
                if best is None or step_s < best[0]:
                    results[name] = (step_s, guard_s, n)
    print(f"# {n} atoms, {Path(args.potential).name}, {args.steps} steps, best of {args.repeat}, 1 rank "
          "(shared machine: wall times are noisy)")
    print(f"{'variant':24s} {'ms/step':>9s} {'us/atom/step':>13s} {'guards ms/step':>15s} {'guards share':>13s}")
    for name, _ in variants:
        step_s, guard_s, n = results[name]
        print(f"{name:24s} {step_s * 1e3:9.2f} {step_s / n * 1e6:13.2f} {guard_s * 1e3:15.4f} "
              f"{guard_s / step_s:13.3%}")
    with tempfile.TemporaryDirectory(prefix="acemd-bench-guards-") as folder:
        step_s, guard_s, n = min(run_minimize_once(folder, args.cells, args.steps, args.potential)
                                 for _ in range(args.repeat))
    print(f"{'minimiser (every step)':24s} {step_s * 1e3:9.2f} {step_s / n * 1e6:13.2f} {guard_s * 1e3:15.4f} "
          f"{guard_s / step_s:13.3%}")


if __name__ == "__main__":
    main()
