"""Blow-up guards: stop a diverging run at the last good state instead of finishing it silently.

``[guards]`` (see docs/errors-and-guards.md) sets the limits; they are on by
default with generous values.  Every ``every`` steps :meth:`Guards.step`
checks, with one collective call, that

* positions, velocities and forces are finite,
* no atom feels a force above ``max_force`` (eV/Å),
* no two atoms are closer than ``min_distance`` (Å, over the neighbour list),
* the temperature stays below ``max_temperature_factor`` × the reference
  temperature (the largest of the thermostat's target, ``[velocities].temperature``,
  the temperature when the run started, and 300 K),
* in NVE/NVT the conserved quantity stays within ``max_drift`` eV/atom of its
  value at the start,
* no atom has left the box through a non-periodic face (the engine refuses such an atom at its
  next neighbour-list rebuild; the guard turns that into a stop at the last good state too),
* the potential energy per atom stays within ``max_energy_change`` of its value when the
  guards started (and within ``min_energy_per_atom`` .. ``max_energy_per_atom`` if given),
* the cell volume per atom stays within ``min_volume_per_atom`` .. ``max_volume_per_atom``
  (default: ``MAX_VOLUME_FACTOR`` x the start's) and changes by at most ``max_volume_change``
  (a fraction) between two checks.

The same class guards a minimiser (no integrator: :meth:`Guards.check` after each step; no
temperature or drift), so every driver stage runs under the same ``[guards]``.

A state that passes is remembered (per-rank copies, cheap next to a force
evaluation).  When a check fails, or the integrator raises an overflow
(``math.exp`` in a Nose-Hoover chain), a non-finite energy or a singular cell,
the remembered state is put back, so the run's final checkpoint holds the last
good state, and the message names the step, the cause and what to do.
"""
from __future__ import annotations

import copy
import time

import numba
import numpy as np
from mpi4py import MPI

from .parallel.halo import AtomLeftBoxError, LostAtomsError
from .units import BOLTZMANN, MVV_TO_EV

REFERENCE_TEMPERATURE_FLOOR_K = 300.0
MAX_VOLUME_FACTOR = 10.0     # default largest volume: this x the volume per atom when the guards start
MD_ADVICE = ("Check the structure, the potential and the units ([md.timestep] is in ps), reduce the "
             "timestep, or relax the limit in [guards]")
DRIFT_ENSEMBLES = ("nve", "nvt-langevin", "nvt-nose-hoover", "nvt-csvr")


@numba.njit(cache=True)
def min_pair_distance(ext_positions, n_local, offsets, neighbors):
    """Smallest distance between an owned atom and any atom of its neighbour list (inf if none)."""
    best = np.inf
    for i in range(n_local):
        for p in range(offsets[i], offsets[i + 1]):
            j = neighbors[p]
            d2 = 0.0
            for k in range(3):
                x = ext_positions[j, k] - ext_positions[i, k]
                d2 += x * x
            if d2 < best:
                best = d2
    return np.sqrt(best)


class GuardError(ValueError):
    """The initial state already fails a guard (an input error: raised on every rank alike)."""


