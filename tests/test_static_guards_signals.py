"""The [guards] and stop signals in the minimiser and the 0 K [elastic] driver.

Guards: each limit (energy change, absolute energy floor, volume per atom range, volume change per
step) stops a minimisation that crosses it, the state put back is the last one inside the limit
(recomputed independently with the ASE calculator from the checkpoint), the result is never
"converged" and no relaxed structure is written.  Signals: a 0 K elastic run stopped during the
reference relaxation or between strained cells writes a checkpoint, and --restart gives the
tensor of the uninterrupted run.
"""
import json
import signal

import numpy as np
import pytest
from mpi4py import MPI

from acemd.config import parse_config
from acemd.drivers import elastic as elastic_driver
from acemd.drivers.elastic import ElasticRun
from acemd.drivers.minimize import MinimizeRun
from acemd.guards import GuardError
from acemd.io.checkpoint import read_checkpoint
from acemd.potential.calculator import ACECalculator

from engine_helpers import POTENTIALS

CU = POTENTIALS / "Cu-I.yace"
FCC = 'lattice = "fcc"\nelement = "Cu"\na = 3.6\nrepeat = [2, 2, 2]\nrattle = 0.02\nrattle_seed = 3'


def _input(folder, section, structure=FCC, guards="", driver="minimize"):
    text = f"""
[potential]
file = "{CU.as_posix()}"
[structure]
{structure}
[{driver}]
{section}
[guards]
{guards}
[thermo]
file = "run.log"
[checkpoint]
file = "ck.h5"
"""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "in.toml"
    path.write_text(text)
    return path


def _build(cls, path, restart=None):
    import io
    text = path.read_text()
    return cls(parse_config(text, path), text, path, comm=MPI.COMM_SELF, restart=restart, stream=io.StringIO())


def _energy_volume_per_atom(ckpt_path):
    """Energy and volume per atom of a checkpoint's configuration, by the ASE calculator (independent)."""
    from ase import Atoms
    ck = read_checkpoint(ckpt_path)
    atoms = Atoms([ck["species_names"][s] for s in ck["species"]], positions=ck["positions"],
                  cell=ck["cell"], pbc=ck["pbc"])
    atoms.calc = ACECalculator(str(CU))
    return atoms.get_potential_energy() / len(atoms), atoms.get_volume() / len(atoms)


# (minimize section, guards, the key the message names, test of the last good state (e, v per atom))
CASES = {
    "pressure-1e9-bar-energy-change": ('cell = "iso"\npressure = 1e9', "", "[guards.max_energy_change]",
                                       lambda e, v, e0, v0: abs(e - e0) <= 10.0),
    "energy-floor": ('cell = "iso"', "min_energy_per_atom = -3.695",      # from -3.6888 to -3.6991
                     "[guards.min_energy_per_atom]", lambda e, v, e0, v0: e >= -3.695),
    "energy-ceiling": ('cell = "iso"\npressure = 1e6', "max_energy_per_atom = -3.3",
                       "[guards.max_energy_per_atom]", lambda e, v, e0, v0: e <= -3.3),
    "volume-floor": ('cell = "iso"\npressure = 5e5', "min_volume_per_atom = 10.0",
                     "[guards.min_volume_per_atom]", lambda e, v, e0, v0: v >= 10.0),
    "volume-ceiling": ('cell = "iso"\npressure = -3e5\nmax_displacement = 0.5', "max_volume_per_atom = 12.5",
                       "[guards.max_volume_per_atom]", lambda e, v, e0, v0: v <= 12.5),
    "volume-change-per-step": ('cell = "aniso"\npressure = 2e5', "max_volume_change = 0.001",
                               "[guards.max_volume_change]", lambda e, v, e0, v0: abs(v / v0 - 1) < 0.05),
}


@pytest.mark.parametrize("name", CASES)
def test_minimiser_guard_stops_at_the_last_good_state(tmp_path, name):
    section, guards, key, good = CASES[name]
    (tmp_path / "relaxed.extxyz").write_text("before\n")
    path = _input(tmp_path, section + '\nstructure_file = "relaxed.extxyz"', guards=guards)
    summary = _build(MinimizeRun, path).run()
    e_start, v_start = -3.68879, 373.248 / 32         # the rattled fcc Cu-I start, a = 3.6
    e, v = _energy_volume_per_atom(tmp_path / "ck.h5")
    print(f"{name}: {summary['message'][:200]}...\n  last good state: {e:.5f} eV/atom, {v:.4f} A^3/atom")
    assert summary["stopped_by"] == "guard"
    assert key in summary["message"] and "last good state" in summary["message"]
    assert "converged" not in summary["message"].replace("not converged", "")
    assert not summary["result"].converged and summary["result"].reason == "guard"
    assert (tmp_path / "relaxed.extxyz").read_text() == "before\n"       # no structure written
    assert good(e, v, e_start, v_start)
    # the result's energy is that of the state put back
    assert summary["result"].energy / 32 == pytest.approx(e, abs=1e-8)


