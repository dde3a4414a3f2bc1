#!/usr/bin/env python
"""Benchmark the streaming analyses (rdf, msd, structure) on a synthetic H5MD trajectory.

Builds a trajectory of fcc Cu (4 x cells^3 atoms, default 4000) with ``frames``
frames (default 1000) written by acemd's own H5MD writer (no MD: each atom
random-walks around its site, 0.01 Å per frame, plus 0.08 Å Gaussian thermal
noise; positions are wrapped into the cell and the ``image`` field counts the
crossings), then times each analysis on one thread (freud and pyscal3 limited
to 1) and prints wall and CPU seconds, frames per second and the peak resident memory, which
stays far below the file's size because frames are streamed.  Timings on a
shared machine are noisy.

    python scripts/bench_analysis.py                     # 4000 atoms, 1000 frames
    python scripts/bench_analysis.py --cells 6 --frames 200 --only rdf,msd
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build(path: Path, cells: int, frames: int, a: float = 3.615, seed: int = 0) -> float:
    from ase.build import bulk
    from mpi4py import MPI

    from acemd.io.h5md import H5MDWriter
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((cells, cells, cells))
    n = len(atoms)
    cell = atoms.cell.array
    inv = np.linalg.inv(cell)
    rng = np.random.default_rng(seed)
    site = atoms.positions.copy()
    ids = np.arange(n)
    t0 = time.perf_counter()
    w = H5MDWriter(path, MPI.COMM_SELF, n, ["Cu"], fields=("position", "image", "species", "id"),
                   observables=["temperature"])
    for k in range(frames):
        site += rng.normal(0.0, 0.01, size=(n, 3))
        pos = site + rng.normal(0.0, 0.08, size=(n, 3))
        frac = pos @ inv
        img = np.floor(frac)
        wrapped = (frac - img) @ cell
        w.write_frame(10 * k, 0.01 * k, cell, ids, {"position": wrapped, "image": img.astype(np.int32),
                                                     "species": np.zeros(n, np.int32)},
                      {"temperature": 300.0})
    w.close()
    return time.perf_counter() - t0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None):
    from acemd.analysis.cli import int_at_least   # option checks: exit 2, no traceback
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cells", type=int_at_least(1, "fcc cells per edge"),
                   default=10, help="fcc unit cells per edge (4 cells^3 atoms)")
    p.add_argument("--frames", type=int_at_least(1, "the number of frames"),
                   default=1000, help="frames in the trajectory")
    p.add_argument("--only", default="rdf,msd,structure", help="comma list of analyses to time")
    p.add_argument("--keep", metavar="PATH", help="write the trajectory here and keep it (default: a temp dir)")
    args = p.parse_args(argv)

    from acemd.analysis import msd, rdf, structure
    from acemd.analysis.neighbors import set_threads
    from acemd.analysis.trajectory import Trajectory, parse_frames
    set_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench.h5"
        t_build = build(path, args.cells, args.frames)
        size_mb = path.stat().st_size / 2 ** 20
        n = 4 * args.cells ** 3
        print(f"trajectory: {n} atoms, {args.frames} frames, {size_mb:.0f} MB, written in {t_build:.1f} s")
        print(f"{'analysis':>10s} {'wall s':>8s} {'CPU s':>8s} {'frames/s':>9s} {'peak RSS MB':>12s}  result")
        for name in [s.strip() for s in args.only.split(",") if s.strip()]:
            with Trajectory(path) as traj:
                frames = parse_frames(None, traj.n_frames)
                t0, c0 = time.perf_counter(), time.process_time()
                if name == "rdf":
                    res = rdf.compute_rdf(traj, frames)
                    g = res.g["total"]
                    note = f"first peak at {res.r[np.argmax(g)]:.3f} A, r_max {res.r_edges[-1]:.2f} A, {len(g)} bins"
                elif name == "msd":
                    res = msd.compute_msd(traj, frames)
                    note = f"MSD({res.lag_time[-1]:g} ps) = {res.msd['Cu'][-1]:.4f} A^2"
                elif name == "structure":
                    res = structure.compute_structure(traj, frames)
                    note = f"fcc {100 * res.fractions['fcc'].mean():.1f} % on average"
                else:
                    print(f"unknown analysis {name!r} (rdf, msd, structure)", file=sys.stderr)
                    return 2
                dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"{name:>10s} {dt:8.1f} {cpu:8.1f} {len(frames) / dt:9.1f} {peak_mb():12.0f}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
