"""Free-energy terms under MPI (run by tests/test_mpi_suites.py with mpiexec -n 2, 3, 4): the
Einstein springs (global centre-of-mass sums, sites by id), the Uhlenbeck-Ford pair term
(ghost forces) and the lambda mixing give the serial energies, forces and virials, also
after atoms migrated between ranks; a short switch follows the serial trajectory."""
import numpy as np
import pytest
from mpi4py import MPI

from acemd.forcefield import ACETerm
from acemd.free_energy import EinsteinTerm, LambdaMixing, UhlenbeckFordTerm
from acemd.free_energy.switching import switch
from acemd.integrators import LangevinBAOAB

from engine_helpers import POTENTIALS, gather_by_id
from free_energy_helpers import crystal, make_engine

pytestmark = pytest.mark.mpi(min_size=2)


def _factories():
    cell, sites, _, _ = crystal(repeat=3, rattle=0.0, binary=True)
    return {
        "einstein": lambda n: [EinsteinTerm([1.7, 2.9], sites, cell)],
        "uf": lambda n: [UhlenbeckFordTerm(1000.0, p=50.0, sigma=1.5)],
        "mix": lambda n: [LambdaMixing(ACETerm(POTENTIALS / "Cu-I.yace"),
                                       EinsteinTerm([1.3], sites, cell), lam=0.4)],
    }


def _compare(comm, par, ser):
    n = ser.state.n_atoms_total
    assert abs(par.potential_energy - ser.potential_energy) / n < 1e-11
    f_par = gather_by_id(comm, par.state.ids, par.forces)
    np.testing.assert_allclose(f_par, ser.forces[np.argsort(ser.state.ids)], atol=1e-9)
    np.testing.assert_allclose(par.virial, ser.virial, atol=1e-8)
    for key, value in ser.term_energies.items():
        assert par.term_energies[key] == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("name", ["einstein", "uf", "mix"])
def test_terms_equal_serial_also_after_migration(name):
    comm = MPI.COMM_WORLD
    binary = name == "einstein"
    cell, pos, sp, names = crystal(repeat=3, rattle=0.1, binary=binary)
    factory = _factories()[name]
    par = make_engine(comm, factory, cell, pos, sp, names)
    ser = make_engine(MPI.COMM_SELF, factory, cell, pos, sp, names)
    _compare(comm, par, ser)
    # move every atom by a third of the box (crossing subdomains and the periodic boundary)
    shift = cell.sum(0) / 3.0
    for eng in (par, ser):
        eng.state.positions = eng.state.positions + shift
        eng.compute_forces(force_rebuild=True)
    _compare(comm, par, ser)
    if comm.rank == 0:
        print(f"\n{comm.size} ranks, {name}: E = {par.potential_energy:.10f} eV equals serial")


def test_switch_follows_the_serial_trajectory():
    comm = MPI.COMM_WORLD
    cell, pos, sp, names = crystal(repeat=3, rattle=0.0)
    factory = _factories()["mix"]
    works = []
    for c in (comm, MPI.COMM_SELF):
        eng = make_engine(c, factory, cell, pos, sp, names, temperature=600.0)
        integ = LangevinBAOAB(0.002, 600.0, damping=0.1, seed=4)
        integ.setup(eng)
        rec = switch(eng, integ, eng.forcefield.terms[0], 40, forward=True)
        works.append((rec.work, gather_by_id(c, eng.state.ids, eng.state.positions + eng.state.images @ eng.state.cell)))
    assert works[0][0] == pytest.approx(works[1][0], abs=1e-8)
    np.testing.assert_allclose(works[0][1], works[1][1], atol=1e-8)


