"""NPT by the Martyna-Tobias-Klein barostat with Nose-Hoover chains (LAMMPS ``fix npt``).

Equations of motion (Martyna, Tobias, Klein, J. Chem. Phys. 101, 4177 (1994);
Tuckerman et al., J. Phys. A 39, 5629 (2006)), with the cell matrix ``h``
(rows = lattice vectors), a symmetric barostat velocity tensor ``g`` (1/ps),
``Nf = 3N - 3`` and the target pressure ``P0``::

    dr/dt = v + g r
    dv/dt = F/m - (g + tr(g)/Nf) v - v_1 v                 (particle chain v_1)
    dh/dt = g h
    W dg/dt = V (P_int - P0 I) + (2K/Nf) I  - W v_b1 g     (barostat chain v_b1)

``P_int = (sum m v (x) v + virial) / V`` is the instantaneous pressure tensor
(kinetic + the full virial, ghosts included).  The coupling restricts ``g``:

* ``iso``: g = e I (one degree of freedom, the force is the mean of the diagonal);
* ``aniso``: g diagonal (x, y, z independent; non-periodic axes are not coupled);
* ``triclinic``: g symmetric (six degrees of freedom: cell shape and size; a
  symmetric g never rotates the cell).

The barostat mass per component is W = (N + 1) kB T tau_p^2 (LAMMPS'
``omega_mass``, tau_p = ``[barostat].damping``), so the kinetic energy of the
barostat is W tr(g g) / 2.  Both the particles and the barostat carry a
Nose-Hoover chain of ``[thermostat].chain_length`` (masses as in
:mod:`.nose_hoover`, with the barostat's degrees of freedom for the first).

One step is the symmetric Trotter splitting of Tuckerman et al. (2006):
barostat chain dt/2, particle chain dt/2, g dt/2, v dt/2, (r, h) dt, forces,
v dt/2, g dt/2, particle chain dt/2, barostat chain dt/2.  The velocity and
position sub-steps are solved exactly in the eigenbasis of the symmetric
matrices (sinh(x)/x form), so the scheme is time-reversible and its conserved
quantity ::

    H = E + W tr(g g)/2 + P0 V + (particle chain) + (barostat chain)

drifts only through the timestep error (second order).

Stability of the cell mode: with W proportional to kB T, the cell oscillates
(small amplitude, bulk modulus B) at the angular frequency
``omega = sqrt(3 V B / W) = sqrt(3 V B / ((N + 1) kB T)) / tau_p`` (any coupling:
3B is the largest eigenvalue of the normal-strain block of C for a cubic crystal),
so its period is far shorter than tau_p (Cu, 300 K: tau_p / 5.5) and shortens
as 1/sqrt(T).  Like any Verlet oscillator the discrete cell mode is stable only for
``omega dt < 2``: Cu at 5 K with tau_p = 0.1 ps and dt = 2 fs has omega dt = 5.3
and g grows by a factor ~ (omega dt)^2 per step until ``math.exp`` overflows.
:meth:`MTKBarostat.step` turns such a runaway into a :class:`BarostatRunawayError`
naming the key (``damping_key``) to raise; :func:`cell_mode_frequency` lets a
driver refuse such an input before it starts.
"""
from __future__ import annotations

import math

import numpy as np

from ..units import BOLTZMANN, FORCE_TO_ACCEL
from .barostat import BarostatRunawayError, BarostatTarget
from .nose_hoover import NoseHooverChain, chain_energy, chain_half_step


def _sinhc(x):
    """sinh(x)/x, accurate near 0."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-4
    safe = np.where(small, 1.0, x)
    return np.where(small, 1.0 + x * x / 6.0, np.sinh(safe) / safe)


def cell_mode_frequency(n_atoms: int, volume: float, temperature: float, barostat_damping: float,
                        bulk_modulus: float) -> float:
    """Angular frequency (1/ps) of the MTK cell's volume oscillation, B in eV/Å^3, V in Å^3."""
    w = (n_atoms + 1) * BOLTZMANN * temperature * barostat_damping ** 2
    return math.sqrt(3.0 * volume * bulk_modulus / w)


RUNAWAY_STRAIN_PER_STEP = 0.1      # |g| dt above it: the cell changes by 10 % in one step


