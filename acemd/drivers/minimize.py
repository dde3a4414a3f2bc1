"""The ``[minimize]`` driver: relax atoms (and the cell) and write the relaxed structure.

Stages on one :class:`~acemd.simulation.Simulation`: minimise, then write the
relaxed structure (extxyz) and a checkpoint that ``[md]`` can ``--restart``
from (zero velocities, step 0).  A blow-up guard stop (``[guards]``) writes only the
checkpoint, of the last good state, and no structure (exit status 4); a stop signal writes
both and exits 75 (``--restart`` continues the minimisation from there).
"""
from __future__ import annotations

import sys

import numpy as np
from mpi4py import MPI

from ..minimizers import Minimizer
from ..signals import StopRequested
from ..simulation import InputError, Simulation

MINIMIZE_COLUMNS = [("Step", "", "{:d}"), ("Energy", "eV", "{:.8f}"), ("Enthalpy", "eV", "{:.8f}"),
                    ("Fmax", "eV/A", "{:.6g}"), ("Press", "bar", "{:.4f}"), ("dStress", "bar", "{:.4g}"),
                    ("Volume", "A^3", "{:.4f}")]


class NotConvergedError(RuntimeError):
    """A minimisation ended at max_steps (or stuck) without meeting its criteria."""


def minimizer_from_settings(simulation, section: dict, log=None, stop=None, cell=None, resume=None) -> Minimizer:
    """A Minimizer configured from a checked ``[minimize]``-like section."""
    try:
        return Minimizer(simulation, method=section["method"], cell=cell or section["cell"],
                         pressure=section["pressure"], fmax=section["fmax"],
                         stress_tol=section["stress_tol"], max_steps=section["max_steps"],
                         max_displacement=section["max_displacement"], log=log,
                         log_every=section.get("log_every", 10), stop=stop, resume=resume)
    except ValueError as exc:
        raise InputError(f"{simulation.input_path}: {exc}") from None


def describe(result) -> str:
    what = {"converged": "converged (fmax and stress criteria met)",
            "max_steps": "WARNING: stopped at max_steps without converging",
            "stuck": "WARNING: stopped: no downhill progress (FIRE uphill limit)",
            "line search": "WARNING: stopped: the line search no longer lowers the energy (round-off)",
            "signal": "stopped by a signal",
            "guard": "STOPPED by a blow-up guard (not converged)"}[result.reason]
    return (f"{what}; {result.steps} steps, {result.force_calls} force calls, E = {result.energy:.8f} eV, "
            f"fmax = {result.fmax:.3g} eV/A, stress deviation = {result.stress_deviation:.3g} bar, "
            f"V = {result.volume:.4f} A^3")


