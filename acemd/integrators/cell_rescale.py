"""NPT by stochastic cell rescaling (Bernetti and Bussi, J. Chem. Phys. 153, 114107 (2020)),
and Berendsen pressure coupling as an equilibration tool.

The barostat is first order: the logarithms of the cell lengths follow an
overdamped Langevin equation whose stationary distribution is the isothermal-
isobaric one.  With ``x`` the barostat coordinates (``iso``: x = ln V; ``aniso``:
x_a = ln L_a for every periodic Cartesian axis a) and

    f_a = V (P_aa - P0) + kB T          (iso: P_aa -> the scalar pressure)

the generalized force (P includes the kinetic term, the +kB T is the Jacobian of
dV = V dx), each coordinate moves by

    dx_a = (D/kT) f_a dt + sqrt(2 D dt) R_a,    D = kB T beta_T / (n tau_p V_ref)

(n = 1 for iso, 3 for aniso, so the volume relaxes with the time tau_p in both;
V_ref is the volume when the barostat started, kept in checkpoints).  A constant
D makes every step an unbiased Euler-Maruyama step of the same Fokker-Planck
equation whose stationary density is exp(-(U + K + P0 V)/kT) V^N; V_ref only sets
the time scale.

Splitting (the time-reversible "T" scheme of Bernetti and Bussi): thermostat
dt/2, kick dt/2, cell move fused with the drift (r' = s r + (s + 1/s)/2 v dt,
v' = v / s, h' = h s with s = exp(dx) per axis), forces, kick dt/2, thermostat
dt/2.  The thermostat is stochastic velocity rescaling (:mod:`.csvr`).

Effective energy (the conserved quantity): E + P0 V - kT ln V, minus the
thermostat work, plus kT ln[T(x -> x') / T(x' -> x)] summed over the barostat
moves (T = the Gaussian transition probability; with the forces before (f) and
after (f') a move this is dx (f + f')/2 + D dt (f'^2 - f^2)/(4 kT)).  Under exact
detailed balance that sum cancels the change of the rest, so the drift of the
effective energy measures the integration error only.

Berendsen (``ensemble = "berendsen-equilibration"``) is the same step without
noise and without the Jacobian term: dx = (beta_T/tau_p) (P - P0) dt (times 1/3
per axis for aniso).  It relaxes the pressure quickly but does not sample the
NPT ensemble (volume fluctuations are too small): use it to equilibrate only.
"""
from __future__ import annotations

import math

import numpy as np

from ..rng import PURPOSE_BAROSTAT, normals_global
from ..units import BOLTZMANN, EV_PER_A3_TO_BAR
from .barostat import BarostatTarget
from .csvr import CSVR


