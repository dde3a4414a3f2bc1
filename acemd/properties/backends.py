"""How a property protocol gets its energies and relaxations: acemd's engine, or an ASE calculator.

:class:`AcemdBackend` relaxes with acemd's minimiser (:class:`acemd.minimizers.Minimizer`) on
an :class:`AtomsSimulation`: a structure with ``parallel_min_atoms`` atoms or more is relaxed by
domain decomposition over all ranks; smaller ones whole on one rank each, several at a time
(``relax_many``), so that 1 and N ranks give the same numbers.  Single-point energies go round-robin
over the ranks through acemd's ``ACECalculator`` (the same numba kernel).

:class:`AseBackend` runs the same protocol with any ASE calculator (the reference) and ASE's
optimisers (FIRE, or L-BFGS; a cell filter for cell relaxations), its structures also spread
over the ranks.  Both return the same shapes, so a property module never knows which it has.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..engine import Engine
from ..forcefield import ACETerm, ForceField
from ..simulation import Simulation, masses_by_species
from ..state import State
from .base import RelaxationError


class AtomsSimulation(Simulation):
    """A :class:`~acemd.simulation.Simulation` of an ``ase.Atoms`` (the same on every rank of
    ``comm``) with an existing ACE term: no input structure, no checkpoint, no velocities."""

    def __init__(self, atoms, term: ACETerm, settings, comm, skin=1.0):
        from ..parallel import Decomposition, Halo
        self.settings = settings
        self.input_text = ""
        self.input_path = Path("[properties]")
        self.comm = comm
        self.rank = comm.Get_rank()
        self.stream = None
        self.restart = None
        self.restart_state = None
        self.term = term
        self.potential = term.potential
        self.forcefield = ForceField([term])
        names = list(self.potential.elements)
        n = len(atoms)
        cell = np.array(atoms.cell.array, dtype=float)
        pbc = np.array(atoms.pbc, dtype=bool)
        halo = Halo(Decomposition(comm, cell, pbc))
        arrays = None
        if self.rank == 0:
            arrays = {"positions": np.array(atoms.positions, dtype=float),
                      "ids": np.arange(n, dtype=np.int64),
                      "species": self.potential.species_of(atoms.get_chemical_symbols()),
                      "velocities": np.zeros((n, 3)), "image": np.zeros((n, 3), dtype=np.int64)}
        local = halo.distribute(arrays)
        masses = masses_by_species(names, settings.get("masses") or {}, self.input_path)
        self.state = State(cell=cell, pbc=pbc, ids=None, species=None, positions=None, velocities=None,
                           images=None, species_names=names, masses_by_species=masses, n_atoms_total=n)
        self.state.set_per_atom_arrays(local)
        self.engine = Engine(comm, self.state, self.forcefield, skin)

    def atoms(self):
        """The configuration as ``ase.Atoms`` on every rank (ordered by id, unwrapped)."""
        atoms = self.gather_atoms()
        atoms = self.comm.bcast(atoms, root=0)
        atoms.arrays.pop("forces", None)
        return atoms


def _split(n_items, comm):
    """Indices of the items this rank handles (round-robin)."""
    return list(range(comm.Get_rank(), n_items, comm.Get_size()))


def _gather_ordered(comm, n_items, mine: dict):
    """{index: result} of every rank merged into a list in index order (on every rank)."""
    merged = {}
    for part in comm.allgather(mine):
        merged.update(part)
    return [merged[i] for i in range(n_items)]


def single_point(atoms, calc) -> dict:
    """Energy, forces and (periodic cells) stress of ``atoms`` with an ASE calculator."""
    a = atoms.copy()
    a.calc = calc
    out = {"energy": float(a.get_potential_energy()), "forces": np.array(a.get_forces())}
    if a.pbc.all():
        out["stress"] = np.array(a.get_stress(voigt=True))
    return out


class _Backend:
    """What both backends share: structures spread over ranks, results everywhere."""

    label = "acemd"

    def __init__(self, comm, relax_settings):
        self.comm = comm
        self.relax_settings = dict(relax_settings)
        self.force_calls = 0

    def calculator(self):
        raise NotImplementedError

    def evaluate(self, structures) -> list[dict]:
        calc = self.calculator()
        mine = {i: single_point(structures[i], calc) for i in _split(len(structures), self.comm)}
        self.force_calls += self.comm.allreduce(len(mine), op=MPI.SUM)
        return _gather_ordered(self.comm, len(structures), mine)

    def relax(self, atoms, cell="fixed", fmax=None):
        return self.relax_many([atoms], cell=cell, fmax=fmax)[0]

    def relax_many(self, structures, cell="fixed", fmax=None):
        """[(relaxed ase.Atoms, energy eV)] of each structure, every rank gets all."""
        mine = {}
        for i in _split(len(structures), self.comm):
            mine[i] = self._relax_serial(structures[i], cell, fmax)
        return [(a, e) for a, e in _gather_ordered(self.comm, len(structures), mine)]

    def _relax_serial(self, atoms, cell, fmax):
        raise NotImplementedError


class AcemdBackend(_Backend):
    """acemd's engine and minimiser (see the module doc)."""

    label = "acemd"

    def __init__(self, term: ACETerm, settings, comm, relax_settings, parallel_min_atoms=256):
        super().__init__(comm, relax_settings)
        self.term = term
        self.settings = settings
        self.parallel_min_atoms = int(parallel_min_atoms)
        self._calc = None

    def calculator(self):
        from ..potential.calculator import ACECalculator
        if self._calc is None:
            self._calc = ACECalculator(self.term.potential)
        return self._calc

    def relax_many(self, structures, cell="fixed", fmax=None):
        small = [i for i, a in enumerate(structures) if len(a) < self.parallel_min_atoms or self.comm.Get_size() == 1]
        results = {}
        if small:
            mine = {i: self._relax_on(structures[i], cell, fmax, MPI.COMM_SELF)
                    for k, i in enumerate(small) if k % self.comm.Get_size() == self.comm.Get_rank()}
            for part in self.comm.allgather(mine):
                results.update(part)
        for i, a in enumerate(structures):
            if i not in results:
                results[i] = self._relax_on(a, cell, fmax, self.comm)
        return [results[i] for i in range(len(structures))]

    def _relax_on(self, atoms, cell, fmax, comm):
        from ..minimizers import Minimizer
        sec = self.relax_settings
        sim = AtomsSimulation(atoms, self.term, self.settings, comm, skin=sec["skin"])
        minimizer = Minimizer(sim, method=sec["method"], cell=cell, pressure=sec["pressure"],
                              fmax=fmax or sec["fmax"], stress_tol=sec["stress_tol"],
                              max_steps=sec["max_steps"], max_displacement=sec["max_displacement"])
        result = minimizer.run()
        self.force_calls += result.force_calls
        if result.reason == "guard":                # no checkpoint of this structure: say nothing of one
            import re
            message = re.sub(r" The checkpoint holds the last good state[^.]*\.", "", result.message)
            raise RelaxationError(f"relaxation of {atoms.get_chemical_formula()} ({len(atoms)} atoms, cell "
                                  f"{cell}): {message}")
        if not result.converged:
            from ..drivers.minimize import describe
            raise RelaxationError(f"relaxation of {atoms.get_chemical_formula()} ({len(atoms)} atoms, cell "
                                  f"{cell}): {describe(result)}; raise [properties].max_steps or loosen fmax")
        relaxed = sim.atoms()
        return relaxed, float(sim.engine.potential_energy)