def project_barostat_force(coupling: str, force: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """The part of a (3, 3) force on g that the coupling lets act."""
    if coupling == "iso":
        return np.eye(3) * (np.trace(force) / 3.0)
    if coupling == "aniso":
        return np.diag(np.where(axes, np.diag(force), 0.0))
    return 0.5 * (force + force.T)


def barostat_dof(coupling: str, axes: np.ndarray) -> int:
    return {"iso": 1, "aniso": int(axes.sum()), "triclinic": 6}[coupling]


class MTKBarostat(BarostatTarget, NoseHooverChain):
    """NPT: Nose-Hoover chains + MTK cell dynamics (``ensemble = "npt-mtk"``)."""

    name = "npt-mtk"
    damping_key = "[barostat].damping"      # named in the runaway message; a driver may rename it

    def __init__(self, timestep_ps: float, temperature: float, pressure_bar: float = 0.0,
                 damping: float = 0.1, barostat_damping: float = 1.0, coupling: str = "iso",
                 chain_length: int = 3, loops: int = 1, yoshida_order: int = 3):
        NoseHooverChain.__init__(self, timestep_ps, temperature, damping, chain_length, loops, yoshida_order)
        self.init_barostat(pressure_bar, barostat_damping, coupling)
        self.g = np.zeros((3, 3))                      # barostat velocity tensor (1/ps)
        self.xi_b = np.zeros(self.chain_length)        # barostat chain
        self.vxi_b = np.zeros(self.chain_length)

    @classmethod
    def from_settings(cls, md: dict, thermostat: dict, barostat: dict):
        return cls(md["timestep"], thermostat["temperature"], barostat["pressure"],
                   damping=thermostat["damping"], barostat_damping=barostat["damping"],
                   coupling=barostat["coupling"], chain_length=thermostat["chain_length"],
                   loops=thermostat["chain_loops"], yoshida_order=thermostat["yoshida_order"])

    # ------------------------------------------------------------ parameters
    def barostat_mass(self, engine) -> float:
        """W per component (eV ps^2)."""
        return (engine.state.n_atoms_total + 1) * BOLTZMANN * self.temperature * self.barostat_damping ** 2

    def barostat_chain_masses(self) -> np.ndarray:
        kt = BOLTZMANN * self.temperature
        q = np.full(self.chain_length, kt * self.barostat_damping ** 2)
        q[0] *= barostat_dof(self.coupling, self.axes)
        return q

    # ------------------------------------------------------------ sub-steps
    def barostat_chain_half_step(self, engine):
        w = self.barostat_mass(engine)
        scale = chain_half_step(self.xi_b, self.vxi_b, self.barostat_chain_masses(),
                                w * float((self.g * self.g).sum()), barostat_dof(self.coupling, self.axes),
                                BOLTZMANN * self.temperature, 0.5 * self.dt, self.loops, self.weights)
        self.g *= scale

    def barostat_half_step(self, engine):
        """W dg/dt = V (P_int - P0) + 2K/Nf, over dt/2."""
        st = engine.state
        kin = engine.kinetic_tensor()
        volume = st.volume
        force = kin + engine.virial - volume * self.pressure * np.eye(3)
        force += np.eye(3) * (np.trace(kin) / engine.degrees_of_freedom())
        self.g += (0.5 * self.dt / self.barostat_mass(engine)) * project_barostat_force(
            self.coupling, force, self.axes)

    def velocity_half_step(self, engine):
        """dv/dt = F/m - (g + tr(g)/Nf) v over dt/2, solved exactly."""
        st = engine.state
        h = 0.5 * self.dt
        a, u = np.linalg.eigh(self.g + np.eye(3) * (np.trace(self.g) / engine.degrees_of_freedom()))
        acc = (FORCE_TO_ACCEL * engine.forces / st.masses[:, None]) @ u
        v = st.velocities @ u
        v = v * np.exp(-a * h) + acc * (h * np.exp(-0.5 * a * h) * _sinhc(0.5 * a * h))
        st.velocities = v @ u.T

    def position_step(self, engine):
        """dr/dt = v + g r, dh/dt = g h over dt, solved exactly; the engine adopts the new cell."""
        st = engine.state
        dt = self.dt
        e, u = np.linalg.eigh(self.g)
        r = st.positions @ u
        v = st.velocities @ u
        r = r * np.exp(e * dt) + v * (dt * np.exp(0.5 * e * dt) * _sinhc(0.5 * e * dt))
        st.positions = r @ u.T
        expg = (u * np.exp(e * dt)) @ u.T              # exp(g dt), symmetric
        engine.set_cell(st.cell @ expg)

    # ------------------------------------------------------------ step
    def step(self, engine):
        st = engine.state
        try:
            self.barostat_chain_half_step(engine)
            self.chain_half_step(engine)
            self.barostat_half_step(engine)
            self._check_runaway(engine)
            self.velocity_half_step(engine)
            self.position_step(engine)
            engine.compute_forces()
            self.velocity_half_step(engine)
            self.barostat_half_step(engine)
            self.chain_half_step(engine)
            self.barostat_chain_half_step(engine)
            self._check_runaway(engine, end_of_step=True)
        except OverflowError as exc:
            if isinstance(exc, BarostatRunawayError):
                raise
            raise BarostatRunawayError(self._runaway_message(
                engine, f"an overflow ({exc})", getattr(self, "_rate_history", ()))) from exc
        st.step += 1
        st.time += self.dt

    def _check_runaway(self, engine, end_of_step=False):
        """Raise when the cell strains by more than RUNAWAY_STRAIN_PER_STEP in one step (or g is NaN);
        remembers the volume rate tr(g) at the end of the last steps for the diagnosis (within a
        step the half kicks keep its sign; from step to step an unstable cell mode flips it)."""
        rates = getattr(self, "_rate_history", ()) + ((float(np.trace(self.g)),) if end_of_step else ())
        strain = float(np.abs(self.g).max()) * self.dt
        if not strain <= RUNAWAY_STRAIN_PER_STEP:            # also NaN
            raise BarostatRunawayError(self._runaway_message(
                engine, f"a cell strain rate |g| dt = {strain:.3g} per step", rates))
        if end_of_step:
            self._rate_history = rates[-3:]

    def _runaway_message(self, engine, what, rates=()) -> str:
        """Why the cell ran away: a volume rate that flips sign every step while it grows is the
        discrete cell mode's instability (omega dt > 2); a monotonic one, a pressure the
        structure cannot balance (e.g. a tension beyond its strength)."""
        rates = np.asarray(rates)             # at the ends of the last steps
        flipping = len(rates) >= 2 and bool(np.all(rates[1:] * rates[:-1] < 0))
        if flipping:
            return (f"the npt-mtk cell variables diverged ({what}, the volume rate flipping sign every "
                    f"step). The barostat mass (N+1) kB T tau^2 shrinks with the temperature: at "
                    f"{self.temperature:g} K with {self.damping_key} = {self.barostat_damping:g} ps the cell "
                    f"oscillates in fewer than about 3 timesteps (period 2 pi tau sqrt((N+1) kB T / (3 V B)), "
                    f"B the bulk modulus) and the integration diverges; raise {self.damping_key} (e.g. x 5) "
                    "or reduce the timestep")
        return (f"the npt-mtk cell variables diverged ({what}, the volume running away in one direction, "
                f"volume {engine.state.volume:.6g} Å^3): the structure cannot balance the target pressure "
                f"{self.pressure_bar:g} bar (e.g. a tension beyond its strength); check the pressure "
                f"([barostat].pressure is in bar) and the structure; if the cell instead oscillated, raise "
                f"{self.damping_key}")

    def conserved_extra(self, engine) -> float:
        kt = BOLTZMANN * self.temperature
        extra = NoseHooverChain.conserved_extra(self, engine)
        extra += 0.5 * self.barostat_mass(engine) * float((self.g * self.g).sum())
        extra += self.pressure * engine.state.volume
        extra += chain_energy(self.xi_b, self.vxi_b, self.barostat_chain_masses(),
                              barostat_dof(self.coupling, self.axes), kt)
        return extra

    # ------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        d = NoseHooverChain.state_dict(self)
        d.update(self.barostat_state())
        d.update({"g": self.g.copy(), "xi_b": self.xi_b.copy(), "vxi_b": self.vxi_b.copy()})
        return d

    def load_state_dict(self, state: dict):
        NoseHooverChain.load_state_dict(self, state)
        if "g" not in state:
            return
        self.check_saved_coupling(state)
        g = np.asarray(state["g"], dtype=float)
        xi_b = np.asarray(state["xi_b"], dtype=float)
        vxi_b = np.asarray(state["vxi_b"], dtype=float)
        if g.shape != (3, 3) or xi_b.shape != (self.chain_length,):
            raise ValueError("checkpoint barostat variables have the wrong shape for this input")
        self.g, self.xi_b, self.vxi_b = g.copy(), xi_b.copy(), vxi_b.copy()
