"""The set-up every driver shares: structure, state, force field, engine, metadata.

A :class:`Simulation` is built once from the checked settings (``[structure]``,
``[potential]``, ``[masses]``, ``[velocities]``, ``[parallel]``) or from a
checkpoint, and the drivers (md, minimize, elastic, free energy) run their
stages on it: integrate, relax, deform the cell, add force terms, take a
snapshot and go back to it.  Nothing here knows which driver is running.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

from . import __version__
from .engine import Engine
from .forcefield import ACETerm, ForceField
from .parallel.collective import on_root
from .rng import PURPOSE_VELOCITIES, normals_per_atom
from .state import State
from .units import BOLTZMANN, EV_PER_A3_TO_BAR, FORCE_TO_ACCEL, UNITS_LINE

from .config import DRIVER_SECTIONS  # noqa: E402,F401 (the one list of driver sections)


class InputError(ValueError):
    """The input is consistent TOML but cannot be run (e.g. element missing from the potential)."""


def masses_by_species(species_names, settings_masses, path):
    """Masses (amu) in the potential's element order: ``[masses]`` or ASE's standard values."""
    from ase.data import atomic_masses, atomic_numbers
    out = []
    for el in species_names:
        if el in settings_masses:
            out.append(settings_masses[el])
        else:
            out.append(float(atomic_masses[atomic_numbers[el]]))
    for el in settings_masses:
        if el not in species_names:
            raise InputError(f"{path}: [masses.{el}] names an element the structure does not contain "
                             f"(it has {', '.join(species_names)})")
    return np.array(out)


def check_atom_count(settings, n_atoms, path):
    """Refuse a structure too small for the driver: the MD-based drivers ([md], [free_energy],
    [elastic] at temperature > 0) need two atoms, since the velocities and the thermostats take
    the centre of mass out and one atom then has no degree of freedom left (and no temperature)."""
    if n_atoms >= 2:
        return
    md_based = [name for name in ("md", "free_energy") if settings.get(name)]
    if settings.get("elastic") and float(settings["elastic"].get("temperature", 0.0)) > 0.0:
        md_based.append("elastic")
    if md_based:
        raise InputError(f"{path}: [structure] has {n_atoms} atom(s); [{md_based[0]}] needs at least 2: its "
                         "temperature counts 3N - 3 degrees of freedom (the centre of mass is fixed), none for "
                         "one atom. Repeat the cell ([structure].repeat = [3, 3, 3], or a larger supercell "
                         "for meaningful statistics); [minimize] and [elastic] at 0 K accept one atom")


def check_structure(settings, n_atoms, pbc, path):
    """The checks of a run that need only the structure's size and periodicity, made before the
    force field is built or a kernel compiled (also by ``acemd --check``): the atom count
    (:func:`check_atom_count`) and a barostat coupling the cell cannot take (iso or triclinic
    coupling of a slab), which the integrators found only at their first step."""
    from .integrators.barostat import BarostatGeometryError, coupled_axes
    check_atom_count(settings, n_atoms, path)
    wanted = []
    md = settings.get("md") or {}
    if str(md.get("ensemble", "")).startswith("npt"):
        wanted.append(("[barostat].coupling", (settings.get("barostat") or {}).get("coupling", "iso")))
    el = settings.get("elastic") or {}
    if float(el.get("temperature", 0.0) or 0.0) > 0.0 and el.get("coupling", "auto") != "auto":
        wanted.append(("[elastic].coupling", el["coupling"]))
    for key, coupling in wanted:
        try:
            coupled_axes(coupling, pbc)
        except BarostatGeometryError as exc:
            raise InputError(f"{path}: {exc}".replace("[barostat].coupling", key)) from None


def initial_velocities(comm, state: State, temperature, seed, zero_momentum):
    """Maxwell-Boltzmann velocities drawn per atom id, rescaled to exactly ``temperature``.

    Zero velocities when ``temperature`` is 0 or no degree of freedom is left (one atom with its
    momentum removed; :func:`check_atom_count` refuses that before a run)."""
    n = state.n_local
    if temperature <= 0.0 or (zero_momentum and state.n_atoms_total < 2):
        return np.zeros((n, 3))
    m = state.masses
    sigma = np.sqrt(BOLTZMANN * temperature * FORCE_TO_ACCEL / m)[:, None]
    v = normals_per_atom(seed, PURPOSE_VELOCITIES, 0, state.ids) * sigma
    if zero_momentum:
        local = np.concatenate([(m[:, None] * v).sum(0), [m.sum()]])
        tot = comm.allreduce(local, op=MPI.SUM)
        v -= tot[:3] / tot[3]
    ke2 = comm.allreduce(float((m[:, None] * v * v).sum()), op=MPI.SUM) / FORCE_TO_ACCEL
    dof = max(3 * state.n_atoms_total - (3 if zero_momentum else 0), 1)
    current = ke2 / (dof * BOLTZMANN)
    return v * np.sqrt(temperature / current)


def driver_section(settings) -> str:
    """The one driver section the input names (config has checked there is exactly one)."""
    return next(s for s in DRIVER_SECTIONS if settings.get(s))


class Simulation:
    """Atoms on this rank, the force field and the engine, built once for a whole protocol.

    ``skin`` (Å) is the Verlet skin of the neighbour list; ``restart`` a
    checkpoint to start from instead of ``[structure]``.
    """

    def __init__(self, settings, input_text, input_path, comm=MPI.COMM_WORLD, restart=None,
                 skin=1.0, stream=sys.stdout):
        self.settings = settings
        self.input_text = input_text
        self.input_path = Path(input_path)
        self.comm = comm
        self.rank = comm.Get_rank()
        self.stream = stream
        self.restart = restart
        self.term = ACETerm(settings["potential"]["file"])
        self.potential = self.term.potential
        self.forcefield = ForceField([self.term])
        self.restart_state = None          # the checkpoint's 'state' group when restarting
        self.state = self._initial_state(restart)
        self.engine = Engine(comm, self.state, self.forcefield, skin,
                             grid=settings["parallel"].get("grid"))

    @property
    def restarting(self) -> bool:
        return self.restart is not None

    # ------------------------------------------------------------ set-up
    def _initial_state(self, restart):
        from .parallel import Decomposition, Halo
        pot = self.potential
        names = pot.elements

        def read_global():
            if restart is not None:
                from .io.checkpoint import read_checkpoint
                data = read_checkpoint(restart)
                if list(data["species_names"]) != names:
                    raise InputError(f"{restart}: checkpoint species {list(data['species_names'])} do not "
                                     f"match the potential's {names}")
                return data
            from .io.structure import load_structure
            atoms = load_structure(self._structure_spec(), self.input_path.parent)
            symbols = atoms.get_chemical_symbols()
            missing = sorted(set(symbols) - set(names))
            if missing:
                raise InputError(f"{self.input_path}: [structure] contains {', '.join(missing)}, which the "
                                 f"potential {pot.path} does not describe (it has {', '.join(names)}); "
                                 "use a potential fitted for these elements")
            if not np.all(np.isfinite(atoms.positions)):
                raise InputError(f"{self.input_path}: [structure] has NaN or inf positions")
            n = len(atoms)
            cell = atoms.cell.array.copy()
            pbc = atoms.pbc.copy()
            for d in range(3):
                if not pbc[d] and np.linalg.norm(cell[d]) == 0.0:
                    raise InputError(f"{self.input_path}: [structure] is non-periodic along axis {d} and has "
                                     "no box there; give the structure a cell (e.g. atoms.center(vacuum=...))")
            return {"step": 0, "time": 0.0, "cell": cell, "pbc": pbc,
                    "ids": np.arange(n, dtype=np.int64), "positions": atoms.positions.copy(),
                    "species": pot.species_of(symbols), "images": np.zeros((n, 3), dtype=np.int64),
                    "velocities": None, "state": {}}

        data = on_root(self.comm, read_global)
        cell = self.comm.bcast(data["cell"] if self.rank == 0 else None)
        pbc = self.comm.bcast(data["pbc"] if self.rank == 0 else None)
        n_total = self.comm.bcast(len(data["ids"]) if self.rank == 0 else None)
        check_structure(self.settings, n_total, pbc, restart if restart is not None else self.input_path)
        header = self.comm.bcast({k: data[k] for k in ("step", "time", "state")} if self.rank == 0 else None)
        if restart is not None:
            self.restart_state = header["state"]
        masses = masses_by_species(names, self.settings["masses"], self.input_path)
        grid = self.settings["parallel"].get("grid")
        if grid is not None and int(np.prod(grid)) != self.comm.Get_size():
            raise InputError(f"{self.input_path}: [parallel.grid] {grid} has {int(np.prod(grid))} subdomains "
                             f"but the run has {self.comm.Get_size()} MPI ranks")
        halo = Halo(Decomposition(self.comm, cell, pbc, dims=grid))
        arrays = None
        if self.rank == 0:
            vel = data["velocities"] if data["velocities"] is not None else np.zeros((n_total, 3))
            arrays = {"positions": data["positions"], "ids": data["ids"], "species": data["species"],
                      "velocities": vel, "image": data["images"]}
        local = halo.distribute(arrays)
        state = State(cell=np.asarray(cell, float), pbc=np.asarray(pbc, bool), ids=None, species=None,
                      positions=None, velocities=None, images=None, species_names=list(names),
                      masses_by_species=masses, n_atoms_total=n_total,
                      step=int(header["step"]), time=float(header["time"]))
        state.set_per_atom_arrays(local)
        if restart is None:
            v = self.settings["velocities"]
            state.velocities = initial_velocities(self.comm, state, v["temperature"], v["seed"],
                                                  v["zero_momentum"])
        return state

    def _structure_spec(self):
        s = dict(self.settings["structure"])
        if "rattle_seed" in s:
            s["seed"] = s.pop("rattle_seed")
        return s

    # ------------------------------------------------------------ force field
    def set_terms(self, terms):
        """Replace the force field by ``terms`` (e.g. ACE plus Einstein springs, lambda-mixed)."""
        self.forcefield = ForceField(terms)
        self.engine.set_forcefield(self.forcefield)

    # ------------------------------------------------------------ cell and configurations
    def deform(self, deformation):
        """Apply the deformation gradient F (3x3) affinely to the cell and all atoms (collective).

        Rows of the cell are lattice vectors, so they become ``h @ F.T``; positions
        ``x @ F.T``.  Images stay valid because unwrapped positions deform alike.
        """
        F = np.asarray(deformation, dtype=float)
        st = self.state
        st.positions = np.ascontiguousarray(st.positions @ F.T)
        self.engine.set_cell(st.cell @ F.T)

    def snapshot(self) -> dict:
        """This rank's atoms, the cell, step and time: enough to come back with :meth:`restore`."""
        st = self.state
        return {"arrays": {k: v.copy() for k, v in st.per_atom_arrays().items()},
                "cell": st.cell.copy(), "step": st.step, "time": st.time}

    def restore(self, snap: dict):
        """Return to a :meth:`snapshot` (collective); the next force call rebuilds the lists."""
        st = self.state
        st.set_per_atom_arrays({k: v.copy() for k, v in snap["arrays"].items()})
        st.step, st.time = snap["step"], snap["time"]
        self.engine.set_cell(snap["cell"])
        self.engine.invalidate()

    # ------------------------------------------------------------ observables
    def compute(self, force_rebuild=False):
        """Energies, forces and virial of the current configuration."""
        self.engine.compute_forces(force_rebuild=force_rebuild)

    def virial_pressure_bar(self) -> np.ndarray:
        """The pressure tensor of the potential alone (bar; no kinetic term): W / V."""
        return self.engine.virial / self.state.volume * EV_PER_A3_TO_BAR

    def max_force(self) -> float:
        """Largest |F| of any atom (eV/Å), global."""
        f = self.engine.forces
        local = float(np.sqrt((f * f).sum(1)).max()) if len(f) else 0.0
        return self.comm.allreduce(local, op=MPI.MAX)

    # ------------------------------------------------------------ output
    def metadata(self) -> dict:
        return {"acemd_version": __version__, "input_file": str(self.input_path),
                "input_text": self.input_text, "potential_file": str(self.potential.path),
                "potential_sha256": self.potential.file_sha256, "units": UNITS_LINE}

    def preamble(self) -> list[str]:
        """Header lines every driver's log starts with."""
        st = self.state
        return [f"acemd {__version__}", UNITS_LINE, f"input: {self.input_path}",
                f"potential: {self.potential.path} (sha256 {self.potential.file_sha256[:16]})",
                f"atoms: {st.n_atoms_total}, ranks: {self.comm.Get_size()}, "
                f"grid: {tuple(self.engine.decomposition.dims)}"]

    def write_checkpoint(self, path=None, state=None, step=None, time_ps=None):
        """Checkpoint of the atoms and ``state`` (driver/integrator variables), collective."""
        from .io.checkpoint import write_checkpoint
        st = self.state
        write_checkpoint(path or self.settings["checkpoint"]["file"], self.comm,
                         step=st.step if step is None else step,
                         time_ps=st.time if time_ps is None else time_ps,
                         cell=st.cell, pbc=st.pbc, ids=st.ids, positions=st.positions,
                         velocities=st.velocities, species=st.species, images=st.images,
                         masses_by_species=st.masses_by_species, species_names=st.species_names,
                         state=state or {}, metadata=self.metadata())

    def gather_atoms(self):
        """The whole configuration as ``ase.Atoms`` on rank 0 (None elsewhere), ordered by id."""
        from ase import Atoms

        from .parallel.gather import gather_by_id
        st = self.state
        _, data = gather_by_id(self.comm, st.ids, {"positions": st.positions, "species": st.species,
                                                  "forces": self.engine.forces},
                               n_expected=st.n_atoms_total)
        if self.rank != 0:
            return None
        symbols = [st.species_names[s] for s in data["species"]]
        atoms = Atoms(symbols, positions=data["positions"], cell=st.cell, pbc=st.pbc)
        atoms.arrays["forces"] = data["forces"]
        return atoms

    def write_structure(self, path, info=None):
        """Write the configuration as extended XYZ (rank 0, replaced atomically; collective).

        The potential energy (eV), forces (eV/Å) and, for a periodic cell, the stress (eV/Å³,
        ASE sign: -virial/V, positive = tensile) are stored as ASE reads them back:
        ``ase.io.read(path).get_potential_energy()``, ``get_forces()``, ``get_stress()``.
        """
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.io import write

        from .io.atomic import replaced_atomically
        atoms = self.gather_atoms()
        energy, virial = self.engine.potential_energy, np.array(self.engine.virial)

        def write_root():
            results = {"energy": energy, "forces": atoms.arrays.pop("forces")}
            if atoms.pbc.all():
                w = 0.5 * (virial + virial.T) / atoms.get_volume()
                results["stress"] = -np.array([w[0, 0], w[1, 1], w[2, 2], w[1, 2], w[0, 2], w[0, 1]])
            atoms.calc = SinglePointCalculator(atoms, **results)
            atoms.info["units"] = "energy eV, forces eV/Angstrom, stress eV/Angstrom^3 (tensile > 0)"
            atoms.info.update(info or {})
            with replaced_atomically(path) as tmp:
                write(tmp, atoms, format="extxyz", parallel=False)

        on_root(self.comm, write_root)
