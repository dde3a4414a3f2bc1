"""The [free_energy] liquid route: Uhlenbeck-Ford reference, its excess free energy by
switching the UF fluid to the ideal gas, and the checks that refuse a liquid that is not.

* The UF excess free energy from the UF -> ideal-gas switch against the virial series at
  a low density, beta F_ex/N = B~2 x + B~3 x^2 / 2 + O(x^3), with the exact coefficients of
  acemd.free_energy.uf_virial (checked against published values and quadrature in
  test_uf_virial.py).
* The ideal gas as "the potential" through the whole route: F equals F_ideal-gas (the
  ACE<->UF and UF<->ideal-gas switches must cancel: signs and bookkeeping).
* Cu-I.yace has no stable liquid: the route stops with a message, never a number.
* melt = false from a crystal is an input error (freud's averaged q6; the check itself:
  test_structure_check.py).
"""
import io

import numpy as np
import pytest
from ase.build import bulk
from mpi4py import MPI

from acemd.config import parse_config
from acemd.drivers.free_energy import FreeEnergyRun, NoStableLiquidError
from acemd.free_energy import LambdaMixing, UhlenbeckFordTerm
from acemd.free_energy.liquid import CRYSTAL_Q6BAR, ZeroTerm, mean_averaged_q6
from acemd.free_energy.reference import ideal_gas_free_energy
from acemd.free_energy.uf_virial import reduced_density, series_excess, series_terms
from acemd.free_energy.switching import free_energy_difference, run_at_fixed_lambda, switch
from acemd.integrators import LangevinBAOAB
from acemd.simulation import InputError

from engine_helpers import POTENTIALS
from free_energy_helpers import SELF, make_engine, signal_at_stage


def test_uf_excess_free_energy_by_switching_at_low_density():
    T, p, sigma = 1000.0, 50.0, 1.5
    n_side, spacing = 5, 7.0                         # 125 atoms, rho = 1/343 Å^-3 (x = 0.027)
    cell = np.eye(3) * n_side * spacing
    rng = np.random.default_rng(2)
    pos = rng.random((n_side ** 3, 3)) * cell.diagonal()
    sp = np.zeros(len(pos), dtype=np.int64)
    engine = make_engine(SELF, lambda n: [LambdaMixing(UhlenbeckFordTerm(T, p, sigma), ZeroTerm())],
                         cell, pos, sp, ["Cu"], temperature=T)
    mix = engine.forcefield.terms[0]
    integ = LangevinBAOAB(0.002, T, damping=0.05, seed=3)
    integ.setup(engine)
    n = len(pos)
    rho = n / np.linalg.det(cell)
    ests = []
    for _ in range(3):
        run_at_fixed_lambda(engine, integ, mix, 0.0, 300)
        fw = switch(engine, integ, mix, 1500, forward=True)
        bw = switch(engine, integ, mix, 1500, forward=False)
        df, q = free_energy_difference(fw, bw)
        ests.append(-df / n)                        # F_UF - F_ideal = F_ex
    f_ex = float(np.mean(ests))
    err = float(np.std(ests, ddof=1) / np.sqrt(len(ests)))
    x = reduced_density(rho, sigma)
    t2, t3 = series_terms(x, p)
    virial = series_excess(x, p, T)
    print(f"\nUF p={p} x={x:.4f}: F_ex by switching {f_ex:.6f} +- {err:.1e} eV/atom; virial series {virial:.6f} "
          f"(beta F_ex/N terms B2 x = {t2:.4f}, B3 x^2/2 = {t3:.5f}; the neglected B4 term ~ {t3 * x:.0e} kB T)")
    assert f_ex == pytest.approx(virial, abs=3 * err + 5e-4)


def _liquid_input(tmp_path, body, repeat=3, a=3.61):
    text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = {a}
repeat = [{repeat}, {repeat}, {repeat}]

[potential]
file = "{(POTENTIALS / 'Cu-I.yace').as_posix()}"

[free_energy]
mode = "liquid"
report = "{(tmp_path / 'fe.yaml').as_posix()}"
data = "{(tmp_path / 'fe.h5').as_posix()}"
progress_every = 1000000
{body}
"""
    path = tmp_path / "fe.toml"
    path.write_text(text)
    return parse_config(text, path), text, path


def test_ideal_gas_as_the_potential_gives_the_ideal_gas_free_energy(tmp_path):
    settings, text, path = _liquid_input(tmp_path, """