def test_minimiser_refuses_two_atoms_0_05_A_apart(tmp_path):
    """[md] refuses the file at step 0; so does [minimize] (an input error, before any output)."""
    import ase.io
    from ase import Atoms
    ase.io.write(tmp_path / "s.extxyz", Atoms("Cu2", positions=[[5, 5, 5], [5.05, 5, 5]], cell=[10] * 3, pbc=True))
    path = _input(tmp_path, "", structure='file = "s.extxyz"')
    with pytest.raises(GuardError, match=r"0.05 Å apart.*\[guards.min_distance\]"):
        _build(MinimizeRun, path).run()
    assert not (tmp_path / "ck.h5").exists()


def test_guards_off_lets_the_minimiser_collapse(tmp_path):
    """The same 1e9-bar input with [guards] enabled = false runs past the limit (the guard is what stops it)."""
    path = _input(tmp_path, 'cell = "iso"\npressure = 1e9\nmax_steps = 300', guards="enabled = false")
    from acemd.drivers.minimize import NotConvergedError
    run = _build(MinimizeRun, path)
    try:
        run.run()
    except NotConvergedError:
        pass
    e, v = _energy_volume_per_atom(tmp_path / "ck.h5")
    print(f"guards off: {e:.4g} eV/atom, {v:.4g} A^3/atom after 300 steps")
    assert e < -3.7 - 10.0


# --------------------------------------------------------------------------- 0 K elastic: signals
ELASTIC = 'strains = [0.005, 0.01]\nfmax = 1e-6\nreport = "el.json"\ndata = "el.h5"'


def _stop_after(n_checks):
    """A StopRequested whose signal is SIGTERM from its n-th look on (the driver looks every
    minimiser step and before every strained cell)."""
    class StopAfter(elastic_driver.StopRequested):
        looks = 0

        @property
        def signum(self):
            StopAfter.looks += 1
            return signal.SIGTERM if StopAfter.looks >= n_checks else 0

        @signum.setter
        def signum(self, value):
            pass
    return StopAfter


@pytest.mark.parametrize("stops", [[5], [80, 10]], ids=["in-relaxation", "in-strains-twice"])
def test_0K_elastic_stopped_and_restarted_equals_uninterrupted(tmp_path, monkeypatch, stops):
    whole = _build(ElasticRun, _input(tmp_path / "a", ELASTIC, driver="elastic")).run()
    folder = tmp_path / "b"
    path = _input(folder, ELASTIC, driver="elastic")
    restart = None
    for n in stops:
        monkeypatch.setattr(elastic_driver, "StopRequested", _stop_after(n))
        summary = _build(ElasticRun, path, restart=restart).run()
        print(summary["message"])
        assert summary["stopped_by"] == "SIGTERM"
        assert "checkpoint" in summary["message"] and str(folder / "ck.h5") in summary["message"]  # the CLI adds --restart
        assert not (folder / "el.json").exists()
        saved = read_checkpoint(folder / "ck.h5")["state"]["elastic_0k"]
        print(f"  checkpoint: stage {saved['stage']}, {saved['n_records']} strained cells")
        assert saved["stage"] == ("relax" if stops == [5] else "strains")
        restart = str(folder / "ck.h5")
        monkeypatch.undo()
    final = _build(ElasticRun, path, restart=restart).run()
    report = json.loads((folder / "el.json").read_text())
    diff = np.abs(np.array(report["C_GPa"]) - np.array(whole["C_GPa"])).max()
    print(f"max |C(restarted) - C(uninterrupted)| = {diff:.3g} GPa")
    if stops == [5]:        # the relaxation continues from a partly relaxed state: same minimum, to fmax
        assert diff < 1e-3
    else:                   # the reference is the checkpoint's: round-off only
        assert diff < 1e-8
    assert final["n_atoms"] == 32


def test_0K_elastic_refuses_a_checkpoint_of_other_settings(tmp_path, monkeypatch):
    path = _input(tmp_path, ELASTIC, driver="elastic")
    monkeypatch.setattr(elastic_driver, "StopRequested", _stop_after(80))
    _build(ElasticRun, path).run()
    monkeypatch.undo()
    path.write_text(path.read_text().replace("strains = [0.005, 0.01]", "strains = [0.01]"))
    from acemd.simulation import InputError
    with pytest.raises(InputError, match=r"ck.h5.*\[elastic\].*strains.*differ"):
        _build(ElasticRun, path, restart=str(tmp_path / "ck.h5")).run()


