"""The sweep stages of the [free_energy] driver: after the solid or liquid route at (T0, P0),
``n_iterations`` of (equilibrate at the start, sweep, equilibrate at the end, sweep back).

:class:`Sweeper` builds the integrator and the control of one kind of sweep on the
driver's Simulation and runs one resumable unit at a time; the records go into the
protocol (so a checkpoint holds them) and :func:`acemd.free_energy.sweep.temperature_curve`
or :func:`~acemd.free_energy.sweep.pressure_curve` turn them into the curve.

* temperature_sweep, scaling: H = K + lambda U (thermostat at T0); NPT: barostat target
  lambda P (the derivation is in :mod:`acemd.free_energy.sweep`).
* temperature_sweep, temperature_ramp: the real potential, thermostat (and barostat)
  temperature ramped T0 -> Tf.
* pressure_sweep: the real potential at T0, barostat target ramped P0 -> Pf.

NVT uses the driver's Langevin thermostat, NPT stochastic cell rescaling (iso) with
stochastic velocity rescaling, as the route's NPT stage.  Its volume time scale uses
the route's volume as reference volume, so a unit restarted from a checkpoint repeats
the uninterrupted one exactly.
"""
from __future__ import annotations

import numpy as np

from ..free_energy.sweep import SweepRecord, lambda_path, linear_path, run_path, scaling_term
from ..integrators import LangevinBAOAB, StochasticCellRescaling

SEED_OFFSET = 6


class Sweeper:
    """One kind of sweep on ``sim`` (a Simulation) for the [free_energy] section ``sec``."""

    def __init__(self, sim, sec, reference_volume):
        self.sim, self.sec = sim, sec
        self.mode = sec["mode"]
        self.kind = "pressure" if self.mode == "pressure_sweep" else sec["sweep_method"]
        npt = self.mode == "pressure_sweep" or sec["sweep_ensemble"] == "npt"
        t0, p0 = sec["temperature"], sec["pressure"]
        seed = sec["seed"] + SEED_OFFSET
        if npt:
            self.integrator = StochasticCellRescaling(
                sec["timestep"], t0, p0, damping=sec["damping"], barostat_damping=sec["barostat_damping"],
                coupling="iso", compressibility_per_bar=sec["compressibility"], seed=seed)
            self.integrator.reference_volume = float(reference_volume)
        else:
            self.integrator = LangevinBAOAB(sec["timestep"], t0, sec["damping"], seed=seed)
        self.npt = npt
        eng, integ = sim.engine, self.integrator
        if self.kind == "scaling":
            from ..free_energy.liquid import ZeroTerm
            self.scale = scaling_term(sim.term, ZeroTerm())
            sim.set_terms([self.scale])

            def set_x(lam):
                self.scale.lam = lam
                if npt:
                    integ.pressure_bar = lam * p0
            self.set_x = set_x
            self.energy = lambda: eng.term_energies[f"{self.scale.name}.B"]
            self.ends = (1.0, t0 / sec["temperature_final"])
        else:
            sim.set_terms([sim.term])
            self.energy = lambda: eng.potential_energy
            if self.kind == "temperature_ramp":
                def set_x(t):
                    integ.temperature = t
                self.ends = (t0, sec["temperature_final"])
            else:
                def set_x(p):
                    integ.pressure_bar = p
                self.ends = (p0, sec["pressure_final"])
            self.set_x = set_x

    def path(self, forward):
        sec, n = self.sec, self.sec["sweep_steps"]
        if self.kind == "scaling":
            return lambda_path(sec["temperature"], sec["temperature_final"], n, forward)
        return linear_path(*self.ends, n, forward)

    def _label(self, x):
        if self.kind == "scaling":
            return f"{self.sec['temperature'] / x:g} K"
        return f"{x:g} K" if self.kind == "temperature_ramp" else f"{x:g} bar"

    def run_unit(self, unit, progress):
        """Run one unit "sweep <it> <part>"; returns the record of a sweep part, None otherwise."""
        sec, eng, integ = self.sec, self.sim.engine, self.integrator
        _, it, part = unit.split(" ")
        eng.compute_forces(force_rebuild=True)
        integ.setup(eng)
        if part in ("eq_start", "eq_end"):
            x = self.ends[0] if part == "eq_start" else self.ends[1]
            self.set_x(x)
            eng.compute_forces()
            on_step = progress.stage(f"sweep {it} equilibrate at {self._label(x)}", sec["equilibration_steps"])
            for k in range(1, sec["equilibration_steps"] + 1):
                integ.step(eng)
                on_step(k)
            return None
        forward = part == "forward"
        a, b = (self._label(x) for x in (self.ends if forward else self.ends[::-1]))
        name = f"sweep {it} {a} -> {b}"
        rec = run_path(eng, integ, self.path(forward), self.set_x, self.energy,
                       on_step=progress.stage(name, sec["sweep_steps"]))
        return name, rec

    def finish(self):
        """The driver's own potential again."""
        self.sim.set_terms([self.sim.term])


def record_to_dict(rec: SweepRecord) -> dict:
    return {"x": rec.x, "energy": rec.energy, "volume": rec.volume}


def record_from_dict(r: dict) -> SweepRecord:
    return SweepRecord(np.asarray(r["x"], float), np.asarray(r["energy"], float), np.asarray(r["volume"], float))
