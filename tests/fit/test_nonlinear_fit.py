"""The nonlinear ``acemd fit`` end to end: teacher-student on the exact model class, written files,
restart after a signal, 1 vs 2 ranks, the ladder, the linear start, bad restarts.

The teacher is the shared Cu-I.yaml (82 B-functions, two densities with the FS embedding rho1 +
sqrt(rho2), trained radial functions): labelled structures, refitted from perturbed coefficients.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from acemd.fit.basis_file import spec_from_file
from acemd.fit.batch import StructureBatch
from acemd.fit.bbasis_writer import format_tree
from acemd.fit.config import read_fit_input
from acemd.fit.nonlinear import FitStopped, fit_nonlinear, write_outputs
from acemd.fit.nonlinear_model import NonlinearModel
from acemd.potential import ACEPotential
from acemd.potential.calculator import ACECalculator

TEACHER = Path(__file__).resolve().parents[1] / "data" / "potentials" / "Cu-I.yaml"

INPUT = """\
seed: 1
potential: start.yaml
data:
  filename: data.traj
fit:
  loss: {{kappa: 0.5}}
  optimizer: {optimizer}
  maxiter: {maxiter}
backend:
  display_step: 20
output:
  folder: out
  potential_file: fitted.yaml
"""


class _Comm:
    def Allreduce(self, a, b):
        b[...] = a

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def Barrier(self):
        pass

    def bcast(self, x, root=0):
        return x

    def gather(self, x, root=0):
        return [x]


def _labelled(n, seed):
    calc = ACECalculator(ACEPotential(TEACHER))
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        lat = ("fcc", "bcc", "hcp", "sc")[k % 4]
        a = {"fcc": 3.6, "bcc": 2.88, "hcp": 2.55, "sc": 2.4}[lat] * rng.uniform(0.94, 1.07)
        at = bulk("Cu", lat, a=a).repeat((2, 2, 2))
        at.set_cell(at.cell.array @ (np.eye(3) + rng.normal(0, 0.03, (3, 3))), scale_atoms=True)
        at.positions += rng.normal(0, 0.1, at.positions.shape)
        at.calc = calc
        e, f, s = at.get_potential_energy(), at.get_forces(), at.get_stress()
        at.calc = SinglePointCalculator(at, energy=e, forces=f, stress=s)
        out.append(at)
    return out


def _setup(folder, n=16, perturb=0.003, optimizer="BFGS", maxiter=100):
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "data.traj", _labelled(n, 0))
    spec, c, r = spec_from_file(TEACHER)
    model = NonlinearModel(spec, c, r)
    theta = model.pack()
    theta = theta * (1.0 + perturb * np.random.default_rng(5).standard_normal(theta.shape))
    (folder / "start.yaml").write_text(format_tree(model.to_tree(theta)))
    (folder / "input.yaml").write_text(INPUT.format(optimizer=optimizer, maxiter=maxiter))
    return read_fit_input(folder / "input.yaml")


def _rmse(calc, structures):
    de, df = [], []
    for at in structures:
        e, f = at.get_potential_energy(), at.get_forces()
        b = at.copy()
        b.calc = calc
        de.append((b.get_potential_energy() - e) / len(at))
        df.append((b.get_forces() - f).ravel())
    return float(np.sqrt(np.mean(np.square(de)))), float(np.sqrt(np.mean(np.square(np.concatenate(df)))))


def test_teacher_student_and_written_files(tmp_path):
    """Refitting Cu-I from 0.1 % perturbed coefficients recovers it (train RMSE < 1e-5 eV/atom and
    1e-4 eV/Å); the written .yaml and .yace equal the fitted model in the engine (1e-10)."""
    settings = _setup(tmp_path, perturb=0.001, maxiter=200)
    lines = []
    result = fit_nonlinear(settings, _Comm(), lines.append)
    paths = write_outputs(result, lines.append)
    train = read(tmp_path / "data.traj", ":")
    held = _labelled(8, 99)
    for name in ("potential", "yace"):
        calc = ACECalculator(ACEPotential(paths[name]))
        e_tr, f_tr = _rmse(calc, train)
        e_ho, f_ho = _rmse(calc, held)
        print(f"{Path(paths[name]).name}: train RMSE {e_tr:.2e} eV/atom {f_tr:.2e} eV/Å; held-out "
              f"{e_ho:.2e} eV/atom {f_ho:.2e} eV/Å")
        assert e_tr < 1e-5 and f_tr < 1e-4
        assert e_ho < 1e-4 and f_ho < 2e-3     # unseen structures of the same kinds: close, not exact
    batch = StructureBatch(result.model.potential, train)
    ev = result.model.evaluate(batch, result.theta)
    worst = 0.0
    for name in ("potential", "yace"):
        calc = ACECalculator(ACEPotential(paths[name]))
        for s, at in enumerate(train):
            b = at.copy()
            b.calc = calc
            worst = max(worst, abs(b.get_potential_energy() - ev.energies[s]) / len(at),
                        np.abs(b.get_forces() - ev.forces[batch.first_atom[s]:batch.first_atom[s + 1]]).max())
    print(f"written .yaml/.yace vs the fitted model: {worst:.1e} (eV/atom, eV/Å)")
    assert worst < 1e-10


class _StopAfter:
    """A stand-in for signals.StopRequested that reports SIGTERM from the k-th check on."""

    def __init__(self, k):
        self.k = k
        self.checks = 0

    @property
    def signum(self):
        self.checks += 1
        return int(signal.SIGTERM) if self.checks > self.k else 0


@pytest.mark.parametrize("optimizer", ["BFGS", "L-BFGS-B", "Adam"])
def test_restart_equals_uninterrupted(tmp_path, optimizer):
    """Stopped by a signal at iteration 6 and restarted from the checkpoint: the same coefficients,
    bit for bit, as the run without the stop."""
    settings = _setup(tmp_path / "a", n=6, perturb=0.01, optimizer=optimizer, maxiter=15)
    full = fit_nonlinear(settings, _Comm(), lambda line: None)
    settings_b = _setup(tmp_path / "b", n=6, perturb=0.01, optimizer=optimizer, maxiter=15)
    with pytest.raises(FitStopped) as stopped:
        fit_nonlinear(settings_b, _Comm(), lambda line: None, stop=_StopAfter(6))
    assert Path(stopped.value.path).is_file()
    resumed = fit_nonlinear(settings_b, _Comm(), lambda line: None, restart=stopped.value.path)
    print(f"{optimizer}: restart vs uninterrupted: max |Δθ| = {np.abs(resumed.theta - full.theta).max():.1e} "
          f"over {len(full.theta)} coefficients, {len(full.history)} iterations")
    assert np.array_equal(resumed.theta, full.theta)
    assert np.array_equal(np.array(resumed.history), np.array(full.history))


def test_restart_refuses_another_input(tmp_path):
    settings = _setup(tmp_path / "a", n=4, maxiter=8)
    with pytest.raises(FitStopped) as stopped:
        fit_nonlinear(settings, _Comm(), lambda line: None, stop=_StopAfter(2))
    other = _setup(tmp_path / "b", n=4, maxiter=9)
    with pytest.raises(ValueError, match="another input"):
        fit_nonlinear(other, _Comm(), lambda line: None, restart=stopped.value.path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        fit_nonlinear(other, _Comm(), lambda line: None, restart=tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not an acemd fit checkpoint"):
        fit_nonlinear(other, _Comm(), lambda line: None, restart=tmp_path / "junk.h5")


def _mpiexec():
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.skip("mpiexec not found")
    return exe


def test_two_ranks_equal_one(tmp_path):
    """The CLI on 1 and 2 ranks: the same fitted coefficients to round-off (data split over ranks)."""
    results = {}
    for n in (1, 2):
        folder = tmp_path / f"r{n}"
        _setup(folder, n=8, perturb=0.01, maxiter=12)
        proc = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, "-m", "acemd.cli", "fit", "input.yaml"],
                              cwd=folder, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        spec, coeffs, crad = spec_from_file(folder / "out" / "fitted.yaml")
        results[n] = np.concatenate([np.ravel(c) for c in coeffs] + [np.ravel(crad[p]) for p in sorted(crad)])
    diff = np.abs(results[2] - results[1]).max() / np.abs(results[1]).max()
    print(f"2 ranks vs 1 rank after 12 BFGS iterations: max relative difference {diff:.1e}")
    assert diff < 1e-8


LADDER_INPUT = """\
seed: 2
potential:
  deltaSplineBins: 0.001
  elements: [Cu]
  embeddings:
    ALL: {npot: FinnisSinclairShiftedScaled, fs_parameters: [1, 1, 1, 0.5], ndensity: 2}
  bonds:
    ALL: {radbase: SBessel, radparameters: [5.25], rcut: 5.0, dcut: 0.01}
  functions:
    ALL: {nradmax_by_orders: [5, 2, 1], lmax_by_orders: [0, 1, 1]}
