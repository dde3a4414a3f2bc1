#!/usr/bin/env python
"""Mean lattice parameter of fcc Cu at 0 bar from MTK NPT runs (Cu-PBE-core-rep.ace).

256 atoms (4x4x4 conventional cells), dt = 1 fs, Nose-Hoover chain (0.1 ps) and
MTK barostat (iso, 0.5 ps); at each temperature 2 ps of equilibration and 8 ps of
averaging.  The lattice parameter a = (V / 64)^(1/3) is sampled every 10 steps;
its standard error comes from block averages (blocks of 1 ps, longer than the
volume's correlation time; the script prints the statistical inefficiency too).
Each temperature runs as its own ``mpiexec -n RANKS acemd`` job.

    python scripts/npt_lattice.py                  # 300 K and 1000 K on 2 ranks
    python scripts/npt_lattice.py --temperatures 300 --ranks 1 --production-ps 4
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace"
CELLS = 4
SAMPLE_EVERY = 10


def input_text(temperature, steps, a0, seed):
    return f"""
[structure]
lattice = "fcc"
element = "Cu"
a = {a0}
repeat = [{CELLS}, {CELLS}, {CELLS}]
[potential]
file = "{POTENTIAL.as_posix()}"
[velocities]
temperature = {temperature}
seed = {seed}
[md]
ensemble = "npt-mtk"
timestep = 0.001
steps = {steps}
[thermostat]
temperature = {temperature}
damping = 0.1
[barostat]
pressure = 0.0
damping = 0.5
coupling = "iso"
[thermo]
every = {SAMPLE_EVERY}
file = "npt.log"
[checkpoint]
file = "npt.ckpt.h5"
"""


def zero_kelvin_lattice_parameter():
    """a at which the 0 K pressure of the perfect crystal vanishes (secant on P(a))."""
    from ase.build import bulk

    from acemd import ACECalculator
    calc = ACECalculator(str(POTENTIAL))

    def pressure(a):
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = calc
        return -np.trace(atoms.get_stress(voigt=False)) / 3.0

    a, b = 3.60, 3.66
    pa, pb = pressure(a), pressure(b)
    for _ in range(30):
        a, pa, b = b, pb, b - pb * (b - a) / (pb - pa)
        pb = pressure(b)
        if abs(b - a) < 1e-9:
            break
    return b


def block_error(x, n_blocks):
    means = np.array([blk.mean() for blk in np.array_split(x, n_blocks)])
    return means.mean(), means.std(ddof=1) / math.sqrt(n_blocks)


def main(argv=None):
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--temperatures", type=float_above(0.0, "a temperature in K"), nargs="+", default=[300.0, 1000.0])
    ap.add_argument("--ranks", type=int_at_least(1, "the number of ranks"), default=2)
    ap.add_argument("--equilibration-ps", type=float_above(0.0, "the equilibration time in ps"), default=2.0)
    ap.add_argument("--production-ps", type=float_above(0.0, "the production time in ps"), default=8.0)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    from acemd.io.thermo import read_thermo
    a0 = zero_kelvin_lattice_parameter()
    dt = 0.001
    n_eq = int(round(args.equilibration_ps / dt))
    n_prod = int(round(args.production_ps / dt))
    mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    acemd = [sys.executable, "-m", "acemd.cli"]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    print(f"# npt_lattice: fcc Cu, {4 * CELLS ** 3} atoms, Cu-PBE-core-rep.ace, npt-mtk iso 0 bar, dt 1 fs, "
          f"{args.equilibration_ps:g} ps equilibration + {args.production_ps:g} ps averaging, "
          f"{args.ranks} MPI ranks")
    print(f"# 0 K lattice parameter (P = 0): {a0:.5f} A (start of every run)")
    print(f"{'T (K)':>7} {'a (A)':>9} {'+- (A)':>8} {'<T> (K)':>8} {'<P> (bar)':>10} {'+- (bar)':>9} "
          f"{'g (ps)':>7} {'wall (s)':>9}")
    results = []
    for temperature in args.temperatures:
        folder = Path(tempfile.mkdtemp(prefix="acemd-npt-"))
        path = folder / "npt.toml"
        path.write_text(input_text(temperature, n_eq + n_prod, round(a0, 6), args.seed))
        t0 = time.time()
        proc = subprocess.run([mpiexec, "-n", str(args.ranks), *acemd, str(path)], cwd=folder,
                              capture_output=True, text=True, env=env)
        wall = time.time() - t0
        if proc.returncode != 0:
            print(f"{temperature:>7.0f} failed:\n{proc.stderr[-3000:]}")
            continue
        table = read_thermo(folder / "npt.log")
        keep = table["Step"] > n_eq
        a = (table["Volume"][keep] / CELLS ** 3) ** (1.0 / 3.0)
        n_blocks = max(2, int(round(args.production_ps)))
        mean_a, se_a = block_error(a, n_blocks)
        mean_p, se_p = block_error(table["Press"][keep], n_blocks)
        # statistical inefficiency of a (at least one sample spacing): the oscillating MTK
        # volume decorrelates fast, so block means scatter little
        g = len(a) / n_blocks * np.var([b.mean() for b in np.array_split(a, n_blocks)], ddof=1) / a.var()
        g_ps = max(g, 1.0) * SAMPLE_EVERY * dt
        print(f"{temperature:>7.0f} {mean_a:>9.5f} {se_a:>8.5f} {table['Temp'][keep].mean():>8.1f} "
              f"{mean_p:>10.1f} {se_p:>9.1f} {g_ps:>7.2f} {wall:>9.0f}", flush=True)
        results.append((temperature, mean_a, se_a))
        shutil.rmtree(folder, ignore_errors=True)
    if len(results) == 2:
        (t1, a1, e1), (t2, a2, e2) = results
        alpha = (a2 - a1) / (0.5 * (a1 + a2) * (t2 - t1))
        print(f"# mean linear thermal expansion {t1:.0f}-{t2:.0f} K: {alpha * 1e6:.1f} +- "
              f"{math.hypot(e1, e2) / (0.5 * (a1 + a2) * (t2 - t1)) * 1e6:.1f} 1e-6/K")
    return 0


if __name__ == "__main__":
    sys.exit(main())
