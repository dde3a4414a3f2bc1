"""`acemd fit` end to end: teacher-student recovery, the written files are the fitted model, the
Bayesian noise estimate, and the same coefficients on 1, 2 and 3 MPI ranks."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from mpi4py import MPI

from acemd.fit.basis import build_basis
from acemd.fit.config import read_fit_input
from acemd.fit.run import fit, run_fit
from acemd.potential import ACEPotential
from acemd.potential.bbasis import read_bbasis_yaml
from acemd.potential.calculator import ACECalculator

POTENTIAL = {
    "deltaSplineBins": 0.001,
    "elements": ["Cu"],
    "embeddings": {"ALL": {"npot": "FinnisSinclairShiftedScaled", "fs_parameters": [1, 1], "ndensity": 1}},
    "bonds": {"ALL": {"radbase": "SBessel", "radparameters": [5.25], "rcut": 4.6, "dcut": 0.01}},
    "functions": {"ALL": {"nradmax_by_orders": [5, 3, 2, 1], "lmax_by_orders": [0, 2, 2, 1]}},
}

INPUT = """\
seed: 3
potential:
  deltaSplineBins: 0.001
  elements: [Cu]
  embeddings:
    ALL: {{npot: FinnisSinclairShiftedScaled, fs_parameters: [1, 1], ndensity: 1}}
  bonds:
    ALL: {{radbase: SBessel, radparameters: [5.25], rcut: 4.6, dcut: 0.01}}
  functions:
    ALL: {{nradmax_by_orders: [5, 3, 2, 1], lmax_by_orders: [0, 2, 2, 1]}}
data:
  filename: data.traj
  test_size: {test_size}
fit:
  loss: {{kappa: {kappa}, L2_coeffs: {l2}, kappa_stress: {kappa_stress}}}
  solver: {solver}
  committee: {committee}
output:
  folder: out
  potential_file: fitted.yaml