data:
  filename: data.traj
  test_size: 0.25
fit:
  loss: {kappa: 0.3, L1_coeffs: 1e-8, L2_coeffs: 1e-8, w0_rad: 1e-8, w1_rad: 1e-8, w2_rad: 1e-8}
  optimizer: BFGS
  maxiter: 15
  ladder_step: 4
  ladder_type: body_order
  init: {init}
backend:
  display_step: 5
output:
  folder: out
  potential_file: fitted.yaml
"""


def test_ladder_steps_interim_potentials_and_learning_curve(tmp_path):
    """pacemaker's ladder: every step refits, writes its interim potential and a learning-curve row;
    the last step is the whole basis; the final potential is the last step's."""
    write(tmp_path / "data.traj", _labelled(12, 7))
    (tmp_path / "input.yaml").write_text(LADDER_INPUT.replace("{init}", "pacemaker"))
    settings = read_fit_input(tmp_path / "input.yaml")
    lines = []
    result = fit_nonlinear(settings, _Comm(), lines.append)
    from acemd.fit.basis import build_basis
    full = build_basis(settings.potential)
    interim = sorted((tmp_path / "out").glob("interim_potential_ladder_step_*.yaml"))
    print("\n".join(line for line in lines if "learning" in line or line.strip()[:1].isdigit()))
    assert len(result.curve) == len(interim) > 1
    assert [int(r["functions"]) for r in result.curve] == sorted(int(r["functions"]) for r in result.curve)
    assert int(result.curve[-1]["functions"]) == full.total == result.model.spec.total
    assert any(line.startswith("learning curve") for line in lines)
    last = ACEPotential(interim[-1])
    b = read(tmp_path / "data.traj", 0)
    b.calc = ACECalculator(last)
    e_last = b.get_potential_energy()
    batch = StructureBatch(result.model.potential, [b])
    assert abs(result.model.evaluate(batch, result.theta).energies[0] - e_last) < 1e-9


