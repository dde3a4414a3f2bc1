"""Phonons and the QHA on 2 ranks equal 1 rank (acemd.properties.phonons, .qha).

Launches ``mpiexec -n 2`` on a small script that computes the force constants of displaced
supercells (several volumes, several displacements) and the QHA curves over COMM_WORLD and
over COMM_SELF on every rank, and compares them (printed; identical numbers expected, since
each structure is computed the same way wherever it runs).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SCRIPT = r'''
import numpy as np
from ase.build import bulk
from mpi4py import MPI
from acemd.potential import ACEPotential
from acemd.potential.calculator import ACECalculator
from acemd.properties import phonons as P, qha as Q
from acemd.properties.displaced_forces import DisplacedForces

pot = ACEPotential("{potential}")
calc = ACECalculator(pot)

def evaluate(structures):
    out = []
    for s in structures:
        s = s.copy(); s.calc = calc
        out.append({{"energy": s.get_potential_energy(), "forces": s.get_forces()}})
    return out

atoms = bulk("Cu", "hcp", a=2.56, c=4.18)          # hcp: several displacements per volume
world = MPI.COMM_WORLD
results = {{}}
for name, comm in (("world", world), ("self", MPI.COMM_SELF)):
    ev = DisplacedForces(pot, comm, local=True)
    ph = P.phonons_of(atoms, ev.forces_of, supercell=[2, 2, 2], mesh=(6, 6, 6), band_points=5,
                      subtract_residual_forces=True)
    res = Q.qha_of(atoms, evaluate, ev.forces_of, supercell=[2, 2, 2], mesh=(6, 6, 6), t_max=300.0, t_step=50.0,
                   volume_range=(0.97, 1.05), volumes=5, comm=comm)
    results[name] = (ph.phonon.force_constants, res.curves["classical"]["G"], res.curves["quantum"]["V"],
                     ph.n_structures)
fc = np.abs(results["world"][0] - results["self"][0]).max()
g = np.abs(results["world"][1] - results["self"][1]).max()
v = np.abs(results["world"][2] - results["self"][2]).max()
if world.Get_rank() == 0:
    print(f"RESULT 2 ranks vs 1: max |dFC| {{fc:.1e}} eV/A^2, max |dG_classical| {{g:.1e}} eV/atom, "
          f"max |dV| {{v:.1e}} A^3/atom ({{results['world'][3]}} supercells)")
assert fc == 0.0 and g == 0.0 and v == 0.0
'''


def test_two_ranks_equal_one(tmp_path):
    exe = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
    if exe is None:
        pytest.fail("mpiexec not found: install the 'mpich' wheel (a dependency of acemd)")
    script = tmp_path / "ranks.py"
    script.write_text(SCRIPT.format(potential=(TESTS / "data" / "potentials" / "Cu-I.yace").as_posix()))
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(TESTS.parent))
    proc = subprocess.run([exe, "-n", "2", sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=env)
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0
    assert "RESULT 2 ranks vs 1" in proc.stdout