def test_0K_elastic_guard_stop(tmp_path):
    """A reference relaxation that crosses a guard: stopped_by guard, no report, a checkpoint that a
    --restart refuses."""
    path = _input(tmp_path, ELASTIC + '\npressure = 1e9\ncell = "iso"', driver="elastic")
    summary = _build(ElasticRun, path).run()
    print(summary["message"])
    assert summary["stopped_by"] == "guard" and "[guards.max_energy_change]" in summary["message"]
    assert "reference relaxation" in summary["message"]
    assert not (tmp_path / "el.json").exists()
    from acemd.simulation import InputError
    with pytest.raises(InputError, match="blow-up guard stop"):
        _build(ElasticRun, path, restart=str(tmp_path / "ck.h5")).run()


# --------------------------------------------------------------------------- [minimize]: signals
def test_fire_stopped_twice_and_restarted_follows_the_uninterrupted_path(tmp_path, monkeypatch):
    """FIRE's velocities, time step and mixing travel in the checkpoint: two stops and restarts end at
    the uninterrupted run's positions bit for bit (one rank), in the same number of steps."""
    import ase.io
    from acemd.drivers import minimize as minimize_driver
    section = 'cell = "aniso"\nfmax = 1e-5\nstructure_file = "relaxed.extxyz"'
    whole = _build(MinimizeRun, _input(tmp_path / "a", section)).run()["result"]
    path = _input(tmp_path / "b", section)
    restart = None
    for n in (7, 25):
        cls = _stop_after(n)
        monkeypatch.setattr(minimize_driver, "StopRequested", cls)
        summary = _build(MinimizeRun, path, restart=restart).run()
        monkeypatch.undo()
        assert summary["stopped_by"] == "signal"
        saved = read_checkpoint(tmp_path / "b" / "ck.h5")["state"]["driver"]["resume"]
        print(f"stopped at minimiser step {saved['steps']} (dt {saved['dt']:.4g}, alpha {saved['alpha']:.4g})")
        restart = str(tmp_path / "b" / "ck.h5")
    final = _build(MinimizeRun, path, restart=restart).run()["result"]
    a, b = read_checkpoint(tmp_path / "a" / "ck.h5"), read_checkpoint(tmp_path / "b" / "ck.h5")
    oa, ob = np.argsort(a["ids"]), np.argsort(b["ids"])
    xa = (a["positions"] + a["images"] @ a["cell"])[oa]
    xb = (b["positions"] + b["images"] @ b["cell"])[ob]
    dev = max(np.abs(xa - xb).max(), np.abs(a["cell"] - b["cell"]).max())
    print(f"steps {whole.steps} vs {final.steps}; max |dx|, |dcell| = {dev:.3g} A")
    assert final.converged and final.steps == whole.steps
    assert dev < 1e-12                      # the same path, to round-off of the restarted force sums
    assert ase.io.read(tmp_path / "b" / "relaxed.extxyz").get_chemical_formula() == "Cu32"


# --------------------------------------------------------------------------- [free_energy]: messages
FE_SHORT = """mode = "solid"
temperature = 300.0
timestep = 0.001
npt_steps = 200
npt_max_blocks = 1
pressure_tolerance = 1e9
spring_steps = 100
n_iterations = 1
equilibration_steps = 50
switching_steps = 300
"""


def test_stiff_given_spring_blames_the_spring_constant_and_one_iteration_warns(tmp_path):
    """spring_constants Cu = 1e5 eV/A^2: a period of 2 pi sqrt(m/k) = 1.61 fs, 1.6 timesteps; the guard
    stop names that key and the period instead of blaming the timestep.  n_iterations = 1 warns that
    F has no error bar."""
    from acemd.drivers.free_energy import FreeEnergyRun
    text = f"""
[potential]
file = "{CU.as_posix()}"
[structure]
lattice = "fcc"
element = "Cu"
a = 3.62
repeat = [2, 2, 2]
[free_energy]
{FE_SHORT}spring_constants = {{Cu = 1e5}}
report = "fe.yaml"
data = "fe.h5"
checkpoint = "fe.ckpt.h5"
"""
    path = tmp_path / "fe.toml"
    path.write_text(text)
    run = _build(FreeEnergyRun, path)
    assert any("n_iterations] = 1" in w and "nan" in w for w in run.warnings)
    summary = run.run()
    message = summary["message"]
    print(message[:600])
    import math
    from ase.data import atomic_masses, atomic_numbers
    from acemd.units import FORCE_TO_ACCEL
    period_fs = 2e3 * math.pi / math.sqrt(1e5 * FORCE_TO_ACCEL / atomic_masses[atomic_numbers["Cu"]])
    assert summary["stopped_by"] == "guard"
    assert "[free_energy.spring_constants] Cu = 100000 eV/Å^2" in message
    assert f"period {period_fs:.3g} fs" in message and "reduce the timestep" not in message
