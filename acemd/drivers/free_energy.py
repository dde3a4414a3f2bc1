"""The ``[free_energy]`` driver: absolute free energies (docs/free-energy.md).

``mode = "solid"``: Frenkel-Ladd with a fixed centre of mass (Freitas, Asta, de Koning,
Comput. Mater. Sci. 112, 333 (2016); the protocol of calphy, Menon et al., PRM 5,
103801 (2021)), run as stages on one Simulation: NPT for the volume, the perfect
lattice in the mean cell, NVT for the spring constants, then ``n_iterations`` of
(equilibrate at lambda = 0, switch ACE -> Einstein, equilibrate at lambda = 1, switch
back) with H(lambda) = (1 - f) U_ACE + f U_Einstein.  Per iteration

    F = F_Einstein + F_CM + work,   work = -(W_fw - W_bw) / 2N,   Q = (W_fw + W_bw) / 2N

(work: the reversible work from the Einstein crystal to ACE), G = F + P V / N.  The
report gives the mean and standard error over iterations; warnings when the
dissipation exceeds ``max_dissipation``, the crystal melted (Lindemann ratio or
diffusion during the NVT stage) or the NPT pressure did not converge.
"""
from __future__ import annotations

import json
import signal
import sys
import time as _time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from .. import __version__
from ..free_energy import EinsteinTerm, LambdaMixing
from ..free_energy.reference import com_correction, einstein_free_energy
from ..free_energy.solid import Progress, displacement_stats, equilibrate_volume, measure_spring_constants
from ..free_energy.switching import run_at_fixed_lambda, switch
from ..free_energy.sweep import (SWEEP_PARTS, check_sweep as _check_sweep, pressure_curve, print_pressure_curve,
                                 print_temperature_curve, temperature_curve)
from .stage_guards import GuardedIntegrator, GuardStop
from .sweep_stages import Sweeper, record_from_dict, record_to_dict
from ..integrators import LangevinBAOAB, StochasticCellRescaling
from ..parallel.collective import on_root
from ..simulation import InputError, Simulation, initial_velocities
from ..units import EV_PER_A3_TO_BAR, UNITS_LINE
from ..io.atomic import replaced_atomically


RESUMABLE_KEYS = ("report", "data", "checkpoint", "progress_every")


class NoStableLiquidError(InputError):
    """The liquid collapsed or ran away: the potential has no stable liquid at this T and P."""


class ExtrapolationStop(Exception):
    """The extrapolation grade exceeded [extrapolation].stop_threshold during a stage."""

    def __init__(self, stage, step, gamma):
        super().__init__(stage)
        self.stage, self.step, self.gamma = stage, step, gamma


class SignalStop(Exception):
    """SIGTERM/SIGUSR1 arrived during a stage."""

    def __init__(self, stage, signum):
        super().__init__(stage)
        self.stage, self.signum = stage, signum


SPRING_PERIOD_MIN_STEPS = 20      # an Einstein oscillator needs this many timesteps per period
MIN_SPRING_STEPS = 40             # spring stage: samples every 10 steps in its third and last quarter


def spring_periods_ps(spring_constants, state, timestep):
    """[(period (ps), element, k (eV/Å^2))] of the given springs, shortest first."""
    from ..units import FORCE_TO_ACCEL
    masses = dict(zip(state.species_names, state.masses_by_species))
    return sorted((2.0 * np.pi / np.sqrt(float(k) * FORCE_TO_ACCEL / float(masses[el])), el, float(k))
                  for el, k in spring_constants.items() if el in masses)


def sim_step(simulation):
    return simulation.state.step