temperature = 1000.0
npt = false
timestep = 0.002
damping = 0.05
melt_steps = 200
quench_steps = 200
n_iterations = 2
equilibration_steps = 200
switching_steps = 1500
min_distance = 1e-6

[guards]
min_distance = 0.0    # ideal-gas atoms overlap: no blow-up
""")
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    sim = run.simulation
    sim.term = ZeroTerm()
    sim.set_terms([sim.term])
    report = run.run()
    st = sim.state
    n = st.n_atoms_total
    exact = ideal_gas_free_energy(1000.0, n / st.volume, st.masses_by_species, [n])
    a, res = report["acemd"], report["results"]
    print(f"\nideal gas through the liquid route: F = {a['helmholtz_free_energy']:.6f} +- "
          f"{a['helmholtz_free_energy_error']:.1e}, exact {exact:.6f}; UF excess {res['uf_excess']:.5f}, "
          f"work {res['work']:+.5f} eV/atom (x = {a['uf']['x']:.3f})")
    assert res["ideal_gas"] == pytest.approx(exact, abs=1e-12)
    assert res["uf_excess"] > 0.05 and res["work"] == pytest.approx(-res["uf_excess"], rel=0.05)
    assert a["helmholtz_free_energy"] == pytest.approx(exact, abs=max(4 * a["helmholtz_free_energy_error"], 2e-3))


@pytest.mark.parametrize("guards", [False, True])
def test_cu_i_liquid_collapses_and_no_free_energy_is_reported(tmp_path, guards):
    """The driver's collapse check (guards off) and a blow-up guard tripping in an ACE stage of the
    liquid route (guards on: the collapsing atoms trip min_distance first) both end with "no stable
    liquid" and no number."""
    settings, text, path = _liquid_input(tmp_path, """
temperature = 1800.0
timestep = 0.002
melt_steps = 3000
quench_steps = 1000
npt_steps = 3000
n_iterations = 1
""" + ("" if guards else "\n[guards]\nenabled = false\n"), a=3.62)
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    with pytest.raises(NoStableLiquidError, match="no stable liquid") as exc:
        run.run()
    print(f"\n{exc.value}")
    if guards:
        assert "blow-up guard" in str(exc.value) or "apart" in str(exc.value)
    assert not (tmp_path / "fe.yaml").exists()


def test_liquid_route_from_a_crystal_without_melting_is_an_input_error(tmp_path):
    settings, text, path = _liquid_input(tmp_path, "temperature = 1500.0\nmelt = false\n")
    with pytest.raises(InputError, match="starts from a crystal"):
        FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO()).run()


def test_averaged_q6_tells_crystal_from_random_packing():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    assert mean_averaged_q6(atoms) == pytest.approx(0.5745, abs=2e-3)      # perfect fcc: q6 bar = q6
    rnd = atoms.copy()
    rnd.positions = np.random.default_rng(0).random((len(atoms), 3)) * atoms.cell.lengths()
    assert mean_averaged_q6(rnd) < CRYSTAL_Q6BAR


def _liquid_with_signal(tmp_path, stage, at_step, restart=None):
    from acemd import signals
    signals._received = 0          # each run as a fresh process: forget an earlier run's SIGUSR1
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings, text, path = _liquid_input(tmp_path, """
temperature = 1000.0
melt_temperature = 1300.0
timestep = 0.002
melt_steps = 60
quench_steps = 60
npt_steps = 60
npt_max_blocks = 1
pressure_tolerance = 1e9
n_iterations = 1
equilibration_steps = 30
switching_steps = 80
""", repeat=2, a=3.62)
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, restart=restart, stream=io.StringIO())
    if stage is not None:
        signal_at_stage(run, stage, at_step)
    return run.run()


def test_interrupted_liquid_route_restarts_to_the_same_result(tmp_path):
    straight = _liquid_with_signal(tmp_path / "a", None, 0)
    stopped = _liquid_with_signal(tmp_path / "b", "iteration 1 switch UF->ideal gas", 50)
    assert stopped["stopped_by"] == "signal"
    resumed = _liquid_with_signal(tmp_path / "b", None, 0, restart=str(tmp_path / "b" / "free_energy.ckpt.h5"))
    a, b = straight["acemd"], resumed["acemd"]
    print(f"\nliquid route F straight {a['helmholtz_free_energy']:.12f}, restarted {b['helmholtz_free_energy']:.12f}")
    assert b["helmholtz_free_energy"] == pytest.approx(a["helmholtz_free_energy"], abs=1e-10)
    assert resumed["results"]["uf_excess"] == pytest.approx(straight["results"]["uf_excess"], abs=1e-10)


