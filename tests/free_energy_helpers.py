"""Small systems for the free-energy tests: fcc crystals (one or two species) as an Engine."""
import numpy as np
from ase.build import bulk
from mpi4py import MPI

from acemd.drivers.md import initial_velocities
from acemd.engine import Engine
from acemd.forcefield import ForceField
from acemd.parallel import Decomposition, Halo
from acemd.state import State

MASSES = {"Cu": 63.546, "Ni": 58.6934}


def crystal(repeat=2, a=3.61, rattle=0.05, seed=3, binary=False):
    """Global arrays (cell, positions, species, names) of rattled fcc Cu (or random Cu-Ni)."""
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
    rng = np.random.default_rng(seed)
    n = len(atoms)
    pos = atoms.positions + rng.normal(0.0, rattle, (n, 3))
    names = ["Cu", "Ni"] if binary else ["Cu"]
    species = (rng.random(n) < 0.4).astype(np.int64) if binary else np.zeros(n, dtype=np.int64)
    return atoms.cell.array.copy(), pos, species, names


def make_engine(comm, terms_factory, cell, positions, species, names, temperature=0.0, seed=5,
                skin=0.5):
    """Engine over ``comm`` with the atoms distributed by position; ``terms_factory(n)`` -> terms."""
    n = len(positions)
    halo = Halo(Decomposition(comm, cell, np.array([True] * 3)))
    arrays = None
    if comm.Get_rank() == 0:
        arrays = {"positions": positions.copy(), "ids": np.arange(n, dtype=np.int64), "species": species,
                  "velocities": np.zeros((n, 3)), "image": np.zeros((n, 3), dtype=np.int64)}
    local = halo.distribute(arrays)
    st = State(cell=np.array(cell, float), pbc=np.array([True] * 3), ids=None, species=None, positions=None,
               velocities=None, images=None, species_names=list(names),
               masses_by_species=np.array([MASSES[e] for e in names]), n_atoms_total=n)
    st.set_per_atom_arrays(local)
    engine = Engine(comm, st, ForceField(terms_factory(n)), skin=skin)
    if temperature > 0:
        st.velocities = initial_velocities(comm, st, temperature, seed, True)
    engine.compute_forces(force_rebuild=True)
    return engine


def energy_at(engine, positions_by_id, cell=None):
    """Potential energy with the atoms moved to ``positions_by_id`` (serial engines only)."""
    st = engine.state
    if cell is not None:
        engine.set_cell(cell)
    st.positions = np.ascontiguousarray(positions_by_id[st.ids])
    engine.compute_forces(force_rebuild=True)
    return engine.potential_energy


def positions_by_id(engine):
    st = engine.state
    out = np.empty((st.n_atoms_total, 3))
    out[st.ids] = st.positions
    return out


def forces_by_id(engine):
    st = engine.state
    out = np.empty((st.n_atoms_total, 3))
    out[st.ids] = engine.forces
    return out


SELF = MPI.COMM_SELF


def signal_at_stage(run, stage, at_step):
    """Make ``run`` (a FreeEnergyRun) send itself SIGUSR1 when its stage ``stage`` reaches
    ``at_step`` observed steps: an interruption at a chosen point, for restart tests."""
    import os
    import signal

    from acemd import signals
    signals._received = 0          # each run as a fresh process: forget an earlier run's SIGUSR1
    original, seen = run._observe, {"n": 0}

    def observe(name):
        original(name)
        if name == stage:
            seen["n"] += 1
            if seen["n"] == at_step:
                os.kill(os.getpid(), signal.SIGUSR1)
    run._observe = observe