class Guards:
    """The guards of one run: ``reason = guards.step(integrator, engine)`` replaces ``integrator.step``."""

    def __init__(self, settings, comm, engine, integrator=None, advice=MD_ADVICE, what="step", start=None):
        """``integrator`` None: a minimiser (no temperature, drift or integrator state); ``advice``
        ends a stop message; ``what`` names the counter in it ("step", "minimiser step"), ``start``
        its value now (default: the state's step with an integrator, else 0)."""
        g = settings.get("guards") or {}
        from .config import SCHEMA
        g = {k: spec.default for k, spec in SCHEMA["guards"].items()} | dict(g)   # keys a caller left out
        self.enabled = bool(g["enabled"])
        self.every = int(g["every"])
        self.max_force = float(g["max_force"])
        self.min_distance = float(g["min_distance"])
        self.temperature_factor = float(g["max_temperature_factor"])
        self.max_drift = float(g["max_drift"])
        self.max_energy_change = float(g["max_energy_change"])
        self.energy_floor = -np.inf if g["min_energy_per_atom"] is None else float(g["min_energy_per_atom"])
        self.energy_ceiling = np.inf if g["max_energy_per_atom"] is None else float(g["max_energy_per_atom"])
        self.min_volume = float(g["min_volume_per_atom"])
        self.max_volume = None if g["max_volume_per_atom"] is None else float(g["max_volume_per_atom"])
        self.max_volume_change = float(g["max_volume_change"])
        self.advice, self.what = advice, what
        self.comm = comm
        self.ensemble = settings["md"]["ensemble"] if integrator is not None else "minimize"
        self.check_drift = integrator is not None and self.ensemble in DRIFT_ENSEMBLES
        self.check_temperature = integrator is not None
        self.reference_temperature = max(float(settings.get("thermostat", {}).get("temperature", 0.0)),
                                         float((settings.get("velocities") or {}).get("temperature", 0.0)),
                                         REFERENCE_TEMPERATURE_FLOOR_K)
        self.conserved0 = None
        self.energy0 = None                  # eV/atom when the guards started
        self.volume_good = None              # Å^3 of the last state that passed
        self.message = ""
        self.seconds = 0.0                   # time spent in checks and snapshots
        self.checks = 0
        self._snapshot = None
        if self.enabled:
            values = self._measure(engine, integrator)
            cause = self._cause(values, engine)
            if cause:
                raise GuardError(f"the initial state (step {engine.state.step}) fails a blow-up guard: {cause}; "
                                 "check the structure (positions in Å, the cell) or relax the limit in [guards]")
            self.reference_temperature = max(self.reference_temperature, values["temperature"])
            self.conserved0 = values["conserved"]
            self.energy0 = values["energy_per_atom"]
            if self.max_volume is None:
                self.max_volume = MAX_VOLUME_FACTOR * values["volume_per_atom"]
            self.volume_good = values["volume_per_atom"]
            if start is None:
                start = engine.state.step if self.check_temperature else 0
            self._remember(engine.state, integrator, start)

    # ------------------------------------------------------------ the hook
    def step(self, integrator, engine) -> str | None:
        """One integrator step, then the checks when due; a stop message or None."""
        st = engine.state
        if not self.enabled:
            integrator.step(engine)
            return None
        step_before = st.step
        try:
            integrator.step(engine)
        except (OverflowError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError,
                AtomLeftBoxError, LostAtomsError) as exc:      # all raised on every rank alike
            return self._stop(engine, integrator, step_before + 1,
                              f"the integrator failed ({type(exc).__name__}: {exc}); "
                              f"{self._state_line(engine)}")
        if st.step % self.every:
            return None
        return self.check(engine, integrator, st.step)

    def check(self, engine, integrator=None, step=None) -> str | None:
        """The checks now (collective): a pass is remembered as the last good state; a failure puts
        that state back and returns the stop message (None: all is well)."""
        if not self.enabled:
            return None
        t0 = time.perf_counter()
        values = self._measure(engine, integrator)
        step = engine.state.step if step is None else step
        values["step"] = step
        cause = self._cause(values, engine)
        if cause:
            self.seconds += time.perf_counter() - t0
            return self._stop(engine, integrator, step, cause)
        self.volume_good = values["volume_per_atom"]
        self._remember(engine.state, integrator, step)
        self.checks += 1
        self.seconds += time.perf_counter() - t0
        return None

    # ------------------------------------------------------------ measuring
    def _measure(self, engine, integrator) -> dict:
        st = engine.state
        f = engine.forces[: st.n_local]
        v = st.velocities
        nonfinite = float(not (np.isfinite(st.positions).all() and np.isfinite(v).all()
                               and np.isfinite(f).all()))
        fmax2 = float(np.max(np.einsum("ij,ij->i", f, f))) if len(f) else 0.0
        rmin = np.inf
        if self.min_distance > 0 and getattr(engine, "neighbors", None) is not None and st.n_local:
            rmin = min_pair_distance(engine.ext_positions, st.n_local, engine.offsets, engine.neighbors)
        outside = 0.0
        open_axes = ~np.asarray(st.pbc, bool)
        if open_axes.any() and st.n_local:
            frac = np.linalg.solve(st.cell.T, st.positions.T).T
            lengths = np.linalg.norm(st.cell, axis=1)
            beyond = np.maximum(-frac, frac - 1.0) * lengths        # Å beyond a face, < 0 inside
            outside = float(np.max(beyond[:, open_axes]))
        ke2 = float(np.einsum("i,ij,ij->", st.masses, v, v)) * MVV_TO_EV if self.check_temperature else 0.0
        local = np.array([nonfinite, fmax2, -rmin, outside, ke2])
        every = np.empty((self.comm.Get_size(), 5))
        self.comm.Allgather(local, every)
        ke = 0.5 * every[:, 4].sum()
        temperature = 2.0 * ke / (engine.degrees_of_freedom() * BOLTZMANN)
        conserved = None
        if self.check_drift:
            conserved = engine.potential_energy + ke + integrator.conserved_extra(engine)
        n = st.n_atoms_total
        return {"nonfinite": every[:, 0].max() > 0, "max_force": float(np.sqrt(every[:, 1].max())),
                "min_distance": float(-every[:, 2].max()), "outside": float(every[:, 3].max()),
                "temperature": temperature, "conserved": conserved,
                "energy_per_atom": float(engine.potential_energy) / n,
                "volume_per_atom": float(abs(np.linalg.det(st.cell))) / n}

    def _cause(self, values, engine) -> str | None:
        if values["nonfinite"] or not np.isfinite(values["energy_per_atom"]):
            return "positions, velocities, forces or the energy are NaN or inf"
        if values["max_force"] > self.max_force:
            return (f"an atom feels a force of {values['max_force']:.4g} eV/Å, above "
                    f"[guards.max_force] = {self.max_force:g} eV/Å")
        if values["min_distance"] < self.min_distance:
            return (f"two atoms are {values['min_distance']:.4g} Å apart, closer than "
                    f"[guards.min_distance] = {self.min_distance:g} Å")
        e = values["energy_per_atom"]
        if e < self.energy_floor:
            return (f"the potential energy is {e:.6g} eV/atom, below [guards.min_energy_per_atom] = "
                    f"{self.energy_floor:g} eV/atom")
        if e > self.energy_ceiling:
            return (f"the potential energy is {e:.6g} eV/atom, above [guards.max_energy_per_atom] = "
                    f"{self.energy_ceiling:g} eV/atom")
        if self.energy0 is not None and abs(e - self.energy0) > self.max_energy_change:
            return (f"the potential energy is {e:.6g} eV/atom, {e - self.energy0:+.4g} eV/atom from its "
                    f"{self.energy0:.6g} eV/atom at the start, more than [guards.max_energy_change] = "
                    f"{self.max_energy_change:g} eV/atom (is the potential physical for this structure?)")
        if values["outside"] > 0.0:
            return (f"an atom is {values['outside']:.4g} Å outside a non-periodic face of the box (atoms "
                    "leave an open box: give the structure more vacuum, or make that axis periodic)")
        cause = self._volume_cause(values)
        if cause and str(self.ensemble).startswith("npt"):
            cause += ("; under NPT: the structure cannot balance the target pressure, or the barostat is too "
                      "fast for the timestep")
        if cause:
            return cause
        if not self.check_temperature:
            return None
        return self._thermal_cause(values, engine)

    def _volume_cause(self, values) -> str | None:
        vol = values["volume_per_atom"]
        if vol < self.min_volume:
            return (f"the cell volume is {vol:.4g} Å^3/atom, below [guards.min_volume_per_atom] = "
                    f"{self.min_volume:g} Å^3/atom (a collapsing cell)")
        if self.max_volume is not None and vol > self.max_volume:
            return (f"the cell volume is {vol:.4g} Å^3/atom, above [guards.max_volume_per_atom] = "
                    f"{self.max_volume:.4g} Å^3/atom (an exploding cell; the default is {MAX_VOLUME_FACTOR:g} "
                    "x the start's)")
        steps = max(int(values["step"]) - int(self.last_good_step or 0), 1) if self._snapshot else 1
        if self.volume_good is not None and (abs(np.log(vol / self.volume_good)) / steps
                                             > np.log1p(self.max_volume_change)):      # compounded per step
            return (f"the cell volume changed from {self.volume_good:.4g} to {vol:.4g} Å^3/atom in {steps} "
                    f"{self.what}(s), more than [guards.max_volume_change] = {self.max_volume_change:g} (a "
                    "fraction) per step")
        return None

    def _thermal_cause(self, values, engine) -> str | None:
        n = engine.state.n_atoms_total
        limit = self.temperature_factor * self.reference_temperature
        if values["temperature"] > limit:
            return (f"the temperature is {values['temperature']:.4g} K, above [guards.max_temperature_factor]"
                    f" = {self.temperature_factor:g} x the reference {self.reference_temperature:.4g} K")
        if self.check_drift and values["conserved"] is not None and self.conserved0 is not None:
            drift = abs(values["conserved"] - self.conserved0) / n
            if not np.isfinite(drift) or drift > self.max_drift:
                return (f"the conserved quantity drifted by {drift:.4g} eV/atom since the start, more than "
                        f"[guards.max_drift] = {self.max_drift:g} eV/atom ({self.ensemble})")
        return None

    def _state_line(self, engine) -> str:
        """Volume and temperature at the failure (collective: every rank is in the same failure)."""
        st = engine.state
        temperature = float(np.trace(engine.kinetic_tensor())) / (engine.degrees_of_freedom() * BOLTZMANN)
        return (f"temperature {temperature:.4g} K, volume {st.volume:.6g} Å^3 "
                f"({st.volume / st.n_atoms_total:.4g} Å^3/atom)")

    # ------------------------------------------------------------ last good state
    def _remember(self, st, integrator, label):
        self._snapshot = {"label": label, "arrays": {k: np.array(v, copy=True) for k, v in st.per_atom_arrays().items()},
                          "cell": st.cell.copy(), "step": st.step, "time": st.time,
                          "integrator": None if integrator is None else copy.deepcopy(integrator.state_dict())}

    @property
    def last_good_step(self):
        """The step of the remembered state (None before the first check)."""
        return None if self._snapshot is None else self._snapshot["label"]

    def _stop(self, engine, integrator, step, cause) -> str:
        st = engine.state
        snap = self._snapshot
        st.set_per_atom_arrays(snap["arrays"])
        st.cell = snap["cell"]
        st.step, st.time = snap["step"], snap["time"]
        if integrator is not None:
            integrator.load_state_dict(snap["integrator"])
        else:                                # a minimiser goes on using the engine: cell and lists anew
            engine.set_cell(snap["cell"])
            engine.invalidate()
        self.message = (f"blow-up guard: stopped at {self.what} {step}: {cause}. The checkpoint holds the last "
                        f"good state, {self.what} {snap['label']}. {self.advice}")
        return self.message
