"""Stages of the Frenkel-Ladd route (``[free_energy] mode = "solid"``) on one Simulation.

1. :func:`equilibrate_volume`: NPT blocks (stochastic cell rescaling, iso) until the
   running mean pressure (all blocks after the first half of the first) is within
   max(tolerance, 3 standard errors) of the target; returns the running mean cell.
2. :func:`measure_spring_constants`: Langevin NVT in that cell with the atoms tied to
   nothing; k_s = 3 kB T / <|u - D|^2>_s per species from the displacements u from
   the lattice sites (D: mass-weighted mean displacement, the quantity the springs
   see), averaged over the second half of the run.
3. the switching cycles (:mod:`acemd.free_energy.switching`), driven stage by stage by
   the driver so that each can be checkpointed.

:class:`Progress` prints the stage, its step and the ETA of the whole protocol.
Solid checks (:func:`displacement_stats`): the RMS displacement from the sites
against the Lindemann threshold, and the growth of the mean-square displacement
during the NVT stage (diffusion means the crystal melted).
"""
from __future__ import annotations

import time as _time

import numpy as np
from mpi4py import MPI

from ..blockstats import block_average
from ..units import BOLTZMANN
from ..io.thermo import format_hms
from .einstein import EinsteinTerm


class Progress:
    """Progress lines ``stage  step k/n  protocol x %  elapsed  ETA`` every ``every`` steps."""

    def __init__(self, say, total_steps, every=1000, observer=None):
        """``observer(stage_name)``, if given, is called after every step (e.g. the extrapolation grade)."""
        self.say, self.total, self.every = say, max(int(total_steps), 1), max(int(every), 1)
        self.observer = observer
        self.done = 0
        self.t0 = _time.perf_counter()

    def add_total(self, steps):
        self.total += int(steps)

    def stage(self, name, n_steps):
        """A callback ``on_step(k)`` for a stage of ``n_steps`` steps."""
        base = self.done

        def on_step(k):
            self.done = base + k
            if self.observer is not None:
                self.observer(name)
            if k % self.every == 0 or k == n_steps:
                elapsed = _time.perf_counter() - self.t0
                eta = elapsed / max(self.done, 1) * max(self.total - self.done, 0)
                self.say(f"  {name:<28s} step {k:>8d}/{n_steps:<8d} protocol {100 * self.done / self.total:5.1f} %"
                         f"  elapsed {format_hms(elapsed)}  ETA {format_hms(eta)}")
        return on_step




