#!/usr/bin/env python
"""Validation: the melting protocol on argon-like Lennard-Jones (truncated and shifted at
2.5 sigma), Tm at 0 bar against the literature, and Clausius-Clapeyron against a direct Tm.

    taskset -c 0 python scripts/validate_melting_lj.py [--repeat 4] [--out DIR] [--pressure2 1000]
    taskset -c 0 python scripts/validate_melting_lj.py --pressure2 10000 --pressure-steps 5 --no-guess-b --coexistence
    python scripts/validate_melting_lj.py --quick        # 32 atoms, tiny runs: a smoke check, no result

The potential (acemd.free_energy.lennard_jones, injected into every sub-run in place of the
ACE term, whose file only supplies the species label "Cu"; [masses] Cu = 39.948 amu) has
epsilon/kB = 119.8 K, sigma = 3.405 Å, so T* = T / 119.8 K and P* = P / 419.4 bar.

1. ``mode = "coexistence_line"`` from 0 bar to --pressure2: Tm(0 bar) by the crossing of the
   solid's and the liquid's G(T) (moving the window if needed), then dT/dP = T dV/dH by RK4
   with NPT state points of both phases.
2. ``mode = "melting_temperature"`` at --pressure2: the direct Tm there, against the line.
3. ``mode = "melting_temperature"`` at 0 bar from a second guess (--guess-b): the same Tm?
4. Direct coexistence at 0 bar (no free energies): a crystal and a liquid slab in one box, NPT
   at each --coexistence temperature; the crystal grows below Tm and melts above it.
Prints Tm(0) +- error, latent heat, dS, dV, Tm(P2) from the line and directly, and their
differences in units of the combined error.  256 atoms per phase, one core of the shared
machine: 20 min for 1 and 2, 18 min for 3 (three windows), 4-5 min for 4 (docs/phase-diagram.md, "Validation on Lennard-Jones", has the output and the
literature values for this truncation: LJTS, r_c = 2.5 sigma, shifted, no tail correction).
"""
import argparse
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"
EPS_K = 119.8                 # epsilon / kB (K)
P_UNIT_BAR = 419.4            # epsilon / sigma^3 (bar) for epsilon/kB = 119.8 K, sigma = 3.405 Å

#: run lengths (timestep 10 fs = 0.0046 tau)
FULL = dict(timestep=0.01, damping=0.2, barostat_damping=2.0, compressibility=5e-5, npt_steps=4000,
            npt_max_blocks=3, pressure_tolerance=20.0, spring_steps=4000, n_iterations=2, equilibration_steps=1000,
            switching_steps=5000, uf_switching_steps=15000, sweep_steps=10000, sweep_points=9, melt_steps=3000,
            quench_steps=3000, uf_sigma=2.2, progress_every=1000000)
QUICK = dict(FULL, npt_steps=500, npt_max_blocks=1, pressure_tolerance=1e9, spring_steps=500,
             equilibration_steps=100, switching_steps=500, uf_switching_steps=1000, sweep_steps=600,
             sweep_points=5, melt_steps=500, quench_steps=300)


def input_text(folder, mode, guess, window, pressure, repeat, run, attempts, pressure_final=None, steps=2,
               a_solid=5.48, a_liquid=5.75):
    keys = "\n".join(f"{k} = {v}" for k, v in run.items())
    extra = f"pressure_final = {pressure_final}\npressure_steps = {steps}\n" if pressure_final is not None else ""
    return f"""
[structure]
lattice = "fcc"
element = "Cu"
a = {a_solid}
repeat = [{repeat}, {repeat}, {repeat}]

[potential]
file = "{POTENTIAL.as_posix()}"

[masses]
Cu = 39.948

[free_energy]
mode = "{mode}"
temperature = {guess}
window = {window}
attempts = {attempts}
phases = [{{name = "solid", route = "solid"}},
          {{name = "liquid", route = "liquid", lattice = "fcc", element = "Cu", a = {a_liquid}, repeat = [{repeat}, {repeat}, {repeat}]}}]
pressure = {pressure}
{extra}report = "{(folder / 'melting.yaml').as_posix()}"
data = "{(folder / 'melting.h5').as_posix()}"
checkpoint = "{(folder / 'melting.ckpt.h5').as_posix()}"
{keys}
"""


