"""Phase boundaries: ``[free_energy] mode = "melting_temperature" | "transition_temperature" |
"coexistence_line" | "phase_map"`` (docs/phase-diagram.md).

The driver composes sub-runs of the [free_energy] driver (:class:`FreeEnergyRun`), one per
phase and temperature window, with programmatically built settings (``mode =
"temperature_sweep"`` over the window at constant pressure, ``sweep_ensemble = "npt"``,
``phase = "solid" | "liquid"`` from the phase's route), on the same communicator, each with
its own report, data file and checkpoint in a sub-folder
``<report stem>_runs/<phase>_<from>-<to>K_<P>bar/``.  It reads their G(T) curves (the
layout of docs/free-energy.md, "Output: the curve's layout") and applies
:mod:`acemd.free_energy.phase_boundary`:

* melting_temperature / transition_temperature: the crossing T* of two phases' G(T) in the
  window [temperature - window, temperature + window]; no crossing moves the window by its
  width towards the side where the crossing lies, up to ``attempts``; a phase that changed
  during its sub-run (the driver's melting / crystallisation warnings) rejects the attempt
  and moves the window by half its width away from it; a window already tried is not run
  again (the outcomes contradict each other).  No crossing in the end: the curves are
  written, no temperature, exit status 1.
* coexistence_line: T*(pressure), then dT/dP = T dV/dH by RK4 to pressure_final, dV and dH
  (= dU + P dV; kinetic energies cancel) from NPT runs of both phases at each (T, P) stage.
  With start_temperature (a T* computed before) the line starts there without a window; the
  phase of higher enthalpy at T* is the one stable above (dH = T* dS > 0 there).
* phase_map: every phase's G over [temperature, temperature_final]; the stable phase vs T.

Restart (``--restart <checkpoint>``): finished sub-runs (report present, settings.json equal)
are read back, the interrupted one continues from its own checkpoint.
"""
from __future__ import annotations

import copy
import json
import sys
import time as _time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from mpi4py import MPI

from .. import __version__
from ..blockstats import block_average
from ..config import PHASE_MODES, SCHEMA, ConfigError, format_settings
from ..free_energy.phase_boundary import Curve, coexistence_line, crossing, move_window, phase_map
from ..io.atomic import replaced_atomically
from ..io.thermo import format_hms
from ..parallel.collective import on_root
from ..simulation import InputError
from ..units import BOLTZMANN, EV_PER_A3_TO_BAR, UNITS_LINE
from .free_energy import MIN_SPRING_STEPS, FreeEnergyRun, NoStableLiquidError, _plain
from ..signals import StopRequested
from .stage_guards import GuardStop

PHASE_ONLY_KEYS = ("window", "attempts", "phases", "pressure_final", "pressure_steps", "start_temperature",
                   "start_temperature_error", "phase_check", "phase_check_steps")
PHASES_EXIST = "phases exist"      # the saved outcome of passed phase checks (a restart skips them)


class PhaseMissing(InputError):
    """A phase check failed: a phase does not exist at its end of the window (melted, crystallised,
    collapsed): the protocol stops before its sweeps."""
RESUMABLE_KEYS = ("report", "data", "checkpoint", "progress_every")
STOP_CHECK_STEPS = 100           # a coexistence state point's NPT looks for a stop signal this often


class NoCrossingError(InputError):
    """No crossing of the G(T) curves within the attempts: no temperature is reported."""


class PhaseChanged(Exception):
    def __init__(self, phase, message):
        super().__init__(message)
        self.phase, self.message = phase, message


class _Stopped(Exception):
    def __init__(self, summary):
        super().__init__(summary.get("message", ""))
        self.summary = summary


def curve_from_report(report):
    """A phase's G(T) curve at the sub-run's pressure (eV/atom, Å^3/atom; S in kB/atom) from the
    ``temperature_sweep`` block of a sub-run report (NPT sweep; docs/free-energy.md)."""
    sw = report.get("temperature_sweep")
    if sw is None or sw.get("ensemble") != "npt":
        raise ValueError("a phase sub-run report needs the temperature_sweep block of an NPT sweep "
                         f"(got {None if sw is None else sw.get('ensemble')})")
    return {"temperature_K": list(sw["temperature"]), "G": list(sw["G"]), "G_error": list(sw["G_error"]),
            "volume": list(sw["V"]), "S_kB": list(sw["S"]), "S_error_kB": list(sw["S_error"]),
            "H": list(sw["H"]), "H_error": list(sw["H_error"]), "hysteresis": list(sw["hysteresis"]),
            "kind": f"G(T) at {sw['pressure']:g} bar ({sw['method']}, npt sweep, phase {sw['phase']})"}


def _curve(name, c):
    s_err = np.asarray(c["S_error_kB"], float) * BOLTZMANN       # eV/K/atom; nan with one iteration
    return Curve(name, c["temperature_K"], c["G"], np.nan_to_num(np.asarray(c["G_error"], float)),
                 volume=c["volume"], entropy_error=s_err)


def _at(c, key, t):
    """A curve's ``key`` list interpolated at t (K)."""
    order = np.argsort(c["temperature_K"])
    return float(np.interp(t, np.asarray(c["temperature_K"], float)[order], np.asarray(c[key], float)[order]))


