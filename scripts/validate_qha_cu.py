#!/usr/bin/env python
"""The QHA's Frenkel-Ladd cross-check for fcc Cu with Cu-PBE-core-rep.ace (docs/properties-phonons.md).

The classical quasi-harmonic free energy (phonopy, acemd's forces) against acemd's [free_energy]
solid route (Frenkel-Ladd, fixed centre of mass) at 100, 200 and 300 K and 0 bar, on the phonon
supercell (4 x 4 x 4 conventional cells, 256 atoms by default); the route's NPT volume against the
QHA's.  Prints the table (FL - QHA with its error, split into the anharmonic part, the finite-cell
part and the volume term; V_MD vs V_QHA) and the wall time.  Run on several ranks:

    mpiexec -n 2 python scripts/validate_qha_cu.py
    mpiexec -n 2 python scripts/validate_qha_cu.py --repeat 3 --steps 2000 --iterations 2   # quicker
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--potential", default=str(ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace"))
    ap.add_argument("--repeat", type=int, default=4, help="conventional cells per side (FL cell = phonon supercell)")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[100.0, 200.0, 300.0])
    ap.add_argument("--steps", type=int, default=4000, help="switching steps (NPT and springs: as many)")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--mesh", type=int, default=24)
    ap.add_argument("--out", default="qha_cu_validation")
    ap.add_argument("--reuse", action="store_true",
                    help="read the Frenkel-Ladd reports an earlier run left in --out instead of running MD")
    args = ap.parse_args()

    from ase.build import bulk
    from scipy.optimize import minimize_scalar

    from acemd.potential import ACEPotential
    from acemd.potential.calculator import ACECalculator
    from acemd.properties import qha as Q
    from acemd.properties import qha_check as C
    from acemd.properties.displaced_forces import DisplacedForces

    comm = MPI.COMM_WORLD
    say = print if comm.Get_rank() == 0 else (lambda *a: None)
    t0 = time.perf_counter()
    pot = ACEPotential(args.potential)
    calc = ACECalculator(pot)

    def energy(a):
        atoms = bulk("Cu", "fcc", a=a)
        atoms.calc = calc
        return atoms.get_potential_energy()
    a0 = minimize_scalar(energy, bracket=(3.55, 3.63, 3.72), tol=1e-12).x
    say(f"# {Path(args.potential).name}: static a0 = {a0:.5f} Å, {comm.Get_size()} rank(s)")

    def evaluate(structures):
        out = []
        for s in structures:
            s = s.copy()
            s.calc = calc
            out.append({"energy": s.get_potential_energy(), "forces": s.get_forces()})
        return out
    atoms = bulk("Cu", "fcc", a=a0, cubic=True)
    forces = DisplacedForces(pot, comm)
    sc = [args.repeat] * 3
    mesh = (args.mesh,) * 3
    t = time.perf_counter()
    res = Q.qha_of(atoms, evaluate, forces.forces_of, supercell=sc, mesh=mesh, t_max=600.0, t_step=10.0,
                   comm=comm, say=say)
    t_qha = time.perf_counter() - t
    say(f"# QHA: {len(res.volumes)} volumes, {t_qha:.1f} s")
    for T in args.temperatures:
        vq, gq, bq, cq, Bq = res.at("quantum", T)
        vc, gc, bc, cc, Bc = res.at("classical", T)
        say(f"# QHA {T:5.0f} K: V quantum {vq:.4f} classical {vc:.4f} Å^3/atom; G quantum {gq:.5f} classical "
            f"{gc:.5f} eV/atom (classical - quantum {1e3 * (gc - gq):+.3f} meV/atom); beta {1e6 * bc:.1f} 1e-6/K; "
            f"Cp {cc:.3f} kB; B {Bc:.1f} GPa")
    t = time.perf_counter()
    rows = C.cross_check(atoms, args.potential, res, forces.forces_of, evaluate, args.temperatures,
                         Path(args.out), comm, supercell=sc, mesh=mesh, steps=args.steps, iterations=args.iterations,
                         say=say, reuse=args.reuse)
    t_fl = time.perf_counter() - t
    say("\n# QHA (classical) vs Frenkel-Ladd, meV/atom; volumes Å^3/atom")
    say(C.format_table(rows))
    for r in rows:
        if r["warnings"]:
            say(f"# {r['T']:g} K warnings: " + "; ".join(r["warnings"]))
        say(f"# {r['T']:g} K: dissipation {1e3 * r['dissipation']:.3f} meV/atom, route wall {r['wall_s']:.0f} s")
    say(f"# wall time: total {time.perf_counter() - t0:.0f} s (QHA {t_qha:.0f} s, Frenkel-Ladd {t_fl:.0f} s) on "
        f"{comm.Get_size()} rank(s); {rows[0]['n_atoms']} atoms, {args.steps}-step switches x {args.iterations}")


if __name__ == "__main__":
    main()
