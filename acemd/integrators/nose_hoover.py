"""Nose-Hoover chains (NVT) integrated as by Martyna, Tuckerman, Tobias and Klein (Mol. Phys. 87,
1117 (1996)), the scheme of LAMMPS ``fix nvt``.

Equations of motion (chain of M thermostats, Nf = 3N - 3, kT = kB T)::

    dx/dt = v,     dv/dt = F/m - v_1 v
    dxi_k/dt = v_k
    dv_1/dt = (sum m v^2 - Nf kT)/Q_1 - v_1 v_2
    dv_k/dt = (Q_{k-1} v_{k-1}^2 - kT)/Q_k - v_k v_{k+1}      (v_{M+1} = 0)

with masses Q_1 = Nf kT tau^2 and Q_k = kT tau^2 (tau = ``damping``, ps, the
period of the thermostat oscillation as in LAMMPS ``Tdamp``).

One step is the Trotter splitting exp(iL_NHC dt/2) exp(iL_VV dt) exp(iL_NHC dt/2):
half a chain update, a velocity-Verlet step, half a chain update.  Each chain
half step is split into ``loops`` sub-steps (LAMMPS ``tloop``), each made of the
Suzuki-Yoshida weights of order 1, 3 or 5 (``yoshida_order``; LAMMPS uses 1),
and applies a single scaling factor to the particle velocities.

The scheme is deterministic and time-reversible; its conserved quantity is::

    H = E + sum_k Q_k v_k^2 / 2 + Nf kT xi_1 + kT sum_{k>1} xi_k

(:meth:`conserved_extra` returns everything after E).
"""
from __future__ import annotations

import math

import numpy as np

from ..units import BOLTZMANN
from .verlet import VelocityVerlet


def yoshida_weights(order: int) -> list[float]:
    """Suzuki-Yoshida weights of order 1, 3 or 5 (they sum to 1)."""
    if order == 1:
        return [1.0]
    if order == 3:
        w = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
        return [w, 1.0 - 2.0 * w, w]
    if order == 5:
        w = 1.0 / (4.0 - 4.0 ** (1.0 / 3.0))
        return [w, w, 1.0 - 4.0 * w, w, w]
    raise ValueError(f"Suzuki-Yoshida order must be 1, 3 or 5, got {order}")


def chain_half_step(xi, vxi, q, twice_kinetic, dof, kt, half_dt, loops, weights) -> float:
    """Advance a Nose-Hoover chain (``xi``, ``vxi`` in place) over ``half_dt``.

    The chain thermostats a subsystem with ``dof`` degrees of freedom and kinetic
    energy ``twice_kinetic / 2``; returns the factor by which that subsystem's
    velocities must be scaled.  ``q`` are the chain masses (eV ps^2).
    """
    m = len(xi)
    v = vxi
    scale = 1.0

    def force(k):
        if k == 0:
            return (twice_kinetic - dof * kt) / q[0]
        return (q[k - 1] * v[k - 1] ** 2 - kt) / q[k]

    for _ in range(loops):
        for w in weights:
            h = w * half_dt / loops
            # down the chain: v_M, v_{M-1}, ..., v_1 (half updates)
            v[m - 1] += 0.5 * h * force(m - 1)
            for k in range(m - 2, -1, -1):
                e = math.exp(-0.25 * h * v[k + 1])
                v[k] = (v[k] * e + 0.5 * h * force(k)) * e
            # subsystem and chain positions (full update)
            s = math.exp(-h * v[0])
            scale *= s
            twice_kinetic *= s * s
            xi += h * v
            # up the chain: v_1, ..., v_{M-1}, v_M
            for k in range(m - 1):
                e = math.exp(-0.25 * h * v[k + 1])
                v[k] = (v[k] * e + 0.5 * h * force(k)) * e
            v[m - 1] += 0.5 * h * force(m - 1)
    return scale


def chain_energy(xi, vxi, q, dof, kt) -> float:
    """The chain's contribution to the conserved quantity (eV)."""
    return float(0.5 * (q * vxi ** 2).sum() + dof * kt * xi[0] + kt * xi[1:].sum())


class NoseHooverChain(VelocityVerlet):
    """NVT by a Nose-Hoover chain, MTK Trotter integration (``ensemble = "nvt-nose-hoover"``)."""

    name = "nvt-nose-hoover"

    def __init__(self, timestep_ps: float, temperature: float, damping: float = 0.1,
                 chain_length: int = 3, loops: int = 1, yoshida_order: int = 3):
        super().__init__(timestep_ps)
        if not temperature > 0.0:
            raise ValueError("Nose-Hoover temperature must be positive (K)")
        if not damping > 0.0:
            raise ValueError("Nose-Hoover damping must be positive (ps)")
        if chain_length < 1 or loops < 1:
            raise ValueError("Nose-Hoover chain_length and loops must be >= 1")
        self.temperature = float(temperature)
        self.damping = float(damping)
        self.chain_length = int(chain_length)
        self.loops = int(loops)
        self.yoshida_order = int(yoshida_order)
        self.weights = yoshida_weights(self.yoshida_order)
        self.xi = np.zeros(self.chain_length)       # chain positions (dimensionless)
        self.vxi = np.zeros(self.chain_length)      # chain velocities (1/ps)

    @classmethod
    def from_settings(cls, md: dict, thermostat: dict):
        return cls(md["timestep"], thermostat["temperature"], thermostat["damping"],
                   chain_length=thermostat["chain_length"], loops=thermostat["chain_loops"],
                   yoshida_order=thermostat["yoshida_order"])

    # ------------------------------------------------------------ chain
    def masses(self, dof: int) -> np.ndarray:
        kt = BOLTZMANN * self.temperature
        q = np.full(self.chain_length, kt * self.damping ** 2)      # eV ps^2
        q[0] *= dof
        return q

    def chain_half_step(self, engine):
        """exp(iL_NHC dt/2): update the chain and scale all velocities by one factor."""
        dof = engine.degrees_of_freedom()
        twice_k = float(np.trace(engine.kinetic_tensor()))         # sum m v^2 (eV)
        scale = chain_half_step(self.xi, self.vxi, self.masses(dof), twice_k, dof,
                                BOLTZMANN * self.temperature, 0.5 * self.dt, self.loops, self.weights)
        engine.state.velocities *= scale

    # ------------------------------------------------------------ step
    def step(self, engine):
        st = engine.state
        self.chain_half_step(engine)
        self.kick(engine)
        self.drift(engine)
        engine.compute_forces()
        self.kick(engine)
        self.chain_half_step(engine)
        st.step += 1
        st.time += self.dt

    def conserved_extra(self, engine) -> float:
        dof = engine.degrees_of_freedom()
        return chain_energy(self.xi, self.vxi, self.masses(dof), dof, BOLTZMANN * self.temperature)

    def state_dict(self) -> dict:
        d = super().state_dict()
        d.update({"temperature": self.temperature, "damping": self.damping,
                  "chain_length": self.chain_length, "loops": self.loops,
                  "yoshida_order": self.yoshida_order,
                  "xi": self.xi.copy(), "vxi": self.vxi.copy()})
        return d

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        if "xi" not in state:
            return
        xi = np.asarray(state["xi"], dtype=float)
        vxi = np.asarray(state["vxi"], dtype=float)
        if xi.shape != (self.chain_length,) or vxi.shape != (self.chain_length,):
            raise ValueError(f"checkpoint has a Nose-Hoover chain of length {len(xi)}, this run uses "
                             f"[thermostat].chain_length = {self.chain_length}")
        self.xi, self.vxi = xi.copy(), vxi.copy()
