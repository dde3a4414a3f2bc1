"""Langevin dynamics (NVT) with the BAOAB splitting of Leimkuhler and Matthews (2013).

One step of length dt::

    B  v += dt/2 F/m                       half kick
    A  x += dt/2 v                         half drift
    O  v  = c1 v + sqrt(1 - c1^2) sqrt(kB T/m) R,   c1 = exp(-dt/damping)
    A  x += dt/2 v                         half drift
       F  = F(x)                           engine.compute_forces()
    B  v += dt/2 F/m                       half kick

O is the exact solution of the Ornstein-Uhlenbeck process dv = -v/damping dt +
sqrt(2 kB T/(m damping)) dW over dt, so the friction (1/damping, ``damping`` in
ps as in LAMMPS ``fix langevin``) can be large without instability, and BAOAB's
configurational averages are exact to second order in dt for any friction.

The normals R of atom ``id`` at step ``s`` come from the counter-based stream
``normals_per_atom(seed, PURPOSE_LANGEVIN, s, id)`` (``s`` = the global step
number before the step, kept in every checkpoint), so the trajectory does not
depend on the number of ranks or the order of atoms, and a restart continues
it exactly.

With ``zero_momentum`` (default) the noise is projected, in mass-weighted
coordinates, onto the subspace of zero total momentum: the centre of mass does
not diffuse and the internal velocities sample exactly the canonical
distribution of 3N-3 degrees of freedom that the temperature column assumes.

Conserved quantity: E - Q, where Q is the heat taken from the bath (the sum of
the kinetic-energy changes of all O steps); :meth:`conserved_extra` is -Q.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ..rng import PURPOSE_LANGEVIN, normals_per_atom
from ..units import BOLTZMANN, FORCE_TO_ACCEL, MVV_TO_EV
from .base import Integrator


class LangevinBAOAB(Integrator):
    """NVT Langevin dynamics, BAOAB splitting (``ensemble = "nvt-langevin"``)."""

    name = "nvt-langevin"

    def __init__(self, timestep_ps: float, temperature: float, damping: float = 0.1,
                 seed: int = 12345, zero_momentum: bool = True):
        super().__init__(timestep_ps)
        if not temperature > 0.0:
            raise ValueError("Langevin temperature must be positive (K)")
        if not damping > 0.0:
            raise ValueError("Langevin damping must be positive (ps)")
        self.temperature = float(temperature)
        self.damping = float(damping)
        self.seed = int(seed)
        self.zero_momentum = bool(zero_momentum)
        self.heat = 0.0                 # eV, energy the bath put into the system (global)

    @classmethod
    def from_settings(cls, md: dict, thermostat: dict):
        return cls(md["timestep"], thermostat["temperature"], thermostat["damping"],
                   seed=thermostat["seed"], zero_momentum=thermostat["zero_momentum"])

    # ------------------------------------------------------------ pieces
    def kick(self, engine):
        st = engine.state
        st.velocities += (0.5 * self.dt * FORCE_TO_ACCEL) * engine.forces / st.masses[:, None]

    def half_drift(self, engine):
        engine.state.positions += (0.5 * self.dt) * engine.state.velocities

    def ornstein_uhlenbeck(self, engine, key: int):
        """Exact OU update of all velocities over dt; returns the global kinetic-energy change (eV).

        One reduction of 9 numbers gives both the momentum of the noise (for
        the projection) and the kinetic-energy change, computed algebraically.
        """
        st = engine.state
        m = st.masses
        sqm = np.sqrt(m)[:, None]
        c1 = np.exp(-self.dt / self.damping)
        c2 = np.sqrt(-np.expm1(-2.0 * self.dt / self.damping))       # sqrt(1 - c1^2)
        kt = BOLTZMANN * self.temperature * FORCE_TO_ACCEL             # kB T in amu Å²/ps²
        r = normals_per_atom(self.seed, PURPOSE_LANGEVIN, key, st.ids)  # (n, 3)
        v = st.velocities
        local = np.empty(9)
        local[0] = float((m[:, None] * v * v).sum())                   # sum m v^2
        local[1] = float((sqm * v * r).sum())                          # sum sqrt(m) v.R
        local[2] = float((r * r).sum())                                # sum R^2
        local[3:6] = (sqm * r).sum(0)                                  # S = sum sqrt(m) R
        local[6:9] = (m[:, None] * v).sum(0)                           # P = sum m v
        glob = np.empty(9)
        engine.comm.Allreduce(local, glob, op=MPI.SUM)
        mvv, svr, rr, s, p = glob[0], glob[1], glob[2], glob[3:6], glob[6:9]
        a = c2 * np.sqrt(kt)
        if self.zero_momentum:
            total_mass = self._total_mass(engine)
            shift = s / total_mass
            st.velocities = c1 * v + a * (r / sqm - shift)
            # sum m |dv_noise|^2 / a^2 = sum R^2 - S.S/M ; sum m v.dv_noise / a = sum sqrt(m) v.R - P.S/M
            cross = svr - float(p @ s) / total_mass
            noise2 = rr - float(s @ s) / total_mass
        else:
            st.velocities = c1 * v + a * (r / sqm)
            cross, noise2 = svr, rr
        new_mvv = c1 * c1 * mvv + 2.0 * c1 * a * cross + a * a * noise2
        return 0.5 * (new_mvv - mvv) * MVV_TO_EV

    def _total_mass(self, engine):
        if getattr(self, "_mass_cache", None) is None or self._mass_cache[0] is not engine:
            total = engine.comm.allreduce(float(engine.state.masses.sum()), op=MPI.SUM)
            self._mass_cache = (engine, total)
        return self._mass_cache[1]

    # ------------------------------------------------------------ step
    def setup(self, engine):
        self._mass_cache = None
        self._total_mass(engine)

    def step(self, engine):
        st = engine.state
        self.kick(engine)
        self.half_drift(engine)
        self.heat += self.ornstein_uhlenbeck(engine, st.step)
        self.half_drift(engine)
        engine.compute_forces()
        self.kick(engine)
        st.step += 1
        st.time += self.dt

    def conserved_extra(self, engine) -> float:
        return -self.heat

    def state_dict(self) -> dict:
        d = super().state_dict()
        d.update({"temperature": self.temperature, "damping": self.damping, "seed": self.seed,
                  "zero_momentum": self.zero_momentum, "heat": self.heat,
                  "noise_stream": "normals_per_atom(seed, PURPOSE_LANGEVIN, step before the step, id)"})
        return d

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        self.heat = float(state.get("heat", 0.0))
