#!/usr/bin/env python
"""Physical validation of the liquid route: liquid Cu with Cu-PBE-core-rep at 1500 K, 0 bar.

    python scripts/validate_free_energy_liquid.py [--quick] [--out DIR] [--atoms-repeat 4]
    mpiexec -n 2 python scripts/validate_free_energy_liquid.py

Runs ``[free_energy] mode = "liquid"`` (melt fcc Cu at 2500 K, quench to 1500 K, NPT for
the volume, then n_iterations of ACE <-> Uhlenbeck-Ford <-> ideal gas switches) with the
published Cu-PBE-core-rep potential (tests/data/potentials/Cu-PBE-core-rep.yace, which has
a stable liquid; Cu-I.yace has none and stops with a message) and prints:

* F and G (eV/atom) with their standard errors over the iterations, every part (ideal
  gas, UF excess by switching, ACE <- UF work, PV), the dissipations, the volume;
* the structure check: the mean Lechner-Dellago averaged q6 (freud) after the melt, the
  quench, the NPT and every lambda = 0 equilibration, against 0.25 (fcc 0.575, liquid Cu
  0.13-0.18), and the verdict "liquid" only if every one is below it and no warning says
  otherwise.

The fcc start is expanded to a = 3.80 A (13.7 A^3/atom, near the liquid's volume): in
the crystal's own volume (a = 3.63 A, 12.0 A^3/atom, ~170 kbar at 2500 K) 108 atoms did
not melt in 8 ps at 2500 K (no diffusion: the MSD stayed at 0.4 A^2), at 13.7 A^3/atom
they diffuse within 1 ps (scripts/liquid_evidence.py shows both).

Defaults are the production protocol of inputs/free_energy_cu_liquid.toml: 256 atoms,
melt and quench 10000 steps each, NPT blocks of 10000 steps, 3 iterations of 2 x 5000
equilibration + 4 x 20000 switching steps of 2 fs: ~300000 MD steps, of which ~190000
evaluate the ACE potential.  At ~150 us/atom/step for this potential on one core of this
machine that is ~2 h of ACE on one core (~1.2 h on 2 ranks), 3-4 h on a loaded machine.
``--quick`` (108 atoms, short stages: 2000 melt, 1000 quench, NPT blocks of 1500, 2
iterations of 300 + 1000-step switches, barostat 0.2 ps) takes ~7-15 min and checks the
machinery and the order of magnitude, not the converged number.  Its UF <-> ideal gas
switches take the default uf_switching_steps = 5 x 1000 (~30 meV/atom dissipation; with
1000 steps they put the UF excess ~25 meV/atom high, docs/free-energy.md).
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
POT = ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.yace"

FULL = dict(a=3.80, repeat=4,
            melt_steps=10000, quench_steps=10000, npt_steps=10000, npt_max_blocks=5, barostat_damping=1.0,
            n_iterations=3, equilibration_steps=5000, switching_steps=20000)
QUICK = dict(a=3.80, repeat=3,
             melt_steps=2000, quench_steps=1000, npt_steps=1500, npt_max_blocks=3, barostat_damping=0.2,
             n_iterations=2, equilibration_steps=300, switching_steps=1000)

TEMPLATE = """
[structure]
lattice = "fcc"
element = "Cu"
a = {a}
repeat = [{repeat}, {repeat}, {repeat}]

[potential]
file = "{pot}"