"""


def _teacher(seed=11):
    """A linear ACE of the test basis with random coefficients (spec order) and its calculator."""
    spec = build_basis(POTENTIAL, source="teacher")
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(0.0, 0.05, (n, 1)) for n in spec.nfuncs]
    blocks[0][0, 0] = -1.0                      # a bound crystal: -ish eV/atom from the 2-body part
    model = spec.to_potential(blocks)
    return spec, blocks, ACECalculator(ACEPotential.from_model(model, source="teacher"))


def _structures(n, seed, natoms_each=None):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        lattice = ("fcc", "bcc", "hcp")[k % 3] if natoms_each is None else "fcc"
        a = {"fcc": 3.6, "bcc": 2.88, "hcp": 2.55}[lattice] * rng.uniform(0.96, 1.05)
        atoms = bulk("Cu", lattice, a=a, cubic=lattice != "hcp") if lattice != "hcp" else bulk("Cu", "hcp", a=a)
        atoms = atoms.repeat((2, 2, 2)) if natoms_each is None else atoms.repeat((2, 2, 2))
        strain = np.eye(3) + rng.normal(0.0, 0.015, (3, 3))
        atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
        out.append(atoms)
    return out


def _label(structures, calc, rng=None, sigma_e=0.0, sigma_f=0.0):
    labelled = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calc
        e = atoms.get_potential_energy()
        f = atoms.get_forces().copy()
        s = atoms.get_stress().copy()
        if rng is not None:
            e += sigma_e * len(atoms) * rng.standard_normal()
            f += sigma_f * rng.standard_normal(f.shape)
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        labelled.append(atoms)
    return labelled


def _setup(tmp_path, labelled, **kw):
    opts = dict(test_size=0, kappa=0.5, l2=0.0, kappa_stress=0.0, solver="ridge", committee=0)
    opts.update(kw)
    write(tmp_path / "data.traj", labelled)   # binary: full precision (extxyz keeps 8 decimals)
    (tmp_path / "input.yaml").write_text(INPUT.format(**opts))
    return read_fit_input(tmp_path / "input.yaml")


def _bbasis_order_coefficients(spec, blocks):
    return np.concatenate([blocks[mu][spec.bbasis_order[mu], 0] for mu in range(len(blocks))])


@pytest.mark.parametrize("solver,kappa_stress", [("ridge", 0.0), ("ridge", 0.3), ("bayesian", 0.3)])
def test_teacher_student_recovers_coefficients(tmp_path, solver, kappa_stress):
    """Noise-free data of a linear ACE of the same basis: the student predicts like the teacher to
    round-off on unseen structures, and its coefficients equal the teacher's to the round-off that
    the normal equations allow (machine epsilon times the condition number)."""
    spec, blocks, teacher = _teacher()
    labelled = _label(_structures(18, seed=1), teacher)
    settings = _setup(tmp_path, labelled, solver=solver, kappa_stress=kappa_stress)
    result = fit(settings, comm=MPI.COMM_SELF)
    truth = _bbasis_order_coefficients(spec, blocks)
    rel = np.abs(result.coefficients - truth).max() / np.abs(truth).max()
    cond = result.solution.condition_number
    student = ACECalculator(ACEPotential.from_model(spec.to_potential(
        spec.coefficient_blocks(result.coefficients)), source="student"))
    de = df = 0.0
    for atoms in _structures(4, seed=99):
        a, b = atoms.copy(), atoms.copy()
        a.calc, b.calc = teacher, student
        de = max(de, abs(a.get_potential_energy() - b.get_potential_energy()) / len(a))
        df = max(df, np.abs(a.get_forces() - b.get_forces()).max())
    print(f"{solver}, kappa_stress {kappa_stress}: {len(truth)} coefficients, max relative error {rel:.2e} "
          f"(condition number {cond:.2e}); unseen structures: dE {de:.2e} eV/atom, dF {df:.2e} eV/Å")
    assert rel < 100 * np.finfo(float).eps * cond
    assert de < 1e-9 and df < 1e-8


def test_written_potential_is_the_fitted_model(tmp_path):
    """Energies, forces and stresses of output yaml and yace equal the fit's own predictions."""
    _, _, teacher = _teacher(seed=5)
    rng = np.random.default_rng(2)
    labelled = _label(_structures(15, seed=4), teacher, rng, sigma_e=0.002, sigma_f=0.03)
    settings = _setup(tmp_path, labelled, kappa_stress=0.2, test_size=3)
    assert run_fit(settings, comm=MPI.COMM_SELF) == 0
    result = fit(settings, comm=MPI.COMM_SELF)
    c = result.coefficients
    out = tmp_path / "out"
    calcs = {name: ACECalculator(ACEPotential(out / name)) for name in ("fitted.yaml", "fitted.yace")}
    worst = {"E": 0.0, "F": 0.0, "S": 0.0}
    for atoms in labelled[:6]:
        rows = result.design.rows(atoms)
        e_fit = (rows.energy @ c + rows.fixed_energy) / len(atoms)
        f_fit = (rows.forces @ c + rows.fixed_forces).reshape(-1, 3)
        s_fit = (rows.virial @ c + rows.fixed_virial) / atoms.get_volume()
        for calc in calcs.values():
            a = atoms.copy()
            a.calc = calc
            worst["E"] = max(worst["E"], abs(a.get_potential_energy() / len(a) - e_fit))
            worst["F"] = max(worst["F"], np.abs(a.get_forces() - f_fit).max())
            worst["S"] = max(worst["S"], np.abs(a.get_stress() - s_fit).max())
    print(f"written yaml/yace vs fit predictions: dE {worst['E']:.2e} eV/atom, dF {worst['F']:.2e} eV/Å, "
          f"dS {worst['S']:.2e} eV/Å^3")
    assert worst["E"] < 1e-10 and worst["F"] < 1e-9 and worst["S"] < 1e-10
    for name in ("metrics.yaml", "errors.csv", "fitted_predictions.npz"):
        assert (out / name).is_file()


def test_bayesian_noise_estimate(tmp_path):
    """Forces with noise of known size: the evidence gives the noise back within 10 %."""
    _, _, teacher = _teacher(seed=8)
    sigma_f = 0.05
    rng = np.random.default_rng(9)
    structures = _structures(40, seed=7, natoms_each=32)     # equal sizes: one force weight
    labelled = _label(structures, teacher, rng, sigma_e=0.0, sigma_f=sigma_f)
    settings = _setup(tmp_path, labelled, solver="bayesian", kappa=1.0)
    result = fit(settings, comm=MPI.COMM_SELF)
    w_f = float(np.unique(np.round(np.concatenate([np.atleast_1d(w) for w in
                                                   _force_weights(result)]), 15))[0])
    est = result.solution.noise_sigma(result.kappa * w_f)
    print(f"force noise: estimated {est:.5f} eV/Å, true {sigma_f} eV/Å "
          f"({result.solution.effective_parameters:.1f} effective parameters)")
    assert abs(est / sigma_f - 1) < 0.10


