#!/usr/bin/env python
"""acemd's MD step against pyace's C++ recursive evaluator, on the same cells.

For each potential and size (fcc Cu, a = 3.615 Å, NVT-CSVR 300 K, dt 1 fs,
skin 1 Å, one rank) prints, in one run:

* acemd's MD step time (µs/atom/step, wall time of ``steps`` steps after a
  warm-up), pyace's time for one energy+forces call of its recursive evaluator
  on the same positions, and their ratio (the issue-16 target is <= 0.5);
* the phase breakdown of the MD step: the ACE kernel split by its profiling mode
  (``acemd.potential.profile``) into per-neighbour work, tree forward, tree
  backward and forces/virial, and the engine's neighbour-list, communication
  and integration (everything else) times;
* peak RSS of the MD process and its growth per atom over the RSS after imports;
* cold start (empty numba cache: ``NUMBA_CACHE_DIR`` set to a fresh folder) and
  cached start: seconds from launching ``python`` to the end of the first force
  evaluation, at the first size given.

Timings on a shared machine are noisy, so all main figures are CPU time of the
working thread (``time.thread_time``: waiting for a core does not count, cache
and memory contention still does): kernel and pyace times are the minimum over
``--repeats`` interleaved calls, the MD step the mean over its steps.  The
engine's neighbour-list and communication timers are wall clock; the
integration+other figure is the step's CPU time minus the kernel call and those
two.  The kernel phases are CPU times of one kernel call (its profiling mode).

    python scripts/bench_compare.py                          # Cu-I and Cu-PBE, 4000 and 32000 atoms
    python scripts/bench_compare.py --cells 5 10 --steps 3   # 500 and 4000 atoms, quick
    python scripts/bench_md.py --compare ...                 # the same
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POTENTIALS = {"Cu-I": ROOT / "tests" / "data" / "potentials" / "Cu-I.yace",
              "Cu-PBE": ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace"}


def rss_now_mib():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def md_input(potential, cells, steps):
    return f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.615
repeat = [{cells}, {cells}, {cells}]
[potential]
file = "{Path(potential).as_posix()}"
[velocities]
temperature = 300.0
seed = 7
[md]
ensemble = "nvt-csvr"
timestep = 0.001
steps = {steps}
skin = 1.0
[thermostat]
temperature = 300.0
damping = 0.1
[thermo]
every = {max(steps, 1)}
file = "bench.log"
[checkpoint]
file = "bench.ckpt.h5"
"""