class StochasticCellRescaling(BarostatTarget, CSVR):
    """NPT: stochastic velocity rescaling + stochastic cell rescaling (``ensemble = "npt-crescale"``)."""

    name = "npt-crescale"
    stochastic = True
    couplings = ("iso", "aniso")

    def __init__(self, timestep_ps: float, temperature: float, pressure_bar: float = 0.0,
                 damping: float = 0.1, barostat_damping: float = 1.0, coupling: str = "iso",
                 compressibility_per_bar: float = 1e-6, seed: int = 12345):
        CSVR.__init__(self, timestep_ps, temperature, damping, seed=seed)
        self.init_barostat(pressure_bar, barostat_damping, coupling)
        if not compressibility_per_bar > 0.0:
            raise ValueError("barostat compressibility must be positive (1/bar)")
        self.compressibility = float(compressibility_per_bar) * EV_PER_A3_TO_BAR   # Å^3/eV
        self.reference_volume = 0.0        # Å^3, fixed when the barostat starts
        self.heat = 0.0                    # eV, barostat heat (effective-energy bookkeeping)

    @classmethod
    def from_settings(cls, md: dict, thermostat: dict, barostat: dict):
        return cls(md["timestep"], thermostat["temperature"], barostat["pressure"],
                   damping=thermostat["damping"], barostat_damping=barostat["damping"],
                   coupling=barostat["coupling"], compressibility_per_bar=barostat["compressibility"],
                   seed=thermostat["seed"])

    def setup(self, engine):
        BarostatTarget.setup(self, engine)
        if self.reference_volume <= 0.0:
            self.reference_volume = engine.state.volume

    # ------------------------------------------------------------ barostat
    def diffusion(self) -> float:
        """D of each barostat coordinate (1/ps)."""
        kt = BOLTZMANN * self.temperature
        n = 1 if self.coupling == "iso" else 3
        return kt * self.compressibility / (n * self.barostat_damping * self.reference_volume)

    def generalized_forces(self, engine) -> np.ndarray:
        """f per barostat coordinate (eV): V (P - P0) (+ kT for the stochastic barostat)."""
        volume = engine.state.volume
        stress = engine.kinetic_tensor() + engine.virial       # V P_int (eV)
        jacobian = BOLTZMANN * self.temperature if self.stochastic else 0.0
        if self.coupling == "iso":
            return np.array([np.trace(stress) / 3.0 - volume * self.pressure + jacobian])
        return np.diag(stress)[self.axes] - volume * self.pressure + jacobian

    def displacement(self, engine, f: np.ndarray) -> np.ndarray:
        """The move dx of the barostat coordinates over one step."""
        dt = self.dt
        d = self.diffusion()
        kt = BOLTZMANN * self.temperature
        noise = normals_global(self.seed, PURPOSE_BAROSTAT, engine.state.step, len(f))
        return (d * dt / kt) * f + math.sqrt(2.0 * d * dt) * noise

    def scale_factors(self, dx: np.ndarray) -> np.ndarray:
        s = np.ones(3)
        if self.coupling == "iso":
            s[:] = math.exp(dx[0] / 3.0)
        else:
            s[self.axes] = np.exp(dx)
        return s

    def cell_move_and_drift(self, engine, s: np.ndarray):
        """r' = s r + (s + 1/s)/2 v dt,  v' = v/s,  h' = h s (per Cartesian axis)."""
        st = engine.state
        st.positions = st.positions * s + st.velocities * (0.5 * (s + 1.0 / s) * self.dt)
        st.velocities = st.velocities / s
        engine.set_cell(st.cell * s)

    def _heat(self, dx, f, f_new) -> float:
        """kT ln[T(x -> x') / T(x' -> x)] with constant D (eV)."""
        kt = BOLTZMANN * self.temperature
        d = self.diffusion()
        return float(0.5 * dx @ (f + f_new) + d * self.dt / (4.0 * kt) * (f_new @ f_new - f @ f))

    # ------------------------------------------------------------ step
    def step(self, engine):
        st = engine.state
        self.rescale(engine, 2 * st.step, 0.5 * self.dt)
        self.kick(engine)
        f = self.generalized_forces(engine)
        dx = self.displacement(engine, f)
        self.cell_move_and_drift(engine, self.scale_factors(dx))
        engine.compute_forces()
        f_new = self.generalized_forces(engine)
        self.heat += self._heat(dx, f, f_new)
        self.kick(engine)
        self.rescale(engine, 2 * st.step + 1, 0.5 * self.dt)
        st.step += 1
        st.time += self.dt

    def conserved_extra(self, engine) -> float:
        volume = engine.state.volume
        extra = CSVR.conserved_extra(self, engine) + self.pressure * volume + self.heat
        if self.stochastic:
            extra -= BOLTZMANN * self.temperature * math.log(volume)
        return extra

    # ------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        d = CSVR.state_dict(self)
        d.update(self.barostat_state())
        d.update({"reference_volume": self.reference_volume, "heat": self.heat,
                  "barostat_noise_stream": "normals_global(seed, PURPOSE_BAROSTAT, step, n)"})
        return d

    def load_state_dict(self, state: dict):
        CSVR.load_state_dict(self, state)
        if "reference_volume" in state:
            self.check_saved_coupling(state)
            self.reference_volume = float(state["reference_volume"])
            self.heat = float(state.get("heat", 0.0))


class BerendsenEquilibration(StochasticCellRescaling):
    """Berendsen pressure coupling + stochastic velocity rescaling: equilibration only.

    ``ensemble = "berendsen-equilibration"``; the log carries :data:`WARNING`.
    """

    name = "berendsen-equilibration"
    stochastic = False
    WARNING = ("WARNING: berendsen-equilibration does not sample the NPT ensemble (its volume "
               "fluctuations are wrong); use it to equilibrate, then npt-mtk or npt-crescale")

    def displacement(self, engine, f: np.ndarray) -> np.ndarray:
        return (self.diffusion() * self.dt / (BOLTZMANN * self.temperature)) * f

    def _heat(self, dx, f, f_new) -> float:
        return float(0.5 * dx @ (f + f_new))
