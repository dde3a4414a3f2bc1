"""``acemd learn``: labellers that fail on some structures (recorded, skipped), an external command as
labeller, bad input found before any work, the D-optimal selection and the cut clusters against
independent numbers, and the CLI's restart command run as printed."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk

from acemd.learn import LearnInputError, read_learn_input, run_learn
from acemd.learn.exploration import ExplorationError
from acemd.learn.labellers import LabellerError
from acemd.learn.loop import LearnError
from acemd.learn.selection import Candidate, cut_cluster, select_d_optimal
from learn_helpers import EXPLORE_COLD, final_coefficients, learn_input

HERE = Path(__file__).resolve().parent


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


# -- failed labels -------------------------------------------------------------------------------

@pytest.mark.parametrize("calculator, reason", [("learn_helpers:FlakyEMT", "SCF did not converge"),
                                                ("learn_helpers:NaNForceEMT", "NaN/inf")])
def test_failed_labels_are_recorded_and_skipped(tmp_path, calculator, reason):
    from learn_helpers import _fails
    from acemd.learn.structures import generate_start, read_frames
    path = learn_input(tmp_path, labeller=f'calculator = "{calculator}"', hot=False, max_iterations=1, count=12)
    settings = read_learn_input(path)
    expected = [i for i, a in enumerate(generate_start(settings.start)) if _fails(a)]
    assert 0 < len(expected) < 12
    lines = []
    assert run_learn(settings, say=lines.append) == 0
    failed = yaml.safe_load((tmp_path / "run" / "iter_000" / "failed_labels.yaml").read_text())
    print(f"{calculator}: failed {[f['index'] for f in failed]} (expected {expected}): {failed[0]['reason']}")
    assert [f["index"] for f in failed] == expected
    assert all(reason in f["reason"] for f in failed)
    assert sum(f"structure {i} (start:{i})" in line for line in lines for i in expected) == len(expected)
    dataset = read_frames(tmp_path / "run" / "iter_000" / "dataset.extxyz")
    assert len(dataset) == 12 - len(expected)
    assert all(np.all(np.isfinite(a.get_forces())) for a in dataset)
    report = yaml.safe_load((tmp_path / "run" / "report.yaml").read_text())
    assert report["history"][0]["failed"] == len(expected)


LABEL_SCRIPT = """\
import sys
import numpy as np
from ase.io import read, write
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
frames = read(sys.argv[1], index=":")
out = []
for a in frames:
    i = a.info["learn_id"]
    if i == 1:
        continue                                  # a structure it could not label: left out
    b = a.copy()
    b.calc = EMT()
    e, f, s = b.get_potential_energy(), b.get_forces(), b.get_stress()
    if i == 2:
        f[0, 0] = np.nan                          # a broken label
    b.calc = SinglePointCalculator(b, energy=e, forces=f, stress=s)
    out.append(b)
write(sys.argv[2], out, format="extxyz")
"""


def test_command_labeller(tmp_path):
    """An external program reads the extxyz and writes labels: the structure it left out and the one
    with a NaN force are failed labels; the others equal EMT's labels."""
    from ase.calculators.emt import EMT
    from acemd.learn.structures import read_frames
    (tmp_path / "label.py").write_text(LABEL_SCRIPT)
    path = learn_input(tmp_path, labeller=f'command = "{sys.executable} label.py {{input}} {{output}}"',
                       hot=False, max_iterations=1)
    assert run_learn(read_learn_input(path), say=print) == 0
    failed = yaml.safe_load((tmp_path / "run" / "iter_000" / "failed_labels.yaml").read_text())
    assert [(f["index"], f["reason"]) for f in failed] == [(1, "not in the command's output"),
                                                           (2, "1 force components are NaN/inf")]
    dataset = read_frames(tmp_path / "run" / "iter_000" / "dataset.extxyz")
    assert len(dataset) == 6
    worst = 0.0
    for a in dataset:
        b = a.copy()
        b.calc = EMT()
        worst = max(worst, np.abs(b.get_forces() - a.get_forces()).max(),
                    abs(b.get_potential_energy() - a.get_potential_energy()))
    print(f"command labels vs EMT: max deviation {worst:.2g} (eV, eV/Å; extxyz keeps 8 decimals)")
    assert worst < 1e-6


