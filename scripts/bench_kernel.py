#!/usr/bin/env python
"""Benchmark the ACE kernel: fcc Cu, Cu-PBE-core-rep.ace, one thread.

Prints microseconds per atom for one energy+forces evaluation (median over
repeats after a warm-up), the neighbour-list time separately, the peak resident
memory, and — when pyace (PyPI ``python-ace``) is installed — the same figures
for ICAMS's C++ recursive evaluator and the ratio acemd / C++.

    python scripts/bench_kernel.py [--cells 10] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace"


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_acemd(atoms, potential_path, repeats):
    from acemd.neighbors import build_neighbor_list, periodic_images
    from acemd.potential import ACEPotential

    pot = ACEPotential(potential_path)
    n = len(atoms)
    species = pot.species_of(atoms.get_chemical_symbols())
    state = {}

    def neighbours():
        ext, owner, _ = periodic_images(atoms.positions, atoms.cell.array, atoms.pbc, pot.cutoff)
        offsets, neigh = build_neighbor_list(ext, n, pot.cutoff)
        state.update(ext=ext, owner=owner, offsets=offsets, neigh=neigh)

    def kernel():
        state["res"] = pot.compute(state["ext"], species[state["owner"]], n,
                                   state["offsets"], state["neigh"])

    neighbours()
    kernel()                                     # warm-up (compilation / cache load)
    t_nl = timed(neighbours, repeats)
    t_kernel = timed(kernel, repeats)
    pairs = len(state["neigh"]) / n
    return dict(t_nl=t_nl, t_kernel=t_kernel, pairs=pairs,
                energy=state["res"].site_energy.sum())


def bench_pyace(atoms, potential_path, repeats):
    try:
        from pyace import PyACECalculator
    except ImportError:
        return None
    calc = PyACECalculator(str(potential_path), recursive_evaluator=True, recursive=True)
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_potential_energy()                 # warm-up
    t_nl = timed(lambda: calc.get_atomic_env(atoms), repeats)
    calc.get_atomic_env(atoms)
    t_kernel = timed(lambda: calc.ace.compute(calc.ae), repeats)
    return dict(t_nl=t_nl, t_kernel=t_kernel, energy=float(calc.ace.energy))


def main(argv=None):
    from acemd.analysis.cli import int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int_at_least(1, "fcc cells per edge"),
                    default=10, help="fcc conventional cells per edge (10 -> 4000 atoms)")
    ap.add_argument("--repeats", type=int_at_least(1, "the number of repeats"), default=5)
    ap.add_argument("--potential", default=str(DEFAULT_POTENTIAL))
    ap.add_argument("--no-pyace", action="store_true", help="skip the C++ comparison")
    args = ap.parse_args(argv)

    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(args.cells)
    atoms.rattle(0.02, seed=42)
    n = len(atoms)
    print(f"# bench_kernel: fcc Cu, {n} atoms, {Path(args.potential).name}, one thread, "
          f"median of {args.repeats} after warm-up")
    ours = bench_acemd(atoms, args.potential, args.repeats)
    print(f"acemd  kernel        {ours['t_kernel'] / n * 1e6:9.1f} us/atom  "
          f"({ours['pairs']:.1f} neighbours/atom in list)")
    print(f"acemd  neighbours    {ours['t_nl'] / n * 1e6:9.1f} us/atom  (images + cell-list build)")
    print(f"acemd  peak memory   {peak_rss_mib():9.1f} MiB (max RSS of this process)")
    if args.no_pyace:
        print("pyace  skipped (--no-pyace)")
        return 0
    ref = bench_pyace(atoms, args.potential, args.repeats)
    if ref is None:
        print("pyace  not installed: no C++ comparison (pip install python-ace)")
        return 0
    print(f"pyace  kernel        {ref['t_kernel'] / n * 1e6:9.1f} us/atom  (C++ recursive evaluator)")
    print(f"pyace  neighbours    {ref['t_nl'] / n * 1e6:9.1f} us/atom  (atomic environment build)")
    print(f"ratio  acemd/C++     {ours['t_kernel'] / ref['t_kernel']:9.2f}  (kernel only; target <= 1.5)")
    print(f"check  |dE|/atom     {abs(ours['energy'] - ref['energy']) / n:9.1e} eV")
    return 0


if __name__ == "__main__":
    sys.exit(main())