def _route(comm, folder, body, harmonic_k=None, repeat=3):
    """The [free_energy] solid route on ``comm``; returns its report (every rank)."""
    import io

    from acemd.config import parse_config
    from acemd.drivers.free_energy import FreeEnergyRun
    text = f"""
[structure]
lattice = "fcc"
element = "Cu"
a = 3.64
repeat = [{repeat}, {repeat}, {repeat}]

[potential]
file = "{(POTENTIALS / 'Cu-I.yace').as_posix()}"

[free_energy]
report = "{(folder / 'fe.yaml').as_posix()}"
data = "{(folder / 'fe.h5').as_posix()}"
progress_every = 1000000
{body}
"""
    path = folder / "fe.toml"
    if comm.Get_rank() == 0:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    comm.Barrier()
    run = FreeEnergyRun(parse_config(text, path), text, path, comm=comm, stream=io.StringIO())
    if harmonic_k is not None:
        sim = run.simulation
        sim.term = EinsteinTerm.at_current_positions(comm, sim.state, [harmonic_k], name="harmonic")
        sim.set_terms([sim.term])
    return run.run()


def _shared(tmp_path_factory):
    comm = MPI.COMM_WORLD
    return comm.bcast(tmp_path_factory.mktemp("fe") if comm.rank == 0 else None)


@pytest.mark.parametrize("kind", ["harmonic", "ace", "liquid", "sweep"])
def test_solid_route_equals_serial(tmp_path_factory, kind):
    """The whole route on N ranks gives the serial free energy (Langevin noise is drawn per atom id)."""
    comm = MPI.COMM_WORLD
    base = _shared(tmp_path_factory)
    if kind == "harmonic":
        body = ("temperature = 500.0\nnpt = false\ntimestep = 0.002\nspring_steps = 400\nn_iterations = 2\n"
                "equilibration_steps = 100\nswitching_steps = 400\n")
        k, tol = 2.0, 1e-9
    elif kind == "liquid":
        body = ('mode = "liquid"\ntemperature = 1000.0\nmelt_temperature = 1300.0\ntimestep = 0.002\n'
                "melt_steps = 40\nquench_steps = 40\nnpt_steps = 40\nnpt_max_blocks = 1\npressure_tolerance = 1e9\n"
                "n_iterations = 1\nequilibration_steps = 10\nswitching_steps = 40\n")
        k, tol = None, 1e-7
    elif kind == "sweep":
        body = ('mode = "temperature_sweep"\ntemperature = 800.0\ntemperature_final = 1000.0\ntimestep = 0.002\n'
                "npt_steps = 40\nnpt_max_blocks = 1\npressure_tolerance = 1e9\nspring_steps = 40\n"
                "n_iterations = 1\nequilibration_steps = 10\nswitching_steps = 40\nsweep_steps = 60\n"
                "sweep_points = 5\n")
        k, tol = None, 1e-7
    else:
        body = ("temperature = 1000.0\ntimestep = 0.002\nnpt_steps = 40\nnpt_max_blocks = 1\n"
                "pressure_tolerance = 1e9\nspring_steps = 40\nn_iterations = 1\nequilibration_steps = 10\n"
                "switching_steps = 40\n")
        k, tol = None, 1e-7
    par = _route(comm, base / "par", body, k)
    ser = _route(MPI.COMM_SELF, base / f"ser{comm.rank}", body, k)
    fp, fs = par["acemd"]["helmholtz_free_energy"], ser["acemd"]["helmholtz_free_energy"]
    if comm.rank == 0:
        print(f"\n{comm.size} ranks, {kind} route: F = {fp:.10f} eV/atom, serial {fs:.10f}, |dF| = {abs(fp - fs):.1e}")
    assert fp == pytest.approx(fs, abs=tol)
    assert par["average"].get("spring_constant") == ser["average"].get("spring_constant")
    if kind == "sweep":
        cp, cs = par["temperature_sweep"], ser["temperature_sweep"]
        if comm.rank == 0:
            print(f"  G(1000 K) {cp['G'][-1]:.10f}, serial {cs['G'][-1]:.10f} eV/atom")
        assert cp["G"] == pytest.approx(cs["G"], abs=tol)
        assert cp["hysteresis"] == pytest.approx(cs["hysteresis"], abs=tol)
