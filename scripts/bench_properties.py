#!/usr/bin/env python
"""Wall time of the phonon and QHA properties for fcc Cu (Cu-PBE-core-rep.ace) on 1 and 2 ranks,
against phonopy driving acemd's ASE calculator serially (docs/properties-phonons.md).

Three jobs, each timed whole (phonopy set-up, displaced supercells, forces, force constants,
bands/DOS or thermal properties and the QHA fit):

* phonons: one supercell (4 x 4 x 4 conventional cells, 256 atoms), bands along seekpath's path
  and the DOS on a 20^3 mesh;
* qha: 9 volumes of the same supercell, F_vib on a 20^3 mesh, phonopy's QHA (quantum and classical
  in acemd's route; phonopy's recipe: a phonopy object per volume, quantum only);
* forces: the displaced supercells' forces alone, for the QHA's 9 volumes, for a large cell
  (5 x 5 x 5 conventional, 500 atoms, one displacement) and for a low-symmetry one (the same with a
  vacancy, 499 atoms: every inequivalent atom displaced, tens of structures; the case where
  acemd's reuse of the perfect supercell's neighbours and local evaluation pay).

The reference runs in this process; acemd's route runs under ``mpiexec -n R`` for each R.

    python scripts/bench_properties.py                 # ranks 1 and 2
    python scripts/bench_properties.py --ranks 1 2 --repeat 3
    python scripts/bench_properties.py --battery       # also: the whole [properties] battery of
                                                       # inputs/properties_cu.toml + phonons + qha
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POTENTIAL = ROOT / "tests" / "data" / "potentials" / "Cu-PBE-core-rep.ace"
A0 = 3.63091                 # static lattice constant of Cu-PBE-core-rep (scripts/npt_lattice.py)
MESH = (20, 20, 20)


def _atoms():
    from ase.build import bulk
    return bulk("Cu", "fcc", a=A0, cubic=True)


def _vacancy_cell():
    """A low-symmetry case: fcc Cu 5 x 5 x 5 conventional cells with one vacancy (499 atoms) as its
    own phonon supercell; phonopy displaces every inequivalent atom."""
    cell = _atoms().repeat((5, 5, 5))
    del cell[0]
    return cell


def reference(repeat):
    """phonopy + acemd's ACECalculator, serially: the plain recipe."""
    from phonopy import Phonopy, PhonopyQHA
    from phonopy.structure.atoms import PhonopyAtoms
    from acemd.potential import ACEPotential
    from acemd.potential.calculator import ACECalculator
    from acemd.properties.phonons import band_path
    calc = ACECalculator(ACEPotential(POTENTIAL))
    atoms = _atoms()

    def phonopy_of(a, n=4):
        unit = PhonopyAtoms(symbols=a.get_chemical_symbols(), cell=a.cell.array,
                            scaled_positions=a.get_scaled_positions(), masses=a.get_masses())
        return Phonopy(unit, supercell_matrix=np.diag([n, n, n]), primitive_matrix="auto")

    def forces(p):
        from ase import Atoms
        out = []
        for sc in p.supercells_with_displacements:
            s = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
            s.calc = calc
            out.append(s.get_forces())
        return out

    warm = atoms.copy()
    warm.calc = calc
    warm.get_forces()
    times = {"phonons": [], "qha": [], "forces_qha": [], "forces_large": [], "forces_vacancy": []}
    for _ in range(repeat):
        t = time.perf_counter()
        p = phonopy_of(atoms)
        p.generate_displacements(distance=0.01)
        t1 = time.perf_counter()
        p.forces = forces(p)
        t_f = time.perf_counter() - t1
        p.produce_force_constants()
        segments, _, conn = band_path(p, 51)
        p.run_band_structure(segments, path_connections=conn)
        p.run_mesh(list(MESH), is_gamma_center=True)
        p.run_total_dos()
        times["phonons"].append(time.perf_counter() - t)
        t = time.perf_counter()
        vols, energies, fe, ent, cv = [], [], [], [], []
        t_forces = 0.0
        temps = np.arange(0, 1001, 10.0)
        for r in np.linspace(0.96, 1.10, 9):
            a = atoms.copy()
            a.set_cell(atoms.cell.array * r ** (1 / 3), scale_atoms=True)
            a.calc = calc
            energies.append(a.get_potential_energy() / 4)
            vols.append(a.get_volume() / 4)
            p = phonopy_of(a)
            p.generate_displacements(distance=0.01)
            t1 = time.perf_counter()
            p.forces = forces(p)
            t_forces += time.perf_counter() - t1
            p.produce_force_constants()
            p.run_mesh(list(MESH), is_gamma_center=True)
            p.run_thermal_properties(temperatures=temps, exclude_gamma_acoustic=True)
            tp = p.thermal_properties
            fe.append(tp.free_energy)
            ent.append(tp.entropy)
            cv.append(tp.heat_capacity)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            PhonopyQHA(volumes=vols, electronic_energies=energies, temperatures=temps, free_energy=np.array(fe).T,
                       cv=np.array(cv).T, entropy=np.array(ent).T, t_max=1000.0)
        times["qha"].append(time.perf_counter() - t)
        times["forces_qha"].append(t_forces)
        big = atoms.repeat(5)
        pb = phonopy_of(atoms, 5)
        pb.generate_displacements(distance=0.01)
        t = time.perf_counter()
        forces(pb)
        times["forces_large"].append(time.perf_counter() - t)
        del big
        pv = phonopy_of(_vacancy_cell(), 1)
        pv.generate_displacements(distance=0.01)
        times["n_vacancy"] = [len(pv.supercells_with_displacements)]
        t = time.perf_counter()
        forces(pv)
        times["forces_vacancy"].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