class PhaseDiagramRun:
    """``PhaseDiagramRun(settings, text, path, comm).run()``.  ``prepare(run, phase)``, if given,
    is called on every FreeEnergyRun (and every NPT holder with ``.simulation``) right after it is
    built: tests replace the potential there."""

    def __init__(self, settings, input_text, input_path, comm=MPI.COMM_WORLD, restart=None, stream=sys.stdout,
                 prepare=None):
        self.settings, self.input_text, self.input_path = settings, input_text, Path(input_path)
        self.comm, self.rank, self.stream, self.prepare = comm, comm.Get_rank(), stream, prepare
        sec = self.section = settings["free_energy"]
        self.mode = sec["mode"]
        assert self.mode in PHASE_MODES
        self.phases = self._phases()
        self._check()
        report = Path(sec["report"])
        self.folder = report.parent / f"{report.stem}_runs"
        self.signature = json.dumps(_plain({"free_energy": {k: v for k, v in sorted(sec.items())
                                                            if k not in RESUMABLE_KEYS},
                                            "phases": self.phases, "potential": settings["potential"],
                                            "masses": settings["masses"]}), sort_keys=True, default=str)
        self.resume = restart is not None
        self.phases_checked = False
        if self.resume:
            saved = self.comm.bcast(on_root(comm, lambda: _read_state(restart)))
            if isinstance(saved, str):
                raise InputError(f"--restart {restart}: {saved}")
            if not _same_settings(saved["signature"], self.signature):
                raise InputError(f"--restart {restart}: the [free_energy] section or the phases differ from the "
                                 "run that wrote it; restart with the same settings (only report, data, "
                                 "checkpoint and progress_every may change)")
            self.phases_checked = saved.get("phase_checks") or False
        self.warnings: list[str] = []
        self.history: list[dict] = []
        self.curves: dict[str, dict] = {}      # the last attempt's curves by phase
        self.all_curves: list[dict] = []       # every sub-run's curve
        self.sub_count = 0
        self.t_start = _time.perf_counter()
        self._npt = {}
        self._line_progress = None      # the coexistence line's progress over all its state points

    @classmethod
    def check_input(cls, settings, input_path):
        """The phase list and the sub-runs' settings (also run by ``acemd --check``); builds nothing."""
        cls(settings, "", input_path, comm=MPI.COMM_SELF)

    # ------------------------------------------------------------ input
    def _phases(self):
        sec, path = self.section, self.input_path
        given = sec.get("phases")
        if given is None:
            if self.mode == "melting_temperature":
                given = [{"name": "solid", "route": "solid"}, {"name": "liquid", "route": "liquid"}]
            else:
                raise InputError(f"{path}: [free_energy] mode = \"{self.mode}\" needs phases = [{{name = ..., "
                                 "route = \"solid\" | \"liquid\", lattice or file ...}, ...] (at least two)")
        out = []
        keys = SCHEMA["structure"]
        for ph in given:
            name, route = ph["name"], ph.get("route", "solid")
            struct_given = {k: v for k, v in ph.items() if k not in ("name", "route")}
            for k, v in struct_given.items():
                if k not in keys:
                    raise InputError(f"{path}: [free_energy.phases] phase {name}: unknown key '{k}'; a phase takes "
                                     f"name, route and the [structure] keys ({', '.join(keys)})")
                if isinstance(v, bool) != (bool in keys[k].types) or not isinstance(v, keys[k].types):
                    raise InputError(f"{path}: [free_energy.phases] phase {name}: {k} = {v!r} has the wrong type "
                                     "(as in [structure])")
                problem = keys[k].check(v) if keys[k].check else None
                if problem:
                    raise InputError(f"{path}: [free_energy.phases] phase {name}: {k} {problem} (got {v!r})")
            if struct_given:
                from ..config import _check_structure
                struct = {k: (float(v) if float in keys[k].types and isinstance(v, int) else v)
                          for k, v in struct_given.items()}
                for k, spec in keys.items():
                    if k not in struct and spec.default is not None:
                        struct[k] = spec.default
                if "file" in struct and not Path(struct["file"]).is_absolute():
                    struct["file"] = str((path.resolve().parent / struct["file"]).resolve())
                try:
                    _check_structure(struct, struct_given, path)
                except ConfigError as exc:
                    raise InputError(f"{path}: [free_energy.phases] phase {name}: {exc.problem} "
                                     f"({exc.key})") from None
            else:
                struct = dict(self.settings["structure"])
            out.append({"name": name, "route": route, "structure": struct})
        routes = [p["route"] for p in out]
        if self.mode == "melting_temperature" and sorted(routes) != ["liquid", "solid"]:
            raise InputError(f"{path}: [free_energy.phases] melting_temperature takes one solid and one liquid "
                             f"phase, got routes {routes}")
        if self.mode in ("transition_temperature", "coexistence_line") and len(out) != 2:
            raise InputError(f"{path}: [free_energy.phases] {self.mode} takes exactly two phases, got {len(out)}")
        if self.mode == "phase_map" and len(out) < 2:
            raise InputError(f"{path}: [free_energy.phases] phase_map needs at least two phases, got {len(out)}")
        return out

    def _check(self):
        sec, path = self.section, self.input_path
        T, w = sec["temperature"], sec["window"]
        if self.mode == "phase_map":
            tf = sec.get("temperature_final")
            if tf is None or not tf > T:
                raise InputError(f"{path}: [free_energy] mode = \"phase_map\" needs temperature_final > temperature "
                                 f"(K): the map covers temperature .. temperature_final (got {tf})")
        elif not T - w > 0:
            raise InputError(f"{path}: [free_energy] temperature - window = {T - w:g} K: the window "
                             f"[{T - w:g}, {T + w:g}] K must lie above 0 K; give a smaller window or a higher guess")
        if sec.get("start_temperature") is not None and self.mode != "coexistence_line":
            raise InputError(f"{path}: [free_energy] start_temperature applies to mode = \"coexistence_line\" "
                             f"(the line's known starting point), not mode = \"{self.mode}\"; remove it")
        if self.mode == "coexistence_line":
            pf = sec.get("pressure_final")
            if pf is None or pf == sec["pressure"]:
                raise InputError(f"{path}: [free_energy] mode = \"coexistence_line\" needs pressure_final (bar) "
                                 f"different from pressure = {sec['pressure']:g}")
        if any(p["route"] == "liquid" for p in self.phases) and self.section.get("spring_constants"):
            raise InputError(f"{path}: [free_energy.spring_constants] would apply to the liquid too; remove them")
        # keys the driver sets itself in every sub-run, or that belong to another mode
        if sec.get("phase") is not None:
            raise InputError(f"{path}: [free_energy] phase = {sec['phase']!r} does not apply to mode = "
                             f"\"{self.mode}\": each entry of phases has its own route (\"solid\" or \"liquid\"); "
                             "remove phase")
        if sec["sweep_ensemble"] != "npt":
            raise InputError(f"{path}: [free_energy] sweep_ensemble = \"{sec['sweep_ensemble']}\": the phase modes "
                             "compare G(T) at constant pressure, so their sweeps are NPT; remove sweep_ensemble")
        if sec.get("temperature_final") is not None and self.mode != "phase_map":
            raise InputError(f"{path}: [free_energy] temperature_final applies to mode = \"phase_map\" (and "
                             f"temperature_sweep), not mode = \"{self.mode}\", whose sweeps cover temperature "
                             "+- window; remove it")
        if sec.get("pressure_final") is not None and self.mode != "coexistence_line":
            raise InputError(f"{path}: [free_energy] pressure_final applies to mode = \"coexistence_line\" (and "
                             f"pressure_sweep), not mode = \"{self.mode}\"; remove it")
        lo, hi = self._window0()
        from ..free_energy.sweep import check_sweep
        for phase in self.phases:            # the sub-runs' settings pass the [free_energy] driver's checks
            for label, _, sub in self._sub_runs_for(phase, lo, hi, sec["pressure"], Path(".")):
                check_sweep(sub["free_energy"], f"{path} (sub-run {label})")
        if sec["switching_steps"] < 10:
            raise InputError(f"{path}: [free_energy.switching_steps] = {sec['switching_steps']} is too few")

    def _window0(self):
        sec = self.section
        if self.mode == "phase_map":
            return sec["temperature"], sec["temperature_final"]
        return sec["temperature"] - sec["window"], sec["temperature"] + sec["window"]

    # ------------------------------------------------------------ output helpers
    def _say(self, line):
        if self.rank == 0 and self.stream is not None:
            print(line, file=self.stream, flush=True)

    def _warn(self, text):
        self.warnings.append(text)
        self._say(f"# WARNING: {text}")

    def _save_state(self):
        state = {"signature": self.signature, "history": self.history, "version": __version__,
                 "phase_checks": self.phases_checked}

        def write():
            import h5py
            with replaced_atomically(self.section["checkpoint"]) as tmp, h5py.File(tmp, "w") as f:
                f.attrs["acemd_version"] = __version__
                f.attrs["phase_protocol"] = json.dumps(_plain(state), default=str)
        on_root(self.comm, write)

    # ------------------------------------------------------------ sub-runs
    def _sub_section(self, route, t_from, t_to, pressure, folder):
        """[free_energy] of a sub-run: the phase's route at t_from, then its G(T) at constant
        pressure (NPT sweep) to t_to."""
        fe = {k: v for k, v in self.section.items() if k not in PHASE_ONLY_KEYS}
        fe.update(mode="temperature_sweep", phase=route, sweep_ensemble="npt", temperature=float(t_from),
                  temperature_final=float(t_to), pressure=float(pressure),
                  report=str(folder / "free_energy.yaml"), data=str(folder / "free_energy.h5"),
                  checkpoint=str(folder / "free_energy.ckpt.h5"))
        return fe

    def _sub_runs_for(self, phase, lo, hi, pressure, root=None):
        """(label, folder, settings) of the sub-run that gives a phase's curve over [lo, hi]: a solid
        from the low end up, a liquid from the high end down (where each is stable)."""
        a, b = (lo, hi) if phase["route"] == "solid" else (hi, lo)
        label = f"{phase['name']}_{a:g}-{b:g}K_{pressure:g}bar"
        folder = (self.folder if root is None else root) / label
        sub = copy.deepcopy(self.settings)
        sub["structure"] = copy.deepcopy(phase["structure"])
        sub["free_energy"] = self._sub_section(phase["route"], a, b, pressure, folder)
        return [(label, folder, sub)]

    def _run_sub(self, phase, label, folder, sub, k, n):
        sig = json.dumps(_plain({key: sub[key] for key in ("structure", "potential", "masses")} |
                                {"free_energy": {kk: v for kk, v in sub["free_energy"].items()
                                                 if kk not in RESUMABLE_KEYS}}), sort_keys=True, default=str)
        fe = sub["free_energy"]
        elapsed = _time.perf_counter() - self.t_start
        what = (f"{fe['temperature']:g} K -> {fe['temperature_final']:g} K" if "temperature_final" in fe
                else f"{fe['temperature']:g} K")
        self._say(f"# sub-run {k} of {n}: phase {phase['name']} ({phase['route']}), {fe['mode']} {what}, "
                  f"{fe['pressure']:g} bar, in {folder} (protocol elapsed {format_hms(elapsed)})")

        def look():
            rep, ckpt, sfile = Path(fe["report"]), Path(fe["checkpoint"]), folder / "settings.json"
            same = sfile.exists() and sfile.read_text() == sig
            if self.resume and same and rep.exists():
                import yaml
                return "done", yaml.safe_load(rep.read_text())
            if self.resume and same and ckpt.exists():
                return "restart", None
            folder.mkdir(parents=True, exist_ok=True)
            for stale in (rep, ckpt):
                stale.unlink(missing_ok=True)
            sfile.write_text(sig)
            return "new", None
        status, report = self.comm.bcast(on_root(self.comm, look))
        if status == "done":
            self._say(f"# sub-run {k} of {n}: finished before; read {fe['report']}")
            return report
        restart = fe["checkpoint"] if status == "restart" else None
        if restart:
            self._say(f"# sub-run {k} of {n}: continuing from {restart}")
        text = f"# sub-run of {self.input_path} ({self.mode}), phase {phase['name']}\n" + format_settings(sub)
        run = FreeEnergyRun(sub, text, self.input_path, comm=self.comm, restart=restart, stream=self.stream)
        if self.prepare is not None:
            self.prepare(run, phase["name"])
        report = run.run()
        if report.get("stopped_by"):
            report["message"] = f"sub-run {k} ({label}): {report['message']}"
            raise _Stopped(report)
        return report

    def _phase_curve(self, phase, lo, hi, pressure, k0, n):
        """Run (or read) a phase's sub-run over [lo, hi]; its curve.  PhaseChanged if it changed."""
        (label, folder, sub), = self._sub_runs_for(phase, lo, hi, pressure)
        self.sub_count += 1
        report = self._run_sub(phase, label, folder, sub, self.sub_count, n)
        changed = [w for w in report["acemd"].get("warnings", [])
                   if ("melted" in w if phase["route"] == "solid" else ("crystallised" in w or "did not melt" in w))]
        curve = curve_from_report(report)
        curve.update(phase=phase["name"], route=phase["route"], pressure_bar=float(pressure),
                     sub_runs=[str(folder)], window=[float(lo), float(hi)])
        self.all_curves.append(curve)
        if changed:
            raise PhaseChanged(phase["name"], f"phase {phase['name']} changed during sub-run {label}: "
                                              + "; ".join(changed))
        return curve

    # ------------------------------------------------------------ protocol
    def run(self) -> dict:
        sec = self.section
        self._say(f"# acemd {__version__}: [free_energy] mode = \"{self.mode}\", phases "
                  + ", ".join(f"{p['name']} ({p['route']})" for p in self.phases)
                  + f"; sub-runs in {self.folder}")
        try:
            self._check_phases_exist()
            if self.mode == "phase_map":
                result = self._phase_map()
            elif self.mode == "coexistence_line" and sec.get("start_temperature") is not None:
                result = {"status": "given", "temperature_K": float(sec["start_temperature"]),
                          "error_K": float(sec["start_temperature_error"])}
                result["coexistence_line"] = self._coexistence(result)
            else:
                result = self._bracket(sec["pressure"])
                if self.mode == "coexistence_line" and result["status"] == "crossing":
                    result["coexistence_line"] = self._coexistence(result)
        except GuardStop as stop:        # a coexistence state point's MD blew up
            self._save_state()
            what = stop.message.replace("The checkpoint holds the last good state", "The last good state was")
            message = (f"[free_energy] {self.mode}: stage '{stop.stage}': {what}; no result is reported and no "
                       f"atoms are kept (the protocol state is in {sec['checkpoint']})")
            self._say(f"# {message}")
            return {"stopped_by": "guard", "message": message}
        except _Stopped as stop:
            self._save_state()
            message = (f"{stop.summary['message']}; the protocol state is in {sec['checkpoint']}: continue with "
                       f"--restart {sec['checkpoint']}")
            self._say(f"# {message}")
            return dict(stop.summary, message=message)
        except NoStableLiquidError as exc:
            self.history.append({"outcome": "no stable liquid", "message": str(exc)})
            report = self._write({"status": "no stable liquid", "message": str(exc)})
            self._print(report)
            raise NoStableLiquidError(f"{exc} -- the phase protocol ends without a melting temperature; the curves "
                                      f"computed so far are in {sec['report']} and {sec['data']}") from None
        report = self._write(result)
        self._print(report)
        if result["status"] not in ("crossing", "given") and self.mode != "phase_map":
            raise NoCrossingError(result["message"])
        return report

    def _check_phases_exist(self):
        """Each phase, at its end of the first window, through the stages before switching (a liquid:
        its melt, then quench and NPT; a solid: NPT and NVT; at most ``phase_check_steps`` steps each
        but the melt), liquids first: a phase that melts, crystallises, collapses or runs away stops
        the protocol now instead of after hours of sweeps."""
        sec = self.section
        if not sec["phase_check"] or self.phases_checked or (
                self.mode == "coexistence_line" and sec.get("start_temperature") is not None):
            return
        lo, hi = self._window0()
        pressure, n = sec["pressure"], int(sec["phase_check_steps"])
        t0 = _time.perf_counter()
        liquids_first = sorted(self.phases, key=lambda ph: ph["route"] != "liquid")   # the likelier failures
        for k, phase in enumerate(liquids_first, 1):
            (label, folder, sub), = self._sub_runs_for(phase, lo, hi, pressure, root=self.folder / "phase_checks")
            fe = sub["free_energy"]
            for key in ("quench_steps", "npt_steps", "spring_steps"):     # the melt keeps its length:
                fe[key] = min(int(fe[key]), n)                          # a short one leaves a crystal
            fe["spring_steps"] = max(fe["spring_steps"], MIN_SPRING_STEPS)
            fe.update(npt_max_blocks=1, report=str(folder / "check.yaml"), data=str(folder / "check.h5"),
                      checkpoint=str(folder / "check.ckpt.h5"))
            on_root(self.comm, lambda: folder.mkdir(parents=True, exist_ok=True))
            what = ("melt, quench and NPT" if phase["route"] == "liquid" else "NPT and NVT")
            self._say(f"# phase check {k} of {len(self.phases)}: {phase['name']} ({phase['route']}) at "
                      f"{fe['temperature']:g} K, {pressure:g} bar: {what}, at most {n} steps each")
            text = f"# phase check of {self.input_path} ({self.mode}), phase {phase['name']}\n" + format_settings(sub)
            run = FreeEnergyRun(sub, text, self.input_path, comm=self.comm, stream=self.stream)
            run.phase_check_only = True
            if self.prepare is not None:
                self.prepare(run, phase["name"])
            try:
                result = run.run()
            except NoStableLiquidError as exc:
                raise NoStableLiquidError(f"phase check of {phase['name']} at {fe['temperature']:g} K: {exc}") from None
            if result.get("stopped_by") == "signal":
                raise _Stopped(dict(result, message=f"phase check of {phase['name']}: {result['message']}"))
            if result.get("stopped_by"):
                raise PhaseMissing(f"{self.input_path}: phase check of {phase['name']} ({phase['route']}) at "
                                   f"{fe['temperature']:g} K: {result['message']}; the protocol stops before its "
                                   "sweeps (set phase_check = false to skip the check)")
            changed = [w for w in result["warnings"]
                       if ("melted" in w if phase["route"] == "solid" else ("crystallised" in w or "did not melt" in w))]
            if changed:
                missing = NoStableLiquidError if phase["route"] == "liquid" else PhaseMissing
                raise missing(f"{self.input_path}: phase check of {phase['name']} ({phase['route']}) at "
                                   f"{fe['temperature']:g} K, {pressure:g} bar: " + "; ".join(changed)
                                   + f". The phase does not exist at that end of the window "
                                   f"[{lo:g}, {hi:g}] K; give a better guess (temperature) or a smaller window, "
                                   "or a potential with this phase; the protocol stops before its sweeps")
            self._say(f"# phase check {k} of {len(self.phases)}: {phase['name']} exists "
                      f"({result['volume'] / run.simulation.state.n_atoms_total:.4f} A^3/atom)")
        self.phases_checked = {"outcome": PHASES_EXIST, "pressure_bar": float(pressure),
                               "seconds": _time.perf_counter() - t0}
        self._save_state()

    def _bracket(self, pressure):
        sec = self.section
        lo, hi = self._window0()
        attempts = sec["attempts"]
        a, b = self.phases
        for attempt in range(1, attempts + 1):
            earlier = next((h for h in self.history if h.get("pressure_bar") == float(pressure)
                            and np.allclose(h.get("window_K", [np.nan] * 2), [lo, hi], rtol=0, atol=1e-6)),
                           None)
            if earlier is not None:      # the outcomes point both ways: running it again says nothing new
                self._warn(f"the next window {lo:g} - {hi:g} K at {pressure:g} bar was tried already (outcome "
                           f"'{earlier['outcome']}'): the windows' outcomes contradict each other (a phase that "
                           "changed near the crossing, or curves too noisy to place it); not running it again. "
                           "Give a guess between the windows tried, longer sweeps or more atoms")
                break
            self._say(f"# attempt {attempt} of {attempts}: window {lo:g} - {hi:g} K at {pressure:g} bar")
            n_here = sum(len(self._sub_runs_for(p, lo, hi, pressure)) for p in self.phases)
            n = self.sub_count + n_here
            entry = {"attempt": attempt, "window_K": [float(lo), float(hi)], "pressure_bar": float(pressure)}
            try:
                curves = {p["name"]: self._phase_curve(p, lo, hi, pressure, self.sub_count, n) for p in (a, b)}
            except PhaseChanged as change:
                entry.update(outcome="rejected", message=change.message)
                self.history.append(entry)
                self._warn(f"attempt {attempt} rejected: {change.message}")
                self._save_state()
                shift = 0.5 * (hi - lo) * (-1 if self._route(change.phase) == "solid" else 1)
                if lo + shift <= 0:
                    break
                lo, hi = lo + shift, hi + shift
                continue
            self.curves = curves
            x = crossing(_curve(a["name"], curves[a["name"]]), _curve(b["name"], curves[b["name"]]))
            entry.update(outcome=x.status, crossing=x.as_dict())
            self.history.append(entry)
            self._save_state()
            if x.found:
                self._say(f"# crossing at {x.temperature:.2f} +- {x.error:.2f} K: {x.stable_below} below, "
                          f"{x.stable_above} above")
                return self._result(x, curves)
            side = {"above": f"above {hi:g} K (extrapolated {x.extrapolated:.0f} K)",
                    "below": f"below {lo:g} K (extrapolated {x.extrapolated:.0f} K)",
                    "none": "nowhere near: the curves do not approach each other"}[x.status]
            self._say(f"# no crossing in {lo:g} - {hi:g} K: {x.stable_below} is lower throughout; the crossing "
                      f"lies {side}")
            nxt = move_window(lo, hi, x.status)
            if nxt is None:
                break
            lo, hi = nxt
        tried = ", ".join(f"{h['window_K'][0]:g}-{h['window_K'][1]:g} K ({h['outcome']})" for h in self.history)
        message = (f"no crossing of the G(T) curves of {a['name']} and {b['name']} within {len(self.history)} "
                   f"window(s): {tried}; no transition temperature is reported. The curves are in "
                   f"{sec['report']} and {sec['data']}; give another temperature guess, a wider window or more "
                   "attempts")
        return {"status": "no crossing", "message": message}

    def _route(self, name):
        return next(p["route"] for p in self.phases if p["name"] == name)

    def _result(self, x, curves):
        """The crossing for the report; besides L = T* dS from the G curves' slopes, the enthalpy
        difference at T* of the sweeps' CALPHAD fits (H = G + TS) as an independent estimate."""
        ca, cb = curves[x.a], curves[x.b]
        t = x.temperature
        dh = _at(cb, "H", t) - _at(ca, "H", t)
        dh_err = float(np.hypot(_at(ca, "H_error", t), _at(cb, "H_error", t)))
        return {"status": "crossing", "temperature_K": x.temperature, "error_K": x.error,
                "latent_heat_eV_atom": x.latent_heat, "latent_heat_error_eV_atom": x.latent_heat_error,
                "latent_heat_fit_eV_atom": dh, "latent_heat_fit_error_eV_atom": dh_err,
                "delta_entropy_kB_atom": x.delta_entropy / BOLTZMANN, "delta_volume_A3_atom": x.delta_volume,
                "stable_below": x.stable_below, "stable_above": x.stable_above,
                "convention": f"differences are {x.b} - {x.a} at T*; latent heat T* (S_{x.b} - S_{x.a}) from the "
                              "G curves' slopes, latent_heat_fit H_b - H_a from the sweeps' CALPHAD fits",
                "crossing": x.as_dict()}

    def _phase_map(self):
        lo, hi = self._window0()
        P = self.section["pressure"]
        n = sum(len(self._sub_runs_for(p, lo, hi, P)) for p in self.phases)
        curves = {}
        for p in self.phases:
            try:
                curves[p["name"]] = self._phase_curve(p, lo, hi, P, self.sub_count, n)
            except PhaseChanged as change:
                self._warn(f"{change.message}; phase {p['name']} is left out of the map")
        self.curves = curves
        self.history.append({"attempt": 1, "window_K": [lo, hi], "pressure_bar": P, "outcome": "map"})
        self._save_state()
        if len(curves) < 2:
            return {"status": "no map", "message": "fewer than two phases kept their structure"}
        m = phase_map([_curve(k, c) for k, c in curves.items()])
        return {"status": "map", "temperature_K": m["temperature"].tolist(), "stable": m["stable"],
                "segments": [{"from_K": a, "to_K": b, "phase": ph} for a, b, ph in m["segments"]],
                "transitions": [dict(self._result(x, curves), status=x.status) for x in m["transitions"]],
                "g_eV_atom": {k: v.tolist() for k, v in m["g"].items()}}

    # ------------------------------------------------------------ Clausius-Clapeyron
    def _coexistence(self, result):
        """RK4 along dT/dP = T dV/dH from the crossing (or the given start_temperature, whose
        first state point then says which phase is stable above: the one of higher enthalpy)."""
        sec = self.section
        p = np.linspace(sec["pressure"], sec["pressure_final"], sec["pressure_steps"] + 1)
        names = [ph["name"] for ph in self.phases]
        order = {"below": result.get("stable_below"), "above": result.get("stable_above")}
        points = []
        from ..free_energy.solid import Progress
        # one progress count over the whole line: 4 RK4 stages per step, each phase's NPT, the melt once
        n_liquid = sum(ph["route"] == "liquid" for ph in self.phases)
        self._line_progress = Progress(self._say, 4 * sec["pressure_steps"] * len(names) * sec["npt_steps"]
                                       + n_liquid * sec["melt_steps"], sec["progress_every"])

        def state(T, P):
            for q in points:
                if abs(q["T"] - T) < 1e-9 and abs(q["P"] - P) < 1e-9:
                    return q
            q = {"T": float(T), "P": float(P)}
            for name in names:
                q[name] = self._state_point(name, T, P)
            if order["above"] is None:
                low, high = sorted(names, key=lambda n: q[n]["enthalpy"])
                order.update(below=low, above=high)
                self._say(f"# {high} has the higher enthalpy at {T:.2f} K, {P:g} bar: {low} is stable below "
                          f"the line, {high} above")
            below, above = order["below"], order["above"]
            q["dV"] = q[above]["volume"] - q[below]["volume"]
            q["dH"] = q[above]["enthalpy"] - q[below]["enthalpy"]
            points.append(q)
            self._say(f"# state point {len(points)}: {T:.2f} K, {P:g} bar: dV = {q['dV']:+.4f} A^3/atom, dH = "
                      f"{q['dH']:+.5f} eV/atom, dT/dP = {T * q['dV'] / (q['dH'] * EV_PER_A3_TO_BAR) * 1e3:+.4f} "
                      "K/kbar")
            return q
        def slope_error(T, P):
            """dT/dP's error (K/bar) from the state point's volume and enthalpy errors (the two phases'
            errors independent; within a phase V and H errors are correlated, which this ignores)."""
            q = state(T, P)
            below, above = order["below"], order["above"]
            sv = np.hypot(q[above]["volume_error"], q[below]["volume_error"])
            sh = np.hypot(q[above]["enthalpy_error"], q[below]["enthalpy_error"])
            k = T * q["dV"] / (q["dH"] * EV_PER_A3_TO_BAR)
            return abs(k) * np.hypot(sv / q["dV"], sh / q["dH"])
        t, noise = coexistence_line(result["temperature_K"], p, lambda T, P: state(T, P)["dV"],
                                    lambda T, P: state(T, P)["dH"], t0_error=0.0, slope_error=slope_error)
        # T* error carried along the line: dT(P)/dT0 = T(P)/T0 to first order when dV/dH varies slowly
        carried = result["error_K"] * t / result["temperature_K"]
        err = np.hypot(carried, noise)
        if result["status"] == "given":
            first = points[0]
            result.update(stable_below=order["below"], stable_above=order["above"],
                          latent_heat_eV_atom=first["dH"], delta_volume_A3_atom=first["dV"],
                          delta_entropy_kB_atom=first["dH"] / (result["temperature_K"] * BOLTZMANN))
        return {"pressure_bar": p.tolist(), "temperature_K": t.tolist(), "error_K": err.tolist(),
                "error_from_start_K": carried.tolist(), "error_from_state_points_K": noise.tolist(),
                "state_points": _plain(points),
                "latent_heat_from_curves_eV_atom": result.get("latent_heat_eV_atom")}

    def _guarded(self, integrator, stage, ensemble, temperature):
        """``integrator`` under the run's [guards] (GuardStop on a trip, the state the last good one)."""
        from .stage_guards import GuardedIntegrator
        settings = {"md": {"ensemble": ensemble}, "thermostat": {"temperature": float(temperature)},
                    "guards": dict(self.settings.get("guards") or {}), "velocities": {"temperature": 0.0}}
        return GuardedIntegrator(integrator, settings, self.comm, stage)

    def _state_point(self, name, T, P):
        """Mean volume and enthalpy U + PV per atom of a phase from NPT (second half averaged)."""
        from ..free_energy.solid import Progress
        from ..integrators import LangevinBAOAB, StochasticCellRescaling
        from ..simulation import Simulation, initial_velocities
        sec = self.section
        phase = next(p for p in self.phases if p["name"] == name)
        sim = self._npt.get(name)
        progress = self._line_progress or Progress(self._say, sec["npt_steps"], sec["progress_every"])
        if sim is None:
            sub = copy.deepcopy(self.settings)
            sub["structure"] = copy.deepcopy(phase["structure"])
            sim = Simulation(sub, self.input_text, self.input_path, comm=self.comm, skin=sec["skin"],
                             stream=self.stream)
            if self.prepare is not None:
                self.prepare(SimpleNamespace(simulation=sim), name)
            self._npt[name] = sim
            t_start = sec.get("melt_temperature", 2.0 * T) if phase["route"] == "liquid" else T
            sim.state.velocities = initial_velocities(self.comm, sim.state, t_start, sec["seed"] + 7, True)
            if phase["route"] == "liquid":
                lang = self._guarded(LangevinBAOAB(sec["timestep"], t_start, sec["damping"], seed=sec["seed"] + 8),
                                     f"{name} melt {t_start:g} K", "nvt-langevin", t_start)
                sim.engine.compute_forces(force_rebuild=True)
                lang.setup(sim.engine)
                on_step = progress.stage(f"{name} melt {t_start:g} K", sec["melt_steps"])
                stop = StopRequested()
                stop.install()
                try:
                    for k in range(1, sec["melt_steps"] + 1):
                        lang.step(sim.engine)
                        on_step(k)
                        if k % STOP_CHECK_STEPS == 0 and self.comm.allreduce(stop.signum, op=MPI.MAX):
                            del self._npt[name]          # melted only in part: melt again after a restart
                            raise _Stopped({"stopped_by": "signal", "message": f"stopped by a signal in the "
                                            f"{name} melt for the line's state points"})
                finally:
                    stop.uninstall()
        eng = sim.engine
        integ = self._guarded(StochasticCellRescaling(sec["timestep"], T, P, damping=sec["damping"],
                                                      barostat_damping=sec["barostat_damping"], coupling="iso",
                                                      compressibility_per_bar=sec["compressibility"],
                                                      seed=sec["seed"] + 9),
                              f"{name} NPT {T:.0f} K {P:g} bar", "npt-crescale", T)
        eng.compute_forces(force_rebuild=True)
        integ.setup(eng)
        n = sim.state.n_atoms_total
        vols, enth = [], []
        on_step = progress.stage(f"{name} NPT {T:.0f} K {P:g} bar", sec["npt_steps"])
        stop = StopRequested()
        stop.install()
        try:
            for k in range(1, sec["npt_steps"] + 1):
                integ.step(eng)
                if k > sec["npt_steps"] // 2 and k % 10 == 0:
                    v = sim.state.volume
                    vols.append(v / n)
                    enth.append((eng.potential_energy + P * v / EV_PER_A3_TO_BAR) / n)
                on_step(k)
                if k % STOP_CHECK_STEPS == 0 and self.comm.allreduce(stop.signum, op=MPI.MAX):
                    raise _Stopped({"stopped_by": "signal", "message": f"stopped by a signal in the {name} NPT "
                                    f"state point at {T:.0f} K, {P:g} bar (the restart recomputes the line's "
                                    "state points)"})
        finally:
            stop.uninstall()
        vols, enth = np.asarray(vols), np.asarray(enth)
        if len(vols) >= 10:          # standard errors from 5 block averages of the averaged half
            errors = block_average(np.column_stack([vols, enth]), 5)["error"]
        else:
            errors = np.full(2, np.nan)
        return {"volume": float(np.mean(vols)), "enthalpy": float(np.mean(enth)),
                "volume_error": float(errors[0]), "enthalpy_error": float(errors[1])}

    # ------------------------------------------------------------ report
    def _write(self, result):
        sec, sim_settings = self.section, self.settings
        report = {
            "mode": self.mode,
            "pressure_bar": float(sec["pressure"]),
            "result": _plain(result),
            "windows": _plain(self.history),
            "curves": _plain(self.curves or {c["phase"]: c for c in self.all_curves}),
            "acemd": {"version": __version__, "units": UNITS_LINE + "; G eV/atom, entropy kB/atom",
                      "input_file": str(self.input_path), "potential_file": sim_settings["potential"]["file"],
                      "phases": _plain(self.phases), "sub_runs_folder": str(self.folder),
                      "data_file": str(sec["data"]),
                      "ranks": self.comm.Get_size(), "warnings": list(self.warnings),
                      "sub_run_mode": "temperature_sweep, sweep_ensemble npt, phase = the phase's route",
                      "wall_s": _time.perf_counter() - self.t_start},
        }

        def write():
            import h5py
            import yaml
            Path(sec["report"]).parent.mkdir(parents=True, exist_ok=True)
            with replaced_atomically(sec["report"]) as tmp:
                tmp.write_text(yaml.safe_dump(_plain(report), sort_keys=False, allow_unicode=True), encoding="utf-8")
            with replaced_atomically(sec["data"]) as tmp, h5py.File(tmp, "w") as f:
                f.attrs["acemd_version"] = __version__
                f.attrs["units"] = "K, bar, eV/atom, A^3/atom"
                f.attrs["mode"] = self.mode
                f.attrs["input_text"] = self.input_text
                f.attrs["report"] = json.dumps(_plain(report["result"]), default=str)
                for i, c in enumerate(self.all_curves, start=1):
                    g = f.create_group(f"curves/{i:03d}_{c['phase']}")
                    for key in ("temperature_K", "G", "G_error", "volume", "S_kB", "S_error_kB", "H", "H_error",
                                "hysteresis"):
                        g[key] = np.asarray(c[key], float)
                    for key in ("phase", "route", "kind"):
                        g.attrs[key] = c[key]
                    g.attrs["window_K"] = c["window"]
                    g.attrs["pressure_bar"] = c["pressure_bar"]
                if result.get("status") == "map":
                    g = f.create_group("phase_map")
                    g["temperature_K"] = np.asarray(result["temperature_K"])
                    names = list(result["g_eV_atom"])
                    g["stable_index"] = np.array([names.index(s) for s in result["stable"]])
                    g.attrs["phases"] = names
                    for k, v in result["g_eV_atom"].items():
                        g[f"G/{k}"] = np.asarray(v)
                line = result.get("coexistence_line")
                if line:
                    g = f.create_group("coexistence_line")
                    for key in ("pressure_bar", "temperature_K", "error_K"):
                        g[key] = np.asarray(line[key])
        on_root(self.comm, write)
        return report

    def _print(self, report):
        res = report["result"]
        say = self._say
        say("#")
        if report["windows"]:        # none when the line starts from a given start_temperature
            say(f"# {self.mode}: windows tried")
            say("#   attempt  window (K)            outcome     T* (K)        +- (K)")
        for h in report["windows"]:
            x = h.get("crossing", {})
            w = h.get("window_K", [float("nan")] * 2)
            say(f"    {h.get('attempt', 0):5d}    {w[0]:8.2f} - {w[1]:8.2f}   {h['outcome']:<10s}  "
                f"{x.get('temperature', float('nan')):10.2f}  {x.get('error', float('nan')):8.2f}")
        status = res.get("status")
        if status == "crossing":
            dv = res["delta_volume_A3_atom"]
            say(f"# T* = {res['temperature_K']:.2f} +- {res['error_K']:.2f} K ({res['stable_below']} below, "
                f"{res['stable_above']} above); latent heat {res['latent_heat_eV_atom']:.5f} eV/atom (fits: "
                f"{res['latent_heat_fit_eV_atom']:.5f} +- {res['latent_heat_fit_error_eV_atom']:.5f}), entropy of "
                f"transition {res['delta_entropy_kB_atom']:.4f} kB/atom"
                + (f", dV {dv:+.4f} A^3/atom" if dv is not None else ""))
        if status == "given":
            say(f"# T* = {res['temperature_K']:.2f} +- {res['error_K']:.2f} K at {self.section['pressure']:g} bar "
                f"(start_temperature, given); {res['stable_below']} below, {res['stable_above']} above; at T* "
                f"from NPT: latent heat {res['latent_heat_eV_atom']:.5f} eV/atom, entropy of transition "
                f"{res['delta_entropy_kB_atom']:.4f} kB/atom, dV {res['delta_volume_A3_atom']:+.4f} A^3/atom")
        if status in ("crossing", "given"):
            line = res.get("coexistence_line")
            if line:
                say("# coexistence line (Clausius-Clapeyron, RK4):   P (bar)      T (K)     +- (K)")
                for row in zip(line["pressure_bar"], line["temperature_K"], line["error_K"]):
                    say("    {:14.1f}  {:10.2f}  {:8.2f}".format(*row))
        elif status == "map":
            say("# phase map: stable phase by temperature")
            for s in res["segments"]:
                say(f"    {s['from_K']:8.2f} - {s['to_K']:8.2f} K   {s['phase']}")
            for t in res["transitions"]:
                say(f"    transition {t['stable_below']} -> {t['stable_above']} at {t['temperature_K']:.2f} +- "
                    f"{t['error_K']:.2f} K, latent heat {t['latent_heat_eV_atom']:.5f} eV/atom")
        else:
            say(f"# {res.get('message', status)}")
        for w in self.warnings:
            say(f"# WARNING: {w}")
        say(f"# report: {self.section['report']}, data: {self.section['data']}, sub-runs: {self.folder}")


def _same_settings(saved, current):
    """Do two protocol signatures match?  Equal, or differing only by [free_energy] keys that one
    side lacks and the other holds at their default (a checkpoint written before acemd added the
    key restarts with a newer acemd)."""
    if saved == current:
        return True
    a, b = json.loads(saved), json.loads(current)
    fa, fb = a.pop("free_energy", {}), b.pop("free_energy", {})
    if a != b:
        return False
    keys = SCHEMA["free_energy"]
    for k in set(fa) | set(fb):
        if k in fa and k in fb:
            if fa[k] != fb[k]:
                return False
        elif k not in keys or fa.get(k, fb.get(k)) != _plain(keys[k].default):
            return False
    return True


def _read_state(path):
    import h5py
    try:
        with h5py.File(path, "r") as f:
            text = f.attrs.get("phase_protocol")
    except OSError as exc:
        return f"not a readable HDF5 file: {exc}"
    if text is None:
        return ("not a phase-protocol checkpoint (it has no phase_protocol record); restart a phase mode with "
                "its own [free_energy].checkpoint")
    return json.loads(text)