# -- bad input, found before any work --------------------------------------------------------------

def _fails_before_work(tmp_path, exc_type, match, **kw):
    path = learn_input(tmp_path, **kw)
    with pytest.raises(exc_type, match=match) as info:
        run_learn(read_learn_input(path), say=lambda line: None)
    print(info.value)
    assert not (tmp_path / "run").exists()          # nothing written, nothing labelled


def test_unimportable_labeller(tmp_path):
    _fails_before_work(tmp_path, LabellerError, "cannot import module 'no_such_dft_code'",
                       labeller='calculator = "no_such_dft_code:Calc"')
    _fails_before_work(tmp_path, LabellerError, "has no 'NoSuchClass'",
                       labeller='calculator = "ase.calculators.emt:NoSuchClass"')
    _fails_before_work(tmp_path, LabellerError, "cannot be built .*missing.yace",
                       labeller='calculator = "acemd:ACECalculator"\nkwargs = {potential = "missing.yace"}\n'
                                'path_kwargs = ["potential"]')
    _fails_before_work(tmp_path, LabellerError, "program 'no-such-program' not found",
                       labeller='command = "no-such-program {input} {output}"')


def test_labeller_without_forces(tmp_path):
    _fails_before_work(tmp_path, LabellerError, "does not compute forces",
                       labeller='calculator = "learn_helpers:EnergyOnly"')


def test_labeller_returning_nan_everywhere(tmp_path):
    """A labeller that gives NaN forces on every structure stops the loop before any fit."""
    path = learn_input(tmp_path, labeller='calculator = "learn_helpers:NaNForceEMT"\nkwargs = {always = true}')
    with pytest.raises(LearnError, match="failed on all 8 structures of iteration 0 .*NaN/inf") as info:
        run_learn(read_learn_input(path), say=lambda line: None)
    print(info.value)
    assert not (tmp_path / "run" / "iter_000" / "fit").exists()


@pytest.mark.parametrize("lower, upper", [(6.0, 5.0), (5.0, 5.0)])
def test_thresholds_in_wrong_order(tmp_path, lower, upper):
    with pytest.raises(LearnInputError, match=r"\[learn.gamma_lower\]: .* must be below gamma_upper") as info:
        read_learn_input(learn_input(tmp_path, gamma_lower=lower, gamma_upper=upper))
    print(info.value)


@pytest.mark.parametrize("explore, match", [
    (EXPLORE_COLD.replace("nvt-langevin", "nvt-langevine"), r"\[md.ensemble\] must be one of"),
    (EXPLORE_COLD.replace('thermostat = {temperature = 300.0, damping = 0.05}', ''),
     r"thermostat"),
    (EXPLORE_COLD.replace('element = "Cu"', 'element = "Al"'), "contains Al, which the fitted potential"),
    (EXPLORE_COLD.replace('structure = {lattice = "fcc", element = "Cu", a = 3.6, repeat = [2, 2, 2]}',
                          'structure = {file = "missing.extxyz"}'), "missing.extxyz"),
    (EXPLORE_COLD + '\n[learn.explore.barostat]\npressure = 0.0\n', r"barostat"),
])
def test_invalid_exploration_found_before_labelling(tmp_path, explore, match):
    _fails_before_work(tmp_path, ExplorationError, match, explore=explore)


def test_exploration_reserved_and_unknown_keys(tmp_path):
    with pytest.raises(LearnInputError, match=r"\[learn.explore\[0\].extrapolation\]: is set by the loop"):
        read_learn_input(learn_input(tmp_path, explore=EXPLORE_COLD + "extrapolation = {every = 5}\n"))
    with pytest.raises(LearnInputError, match=r"did you mean 'thermostat'"):
        read_learn_input(learn_input(tmp_path, explore=EXPLORE_COLD + "thermostatt = {temperature = 5.0}\n"))


