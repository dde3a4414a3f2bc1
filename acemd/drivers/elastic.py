"""The ``[elastic]`` driver: the static (0 K) elastic tensor by finite strains.

Stages on one :class:`~acemd.simulation.Simulation`: relax cell and atoms
(``relax``), take the relaxed configuration as reference, then for each of the
six Voigt strains and each magnitude e, at +e and -e: go back to the reference,
deform cell and atoms, relax the atoms in the fixed strained cell
(``relax_ions``; otherwise the clamped-ion response), record the stress.  C is
the least-squares slope of stress against strain, column by column; the same
slopes from each magnitude alone give the spread reported as its error.

Every minimiser step runs under the ``[guards]`` (a trip: the last good state into the
checkpoint, exit status 4) and honours SIGTERM/SIGUSR1: during the reference relaxation the
checkpoint holds the configuration reached; during the strains it holds the reference and the
stresses recorded so far (the strained cell in progress is redone), and ``--restart`` continues
to the tensor the uninterrupted run gives (to round-off).
"""
from __future__ import annotations

import json
import signal
import sys
import time as _time

import numpy as np
from mpi4py import MPI

from .. import __version__
from ..elasticity import (VOIGT_NAMES, born_stability, central_difference_columns,
                          fit_columns, independent_constants, stress_to_voigt, voigt_strain_tensor,
                          vrh_moduli)
from ..io.atomic import replaced_atomically
from ..parallel.collective import on_root
from ..guards import GuardError, Guards
from ..minimizers import GUARD_ADVICE
from ..signals import StopRequested
from ..simulation import InputError, Simulation
from ..units import EV_PER_A3_TO_GPA, UNITS_LINE
from .minimize import MINIMIZE_COLUMNS, NotConvergedError, describe, minimizer_from_settings
from .stage_guards import GuardStop
from ..io.thermo import format_hms

STATE_KEY = "elastic_0k"          # the checkpoint's state group of a 0 K run in progress
SIGNATURE_KEYS = ("strains", "relax", "relax_ions", "method", "cell", "pressure", "fmax", "stress_tol",
                  "max_steps", "max_displacement")