[free_energy]
mode = "liquid"
temperature = {temperature}
pressure = 0.0
timestep = 0.002
damping = 0.1
melt_temperature = 2500.0
melt_steps = {melt_steps}
quench_steps = {quench_steps}
npt_steps = {npt_steps}
npt_max_blocks = {npt_max_blocks}
barostat_damping = {barostat_damping}
pressure_tolerance = 200.0
uf_p = 50.0
uf_sigma = 1.5
n_iterations = {n_iterations}
equilibration_steps = {equilibration_steps}
switching_steps = {switching_steps}
progress_every = {progress}
report = "{out}/free_energy_liquid.yaml"
data = "{out}/free_energy_liquid.h5"
checkpoint = "{out}/free_energy_liquid.ckpt.h5"
"""


def main(argv=None):
    from mpi4py import MPI

    from acemd.config import parse_config
    from acemd.drivers.free_energy import FreeEnergyRun
    from acemd.free_energy.liquid import CRYSTAL_Q6BAR
    from acemd.analysis.cli import float_above, int_at_least   # option checks: exit 2, no traceback
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="108 atoms, short stages (~10 min)")
    ap.add_argument("--out", default="validate_liquid", help="directory of the report, data and checkpoint")
    ap.add_argument("--atoms-repeat", type=int_at_least(1, "the fcc repeat"),
                    default=None, help="fcc repeat (4 n^3 atoms) before melting")
    ap.add_argument("--temperature", type=float_above(0.0, "the temperature in K"), default=1500.0)
    ap.add_argument("--restart", default=None, help="continue from the checkpoint of an interrupted run")
    a = ap.parse_args(argv)
    comm = MPI.COMM_WORLD
    protocol = dict(QUICK if a.quick else FULL)
    if a.atoms_repeat:
        protocol["repeat"] = a.atoms_repeat
    out = Path(a.out).resolve()
    if comm.Get_rank() == 0:
        out.mkdir(parents=True, exist_ok=True)
    comm.Barrier()
    text = TEMPLATE.format(pot=POT.as_posix(), out=out.as_posix(), temperature=a.temperature,
                           progress=max(protocol["switching_steps"] // 2, 500), **protocol)
    path = out / "free_energy_liquid.toml"
    if comm.Get_rank() == 0:
        path.write_text(text)
    comm.Barrier()
    t0 = time.perf_counter()
    report = FreeEnergyRun(parse_config(text, path), text, path, comm=comm, restart=a.restart).run()
    if comm.Get_rank() != 0:
        return
    wall = time.perf_counter() - t0
    if "stopped_by" in report:
        print(f"# validation stopped: {report['message']}")
        sys.exit(2)
    acemd, res = report["acemd"], report["results"]
    q6 = acemd["structure_q6"]
    liquid = all(v < CRYSTAL_Q6BAR for v in q6.values()) and not any(
        ("crystallised" in w or "did not melt" in w) for w in acemd["warnings"])
    n = acemd["n_atoms"]
    print("#")
    print(f"# liquid Cu, Cu-PBE-core-rep, {n} atoms, {report['input']['temperature']:g} K, "
          f"{report['input']['pressure']:g} bar, {acemd['ranks']} rank(s), {'--quick' if a.quick else 'full'} "
          f"protocol, wall {wall / 60:.1f} min")
    print(f"#   F = {acemd['helmholtz_free_energy']:.5f} +- {acemd['helmholtz_free_energy_error']:.5f} eV/atom, "
          f"G = {acemd['gibbs_free_energy']:.5f} +- {acemd['gibbs_free_energy_error']:.5f} eV/atom")
    print(f"#   ideal gas {res['ideal_gas']:.5f}, UF excess {res['uf_excess']:.5f} +- {acemd['uf_excess_error']:.5f} "
          f"(x = {acemd['uf']['x']:.4f}), work {res['work']:+.5f} +- {acemd['work_error']:.5f}, PV {res['pv']:.6f}")
    diss = [(it["dissipation"], it["uf_dissipation"]) for it in acemd["iterations"]]
    print("#   dissipation per iteration (ACE<->UF, UF<->ideal gas, meV/atom): "
          + ", ".join(f"{1000 * d:.2f}/{1000 * g:.2f}" for d, g in diss))
    print(f"#   volume {report['average']['vol_atom']:.4f} A^3/atom; NPT mean pressure "
          f"{acemd['npt'].get('mean_pressure_bar', float('nan')):.0f} +- "
          f"{acemd['npt'].get('pressure_error_bar', float('nan')):.0f} bar")
    print("#   structure (mean averaged q6, crystal above %.2f): " % CRYSTAL_Q6BAR
          + ", ".join(f"{k} {v:.3f}" for k, v in q6.items()))
    for w in acemd["warnings"]:
        print(f"#   WARNING: {w}")
    print(f"#   verdict: {'liquid' if liquid else 'NOT a liquid throughout: the free energy is not that of the liquid'}")


if __name__ == "__main__":
    main()