# -- selection -----------------------------------------------------------------------------------

def test_d_optimal_selection_grows_the_volume():
    """Greedy D-optimality on synthetic projections: each choice is the candidate of largest gamma
    against the grown set (so a duplicate of a chosen candidate is not chosen), and every choice
    multiplies |det A| by at least its gamma (a MaxVol swap of a row with coefficient gamma does)."""
    rng = np.random.default_rng(4)
    n = 6
    A = rng.normal(size=(n, n))
    base = rng.normal(size=(n,)) * 4.0
    rows = [base + 0.01 * rng.normal(size=n), base + 0.01 * rng.normal(size=n), rng.normal(size=n) * 3.0,
            rng.normal(size=n) * 0.1]
    cands = [Candidate(atoms=None, origin=f"c{k}", rows={0: r[None, :]}, atom_index={0: np.array([0])})
             for k, r in enumerate(rows)]
    inv = np.linalg.inv(A)
    gammas = [float(np.abs(r @ inv).max()) for r in rows]
    chosen = select_d_optimal(cands, {0: inv}, count=4, gamma_lower=1.2, tolerance=0.01)
    print("gamma of the candidates:", np.round(gammas, 3), "chosen:", [(c["origin"], round(c["gamma"], 3))
                                                                      for c in chosen])
    assert chosen[0]["origin"] == f"c{int(np.argmax(gammas))}"
    origins = [c["origin"] for c in chosen]
    assert not {"c0", "c1"} <= set(origins)            # near-duplicates: one is enough
    assert "c3" not in origins                          # inside the set: gamma < 1
    # the volume grows by at least each chosen gamma
    active, logdet = A.copy(), np.linalg.slogdet(A)[1]
    from acemd.potential.maxvol import maxvol
    for c in chosen:
        r = rows[int(c["origin"][1:])]
        stacked = np.vstack([active, r])
        sel, _, _ = maxvol(stacked, 0.01, rows=np.arange(n))
        active = stacked[sel]
        new = np.linalg.slogdet(active)[1]
        assert new - logdet >= np.log(c["gamma"]) - 1e-9
        logdet = new


def test_cut_cluster_counts_fcc_shells():
    """A cluster cut from periodic fcc holds the centre and the complete neighbour shells inside the
    radius: 1 + 12 (a/√2), + 6 (a), + 24 (a√(3/2)), non-periodic, in vacuum."""
    a = 3.6
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((3, 3, 3))
    for radius, count in ((2.0, 1), (3.0, 13), (3.7, 19), (4.6, 43)):
        cluster, src, dist = cut_cluster(atoms, 5, radius, vacuum=6.0)
        assert len(cluster) == count and not cluster.pbc.any()
        assert dist.max() <= radius
        d = np.linalg.norm(cluster.positions - cluster.positions[0], axis=1)
        assert np.allclose(np.sort(d), np.sort(dist))
        frac = cluster.positions / cluster.cell.lengths()        # an orthorhombic box
        assert np.all(cluster.positions >= 6.0 - 1e-9)
        assert np.all(cluster.cell.lengths() - cluster.positions >= 6.0 - 1e-9) and np.all(frac < 1)
    print("fcc cluster sizes at radii 2.0, 3.0, 3.7, 4.6 Å: 1, 13, 19, 43")