def test_a_structure_that_does_not_melt_is_reported(tmp_path):
    """Springs as "the potential" never melt: the liquid route says so after the melt stage."""
    from acemd.free_energy import EinsteinTerm
    settings, text, path = _liquid_input(tmp_path, """
temperature = 500.0
npt = false
timestep = 0.002
melt_steps = 50
quench_steps = 50
n_iterations = 1
equilibration_steps = 10
switching_steps = 20
""", repeat=2)
    stream = io.StringIO()
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=stream)
    sim = run.simulation
    sim.term = EinsteinTerm.at_current_positions(MPI.COMM_SELF, sim.state, [5.0], name="springs")
    sim.set_terms([sim.term])
    report = run.run()
    warnings = report["acemd"]["warnings"]
    assert any("did not melt at 1000 K" in w for w in warnings)
    assert any("crystallised during the quench" in w for w in warnings)
    assert report["acemd"]["structure_q6"]["melt"] > CRYSTAL_Q6BAR


def _ideal_gas_route(tmp_path, body, a=3.61, repeat=2):
    """The liquid route with the ideal gas as "the potential" (cheap: only the UF term costs)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings, text, path = _liquid_input(tmp_path, body, repeat=repeat, a=a)
    run = FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
    run.simulation.term = ZeroTerm()
    run.simulation.set_terms([run.simulation.term])
    return run.run()


IDEAL_GAS_BODY = """
temperature = 1000.0
npt = false
timestep = 0.002
damping = 0.05
melt_steps = 50
quench_steps = 50
equilibration_steps = 100
switching_steps = 50
min_distance = 1e-6
"""
NO_DISTANCE_GUARD = "\n[guards]\nmin_distance = 0.0    # ideal-gas atoms overlap: no blow-up\n"


def test_longer_uf_switches_dissipate_less(tmp_path):
    """uf_switching_steps sets the UF <-> ideal-gas switches alone (x = 0.80, 32 atoms); past the
    sudden-switch regime the dissipation falls roughly as 1/steps."""
    import h5py
    q = {}
    for steps in (1000, 4000):
        report = _ideal_gas_route(tmp_path / str(steps), IDEAL_GAS_BODY + f"n_iterations = 1\nuf_switching_steps = {steps}\n"
                                  + NO_DISTANCE_GUARD)
        q[steps] = float(np.mean([r["uf_dissipation"] for r in report["acemd"]["iterations"]]))
        assert report["acemd"]["protocol"]["uf_switching_steps"] == steps
        with h5py.File(tmp_path / str(steps) / "fe.h5") as f:
            assert len(f["iteration_001/gas_forward/lambda"]) == steps + 1
            assert len(f["iteration_001/forward/lambda"]) == 51
    print(f"\nUF<->ideal gas dissipation: {q[1000] * 1000:.1f} meV/atom at 1000 steps, {q[4000] * 1000:.1f} at 4000")
    assert 0.0 < q[4000] < 0.5 * q[1000]


def test_uf_excess_through_the_driver_matches_the_virial_series_at_low_density(tmp_path):
    """fcc at a = 10 Å (108 atoms, x = 0.038): the driver's UF excess against B~2 x + B~3 x^2 / 2."""
    report = _ideal_gas_route(tmp_path, IDEAL_GAS_BODY.replace("equilibration_steps = 100", "equilibration_steps = 300")
                              + "n_iterations = 3\nuf_switching_steps = 2000\n" + NO_DISTANCE_GUARD,
                              a=10.0, repeat=3)
    a, res = report["acemd"], report["results"]
    x = a["uf"]["x"]
    virial = series_excess(x, 50.0, 1000.0)
    print(f"\nUF excess through the driver at x = {x:.4f}: {res['uf_excess']:.6f} +- {a['uf_excess_error']:.1e}, "
          f"virial series {virial:.6f} eV/atom")
    assert res["uf_excess"] == pytest.approx(virial, abs=3 * a["uf_excess_error"] + 5e-4)


def test_uf_switching_steps_below_ten_is_an_input_error(tmp_path):
    settings, text, path = _liquid_input(tmp_path, "temperature = 1000.0\nuf_switching_steps = 5\n")
    with pytest.raises(InputError, match="uf_switching_steps"):
        FreeEnergyRun(settings, text, path, comm=MPI.COMM_SELF, stream=io.StringIO())
