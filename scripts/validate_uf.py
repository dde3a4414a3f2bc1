#!/usr/bin/env python
"""The Uhlenbeck-Ford excess free energy as acemd's liquid route obtains it (switching the
UF fluid to the ideal gas), against calphy's tabulated UF free energies and the virial series.

    python scripts/validate_uf.py [--x 0.05 0.3 0.7] [--atoms 108] [--steps 5000] [--iterations 3]
                                  [--calphy /path/with/calphy/package]

For each reduced density x = rho (pi sigma^2)^(3/2) / 2: N atoms placed at random in a
periodic cube of that density, Langevin at T, then per iteration equilibrate with the
UF potential, switch UF -> ideal gas and back (the same machinery as the driver); the
reduced excess free energy beta F_ex / N = -(W_fw - W_bw) / 2 N kB T, mean +- standard
error over iterations.  Printed next to it:

* the two-term virial series B~_2 x + B~_3 x^2 / 2 with the exact coefficients
  (acemd.free_energy.uf_virial): right at low x, useless at liquid densities;
* calphy's value (``calphy.integrators.find_fe(p, x)``, a fit to the simulations of Paula
  Leite et al. 2016), if calphy can be imported: ``pip install --no-deps --target DIR
  calphy`` and ``--calphy DIR``.  calphy is not a dependency of acemd; only this
  cross-check reads it (its package __init__ needs more dependencies than the function,
  so the module is loaded without it).

The switching values include the finite-size and finite-switching-rate effects of N
atoms and ``--steps``; the dissipation (W_fw + W_bw) / 2 is printed to judge the latter.
"""
import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def calphy_reduced(directory, p, x):
    """beta F_ex / N from calphy's UF tables, or None when calphy cannot be loaded."""
    if directory is None:
        return None
    if "calphy" not in sys.modules:
        pkg = types.ModuleType("calphy")
        pkg.__path__ = [str(Path(directory) / "calphy")]
        sys.modules["calphy"] = pkg
    try:
        from calphy.integrators import find_fe
    except Exception as exc:            # noqa: BLE001 - a cross-check only: say why and go on
        print(f"# calphy not available ({exc})")
        return None
    return float(find_fe(p, x)[1])


def switching_excess(x, p, sigma, temperature, n_atoms, steps, eq_steps, iterations, timestep, damping, seed):
    from acemd.engine import Engine
    from acemd.forcefield import ForceField
    from acemd.free_energy import LambdaMixing, UhlenbeckFordTerm
    from acemd.free_energy.liquid import ZeroTerm
    from acemd.free_energy.switching import free_energy_difference, run_at_fixed_lambda, switch
    from acemd.integrators import LangevinBAOAB
    from acemd.simulation import initial_velocities
    from acemd.state import State
    from acemd.units import BOLTZMANN
    rho = x / (0.5 * (np.pi * sigma ** 2) ** 1.5)
    side = (n_atoms / rho) ** (1.0 / 3.0)
    rng = np.random.default_rng(seed)
    st = State(cell=np.eye(3) * side, pbc=np.array([True] * 3), ids=np.arange(n_atoms),
               species=np.zeros(n_atoms, int), positions=rng.random((n_atoms, 3)) * side,
               velocities=np.zeros((n_atoms, 3)), images=np.zeros((n_atoms, 3), int), species_names=["Cu"],
               masses_by_species=np.array([63.546]), n_atoms_total=n_atoms)
    mix = LambdaMixing(UhlenbeckFordTerm(temperature, p, sigma), ZeroTerm())
    eng = Engine(MPI.COMM_SELF, st, ForceField([mix]), skin=1.0)
    st.velocities = initial_velocities(MPI.COMM_SELF, st, temperature, seed, True)
    eng.compute_forces(force_rebuild=True)
    lang = LangevinBAOAB(timestep, temperature, damping, seed=seed + 1)
    lang.setup(eng)
    kt = BOLTZMANN * temperature
    values, dissipation = [], []
    for _ in range(iterations):
        run_at_fixed_lambda(eng, lang, mix, 0.0, eq_steps)
        fw = switch(eng, lang, mix, steps, forward=True)
        bw = switch(eng, lang, mix, steps, forward=False)
        df, q = free_energy_difference(fw, bw)
        values.append(-df / (n_atoms * kt))          # F_UF - F_ideal gas
        dissipation.append(q / (n_atoms * kt))
    v = np.array(values)
    err = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), err, float(np.mean(dissipation)), rho


def main(argv=None):
    from acemd.free_energy.uf_virial import series_terms
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--x", type=float_above(0.0, "a reduced density"),
                    nargs="+", default=[0.05, 0.3, 0.7], help="reduced densities")
    ap.add_argument("--p", type=int_at_least(1, "the UF exponent p"), default=50)
    ap.add_argument("--sigma", type=float_above(0.0, "the UF sigma in Angstrom"), default=1.5, help="Å")
    ap.add_argument("--temperature", type=float_above(0.0, "the temperature in K"), default=1500.0, help="K")
    ap.add_argument("--atoms", type=int_at_least(1, "the number of atoms"), default=108)
    ap.add_argument("--steps", type=int_at_least(1, "the number of steps"), default=5000, help="steps of each switch")
    ap.add_argument("--equilibration", type=int_at_least(0, "the equilibration steps"),
                    default=1000, help="steps at the UF end before each switch")
    ap.add_argument("--iterations", type=int_at_least(1, "the number of iterations"), default=3)
    ap.add_argument("--timestep", type=float_above(0.0, "the timestep in ps"), default=0.002, help="ps")
    ap.add_argument("--damping", type=float_above(0.0, "the damping time in ps"),
                    default=0.1, help="Langevin damping (ps)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--calphy", default=None, help="directory holding the calphy package (optional)")
    a = ap.parse_args(argv)
    from acemd.units import BOLTZMANN
    kt = BOLTZMANN * a.temperature
    print(f"# UF p = {a.p}, sigma = {a.sigma} A, T = {a.temperature} K (kB T = {kt:.6f} eV), {a.atoms} atoms, "
          f"{a.iterations} x ({a.equilibration} + 2 x {a.steps}) steps of {a.timestep} ps")
    print("#   x      rho(1/A^3)  bF_ex/N switching       dissip(kT)  virial B2+B3  calphy     "
          "switch-calphy (kT)  (meV/atom)")
    for x in a.x:
        t0 = time.perf_counter()
        f, err, q, rho = switching_excess(x, a.p, a.sigma, a.temperature, a.atoms, a.steps, a.equilibration,
                                          a.iterations, a.timestep, a.damping, a.seed)
        vir = sum(series_terms(x, a.p))
        ref = calphy_reduced(a.calphy, a.p, x)
        diff = "" if ref is None else f"{f - ref:+.5f} +- {err:.5f}  ({(f - ref) * kt * 1000:+.3f} +- {err * kt * 1000:.3f})"
        print(f"  {x:6.3f}  {rho:.5f}     {f:9.5f} +- {err:.5f}   {q:9.5f}   {vir:9.5f}    "
              f"{'-' if ref is None else f'{ref:9.5f}'}  {diff}   [{time.perf_counter() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
