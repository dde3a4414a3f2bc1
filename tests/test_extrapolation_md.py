"""The extrapolation grade during MD ([extrapolation]): gamma of the engine's frame equals
the ASE calculator's, extrapolative frames go to an extxyz file, a high gamma stops the
run with a checkpoint and exit status 3, and the input is checked key by key.

Cu-I.yaml + Cu-I.asi: its active set was built from ideal lattices only, so a thermal
crystal has gamma ~1e6; the thresholds below are chosen from the run's own values.
"""
import io

import h5py
import numpy as np
import pytest
from ase import Atoms
from ase.io import read
from mpi4py import MPI

from acemd import ACECalculator
from acemd.cli import EXIT_EXTRAPOLATION, main
from acemd.config import ConfigError, load_config
from acemd.drivers.md import MDRun
from acemd.io.checkpoint import read_checkpoint
from acemd.io.thermo import read_thermo

from engine_helpers import POTENTIALS, write_input

ASI = POTENTIALS / "Cu-I.asi"


def extrapolation_input(folder, *, every=5, dump=1e30, stop=1e30, steps=10, fields=None, extra="",
                        potential="Cu-I.yaml", asi=ASI, **kwargs):
    section = (f'[extrapolation]\nactive_set = "{asi.as_posix()}"\nevery = {every}\n'
               f"dump_threshold = {float(dump)!r}\nstop_threshold = {float(stop)!r}\n" + extra)
    path = write_input(folder, potential=potential, steps=steps, rattle=0.05, temperature=600.0,
                       extra=section, **kwargs)
    if fields is not None:
        text = path.read_text().replace("[trajectory]\n", f"[trajectory]\nfields = {fields!r}\n".replace("'", '"'))
        path.write_text(text)
    return path


def make_run(path, restart=None):
    settings, text = load_config(path)
    return MDRun(settings, text, path, comm=MPI.COMM_SELF, restart=restart, stream=io.StringIO())


@pytest.fixture(scope="module")
def calculator():
    return ACECalculator(POTENTIALS / "Cu-I.yaml", active_set=ASI)


def calculator_gamma(calc, positions, cell, n):
    atoms = Atoms(["Cu"] * n, positions=positions, cell=cell, pbc=True)
    atoms.calc = calc
    atoms.get_potential_energy()
    return calc.results["gamma"]


def test_md_gamma_equals_calculator_gamma(tmp_path, calculator):
    """On the Verlet list (cutoff + skin, not rebuilt at this step) gamma equals the calculator's."""
    run = make_run(extrapolation_input(tmp_path, steps=13))
    run.run()
    st, eng = run.state, run.engine
    gamma = run.monitor.current_gamma(eng)            # step 13: evaluated now, off schedule
    assert run.monitor.step == 13
    n = st.n_local
    rows = np.repeat(np.arange(n), np.diff(eng.offsets))
    dist = np.linalg.norm(eng.ext_positions[eng.neighbors] - eng.ext_positions[rows], axis=1)
    assert (dist > run.term.potential.cutoff).sum() > 1000     # the list holds pairs beyond the cutoff
    ref = calculator_gamma(calculator, st.positions, st.cell, n)
    rel = np.abs(gamma - ref) / np.abs(ref)
    print(f"\nMD vs calculator gamma at step 13: max relative deviation {rel.max():.1e}, "
          f"max gamma {ref.max():.4g}")
    assert rel.max() < 1e-10
    assert run.monitor.max_gamma == pytest.approx(ref.max(), rel=1e-10)


def test_dump_file_holds_the_extrapolative_frames(tmp_path, calculator):
    run = make_run(extrapolation_input(tmp_path / "all", dump=1e-6, steps=20, every=5))
    run.run()
    log = read_thermo(tmp_path / "all" / "run.log")
    frames = read(tmp_path / "all" / "extrapolative.extxyz", ":")
    assert [f.info["step"] for f in frames] == [0, 5, 10, 15, 20]
    n = run.state.n_atoms_total
    max_by_step = {}
    for f in frames:
        assert len(f) == n and f.get_chemical_symbols() == ["Cu"] * n
        np.testing.assert_array_equal(f.arrays["id"], np.arange(n))
        assert f.info["time"] == pytest.approx(0.001 * f.info["step"])
        ref = calculator_gamma(calculator, f.positions, f.cell.array, n)
        # the file stores 8 decimals of positions and gamma
        np.testing.assert_allclose(f.arrays["gamma"], ref, rtol=1e-6)
        assert f.info["max_gamma"] == pytest.approx(f.arrays["gamma"].max(), rel=1e-9)
        row = log["Step"] == f.info["step"]
        assert log["MaxGamma"][row][0] == pytest.approx(f.info["max_gamma"], rel=1e-5)
        max_by_step[f.info["step"]] = f.info["max_gamma"]
    # a threshold between the frames' maxima dumps exactly the frames above it
    threshold = float(np.median(list(max_by_step.values())))
    make_run(extrapolation_input(tmp_path / "some", dump=threshold, steps=20, every=5)).run()
    some = read(tmp_path / "some" / "extrapolative.extxyz", ":")
    expected = [s for s, g in max_by_step.items() if g > threshold]
    assert 0 < len(expected) < len(max_by_step)
    assert [f.info["step"] for f in some] == expected


