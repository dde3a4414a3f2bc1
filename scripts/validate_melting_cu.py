#!/usr/bin/env python
"""Validation: the melting point of Cu with Cu-PBE-core-rep.ace (issue 13), from two guesses.

    mpiexec -n 2 python scripts/validate_melting_cu.py [--out DIR] [--repeat 4] [--guesses 1250 1400]
    mpiexec -n 2 python scripts/validate_melting_cu.py --pressure 10000 --guesses 1335 --scale 0.35
    mpiexec -n 2 python scripts/validate_melting_cu.py --line 1287.76 4.93 --pressure-final 10000
    python scripts/validate_melting_cu.py --quick          # smoke check: 32 atoms, tiny runs, minutes
    mpiexec -n 2 python scripts/validate_melting_cu.py --potential learnt.yaml --guesses 1250 --scale 0.5

The second line is the direct melting point at 10 kbar, the third the Clausius-Clapeyron line
from the 0-bar Tm to 10 kbar (``mode = "coexistence_line"`` with ``start_temperature``): the two
must agree within errors (docs/phase-diagram.md).

Runs ``[free_energy] mode = "melting_temperature"`` twice (guesses 150 K apart, window +-100 K,
up to 4 windows each): solid fcc (a = 3.63) and liquid melted from fcc expanded to a = 3.80 (about
the liquid's volume; at the crystal's the NVT melt superheats), 4x4x4 = 256 atoms each
(--repeat).  Prints Tm +- error of each run, the difference in units of the combined error (the crossing must not
depend on the guess), and the windows tried.  Experiment: 1358 K; compare Tm with the published
value for this potential and an independent calculation (calphy) before quoting it.

Run lengths (full run, timestep 2 fs): NPT blocks of 10000 steps (up to 5), springs 10000,
3 iterations of 2 x (5000 + 20000) switching steps, sweeps 2 x 20000 steps per iteration; the
liquid melts 10000 steps and quenches 10000.  Steps per window: solid 3 x 50000 + 3 x 50000 +
~30000 = ~330000; liquid (the Uhlenbeck-Ford route at the window's high end, then its NPT sweep
down, phase = "liquid") 30000 + 3 x 100000 + 3 x 50000 = ~480000.  The script times 50 MD steps
first and prints the expected wall time: about 810000 steps of 256 atoms per window and guess, of
which ~300000 are cheap Uhlenbeck-Ford <-> ideal-gas steps (~2 ms each for 256 atoms) and ~510000
evaluate Cu-PBE (~25 ms each on one core of this machine with the current kernel, measured in the
liquid validation): ~3.7 h per window and guess on 1 rank, roughly half on 2 ranks.
--quick runs are far too short
to melt or converge: a smoke check of the machinery, never a melting point.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace"

FULL = dict(timestep=0.002, npt_steps=10000, npt_max_blocks=5, spring_steps=10000, n_iterations=3,
            equilibration_steps=5000, switching_steps=20000, sweep_steps=20000, sweep_points=21,
            melt_steps=10000, quench_steps=10000, progress_every=5000)
QUICK = dict(timestep=0.002, npt_steps=200, npt_max_blocks=1, pressure_tolerance=1e9, spring_steps=200,
             n_iterations=2, equilibration_steps=50, switching_steps=200, sweep_steps=200, sweep_points=5,
             melt_steps=600, quench_steps=300, progress_every=100000)


def input_text(folder, guess, repeat, run, window, attempts, pressure=0.0, mode="melting_temperature", extra="",
               potential=POTENTIAL):
    keys = "\n".join(f"{k} = {v}" for k, v in run.items())
    return f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.63
repeat = [{repeat}, {repeat}, {repeat}]

[potential]
file = "{Path(potential).resolve().as_posix()}"

[free_energy]
mode = "{mode}"
temperature = {guess}
window = {window}
attempts = {attempts}
phases = [{{name = "solid", route = "solid"}},
          {{name = "liquid", route = "liquid", lattice = "fcc", element = "Cu", a = 3.80, repeat = [{repeat}, {repeat}, {repeat}]}}]
pressure = {pressure}
{extra}report = "{(folder / 'melting.yaml').as_posix()}"
data = "{(folder / 'melting.h5').as_posix()}"
checkpoint = "{(folder / 'melting.ckpt.h5').as_posix()}"
{keys}
"""


