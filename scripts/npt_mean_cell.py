#!/usr/bin/env python
"""How fast the NPT mean cell of [elastic] at temperature > 0 converges, per barostat.

fcc Cu with Cu-I.yace relaxed at 0 K, velocities at T, then the [elastic] NPT stage's
integrator (npt-mtk or npt-crescale, iso) for a number of steps.  Prints the pressure and
volume per 1 ps window, the second-half means, the volume's standard deviation against the
NPT value sqrt(kT beta / V) (beta from the 0 K bulk modulus), its integrated autocorrelation
time and the resulting standard error of the second-half mean volume and, via B, of the
pressure at the mean cell.  A first-order barostat (npt-crescale) relaxes the volume in
tau_p x (beta_true / compressibility), so the mean of its slow volume noise converges as
sqrt(2 tau_int / t); the MTK cell oscillates and its mean converges much faster.

    python scripts/npt_mean_cell.py --barostat npt-crescale --temperature 900 --steps 30000
    python scripts/npt_mean_cell.py --barostat npt-mtk --temperature 900 --steps 6000
"""
from __future__ import annotations

import argparse
import io
import math
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-I.yace"


def integrated_time(x, dt):
    """tau_int (ps) = dt (1/2 + sum of the autocorrelation up to its first negative value)."""
    x = np.asarray(x) - np.mean(x)
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n] / (x.var() * np.arange(n, 0, -1))
    cut = int(np.argmax(acf < 0)) if np.any(acf < 0) else n
    return dt * (0.5 + acf[1:cut].sum())


def main():
    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.elastic import ElasticRun
    from acemd.simulation import initial_velocities
    from acemd.units import BOLTZMANN, EV_PER_A3_TO_GPA
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--barostat", default="npt-crescale", choices=["npt-mtk", "npt-crescale"])
    p.add_argument("--temperature", type=float_above(0.0, "the temperature in K"), default=900.0)
    p.add_argument("--damping", type=float_above(0.0, "the damping time in ps"),
                   default=1.0, help="barostat_damping (ps)")
    p.add_argument("--compressibility", type=float_above(0.0, "the compressibility in 1/bar"),
                   default=1e-6, help="1/bar (npt-crescale)")
    p.add_argument("--repeat", type=int_at_least(1, "the repeat count"),
                   default=2, help="fcc cubic cells per edge (2: 32 atoms)")
    p.add_argument("--steps", type=int_at_least(1, "the number of steps"), default=6000)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    dt = 0.002
    folder = Path(tempfile.mkdtemp(prefix="acemd-npt-mean-cell-"))
    text = f"""
[potential]
file = "{POTENTIAL.as_posix()}"
[structure]
lattice = "fcc"
element = "Cu"
a = 3.62
repeat = [{args.repeat}, {args.repeat}, {args.repeat}]
[elastic]
temperature = {args.temperature}
barostat = "{args.barostat}"
barostat_damping = {args.damping}
compressibility = {args.compressibility}
coupling = "iso"
timestep = {dt}
report = "x.json"
data = "x.h5"
[checkpoint]
file = "x.ckpt.h5"
[thermo]
file = "x.log"
"""
    path = folder / "x.toml"
    path.write_text(text)
    run = ElasticRun(parse_config(text, path), text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    sim = run.simulation
    run.relax()
    snap, v0 = sim.snapshot(), sim.state.volume
    pressures = []
    for d in (1e-3, -1e-3):
        sim.restore(snap)
        sim.deform(np.eye(3) * (1 + d) ** (1 / 3))
        sim.compute()
        pressures.append(np.trace(sim.engine.virial) / 3 / sim.state.volume)
    sim.restore(snap)
    bulk = -(pressures[0] - pressures[1]) / 2e-3                    # eV/A^3, 0 K
    sim.state.velocities = initial_velocities(sim.comm, sim.state, args.temperature, args.seed, True)
    integ = run.finite_t._integrator("npt")
    sim.compute(force_rebuild=True)
    integ.setup(sim.engine)
    n = sim.state.n_atoms_total
    pressure, volume = np.empty(args.steps), np.empty(args.steps)
    for k in range(args.steps):
        integ.step(sim.engine)
        eng = sim.engine
        pressure[k] = np.trace(eng.kinetic_tensor() + eng.virial) / 3 / sim.state.volume * EV_PER_A3_TO_GPA
        volume[k] = sim.state.volume / n
    print(f"{args.barostat}, {n} atoms, {args.temperature:g} K, barostat_damping {args.damping} ps, "
          f"{args.steps} steps of {dt} ps; 0 K: V {v0 / n:.4f} A^3/atom, B {bulk * EV_PER_A3_TO_GPA:.1f} GPa")
    per = int(round(1.0 / dt))
    for k in range(0, args.steps, per):
        print(f"  {k * dt:5.1f}-{(k + per) * dt:5.1f} ps: <P> {pressure[k:k + per].mean():+.3f} GPa, "
              f"<V> {volume[k:k + per].mean():.4f} A^3/atom")
    half = volume[args.steps // 2:]
    kt = BOLTZMANN * args.temperature
    expected_rel = math.sqrt(kt / (bulk * half.mean() * n))
    tau = integrated_time(half, dt)
    err = half.std() * math.sqrt(2 * tau / (dt * len(half)))
    print(f"second half: <V> {half.mean():.4f} A^3/atom, <P> {pressure[args.steps // 2:].mean():+.3f} GPa")
    print(f"  V standard deviation {half.std() / half.mean():.2e} (NPT: sqrt(kT/(B V)) = {expected_rel:.2e}); "
          f"integrated autocorrelation time {tau:.3f} ps")
    print(f"  standard error of the second-half mean: {err:.4f} A^3/atom, i.e. "
          f"{bulk * EV_PER_A3_TO_GPA * err / half.mean():.2f} GPa of pressure at the mean cell")


if __name__ == "__main__":
    main()
