"""The [free_energy] solid route end to end.

* A harmonic crystal (Einstein springs with the centre of mass fixed, k_h, as "the
  potential") through the whole route: spring constants from the NVT stage, switching
  cycles, reference free energies.  Its exact free energy is the fixed-centre-of-mass
  Einstein crystal's, F_E(k_h) + F_CM(k_h) per atom.
* Cu-I.yace, fcc Cu, 108 atoms at 1000 K and 0 bar: a short sanity run of every stage,
  its report, data file and table.
* Input errors name the key.
"""
import io

import h5py
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from acemd.config import ConfigError, parse_config
from acemd.drivers.free_energy import FreeEnergyRun
from acemd.free_energy import EinsteinTerm
from acemd.free_energy.reference import com_correction, einstein_free_energy
from acemd.simulation import InputError

from engine_helpers import POTENTIALS
from free_energy_helpers import signal_at_stage


def _input(tmp_path, body, repeat=3, a=3.61, potential="Cu-I.yace"):
    text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = {a}
repeat = [{repeat}, {repeat}, {repeat}]

[potential]
file = "{(POTENTIALS / potential).as_posix()}"

[free_energy]
report = "{(tmp_path / 'fe.yaml').as_posix()}"
data = "{(tmp_path / 'fe.h5').as_posix()}"
{body}
"""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "fe.toml"
    path.write_text(text)
    return parse_config(text, path), text, path


def _harmonic_run(tmp_path, k_h, body):
    settings, text, path = _input(tmp_path, body)
    stream = io.StringIO()
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream)
    sim = run.simulation
    harmonic = EinsteinTerm.at_current_positions(MPI.COMM_SELF, sim.state, [k_h], name="harmonic")
    sim.term = harmonic
    sim.set_terms([harmonic])
    return run, stream


HARMONIC = """
temperature = 500.0
npt = false
timestep = 0.002
damping = 0.05
spring_steps = 2000
n_iterations = 2
equilibration_steps = 300
switching_steps = 1500
progress_every = 100000
"""


def test_harmonic_crystal_through_the_solid_route(tmp_path):
    k_h = 2.0
    run, stream = _harmonic_run(tmp_path, k_h, HARMONIC)
    report = run.run()
    st = run.simulation.state
    n = st.n_atoms_total
    exact = (einstein_free_energy(500.0, [k_h], st.masses_by_species, [n])
             + com_correction(500.0, [k_h], st.masses_by_species, [n], st.volume))
    a = report["acemd"]
    k_ref = a["spring_constants_eV_A2"]["Cu"]
    print(f"\nharmonic crystal k_h = {k_h}: k from NVT {k_ref:.4f} (expected k_h N/(N-1) = {k_h * n / (n - 1):.4f}), "
          f"F = {a['helmholtz_free_energy']:.6f} +- {a['helmholtz_free_energy_error']:.1e}, exact {exact:.6f}, "
          f"error {a['helmholtz_free_energy'] - exact:+.1e} eV/atom, dissipation {a['dissipation']:.1e}")
    assert k_ref == pytest.approx(k_h * n / (n - 1), rel=0.05)
    assert a["helmholtz_free_energy"] == pytest.approx(exact, abs=1e-4)
    assert report["results"]["free_energy"] == pytest.approx(a["helmholtz_free_energy"], abs=1e-12)  # P = 0
    assert not a["warnings"]


def test_harmonic_crystal_with_given_springs_twice_as_stiff(tmp_path):
    """A real switch (k_ref = 2 k_h): the work carries the whole difference ln 2."""
    k_h = 1.5
    run, stream = _harmonic_run(tmp_path, k_h, HARMONIC.replace("spring_steps = 2000", "spring_constants = {Cu = 3.0}")
                                .replace("switching_steps = 1500", "switching_steps = 3000"))
    report = run.run()
    st = run.simulation.state
    n = st.n_atoms_total
    exact = (einstein_free_energy(500.0, [k_h], st.masses_by_species, [n])
             + com_correction(500.0, [k_h], st.masses_by_species, [n], st.volume))
    a = report["acemd"]
    err = a["helmholtz_free_energy"] - exact
    print(f"\nharmonic k_h = {k_h} from Einstein k = 3.0: work {report['results']['work']:.6f}, F error {err:+.1e} "
          f"+- {a['helmholtz_free_energy_error']:.1e} eV/atom, dissipation {a['dissipation']:.1e}")
    assert abs(err) < max(4 * a["helmholtz_free_energy_error"], 3e-4)
    assert report["results"]["work"] == pytest.approx(-1.5 * (n - 1) / n * 8.617333262e-5 * 500 * np.log(2), abs=3e-4)


@pytest.mark.slow
def test_cu_ace_solid_route_sanity(tmp_path):
    settings, text, path = _input(tmp_path, """