def step_cost(settings, text, path, comm):
    """Seconds per MD step of this system (50 Langevin steps after set-up)."""
    from acemd.integrators import LangevinBAOAB
    from acemd.simulation import Simulation
    sim = Simulation(settings, text, path, comm=comm, stream=None)
    lang = LangevinBAOAB(0.002, 1300.0, 0.1, seed=1)
    sim.engine.compute_forces(force_rebuild=True)
    lang.setup(sim.engine)
    for _ in range(5):
        lang.step(sim.engine)
    t0 = time.perf_counter()
    for _ in range(50):
        lang.step(sim.engine)
    return (time.perf_counter() - t0) / 50


def coexistence(args, out, repeat, run, comm):
    """The Clausius-Clapeyron line from a melting point computed before (start_temperature)."""
    from acemd.config import parse_config
    from acemd.drivers.phase_diagram import PhaseDiagramRun
    tm, err = args.line
    folder = out / f"line_{args.pressure:g}-{args.pressure_final:g}bar"
    folder.mkdir(parents=True, exist_ok=True)
    extra = (f"pressure_final = {args.pressure_final}\npressure_steps = {args.pressure_steps}\n"
             f"start_temperature = {tm}\nstart_temperature_error = {err}\n")
    text = input_text(folder, tm, repeat, run, args.window, 1, args.pressure, "coexistence_line", extra,
                      potential=args.potential)
    path = folder / "melting.toml"
    if comm.Get_rank() == 0:
        path.write_text(text)
    comm.Barrier()
    t_start = time.perf_counter()
    rep = PhaseDiagramRun(parse_config(text, path), text, path, comm=comm).run()
    if comm.Get_rank() == 0:
        line = rep["result"]["coexistence_line"]
        print(f"#\n# Cu-PBE-core-rep.ace coexistence line from Tm = {tm:g} +- {err:g} K at {args.pressure:g} bar "
              f"({(time.perf_counter() - t_start) / 3600:.2f} h on {comm.Get_size()} rank(s), NPT state points of "
              f"{run['npt_steps']} steps)")
        for q in line["state_points"]:
            print(f"#   state point {q['T']:8.2f} K {q['P']:8.1f} bar: dV = {q['dV']:+.4f} A^3/atom, "
                  f"dH = {q['dH']:+.5f} eV/atom; volumes " + ", ".join(
                      f"{name} {q[name]['volume']:.4f} +- {q[name]['volume_error']:.4f}" for name in ("solid", "liquid")))
        for p, t, e, e0, es in zip(line["pressure_bar"], line["temperature_K"], line["error_K"],
                                   line["error_from_start_K"], line["error_from_state_points_K"]):
            print(f"#   {p:8.1f} bar: Tm = {t:.2f} +- {e:.2f} K (from Tm(0) {e0:.2f}, from the state points {es:.2f})")
    return 0