def run_protocol(folder, text, comm, stream):
    from acemd.config import parse_config
    from acemd.drivers.phase_diagram import PhaseDiagramRun
    from acemd.free_energy.lennard_jones import injector
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "melting.toml"
    path.write_text(text)
    settings = parse_config(text, path)
    restart = folder / "melting.ckpt.h5"
    from acemd.drivers.free_energy import NoStableLiquidError
    from acemd.drivers.phase_diagram import NoCrossingError
    try:
        return PhaseDiagramRun(settings, text, path, comm=comm, stream=stream, prepare=injector(cutoff_sigmas=2.5),
                               restart=str(restart) if restart.exists() else None).run()
    except (NoCrossingError, NoStableLiquidError) as exc:
        if comm.Get_rank() == 0:
            print(f"# {folder.name}: {exc}", flush=True)
        return None


def _simulation(text, path, comm):
    from acemd.config import parse_config
    from acemd.free_energy.lennard_jones import LennardJonesTerm
    from acemd.simulation import Simulation
    sim = Simulation(parse_config(text, path), text, path, comm=comm, stream=None)
    term = LennardJonesTerm(cutoff_sigmas=2.5)
    sim.term = term
    sim.set_terms([term])
    return sim


def _structure_text(structure):
    return f"""
[structure]
{structure}

[potential]
file = "{POTENTIAL.as_posix()}"

[masses]
Cu = 39.948

[md]
steps = 1
"""


def _q6(sim):
    from acemd.free_energy.liquid import mean_averaged_q6
    atoms = sim.gather_atoms()
    return sim.comm.bcast(None if atoms is None else mean_averaged_q6(atoms))