temperature = 1000.0
pressure = 0.0
timestep = 0.002
npt_steps = 600
npt_max_blocks = 2
pressure_tolerance = 3000.0
barostat_damping = 0.2
spring_steps = 600
n_iterations = 2
equilibration_steps = 100
switching_steps = 600
progress_every = 300
""", a=3.66)
    stream = io.StringIO()
    report = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream).run()
    out = stream.getvalue()
    print("\n" + "\n".join(out.splitlines()[-8:]))
    a, res = report["acemd"], report["results"]
    assert 2.0 < a["spring_constants_eV_A2"]["Cu"] < 7.0
    assert -4.3 < a["helmholtz_free_energy"] < -3.9
    assert 0.0 < a["dissipation"] < 0.02
    assert not any("melted" in w for w in a["warnings"])
    assert res["free_energy"] == pytest.approx(res["reference_system"] + res["work"] + res["pv"], abs=1e-12)
    assert "ETA" in out and "F = " in out
    saved = yaml.safe_load((tmp_path / "fe.yaml").read_text())
    assert set(saved) >= {"input", "average", "results"}
    assert set(saved["results"]) >= {"free_energy", "error", "reference_system", "einstein_crystal",
                                     "com_correction", "work", "pv", "unit"}
    with h5py.File(tmp_path / "fe.h5") as f:
        fw = f["iteration_001/forward"]
        assert fw["lambda"].shape == (601,) and fw["lambda"][0] == 0.0 and fw["lambda"][-1] == 1.0
        assert f["iteration_002/backward/lambda"][0] == 1.0
        du = fw["U_B"][:] - fw["U_A"][:]
        w = np.sum(0.5 * (du[1:] + du[:-1]) * np.diff(fw["f"][:]))
        assert w / 108 == pytest.approx(a["iterations"][0]["W_forward"], rel=1e-12)


@pytest.mark.parametrize("body,needle", [
    ('temperature = 1000.0\nmode = "soild"', "did you mean 'solid'"),
    ("temperature = 1000.0\nspring_constants = {Cu = -1.0}", "positive"),
])
def test_bad_free_energy_keys_name_the_key(tmp_path, body, needle):
    with pytest.raises(ConfigError, match=needle) as exc:
        _input(tmp_path, body)
    assert "free_energy" in str(exc.value)


@pytest.mark.parametrize("body,needle", [
    ("temperature = 1000.0\nspring_constants = {Cu = 2.0, Ni = 3.0}", r"spring_constants.Ni.*not in the structure"),
    ("temperature = 1000.0\nswitching_steps = 5", "too few"),
    ('temperature = 1000.0\nmode = "liquid"\nspring_constants = {Cu = 2.0}', "apply to mode"),
])
def test_unrunnable_free_energy_input_is_an_input_error(tmp_path, body, needle):
    settings, text, path = _input(tmp_path, body)
    with pytest.raises(InputError, match=needle):
        FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())


def _extrapolation_input(tmp_path, stop_threshold):
    asi = (POTENTIALS / "Cu-I.asi").as_posix()
    settings, text, path = _input(tmp_path, f"""
temperature = 600.0
timestep = 0.002
npt_steps = 40
npt_max_blocks = 1
pressure_tolerance = 1e9
spring_steps = 40
n_iterations = 1
equilibration_steps = 10
switching_steps = 20
progress_every = 1000

