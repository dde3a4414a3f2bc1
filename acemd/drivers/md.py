"""The MD driver: builds a run from checked settings and integrates it.

Composes the pieces (structure, potential, force field, engine, integrator,
thermo log, H5MD trajectory, checkpoints) and never reaches into kernels.
"""
from __future__ import annotations

import signal
import sys
import time as _time
from pathlib import Path

from mpi4py import MPI

from ..integrators import BarostatGeometryError, build_integrator
from ..signals import StopRequested
from ..simulation import InputError, Simulation, initial_velocities  # noqa: F401 (re-exported)


THERMO_COLUMNS = [("Step", "", "{:d}"), ("Time", "ps", "{:.6f}"), ("Temp", "K", "{:.4f}"),
                  ("PotEng", "eV", "{:.8f}"), ("KinEng", "eV", "{:.8f}"), ("TotEng", "eV", "{:.8f}"),
                  ("Press", "bar", "{:.4f}"), ("Volume", "A^3", "{:.4f}"), ("Conserved", "eV", "{:.8f}")]


class MDRun:
    """One MD run: ``MDRun(settings, text, path, comm).run()``.

    Builds its own :class:`~acemd.simulation.Simulation`, or runs on one a
    driver passes in (``simulation=``), so that MD can be a stage of a longer
    protocol.
    """

    def __init__(self, settings, input_text, input_path, comm=MPI.COMM_WORLD, restart=None,
                 stream=sys.stdout, simulation: Simulation | None = None):
        md = settings["md"]
        if simulation is None:
            simulation = Simulation(settings, input_text, input_path, comm=comm, restart=restart,
                                    skin=md["skin"], stream=stream)
        self.simulation = simulation
        self.settings = settings
        self.input_text = input_text
        self.input_path = Path(input_path)
        self.comm = simulation.comm
        self.rank = self.comm.Get_rank()
        self.stream = stream
        self.nsteps = md["steps"]
        self.term = simulation.term
        self.forcefield = simulation.forcefield
        self.state = simulation.state
        self.engine = simulation.engine
        self.restart_note = ""
        from ..io.checkpoint import writer_of
        writer = writer_of(simulation.restart_state) if simulation.restarting else "md"
        continuing = simulation.restarting and writer == "md"
        if writer != "md":          # another driver's checkpoint: its atoms start a new run (preflight said so)
            self._start_from_foreign_checkpoint(writer)
        self._restart_data = ({"state": simulation.restart_state} if continuing else None)
        self.integrator = build_integrator(settings)
        self.monitor = self._extrapolation_monitor(restart if continuing else None)
        if continuing:
            saved = simulation.restart_state.get("integrator", {})
            if not saved:
                self.restart_note = "checkpoint without integrator state (e.g. from [minimize])"
            elif saved.get("name", self.integrator.name) == self.integrator.name:
                try:
                    self.integrator.load_state_dict(saved)
                except ValueError as exc:
                    raise InputError(f"{simulation.restart}: {exc}") from None
            else:
                # e.g. NVT equilibration continued in NVE: positions and velocities carry
                # over, the new ensemble's own variables start fresh
                self.restart_note = (f"checkpoint ensemble '{saved.get('name')}' -> "
                                     f"'{self.integrator.name}': thermostat/barostat variables start fresh")

    def _start_from_foreign_checkpoint(self, writer):
        """Step 0 with the checkpoint's atoms and cell; velocities from [velocities] when the input has
        that section, else the checkpoint's (zero after [minimize]); outputs are written anew."""
        from ..restarts import input_has_section
        from ..simulation import initial_velocities
        st, v = self.state, self.settings["velocities"]
        step = st.step
        st.step, st.time = 0, 0.0
        drawn = input_has_section(self.input_text, "velocities")
        if drawn:
            st.velocities = initial_velocities(self.comm, st, v["temperature"], v["seed"], v["zero_momentum"])
        self.restart_note = (f"from the atoms and cell of the [{writer}] checkpoint "
                             f"{self.simulation.restart} (its step {step}); velocities "
                             + ("drawn from [velocities]" if drawn else "from the checkpoint"))

    # ------------------------------------------------------------ output
    def _metadata(self):
        return self.simulation.metadata()

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
        self.simulation.write_checkpoint(state={"integrator": self.integrator.state_dict()})

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
                        preamble=self.simulation.preamble() + [
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
            if stopped_by == "guard" and st.step % thermo_every:   # the last good state, which the checkpoint holds
                eng.compute_forces(force_rebuild=True)
                log.row(st.step, self._thermo_row(self._thermo_values()[1]))
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
            message = f"{guards.message} (checkpoint: {s['checkpoint']['file']})"
        elif stopped_by:
            message = (f"stopped by {stopped_by} at step {st.step}: checkpoint written to "
                       f"{s['checkpoint']['file']}")    # the CLI adds the command that continues
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