class MinimizeRun:
    """``MinimizeRun(settings, text, path, comm).run()``: the [minimize] driver."""

    def __init__(self, settings, input_text, input_path, comm=MPI.COMM_WORLD, restart=None,
                 stream=sys.stdout):
        section = settings["minimize"]
        self.settings = settings
        self.section = section
        self.stream = stream
        self.simulation = Simulation(settings, input_text, input_path, comm=comm, restart=restart,
                                     skin=section["skin"], stream=stream)
        self.resume = self._resume_state()

    def _resume_state(self):
        """A FIRE run stopped by a signal continues where it was (its velocities, time step and mixing
        from the checkpoint, so the path is the uninterrupted one); anything else starts afresh."""
        sim = self.simulation
        saved = ((sim.restart_state or {}).get("driver") or {}) if sim.restarting else {}
        resume = saved.get("resume") if saved.get("name") == "minimize" else None
        if not resume or (resume.get("method"), resume.get("cell")) != (self.section["method"], self.section["cell"]):
            return None
        v_by_id = sim.comm.bcast(np.asarray(resume["v_by_id"]) if sim.rank == 0 else None)
        if v_by_id.shape != (sim.state.n_atoms_total, 3):
            return None
        sim.state.extra_per_atom["fire_v"] = np.ascontiguousarray(v_by_id[sim.state.ids])
        return {k: v for k, v in resume.items() if k != "v_by_id"}

    def _stop_state(self, minimizer, converged):
        """The checkpoint's driver state; after a signal it holds the FIRE state to continue from."""
        state = {"name": "minimize", "converged": int(converged)}
        resume = minimizer.resume_state()
        if resume is not None and "fire_v" in minimizer.final_extra:
            from ..parallel.gather import gather_by_id
            sim = self.simulation
            _, data = gather_by_id(sim.comm, minimizer.final_ids, {"v": minimizer.final_extra["fire_v"]},
                                   n_expected=sim.state.n_atoms_total)
            resume["v_by_id"] = data["v"] if sim.rank == 0 else np.zeros((0, 3))
            resume["cell"] = self.section["cell"]
            state["resume"] = resume
        return state

    def run(self) -> dict:
        from ..io.thermo import ThermoLog
        sim = self.simulation
        sec = self.section
        resuming = self.resume is not None
        stop = StopRequested()
        minimizer = minimizer_from_settings(
            sim, dict(sec, log_every=self.settings["thermo"]["every"]),
            stop=lambda: bool(sim.comm.allreduce(stop.signum, op=MPI.MAX)), resume=self.resume)
        minimizer.check_start()         # a refused start (GuardError) before any output is opened
        log = ThermoLog(sim.comm, MINIMIZE_COLUMNS, log_path=self.settings["thermo"]["file"],
                        stream=self.stream, total_steps=sec["max_steps"],
                        start_step=int(self.resume["steps"]) if resuming else None, append=resuming,
                        preamble=sim.preamble() + [f"minimize: {sec['method']}, cell {sec['cell']}, "
                                                   f"target pressure {sec['pressure']} bar, fmax "
                                                   f"{sec['fmax']} eV/A, stress_tol {sec['stress_tol']} bar"]
                        + ([f"restart: FIRE continues from minimiser step {self.resume['steps']}"]
                           if resuming else []))
        minimizer.log = log.row
        stop.install()
        try:
            result = minimizer.run()
        finally:
            stop.uninstall()
        message = describe(result)
        st = sim.state
        ckpt = self.settings["checkpoint"]["file"]
        if result.reason == "guard":           # the last good state, for inspection or a restart
            st.velocities[:] = 0.0
            sim.write_checkpoint(state={"driver": {"name": "minimize", "converged": 0, "guard": 1}},
                                 step=0, time_ps=0.0)
            stop_message = (f"[minimize] {result.message}; checkpoint: {ckpt}; no relaxed structure was "
                            f"written ({sec['structure_file']} is left as it was)")
            log.close(extra=[message, stop_message])
            return {"result": result, "message": stop_message, "stopped_by": "guard"}
        from ..io.wrapping import wrap_periodic      # the same file whatever the run's history (restarts)
        st.positions, st.images = wrap_periodic(st.positions, st.images, st.cell, st.pbc)
        sim.write_structure(sec["structure_file"],
                            info={"energy_eV": result.energy, "converged": result.converged})
        # a fresh start for [md]: zero velocities, step 0
        st.velocities[:] = 0.0
        sim.write_checkpoint(state={"driver": self._stop_state(minimizer, result.converged)
                                    if result.reason == "signal" else
                                    {"name": "minimize", "converged": int(result.converged)}},
                             step=0, time_ps=0.0)
        log.close(extra=[message, f"relaxed structure: {sec['structure_file']}; checkpoint: {ckpt}"])
        if result.reason == "signal":
            message = (f"[minimize] stopped by a signal after {result.steps} minimiser steps: checkpoint "
                       f"written to {ckpt}")     # the CLI adds the command that continues
        if not result.converged and result.reason != "signal":
            raise NotConvergedError(f"[minimize] {message}; raise max_steps or loosen fmax/stress_tol "
                                    f"(the last structure was written to {sec['structure_file']})")
        return {"result": result, "message": message, "stopped_by": "signal" if result.reason == "signal"
                else None}