[extrapolation]
active_set = "{asi}"
every = 10
stop_threshold = {stop_threshold}
dump_file = "{(tmp_path / 'extrapolative.extxyz').as_posix()}"
""", repeat=2, potential="Cu-I.yaml")
    return settings, text, path


def test_extrapolation_grade_is_tracked_per_stage(tmp_path):
    settings, text, path = _extrapolation_input(tmp_path, 1e12)
    stream = io.StringIO()
    report = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream).run()
    by_stage = report["acemd"]["max_extrapolation_grade_by_stage"]
    print(f"\nmax gamma by stage: {by_stage}")
    assert set(by_stage) >= {"NPT block 1", "NVT spring constants", "iteration 1 switch ACE->Einstein",
                             "iteration 1 switch Einstein->ACE"}
    assert all(0.0 < g < 1e12 for g in by_stage.values())
    assert "max extrapolation grade in NPT block 1" in stream.getvalue()


def test_extrapolation_above_stop_threshold_stops_naming_the_stage(tmp_path):
    settings, text, path = _extrapolation_input(tmp_path, 1e-6)
    summary = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO()).run()
    assert summary["stopped_by"] == "extrapolation"
    assert "in stage 'NPT block 1' at step 10" in summary["message"]
    assert "no free energy" in summary["message"]
    assert (tmp_path / "extrapolative.extxyz").stat().st_size > 0
    assert not (tmp_path / "fe.yaml").exists()


RESTART_BODY = """
temperature = 800.0
timestep = 0.002
npt_steps = 100
npt_max_blocks = 1
pressure_tolerance = 1e9
spring_steps = 100
n_iterations = 2
equilibration_steps = 50
switching_steps = 150
progress_every = 1000000
"""


def _run_with_signal(tmp_path, stage, at_step, restart=None, body=RESTART_BODY):
    """The short ACE route; SIGUSR1 is sent once ``stage`` reaches ``at_step`` steps (if given)."""
    from acemd import signals
    signals._received = 0          # each run as a fresh process: forget an earlier run's SIGUSR1
    settings, text, path = _input(tmp_path, body, repeat=2, a=3.66)
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, restart=restart, stream=io.StringIO())
    if stage is not None:
        signal_at_stage(run, stage, at_step)
    return run.run()


@pytest.mark.parametrize("stage,at_step", [("NVT spring constants", 60), ("iteration 1 switch ACE->Einstein", 100),
                                           ("iteration 2 equilibrate l=1", 20)])
def test_interrupted_and_restarted_route_equals_the_uninterrupted_one(tmp_path, stage, at_step):
    straight = _run_with_signal(tmp_path / "straight", None, 0)
    stopped = _run_with_signal(tmp_path / "split", stage, at_step)
    assert stopped["stopped_by"] == "signal" and stopped["stage"] == stage
    assert "checkpoint" in stopped["message"] and "free_energy.ckpt.h5" in stopped["message"]   # the CLI adds the restart command
    ckpt = tmp_path / "split" / "free_energy.ckpt.h5"
    resumed = _run_with_signal(tmp_path / "split", None, 0, restart=str(ckpt))
    a, b = straight["acemd"], resumed["acemd"]
    print(f"\nSIGUSR1 in '{stage}': F straight {a['helmholtz_free_energy']:.12f}, restarted "
          f"{b['helmholtz_free_energy']:.12f} eV/atom")
    assert b["helmholtz_free_energy"] == pytest.approx(a["helmholtz_free_energy"], abs=1e-10)
    assert b["spring_constants_eV_A2"] == a["spring_constants_eV_A2"]
    assert [r["W_forward"] for r in b["iterations"]] == pytest.approx([r["W_forward"] for r in a["iterations"]],
                                                                       abs=1e-9)


def test_run_with_given_spring_constants_restarts_to_the_same_result(tmp_path):
    """Given springs skip the NVT stage; the checkpoint must still be readable (no NaN msd in it)."""
    body = RESTART_BODY.replace("spring_steps = 100", "spring_constants = {Cu = 3.0}")
    straight = _run_with_signal(tmp_path / "straight", None, 0, body=body)
    stopped = _run_with_signal(tmp_path / "split", "iteration 1 switch ACE->Einstein", 100, body=body)
    assert stopped["stopped_by"] == "signal"
    resumed = _run_with_signal(tmp_path / "split", None, 0, restart=str(tmp_path / "split" / "free_energy.ckpt.h5"),
                               body=body)
    a, b = straight["acemd"], resumed["acemd"]
    print(f"\ngiven springs: F straight {a['helmholtz_free_energy']:.12f}, restarted {b['helmholtz_free_energy']:.12f}")
    assert b["helmholtz_free_energy"] == pytest.approx(a["helmholtz_free_energy"], abs=1e-10)
    assert b["spring_constants_eV_A2"] == {"Cu": 3.0}
    assert b["mean_square_displacement_A2"] is None


def test_restart_with_changed_protocol_is_an_input_error(tmp_path):
    _run_with_signal(tmp_path, "NVT spring constants", 60)
    settings, text, path = _input(tmp_path, RESTART_BODY.replace("n_iterations = 2", "n_iterations = 3"),
                                  repeat=2, a=3.66)
    with pytest.raises(InputError, match="differs from the run that wrote"):
        FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, restart=str(tmp_path / "free_energy.ckpt.h5"),
                      stream=io.StringIO())


def test_a_solid_that_melts_is_reported(tmp_path):
    """The Uhlenbeck-Ford fluid (p = 50, sigma = 1.5 Å: x = 0.72 at this density, a liquid) put on an
    fcc lattice as "the potential": the atoms leave their sites, and the report says so."""
    from acemd.free_energy import UhlenbeckFordTerm
    settings, text, path = _input(tmp_path, """