def _force_weights(result):
    from acemd.fit.weights import compute_weights
    _, fw = compute_weights(result.train, None)
    return fw


def _mpiexec():
    exe = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
    if exe is None:
        pytest.fail("mpiexec not found: install the 'mpich' wheel (a dependency of acemd)")
    return exe


def test_same_coefficients_on_1_2_3_ranks(tmp_path):
    _, _, teacher = _teacher(seed=21)
    rng = np.random.default_rng(22)
    labelled = _label(_structures(12, seed=23), teacher, rng, sigma_e=0.003, sigma_f=0.05)
    _setup(tmp_path, labelled, kappa_stress=0.1, test_size=2, solver="bayesian")
    coeffs = {}
    for nranks in (1, 2, 3):
        folder = tmp_path / f"n{nranks}"
        folder.mkdir()
        shutil.copy(tmp_path / "data.traj", folder)
        shutil.copy(tmp_path / "input.yaml", folder)
        cmd = [_mpiexec(), "-n", str(nranks), sys.executable, "-m", "acemd.cli", "fit", "input.yaml"]
        if nranks == 1:
            cmd = cmd[3:]
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        model = read_bbasis_yaml(folder / "out" / "fitted.yaml")
        coeffs[nranks] = np.concatenate([f.coeffs for funcs in model.bbasis for f in funcs])
    for nranks in (2, 3):
        rel = np.abs(coeffs[nranks] - coeffs[1]).max() / np.abs(coeffs[1]).max()
        print(f"{nranks} ranks vs 1: max relative coefficient difference {rel:.2e}")
        assert rel < 1e-9


def test_committee_active_set_and_plots(tmp_path):
    """Bayesian fit with a committee and an active set: files written, the committee spreads, the
    training structures' extrapolation grade stays at most 1 + tolerance, plot_fit.py draws the npz."""
    import numpy.testing as npt
    _, _, teacher = _teacher(seed=31)
    rng = np.random.default_rng(32)
    labelled = _label(_structures(14, seed=33), teacher, rng, sigma_e=0.002, sigma_f=0.03)
    _setup(tmp_path, labelled, solver="bayesian", committee=4, test_size=0)   # all structures train
    text = (tmp_path / "input.yaml").read_text().replace("  committee: 4\n", "  committee: 4\n  active_set: true\n")
    (tmp_path / "input.yaml").write_text(text)
    settings = read_fit_input(tmp_path / "input.yaml")
    assert run_fit(settings, comm=MPI.COMM_SELF) == 0
    out = tmp_path / "out"
    members = sorted(out.glob("fitted.committee_*.yaml"))
    assert len(members) == 4
    data = np.load(out / "fitted_predictions.npz")
    assert np.all(data["energy_std"] > 0) and np.all(np.isfinite(data["forces_std"]))
    calc = ACECalculator(ACEPotential(out / "fitted.yaml"), active_set=out / "fitted.asi")
    gammas = []
    for atoms in labelled:
        a = atoms.copy()
        a.calc = calc
        a.get_potential_energy()
        gammas.append(calc.results["max_gamma"])
    print(f"committee of 4: energy spread {1e3 * data['energy_std'].mean():.3f} meV/atom on average; "
          f"max gamma over the data {max(gammas):.4f}")
    assert max(gammas) <= 1.0 + 1e-2 + 1e-9
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[2] / "scripts" / "plot_fit.py"),
                           str(out / "fitted_predictions.npz"), "-o", str(tmp_path / "fit.png")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fit.png").stat().st_size > 10000
    bad = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[2] / "scripts" / "plot_fit.py"),
                          str(tmp_path / "input.yaml")], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "not a numpy .npz" in bad.stderr and "Traceback" not in bad.stderr
    npt.assert_array_equal(data["structure_index"], np.arange(len(labelled)))


def test_bad_entry_is_named_and_nothing_is_written(tmp_path):
    _, _, teacher = _teacher(seed=41)
    labelled = _label(_structures(6, seed=42), teacher)
    labelled[3].calc.results["forces"][1, 2] = np.nan
    _setup(tmp_path, labelled)
    proc = subprocess.run([sys.executable, "-m", "acemd.cli", "fit", "input.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    print(proc.stderr.strip())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "data.traj" in proc.stderr and "3" in proc.stderr and "NaN" in proc.stderr
    assert not (tmp_path / "out").exists()
