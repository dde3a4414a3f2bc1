#!/usr/bin/env python
"""Benchmark the static [elastic] driver: wall time, force calls, and the driver's own share.

Two cases with Cu-I.yace: 500-atom fcc Cu (5x5x5 cubic cells, started 2 % off the lattice
constant and rattled, so the reference relaxation has work to do) and the 2-atom hcp cell
(relaxed-ion, so every strained cell is relaxed).  The share outside force calls is the
wall time minus the engine's neighbour, force and communication time.

    python scripts/bench_elastic.py                 # 1 rank
    mpiexec -n 2 python scripts/bench_elastic.py    # the same on 2 ranks
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"

CASES = {
    "fcc Cu, 500 atoms": 'lattice = "fcc"\nelement = "Cu"\na = 3.70\nrepeat = [5, 5, 5]\nrattle = 0.02',
    "hcp Cu, 2 atoms": 'lattice = "hcp"\nelement = "Cu"\na = 2.60\nc = 4.15',
}


def main():
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