def test_linear_start_is_better_than_zero(tmp_path):
    """``init: linear`` starts from part 1's least squares: a lower first loss than pacemaker's zeros."""
    write(tmp_path / "data.traj", _labelled(12, 7))
    first = {}
    for init in ("pacemaker", "linear"):
        text = LADDER_INPUT.replace("{init}", init).replace("  ladder_step: 4\n  ladder_type: body_order\n", "")
        text = text.replace("maxiter: 15", "maxiter: 1")
        (tmp_path / "input.yaml").write_text(text)
        result = fit_nonlinear(read_fit_input(tmp_path / "input.yaml"), _Comm(), lambda line: None)
        first[init] = result.history[0]
    print(f"loss after the first iteration: pacemaker's zeros {first['pacemaker']:.4e}, linear start "
          f"{first['linear']:.4e}")
    assert first["linear"] < 0.1 * first["pacemaker"]


def _run_with(folder, seed, optimizer, maxiter, extra, n=8, perturb=0.003):
    _setup(folder, n=n, perturb=perturb, optimizer=optimizer, maxiter=maxiter)
    text = (folder / "input.yaml").read_text().replace("seed: 1", f"seed: {seed}")
    text = text.replace(f"  maxiter: {maxiter}\n", f"  maxiter: {maxiter}\n" + extra)
    (folder / "input.yaml").write_text(text)
    settings = read_fit_input(folder / "input.yaml")
    lines = []
    return settings, fit_nonlinear(settings, _Comm(), lines.append), lines


