#!/usr/bin/env python
"""Cost of Frenkel-Ladd switching against plain NVT, and wall time of the solid route.

    python scripts/bench_free_energy.py [--steps 200] [--repeat 5] [--route] [--ranks 1 2]
    python scripts/bench_free_energy.py --melting [--guess 1250] [--scale 0.5] [--ranks 2]   # ~1 h

* Step cost: Langevin NVT of fcc Cu (4 repeat^3 atoms, Cu-I.yace) with the ACE term
  alone, then with H(lambda) = (1 - f) U_ACE + f U_Einstein (both evaluated every step,
  lambda advancing), in microseconds per atom per step and the relative overhead
  (target < 10 %).  LAMMPS + ML-PACE with fix ti/spring: ~43 us/atom/step on one core.
* Sweep steps (``temperature_sweep``, ``pressure_sweep``): the same NVT step against one
  step of each sweep kind as the driver runs it (reversible scaling NVT and NPT with the
  barostat target lambda P, the NPT temperature ramp, the NPT pressure ramp), target < 10 %.
* --route: runs the [free_energy] solid route (a short protocol, printed) under
  ``mpiexec -n R`` for each R of --ranks and prints its wall time.
* --melting: the melting-point protocol of Cu with Cu-PBE-core-rep.ace (256 atoms per phase,
  ``scripts/validate_melting_cu.py`` with one guess and its run lengths times --scale) under
  ``mpiexec -n R`` for each R of --ranks; prints Tm and the protocol's wall time.  Skips the
  step-cost part.
Step costs are CPU times of this process (time.process_time: less sensitive to other
processes than wall time); timings on a shared machine are still noisy: run it alone and repeat.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POT = ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"


def step_costs(repeat, steps, temperature=1000.0):
    from ase.build import bulk
    from mpi4py import MPI

    from acemd.engine import Engine
    from acemd.forcefield import ACETerm, ForceField
    from acemd.free_energy import EinsteinTerm, LambdaMixing
    from acemd.free_energy.switching import switch
    from acemd.integrators import LangevinBAOAB
    from acemd.simulation import initial_velocities
    from acemd.state import State
    atoms = bulk("Cu", "fcc", a=3.66, cubic=True).repeat(repeat)
    n = len(atoms)

    def engine(terms):
        st = State(cell=atoms.cell.array.copy(), pbc=np.array([True] * 3), ids=np.arange(n), species=np.zeros(n, int),
                   positions=atoms.positions.copy(), velocities=np.zeros((n, 3)), images=np.zeros((n, 3), int),
                   species_names=["Cu"], masses_by_species=np.array([63.546]), n_atoms_total=n)
        eng = Engine(MPI.COMM_SELF, st, ForceField(terms), skin=1.0)
        st.velocities = initial_velocities(MPI.COMM_SELF, st, temperature, 1, True)
        eng.compute_forces(force_rebuild=True)
        return eng

    ace = ACETerm(POT)
    eng = engine([ace])
    lang = LangevinBAOAB(0.002, temperature, 0.1, seed=1)
    lang.setup(eng)
    mix = LambdaMixing(ACETerm(POT), EinsteinTerm([3.5], atoms.positions, atoms.cell.array))
    eng2 = engine([mix])
    lang2 = LangevinBAOAB(0.002, temperature, 0.1, seed=1)
    lang2.setup(eng2)
    block = max(steps // 5, 10)
    plain, sw = np.inf, np.inf
    for _ in range(5):           # interleaved blocks, best of 5: the machine's load hits both alike
        t0 = time.process_time()
        for _ in range(block):
            lang.step(eng)
        plain = min(plain, (time.process_time() - t0) / block)
        t0 = time.process_time()
        switch(eng2, lang2, mix, block)
        sw = min(sw, (time.process_time() - t0) / (block + 1))
    costs = {"switching step": sw}
    costs.update(sweep_costs(engine, ace, plain_step=lambda: lang.step(eng), block=block,
                             temperature=temperature))
    return n, plain, costs


def sweep_costs(engine, ace, plain_step, block, temperature):
    """Seconds per step of each sweep kind, best of 5 blocks interleaved with plain NVT blocks."""
    from acemd.free_energy.liquid import ZeroTerm
    from acemd.free_energy.sweep import lambda_path, linear_path, run_path, scaling_term
    from acemd.integrators import LangevinBAOAB, StochasticCellRescaling

    def kind(npt, scaled):
        term = scaling_term(ace, ZeroTerm()) if scaled else ace
        eng = engine([term])
        integ = (StochasticCellRescaling(0.002, temperature, 1000.0, damping=0.1, barostat_damping=1.0, seed=1)
                 if npt else LangevinBAOAB(0.002, temperature, 0.1, seed=1))
        integ.setup(eng)
        energy = (lambda: eng.term_energies["scale.B"]) if scaled else (lambda: eng.potential_energy)
        return eng, integ, term, energy

    runs = {}
    for label, npt, scaled in (("sweep: scaling NVT", False, True), ("sweep: scaling NPT", True, True),
                               ("sweep: T ramp NPT", True, False), ("sweep: P ramp NPT", True, False)):
        eng, integ, term, energy = kind(npt, scaled)
        if label.endswith("scaling NVT"):
            def set_x(x, term=term):
                term.lam = x
            xs = lambda_path(temperature, 1.5 * temperature, block)
        elif scaled:
            def set_x(x, term=term, integ=integ):
                term.lam = x
                integ.pressure_bar = 1000.0 * x
            xs = lambda_path(temperature, 1.5 * temperature, block)
        elif "T ramp" in label:
            def set_x(x, integ=integ):
                integ.temperature = x
            xs = linear_path(temperature, 1.5 * temperature, block)
        else:
            def set_x(x, integ=integ):
                integ.pressure_bar = x
            xs = linear_path(0.0, 10000.0, block)
        runs[label] = (eng, integ, xs, set_x, energy)
    best = {k: np.inf for k in runs}
    for _ in range(5):
        for label, (eng, integ, xs, set_x, energy) in runs.items():
            t0 = time.process_time()
            run_path(eng, integ, xs, set_x, energy)
            best[label] = min(best[label], (time.process_time() - t0) / (block + 1))
    return best


ROUTE = """
[structure]
lattice = "fcc"
element = "Cu"
a = 3.66
repeat = [{r}, {r}, {r}]