def pressure_convergence(samples, target_bar, tolerance_bar, min_block_samples=1, n_blocks=5, recent=None):
    """Is the mean of the pressure ``samples`` (bar) at the target?  -> dict.

    Accepted when |<P> - P| < max(tolerance, 3 SE), SE the standard error of <P>.  SE comes
    from ``n_blocks`` block averages (:mod:`acemd.blockstats`) of ``recent`` (default: all
    samples), scaled to the whole set by sqrt(len(recent) / len(samples)): the driver
    passes the last NPT block, so that the volume's early relaxation, which the running
    mean still carries, does not inflate the error and buy its own acceptance.  Fewer
    blocks when a block would hold fewer than ``min_block_samples`` samples; below 2 blocks
    there is no error and the tolerance alone decides.  A small cell's pressure scatters by
    kilobars, so a fixed tolerance of 200 bar can be out of reach of any affordable run,
    while 3 SE says the mean is statistically at the target.  The volume error this admits
    costs the free energy only to second order (1/2 B V (dV/V)^2).
    """
    p = np.asarray(samples, dtype=float)
    r = p if recent is None else np.asarray(recent, dtype=float)
    mean = float(p.mean())
    blocks = min(n_blocks, len(r) // max(int(min_block_samples), 1))
    error = (float(block_average(r, blocks)["error"]) * np.sqrt(len(r) / len(p)) if blocks >= 2
             else float("nan"))
    threshold = max(float(tolerance_bar), 3.0 * error) if np.isfinite(error) else float(tolerance_bar)
    return {"mean_pressure_bar": mean, "standard_error_bar": float(error), "error_blocks": max(blocks, 0),
            "accepted_deviation_bar": float(threshold), "converged": bool(abs(mean - target_bar) < threshold)}


def equilibrate_volume(sim, integrator_factory, pressure_bar, steps, max_blocks, tolerance_bar, progress,
                       sample_every=10, min_error_block_steps=0):
    """NPT blocks until the mean pressure is at the target (:func:`pressure_convergence`);
    returns (mean cell, mean pressure (bar), converged, blocks).

    The averages accumulate over all blocks after the first half of the first one (its
    equilibration): one block's mean rarely meets a tight tolerance, while the running mean
    converges.  Its standard error is measured on the last block, in sub-blocks of at least
    ``min_error_block_steps`` steps (the driver passes twice the barostat's relaxation
    time: shorter blocks are correlated and would understate the error).
    """
    engine = sim.engine
    integrator = integrator_factory()
    engine.compute_forces(force_rebuild=True)
    integrator.setup(engine)
    blocks = []
    cells, pressures = [], []
    min_samples = int(np.ceil(min_error_block_steps / sample_every))
    for block in range(1, max_blocks + 1):
        on_step = progress.stage(f"NPT block {block}", steps)
        block_p = []
        for k in range(1, steps + 1):
            integrator.step(engine)
            if (block > 1 or k > steps // 2) and k % sample_every == 0:
                cells.append(sim.state.cell.copy())
                block_p.append(engine.thermo()["pressure"])
            on_step(k)
        pressures += block_p
        mean_cell = np.mean(cells, axis=0)
        test = pressure_convergence(pressures, pressure_bar, tolerance_bar, min_samples, recent=block_p)
        mean_p = test["mean_pressure_bar"]
        record = {"block": block, "block_mean_pressure_bar": float(np.mean(block_p)),
                  "running_mean_pressure_bar": mean_p, "accepted_deviation_bar": test["accepted_deviation_bar"],
                  "running_mean_volume_A3": float(abs(np.linalg.det(mean_cell)))}
        if np.isfinite(test["standard_error_bar"]):        # none when the block is too short for 2 sub-blocks
            record["standard_error_bar"] = test["standard_error_bar"]
        blocks.append(record)
        if test["converged"]:
            return mean_cell, mean_p, True, blocks
        if block < max_blocks:
            progress.add_total(steps)
    return mean_cell, mean_p, False, blocks


def displacement_stats(comm, state, einstein: EinsteinTerm):
    """Per-species sums of |u - D|^2 and counts (global), D the mass-weighted mean displacement."""
    n_species = len(state.masses_by_species)
    u = einstein.displacements(state.positions, state.ids)
    m = state.masses
    local = np.concatenate([(m[:, None] * u).sum(0), [m.sum()]])
    glob = comm.allreduce(local, op=MPI.SUM)
    w = u - glob[:3] / glob[3]
    sq = (w * w).sum(1)
    sums = np.bincount(state.species, sq, minlength=n_species)
    counts = np.bincount(state.species, minlength=n_species).astype(float)
    out = comm.allreduce(np.concatenate([sums, counts]), op=MPI.SUM)
    return out[:n_species], out[n_species:]


def measure_spring_constants(sim, integrator, sites: EinsteinTerm, temperature, steps, progress,
                             sample_every=10):
    """Langevin NVT; returns (k per species (eV/Å^2), <dr^2> per species (Å^2), growth ratio).

    growth = <dr^2> of the last quarter / <dr^2> of the third quarter: ~1 in a solid,
    > 1 when atoms diffuse away from their sites.
    """
    engine = sim.engine
    engine.compute_forces(force_rebuild=True)
    integrator.setup(engine)
    on_step = progress.stage("NVT spring constants", steps)
    n_species = len(sim.state.masses_by_species)
    acc = {3: np.zeros(n_species), 4: np.zeros(n_species)}
    nsamp = {3: 0, 4: 0}
    counts = None
    for k in range(1, steps + 1):
        integrator.step(engine)
        if k > steps // 2 and k % sample_every == 0:
            quarter = 3 if k <= (3 * steps) // 4 else 4
            sums, counts = displacement_stats(sim.comm, sim.state, sites)
            acc[quarter] += sums
            nsamp[quarter] += 1
        on_step(k)
    if counts is None:
        raise ValueError(f"spring_steps = {steps} is too short to sample displacements; use >= {4 * sample_every}")
    present = counts > 0
    total = acc[3] + acc[4]
    msd = np.full(n_species, np.nan)
    msd[present] = total[present] / (counts[present] * (nsamp[3] + nsamp[4]))
    k_spring = np.ones(n_species)
    k_spring[present] = 3.0 * BOLTZMANN * temperature / msd[present]
    growth = 1.0
    if nsamp[3] and nsamp[4]:
        growth = float(acc[4][present].sum() / nsamp[4]) / float(acc[3][present].sum() / nsamp[3])
    return k_spring, msd, growth