class FreeEnergyRun:
    """``FreeEnergyRun(settings, text, path, comm).run()``: the [free_energy] driver."""

    def __init__(self, settings, input_text, input_path, comm=MPI.COMM_WORLD, restart=None,
                 stream=sys.stdout):
        sec = settings["free_energy"]
        self.settings, self.section, self.stream = settings, sec, stream
        self.input_path = Path(input_path)
        self.sweep = sec["mode"] in ("temperature_sweep", "pressure_sweep")
        self.liquid = sec["mode"] == "liquid" or (self.sweep and sec.get("phase") == "liquid")
        self.sweeper = None
        self.phase_check_only = False   # set by a phase protocol: the stages before switching, no F
        self.check_input(settings, input_path)
        self.simulation = Simulation(settings, input_text, input_path, comm=comm, restart=restart, skin=sec["skin"],
                                     stream=stream)
        self.stop = None
        signature = json.dumps({k: v for k, v in sorted(sec.items()) if k not in RESUMABLE_KEYS}, sort_keys=True,
                               default=str)
        self.protocol = {"signature": signature, "completed": [], "records": {}, "warnings": [],
                         "stage_max_gamma": {}}
        if restart is not None:
            saved = (self.simulation.restart_state or {}).get("free_energy")
            if saved is None:
                raise InputError(f"--restart {restart}: not a [free_energy] checkpoint (no protocol state); "
                                 "restart it with the driver that wrote it")
            if saved.get("signature") != signature:
                raise InputError(f"--restart {restart}: the [free_energy] section differs from the run that wrote "
                                 "the checkpoint; restart with the same protocol settings (only report, data, "
                                 "checkpoint and progress_every may change)")
            if saved.get("guard_stop"):
                g = saved["guard_stop"]
                raise InputError(f"--restart {restart}: this file holds the last good state before a blow-up in "
                                 f"stage '{g['stage']}' (for inspection, not a stage boundary); restart from "
                                 f"{sec['checkpoint']} (the last finished stage) after removing the cause or "
                                 "relaxing [guards]")
            self.protocol = saved
            self.protocol.setdefault("records", {})
        self.comm = comm
        self.rank = comm.Get_rank()
        self.warnings: list[str] = list(self.protocol.get("warnings", []))
        one = ("[free_energy.n_iterations] = 1: the error of F is the spread over iterations, so it is "
               "reported as nan; use n_iterations >= 2 (default 3) for an error bar")
        if sec["n_iterations"] == 1 and one not in self.warnings:
            self._warn(one)
        self.monitor = None
        self.stage_max_gamma: dict[str, float] = dict(self.protocol.get("stage_max_gamma", {}))
        if settings["extrapolation"]:
            from ..extrapolation_monitor import ExtrapolationMonitor
            from ..potential.extrapolation import ActiveSetError
            try:
                self.monitor = ExtrapolationMonitor(
                    comm, self.simulation.potential, settings["extrapolation"], self.simulation.state,
                    restart_step=self.simulation.state.step if restart is not None else None)
            except ActiveSetError as exc:
                raise InputError(f"{input_path}: [extrapolation.active_set] {exc}") from None
        st = self.simulation.state
        self.counts = comm.allreduce(np.bincount(st.species, minlength=len(st.species_names)), op=MPI.SUM)
        self.present = [el for el, c in zip(st.species_names, self.counts) if c > 0]
        given = sec.get("spring_constants")
        if given is not None:
            for el in given:
                if el not in self.present:
                    raise InputError(f"{input_path}: [free_energy.spring_constants.{el}]: {el} is not in the "
                                     f"structure (it has {', '.join(self.present)}); remove it")
            missing = [el for el in self.present if el not in given]
            if missing:
                raise InputError(f"{input_path}: [free_energy.spring_constants] has no value for "
                                 f"{', '.join(missing)}; give every element of the structure or none")

    # ------------------------------------------------------------ helpers
    @staticmethod
    def check_input(settings, input_path):
        """The section's checks that the schema cannot make (also run by ``acemd --check``)."""
        sec = settings["free_energy"]
        liquid = sec["mode"] == "liquid" or (sec["mode"] in ("temperature_sweep", "pressure_sweep")
                                             and sec.get("phase") == "liquid")
        _check_sweep(sec, input_path)
        if liquid and sec.get("spring_constants") is not None:
            raise InputError(f"{input_path}: [free_energy.spring_constants] apply to mode = \"solid\"; remove them "
                             "for the liquid route")
        if sec["switching_steps"] < 10:
            raise InputError(f"{input_path}: [free_energy.switching_steps] = {sec['switching_steps']} is too few "
                             "to integrate dH/dlambda; use thousands (calphy's default is 50000)")
        if not liquid and sec.get("spring_constants") is None and sec["spring_steps"] < MIN_SPRING_STEPS:
            raise InputError(f"{input_path}: [free_energy.spring_steps] = {sec['spring_steps']} is too few to sample "
                             f"the displacements (every 10 steps in the third and the last quarter); use at least "
                             f"{MIN_SPRING_STEPS}, thousands for converged spring constants (default 10000)")
        if liquid and uf_switching_steps(sec) < 10:
            raise InputError(f"{input_path}: [free_energy.uf_switching_steps] = {uf_switching_steps(sec)} is too few "
                             "to integrate dH/dlambda; use thousands (default 5 x switching_steps)")

    def _say(self, line):
        if self.rank == 0 and self.stream is not None:
            print(line, file=self.stream, flush=True)

    def _warn(self, text):
        self.warnings.append(text)
        self._say(f"# WARNING: {text}")

    def _thermalise(self, temperature, seed):
        st = self.simulation.state
        st.velocities = initial_velocities(self.comm, st, temperature, seed, True)

    def _nearest_neighbour_distance(self):
        sim = self.simulation

        def nn():
            from ase.neighborlist import neighbor_list
            atoms = atoms_all
            d = neighbor_list("d", atoms, 6.0)
            return float(d.min()) if len(d) else float("nan")
        atoms_all = sim.gather_atoms()
        return self.comm.bcast(on_root(self.comm, nn))

    def _observe(self, stage):
        """After every step: the extrapolation grade on its schedule, its maximum per stage, the stop test."""
        mon = self.monitor
        eng = self.simulation.engine
        if mon is None or not mon.due(eng.state.step):
            return
        stop = mon.check(eng)
        self.stage_max_gamma[stage] = max(self.stage_max_gamma.get(stage, 0.0), mon.max_gamma)
        if stop:
            raise ExtrapolationStop(stage, eng.state.step, mon.max_gamma)

    # ------------------------------------------------------------ protocol
    def run(self) -> dict:
        from .md import StopRequested
        self.stop = StopRequested()
        self.stop.install()
        try:
            return self._run()
        except SignalStop as stop:
            done = self.protocol["completed"]
            ckpt = self.section["checkpoint"]
            message = (f"stopped by {signal.Signals(stop.signum).name} in stage '{stop.stage}'; "
                       + (f"the checkpoint {ckpt} holds the protocol up to the end of {done[-1]!r}"
                          if done else         # the CLI adds the command that continues
                          "no stage was finished, so no checkpoint was written: start again without --restart"))
            self._say(f"# {message}")
            return {"stopped_by": "signal", "message": message, "stage": stop.stage}
        except GuardStop as stop:
            if self.liquid and self._ace_stage(stop.stage):
                # atoms crushed together or flung apart while ACE alone drives a liquid: the collapse the
                # liquid route reports as such (its own distance check runs only every 50 steps)
                raise NoStableLiquidError(
                    f"{self.input_path}: the liquid collapsed in stage '{stop.stage}' "
                    f"({stop.message.split('. ')[0]}); the "
                    f"potential {self.simulation.potential.path} has no stable liquid there (or the timestep is "
                    "too large); no free energy is computed") from None
            return self._guard_stop(stop)
        except ExtrapolationStop as stop:
            message = (f"stopped by extrapolation in stage '{stop.stage}' at step {stop.step}: max gamma "
                       f"{stop.gamma:.6g} exceeds [extrapolation].stop_threshold = "
                       f"{self.monitor.stop_threshold:g}; the potential extrapolates in this protocol, no free "
                       f"energy is reported; the extrapolative frames are in {self.monitor.dump_file} (select "
                       "structures from them, e.g. with pace_select, and refit)")
            self._say(f"# {message}")
            return {"stopped_by": "extrapolation", "message": message, "stage": stop.stage,
                    "max_gamma_by_stage": dict(self.stage_max_gamma)}
        finally:
            self.stop.uninstall()

    def _guarded(self, integrator, stage, kind, temperature):
        """``integrator`` under the [guards] for one stage: kind "nvt" (fixed Hamiltonian: drift
        checked), "npt" or "switch" (lambda, T or P driven: no drift check).  Stages with the UF
        or ideal-gas term let atoms overlap by design: no minimum distance there."""
        guards = dict(self.settings.get("guards") or {})
        if not self._ace_stage(stage) and not self._solid_stage(stage):
            guards["min_distance"] = 0.0
        if kind == "switch":            # the Hamiltonian itself changes: no energy reference to keep
            guards["max_energy_change"] = float("inf")
        if kind == "switch" or not self._ace_stage(stage):   # absolute limits are on ACE's energy
            guards["min_energy_per_atom"] = guards["max_energy_per_atom"] = None
        settings = {"md": {"ensemble": {"nvt": "nvt-langevin", "npt": "npt-crescale"}.get(kind, "switching")},
                    "thermostat": {"temperature": float(temperature)}, "guards": guards,
                    "velocities": self.settings.get("velocities") or {"temperature": 0.0}}
        advice = self._spring_advice() if self._solid_stage(stage) else None
        return GuardedIntegrator(integrator, settings, self.comm, stage, advice=advice)

    def _spring_advice(self):
        """What a guard stop in a stage with springs should say when a given spring constant is too
        stiff for the timestep (its period under ~20 timesteps), instead of blaming the timestep."""
        given = self.section.get("spring_constants")
        if not given:
            return None
        period, el, k = spring_periods_ps(given, self.simulation.state, self.section["timestep"])[0]
        dt = float(self.section["timestep"])
        if period >= SPRING_PERIOD_MIN_STEPS * dt:
            return None
        return (f"[free_energy.spring_constants] {el} = {k:g} eV/Å^2 makes the Einstein oscillator's period "
                f"{period * 1000:.3g} fs, {period / dt:.2g} timesteps of {dt * 1000:g} fs (at least "
                f"{SPRING_PERIOD_MIN_STEPS} are needed): lower it, or leave spring_constants out (the spring "
                "stage then measures them from the crystal's vibrations)")

    def _solid_stage(self, stage):
        return not self.liquid and not stage.startswith("sweep")

    def _guard_stop(self, stop):
        """A guard tripped: the last good state into <checkpoint>.guard.h5 (the checkpoint of the last
        finished stage stays restartable), the message, stopped_by = "guard" (exit status 4)."""
        sec = self.section
        ckpt = Path(sec["checkpoint"])
        path = ckpt.with_name(f"{ckpt.stem}.guard{ckpt.suffix or '.h5'}")
        pr = dict(self.protocol)
        pr["guard_stop"] = {"stage": stop.stage, "message": stop.message}
        self.simulation.write_checkpoint(str(path), state={"free_energy": pr})
        done = self.protocol["completed"]
        resume = (f"{sec['checkpoint']} holds the protocol up to the end of {done[-1]!r} (--restart it once the "
                  "cause is removed)" if done else "no stage was finished (start again once the cause is removed)")
        message = (f"[free_energy] stage '{stop.stage}': {stop.message}. The last good state is in {path}; "
                   f"{resume}; no free energy is reported")
        self._say(f"# {message}")
        return {"stopped_by": "guard", "message": message, "stage": stop.stage}

    def _units(self):
        """The protocol as resumable units, in order (a phase check: only the stages before switching)."""
        sec = self.section
        if self.liquid:
            units = (["melt"] if sec["melt"] else []) + ["quench", "npt"]
            parts = ("eq0", "forward", "eq1", "gas_forward", "gas_backward", "backward")
        else:
            units = ["npt"] + ([] if sec.get("spring_constants") else ["springs"])
            parts = ("eq0", "forward", "eq1", "backward")
        if self.phase_check_only:
            return units
        for it in range(1, sec["n_iterations"] + 1):
            units += [f"iteration {it} {part}" for part in parts]
        if self.sweep:
            for it in range(1, sec["n_iterations"] + 1):
                units += [f"sweep {it} {part}" for part in SWEEP_PARTS]
        return units

    def _unit_steps(self, unit):
        sec = self.section
        if unit == "npt":
            return sec["npt_steps"] if sec["npt"] else 0
        if unit == "springs":
            return sec["spring_steps"]
        if unit in ("melt", "quench"):
            return sec[f"{unit}_steps"]
        if unit.startswith("sweep"):
            return sec["equilibration_steps"] if unit.endswith(("eq_start", "eq_end")) else sec["sweep_steps"]
        if unit.endswith(("gas_forward", "gas_backward")):
            return uf_switching_steps(sec)
        return sec["equilibration_steps"] if unit.endswith(("eq0", "eq1")) else sec["switching_steps"]

    def _boundary(self, unit):
        """End of a unit: canonical atom order, rebuild, checkpoint with the protocol so far (collective).

        Sorting the owned atoms by id before the rebuild makes the neighbour lists (and so
        every floating-point sum) the same whether the run continues or restarts here.
        """
        sim, pr = self.simulation, self.protocol
        pr["completed"].append(unit)
        pr["warnings"] = list(self.warnings)
        pr["stage_max_gamma"] = dict(self.stage_max_gamma)
        st = sim.state
        order = np.argsort(st.ids, kind="stable")
        st.set_per_atom_arrays({k: v[order] for k, v in st.per_atom_arrays().items()})
        sim.engine.invalidate()
        sim.write_checkpoint(self.section["checkpoint"], state={"free_energy": pr})

    def _stop_check(self, stage):
        if self.stop is not None and sim_step(self.simulation) % 50 == 0:
            signum = self.comm.allreduce(self.stop.signum, op=MPI.MAX)
            if signum:
                raise SignalStop(stage, signum)

    def _observer(self, stage):
        self._observe(stage)
        self._stop_check(stage)
        if self.liquid and self._ace_stage(stage) and sim_step(self.simulation) % 50 == 0:
            self._collapse_check(stage)

    @staticmethod
    def _ace_stage(stage):
        """Stages in which ACE alone moves the atoms (the UF and ideal-gas stages overlap atoms freely)."""
        return stage.startswith(("melt", "quench", "NPT")) or stage.endswith("equilibrate l=0")

    def _collapse_check(self, stage):
        from ..free_energy.liquid import min_pair_distance
        sec = self.section
        dmin = min_pair_distance(self.simulation.engine)
        if dmin < sec["min_distance"]:
            raise NoStableLiquidError(
                f"{self.input_path}: the liquid collapsed in stage '{stage}' at step {sim_step(self.simulation)} "
                f"({self._stage_temperature:g} K): two atoms {dmin:.3f} A apart (< min_distance "
                f"{sec['min_distance']} A); the potential {self.simulation.potential.path} has no stable liquid "
                f"there; no free energy is computed")

    def _run(self) -> dict:
        sim, sec = self.simulation, self.section
        T, P = sec["temperature"], sec["pressure"]
        n_atoms = sim.state.n_atoms_total
        t_start = _time.perf_counter()
        for line in sim.preamble():
            self._say(f"# {line}")
        what = ("liquid (Uhlenbeck-Ford reference)" if self.liquid
                else "solid (Frenkel-Ladd, fixed centre of mass)")
        self._say(f"# free_energy: mode {what}, T = {T} K, P = {P} bar, "
                  f"{sec['n_iterations']} iterations of {sec['equilibration_steps']} + {sec['switching_steps']} "
                  f"steps x 2, switching {sec['switching']}"
                  + (f", UF <-> ideal gas {uf_switching_steps(sec)} steps x 2" if self.liquid else ""))
        self._say_sweep_plan()
        pr = self.protocol
        units = self._units()
        todo = [u for u in units if u not in pr["completed"]]
        if pr["completed"]:
            self._say(f"# restart: {len(pr['completed'])} of {len(units)} stages done (last: "
                      f"{pr['completed'][-1]}), continuing with {todo[0] if todo else 'the report'}")
        progress = Progress(self._say, sum(self._unit_steps(u) for u in todo), sec["progress_every"],
                            observer=self._observer)
        names = sim.state.species_names
        mix = lang = sites = None
        if self.liquid:
            return self._run_liquid(todo, progress, t_start)
        for unit in todo:
            if unit == "npt":
                self._stage_npt(progress)
            elif unit == "springs":
                sites = self._sites()
                self._say(f"# stage 2: NVT (Langevin) for the spring constants, {sec['spring_steps']} steps")
                lang = LangevinBAOAB(sec["timestep"], T, sec["damping"], seed=sec["seed"] + 2)
                k_spring, msd, growth = measure_spring_constants(
                    sim, self._guarded(lang, "NVT spring constants", "nvt", T), sites, T, sec["spring_steps"], progress)
                pr["k_spring"] = k_spring
                # per present element only: an absent element's NaN would make the checkpoint unreadable
                pr["msd"] = {names[i]: float(msd[i]) for i in range(len(names)) if self.counts[i] > 0}
                present = self.counts > 0
                lindemann = float(np.sqrt(np.sum(msd[present] * self.counts[present]) / n_atoms)) / pr["d_nn"]
                if lindemann > sec["lindemann_threshold"] or growth > 1.5:
                    self._warn(f"the solid melted during the NVT stage (RMS displacement {lindemann:.3f} of the "
                               f"nearest-neighbour distance, mean-square displacement grew x{growth:.2f} between "
                               "the third and last quarter); the free energy is not that of the crystal")
            elif unit.startswith("sweep"):
                self._stage_sweep(unit, progress)
            else:
                if mix is None:
                    sites = sites or self._sites()
                    k_spring = np.asarray(pr["k_spring"], float)
                    self._say("# spring constants (eV/A^2): " + ", ".join(
                        f"{el} {k:.5f}" for el, k, c in zip(names, k_spring, self.counts) if c > 0))
                    einstein = EinsteinTerm(k_spring, sites.site_fractional @ sim.state.cell, sim.state.cell)
                    mix = LambdaMixing(sim.term, einstein, switching=sec["switching"], name="mix")
                    sim.set_terms([mix])
                    lang = LangevinBAOAB(sec["timestep"], T, sec["damping"], seed=sec["seed"] + 3)
                self._stage_switching(unit, mix, lang, sites, progress)
            self._boundary(unit)
        if self.phase_check_only:
            return {"phase_check": True, "warnings": list(self.warnings), "volume": sim.state.volume}
        if mix is not None or self.sweeper is not None:
            sim.set_terms([sim.term])
        k_spring = np.asarray(pr["k_spring"], float)
        volume = float(pr["volume"])
        f_einstein = einstein_free_energy(T, k_spring, sim.state.masses_by_species, self.counts)
        f_cm = com_correction(T, k_spring, sim.state.masses_by_species, self.counts, volume)
        pv = P / EV_PER_A3_TO_BAR * volume / n_atoms
        iterations, records = [], []
        for it in range(1, sec["n_iterations"] + 1):
            fw, bw = (self._record(f"iteration {it} {d}") for d in ("forward", "backward"))
            w_fw, w_bw = fw.work / n_atoms, bw.work / n_atoms
            work = -0.5 * (w_fw - w_bw)
            q = 0.5 * (w_fw + w_bw)
            f = f_einstein + f_cm + work
            iterations.append({"iteration": it, "W_forward": w_fw, "W_backward": w_bw, "work": work,
                               "dissipation": q, "F": f, "G": f + pv})
            records.append((fw, bw))
            if abs(q) > sec["max_dissipation"]:
                self._warn(f"iteration {it}: dissipation {q * 1000:.2f} meV/atom exceeds max_dissipation "
                           f"{sec['max_dissipation'] * 1000:.2f} meV/atom; switch more slowly (switching_steps)")
        report = self._report(T, P, n_atoms, volume, k_spring, pr.get("msd"), f_einstein, f_cm, pv,
                              iterations, pr["npt"], _time.perf_counter() - t_start)
        sweeps = self._sweep_results(report, iterations, n_atoms, volume)
        self._write(report, records, sweeps)
        self._print(report)
        return report

    # ------------------------------------------------------------ liquid route
    def _run_liquid(self, todo, progress, t_start):
        from ..free_energy import UhlenbeckFordTerm
        from ..free_energy.liquid import ZeroTerm
        from ..free_energy.reference import ideal_gas_free_energy
        sim, sec, pr = self.simulation, self.section, self.protocol
        T, P = sec["temperature"], sec["pressure"]
        n_atoms = sim.state.n_atoms_total
        self._stage_temperature = T
        if "start_volume" not in pr:
            pr["start_volume"] = sim.state.volume
            if not sec["melt"]:
                q6 = self._q6()
                if q6 > self._crystal_q6():
                    raise InputError(f"{self.input_path}: [free_energy] mode = \"liquid\" with melt = false starts "
                                     f"from a crystal (mean averaged q6 = {q6:.3f}); set melt = true or give a "
                                     "liquid structure")
        uf = UhlenbeckFordTerm(T, p=sec["uf_p"], sigma=sec["uf_sigma"])
        mix = LambdaMixing(sim.term, uf, switching=sec["switching"], name="mix")
        gas = LambdaMixing(uf, ZeroTerm(), switching=sec["switching"], name="mix")
        lang = LangevinBAOAB(sec["timestep"], T, sec["damping"], seed=sec["seed"] + 3)
        current = None
        for unit in todo:
            if unit in ("melt", "quench"):
                t_stage = sec.get("melt_temperature", 2.0 * T) if unit == "melt" else T
                self._stage_temperature = t_stage
                self._say(f"# stage {unit}: NVT (Langevin) at {t_stage} K, {sec[unit + '_steps']} steps")
                if unit == "melt" or not sec["melt"]:
                    self._thermalise(t_stage, sec["seed"])
                integ = self._guarded(LangevinBAOAB(sec["timestep"], t_stage, sec["damping"],
                                                    seed=sec["seed"] + (4 if unit == "melt" else 5)),
                                      unit, "nvt", t_stage)
                sim.engine.compute_forces(force_rebuild=True)
                integ.setup(sim.engine)
                on_step = progress.stage(unit, sec[unit + "_steps"])
                for k in range(1, sec[unit + "_steps"] + 1):
                    integ.step(sim.engine)
                    on_step(k)
                if unit == "melt":
                    q6 = self._q6()
                    self.protocol.setdefault("q6", {})["melt"] = q6
                    if q6 > self._crystal_q6():
                        self._warn(f"the structure did not melt at {t_stage:g} K in {sec['melt_steps']} steps (mean "
                                   f"averaged q6 = {q6:.3f} > {self._crystal_q6()}): a crystal at fixed volume "
                                   "superheats; raise melt_temperature or melt_steps, start from a lower density "
                                   "(a larger lattice constant) or from a liquid structure (melt = false)")
                if unit == "quench":
                    self._crystallised_check("the quench")
            elif unit == "npt":
                self._stage_temperature = T
                self._stage_npt_liquid(progress)
            elif unit.startswith("sweep"):
                current = None
                self._stage_sweep(unit, progress)
            else:
                label, part = unit.rsplit(" ", 1)
                want = gas if part.startswith("gas") else mix
                if current is not want:
                    sim.set_terms([want])
                    current = want
                self._stage_liquid_switch(unit, label, part, want, lang, progress)
            self._boundary(unit)
        if self.phase_check_only:
            return {"phase_check": True, "warnings": list(self.warnings), "volume": sim.state.volume}
        sim.set_terms([sim.term])
        volume = float(pr["volume"])
        counts = self.counts
        f_ig = ideal_gas_free_energy(T, n_atoms / volume, sim.state.masses_by_species, counts)
        pv = P / EV_PER_A3_TO_BAR * volume / n_atoms
        iterations, records = [], []
        for it in range(1, sec["n_iterations"] + 1):
            fw, bw, gfw, gbw = (self._record(f"iteration {it} {d}")
                                for d in ("forward", "backward", "gas_forward", "gas_backward"))
            w_fw, w_bw = fw.work / n_atoms, bw.work / n_atoms
            work = -0.5 * (w_fw - w_bw)
            f_ex = -0.5 * (gfw.work - gbw.work) / n_atoms
            q = 0.5 * (w_fw + w_bw)
            q_gas = 0.5 * (gfw.work + gbw.work) / n_atoms
            f = f_ig + f_ex + work
            iterations.append({"iteration": it, "W_forward": w_fw, "W_backward": w_bw, "work": work,
                               "dissipation": q, "uf_excess": f_ex, "uf_dissipation": q_gas, "F": f, "G": f + pv})
            records.append({"forward": fw, "backward": bw, "gas_forward": gfw, "gas_backward": gbw})
            for what, value, key in (("ACE<->UF", q, "switching_steps"), ("UF<->ideal gas", q_gas, "uf_switching_steps")):
                if abs(value) > sec["max_dissipation"]:
                    self._warn(f"iteration {it}: {what} dissipation {value * 1000:.2f} meV/atom exceeds "
                               f"max_dissipation {sec['max_dissipation'] * 1000:.2f} meV/atom; switch more slowly "
                               f"({key})")
        f_ex_mean = float(np.mean([r["uf_excess"] for r in iterations]))
        report = self._report(T, P, n_atoms, volume, None, None, f_ig, f_ex_mean, pv, iterations, pr["npt"],
                              _time.perf_counter() - t_start)
        sweeps = self._sweep_results(report, iterations, n_atoms, volume)
        self._write(report, records, sweeps)
        self._print(report)
        return report

    def _crystal_q6(self):
        from ..free_energy.liquid import CRYSTAL_Q6BAR
        return CRYSTAL_Q6BAR

    def _q6(self):
        from ..free_energy.liquid import mean_averaged_q6
        atoms = self.simulation.gather_atoms()
        return self.comm.bcast(on_root(self.comm, lambda: mean_averaged_q6(atoms)))

    def _crystallised_check(self, stage):
        q6 = self._q6()
        self.protocol.setdefault("q6", {})[stage] = q6
        if q6 > self._crystal_q6():
            self._warn(f"the liquid crystallised during {stage} (mean averaged q6 = {q6:.3f} > "
                       f"{self._crystal_q6()}); the free energy is not that of the liquid")

    def _stage_npt_liquid(self, progress):
        sim, sec, pr = self.simulation, self.section, self.protocol
        T, P = sec["temperature"], sec["pressure"]
        n_atoms = sim.state.n_atoms_total
        if not sec["npt"]:
            pr["npt"] = {"converged": True, "blocks": []}
            pr["volume"] = sim.state.volume
            return
        self._say(f"# stage npt: NPT (stochastic cell rescaling, iso) at {T} K, {P} bar")

        def factory():
            return StochasticCellRescaling(sec["timestep"], T, P, damping=sec["damping"],
                                           barostat_damping=sec["barostat_damping"], coupling="iso",
                                           compressibility_per_bar=sec["compressibility"], seed=sec["seed"])
        cell, mean_p, converged, blocks = equilibrate_volume(
            sim, lambda: self._guarded(factory(), "NPT", "npt", T), P, sec["npt_steps"], sec["npt_max_blocks"], sec["pressure_tolerance"], progress,
            min_error_block_steps=_error_block_steps(sec))
        ratio = abs(np.linalg.det(cell)) / pr["start_volume"]
        if ratio > sec["max_volume_ratio"]:
            raise NoStableLiquidError(
                f"{self.input_path}: the liquid ran away during NPT: mean volume {abs(np.linalg.det(cell)) / n_atoms:.2f} "
                f"A^3/atom, {ratio:.2f} x the starting volume (> max_volume_ratio {sec['max_volume_ratio']}); the "
                f"potential {sim.potential.path} has no stable liquid at {T} K and {P} bar; no free energy is computed")
        pr["npt"] = _npt_record(converged, blocks, mean_p)
        if not converged:
            self._warn(_npt_warning(mean_p, blocks, sec))
        sim.deform((np.linalg.inv(sim.state.cell) @ cell).T)
        pr["volume"] = sim.state.volume
        self._say(f"# {_npt_line(mean_p, blocks, sec)}, volume {pr['volume'] / n_atoms:.5f} A^3/atom")
        self._collapse_check("npt (mean cell)")
        self._crystallised_check("NPT")

    def _stage_liquid_switch(self, unit, label, part, mix, lang, progress):
        sim, sec = self.simulation, self.section
        eng = sim.engine
        eng.compute_forces(force_rebuild=True)
        lang.setup(eng)
        T = sec["temperature"]
        if part in ("eq0", "eq1"):
            lam = 0.0 if part == "eq0" else 1.0
            stage = f"{label} equilibrate l={lam:g}"
            run_at_fixed_lambda(eng, self._guarded(lang, stage, "nvt", T), mix, lam, sec["equilibration_steps"],
                                on_step=progress.stage(stage, sec["equilibration_steps"]))
            if part == "eq0":
                self._crystallised_check(f"{label} equilibration at lambda = 0")
            return
        forward = part in ("forward", "gas_forward")
        name = {"forward": "switch ACE->UF", "backward": "switch UF->ACE", "gas_forward": "switch UF->ideal gas",
                "gas_backward": "switch ideal gas->UF"}[part]
        steps = uf_switching_steps(sec) if part.startswith("gas") else sec["switching_steps"]
        rec = switch(eng, self._guarded(lang, f"{label} {name}", "switch", T), mix, steps, forward=forward,
                     on_step=progress.stage(f"{label} {name}", steps))
        self.protocol["records"][unit] = {"lam": rec.lam, "weight": rec.weight, "energy_a": rec.energy_a,
                                          "energy_b": rec.energy_b}
        self._say(f"# {label} {name}: work {rec.work / sim.state.n_atoms_total:+.6f} eV/atom")

    def _say_sweep_plan(self):
        sec = self.section
        if not self.sweep:
            return
        if sec["mode"] == "pressure_sweep":
            what = f"G(P) from {sec['pressure']:g} to {sec['pressure_final']:g} bar at {sec['temperature']:g} K (NPT)"
        else:
            what = (f"{'G' if sec['sweep_ensemble'] == 'npt' else 'F'}(T) from {sec['temperature']:g} to "
                    f"{sec['temperature_final']:g} K ({sec['sweep_method']}, {sec['sweep_ensemble']})")
        self._say(f"# then {sec['mode']}: {what}, {sec['n_iterations']} iterations of {sec['equilibration_steps']} + "
                  f"{sec['sweep_steps']} steps x 2")

    def _stage_sweep(self, unit, progress):
        """One unit of a sweep (:mod:`acemd.drivers.sweep_stages`), after the route's units."""
        sec = self.section
        if self.sweeper is None:
            self.sweeper = Sweeper(self.simulation, sec, self.protocol["volume"])
            self._sweep_integrator = self.sweeper.integrator
        top = max(sec["temperature"], sec.get("temperature_final") or 0.0)
        self.sweeper.integrator = self._guarded(self._sweep_integrator, unit, "switch", top)
        done = self.sweeper.run_unit(unit, progress)
        if done is not None:
            name, rec = done
            self.protocol["records"][unit] = record_to_dict(rec)
            self._say(f"# {name}: volume {rec.volume[0] / self.simulation.state.n_atoms_total:.4f} -> "
                      f"{rec.volume[-1] / self.simulation.state.n_atoms_total:.4f} A^3/atom")
            # the phase must survive the sweep (the curve is that phase's only while it does)
            if self.liquid:
                self._crystallised_check(name)
            else:
                self._check_solid(self._sites(), name)

    def _sweep_results(self, report, iterations, n_atoms, volume):
        """The swept curve into the report (and the hysteresis warning); the records for the data file."""
        sec = self.section
        if not self.sweep:
            return None
        sweeps = [tuple(record_from_dict(self.protocol["records"][f"sweep {it} {d}"]) for d in ("forward", "backward"))
                  for it in range(1, sec["n_iterations"] + 1)]
        if sec["mode"] == "pressure_sweep":
            curve = report["pressure_sweep"] = pressure_curve(sec, n_atoms, [r["G"] for r in iterations], sweeps)
        else:
            g0 = [r["G"] if sec["sweep_ensemble"] == "npt" else r["F"] for r in iterations]
            curve = report["temperature_sweep"] = temperature_curve(sec, n_atoms, g0, sweeps, volume)
        worst = float(np.max(np.abs(curve["hysteresis"])))
        if worst > sec["max_dissipation"]:
            self._warn(f"{sec['mode'].replace('_', ' ')}: hysteresis up to {worst * 1000:.2f} meV/atom exceeds "
                       f"max_dissipation {sec['max_dissipation'] * 1000:.2f} meV/atom; sweep more slowly "
                       "(sweep_steps)")
            report["acemd"]["warnings"] = list(self.warnings)
        return sweeps

    def _sites(self):
        """The Einstein sites (the perfect lattice in the adopted cell), bound for displacements."""
        pr, st = self.protocol, self.simulation.state
        names = st.species_names
        sites = EinsteinTerm(np.ones(len(names)), np.asarray(pr["site_fractional"]) @ st.cell, st.cell)
        sites.bind(st, self.comm)              # only its displacements are used, never its forces
        return sites

    def _record(self, unit):
        from ..free_energy.switching import SwitchRecord
        r = self.protocol["records"][unit]
        return SwitchRecord(np.asarray(r["lam"]), np.asarray(r["weight"]), np.asarray(r["energy_a"]),
                            np.asarray(r["energy_b"]), self.section["switching"])

    def _stage_npt(self, progress):
        """Volume (NPT) and the perfect lattice in the mean cell with fresh velocities."""
        sim, sec, pr = self.simulation, self.section, self.protocol
        T, P = sec["temperature"], sec["pressure"]
        n_atoms = sim.state.n_atoms_total
        lattice = sim.snapshot()
        cell0 = sim.state.cell.copy()
        pr["d_nn"] = self._nearest_neighbour_distance()
        npt = {"converged": True, "blocks": []}
        cell = cell0
        if sec["npt"]:
            self._say(f"# stage 1: NPT (stochastic cell rescaling, iso) at {T} K, {P} bar")
            self._thermalise(T, sec["seed"])

            def factory():
                return StochasticCellRescaling(sec["timestep"], T, P, damping=sec["damping"],
                                               barostat_damping=sec["barostat_damping"], coupling="iso",
                                               compressibility_per_bar=sec["compressibility"], seed=sec["seed"])
            cell, mean_p, converged, blocks = equilibrate_volume(
                sim, lambda: self._guarded(factory(), "NPT", "npt", T), P, sec["npt_steps"], sec["npt_max_blocks"], sec["pressure_tolerance"], progress,
                min_error_block_steps=_error_block_steps(sec))
            npt = _npt_record(converged, blocks, mean_p)
            if not converged:
                self._warn(_npt_warning(mean_p, blocks, sec))
            self._say(f"# {_npt_line(mean_p, blocks, sec)}, volume {abs(np.linalg.det(cell)) / n_atoms:.5f} "
                      "A^3/atom")
        sim.restore(lattice)
        sim.deform((np.linalg.inv(cell0) @ cell).T)
        pr["volume"] = sim.state.volume
        pr["d_nn"] *= (pr["volume"] / abs(np.linalg.det(cell0))) ** (1.0 / 3.0)
        pr["npt"] = npt
        self._thermalise(T, sec["seed"] + 1)
        st = sim.state
        ids = np.concatenate(self.comm.allgather(st.ids))
        pos = np.concatenate(self.comm.allgather(st.positions + st.images @ st.cell))
        frac = np.empty((st.n_atoms_total, 3))
        frac[ids] = pos @ np.linalg.inv(st.cell)
        pr["site_fractional"] = frac
        given = sec.get("spring_constants")
        if given is not None:
            pr["k_spring"] = np.array([float(given.get(el, 1.0)) for el in st.species_names])
            pr.pop("msd", None)       # not measured (and no NaN in the checkpoint: it would read as damaged)

    def _stage_switching(self, unit, mix, lang, sites, progress):
        sim, sec = self.simulation, self.section
        eng = sim.engine
        label, part = unit.rsplit(" ", 1)
        eng.compute_forces(force_rebuild=True)
        lang.setup(eng)
        T = sec["temperature"]
        if part in ("eq0", "eq1"):
            lam = 0.0 if part == "eq0" else 1.0
            stage = f"{label} equilibrate l={lam:g}"
            run_at_fixed_lambda(eng, self._guarded(lang, stage, "nvt", T), mix, lam, sec["equilibration_steps"],
                                on_step=progress.stage(stage, sec["equilibration_steps"]))
            if part == "eq0":
                self._check_solid(sites, f"{label} equilibration at lambda = 0")
            return
        forward = part == "forward"
        name = f"{label} switch " + ("ACE->Einstein" if forward else "Einstein->ACE")
        rec = switch(eng, self._guarded(lang, name, "switch", T), mix, sec["switching_steps"], forward=forward,
                     on_step=progress.stage(name, sec["switching_steps"]))
        self.protocol["records"][unit] = {"lam": rec.lam, "weight": rec.weight, "energy_a": rec.energy_a,
                                          "energy_b": rec.energy_b}
        n = sim.state.n_atoms_total
        self._say(f"# {name}: work {rec.work / n:+.6f} eV/atom")
        if not forward:
            self._check_solid(sites, f"{label} switch back to ACE")

    def _check_solid(self, sites, stage):
        sums, counts = displacement_stats(self.comm, self.simulation.state, sites)
        rms = float(np.sqrt(sums.sum() / counts.sum()))
        d_nn = self.protocol["d_nn"]
        if rms / d_nn > self.section["lindemann_threshold"]:
            self._warn(f"the solid melted during {stage}: RMS displacement from the lattice sites "
                       f"{rms:.3f} A = {rms / d_nn:.2f} of the nearest-neighbour distance")

    # ------------------------------------------------------------ output
    def _report(self, T, P, n_atoms, volume, k_spring, msd, f_einstein, f_cm, pv, iterations, npt, wall):
        sim, sec = self.simulation, self.section
        names = sim.state.species_names
        present = [i for i, c in enumerate(self.counts) if c > 0]
        conc = self.counts[present] / n_atoms
        F = np.array([r["F"] for r in iterations])
        n = len(F)

        def mean_err(x):
            x = np.asarray(x, float)
            return float(x.mean()), float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")

        f_mean, f_err = mean_err(F)
        w_mean, w_err = mean_err([r["work"] for r in iterations])
        q_mean, q_err = mean_err([r["dissipation"] for r in iterations])
        struct = self.settings["structure"]
        lattice = struct.get("lattice", struct.get("file", ""))
        report = {
            # calphy's report keys
            "input": {"temperature": float(T), "pressure": float(P), "lattice": str(lattice),
                      "element": " ".join(names[i] for i in present),
                      "concentration": " ".join(f"{c:g}" for c in conc)},
            "average": {"vol_atom": volume / n_atoms, "density": n_atoms / volume},
            "results": {"free_energy": f_mean + pv, "error": f_err, "reference_system": f_einstein + f_cm,
                        "work": w_mean, "pv": pv, "unit": "eV/atom"},
            # acemd's additions
            "acemd": {
                "version": __version__, "units": UNITS_LINE, "input_file": str(sim.input_path),
                "potential_file": str(sim.potential.path), "potential_sha256": sim.potential.file_sha256,
                "mode": sec["mode"], "n_atoms": int(n_atoms), "ranks": self.comm.Get_size(),
                "helmholtz_free_energy": f_mean, "helmholtz_free_energy_error": f_err,
                "gibbs_free_energy": f_mean + pv, "gibbs_free_energy_error": f_err,
                "work_error": w_err, "dissipation": q_mean, "dissipation_error": q_err,
                "npt": npt, "iterations": iterations, "warnings": list(self.warnings),
                "max_extrapolation_grade_by_stage": dict(self.stage_max_gamma) if self.monitor else None,
                "protocol": {k: sec[k] for k in ("timestep", "damping", "equilibration_steps", "switching_steps",
                                                 "switching", "n_iterations", "npt_steps", "spring_steps")},
                "wall_s": wall,
            },
        }
        if self.liquid:
            # f_einstein, f_cm carry the ideal gas and the mean UF excess free energy here
            b3 = 0.5 * (np.pi * sec["uf_sigma"] ** 2) ** 1.5
            report["results"].update({"ideal_gas": f_einstein, "uf_excess": f_cm})
            report["acemd"]["protocol"]["uf_switching_steps"] = uf_switching_steps(sec)
            report["acemd"].update({
                "uf": {"p": sec["uf_p"], "sigma_A": sec["uf_sigma"], "x": n_atoms / volume * b3},
                "uf_excess_error": mean_err([r["uf_excess"] for r in iterations])[1],
                "structure_q6": dict(self.protocol.get("q6", {})), "structure_q6_crystal_above": self._crystal_q6()})
        else:
            report["average"]["spring_constant"] = " ".join(f"{k_spring[i]:.6f}" for i in present)
            report["results"].update({"einstein_crystal": f_einstein, "com_correction": f_cm})
            report["acemd"].update({
                "mean_square_displacement_A2": None if msd is None else dict(msd),
                "spring_constants_eV_A2": {names[i]: float(k_spring[i]) for i in present}})
        return report

    def _write(self, report, records, sweeps=None):
        sec = self.section

        def write():
            import h5py
            import yaml
            with replaced_atomically(sec["report"]) as tmp:
                tmp.write_text(yaml.safe_dump(_plain(report), sort_keys=False, allow_unicode=True),
                               encoding="utf-8")
            with replaced_atomically(sec["data"]) as tmp, h5py.File(tmp, "w") as f:
                f.attrs["acemd_version"] = __version__
                f.attrs["units"] = "energies eV (whole system); lambda, f dimensionless"
                f.attrs["description"] = ("H(lambda) = (1 - f(lambda)) U_A + f(lambda) U_B, A = ACE, B = "
                                          + ("Uhlenbeck-Ford" if self.liquid else "Einstein crystal")
                                          + "; dH_dlambda = f'(lambda) (U_B - U_A)")
                f.attrs["n_atoms"] = report["acemd"]["n_atoms"]
                f.attrs["temperature_K"] = report["input"]["temperature"]
                f.attrs["input_text"] = self.simulation.input_text
                for it, recs in enumerate(records, start=1):
                    pairs = recs.items() if isinstance(recs, dict) else zip(("forward", "backward"), recs)
                    for name, rec in pairs:
                        g = f.create_group(f"iteration_{it:03d}/{name}")
                        g["lambda"] = rec.lam
                        g["f"] = rec.weight
                        g["U_A"] = rec.energy_a
                        g["U_B"] = rec.energy_b
                        g["dH_dlambda"] = rec.dh_dlambda
                        for key in ("U_A", "U_B", "dH_dlambda"):
                            g[key].attrs["unit"] = "eV"
                        g.attrs["work_eV"] = rec.work
                if sweeps:
                    self._write_sweeps(f, report, sweeps)

        on_root(self.comm, write)

    def _write_sweeps(self, f, report, sweeps):
        """Per-step records of every sweep and the curve (HDF5 group named after the mode)."""
        from ..free_energy.sweep import integrand
        sec, mode = self.section, self.section["mode"]
        curve = report[mode]
        kind = "pressure" if mode == "pressure_sweep" else sec["sweep_method"]
        n_atoms = report["acemd"]["n_atoms"]
        npt = mode == "pressure_sweep" or sec["sweep_ensemble"] == "npt"
        top = f.create_group(mode)
        top.attrs["kind"] = kind
        top.attrs["description"] = {
            "scaling": "reversible scaling: H = K + lambda U at temperature T0 (NPT: barostat target lambda P); "
                       "integrand dG_lambda/dlambda = U + P V (NVT: U)",
            "temperature_ramp": "fixed potential, thermostat temperature ramped; integrand ((3/2) N kB T + U + P V)"
                                " / T^2 (NVT: without P V) = -d(G/T)/dT",
            "pressure": "NPT at temperature, barostat target ramped; integrand dG/dP = V"}[kind]
        for it, pair in enumerate(sweeps, start=1):
            for name, rec in zip(("forward", "backward"), pair):
                g = top.create_group(f"iteration_{it:03d}/{name}")
                if kind == "scaling":
                    g["lambda"] = rec.x
                    g["temperature_K"] = sec["temperature"] / rec.x
                    g["pressure_bar"] = rec.x * sec["pressure"] if npt else np.full(len(rec.x), sec["pressure"])
                elif kind == "temperature_ramp":
                    g["temperature_K"] = rec.x
                    g["pressure_bar"] = np.full(len(rec.x), sec["pressure"])
                else:
                    g["temperature_K"] = np.full(len(rec.x), sec["temperature"])
                    g["pressure_bar"] = rec.x
                g["pressure_bar"].attrs["unit"] = "bar (barostat target; NVT: the route's pressure)"
                g["U"] = rec.energy
                g["U"].attrs["unit"] = "eV (unscaled potential energy, whole system)"
                g["V"] = rec.volume
                g["V"].attrs["unit"] = "A^3 (whole system)"
                g["integrand"] = integrand(kind, rec, n_atoms, sec["pressure"] if npt and kind != "pressure" else 0.0)
                g["integrand"].attrs["unit"] = {"scaling": "eV", "temperature_ramp": "eV/K^2",
                                                "pressure": "eV/bar"}[kind] + " (whole system)"
        g = top.create_group("curve")
        for key, value in curve.items():
            if isinstance(value, list):
                g[key] = np.asarray(value, float)
            else:
                g.attrs[key] = value
        g.attrs["units"] = curve["units"]

    def _print(self, report):
        it = report["acemd"]["iterations"]
        self._say("#")
        self._say("# iter   W_fw(eV/at)  W_bw(eV/at)  work(eV/at)  dissip(eV/at)  F(eV/at)      G(eV/at)")
        for r in it:
            self._say(f"  {r['iteration']:4d}  {r['W_forward']:+.6f}    {r['W_backward']:+.6f}    "
                      f"{r['work']:+.6f}    {r['dissipation']:.6f}       {r['F']:.6f}    {r['G']:.6f}")
        res, a = report["results"], report["acemd"]
        if self.liquid:
            self._say(f"# ideal gas {res['ideal_gas']:.6f}, UF excess {res['uf_excess']:.6f} +- "
                      f"{a['uf_excess_error']:.6f} (x = {a['uf']['x']:.4f}, p = {a['uf']['p']:g}), work "
                      f"{res['work']:+.6f} +- {a['work_error']:.6f}, PV {res['pv']:.6f} eV/atom")
        else:
            self._say(f"# Einstein crystal {res['einstein_crystal']:.6f}, centre-of-mass correction "
                      f"{res['com_correction']:.6f}, work {res['work']:+.6f} +- {a['work_error']:.6f}, "
                      f"PV {res['pv']:.6f} eV/atom")
        self._say(f"# F = {a['helmholtz_free_energy']:.6f} +- {a['helmholtz_free_energy_error']:.6f} eV/atom, "
                  f"G = {a['gibbs_free_energy']:.6f} +- {a['gibbs_free_energy_error']:.6f} eV/atom, dissipation "
                  f"{a['dissipation'] * 1000:.3f} +- {a['dissipation_error'] * 1000:.3f} meV/atom, volume "
                  f"{report['average']['vol_atom']:.5f} A^3/atom")
        for stage, gamma in (a["max_extrapolation_grade_by_stage"] or {}).items():
            self._say(f"# max extrapolation grade in {stage}: {gamma:.4g}")
        for w in a["warnings"]:
            self._say(f"# WARNING: {w}")
        if "temperature_sweep" in report:
            print_temperature_curve(self._say, report["temperature_sweep"])
        if "pressure_sweep" in report:
            print_pressure_curve(self._say, report["pressure_sweep"])
        self._say(f"# report: {self.section['report']}, data: {self.section['data']}")