def _start_loss(folder):
    """The loss of the start potential (start.yaml) on the fit's data, as the fit defines it (kappa 0.5)."""
    from acemd.fit.loss import DataLoss, LossTerms
    from acemd.fit.run import prepare_data
    train, _, _, ew, fw, sw = prepare_data(read_fit_input(folder / "input.yaml"), lambda line: None)
    spec, c, r = spec_from_file(folder / "start.yaml")
    start = NonlinearModel(spec, c, r)
    return DataLoss(start, train, ew, fw, sw, LossTerms(kappa=0.5)).sums(start.pack())[4]


def test_adam_on_mini_batches_lowers_the_loss(tmp_path):
    """Adam on mini-batches of 3 of 8 structures (a new order every epoch, from the seed), in the variables
    scaled by the Gauss-Newton diagonal: the loss drops tenfold in 10 epochs (unscaled, even a step of 1e-8
    raised it: the coefficients' curvatures span many orders of magnitude)."""
    settings, result, _ = _run_with(tmp_path, 1, "Adam", 10, "  batch_size: 3\n  options: {learning_rate: 1e-3}\n")
    assert settings.fit.batch_size == 3
    l0, l1 = _start_loss(tmp_path), result.curve[-1]["loss"]
    print(f"Adam, batches of 3 of 8 structures, 10 epochs: loss {l0:.4e} -> {l1:.4e}")
    assert l1 < 0.1 * l0


def test_noisy_fit_cycles_are_seeded(tmp_path):
    """Two fit cycles, the second from noisy coefficients: the same seed gives the same coefficients, another
    seed others."""
    extra = "  fit_cycles: 2\n  noise_relative_sigma: 1e-6\n"
    finals = []
    for k, seed in enumerate((1, 1, 2)):
        settings, result, lines = _run_with(tmp_path / f"r{k}", seed, "BFGS", 4, extra, n=6)
        assert settings.fit.fit_cycles == 2
        assert sum("cycle 2:" in line for line in lines) == 1
        finals.append(result)
    print(f"2 cycles with noise: same seed max |Δθ| {np.abs(finals[0].theta - finals[1].theta).max():.1e}, "
          f"other seed {np.abs(finals[0].theta - finals[2].theta).max():.1e}")
    assert np.array_equal(finals[0].theta, finals[1].theta)
    assert not np.array_equal(finals[0].theta, finals[2].theta)


def test_ladder_from_an_initial_potential(tmp_path):
    """``initial_potential``: the ladder starts from the file's functions and coefficients (pacemaker's
    upfitting of an interim potential) and grows to the whole basis."""
    write(tmp_path / "data.traj", _labelled(12, 7))
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(tmp_path / "data.traj", first / "data.traj")
    (first / "input.yaml").write_text(LADDER_INPUT.replace("{init}", "pacemaker"))
    fit_nonlinear(read_fit_input(first / "input.yaml"), _Comm(), lambda line: None)
    interim = first / "out" / "interim_potential_ladder_step_2.yaml"
    text = LADDER_INPUT.replace("{init}", "pacemaker").replace(
        "  elements: [Cu]\n", f"  elements: [Cu]\n  initial_potential: {interim}\n")
    (tmp_path / "input.yaml").write_text(text)
    settings = read_fit_input(tmp_path / "input.yaml")
    start_spec, start_c, _ = spec_from_file(interim)
    lines = []
    result = fit_nonlinear(settings, _Comm(), lines.append)
    sizes = [int(r["functions"]) for r in result.curve]
    print(f"ladder from {start_spec.total} functions of {interim.name}: steps {sizes}")
    assert sizes[0] > start_spec.total and sizes[-1] == result.model.spec.total
    assert any("ladder" in line and f"from {start_spec.total} " in line for line in lines)
