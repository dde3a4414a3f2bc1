#!/usr/bin/env python
"""Benchmark the static [elastic] driver: wall time, force calls, and the driver's own share.

Two cases with Cu-I.yace: 500-atom fcc Cu (5x5x5 cubic cells, started 2 % off the lattice
constant and rattled, so the reference relaxation has work to do) and the 2-atom hcp cell
(relaxed-ion, so every strained cell is relaxed).  The share outside force calls is the
wall time minus the engine's neighbour, force and communication time.

    python scripts/bench_elastic.py                 # 1 rank
    mpiexec -n 2 python scripts/bench_elastic.py    # the same on 2 ranks

With ``--finite-t`` it instead times the 300 K tensor of inputs/elastic_cu_300K.toml (500 atoms,
the example's run lengths: hours on one core); ``--repeat`` and ``--scale`` shrink the cell and
scale every run length (rounded to whole blocks) to time it on a shared machine:

    python scripts/bench_elastic.py --finite-t --repeat 3 --scale 0.1
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"

CASES = {
    "fcc Cu, 500 atoms": 'lattice = "fcc"\nelement = "Cu"\na = 3.70\nrepeat = [5, 5, 5]\nrattle = 0.02',
    "hcp Cu, 2 atoms": 'lattice = "hcp"\nelement = "Cu"\na = 2.60\nc = 4.15',
}


def finite_t(repeat, scale):
    """Wall time and share outside force calls of the 300 K example (scaled)."""
    import re
    import time

    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.elastic import ElasticRun

    comm = MPI.COMM_WORLD
    folder = Path(comm.bcast(tempfile.mkdtemp(prefix="acemd-bench-elastic-t-") if comm.rank == 0 else None))
    text = (ROOT / "inputs" / "elastic_cu_300K.toml").read_text()
    text = text.replace('"../tests/data/', f'"{(ROOT / "tests" / "data").as_posix()}/')
    text = text.replace("repeat = [5, 5, 5]", f"repeat = [{repeat}, {repeat}, {repeat}]")
    block = max(100, int(round(1000 * scale / 100)) * 100)
    lengths = {"npt_steps": 10000, "equilibration_steps": 1000, "production_steps": 10000}
    text = re.sub(r"block_steps = \d+", f"block_steps = {block}", text)
    for key, n in lengths.items():
        steps = max(int(round(n * scale / block)) * block, 0 if key == "equilibration_steps" else 4 * block)
        text = re.sub(rf"{key} = \d+", f"{key} = {steps}", text)
    path = folder / "bench_t.toml"
    if comm.rank == 0:
        path.write_text(text)
    comm.Barrier()
    t0 = time.perf_counter()
    report = ElasticRun(parse_config(text, path), text, path, comm=comm, stream=io.StringIO()).run()
    wall = time.perf_counter() - t0
    if comm.rank == 0:
        outside = 100.0 * (1.0 - report["force_s"] / report["wall_s"])
        c = np.array(report["C_symmetrized_GPa"])
        e = np.array(report["C_symmetrized_error_GPa"])
        print(f"300 K tensor, {report['n_atoms']} atoms, run lengths x{scale:g} of the example "
              f"({report['steps']} MD steps), {comm.size} rank(s): wall {wall:8.1f} s, "
              f"{outside:5.1f} % outside force calls; C11 {c[0, 0]:.1f}±{e[0, 0]:.1f} C12 {c[0, 1]:.1f}"
              f"±{e[0, 1]:.1f} C44 {c[3, 3]:.1f}±{e[3, 3]:.1f} GPa", flush=True)


def main():
    import argparse
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--finite-t", action="store_true", help="time the 300 K example instead")
    p.add_argument("--repeat", type=int_at_least(1, "the repeat count"),
                   default=5, help="fcc cells per edge for --finite-t (5: 500 atoms)")
    p.add_argument("--scale", type=float_above(0.0, "the run-length factor"),
                   default=1.0, help="run-length factor for --finite-t")
    args = p.parse_args()
    if args.finite_t:
        return finite_t(args.repeat, args.scale)
    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.elastic import ElasticRun

    comm = MPI.COMM_WORLD
    folder = Path(comm.bcast(tempfile.mkdtemp(prefix="acemd-bench-elastic-") if comm.rank == 0 else None))
    for name, structure in CASES.items():
        text = f"""
[potential]
file = "{POTENTIAL.as_posix()}"
[structure]
{structure}
[elastic]
method = "lbfgs"
report = "bench.json"
data = "bench.h5"
[thermo]
file = "bench.log"
"""
        path = folder / "bench.toml"
        if comm.rank == 0:
            path.write_text(text)
        comm.Barrier()
        settings = parse_config(text, path)
        report = ElasticRun(settings, text, path, comm=comm, stream=io.StringIO()).run()
        if comm.rank == 0:
            outside = 100.0 * (1.0 - report["force_s"] / report["wall_s"])
            consts = ", ".join(f"{k} {v:.2f}" for k, v in report["independent_constants_GPa"].items())
            print(f"{name:20s} {comm.size} rank(s): wall {report['wall_s']:7.2f} s, "
                  f"{report['force_calls']:5d} force calls, {outside:5.1f} % outside force calls; "
                  f"{consts} GPa", flush=True)


if __name__ == "__main__":
    main()