def main(argv=None):
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="validate_melting_cu", help="output folder")
    ap.add_argument("--potential", default=str(POTENTIAL),
                    help="the potential (default Cu-PBE-core-rep.ace; e.g. a potential `acemd learn` made)")
    ap.add_argument("--repeat", type=int_at_least(1, "the repeat count"),
                    default=4, help="fcc cells per edge (4: 256 atoms)")
    ap.add_argument("--guesses", type=float_above(0.0, "a temperature guess in K"), nargs="+", default=[1250.0, 1400.0],
                    help="one run per guess (one guess per session fits the 3-h limit of a short allocation)")
    ap.add_argument("--scale", type=float_above(0.0, "the run-length factor"), default=1.0,
                    help="multiply every run length by this (0.5: half-length switches and sweeps)")
    ap.add_argument("--window", type=float_above(0.0, "the window half-width in K"), default=100.0)
    ap.add_argument("--pressure", type=float, default=0.0, help="bar (the Clausius-Clapeyron check runs 10000)")
    ap.add_argument("--line", type=float, nargs=2, metavar=("TM_K", "ERROR_K"),
                    help="instead of melting points: the coexistence line from this Tm at --pressure "
                         "(start_temperature) to --pressure-final")
    ap.add_argument("--pressure-final", type=float, default=10000.0, help="bar, the line's far end")
    ap.add_argument("--pressure-steps", type=int_at_least(1, "the number of RK4 steps"),
                    default=2, help="RK4 steps of the line")
    ap.add_argument("--attempts", type=int_at_least(1, "the number of windows"), default=4)
    ap.add_argument("--quick", action="store_true", help="smoke check: 32 atoms, tiny runs (not a result)")
    args = ap.parse_args(argv)
    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.phase_diagram import NoCrossingError, PhaseDiagramRun
    from acemd.drivers.free_energy import NoStableLiquidError
    comm = MPI.COMM_WORLD
    repeat = 2 if args.quick else args.repeat
    run = dict(QUICK if args.quick else FULL)
    for key in ("npt_steps", "spring_steps", "equilibration_steps", "switching_steps", "sweep_steps",
                "melt_steps", "quench_steps"):
        run[key] = max(1, int(round(run[key] * args.scale)))
    out = Path(args.out).resolve()
    if args.line:
        return coexistence(args, out, repeat, run, comm)
    results = []
    for guess in args.guesses:
        folder = out / (f"guess_{guess:g}K" + (f"_{args.pressure:g}bar" if args.pressure else ""))
        folder.mkdir(parents=True, exist_ok=True)
        text = input_text(folder, guess, repeat, run, args.window, 1 if args.quick else args.attempts, args.pressure,
                          potential=args.potential)
        path = folder / "melting.toml"
        if comm.Get_rank() == 0:
            path.write_text(text)
        comm.Barrier()
        settings = parse_config(text, path)
        if not results:
            dt = step_cost(settings, text, path, comm)
            n = 4 * repeat ** 3
            per_window = (3 * (2 * run["equilibration_steps"] + 2 * run["switching_steps"])
                          + run["n_iterations"] * 2 * (run["equilibration_steps"] + run["sweep_steps"])
                          + 2 * run["npt_steps"] + run["spring_steps"])
            liquid = (run["melt_steps"] + run["quench_steps"] + run["npt_steps"]      # the liquid route, then its sweep
                      + run["n_iterations"] * (4 * run["equilibration_steps"] + 4 * run["switching_steps"])
                      + run["n_iterations"] * 2 * (run["equilibration_steps"] + run["sweep_steps"]))
            steps = per_window + liquid
            if comm.Get_rank() == 0:
                print(f"# {n} atoms, {dt * 1e3:.1f} ms per step on {comm.Get_size()} rank(s): about {steps} steps "
                      f"per window -> {steps * dt / 3600:.2f} h per window and guess (x windows tried x 2 guesses)",
                      flush=True)
        t_start = time.perf_counter()
        try:
            rep = PhaseDiagramRun(settings, text, path, comm=comm).run()
            res = rep["result"]
            results.append((guess, res["temperature_K"], res["error_K"], rep["windows"]))
            if comm.Get_rank() == 0:
                print(f"# guess {guess:g} K: protocol wall time {(time.perf_counter() - t_start) / 3600:.2f} h on "
                      f"{comm.Get_size()} rank(s), {len(rep['windows'])} window(s), run lengths x{args.scale:g}",
                      flush=True)
        except (NoCrossingError, NoStableLiquidError) as exc:
            if comm.Get_rank() == 0:
                print(f"# guess {guess:g} K: {exc}", flush=True)
            results.append((guess, None, None, None))
    if comm.Get_rank() != 0:
        return 0
    print(f"#\n# {Path(args.potential).name} melting point at {args.pressure:g} bar (experiment at 0 bar: 1358 K)" + (" -- QUICK SMOKE, not a result" if
                                                                           args.quick else ""))
    for guess, tm, err, windows in results:
        if tm is None:
            print(f"#   guess {guess:7.1f} K: no melting temperature")
        else:
            tried = ", ".join(f"{w['window_K'][0]:g}-{w['window_K'][1]:g} ({w['outcome']})" for w in windows)
            print(f"#   guess {guess:7.1f} K: Tm = {tm:.1f} +- {err:.1f} K   windows {tried}")
    found = [r for r in results if r[1] is not None]
    if len(found) == 2:
        (_, t1, e1, _), (_, t2, e2, _) = found
        z = abs(t1 - t2) / (e1 ** 2 + e2 ** 2) ** 0.5
        print(f"# the two guesses differ by {abs(t1 - t2):.1f} K = {z:.2f} combined errors "
              f"({'consistent' if z < 3 else 'NOT consistent'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