class AseBackend(_Backend):
    """An ASE calculator (the reference) with ASE's optimisers (see the module doc)."""

    label = "reference"

    def __init__(self, factory, comm, relax_settings):
        super().__init__(comm, relax_settings)
        self.factory = factory

    def calculator(self):
        return self.factory()

    def _relax_serial(self, atoms, cell, fmax):
        from ase.optimize import FIRE, LBFGS
        from ..units import EV_PER_A3_TO_BAR
        sec = self.relax_settings
        a = atoms.copy()
        a.calc = self.calculator()
        target = a
        if cell != "fixed":
            from ase.filters import FrechetCellFilter
            pressure = sec["pressure"] / EV_PER_A3_TO_BAR
            if cell == "iso":
                target = FrechetCellFilter(a, hydrostatic_strain=True, scalar_pressure=pressure)
            elif cell == "aniso":
                target = FrechetCellFilter(a, mask=[1, 1, 1, 0, 0, 0], scalar_pressure=pressure)
            else:
                target = FrechetCellFilter(a, scalar_pressure=pressure)
        opt = (FIRE if sec["method"] == "fire" else LBFGS)(target, logfile=None,
                                                             maxstep=sec["max_displacement"])
        fmax = fmax or sec["fmax"]
        converged = bool(opt.run(fmax=fmax, steps=sec["max_steps"]))
        self.force_calls += opt.nsteps
        if not converged:
            raise RelaxationError(f"reference relaxation of {a.get_chemical_formula()} ({len(a)} atoms, cell "
                                  f"{cell}) did not reach fmax {fmax} eV/Å in {sec['max_steps']} steps")
        energy = float(a.get_potential_energy())
        a.calc = None
        return a, energy