def worker(potential, cells, steps, repeats, launched, startup_only, with_pyace):
    import io

    import numpy as np
    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.md import MDRun

    rss_base = rss_now_mib()
    comm = MPI.COMM_WORLD
    folder = tempfile.mkdtemp(prefix="acemd-bench-")
    text = md_input(potential, cells, steps)
    path = Path(folder) / "bench.toml"
    run = MDRun(parse_config(text, path), text, path, comm=comm, stream=io.StringIO())
    eng = run.engine
    eng.compute_forces(force_rebuild=True)        # compile / load kernels, first neighbour list
    first_step = time.time() - launched
    result = {"first_step_s": first_step}
    if startup_only:
        print("RESULT " + json.dumps(result), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        return
    # the bare MD step: integrator, forces, neighbour lists, communication (no thermo or file output)
    run.integrator.setup(eng)
    rebuilds0 = eng.n_rebuilds
    for k in eng.timers:
        eng.timers[k] = 0.0
    t0 = MPI.Wtime()
    c0 = time.thread_time()
    for _ in range(steps):
        run.integrator.step(eng)
    cpu = time.thread_time() - c0
    wall = MPI.Wtime() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n = run.state.n_atoms_total
    result.update(atoms=n, steps=steps, wall_s=wall, cpu_s=cpu, step_us=cpu / (n * steps) * 1e6,
                  step_wall_us=wall / (n * steps) * 1e6,
                  force_s=eng.timers["force"], neighbour_s=eng.timers["neighbour"],
                  comm_s=eng.timers["comm"], rebuilds=eng.n_rebuilds - rebuilds0,
                  rss_base_mib=rss_base, rss_peak_mib=peak,
                  pairs_list=len(eng.neighbors) / n)

    # kernel phases on the final neighbour list
    from acemd.potential.profile import kernel_phases
    pot = eng.forcefield.terms[0].potential
    args = (eng.ext_positions, eng.ext_species, run.state.n_local, eng.offsets, eng.neighbors)
    result["phases_s"] = kernel_phases(pot, *args, repeats=repeats)
    d = eng.ext_positions[eng.neighbors] - np.repeat(eng.ext_positions[:n], np.diff(eng.offsets), axis=0)
    result["pairs_cutoff"] = float(np.count_nonzero((d * d).sum(1) < pot.cutoff ** 2)) / n

    # pyace on the same positions, interleaved with acemd kernel calls
    t_ours, t_ref = [], []
    want_sv = getattr(eng.forcefield.terms[0], "want_site_virial", True)     # as the MD step does
    e_ours = pot.compute(*args).site_energy.sum()
    if with_pyace:
        try:
            from ase import Atoms
            from pyace import PyACECalculator
        except ImportError:
            result["pyace"] = "not installed (pip install python-ace)"
            with_pyace = False
    if with_pyace:
        atoms = Atoms(["Cu"] * n, positions=run.state.positions, cell=run.state.cell, pbc=True)
        calc = PyACECalculator(str(potential), recursive_evaluator=True, recursive=True)
        atoms.calc = calc
        e_ref = atoms.get_potential_energy()      # warm-up, builds the atomic environment
        calc.get_atomic_env(atoms)
        result["dE_per_atom"] = abs(e_ref - e_ours) / n
        result["energies"] = (float(e_ref), float(e_ours))
    for _ in range(repeats):
        t = time.thread_time()
        pot.compute(*args, site_virial=want_sv)
        t_ours.append(time.thread_time() - t)
        if with_pyace:
            t = time.thread_time()
            calc.ace.compute(calc.ae)
            t_ref.append(time.thread_time() - t)
    result["kernel_s"] = min(t_ours)
    if with_pyace:
        result["pyace_s"] = min(t_ref)
    print("RESULT " + json.dumps(result), flush=True)
    shutil.rmtree(folder, ignore_errors=True)


def launch(args, name, cells, steps, extra_env=None, startup_only=False, with_pyace=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", **(extra_env or {}))
    cmd = [sys.executable, __file__, "--worker", "--potentials", name, "--cells", str(cells),
           "--steps", str(steps), "--repeats", str(args.repeats), "--launched", repr(time.time())]
    if startup_only:
        cmd.append("--startup-only")
    if not with_pyace:
        cmd.append("--no-pyace")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(f"# {name} {4 * cells ** 3} atoms failed:\n{proc.stderr[-3000:]}", flush=True)
        return None
    return json.loads(line[7:])


def report(name, r):
    n = r["atoms"]
    us = lambda s: s / n * 1e6                                   # noqa: E731
    ph = r["phases_s"]
    other = max(r["cpu_s"] / r["steps"] - r["kernel_s"] - (r["neighbour_s"] + r["comm_s"]) / r["steps"], 0.0)
    ref = f"{us(r['pyace_s']):8.1f}" if "pyace_s" in r else f"{'-':>8}"
    ratio = f"{r['step_us'] / us(r['pyace_s']):6.2f}" if "pyace_s" in r else f"{'-':>6}"
    print(f"{name:7s} {n:>6} | step {r['step_us']:7.1f} (wall {r['step_wall_us']:.1f}) | kernel {us(r['kernel_s']):7.1f} | pyace {ref} | "
          f"step/pyace {ratio} | dE/atom {r.get('dE_per_atom', float('nan')):.1e} eV")
    steps = r["steps"]
    print(f"        phases us/atom: per-neighbour {us(ph['per_neighbour']) :6.1f}  "
          f"tree fwd {us(ph['tree_forward']) :6.1f}  tree bwd {us(ph['tree_backward']) :6.1f}  "
          f"forces/virial {us(ph['forces_virial']) :6.1f}  neighbour list {us(r['neighbour_s']) / steps:5.2f}  "
          f"comm {us(r['comm_s']) / steps:5.2f}  integration+other {us(other):5.2f}  "
          f"({r['rebuilds']} rebuilds)")
    print(f"        pairs/atom: list {r['pairs_list']:.1f}, within cutoff {r['pairs_cutoff']:.1f};  "
          f"peak RSS {r['rss_peak_mib']:.0f} MiB, {(r['rss_peak_mib'] - r['rss_base_mib']) * 1024 / n:.2f} "
          f"KiB/atom above the {r['rss_base_mib']:.0f} MiB after imports", flush=True)


def main(argv=None):
    from acemd.analysis.cli import int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--potentials", nargs="+", default=list(POTENTIALS), choices=list(POTENTIALS))
    ap.add_argument("--cells", type=int_at_least(1, "fcc cells per edge"),
                    nargs="+", default=[10, 20], help="fcc cells per edge (10: 4000 atoms)")
    ap.add_argument("--steps", type=int_at_least(1, "the number of steps"), default=5)
    ap.add_argument("--repeats", type=int_at_least(1, "the number of repeats"),
                    default=3, help="interleaved kernel / pyace calls (minimum taken)")
    ap.add_argument("--no-startup", action="store_true", help="skip the cold/cached start measurement")
    ap.add_argument("--no-pyace", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--startup-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--launched", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(POTENTIALS[args.potentials[0]], args.cells[0], args.steps, args.repeats,
               args.launched or time.time(), args.startup_only, not args.no_pyace)
        return 0
    print(f"# bench_compare: fcc Cu, NVT-CSVR 300 K, dt 1 fs, skin 1 A, 1 rank, {args.steps} steps after a "
          f"warm-up; kernel/pyace: min of {args.repeats} interleaved calls; times in us/atom; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for name in args.potentials:
        if not args.no_startup:
            cache = tempfile.mkdtemp(prefix="acemd-numba-cache-")
            # a start-up worker stops after the first forces; steps = 1 only passes --steps' check
            cold = launch(args, name, args.cells[0], 1, {"NUMBA_CACHE_DIR": cache}, startup_only=True)
            warm = launch(args, name, args.cells[0], 1, {"NUMBA_CACHE_DIR": cache}, startup_only=True)
            shutil.rmtree(cache, ignore_errors=True)
            if cold and warm:
                print(f"{name:7s} start to first forces ({4 * args.cells[0] ** 3} atoms): "
                      f"cold {cold['first_step_s']:.1f} s, cached {warm['first_step_s']:.1f} s", flush=True)
        for cells in args.cells:
            r = launch(args, name, cells, args.steps, with_pyace=not args.no_pyace)
            if r:
                report(name, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