[potential]
file = "{pot}"

[free_energy]
temperature = 1000.0
timestep = 0.002
npt_steps = {s}
npt_max_blocks = 1
pressure_tolerance = 1e9
spring_steps = {s}
n_iterations = 1
equilibration_steps = {s}
switching_steps = {s}
progress_every = 1000000
"""


def main():
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int_at_least(1, "the number of steps"), default=200)
    ap.add_argument("--repeat", type=int_at_least(1, "the repeat count"), default=5)
    ap.add_argument("--route", action="store_true")
    ap.add_argument("--ranks", type=int_at_least(1, "the number of ranks"),
                    nargs="+", default=None, help="default 1 2 (--route), 2 (--melting)")
    ap.add_argument("--melting", action="store_true")
    ap.add_argument("--guess", type=float_above(0.0, "the temperature guess in K"),
                    default=1250.0, help="--melting: guessed Tm (K)")
    ap.add_argument("--scale", type=float_above(0.0, "the run-length factor"),
                    default=0.5, help="--melting: run lengths x this")
    ap.add_argument("--quick", action="store_true",
                    help="--melting: validate_melting_cu.py --quick (32 atoms, seconds; checks the plumbing only)")
    args = ap.parse_args()
    if args.melting:
        for ranks in args.ranks or [2]:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                proc = subprocess.run(["mpiexec", "-n", str(ranks), sys.executable,
                                       str(ROOT / "scripts" / "validate_melting_cu.py"), "--out", tmp,
                                       "--guesses", f"{args.guess:g}"]
                                      + (["--quick"] if args.quick else ["--scale", f"{args.scale:g}"]),
                                      capture_output=True, text=True, env=dict(os.environ))
                wall = time.perf_counter() - t0
                found = [line for line in proc.stdout.splitlines() if line.lstrip("# ").startswith("guess")]
                status = "ok" if proc.returncode == 0 else f"failed ({proc.stderr[-300:]})"
                size = "32 atoms per phase, --quick: NOT a result" if args.quick else "256 atoms per phase"
                print(f"melting protocol, Cu-PBE-core-rep.ace, {size}, guess {args.guess:g} K, "
                      f"run lengths x{1 if args.quick else args.scale:g}, {ranks} rank(s): {wall / 3600:.2f} h wall  {status}")
                for line in found:
                    print(" ", line.lstrip("# "))
        return
    args.ranks = args.ranks or [1, 2]
    n, plain, costs = step_costs(args.repeat, args.steps)
    print(f"{n} atoms, Cu-I.yace, {args.steps} steps (noisy: shared machine)")
    print(f"  NVT Langevin step       {plain * 1e3:8.2f} ms  {plain / n * 1e6:7.2f} us/atom/step")
    for label, sw in costs.items():
        print(f"  {label:<22s}  {sw * 1e3:8.2f} ms  {sw / n * 1e6:7.2f} us/atom/step  "
              f"overhead {100 * (sw / plain - 1):+.1f} %")
    if args.route:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "fe.toml"
            path.write_text(ROUTE.format(r=args.repeat, pot=POT.as_posix(), s=args.steps))
            total = 2 * args.steps + 2 * (2 * args.steps)
            for ranks in args.ranks:
                t0 = time.perf_counter()
                proc = subprocess.run(["mpiexec", "-n", str(ranks), sys.executable, "-m", "acemd.cli", str(path)],
                                      cwd=tmp, capture_output=True, text=True, env=dict(os.environ))
                wall = time.perf_counter() - t0
                status = "ok" if proc.returncode == 0 else f"failed ({proc.stderr[-300:]})"
                print(f"  solid route, {total} MD steps, {ranks} rank(s): {wall:7.1f} s wall  {status}")


if __name__ == "__main__":
    main()
