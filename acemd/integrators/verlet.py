"""Velocity Verlet (NVE)."""
from __future__ import annotations

from ..units import FORCE_TO_ACCEL
from .base import Integrator


class VelocityVerlet(Integrator):
    """Symplectic, time-reversible NVE integrator: kick(dt/2), drift(dt), kick(dt/2)."""

    name = "nve"

    def kick(self, engine, fraction=0.5):
        st = engine.state
        st.velocities += (fraction * self.dt * FORCE_TO_ACCEL) * engine.forces / st.masses[:, None]

    def drift(self, engine):
        engine.state.positions += self.dt * engine.state.velocities

    def step(self, engine):
        self.kick(engine)
        self.drift(engine)
        engine.compute_forces()
        self.kick(engine)
        engine.state.step += 1
        engine.state.time += self.dt
