"""The MD driver: builds a run from checked settings and integrates it.

Composes the pieces (structure, potential, force field, engine, integrator,
thermo log, H5MD trajectory, checkpoints) and never reaches into kernels.
"""
from __future__ import annotations

import signal
import sys
import time as _time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from .. import __version__
from ..engine import Engine
from ..forcefield import ACETerm, ForceField
from ..integrators import BarostatGeometryError, build_integrator
from ..parallel.collective import on_root
from ..rng import PURPOSE_VELOCITIES, normals_per_atom
from ..state import State
from ..units import BOLTZMANN, FORCE_TO_ACCEL, UNITS_LINE


class InputError(ValueError):
    """The input is consistent TOML but cannot be run (e.g. element missing from the potential)."""


THERMO_COLUMNS = [("Step", "", "{:d}"), ("Time", "ps", "{:.6f}"), ("Temp", "K", "{:.4f}"),
                  ("PotEng", "eV", "{:.8f}"), ("KinEng", "eV", "{:.8f}"), ("TotEng", "eV", "{:.8f}"),
                  ("Press", "bar", "{:.4f}"), ("Volume", "A^3", "{:.4f}"), ("Conserved", "eV", "{:.8f}")]


class StopRequested:
    """Remembers SIGTERM/SIGUSR1 (what SLURM sends before the wall time)."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def install(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:      # not in the main thread
                pass

    def uninstall(self):
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handler(self, signum, frame):
        self.signum = signum


def _masses_by_species(species_names, settings_masses, path):
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


def initial_velocities(comm, state: State, temperature, seed, zero_momentum):
    """Maxwell-Boltzmann velocities drawn per atom id, rescaled to exactly ``temperature``."""
    n = state.n_local
    if temperature <= 0.0:
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


class MDRun:
    """One MD run: ``MDRun(settings, text, comm).run()``."""

    def __init__(self, settings, input_text, input_path, comm=MPI.COMM_WORLD, restart=None,
                 stream=sys.stdout):
        self.settings = settings
        self.input_text = input_text
        self.input_path = Path(input_path)
        self.comm = comm
        self.rank = comm.Get_rank()
        self.stream = stream
        md = settings["md"]
        self.nsteps = md["steps"]
        self.term = ACETerm(settings["potential"]["file"])
        self.forcefield = ForceField([self.term])
        self.restart_note = ""
        self.state = self._initial_state(restart)
        self.integrator = build_integrator(settings)
        self.engine = Engine(comm, self.state, self.forcefield, md["skin"],
                             grid=settings["parallel"].get("grid"))
        self.monitor = self._extrapolation_monitor(restart)
        if restart is not None:
            saved = self._restart_data["state"].get("integrator", {})
            if saved.get("name", self.integrator.name) == self.integrator.name:
                try:
                    self.integrator.load_state_dict(saved)
                except ValueError as exc:
                    raise InputError(f"{restart}: {exc}") from None
            else:
                # e.g. NVT equilibration continued in NVE: positions and velocities carry
                # over, the new ensemble's own variables start fresh
                self.restart_note = (f"checkpoint ensemble '{saved.get('name')}' -> "
                                     f"'{self.integrator.name}': thermostat/barostat variables start fresh")

    # ------------------------------------------------------------ setup
    def _initial_state(self, restart):
        from ..parallel import Decomposition, Halo
        pot = self.term.potential
        names = pot.elements

        def read_global():
            if restart is not None:
                from ..io.checkpoint import read_checkpoint
                data = read_checkpoint(restart)
                if list(data["species_names"]) != names:
                    raise InputError(f"{restart}: checkpoint species {list(data['species_names'])} do not "
                                     f"match the potential's {names}")
                return data
            from ..io.structure import load_structure
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
        self._restart_data = data if restart is not None else None
        cell = self.comm.bcast(data["cell"] if self.rank == 0 else None)
        pbc = self.comm.bcast(data["pbc"] if self.rank == 0 else None)
        n_total = self.comm.bcast(len(data["ids"]) if self.rank == 0 else None)
        header = self.comm.bcast({k: data[k] for k in ("step", "time", "state")} if self.rank == 0 else None)
        if restart is not None:
            self._restart_data = {"state": header["state"]}
        masses = _masses_by_species(names, self.settings["masses"], self.input_path)
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

    # ------------------------------------------------------------ output
    def _metadata(self):
        return {"acemd_version": __version__, "input_file": str(self.input_path),
                "input_text": self.input_text, "potential_file": str(self.term.potential.path),
                "potential_sha256": self.term.potential.file_sha256, "units": UNITS_LINE}

    def _thermo_values(self):
        th = self.engine.thermo()
        st = self.state
        return th, {"Step": st.step, "Time": st.time, "Temp": th["temperature"],
                    "PotEng": th["potential_energy"], "KinEng": th["kinetic_energy"],
                    "TotEng": th["total_energy"], "Press": th["pressure"], "Volume": th["volume"],
                    "Conserved": th["total_energy"] + self.integrator.conserved_extra(self.engine)}

    # ------------------------------------------------------------ extrapolation grade
    def _extrapolation_monitor(self, restart):
        """The [extrapolation] monitor, or None without that section."""
        if not self.settings["extrapolation"]:
            return None
        from ..extrapolation_monitor import ExtrapolationMonitor
        from ..potential.extrapolation import ActiveSetError
        try:
            return ExtrapolationMonitor(self.comm, self.term.potential, self.settings["extrapolation"],
                                        self.state, restart_step=self.state.step if restart else None)
        except ActiveSetError as exc:
            raise InputError(f"{self.input_path}: [extrapolation.active_set] {exc}") from None

    def _thermo_row(self, row):
        """A thermo row with MaxGamma (most recent evaluation) when [extrapolation] is on."""
        if self.monitor is not None:
            row["MaxGamma"] = self.monitor.max_gamma
        return row

    def write_checkpoint(self):
        from ..io.checkpoint import write_checkpoint
        st = self.state
        write_checkpoint(self.settings["checkpoint"]["file"], self.comm, step=st.step, time_ps=st.time,
                         cell=st.cell, pbc=st.pbc, ids=st.ids, positions=st.positions,
                         velocities=st.velocities, species=st.species, images=st.images,
                         masses_by_species=st.masses_by_species, species_names=st.species_names,
                         state={"integrator": self.integrator.state_dict()},
                         metadata=self._metadata())

    # ------------------------------------------------------------ run
    def run(self):
        from ..io.thermo import ThermoLog
        s = self.settings
        st = self.state
        eng = self.engine
        eng.compute_forces(force_rebuild=True)
        try:
            self.integrator.setup(eng)
        except BarostatGeometryError as exc:
            raise InputError(f"{self.input_path}: {exc}") from None
        from ..guards import Guards
        guards = Guards(s, self.comm, eng, self.integrator)      # blow-up guards ([guards])
        thermo_every = s["thermo"]["every"]
        traj_every = s["trajectory"]["every"]
        ckpt_every = s["checkpoint"]["every"]
        restarting = self._restart_data is not None
        columns = THERMO_COLUMNS + ([("MaxGamma", "", "{:.6g}")] if self.monitor is not None else [])
        log = ThermoLog(self.comm, columns, log_path=s["thermo"]["file"], stream=self.stream,
                        total_steps=self.nsteps, start_step=st.step,
                        preamble=[f"acemd {__version__}", UNITS_LINE, f"input: {self.input_path}",
                                  f"potential: {self.term.potential.path} "
                                  f"(sha256 {self.term.potential.file_sha256[:16]})",
                                  f"atoms: {st.n_atoms_total}, ranks: {self.comm.Get_size()}, "
                                  f"grid: {tuple(eng.decomposition.dims)}",
                                  (f"restart from step {st.step}" if restarting else "new run")
                                  + (f" ({self.restart_note})" if self.restart_note else "")]
                                 + ([self.integrator.WARNING] if hasattr(self.integrator, "WARNING") else []),
                        append=restarting)
        writer = None
        if traj_every > 0:
            from ..io.h5md import H5MDWriter
            writer = H5MDWriter(s["trajectory"]["file"], self.comm, st.n_atoms_total, st.species_names,
                                fields=tuple(s["trajectory"]["fields"]),
                                pbc=st.pbc, metadata=self._metadata(), append=restarting,
                                restart_step=st.step if restarting else None)
        stop = StopRequested()
        stop.install()
        t_start = _time.perf_counter()
        stopped_by = None
        try:
            if self.monitor is not None and self.monitor.start(eng, restarting):
                stopped_by = "extrapolation"
            th, row = self._thermo_values()
            if not restarting or st.step % thermo_every == 0:
                log.row(st.step, self._thermo_row(row))
            if writer is not None and not restarting:
                self._write_frame(writer, th)
            while st.step < self.nsteps and stopped_by is None:
                if guards.step(self.integrator, eng):          # integrator step + blow-up guards
                    stopped_by = "guard"                          # state put back to the last good one
                    break
                step = st.step
                last = step == self.nsteps
                extrapolating = (self.monitor is not None and self.monitor.due(step)
                                 and self.monitor.check(eng))
                if step % thermo_every == 0 or last or extrapolating:
                    th, row = self._thermo_values()
                    log.row(step, self._thermo_row(row))
                if writer is not None and step % traj_every == 0:
                    self._write_frame(writer, self.engine.thermo())
                if ckpt_every and step % ckpt_every == 0:
                    self.write_checkpoint()
                if extrapolating:
                    stopped_by = "extrapolation"
                    break
                if self.comm.allreduce(stop.signum, op=MPI.MAX):
                    stopped_by = signal.Signals(self.comm.allreduce(stop.signum, op=MPI.MAX)).name
                    break
            if stopped_by not in (None, "guard", "extrapolation") and st.step % thermo_every:
                log.row(st.step, self._thermo_row(self._thermo_values()[1]))   # the signal's stop step
            self.write_checkpoint()
        finally:
            stop.uninstall()
            if writer is not None:
                writer.close()
        wall = _time.perf_counter() - t_start
        message = ""
        if stopped_by == "extrapolation":
            message = self.monitor.stop_message(s["checkpoint"]["file"])
        elif stopped_by == "guard":
            message = guards.message
        elif stopped_by:
            message = (f"stopped by {stopped_by} at step {st.step}: checkpoint written to "
                       f"{s['checkpoint']['file']}; continue with --restart")
        log.close(extra=[message] if message else [])
        return {"steps": st.step, "wall_s": wall, "stopped_by": stopped_by, "message": message,
                "max_gamma": None if self.monitor is None else self.monitor.max_gamma,
                "potential_energy": eng.potential_energy, "rebuilds": eng.n_rebuilds,
                "timers": dict(eng.timers)}

    def _write_frame(self, writer, th):
        st = self.state
        from ..io.wrapping import wrap_periodic          # frames always wrapped, whatever the history
        positions, images = wrap_periodic(st.positions, st.images, st.cell, st.pbc)
        data = {"position": positions, "velocity": st.velocities, "force": self.engine.forces,
                "species": st.species, "id": st.ids, "image": images,
                "energy": self.engine.site_energy}
        if "gamma" in writer.fields:      # evaluated for this frame if the schedule did not
            data["gamma"] = self.monitor.current_gamma(self.engine)
        obs = {"temperature": th["temperature"], "potential_energy": th["potential_energy"],
               "kinetic_energy": th["kinetic_energy"], "total_energy": th["total_energy"],
               "pressure": th["pressure"], "volume": th["volume"],
               "conserved_energy": th["total_energy"] + self.integrator.conserved_extra(self.engine)}
        if "gamma" in writer.fields:
            obs["max_gamma"] = self.monitor.max_gamma
        writer.write_frame(st.step, st.time, st.cell, st.ids, data, obs)