def uf_switching_steps(sec):
    """Steps of each UF <-> ideal-gas switch: the key, or 5 x switching_steps.

    These switches evaluate only the UF pair term (~1 ms/step at 108 atoms) but carry the
    whole UF excess (~18 kT per atom at liquid density); their dissipation falls as
    1/steps (Cu, x = 0.67, 1500 K: 173, 61, 30, 17 meV/atom at 1000, 2500, 5000, 10000
    steps), so they get five times the ACE <-> UF switches' length by default.
    """
    given = sec.get("uf_switching_steps")
    return int(given) if given is not None else 5 * int(sec["switching_steps"])


def _error_block_steps(sec):
    """Shortest block (steps) for the standard error of the NPT mean pressure: 2 barostat times."""
    return int(np.ceil(2.0 * sec["barostat_damping"] / sec["timestep"]))


def _npt_record(converged, blocks, mean_p):
    """The NPT stage for the report; no ``pressure_error_bar`` when the blocks were too short for one."""
    last = blocks[-1]
    record = {"converged": converged, "blocks": blocks, "mean_pressure_bar": mean_p,
              "accepted_deviation_bar": last["accepted_deviation_bar"]}
    if "standard_error_bar" in last:
        record["pressure_error_bar"] = last["standard_error_bar"]
    return record


def _npt_line(mean_p, blocks, sec):
    """'mean pressure <P> +- SE bar (target P, accepted |<P> - P| < max(tolerance, 3 SE) = x bar)'."""
    last = blocks[-1]
    err = (f"+- {last['standard_error_bar']:.1f}" if "standard_error_bar" in last
           else "(no standard error: the NPT block holds fewer than 2 sub-blocks of 2 barostat times)")
    return (f"mean pressure {mean_p:.1f} {err} bar (target {sec['pressure']:g}, accepted "
            f"|<P> - P| < max(pressure_tolerance {sec['pressure_tolerance']:g}, 3 SE) = "
            f"{last['accepted_deviation_bar']:.1f} bar)")


def _npt_warning(mean_p, blocks, sec):
    return (f"the NPT pressure did not converge after {len(blocks)} blocks of {sec['npt_steps']} steps: "
            f"{_npt_line(mean_p, blocks, sec)}; raise npt_steps or npt_max_blocks")


def _plain(obj):
    """Numpy scalars and arrays to plain Python for YAML."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
