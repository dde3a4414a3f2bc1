"""Stochastic velocity rescaling (Bussi, Donadio and Parrinello, J. Chem. Phys. 126, 014101 (2007)).

The thermostat rescales all velocities by one factor alpha drawn so that the
total kinetic energy K follows, exactly over a time h, the stochastic process

    dK = (K_target - K) h/tau + 2 sqrt(K K_target / Nf) dW/sqrt(tau),

K_target = Nf kB T / 2, Nf = 3N - 3 (``engine.degrees_of_freedom()``), tau =
``damping`` (ps).  With c = exp(-h/tau), one normal R1 and a chi-square S with
Nf - 1 degrees of freedom::

    alpha^2 = c + (1 - c) (R1^2 + S) K_target / (Nf K) + 2 R1 sqrt(c (1 - c) K_target / (Nf K))

and sign(alpha) = sign(R1 + sqrt(c Nf K / ((1 - c) K_target))).

Splitting (a choice; LAMMPS ``fix temp/csvr`` instead rescales once per step
at the end): half a thermostat step (h = dt/2) before and after a velocity-Verlet
step, O(dt/2) B A B O(dt/2), which is time-symmetric.  The two half steps of
global step s draw from ``normals_global(seed, PURPOSE_THERMOSTAT, 2 s + k, ...)``,
k = 0, 1, so every rank draws the same numbers and a restart continues the same
trajectory.  S is a sum of squared normals for Nf - 1 < 16 and otherwise twice a
Gamma((Nf - 1)/2) variate (Marsaglia-Tsang, with its uniforms obtained from
normals of the same stream by the normal CDF).

Velocities that are all zero cannot be rescaled; the thermostat then waits until
the forces have set the atoms moving.

Conserved quantity: E minus the accumulated thermostat work (the sum of all
kinetic-energy changes made by the rescaling); :meth:`conserved_extra` is -work.
"""
from __future__ import annotations

import math

import numpy as np

from ..rng import PURPOSE_THERMOSTAT, normals_global
from ..units import BOLTZMANN
from .verlet import VelocityVerlet

_DIRECT_CHI2 = 16


def chi_square(k: int, seed: int, purpose: int, key: int, offset: int = 1) -> float:
    """A chi-square variate with ``k`` degrees of freedom from the counter-based stream.

    Uses the normals ``normals_global(seed, purpose, key, ...)[offset:]``; the same
    on every rank.  Exact for any ``k >= 1``.
    """
    if k <= 0:
        return 0.0
    if k < _DIRECT_CHI2:
        z = normals_global(seed, purpose, key, offset + k)[offset:]
        return float(z @ z)
    # Marsaglia-Tsang (2000) for Gamma(a, 1), a = k/2 >= 1; chi2_k = 2 Gamma(k/2, 1)
    a = 0.5 * k
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    tries = 8
    start = 0
    while True:
        z = normals_global(seed, purpose, key, offset + 2 * tries)[offset:]
        for t in range(start, tries):
            x, zu = z[2 * t], z[2 * t + 1]
            v = 1.0 + c * x
            if v <= 0.0:
                continue
            v = v * v * v
            u = 0.5 * math.erfc(-zu / math.sqrt(2.0))           # uniform on (0, 1)
            if u > 0.0 and math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
                return 2.0 * d * v
        start, tries = tries, 2 * tries          # the stream is prefix-stable: extend it


def csvr_factor(kinetic: float, target: float, dof: int, c: float, r1: float, s: float) -> float:
    """The Bussi-Donadio-Parrinello rescaling factor alpha (with its sign)."""
    if kinetic <= 0.0:
        raise ValueError("CSVR cannot rescale zero velocities: give [velocities].temperature > 0")
    ratio = target / (dof * kinetic)
    alpha2 = c + (1.0 - c) * (r1 * r1 + s) * ratio + 2.0 * r1 * math.sqrt(c * (1.0 - c) * ratio)
    alpha = math.sqrt(max(alpha2, 0.0))
    if c < 1.0 and r1 + math.sqrt(c / ((1.0 - c) * ratio)) < 0.0:
        alpha = -alpha
    return alpha


class CSVR(VelocityVerlet):
    """NVT by stochastic velocity rescaling (``ensemble = "nvt-csvr"``)."""

    name = "nvt-csvr"

    def __init__(self, timestep_ps: float, temperature: float, damping: float = 0.1, seed: int = 12345):
        super().__init__(timestep_ps)
        if not temperature > 0.0:
            raise ValueError("CSVR temperature must be positive (K)")
        if not damping > 0.0:
            raise ValueError("CSVR damping must be positive (ps)")
        self.temperature = float(temperature)
        self.damping = float(damping)
        self.seed = int(seed)
        self.work = 0.0                 # eV, kinetic energy added by the thermostat (global)

    @classmethod
    def from_settings(cls, md: dict, thermostat: dict):
        return cls(md["timestep"], thermostat["temperature"], thermostat["damping"],
                   seed=thermostat["seed"])

    def rescale(self, engine, key: int, h: float):
        """Thermostat the velocities over a time ``h``; the random stream key is ``key``."""
        kinetic = 0.5 * float(np.trace(engine.kinetic_tensor()))
        if kinetic <= 0.0:
            return          # nothing to rescale: atoms at rest are set moving by the forces
        dof = engine.degrees_of_freedom()
        target = 0.5 * dof * BOLTZMANN * self.temperature
        c = math.exp(-h / self.damping)
        r1 = float(normals_global(self.seed, PURPOSE_THERMOSTAT, key, 1)[0])
        s = chi_square(dof - 1, self.seed, PURPOSE_THERMOSTAT, key, offset=1)
        alpha = csvr_factor(kinetic, target, dof, c, r1, s)
        engine.state.velocities *= alpha
        self.work += (alpha * alpha - 1.0) * kinetic

    def step(self, engine):
        st = engine.state
        self.rescale(engine, 2 * st.step, 0.5 * self.dt)
        self.kick(engine)
        self.drift(engine)
        engine.compute_forces()
        self.kick(engine)
        self.rescale(engine, 2 * st.step + 1, 0.5 * self.dt)
        st.step += 1
        st.time += self.dt

    def conserved_extra(self, engine) -> float:
        return -self.work

    def state_dict(self) -> dict:
        d = super().state_dict()
        d.update({"temperature": self.temperature, "damping": self.damping, "seed": self.seed,
                  "work": self.work,
                  "noise_stream": "normals_global(seed, PURPOSE_THERMOSTAT, 2*step + half, n)"})
        return d

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        self.work = float(state.get("work", 0.0))