def test_loop_with_cut_clusters(tmp_path):
    """cut_radius: the selected structures are clusters around the most extrapolating atom, labelled and
    fitted like any structure."""
    from acemd.learn.structures import read_frames
    path = learn_input(tmp_path, max_iterations=2, hot_steps=300,
                       extra="", name="learn.toml")
    text = path.read_text().replace("[learn.labeller]", "[learn.select]\ncut_radius = 6.0\n\n[learn.labeller]")
    text = text.replace('repeat = [2, 2, 2]}\nvelocities = {temperature = 1500.0}',
                        'repeat = [3, 3, 3]}\nvelocities = {temperature = 1500.0}')
    path.write_text(text)
    assert run_learn(read_learn_input(path), say=print) == 0
    new = read_frames(tmp_path / "run" / "iter_001" / "to_label.extxyz")
    assert new and all(not a.pbc.any() for a in new)
    sizes = [len(a) for a in new]
    print("cluster sizes:", sizes)
    assert all(50 < n < 108 for n in sizes)          # a 6 Å sphere of fcc Cu (~79 atoms), < the 108-atom cell
    data = read_frames(tmp_path / "run" / "iter_001" / "dataset.extxyz")
    assert sum(not a.pbc.any() for a in data) == len(new)


# -- the command line ------------------------------------------------------------------------------

def test_cli_restart_as_printed(tmp_path):
    """``acemd learn`` exits 75 on SIGTERM and prints the command that continues; run as printed, it
    finishes with the potential of a loop that was never stopped."""
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    assert run_learn(read_learn_input(learn_input(ref_dir, max_iterations=3)), say=lambda line: None) == 0
    work = tmp_path / "stopped"
    work.mkdir()
    path = learn_input(work, max_iterations=3,
                       labeller='calculator = "learn_helpers:SignallingEMT"\nkwargs = {after = 5}')
    env = _env()
    first = subprocess.run([sys.executable, "-m", "acemd", "learn", str(path)], capture_output=True, text=True,
                           env=env, cwd=work, timeout=600)
    assert first.returncode == 75, first.stdout[-2000:] + first.stderr[-2000:]
    printed = next(line for line in first.stdout.splitlines() if "to continue:" in line)
    print(printed)
    command = printed.split("to continue: ", 1)[1].rstrip(")").split()
    assert command[:2] == ["acemd", "learn"] and command[-1] == "--restart"
    env["ACEMD_TEST_NO_SIGNAL"] = "1"
    second = subprocess.run([sys.executable, "-m", "acemd"] + command[1:], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    ref, got = final_coefficients(ref_dir / "run"), final_coefficients(work / "run")
    print(f"restarted from the printed command: max |coefficient difference| {np.abs(ref - got).max():.3g}")
    assert np.array_equal(ref, got)
    # without --restart an existing run is refused (exit 1, nothing changed)
    third = subprocess.run([sys.executable, "-m", "acemd", "learn", str(path)], capture_output=True, text=True,
                           env=env, cwd=work, timeout=600)
    assert third.returncode == 1 and "already holds a learning run" in third.stderr
    assert "--restart" in third.stderr


def test_cli_bad_input_exit_status(tmp_path, capsys):
    from acemd.cli import main
    path = learn_input(tmp_path, gamma_lower=6.0, gamma_upper=5.0)
    assert main(["learn", str(path)]) == 1
    err = capsys.readouterr().err
    assert "gamma_lower" in err and str(path) in err
    assert main(["learn", str(learn_input(tmp_path)), "--check"]) == 0
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("path", sorted((HERE.parent / "inputs").glob("learn_*.toml")), ids=lambda p: p.name)
def test_example_inputs_pass_check(path, capsys):
    from acemd.cli import main
    assert main(["learn", str(path), "--check"]) == 0
    assert "is valid (acemd learn)" in capsys.readouterr().out


def test_upfit_needs_the_nonlinear_fit(tmp_path):
    path = learn_input(tmp_path)
    path.write_text(path.read_text().replace("test_size = 0.1", "test_size = 0.1\nupfit = true"))
    with pytest.raises(LearnInputError, match=r"\[learn.fit.upfit\]: applies to the nonlinear fit only"):
        run_learn(read_learn_input(path), say=lambda line: None)
    assert not (tmp_path / "run").exists()
