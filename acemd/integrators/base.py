"""The integrator interface shared by all ensembles."""
from __future__ import annotations


class Integrator:
    """Advances positions, velocities (and thermostat/barostat variables) by one step.

    ``step`` must leave ``engine.forces`` evaluated at the new positions.
    ``conserved_extra`` is what the ensemble adds to the total energy to form its
    conserved quantity (0 for NVE).  ``state_dict``/``load_state_dict`` hold
    everything a checkpoint needs to continue the same trajectory.
    """

    name = "base"

    def __init__(self, timestep_ps: float):
        self.dt = float(timestep_ps)

    def setup(self, engine):
        """Called once after the initial force evaluation."""

    def step(self, engine):
        raise NotImplementedError

    def conserved_extra(self, engine) -> float:
        return 0.0

    def state_dict(self) -> dict:
        return {"name": self.name, "timestep": self.dt}

    def load_state_dict(self, state: dict):
        if state.get("name", self.name) != self.name:
            raise ValueError(f"checkpoint was written by integrator '{state.get('name')}', "
                             f"this run uses '{self.name}'")