def test_stop_threshold_writes_checkpoint_and_exits_3(tmp_path, capsys):
    probe = make_run(extrapolation_input(tmp_path / "probe", steps=30, every=5))
    probe.run()
    table = read_thermo(tmp_path / "probe" / "run.log")
    steps, maxima = table["Step"], table["MaxGamma"]
    # the first evaluation step whose max gamma exceeds every earlier one
    k = next(i for i in range(1, len(steps)) if maxima[i] > maxima[:i].max())
    threshold = 0.5 * (maxima[:k].max() + maxima[k])
    path = extrapolation_input(tmp_path / "stop", steps=30, every=5, stop=threshold)
    assert main([str(path)]) == EXIT_EXTRAPOLATION == 3
    captured = capsys.readouterr()
    assert int(read_checkpoint(tmp_path / "stop" / "run.ckpt.h5")["step"]) == steps[k]
    for needle in (f"step {steps[k]}", f"{threshold:g}", "extrapolative.extxyz", "stop_threshold",
                   "run.ckpt.h5"):
        assert needle in captured.err
        assert needle in (tmp_path / "stop" / "run.log").read_text()
    frames = read(tmp_path / "stop" / "extrapolative.extxyz", ":")
    assert [f.info["step"] for f in frames] == [steps[k]]          # the stopping frame is always dumped
    assert frames[0].info["max_gamma"] == pytest.approx(maxima[k], rel=1e-5)
    # a restart with the same threshold stops again at once and dumps nothing twice
    assert main([str(path), "--restart", str(tmp_path / "stop" / "run.ckpt.h5")]) == EXIT_EXTRAPOLATION
    assert len(read(tmp_path / "stop" / "extrapolative.extxyz", ":")) == 1


def test_h5md_gamma_field(tmp_path, calculator):
    """Frames on steps that are not evaluation steps get gamma evaluated for them."""
    path = extrapolation_input(tmp_path, steps=9, every=5, traj_every=3,
                               fields=["position", "species", "id", "gamma"])
    run = make_run(path)
    run.run()
    with h5py.File(tmp_path / "run.h5", "r") as f:
        steps = f["particles/all/gamma/step"][()]
        gamma = f["particles/all/gamma/value"][()]
        pos = f["particles/all/position/value"][()]
        cells = f["particles/all/box/edges/value"][()]
        max_gamma = f["observables/max_gamma/value"][()]
    assert list(steps) == [0, 3, 6, 9]
    for k in range(len(steps)):
        ref = calculator_gamma(calculator, pos[k], cells[k], pos.shape[1])
        np.testing.assert_allclose(gamma[k], ref, rtol=1e-10)
        assert max_gamma[k] == pytest.approx(ref.max(), rel=1e-10)


# ------------------------------------------------------------------ input checks
def test_unknown_key_in_extrapolation_section(tmp_path):
    path = extrapolation_input(tmp_path, extra="evry = 3\n")
    with pytest.raises(ConfigError, match=r"extrapolation\.evry.*did you mean 'every'"):
        load_config(path)


def test_missing_active_set_file(tmp_path):
    path = extrapolation_input(tmp_path, asi=tmp_path / "nowhere.asi")
    with pytest.raises(ConfigError, match=r"extrapolation\.active_set.*not found.*nowhere\.asi"):
        load_config(path)


def test_missing_active_set_key(tmp_path):
    path = extrapolation_input(tmp_path)
    path.write_text(path.read_text().replace(f'active_set = "{ASI.as_posix()}"\n', ""))
    with pytest.raises(ConfigError, match=r"extrapolation\.active_set.*required"):
        load_config(path)


@pytest.mark.parametrize("key,value,problem", [("every", "0", "positive"),
                                                ("dump_threshold", '"high"', "expected .*number")])
def test_bad_values(tmp_path, key, value, problem):
    path = extrapolation_input(tmp_path)
    text = path.read_text()
    start = text.index(f"{key} = ", text.index("[extrapolation]"))
    path.write_text(text[:start] + f"{key} = {value}" + text[text.index("\n", start):])
    with pytest.raises(ConfigError, match=rf"extrapolation\.{key}.*{problem}"):
        load_config(path)


