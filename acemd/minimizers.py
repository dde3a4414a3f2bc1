"""Energy minimisation on a :class:`~acemd.simulation.Simulation`: FIRE and L-BFGS, with the cell.

The variables are the atoms' Cartesian positions and, like LAMMPS ``fix
box/relax``, optionally symmetric strains of the cell (``iso``: the volume;
``aniso``: the periodic lengths; ``triclinic``: all six components; never a
rotation).  The minimised function is the enthalpy H = E + P_target V; the
generalised force on a strain ε is W - P_target V I (eV) with W the virial.
Strains are measured from the current cell, in length units (ε times a length
L = sqrt(N) (V/N)^(1/3)), so that a strain step and an atom step of the same
size cost the solid about the same energy.

Per-atom vectors of the methods (FIRE velocities, L-BFGS history) live in
``State.extra_per_atom`` and travel with the atoms when they migrate between
ranks; the cell part is the same on every rank.  Dot products are global sums,
so any rank count gives the same path to round-off.

The run's ``[guards]`` (:class:`acemd.guards.Guards`, without temperature and drift) check the
starting configuration and every step: a start that fails raises
:class:`~acemd.guards.GuardError`; a step that fails puts the last good state back and ends the
minimisation with reason ``"guard"`` (never "converged").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from .guards import Guards
from .units import EV_PER_A3_TO_BAR

GUARD_ADVICE = ("Check the structure (a slab needs a non-periodic axis with vacuum), the target pressure "
                "and whether the potential is physical for this structure (docs/potentials.md), or relax the "
                "limit in [guards]")

CELL_MODES = ("fixed", "iso", "aniso", "triclinic")
METHODS = ("fire", "lbfgs")


class CellDOF:
    """Symmetric strain degrees of freedom of the cell and their generalised forces."""

    def __init__(self, mode: str, pbc, n_atoms: int, volume: float, pressure_bar: float):
        if mode not in CELL_MODES:
            raise ValueError(f"cell mode {mode!r}; expected one of {', '.join(CELL_MODES)}")
        pbc = np.asarray(pbc, dtype=bool)
        if mode in ("iso", "triclinic") and not pbc.all():
            raise ValueError(f"cell = '{mode}' needs a cell periodic along x, y and z; use 'aniso' "
                             "(periodic lengths only) or 'fixed'")
        self.mode = mode
        basis = []
        if mode == "iso":
            basis.append(np.eye(3) / math.sqrt(3.0))
        elif mode == "aniso":
            for d in range(3):
                if pbc[d]:
                    e = np.zeros((3, 3))
                    e[d, d] = 1.0
                    basis.append(e)
        elif mode == "triclinic":
            for i in range(3):
                for j in range(i, 3):
                    e = np.zeros((3, 3))
                    if i == j:
                        e[i, i] = 1.0
                    else:
                        e[i, j] = e[j, i] = 1.0 / math.sqrt(2.0)
                    basis.append(e)
        self.basis = basis
        self.n = len(basis)
        self.length = math.sqrt(n_atoms) * (volume / n_atoms) ** (1.0 / 3.0)     # Å
        self.pressure_bar = float(pressure_bar)
        self.pressure = float(pressure_bar) / EV_PER_A3_TO_BAR                   # eV/Å^3
        self.pbc = pbc

    def force(self, virial, volume) -> np.ndarray:
        """Generalised forces (eV/Å) on the strain coordinates: -dH/dq."""
        g = np.asarray(virial) - self.pressure * volume * np.eye(3)
        return np.array([float((g * b).sum()) / self.length for b in self.basis])

    def deformation(self, dq) -> np.ndarray:
        """Deformation gradient I + ε of a step dq (Å) of the strain coordinates."""
        eps = np.zeros((3, 3))
        for c, b in zip(dq, self.basis):
            eps += c * b
        return np.eye(3) + eps / self.length

    def stress_deviation_bar(self, pressure_tensor_bar) -> float:
        """Largest deviation (bar) of the relaxed stress components from the target."""
        p = np.asarray(pressure_tensor_bar)
        if self.mode == "fixed":
            return 0.0
        if self.mode == "iso":
            return abs(float(np.trace(p)) / 3.0 - self.pressure_bar)
        if self.mode == "aniso":
            return max(abs(float(p[d, d]) - self.pressure_bar) for d in range(3) if self.pbc[d])
        return float(np.abs(p - self.pressure_bar * np.eye(3)).max())


@dataclass
class MinimizeResult:
    converged: bool
    reason: str             # 'converged', 'max_steps', 'stuck', 'line search', 'signal', 'guard'
    steps: int
    force_calls: int
    energy: float           # eV
    enthalpy: float         # eV, E + P_target V
    fmax: float             # eV/Å
    stress_deviation: float  # bar
    pressure: float         # bar, virial only
    volume: float           # Å^3
    message: str = ""       # the guard's stop message (reason 'guard')


class Minimizer:
    """Relax atoms (and the cell) of a simulation to a local minimum of the enthalpy.

    ``log(step, values)`` is called every ``log_every`` steps and at the end
    with Energy, Enthalpy, Fmax, Press, dStress, Volume; ``stop()`` returning
    true ends the run early (signals).  ``guards`` is a settings dict with a ``[guards]``
    section (default: the simulation's settings); ``{"guards": {"enabled": False}}`` turns them off.
    """

    # FIRE 2.0 (Guénolé et al., Comput. Mater. Sci. 175, 109584 (2020)), unit masses
    DT_START = 0.1
    DT_MAX = 1.0
    DT_MIN = 0.002
    N_DELAY = 5
    F_INC = 1.1
    F_DEC = 0.5
    ALPHA_START = 0.25
    F_ALPHA = 0.99
    MAX_UPHILL = 2000
    # L-BFGS
    HISTORY = 10
    ARMIJO = 1e-4

    def __init__(self, simulation, method="fire", cell="fixed", pressure=0.0, fmax=1e-3,
                 stress_tol=1.0, max_steps=10000, max_displacement=0.1, log=None, log_every=10,
                 stop=None, guards=None, resume=None):
        if method not in METHODS:
            raise ValueError(f"minimiser {method!r}; expected one of {', '.join(METHODS)}")
        self.sim = simulation
        self.comm = simulation.comm
        st = simulation.state
        self.method = method
        self.cell = CellDOF(cell, st.pbc, st.n_atoms_total, st.volume, pressure)
        self.fmax_tol = float(fmax)
        self.stress_tol = float(stress_tol)
        self.max_steps = int(max_steps)
        self.dmax = float(max_displacement)
        self.log = log
        self.log_every = max(int(log_every), 1)
        self.stop = stop or (lambda: False)
        self.force_calls = 0
        self.steps = 0
        self.guard_settings = guards if guards is not None else getattr(simulation, "settings", {}) or {}
        self.guards = None
        # FIRE continued from a checkpoint: its scalars here, its per-atom velocities already in
        # State.extra_per_atom["fire_v"] (see resume_state)
        self.resume = resume if method == "fire" else None
        self.fire_state = None
        self.final_extra, self.final_ids = {}, None

    # ------------------------------------------------------------ vectors
    def _dot(self, a, b, a_cell, b_cell) -> float:
        local = float(np.vdot(a, b))
        return self.comm.allreduce(local, op=MPI.SUM) + float(np.dot(a_cell, b_cell))

    def _max_norm(self, a) -> float:
        local = float(np.sqrt((a * a).sum(1)).max()) if len(a) else 0.0
        return self.comm.allreduce(local, op=MPI.MAX)

    def _evaluate(self):
        """Forces, cell forces, energy, enthalpy and the convergence measures."""
        sim = self.sim
        sim.compute()
        self.force_calls += 1
        st, eng = sim.state, sim.engine
        self.forces = eng.forces
        self.cell_force = self.cell.force(eng.virial, st.volume)
        self.energy = eng.potential_energy
        self.enthalpy = self.energy + self.cell.pressure * st.volume
        self.fmax = sim.max_force()
        ptensor = sim.virial_pressure_bar()
        self.pressure = float(np.trace(ptensor)) / 3.0
        self.stress_dev = self.cell.stress_deviation_bar(ptensor)

    def _converged(self) -> bool:
        return self.fmax <= self.fmax_tol and self.stress_dev <= self.stress_tol

    def _finished(self) -> str | None:
        """Why the minimisation ends now (guard, converged, max_steps, signal), or None to go on."""
        if self.guards is not None and self.steps > 0:
            if self.guards.check(self.sim.engine, None, self.steps):
                self._evaluate()              # the last good state's forces, energy and stress
                return "guard"
        if self._converged():
            return "converged"
        if self.steps >= self.max_steps:
            return "max_steps"
        if self.stop():
            return "signal"
        return None

    def _capped(self, dx, dq) -> float:
        """Factor (<= 1) that keeps every atom step and strain step within max_displacement."""
        biggest = max(self._max_norm(dx), float(np.abs(dq).max()) if len(dq) else 0.0)
        return 1.0 if biggest <= self.dmax else self.dmax / biggest

    def _move(self, dx, dq):
        """Displace the atoms by dx (Å), then strain cell and atoms by dq (collective)."""
        st = self.sim.state
        st.positions = st.positions + dx
        if len(dq) and np.any(dq):
            self.sim.deform(self.cell.deformation(dq))

    def _row(self):
        return {"Energy": self.energy, "Enthalpy": self.enthalpy, "Fmax": self.fmax,
                "Press": self.pressure, "dStress": self.stress_dev, "Volume": self.sim.state.volume}

    def _log(self, force=False):
        if self.log is not None and (force or self.steps % self.log_every == 0):
            self.log(self.steps, self._row())

    # ------------------------------------------------------------ driver
    def check_start(self):
        """Evaluate the starting state and set up the guards: GuardError (on every rank) if it
        already fails.  A driver calls this before it opens any output, so that a refused start
        leaves existing files (the log) as they were; :meth:`run` calls it when the driver did not."""
        if self.guards is not None:
            return
        if self.resume is not None:
            self.steps = int(self.resume["steps"])
            self.cell.length = float(self.resume.get("length", self.cell.length))   # the strain scale
        self._evaluate()
        self.guards = Guards(self.guard_settings, self.comm, self.sim.engine, None, advice=GUARD_ADVICE,
                             what="minimiser step", start=self.steps)

    def run(self) -> MinimizeResult:
        """Minimise until converged, stuck or ``max_steps``."""
        self.check_start()
        self._log(force=True)
        run = self._fire if self.method == "fire" else self._lbfgs
        reason = run()
        st = self.sim.state
        self.final_extra = {k: np.array(v, copy=True) for k, v in st.extra_per_atom.items()}
        self.final_ids = st.ids.copy()
        st.extra_per_atom.clear()
        if reason == "guard":
            self.steps = self.guards.last_good_step
        if self.steps % self.log_every or reason == "guard":
            self._log(force=True)
        return MinimizeResult(converged=reason == "converged", reason=reason, steps=self.steps,
                              force_calls=self.force_calls, energy=self.energy, enthalpy=self.enthalpy,
                              fmax=self.fmax, stress_deviation=self.stress_dev, pressure=self.pressure,
                              volume=st.volume, message=self.guards.message if reason == "guard" else "")

    def resume_state(self) -> dict | None:
        """What a checkpoint needs to continue this FIRE run where it stopped (None for L-BFGS, whose
        history is not kept: it restarts from the checkpoint's positions).  The per-atom velocities
        are ``final_extra["fire_v"]`` of the atoms ``final_ids``."""
        if self.fire_state is None:
            return None
        return dict(self.fire_state, steps=int(self.steps), method="fire", length=float(self.cell.length))

    def _fire(self) -> str:
        st = self.sim.state
        r = self.resume
        if r is not None and "fire_v" in st.extra_per_atom:
            v_cell = np.array(r["v_cell"], dtype=float)
            dt, alpha, n_pos, n_neg = float(r["dt"]), float(r["alpha"]), int(r["n_pos"]), int(r["n_neg"])
        else:
            st.extra_per_atom["fire_v"] = np.zeros_like(st.positions)
            v_cell = np.zeros(self.cell.n)
            dt, alpha = self.DT_START, self.ALPHA_START
            n_pos = n_neg = 0
        while True:
            self.fire_state = {"dt": dt, "alpha": alpha, "n_pos": n_pos, "n_neg": n_neg,
                               "v_cell": np.array(v_cell, dtype=float)}
            reason = self._finished()
            if reason:
                return reason
            v = st.extra_per_atom["fire_v"]
            power = self._dot(self.forces, v, self.cell_force, v_cell)
            if power > 0.0:
                n_pos += 1
                n_neg = 0
                if n_pos > self.N_DELAY:
                    dt = min(dt * self.F_INC, self.DT_MAX)
                    alpha *= self.F_ALPHA
            else:
                n_pos = 0
                n_neg += 1
                if n_neg > self.MAX_UPHILL:
                    return "stuck"
                if self.steps >= self.N_DELAY:          # FIRE 2.0 initial delay
                    dt = max(dt * self.F_DEC, self.DT_MIN)
                    alpha = self.ALPHA_START
                back = self._capped(0.5 * dt * v, 0.5 * dt * v_cell)     # never more than a forward step
                self._move(-back * 0.5 * dt * v, -back * 0.5 * dt * v_cell)
                v = st.extra_per_atom["fire_v"] = np.zeros_like(st.positions)
                v_cell = np.zeros(self.cell.n)
            # semi-implicit Euler with velocity mixing
            v = v + dt * self.forces
            v_cell = v_cell + dt * self.cell_force
            v_norm = math.sqrt(self._dot(v, v, v_cell, v_cell))
            f_norm = math.sqrt(self._dot(self.forces, self.forces, self.cell_force, self.cell_force))
            if f_norm > 0.0:
                v = (1.0 - alpha) * v + alpha * v_norm / f_norm * self.forces
                v_cell = (1.0 - alpha) * v_cell + alpha * v_norm / f_norm * self.cell_force
            scale = self._capped(dt * v, dt * v_cell)
            st.extra_per_atom["fire_v"] = v
            self._move(scale * dt * v, scale * dt * v_cell)
            self.steps += 1
            self._evaluate()
            self._log()

    def _lbfgs(self) -> str:
        st = self.sim.state
        ex = st.extra_per_atom
        history = []                 # [(name, s_cell, y_cell, rho)], per-atom parts in ex
        slot = 0
        while True:
            reason = self._finished()
            if reason:
                return reason
            g, g_cell = -self.forces, -self.cell_force
            # two-loop recursion
            q, q_cell = g.copy(), g_cell.copy()
            alphas = []
            for name, s_c, y_c, rho in reversed(history):
                a = rho * self._dot(ex["s" + name], q, s_c, q_cell)
                alphas.append(a)
                q -= a * ex["y" + name]
                q_cell -= a * y_c
            if history:
                name, s_c, y_c, _ = history[-1]
                gamma = (self._dot(ex["s" + name], ex["y" + name], s_c, y_c)
                         / self._dot(ex["y" + name], ex["y" + name], y_c, y_c))
            else:
                gamma = 0.01            # Å^2/eV: a first step of about 1/100 of the force
            r, r_cell = gamma * q, gamma * q_cell
            for (name, s_c, y_c, rho), a in zip(history, reversed(alphas)):
                b = rho * self._dot(ex["y" + name], r, y_c, r_cell)
                r += (a - b) * ex["s" + name]
                r_cell += (a - b) * s_c
            p, p_cell = -r, -r_cell
            slope = self._dot(g, p, g_cell, p_cell)
            if slope >= 0.0:             # not a descent direction: forget the history
                for name, *_ in history:
                    ex.pop("s" + name), ex.pop("y" + name)
                history.clear()
                p, p_cell = -0.01 * g, -0.01 * g_cell
                slope = self._dot(g, p, g_cell, p_cell)
            scale = self._capped(p, p_cell)
            p, p_cell, slope = scale * p, scale * p_cell, scale * slope
            # backtracking line search on the enthalpy; moves are relative, so the per-atom
            # vectors stay valid when atoms migrate (they travel in extra_per_atom)
            ex["p"], ex["g_old"] = p, g
            h0, fmax0 = self.enthalpy, self.fmax
            g_cell_old = g_cell
            step, accepted = 1.0, False
            self._move(p, p_cell)
            for _ in range(12):
                self._evaluate()
                if self.enthalpy <= h0 + self.ARMIJO * step * slope:
                    accepted = True
                    break
                # near the minimum the enthalpy stops resolving the step (round-off): accept it
                # when the change is at round-off level and the slope along p fell (Wolfe curvature)
                new_slope = -self._dot(self.forces, ex["p"], self.cell_force, p_cell)
                if self.enthalpy - h0 <= 1e-12 * max(1.0, abs(h0)) and abs(new_slope) <= 0.9 * abs(slope):
                    accepted = True
                    break
                new = 0.5 * step
                self._move((new - step) * ex["p"], (new - step) * p_cell)
                step = new
            if not accepted and self.fmax >= fmax0:
                # the energy no longer resolves the step (round-off): take it if the forces fell
                self.steps += 1
                if self.guards is not None and self.guards.check(self.sim.engine, None, self.steps):
                    self._evaluate()
                    return "guard"
                self._log(force=True)
                return "line search"
            self.steps += 1
            s, s_cell = step * ex["p"], step * p_cell
            y, y_cell = (-self.forces) - ex["g_old"], (-self.cell_force) - g_cell_old
            sy = self._dot(s, y, s_cell, y_cell)
            if sy > 0.0:
                name = str(slot % self.HISTORY)
                slot += 1
                history = [h for h in history if h[0] != name]
                ex["s" + name], ex["y" + name] = s, y
                history.append((name, s_cell, y_cell, 1.0 / sy))
            self._log()