temperature = 1000.0
npt = false
timestep = 0.002
spring_steps = 600
n_iterations = 1
equilibration_steps = 200
switching_steps = 100
progress_every = 1000000
""")
    stream = io.StringIO()
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream)
    sim = run.simulation
    sim.term = UhlenbeckFordTerm(1000.0, p=50.0, sigma=1.5)
    sim.set_terms([sim.term])
    report = run.run()
    melted = [w for w in report["acemd"]["warnings"] if "melted" in w]
    print("\n" + "\n".join(melted))
    assert any("NVT stage" in w for w in melted)
    assert "WARNING: the solid melted" in stream.getvalue()


def test_binary_harmonic_crystal_per_species_springs(tmp_path):
    """A random Al-Ni fcc crystal on per-species springs (k_Al = 1.2, k_Ni = 2.6 eV/Å^2, unequal
    masses) through the whole route: per-species spring constants from the NVT stage, the
    concentration-weighted Einstein free energy and the mass-weighted centre-of-mass
    correction reproduce the exact F_E(k_h) + F_CM(k_h)."""
    from ase.build import bulk
    from ase.io import write
    atoms = bulk("Ni", "fcc", a=3.56, cubic=True).repeat((3, 3, 3))
    rng = np.random.default_rng(5)
    symbols = np.where(rng.random(len(atoms)) < 0.3, "Al", "Ni")
    atoms.set_chemical_symbols(list(symbols))
    tmp_path.mkdir(parents=True, exist_ok=True)
    write(tmp_path / "alni.extxyz", atoms)
    text = f"""
[structure]
file = "alni.extxyz"

[potential]
file = "{(POTENTIALS / 'Al-Ni_opt_all.yace').as_posix()}"

[free_energy]
temperature = 600.0
npt = false
timestep = 0.002
damping = 0.05
spring_steps = 3000
n_iterations = 2
equilibration_steps = 200
switching_steps = 1000
progress_every = 1000000
"""
    path = tmp_path / "fe.toml"
    path.write_text(text)
    run = FreeEnergyRun(parse_config(text, path), text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    sim = run.simulation
    k_h = np.array([1.2, 2.6])                    # the potential's order: Al, Ni
    assert sim.state.species_names == ["Al", "Ni"]
    sim.term = EinsteinTerm.at_current_positions(MPI.COMM_SELF, sim.state, k_h, name="harmonic")
    sim.set_terms([sim.term])
    report = run.run()
    st = sim.state
    counts = np.bincount(st.species, minlength=2)
    exact = (einstein_free_energy(600.0, k_h, st.masses_by_species, counts)
             + com_correction(600.0, k_h, st.masses_by_species, counts, st.volume))
    a = report["acemd"]
    print(f"\nAl-Ni harmonic ({counts[0]} Al, {counts[1]} Ni): k from NVT {a['spring_constants_eV_A2']}, "
          f"F = {a['helmholtz_free_energy']:.6f}, exact {exact:.6f}, error {a['helmholtz_free_energy'] - exact:+.1e}")
    assert a["spring_constants_eV_A2"]["Al"] == pytest.approx(1.2, rel=0.07)
    assert a["spring_constants_eV_A2"]["Ni"] == pytest.approx(2.6, rel=0.07)
    assert a["helmholtz_free_energy"] == pytest.approx(exact, abs=1e-4)
    assert report["input"]["element"] == "Al Ni"
    assert [float(c) for c in report["input"]["concentration"].split()] == pytest.approx(counts / counts.sum(), abs=1e-5)


def test_max_force_guard_stops_the_solid_route_with_exit_4(tmp_path):
    """[guards] apply in the driver's stages: a tiny max_force trips at the first check of the NPT
    stage (step 10); exit status 4, the last good state (step 0, the lattice: forces ~0) in
    <checkpoint>.guard.h5, which --restart refuses (it is no stage boundary)."""
    from acemd.cli import main
    from acemd.io.checkpoint import read_checkpoint
    body = RESTART_BODY + f'checkpoint = "{(tmp_path / "ck.h5").as_posix()}"\n'
    settings, text, path = _input(tmp_path, body, repeat=2, a=3.66)
    path.write_text(text + "\n[guards]\nmax_force = 0.05\n")
    assert main([str(path)]) == 4
    ck = read_checkpoint(tmp_path / "ck.guard.h5")
    stop = ck["state"]["free_energy"]["guard_stop"]
    print(f"\nguard stop: {stop['message']}")
    assert ck["step"] == 0 and stop["stage"] == "NPT" and "max_force" in stop["message"]
    assert not (tmp_path / "fe.yaml").exists()
    settings, text, path = _input(tmp_path, body, repeat=2, a=3.66)
    with pytest.raises(InputError, match="last good state before a blow-up"):
        FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, restart=str(tmp_path / "ck.guard.h5"),
                      stream=io.StringIO())