def test_ctilde_potential_is_refused_by_check(tmp_path, capsys):
    path = extrapolation_input(tmp_path, potential="Cu-I.yace")
    with pytest.raises(ConfigError, match=r"\[extrapolation\].*Cu-I\.yace.*B-basis \.yaml"):
        load_config(path)
    assert main([str(path), "--check"]) == 1
    assert "B-basis" in capsys.readouterr().err


def test_active_set_of_another_potential_is_refused_by_check(tmp_path, capsys):
    path = extrapolation_input(tmp_path, asi=POTENTIALS / "DFT10B-AgCu.asi")
    assert main([str(path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "extrapolation.active_set" in err and "DFT10B-AgCu.asi" in err
    assert main([str(path)]) == 1                      # and the run itself, before any step
    assert "extrapolation.active_set" in capsys.readouterr().err
    assert not (tmp_path / "run.ckpt.h5").exists()


def test_gamma_field_needs_extrapolation_section(tmp_path):
    path = write_input(tmp_path, potential="Cu-I.yaml")
    path.write_text(path.read_text().replace("[trajectory]\n", '[trajectory]\nfields = ["position", "gamma"]\n'))
    with pytest.raises(ConfigError, match=r"trajectory\.fields.*gamma.*\[extrapolation\]"):
        load_config(path)


def test_defaults_follow_the_lammps_recipe(tmp_path):
    path = extrapolation_input(tmp_path)
    text = path.read_text()
    text = text[:text.index("every = 5", text.index("[extrapolation]"))]      # only active_set given
    path.write_text(text)
    ex = load_config(path)[0]["extrapolation"]
    assert (ex["every"], ex["dump_threshold"], ex["stop_threshold"]) == (10, 5.0, 25.0)
    assert ex["dump_file"] == str(tmp_path / "extrapolative.extxyz")
    assert load_config(write_input(tmp_path / "none"))[0]["extrapolation"] == {}


def test_dump_file_keeps_whole_frames_only(tmp_path):
    """A frame cut short by a kill, and frames after the restart step, are dropped on reopening."""
    from acemd.io.extxyz_dump import ExtxyzDump
    path = tmp_path / "x.extxyz"
    rng = np.random.default_rng(1)
    cell = np.diag([5.0, 6.0, 7.0])
    ids = np.array([3, 0, 2, 1])
    dump = ExtxyzDump(path, MPI.COMM_SELF, 4, ["Ag", "Cu"], [True, True, True])
    positions = {}
    for step in (0, 5, 10):
        positions[step] = rng.uniform(0, 5, (4, 3))
        dump.write_frame(cell, ids, positions[step], np.array([1, 0, 1, 1]),
                         {"gamma": np.full(4, float(step))}, {"step": step, "max_gamma": float(step)})
    whole = path.read_bytes()
    path.write_bytes(whole + whole[: len(whole) // 5])          # killed inside a fourth frame
    with pytest.raises(Exception):
        read(path, ":")
    ExtxyzDump(path, MPI.COMM_SELF, 4, ["Ag", "Cu"], [True] * 3, append=True, restart_step=5)
    frames = read(path, ":")
    assert [f.info["step"] for f in frames] == [0, 5]
    order = np.argsort(ids)
    np.testing.assert_allclose(frames[1].positions, positions[5][order], atol=1e-8)
    assert frames[1].get_chemical_symbols() == ["Ag", "Cu", "Cu", "Cu"]      # by id: 0, 1, 2, 3
    np.testing.assert_array_equal(frames[1].arrays["id"], [0, 1, 2, 3])
    ExtxyzDump(path, MPI.COMM_SELF, 4, ["Ag", "Cu"], [True] * 3)             # a new run starts empty
    assert path.read_bytes() == b""


def test_gamma_follows_positions_moved_after_the_force_call(tmp_path, calculator):
    """Positions and cell scaled after the last force call (as a barostat may do): gamma is that of
    the new frame, and the engine's forces are left alone."""
    run = make_run(extrapolation_input(tmp_path, steps=0))
    eng, st = run.engine, run.state
    eng.compute_forces(force_rebuild=True)
    forces = eng.forces.copy()
    before = run.monitor.evaluate(eng).copy()
    st.positions *= 1.01
    eng.set_cell(st.cell * 1.01)
    gamma = run.monitor.evaluate(eng)
    ref = calculator_gamma(calculator, st.positions, st.cell, st.n_local)
    np.testing.assert_allclose(gamma, ref, rtol=1e-10)
    assert np.abs(gamma - before).max() > 1e-3 * np.abs(before).max()    # it did change
    np.testing.assert_array_equal(eng.forces, forces)