class _Stopped(Exception):
    """A stop signal ended a stage; the checkpoint is written."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class ElasticRun:
    """``ElasticRun(settings, text, path, comm).run()``: the [elastic] driver."""

    def __init__(self, settings, input_text, input_path, comm=MPI.COMM_WORLD, restart=None,
                 stream=sys.stdout):
        section = settings["elastic"]
        self.settings = settings
        self.section = section
        self.stream = stream
        self.simulation = Simulation(settings, input_text, input_path, comm=comm, restart=restart,
                                     skin=section["skin"], stream=stream)
        self.rank = comm.Get_rank()
        self.nsteps = 0                  # MD steps of the whole protocol (0 K: none)
        self.finite_t = None
        if section["temperature"] > 0.0:
            from .elastic_t import FiniteTemperatureElastic
            self.finite_t = FiniteTemperatureElastic(self)
            self.nsteps = self.finite_t.end_step    # a summary with fewer steps is incomplete (exit 75)

    def _say(self, line):
        if self.rank == 0 and self.stream is not None:
            print(line, file=self.stream, flush=True)

    def _stress_gpa(self):
        """Cauchy stress of the potential (Voigt, GPa, tensile positive)."""
        sim = self.simulation
        return stress_to_voigt(-sim.engine.virial / sim.state.volume * EV_PER_A3_TO_GPA)

    def relax(self, stop=None):
        """Relax cell and atoms to ``pressure`` (the 0 K reference; at T > 0 the start of NPT).

        A guard trip raises :class:`GuardStop` (the state is the last good one); with ``stop`` a
        signal returns the unconverged result (reason ``"signal"``)."""
        sim, sec = self.simulation, dict(self.section)
        if sec["method"] not in ("fire", "lbfgs"):
            sec["method"] = "fire"          # at temperature > 0 `method` names the route
        self._say(f"# relax cell ({sec['cell']}) and atoms to {sec['pressure']} bar")
        from ..io.thermo import ThermoLog
        minimizer = minimizer_from_settings(sim, sec, stop=stop)
        minimizer.check_start()         # a refused start (GuardError) before the log is opened
        log = ThermoLog(sim.comm, MINIMIZE_COLUMNS, log_path=self.settings["thermo"]["file"],
                        stream=self.stream, total_steps=sec["max_steps"], preamble=[])
        minimizer.log = log.row
        result = minimizer.run()
        log.close(extra=[describe(result)])
        if result.reason == "guard":
            raise GuardStop("reference relaxation", result.message)
        if result.reason == "signal":
            return result
        if not result.converged:
            raise NotConvergedError(f"[elastic] reference relaxation: {describe(result)}; raise "
                                    "max_steps or loosen fmax/stress_tol")
        return result

    def run(self) -> dict:
        if self.finite_t is not None:
            return self.finite_t.run()
        sim = self.simulation
        stop = StopRequested()
        stop.install()
        try:
            return self._run_static(stop)
        except _Stopped as exc:
            name = signal.Signals(exc.signum).name
            ckpt = self.settings["checkpoint"]["file"]
            message = f"[elastic] stopped by {name} ({self._stage}): checkpoint written to {ckpt}"
            self._say(f"# {message}")
            return {"stopped_by": name, "message": message}
        except GuardStop as exc:            # the minimiser put the last good state back
            sim.state.velocities[:] = 0.0
            sim.write_checkpoint(state={STATE_KEY: {"signature": self._signature(), "guard_stop": exc.stage}},
                                 step=0, time_ps=0.0)
            message = (f"[elastic] {exc.stage}: {exc.message}; the checkpoint "
                       f"{self.settings['checkpoint']['file']} holds that state (for inspection: a --restart "
                       "from it is refused); no report was written")
            self._say(f"# {message}")
            return {"stopped_by": "guard", "message": message}
        finally:
            stop.uninstall()

    def _signature(self) -> str:
        return json.dumps({k: self.section[k] for k in SIGNATURE_KEYS}, sort_keys=True, default=str)

    def _saved(self):
        """This protocol's state from the --restart checkpoint (None: start from its atoms)."""
        sim = self.simulation
        saved = (sim.restart_state or {}).get(STATE_KEY) if sim.restarting else None
        if saved is None:
            return None
        if saved.get("signature") != self._signature():
            raise InputError(f"--restart {sim.restart}: [elastic] {', '.join(SIGNATURE_KEYS)} differ from the run "
                             "that wrote the checkpoint; restart with the same settings")
        if saved.get("guard_stop"):
            raise InputError(f"--restart {sim.restart}: this checkpoint holds the last good state before a "
                             f"blow-up guard stop in the {saved['guard_stop']} (for inspection); remove the cause "
                             "and start without --restart")
        return saved

    def _checkpoint(self, stage, records=(), relax_info=None, force_calls=0):
        """Checkpoint the present configuration with the protocol's progress (collective)."""
        progress = {"signature": self._signature(), "stage": stage, "force_calls": int(force_calls),
                    "n_records": len(records)}
        if relax_info is not None:
            progress["relax"] = dict(relax_info)
        if records:
            progress["component"] = np.array([r["component"] for r in records], dtype=np.int64)
            progress["strain"] = np.array([r["strain"] for r in records], dtype=float)
            progress["stress"] = np.array([r["stress"] for r in records], dtype=float)
            progress["energy"] = np.array([r["energy"] for r in records], dtype=float)
            progress["steps"] = np.array([r["steps"] for r in records], dtype=np.int64)
        self.simulation.state.velocities[:] = 0.0
        self.simulation.write_checkpoint(state={STATE_KEY: progress}, step=0, time_ps=0.0)

    def _signalled(self, stop) -> int:
        return int(self.simulation.comm.allreduce(stop.signum, op=MPI.MAX))

    def _check_guards(self, label):
        """The [guards] on the present configuration (a clamped-ion strain): GuardStop if it fails."""
        try:
            Guards(self.settings, self.simulation.comm, self.simulation.engine, None, advice=GUARD_ADVICE)
        except GuardError as exc:
            raise GuardStop(label, f"blow-up guard: {exc}") from None

    def _run_static(self, stop) -> dict:
        sim, sec = self.simulation, self.section
        t_start = _time.perf_counter()
        force_t0 = sum(sim.engine.timers.values())
        saved = self._saved()
        for line in sim.preamble():
            self._say(f"# {line}")
        self._say(f"# elastic: strains {sec['strains']}, relax {sec['relax']}, relax_ions "
                  f"{sec['relax_ions']}, minimiser {sec['method']}")
        force_calls = 0
        relax_info = None
        records = []
        self._stage = "reference relaxation"
        if saved is not None and saved.get("stage") == "strains":
            force_calls = int(saved["force_calls"])
            relax_info = saved.get("relax")
            n = int(saved["n_records"])
            records = [{"component": int(saved["component"][i]), "strain": float(saved["strain"][i]),
                        "stress": np.asarray(saved["stress"][i], dtype=float),
                        "energy": float(saved["energy"][i]), "steps": int(saved["steps"][i])}
                       for i in range(n)]
            self._say(f"# restart: the reference of the checkpoint, {n} strained cells done")
            sim.compute(force_rebuild=True)
            force_calls += 1
        elif sec["relax"]:
            if saved is not None:
                self._say("# restart: the reference relaxation continues from the checkpoint")
                force_calls = int(saved.get("force_calls", 0))
            result = self.relax(stop=lambda: self._signalled(stop))
            force_calls += result.force_calls
            if result.reason == "signal":
                self._checkpoint("relax", force_calls=force_calls)
                raise _Stopped(self._signalled(stop))
            relax_info = {"steps": int(result.steps), "fmax_eV_A": float(result.fmax),
                          "stress_deviation_bar": float(result.stress_deviation)}
        else:
            sim.compute(force_rebuild=True)
            force_calls += 1
            Guards(self.settings, sim.comm, sim.engine, None)       # GuardError: an input error
        reference = sim.snapshot()
        from ..symmetry import crystal_class_of_simulation
        self.structure_class = crystal_class_of_simulation(sim)     # the tensor's form, from the atoms
        reference_cell = sim.state.cell.copy()
        reference_energy = sim.engine.potential_energy
        stress0 = self._stress_gpa()
        n_atoms = sim.state.n_atoms_total
        strains = sorted(float(e) for e in sec["strains"])
        plan = [(j, sign * e) for j in range(6) for e in strains for sign in (1.0, -1.0)]
        self._say(f"# stage 2: {len(plan)} strained cells"
                  + (", atoms relaxed in each" if sec["relax_ions"] else ", clamped ions"))
        t_loop = _time.perf_counter()
        first = len(records)

        def stopped():
            sim.restore(reference)
            self._checkpoint("strains", records, relax_info, force_calls)
            return _Stopped(self._signalled(stop))

        for k in range(first, len(plan)):
            j, e = plan[k]
            self._stage = f"strain {k + 1}/{len(plan)} e_{VOIGT_NAMES[j]} = {e:+g}"
            if self._signalled(stop):
                raise stopped()
            sim.restore(reference)
            sim.deform(np.eye(3) + voigt_strain_tensor(j, e))
            steps = 0
            if sec["relax_ions"]:
                try:
                    res = minimizer_from_settings(sim, sec, cell="fixed", stop=lambda: self._signalled(stop)).run()
                except GuardError as exc:
                    raise GuardStop(self._stage, f"blow-up guard: {exc}") from None
                if res.reason == "guard":
                    raise GuardStop(self._stage, res.message)
                if res.reason == "signal":
                    raise stopped()
                force_calls += res.force_calls
                steps = res.steps
                if not res.converged:
                    raise NotConvergedError(f"[elastic] strain e_{VOIGT_NAMES[j]} = {e:+g}: {describe(res)}; "
                                            "raise max_steps or loosen fmax")
            else:
                sim.compute()
                force_calls += 1
                self._check_guards(self._stage)
            stress = self._stress_gpa()
            records.append({"component": j, "strain": e, "stress": stress,
                            "energy": sim.engine.potential_energy, "steps": steps})
            done = k + 1 - first
            elapsed = _time.perf_counter() - t_loop
            eta = elapsed / done * (len(plan) - k - 1)
            self._say(f"strain {k + 1:3d}/{len(plan)}  e_{VOIGT_NAMES[j]} = {e:+.5f}  "
                      f"s = [{' '.join(f'{x:9.4f}' for x in stress)}] GPa  relax steps {steps:4d}  "
                      f"elapsed {format_hms(elapsed)}  ETA {format_hms(eta)}")
        sim.restore(reference)
        wall = _time.perf_counter() - t_start
        force_time = sum(sim.engine.timers.values()) - force_t0
        report = self._report(records, strains, stress0, reference_cell, reference_energy, n_atoms,
                              relax_info, force_calls, wall, force_time)
        self._write(report, records)
        self._print(report)
        return report

    # ------------------------------------------------------------ analysis
    def _report(self, records, strains, stress0, cell, energy, n_atoms, relax_result, force_calls, wall,
                force_time):
        values = [[0.0] for _ in range(6)]
        stresses = [[stress0] for _ in range(6)]
        by_magnitude = {e: [[None, None] for _ in range(6)] for e in strains}
        for r in records:
            j, e = r["component"], r["strain"]
            values[j].append(e)
            stresses[j].append(r["stress"])
            by_magnitude[abs(e)][j][0 if e > 0 else 1] = r["stress"]
        c = fit_columns(values, stresses)
        per_magnitude = central_difference_columns(by_magnitude)
        spread = np.max([np.abs(cm - c) for cm in per_magnitude.values()], axis=0)
        c_sym = 0.5 * (c + c.T)
        asymmetry = float(np.abs(c - c.T).max()) / 2.0
        stable, eig = born_stability(c_sym)
        kind = self.structure_class          # set by _run_static, from the atoms, before any strain
        sec = self.section
        return {
            "acemd_version": __version__, "units": "GPa (stresses, elastic constants, moduli); "
                                                  + UNITS_LINE,
            "input_file": str(self.simulation.input_path),
            "potential_sha256": self.simulation.potential.file_sha256,
            "n_atoms": n_atoms, "cell_A": cell.tolist(), "volume_A3": float(abs(np.linalg.det(cell))),
            "energy_per_atom_eV": energy / n_atoms,
            "reference_stress_GPa": stress0.tolist(),
            "strains": strains, "relax": sec["relax"], "relax_ions": sec["relax_ions"],
            "C_GPa": c.tolist(), "C_symmetrized_GPa": c_sym.tolist(), "asymmetry_GPa": asymmetry,
            "C_error_GPa": spread.tolist(),
            "C_by_magnitude_GPa": {f"{e:g}": cm.tolist() for e, cm in per_magnitude.items()},
            "moduli_GPa": vrh_moduli(c_sym),
            "born_stable": stable, "eigenvalues_GPa": eig.tolist(),
            "crystal_class": kind, "independent_constants_GPa": independent_constants(c_sym, kind),
            "reference_relaxation": None if relax_result is None else dict(relax_result),
            "force_calls": force_calls, "wall_s": wall, "force_s": force_time,
        }

    def _write(self, report, records):
        sec = self.section

        def write():
            import h5py
            with replaced_atomically(sec["report"]) as tmp:
                tmp.write_text(json.dumps(report, indent=2) + "\n")
            with replaced_atomically(sec["data"]) as tmp, h5py.File(tmp, "w") as f:
                f.attrs["acemd_version"] = __version__
                f.attrs["units"] = "strain: dimensionless (Voigt, engineering shear); stress: GPa; energy: eV"
                f.attrs["voigt_order"] = "xx yy zz yz xz xy"
                f.attrs["potential_sha256"] = self.simulation.potential.file_sha256
                f.attrs["input_text"] = self.simulation.input_text
                f["component"] = np.array([r["component"] for r in records], dtype=np.int64)
                f["strain"] = np.array([r["strain"] for r in records])
                f["stress"] = np.array([r["stress"] for r in records])
                f["stress"].attrs["unit"] = "GPa"
                f["energy"] = np.array([r["energy"] for r in records])
                f["energy"].attrs["unit"] = "eV"
                f["relax_steps"] = np.array([r["steps"] for r in records], dtype=np.int64)
                f["reference_stress"] = np.array(report["reference_stress_GPa"])
                f["reference_energy"] = report["energy_per_atom_eV"] * report["n_atoms"]
                f["C"] = np.array(report["C_GPa"])
                f["C"].attrs["unit"] = "GPa"
                f["C_error"] = np.array(report["C_error_GPa"])

        on_root(self.simulation.comm, write)

    def _print(self, r):
        def table(name, m):
            lines = [f"{name} (GPa):"]
            for row in m:
                lines.append("  " + " ".join(f"{x:10.3f}" for x in row))
            return lines

        lines = [f"# elastic tensor of {r['n_atoms']} atoms, E = {r['energy_per_atom_eV']:.6f} eV/atom, "
                 f"V = {r['volume_A3'] / r['n_atoms']:.5f} A^3/atom"]
        lines += table("C", r["C_GPa"])
        lines += table("C symmetrised", r["C_symmetrized_GPa"])
        lines += table("spread over strain magnitudes (error estimate)", r["C_error_GPa"])
        lines.append(f"asymmetry max |C_ij - C_ji|/2 = {r['asymmetry_GPa']:.4f} GPa")
        m = r["moduli_GPa"]
        lines.append(f"bulk modulus  Voigt {m['bulk_voigt']:.3f}  Reuss {m['bulk_reuss']:.3f}  "
                     f"Hill {m['bulk_hill']:.3f} GPa")
        lines.append(f"shear modulus Voigt {m['shear_voigt']:.3f}  Reuss {m['shear_reuss']:.3f}  "
                     f"Hill {m['shear_hill']:.3f} GPa")
        lines.append(f"Young's modulus (Hill) {m['young_hill']:.3f} GPa, Poisson's ratio (Hill) "
                     f"{m['poisson_hill']:.4f}")
        verdict = "STABLE" if r["born_stable"] else "UNSTABLE"
        lines.append(f"Born stability: {verdict} (eigenvalues of C: "
                     f"{' '.join(f'{x:.2f}' for x in r['eigenvalues_GPa'])} GPa)")
        if r["independent_constants_GPa"]:
            lines.append(f"{r['crystal_class']}: " + ", ".join(
                f"{k} = {v:.3f}" for k, v in r["independent_constants_GPa"].items()) + " GPa")
        lines.append(f"{r['force_calls']} force calls, {r['wall_s']:.1f} s wall "
                     f"({100 * (1 - r['force_s'] / max(r['wall_s'], 1e-12)):.1f} % outside force calls)")
        lines.append(f"report: {self.section['report']}; data: {self.section['data']}")
        for line in lines:
            self._say(line)
