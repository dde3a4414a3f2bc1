"""The extrapolation grade during MD: evaluation on schedule, dumps and the stop test.

The monitor owns the per-atom gamma of the engine's current frame (see
:mod:`acemd.potential.extrapolation`).  It evaluates the B-basis projections of
the owned atoms on the engine's extended positions, species and Verlet list;
the list reaches cutoff + skin, and the projection kernel, like the force
kernel (both use ``kernel._site_base``), skips every pair beyond its bond
cutoff, so gamma equals the ASE calculator's.  The global maximum comes from a
reduction in the parallel layer.  Frames whose maximum exceeds
``dump_threshold`` are appended to an extxyz file (pacemaker's ``pace_select``
reads it); a maximum above ``stop_threshold`` asks the driver to stop.
Defaults follow the pacemaker/LAMMPS recipe (``fix pair 10 pace/extrapolation
gamma 1``, dump above 5, ``fix halt`` above 25).
"""
from __future__ import annotations

import time

import numpy as np

from .io.extxyz_dump import ExtxyzDump
from .parallel.collective import global_max
from .potential.extrapolation import ExtrapolationGrade


class ExtrapolationMonitor:
    """Per-atom gamma of the current frame, the extrapolative-structures file, the stop test.

    ``potential``: the run's :class:`acemd.potential.ACEPotential` (a B-basis
    ``.yaml``); ``settings``: the checked ``[extrapolation]`` section.  Raises
    :class:`acemd.potential.extrapolation.ActiveSetError` (on every rank alike)
    when the active set does not fit the potential.
    """

    def __init__(self, comm, potential, settings, state, restart_step=None):
        self.comm = comm
        self.grade = ExtrapolationGrade(potential, settings["active_set"])
        self.every = int(settings["every"])
        self.dump_threshold = float(settings["dump_threshold"])
        self.stop_threshold = float(settings["stop_threshold"])
        self.dump_file = settings["dump_file"]
        self.dump = ExtxyzDump(self.dump_file, comm, state.n_atoms_total, state.species_names, state.pbc,
                               append=restart_step is not None, restart_step=restart_step)
        self.step = None              # step of the last evaluation
        self.gamma = np.zeros(0)      # per owned atom, in the engine's current order
        self.max_gamma = float("nan")
        self.n_evaluations = 0
        self.seconds = 0.0            # wall time spent evaluating (this rank)

    def due(self, step) -> bool:
        return step % self.every == 0

    def evaluate(self, engine):
        """gamma of the owned atoms at the current positions, and the global maximum (collective)."""
        t0 = time.perf_counter()
        st = engine.state
        n = st.n_local
        ext = engine.ext_positions
        stale = not np.array_equal(ext[:n], st.positions)
        if global_max(self.comm, [float(stale)]) > 0.0:      # decided together: forward is collective
            # positions changed after the last force call (e.g. scaled with the cell):
            # fresh ghost positions on the same list, leaving the engine's state alone
            ext = engine.halo.forward(st.positions)
        proj = self.grade.projections(ext, engine.ext_species, n, engine.offsets, engine.neighbors,
                                      atom_ids=engine.ext_ids)
        self.gamma = self.grade.gamma(proj, engine.ext_species[:n])
        self.max_gamma = global_max(self.comm, self.gamma)
        self.step = st.step
        self.n_evaluations += 1
        self.seconds += time.perf_counter() - t0
        return self.gamma

    def current_gamma(self, engine):
        """Per-atom gamma of the current step, evaluated now unless it already was."""
        if self.step != engine.state.step or len(self.gamma) != engine.state.n_local:
            self.evaluate(engine)
        return self.gamma

    def check(self, engine) -> bool:
        """Evaluate; dump the frame if extrapolative; True if the run must stop (collective).

        The frame that stops the run is dumped whatever ``dump_threshold`` is.
        """
        self.evaluate(engine)
        stop = self.max_gamma > self.stop_threshold
        if stop or self.max_gamma > self.dump_threshold:
            self.write_dump(engine)
        return stop

    def start(self, engine, restarting) -> bool:
        """The first frame of a session: step 0 is an evaluation step; a restarted run only
        evaluates (the earlier run dumped the frame) and stops again if it stopped there."""
        if not restarting:
            return self.check(engine)
        self.evaluate(engine)
        return self.due(engine.state.step) and self.max_gamma > self.stop_threshold

    def write_dump(self, engine):
        st = engine.state
        self.dump.write_frame(st.cell, st.ids, st.positions, st.species, {"gamma": self.gamma},
                              {"step": int(st.step), "time": float(st.time), "max_gamma": self.max_gamma})

    def stop_message(self, checkpoint_file) -> str:
        return (f"stopped by extrapolation at step {self.step}: max gamma {self.max_gamma:.6g} exceeds "
                f"[extrapolation].stop_threshold = {self.stop_threshold:g}; checkpoint written to "
                f"{checkpoint_file}; this frame and earlier extrapolative ones are in {self.dump_file} "
                "(select structures from it, e.g. with pace_select, and refit)")