def worker(repeat):
    """acemd's route over COMM_WORLD; prints one JSON line on rank 0."""
    from mpi4py import MPI
    from acemd.potential import ACEPotential
    from acemd.potential.calculator import ACECalculator
    from acemd.properties import phonons as P
    from acemd.properties import qha as Q
    from acemd.properties.displaced_forces import DisplacedForces
    comm = MPI.COMM_WORLD
    pot = ACEPotential(POTENTIAL)
    calc = ACECalculator(pot)
    atoms = _atoms()

    def evaluate(structures):
        out = []
        for k, s in enumerate(structures):
            s = s.copy()
            s.calc = calc
            out.append({"energy": s.get_potential_energy(), "forces": s.get_forces()})
        return out
    warm = atoms.copy()
    warm.calc = calc
    warm.get_forces()
    times = {"phonons": [], "qha": [], "forces_qha": [], "forces_large": [], "forces_vacancy": []}
    for _ in range(repeat):
        P._PHONOPY_CACHE.clear()          # each job timed from scratch, as the reference's
        comm.Barrier()
        t = time.perf_counter()
        P.phonons_of(atoms, DisplacedForces(pot, comm).forces_of, supercell=[4, 4, 4], mesh=MESH)
        comm.Barrier()
        times["phonons"].append(time.perf_counter() - t)
        P._PHONOPY_CACHE.clear()
        t = time.perf_counter()
        ev = DisplacedForces(pot, comm)
        f_time = []

        def timed(structures):
            t1 = time.perf_counter()
            out = ev.forces_of(structures)
            f_time.append(time.perf_counter() - t1)
            return out
        Q.qha_of(atoms, evaluate, timed, supercell=[4, 4, 4], mesh=MESH, volume_range=(0.96, 1.10), volumes=9,
                 comm=comm)
        comm.Barrier()
        times["qha"].append(time.perf_counter() - t)
        times["forces_qha"].append(f_time[0])
        pb = P.make_phonopy(atoms, np.diag([5, 5, 5]))
        structures = P.displaced_supercells(pb)
        comm.Barrier()
        t = time.perf_counter()
        DisplacedForces(pot, comm).forces_of(structures)
        comm.Barrier()
        times["forces_large"].append(time.perf_counter() - t)
        structures = P.displaced_supercells(P.make_phonopy(_vacancy_cell(), np.eye(3, dtype=int)))
        comm.Barrier()
        t = time.perf_counter()
        DisplacedForces(pot, comm).forces_of(structures)
        comm.Barrier()
        times["forces_vacancy"].append(time.perf_counter() - t)
    if comm.Get_rank() == 0:
        print("TIMES " + json.dumps({k: min(v) for k, v in times.items()}), flush=True)


def battery(ranks, exe, env):
    """Wall time of ``acemd`` on inputs/properties_cu.toml with phonons and qha added, per rank count."""
    import tempfile
    text = (ROOT / "inputs" / "properties_cu.toml").read_text()
    text = text.replace('"../tests/data/', f'"{(ROOT / "tests" / "data").as_posix()}/')
    text = text.replace('"stacking_fault"]', '"stacking_fault", "phonons", "qha"]', 1)
    out = {}
    for r in ranks:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "battery.toml"
            path.write_text(text)
            t = time.perf_counter()
            proc = subprocess.run([exe, "-n", str(r), sys.executable, "-m", "acemd.cli", str(path)], cwd=tmp,
                                  capture_output=True, text=True, env=env)
            out[r] = time.perf_counter() - t
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-2000:])
                raise SystemExit(f"the battery on {r} rank(s) failed")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--battery", action="store_true", help="also time the whole battery (acemd + EMT reference)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=2, help="best of this many")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.repeat)
        return
    t0 = time.perf_counter()
    ref = reference(args.repeat)
    exe = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    ours = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for r in args.ranks:
        proc = subprocess.run([exe, "-n", str(r), sys.executable, __file__, "--worker", "--repeat", str(args.repeat)],
                              capture_output=True, text=True, env=env)
        line = [l for l in proc.stdout.splitlines() if l.startswith("TIMES ")]
        if proc.returncode != 0 or not line:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            raise SystemExit(f"acemd's route on {r} rank(s) failed")
        ours[r] = json.loads(line[0][6:])
    labels = {"phonons": "phonons, 256-atom supercell, bands + DOS",
              "qha": "QHA, 9 volumes x 256 atoms",
              "forces_qha": "  of which forces (9 supercells)",
              "forces_large": "forces, 500-atom supercell (1 displacement)",
              "forces_vacancy": f"forces, vacancy cell (499 atoms, {int(ref['n_vacancy'])} displacements)"}
    print(f"# fcc Cu, {POTENTIAL.name}; wall time (s), best of {args.repeat}; speed-up = phonopy+ACECalculator / acemd")
    print(f"{'job':46s} {'phonopy+calc':>12s} " + " ".join(f"{f'acemd {r}r':>10s} {'x':>6s}" for r in args.ranks))
    for k, lab in labels.items():
        cells = " ".join(f"{ours[r][k]:10.3f} {ref[k] / ours[r][k]:6.2f}" for r in args.ranks)
        print(f"{lab:46s} {ref[k]:12.3f} {cells}")
    if args.battery:
        walls = battery(args.ranks, exe, env)
        print("# whole battery (inputs/properties_cu.toml + phonons + qha, with the EMT reference), wall s: "
              + ", ".join(f"{r} rank(s) {w:.1f}" for r, w in walls.items()))
    print(f"# load average during the run: {os.getloadavg()[0]:.2f} (2 cores); total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
