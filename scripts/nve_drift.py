#!/usr/bin/env python
"""NVE energy conservation: fcc Cu, Cu-PBE-core-rep.ace, 1000 K, 1 fs, 10 ps.

Runs the engine (any number of ranks: ``mpiexec -n 2 python scripts/nve_drift.py``)
and prints the drift of the total energy (slope of a linear fit, and first-to-last
difference of 1-ps block means) and its RMS fluctuation, in eV/atom.
Target: |drift| below 1e-4 eV/atom over 10 ps.

    python scripts/nve_drift.py [--cells 3] [--ps 10] [--timestep 0.001]
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace"


def main(argv=None):
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", type=int_at_least(1, "fcc cells per edge"),
                    default=3, help="fcc cells per edge (3: 108 atoms)")
    ap.add_argument("--ps", type=float_above(0.0, "the simulated time in ps"), default=10.0, help="simulated time (ps)")
    ap.add_argument("--timestep", type=float_above(0.0, "the timestep in ps"), default=0.001, help="ps")
    ap.add_argument("--temperature", type=float_above(0.0, "the temperature in K"),
                    default=1000.0, help="initial temperature (K)")
    ap.add_argument("--potential", default=str(POTENTIAL))
    args = ap.parse_args(argv)

    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.md import MDRun
    from acemd.io.thermo import read_thermo

    comm = MPI.COMM_WORLD
    folder = Path(comm.bcast(tempfile.mkdtemp(prefix="acemd-nve-") if comm.rank == 0 else None))
    steps = int(round(args.ps / args.timestep))
    every = max(1, int(round(0.01 / args.timestep)))         # a row every 10 fs
    text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.63
repeat = [{args.cells}, {args.cells}, {args.cells}]
[potential]
file = "{Path(args.potential).resolve().as_posix()}"
[velocities]
temperature = {2 * args.temperature}   # equipartition: half goes into potential energy
seed = 4242
[md]
timestep = {args.timestep}
steps = {steps}
skin = 1.0
[thermo]
every = {every}
file = "nve.log"
[checkpoint]
file = "nve.ckpt.h5"
"""
    path = folder / "nve.toml"
    settings = parse_config(text, path)
    stream = sys.stdout if comm.rank == 0 else io.StringIO()
    run = MDRun(settings, text, path, comm=comm, stream=io.StringIO())
    if comm.rank == 0:
        print(f"# nve_drift: {run.state.n_atoms_total} Cu atoms, {Path(args.potential).name}, "
              f"dt {args.timestep * 1000:g} fs, {args.ps:g} ps, start {2 * args.temperature:g} K, "
              f"{comm.size} rank(s)", file=stream, flush=True)
    run.run()
    if comm.rank == 0:
        t = read_thermo(folder / "nve.log")
        n = run.state.n_atoms_total
        e = t["TotEng"] / n
        time = t["Time"]
        slope = np.polyfit(time, e, 1)[0]
        blocks = np.array_split(e, max(2, int(round(args.ps))))
        print(f"mean temperature      {t['Temp'][len(t['Temp']) // 5:].mean():10.1f} K", file=stream)
        print(f"drift (linear fit)    {slope * args.ps:10.2e} eV/atom over {args.ps:g} ps", file=stream)
        print(f"drift (block means)   {blocks[-1].mean() - blocks[0].mean():10.2e} eV/atom "
              f"(last minus first {args.ps / len(blocks):g}-ps block)", file=stream)
        print(f"RMS fluctuation       {e.std():10.2e} eV/atom", file=stream)
        print(f"max |E - E(0)|        {np.abs(e - e[0]).max():10.2e} eV/atom", file=stream)
        verdict = "PASS" if abs(slope * args.ps) < 1e-4 else "FAIL"
        print(f"target |drift| < 1e-4 eV/atom: {verdict}", file=stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
