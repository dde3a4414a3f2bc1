"""Integrators and ensembles.  Each advances an :class:`~acemd.engine.Engine` by one step."""
from .base import Integrator
from .verlet import VelocityVerlet

INTEGRATORS = {"nve": VelocityVerlet}

__all__ = ["Integrator", "VelocityVerlet", "INTEGRATORS"]