def direct_coexistence(folder, temperatures, repeat, steps, comm, a=5.48, gap=3.0, seed=11):
    """An independent check of Tm (no free energies): a crystal slab and a liquid slab in one
    periodic box (repeat x repeat x 2 repeat fcc cells, two (100) interfaces), NPT at 0 bar with
    each cell axis rescaled on its own, at each temperature.  Below Tm the crystal grows and
    the potential energy falls (the latent heat goes to the thermostat); above, it melts and
    the energy rises; the sign of U(end) - U(10 %) says which (the tail slope is ~0 once a phase has
    taken over the box).  Returns [(T, dU/dt after 10 % (meV/atom/ps), U at 10 %, U at the end, final q6 bar)]."""
    import numpy as np
    from ase.io import write

    from acemd.integrators import LangevinBAOAB, StochasticCellRescaling
    from acemd.simulation import initial_velocities
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for T in temperatures:
        # the liquid slab: the crystal's cell melted at 2 T (NVT), then cooled to T
        text = _structure_text(f'lattice = "fcc"\nelement = "Cu"\na = {a}\nrepeat = [{repeat}, {repeat}, {repeat}]')
        liq = _simulation(text, folder / "liquid.toml", comm)
        for t_stage, n in ((2.0 * T, 3000), (T, 1000)):
            lang = LangevinBAOAB(0.01, t_stage, 0.2, seed=seed)
            liq.state.velocities = initial_velocities(comm, liq.state, t_stage, seed, True)
            liq.engine.compute_forces(force_rebuild=True)
            lang.setup(liq.engine)
            for _ in range(n):
                lang.step(liq.engine)
        melt = liq.gather_atoms()
        if comm.Get_rank() == 0:
            from ase.build import bulk
            solid = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
            lz = solid.cell[2, 2]
            zl = np.mod(melt.positions[:, 2], lz)
            melt.positions[:, 2] = lz - a / 2 + gap + zl          # gap to the last and first crystal planes
            both = solid + melt
            both.set_cell([solid.cell[0, 0], solid.cell[1, 1], 2 * lz - a / 2 + 2 * gap])
            write(folder / f"two_phase_{T:g}K.xyz", both, format="extxyz")
        comm.Barrier()
        sim = _simulation(_structure_text(f'file = "{(folder / f"two_phase_{T:g}K.xyz").as_posix()}"'),
                          folder / "two_phase.toml", comm)
        sim.state.velocities = initial_velocities(comm, sim.state, T, seed + 1, True)
        integ = StochasticCellRescaling(0.01, T, 0.0, damping=0.2, barostat_damping=2.0, coupling="aniso",
                                        compressibility_per_bar=5e-5, seed=seed + 2)
        sim.engine.compute_forces(force_rebuild=True)
        integ.setup(sim.engine)
        n_atoms = sim.state.n_atoms_total
        u = []
        for k in range(1, steps + 1):
            integ.step(sim.engine)
            if k % 50 == 0:
                u.append(sim.engine.potential_energy / n_atoms)
        u = np.asarray(u)
        tail = u[len(u) // 10:]                       # after the gaps at the interfaces closed
        t_ps = np.arange(len(tail)) * 50 * 0.01
        slope = np.polyfit(t_ps, tail, 1)[0] * 1e3
        q6 = _q6(sim)
        out.append((T, slope, tail[0], tail[-1], q6))
    return out


def _verdict(du, q6):
    """The energy change and the final structure must agree (a crystal: averaged q6 above 0.25)."""
    from acemd.free_energy.liquid import CRYSTAL_Q6BAR
    if du < 0 and q6 > CRYSTAL_Q6BAR:
        return "crystal grows (T < Tm)"
    if du > 0 and q6 < CRYSTAL_Q6BAR:
        return "crystal melts (T > Tm)"
    return "undecided (energy and structure disagree, or both phases remain)"


def _windows(rep):
    return ", ".join(f"{w['window_K'][0]:g}-{w['window_K'][1]:g} ({w['outcome']})" for w in rep["windows"])


def main(argv=None):
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="validate_melting_lj", help="output folder (a rerun continues from it)")
    ap.add_argument("--repeat", type=int_at_least(1, "the repeat count"),
                    default=4, help="fcc cells per edge (4: 256 atoms per phase)")
    ap.add_argument("--guess", type=float_above(0.0, "the temperature guess in K"),
                    default=78.0, help="Tm guess at 0 bar (K)")
    ap.add_argument("--guess-b", type=float_above(0.0, "the temperature guess in K"),
                    default=68.0, help="a second guess at 0 bar (K): Tm must not depend on it")
    ap.add_argument("--window", type=float_above(0.0, "the window half-width in K"),
                    default=8.0, help="half-width of the windows (K)")
    ap.add_argument("--pressure2", type=float, default=1000.0, help="second pressure (bar)")
    ap.add_argument("--pressure-steps", type=int_at_least(1, "the number of RK4 steps"),
                    default=2, help="RK4 steps of the coexistence line to --pressure2")
    ap.add_argument("--no-guess-b", action="store_true", help="skip the second-guess protocol at 0 bar (step 3)")
    ap.add_argument("--quick", action="store_true", help="smoke check: 32 atoms, tiny runs (not a result)")
    ap.add_argument("--coexistence", type=float_above(0.0, "a temperature in K"),
                    nargs="*", default=[70.0, 72.0, 74.0, 76.0, 78.0],
                    help="temperatures (K) of the direct two-phase check at 0 bar (no free energies); none: skip")
    ap.add_argument("--coexistence-steps", type=int_at_least(1, "the number of steps"), default=30000)
    ap.add_argument("--verbose", action="store_true", help="the protocols' own progress lines")
    args = ap.parse_args(argv)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    repeat = 2 if args.quick else args.repeat
    run = QUICK if args.quick else FULL
    out = Path(args.out).resolve()
    stream = sys.stdout if args.verbose else io.StringIO()
    t0 = time.perf_counter()

    def say(line):
        if comm.Get_rank() == 0:
            print(line, flush=True)

    def stamp():
        return f"[{time.perf_counter() - t0:6.0f} s]"
    say(f"# LJTS (r_c = 2.5 sigma, shifted) argon-like, {4 * repeat ** 3} atoms per phase" +
        (" -- QUICK SMOKE, not a result" if args.quick else ""))
    # 1. Tm at 0 bar and the coexistence line to pressure2
    line_rep = run_protocol(out / "line", input_text(out / "line", "coexistence_line", args.guess, args.window, 0.0,
                                                     repeat, run, 4, pressure_final=args.pressure2,
                                                     steps=args.pressure_steps), comm, stream)
    if line_rep is None:
        return 1
    res = line_rep["result"]
    line = res["coexistence_line"]
    t_line, e_line = line["temperature_K"][-1], line["error_K"][-1]
    say(f"# {stamp()} 0 bar, guess {args.guess:g} K: Tm = {res['temperature_K']:.2f} +- {res['error_K']:.2f} K "
        f"(T* = {res['temperature_K'] / EPS_K:.4f} +- {res['error_K'] / EPS_K:.4f}); windows {_windows(line_rep)}")
    eps = EPS_K * 8.617333262e-5
    say(f"#   latent heat {res['latent_heat_eV_atom']:.5f} eV/atom = {res['latent_heat_eV_atom'] / eps:.3f} epsilon "
        f"(fits: {res['latent_heat_fit_eV_atom'] / eps:.3f} +- {res['latent_heat_fit_error_eV_atom'] / eps:.3f} epsilon), "
        f"dS = {res['delta_entropy_kB_atom']:.3f} kB/atom, dV = {res['delta_volume_A3_atom']:+.3f} A^3/atom "
        f"(dV* = {res['delta_volume_A3_atom'] / 3.405 ** 3:+.4f}), stable below: {res['stable_below']}")
    for p, t, e, e0, es in zip(line["pressure_bar"], line["temperature_K"], line["error_K"],
                               line.get("error_from_start_K", line["error_K"]),
                               line.get("error_from_state_points_K", [0.0] * len(line["error_K"]))):
        say(f"#   coexistence line: {p:8.1f} bar (P* = {p / P_UNIT_BAR:.3f}): T = {t:.2f} +- {e:.2f} K "
            f"(T* = {t / EPS_K:.4f}; error from Tm(0) {e0:.2f}, from the state points {es:.2f})")
    # 2. the direct Tm at pressure2
    guess2 = 5.0 * round(t_line / 5.0)
    # the Uhlenbeck-Ford sigma follows the liquid's density so that x = rho (pi sigma^2)^(3/2) / 2 stays
    # where it was at 0 bar (the line's first and last state points give the liquid's volume)
    v_first, v_last = (q["liquid"]["volume"] for q in (line["state_points"][0], line["state_points"][-1]))
    sigma2 = run["uf_sigma"] * (v_last / v_first) ** (1.0 / 3.0)
    say(f"#   direct run at {args.pressure2:g} bar: guess {guess2:g} K, UF sigma {sigma2:.3f} A (liquid volume "
        f"{v_first:.3f} -> {v_last:.3f} A^3/atom along the line)")
    direct = run_protocol(out / "direct", input_text(out / "direct", "melting_temperature", guess2,
                                                     args.window * guess2 / args.guess, args.pressure2, repeat,
                                                     dict(run, uf_sigma=round(sigma2, 4)), 4),
                          comm, stream)
    d = direct["result"] if direct else {"temperature_K": float("nan"), "error_K": float("nan"),
                                         "latent_heat_eV_atom": float("nan"), "delta_entropy_kB_atom": float("nan"),
                                         "delta_volume_A3_atom": float("nan")}
    direct = direct or {"windows": []}
    say(f"# {stamp()} {args.pressure2:g} bar direct: Tm = {d['temperature_K']:.2f} +- {d['error_K']:.2f} K "
        f"(T* = {d['temperature_K'] / EPS_K:.4f}); windows {_windows(direct)}")
    say(f"#   latent heat {d['latent_heat_eV_atom'] / eps:.3f} epsilon, dS = {d['delta_entropy_kB_atom']:.3f} kB/atom, "
        f"dV = {d['delta_volume_A3_atom']:+.3f} A^3/atom")
    diff = t_line - d["temperature_K"]
    comb = (e_line ** 2 + d["error_K"] ** 2) ** 0.5
    say(f"# Clausius-Clapeyron {t_line:.2f} +- {e_line:.2f} K vs direct {d['temperature_K']:.2f} +- {d['error_K']:.2f} K "
        f"at {args.pressure2:g} bar: difference {diff:+.2f} K = {diff / comb:+.2f} combined errors; Tm rises by "
        f"{100 * (d['temperature_K'] / res['temperature_K'] - 1):.1f} %")
    # 3. a second guess at 0 bar
    if not args.no_guess_b:
        other = run_protocol(out / "guess_b", input_text(out / "guess_b", "melting_temperature", args.guess_b,
                                                         args.window, 0.0, repeat, run, 4), comm, stream)
        b = other["result"] if other else {"temperature_K": float("nan"), "error_K": float("nan")}
        other = other or {"windows": []}
        diff = b["temperature_K"] - res["temperature_K"]
        comb = (b["error_K"] ** 2 + res["error_K"] ** 2) ** 0.5
        say(f"# {stamp()} 0 bar, guess {args.guess_b:g} K: Tm = {b['temperature_K']:.2f} +- {b['error_K']:.2f} K; "
            f"windows {_windows(other)}; vs guess {args.guess:g} K: {diff:+.2f} K = {diff / comb:+.2f} combined errors")
    # 4. direct coexistence at 0 bar (no free energies)
    if args.coexistence:
        steps = 2000 if args.quick else args.coexistence_steps
        say(f"# direct coexistence at 0 bar ({4 * repeat ** 3} + {4 * repeat ** 3} atoms, {steps} steps = "
            f"{steps * 0.01:g} ps each, NPT each axis on its own): U from 10 % of the run to its end")
        for T, slope, u0, u1, q6 in direct_coexistence(out / "coexistence", args.coexistence, repeat, steps, comm):
            say(f"#   {T:7.2f} K (T* = {T / EPS_K:.4f}): U {u0:.5f} -> {u1:.5f} eV/atom ({(u1 - u0) * 1e3:+.2f} meV/atom; "
                f"last 90 %: {slope:+.4f} meV/atom/ps), final averaged q6 {q6:.3f}: "
                f"{_verdict(u1 - u0, q6)}")
    say(f"# {stamp()} done on {comm.Get_size()} rank(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
