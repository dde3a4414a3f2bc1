"""Profiling mode of the ACE kernel: where the time of one evaluation goes.

Numba code cannot read a clock cheaply, so the kernel carries no timers (the
normal path pays nothing).  Instead :func:`kernel_phases` runs the kernel
stopped after each of its stages (the ``stop_after`` argument of ``kernel.ace_forces``) and takes the
differences of the cumulative times: per-neighbour work (radial splines,
harmonics, atomic base), product tree forward (with the embedding), tree
backward (dE/dA and the -m fold), and pair gradients with forces and virial.
Each cumulative time is the minimum over ``repeats`` runs of the CPU time of
the calling thread, the figures least disturbed by other processes on a shared
machine.
"""
from __future__ import annotations

import time

import numpy as np

from . import kernel

PHASES = ("per_neighbour", "tree_forward", "tree_backward", "forces_virial")


def _run_stage(potential, positions, species, n_local, offsets, neighbors, stage):
    n_ext = len(positions)
    out = (np.zeros(n_local), np.zeros((n_ext, 3)), np.zeros((3, 3)), np.zeros((1, 3, 3)))
    t0 = time.thread_time()
    kernel.ace_forces(positions, species, n_local, offsets, neighbors,
                      *potential.tables.kernel_args(), *out, False, stage)
    return time.thread_time() - t0


def kernel_phases(potential, positions, species, n_local, offsets, neighbors, repeats=3):
    """Seconds per phase of one kernel call on this neighbour list (dict over PHASES, plus 'total').

    ``potential`` is an :class:`acemd.potential.ACEPotential`; the arrays are
    those its ``compute`` takes.  Stages are interleaved within each repeat so
    that a slow spell of the machine affects all of them alike.
    """
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    species = np.ascontiguousarray(species, dtype=np.int64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    neighbors = np.ascontiguousarray(neighbors, dtype=np.int64)
    stages = (kernel.STAGE_BASE, kernel.STAGE_FORWARD, kernel.STAGE_BACKWARD, kernel.STAGE_ALL)
    _run_stage(potential, positions, species, n_local, offsets, neighbors, kernel.STAGE_BASE)  # compile/load
    best = [np.inf] * len(stages)
    for _ in range(max(1, repeats)):
        for k, st in enumerate(stages):
            best[k] = min(best[k], _run_stage(potential, positions, species, n_local, offsets, neighbors, st))
    out = {name: max(best[k] - (best[k - 1] if k else 0.0), 0.0) for k, name in enumerate(PHASES)}
    out["total"] = best[-1]
    return out
